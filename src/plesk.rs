//! The Plesk commands the agent runs (contract section 7), through the `plesk` wrapper:
//! `bin license -i <code>`, `bin license --retrieve`, `bin keyinfo --list`, `version`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::runner::{CommandOutput, CommandSpec, Runner};
use plesk_reseller_protocol::{is_no_key, mask, normalize_key_number};

/// Grace between SIGTERM and SIGKILL for a timed-out command.
pub const KILL_GRACE: Duration = Duration::from_secs(10);
/// Timeout for the quick read-only commands (`keyinfo`, `version`).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong reading Plesk's state; names the command at fault.
#[derive(Debug, thiserror::Error)]
pub enum PleskError {
    #[error("`{command}` failed: {reason}")]
    Command { command: String, reason: String },
}

/// The Plesk wrapper and how to run it.
#[derive(Clone)]
pub struct Plesk {
    pub command: PathBuf,
    /// Timeout of the license commands.
    pub timeout: Duration,
    pub kill_grace: Duration,
    pub runner: Arc<dyn Runner>,
}

impl Plesk {
    pub fn new(command: PathBuf, timeout: Duration, runner: Arc<dyn Runner>) -> Self {
        Plesk {
            command,
            timeout,
            kill_grace: KILL_GRACE,
            runner,
        }
    }

    /// `<command> bin license -i <code>`; the code must have passed
    /// [`crate::mask::is_activation_code`].
    pub async fn install_key(&self, activation_code: &str) -> CommandOutput {
        if !mask::is_activation_code(activation_code) {
            // Never hand Plesk something that could parse as an option or hold a secret
            // of another shape; callers reject such jobs before they get here.
            let now = SystemTime::now();
            return CommandOutput {
                exit_code: None,
                output: String::new(),
                timed_out: false,
                spawn_error: Some(format!(
                    "refusing to run {} bin license -i: `{}` is not a well-formed activation code",
                    self.command.display(),
                    mask::activation_codes(activation_code)
                )),
                started_at: now,
                finished_at: now,
            };
        }
        let out = self
            .run(
                &["bin", crate::platform::LICENSE_UTILITY, "-i", activation_code],
                self.timeout,
            )
            .await;
        mask_output(out)
    }

    /// `<command> bin license --retrieve`.
    pub async fn retrieve_keys(&self) -> CommandOutput {
        mask_output(
            self.run(&["bin", crate::platform::LICENSE_UTILITY, "--retrieve"], self.timeout)
                .await,
        )
    }

    /// The main key number from `bin keyinfo --list`, normalised; `Ok(None)` when Plesk has none.
    pub async fn key_number(&self) -> Result<Option<String>, PleskError> {
        let args = crate::platform::KEYINFO_LIST;
        let out = self.query(&args).await?;
        match parse_keyinfo(&out) {
            Some(raw) => {
                let key = normalize_key_number(raw);
                if key.is_none() && !is_no_key(raw) {
                    tracing::warn!(
                        value = %mask::activation_codes(raw),
                        "`{}` printed a plesk_key_id of unknown form; treating it as no key",
                        self.describe(&args)
                    );
                }
                Ok(key)
            }
            None => {
                tracing::warn!(
                    "`{}` printed no plesk_key_id line; treating it as no key",
                    self.describe(&args)
                );
                Ok(None)
            }
        }
    }

    /// The version from `version` (last token of the line starting `Product version`).
    pub async fn version(&self) -> Result<Option<String>, PleskError> {
        let args = ["version"];
        let out = self.query(&args).await?;
        let version = parse_version(&out).map(str::to_string);
        if version.is_none() {
            tracing::warn!("`{}` printed no Product version line", self.describe(&args));
        }
        Ok(version)
    }

    fn describe(&self, args: &[&str]) -> String {
        let mut s = self.command.display().to_string();
        for a in args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    async fn run(&self, args: &[&str], timeout: Duration) -> CommandOutput {
        self.runner
            .run(CommandSpec {
                program: self.command.clone(),
                args: args.iter().map(OsString::from).collect(),
                timeout,
                kill_grace: self.kill_grace,
            })
            .await
    }

    /// Runs a read-only command and returns its output, or says why it failed.
    async fn query(&self, args: &[&str]) -> Result<String, PleskError> {
        let out = self.run(args, QUERY_TIMEOUT).await;
        if out.success() {
            return Ok(out.output);
        }
        let command = self.describe(args);
        let reason = failure_reason(&out);
        Err(PleskError::Command { command, reason })
    }
}

fn mask_output(mut out: CommandOutput) -> CommandOutput {
    out.output = mask::activation_codes(&out.output);
    out
}

/// One sentence on why a command did not succeed, with the first line it printed.
fn failure_reason(out: &CommandOutput) -> String {
    if let Some(e) = &out.spawn_error {
        return e.clone();
    }
    let how = if out.timed_out {
        "it timed out".to_string()
    } else {
        match out.exit_code {
            Some(code) => format!("exit code {code}"),
            None => "it was killed by a signal".to_string(),
        }
    };
    let first = out.output.lines().map(str::trim).find(|l| !l.is_empty());
    match first {
        Some(line) => {
            let line = mask::activation_codes(line);
            let line: String = if line.chars().count() > 200 {
                line.chars().take(200).chain("…".chars()).collect()
            } else {
                line
            };
            format!("{how}, output: {line}")
        }
        None => format!("{how}, no output"),
    }
}

/// `plesk_key_id` value from `keyinfo --list` output.
pub fn parse_keyinfo(output: &str) -> Option<&str> {
    output.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("plesk_key_id")?;
        let value = rest.trim_start().strip_prefix(':')?.trim();
        (!value.is_empty()).then_some(value)
    })
}

/// The last token of the line starting `Product version`.
pub fn parse_version(output: &str) -> Option<&str> {
    output.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("Product version")?;
        let rest = rest.trim_start().strip_prefix(':').unwrap_or(rest);
        rest.split_whitespace().last()
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::BoxFuture;
    use std::sync::Mutex;

    /// Answers every command with one canned result and records what it was asked to run.
    struct Canned {
        exit_code: Option<i32>,
        output: String,
        spawn_error: Option<String>,
        calls: Mutex<Vec<CommandSpec>>,
    }

    impl Canned {
        fn new(exit_code: Option<i32>, output: &str) -> Arc<Self> {
            Arc::new(Canned {
                exit_code,
                output: output.to_string(),
                spawn_error: None,
                calls: Mutex::new(Vec::new()),
            })
        }

        fn argv(&self) -> Vec<Vec<String>> {
            let calls = self.calls.lock().unwrap();
            calls
                .iter()
                .map(|c| {
                    let mut v = vec![c.program.display().to_string()];
                    v.extend(c.args.iter().map(|a| a.to_string_lossy().into_owned()));
                    v
                })
                .collect()
        }
    }

    impl Runner for Canned {
        fn run(&self, spec: CommandSpec) -> BoxFuture<'_, CommandOutput> {
            self.calls.lock().unwrap().push(spec);
            let now = SystemTime::now();
            let out = CommandOutput {
                exit_code: self.exit_code,
                output: self.output.clone(),
                timed_out: false,
                spawn_error: self.spawn_error.clone(),
                started_at: now,
                finished_at: now,
            };
            Box::pin(async move { out })
        }
    }

    fn plesk(runner: Arc<Canned>) -> Plesk {
        Plesk::new("/usr/sbin/plesk".into(), Duration::from_secs(600), runner)
    }

    const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";

    #[tokio::test]
    async fn install_key_runs_exact_argv_with_license_timeout() {
        let runner = Canned::new(Some(0), "");
        let out = plesk(runner.clone()).install_key(CODE).await;
        assert!(out.success());
        assert_eq!(
            runner.argv(),
            vec![vec!["/usr/sbin/plesk", "bin", "license", "-i", CODE]]
        );
        let calls = runner.calls.lock().unwrap();
        assert_eq!(calls[0].timeout, Duration::from_secs(600));
        assert_eq!(calls[0].kill_grace, KILL_GRACE);
    }

    #[tokio::test]
    async fn install_key_masks_the_code_in_output() {
        let runner = Canned::new(Some(1), &format!("Unable to install key {CODE}: invalid code\n"));
        let out = plesk(runner).install_key(CODE).await;
        assert_eq!(out.exit_code, Some(1));
        assert_eq!(
            out.output,
            "Unable to install key A00000-******-******-******-1GE201: invalid code\n"
        );
    }

    #[tokio::test]
    async fn install_key_refuses_malformed_codes_without_running() {
        let runner = Canned::new(Some(0), "");
        for bad in ["--retrieve", "", "a00000-k6qk03-ksg046", "AAAA-BBBB"] {
            let out = plesk(runner.clone()).install_key(bad).await;
            assert!(!out.success());
            assert!(out.spawn_error.unwrap().contains("not a well-formed activation code"));
        }
        assert!(runner.argv().is_empty());
    }

    #[tokio::test]
    async fn retrieve_keys_runs_exact_argv() {
        let runner = Canned::new(Some(0), "Updating license key EXT.12345678.0001: Done\n");
        let mut p = plesk(runner.clone());
        p.kill_grace = Duration::from_secs(3);
        let out = p.retrieve_keys().await;
        assert_eq!(out.output, "Updating license key EXT.12345678.0001: Done\n");
        assert_eq!(
            runner.argv(),
            vec![vec!["/usr/sbin/plesk", "bin", "license", "--retrieve"]]
        );
        assert_eq!(runner.calls.lock().unwrap()[0].kill_grace, Duration::from_secs(3));
    }

    #[tokio::test]
    async fn key_number_reads_keyinfo_with_query_timeout() {
        let runner = Canned::new(
            Some(0),
            "key_version: 0001\nplesk_key_id: PLSK111385020006\nlim_date: 20350101\n",
        );
        let key = plesk(runner.clone()).key_number().await.unwrap();
        assert_eq!(key.as_deref(), Some("PLSK.11138502.0006"));
        assert_eq!(runner.argv(), vec![vec!["/usr/sbin/plesk", "bin", "keyinfo", "--list"]]);
        assert_eq!(runner.calls.lock().unwrap()[0].timeout, QUERY_TIMEOUT);
    }

    #[tokio::test]
    async fn key_number_none_for_trial_missing_or_odd_values() {
        for output in [
            "plesk_key_id: plsk000000000000\n",
            "plesk_key_id: 0\n",
            "lim_date: 20350101\n",
            "plesk_key_id: something-else\n",
        ] {
            let runner = Canned::new(Some(0), output);
            assert_eq!(plesk(runner).key_number().await.unwrap(), None, "{output:?}");
        }
    }

    #[tokio::test]
    async fn key_number_error_names_command_exit_code_and_first_line() {
        let runner = Canned::new(Some(3), "\nlicense server unreachable\nmore\n");
        let err = plesk(runner).key_number().await.unwrap_err();
        let PleskError::Command { command, reason } = &err;
        assert_eq!(command, "/usr/sbin/plesk bin keyinfo --list");
        assert_eq!(reason, "exit code 3, output: license server unreachable");
        assert_eq!(
            err.to_string(),
            "`/usr/sbin/plesk bin keyinfo --list` failed: exit code 3, output: license server unreachable"
        );
    }

    #[tokio::test]
    async fn version_error_carries_spawn_error() {
        let runner = Arc::new(Canned {
            exit_code: None,
            output: String::new(),
            spawn_error: Some("cannot run /usr/sbin/plesk: No such file or directory".into()),
            calls: Mutex::new(Vec::new()),
        });
        let err = plesk(runner).version().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "`/usr/sbin/plesk version` failed: cannot run /usr/sbin/plesk: No such file or directory"
        );
    }

    #[tokio::test]
    async fn version_reads_product_version() {
        let runner = Canned::new(
            Some(0),
            "Product version: Plesk Obsidian 18.0.64.1\n    OS version: Ubuntu 22.04 x86_64\n",
        );
        let p = plesk(runner.clone());
        assert_eq!(p.version().await.unwrap().as_deref(), Some("18.0.64.1"));
        assert_eq!(runner.argv(), vec![vec!["/usr/sbin/plesk", "version"]]);
        let runner = Canned::new(Some(0), "nothing useful\n");
        assert_eq!(plesk(runner).version().await.unwrap(), None);
    }

    #[test]
    fn parse_keyinfo_finds_the_key_line() {
        assert_eq!(parse_keyinfo("a: b\nplesk_key_id: PLSK1\n"), Some("PLSK1"));
        assert_eq!(parse_keyinfo("  plesk_key_id :  PLSK1  \r\n"), Some("PLSK1"));
        assert_eq!(parse_keyinfo("plesk_key_id:0"), Some("0"));
        assert_eq!(parse_keyinfo("plesk_key_id_old: X\nplesk_key_id: Y"), Some("Y"));
        assert_eq!(parse_keyinfo("plesk_key_id:\n"), None);
        assert_eq!(parse_keyinfo("my_plesk_key_id: X\n"), None);
        assert_eq!(parse_keyinfo(""), None);
    }

    #[test]
    fn parse_version_takes_last_token() {
        assert_eq!(
            parse_version("Product version: Plesk Obsidian 18.0.64.1\n"),
            Some("18.0.64.1")
        );
        assert_eq!(parse_version("x\n  Product version: 18.0.60 \n"), Some("18.0.60"));
        assert_eq!(parse_version("Product version:\n"), None);
        assert_eq!(parse_version("OS version: Ubuntu 22.04\n"), None);
    }
}
