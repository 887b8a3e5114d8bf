//! The command line (contract section 2): one file per command, each returning an
//! [`Outcome`]. [`run`] parses the arguments, sets up logging, runs the command and maps its
//! outcome to stderr sentences and an exit status, here and nowhere else.

mod catalog_proxy;
mod check;
mod enroll;
mod poll_now;
mod run;
#[cfg(windows)]
mod service;
mod status;
mod sync;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing::level_filters::LevelFilter;

use crate::config::{self, Config, HostFacts};

/// Exit status: everything done / healthy.
pub const EXIT_OK: i32 = 0;
/// Exit status: something failed / degraded.
pub const EXIT_FAILED: i32 = 1;
/// Exit status: the daemon is not running.
pub const EXIT_NOT_RUNNING: i32 = 3;

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done, or healthy: exit 0.
    Success,
    /// Failed, or degraded: exit 1. Each sentence goes to stderr (none when the command's
    /// own output already says what failed).
    Failure(Vec<String>),
    /// No daemon answers: exit 3, with a sentence for stderr when the output has none.
    NotRunning(Option<String>),
}

impl Outcome {
    /// One sentence of failure.
    pub fn fail(msg: impl std::fmt::Display) -> Self {
        Outcome::Failure(vec![msg.to_string()])
    }

    /// The one mapping from outcomes to exit statuses.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Success => EXIT_OK,
            Outcome::Failure(_) => EXIT_FAILED,
            Outcome::NotRunning(_) => EXIT_NOT_RUNNING,
        }
    }

    /// Prints the sentences on stderr and returns the exit status.
    fn finish(self) -> i32 {
        let code = self.exit_code();
        let lines = match self {
            Outcome::Success | Outcome::NotRunning(None) => Vec::new(),
            Outcome::Failure(lines) => lines,
            Outcome::NotRunning(Some(line)) => vec![line],
        };
        for line in lines {
            eprintln!("plesk-reseller-agent: {line}");
        }
        code
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "plesk-reseller-agent",
    version,
    about = "Keeps Plesk's panel.ini at a reseller's values and runs the reseller store's license work at once"
)]
pub struct Cli {
    /// The agent's config file [default: $PLESK_RESELLER_AGENT_CONFIG, else /etc/plesk-reseller-agent/agent.ini]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd runs this)
    Run,
    /// One full pass: reconcile panel.ini, poll once, run the jobs, deliver results
    Sync,
    /// Show the daemon's state (exit 0 healthy, 1 degraded, 3 not running)
    Status {
        /// Print JSON (schema_version 1)
        #[arg(long)]
        json: bool,
    },
    /// Check the config and environment, one line per check
    Check,
    /// Ask the running daemon to poll now
    PollNow,
    /// Exchange an enroll key for this server's own token and push secret, then remove the key file
    Enroll {
        /// The key file [default: [central] enroll_key_file]
        #[arg(long, value_name = "FILE", conflicts_with = "key_stdin")]
        key_file: Option<PathBuf>,
        /// Read the key from stdin (nothing to remove afterwards)
        #[arg(long)]
        key_stdin: bool,
        /// Enroll as this host id instead of [central] host_id
        #[arg(long, value_name = "ID")]
        host_id: Option<String>,
    },
    /// Run the Extension Catalog whitelist proxy in the foreground ([catalog_proxy] section)
    CatalogProxy,
    /// Register or remove the Windows service (automatic start, restart on failure)
    #[cfg(windows)]
    #[command(subcommand)]
    Service(service::ServiceCommand),
}

/// Parses the command line, runs the command, returns the exit status.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let config_path = config::resolve_path(cli.config.as_deref());
    let quiet = matches!(cli.command, Command::Status { .. } | Command::Check | Command::PollNow);
    // The Windows service logs to its file (set up once the service manager started it).
    #[cfg(windows)]
    let quiet_console = matches!(cli.command, Command::Service(service::ServiceCommand::Dispatch));
    #[cfg(unix)]
    let quiet_console = false;
    if !quiet_console {
        crate::logging::init(if quiet { LevelFilter::WARN } else { LevelFilter::INFO });
    }
    let outcome = match cli.command {
        Command::Sync => sync::run(&config_path),
        Command::Check => check::run(&config_path),
        Command::Status { json } => status::run(&config_path, json),
        Command::PollNow => poll_now::run(&config_path),
        Command::Enroll {
            key_file,
            key_stdin,
            host_id,
        } => enroll::run(&config_path, key_file, key_stdin, host_id),
        Command::Run => run::run(&config_path),
        Command::CatalogProxy => catalog_proxy::run(&config_path),
        #[cfg(windows)]
        Command::Service(cmd) => service::run(&config_path, cmd),
    };
    outcome.finish()
}

/// The daemon until it stops, as `run` runs it; the Windows service calls it too.
pub fn run_daemon(config_path: &std::path::Path) -> Outcome {
    run::run(config_path)
}

/// How long a command waits for the daemon to answer a quick request.
pub(crate) const CONTROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Loads the config or explains in one sentence why not.
pub(crate) fn load_config(path: &std::path::Path) -> Result<Config, String> {
    let cfg = config::load(path, &HostFacts::real()).map_err(|e| e.to_string())?;
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    Ok(cfg)
}

/// The config and a runtime, or the failure saying in one sentence why not.
pub(crate) fn config_and_runtime(path: &std::path::Path) -> Result<(Config, tokio::runtime::Runtime), Outcome> {
    let cfg = load_config(path).map_err(Outcome::fail)?;
    let rt = runtime().map_err(Outcome::fail)?;
    Ok((cfg, rt))
}

/// A runtime for the one-shot commands (one thread: they do one thing at a time).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_the_contracts_exit_statuses() {
        assert_eq!(Outcome::Success.exit_code(), 0);
        assert_eq!(Outcome::fail("x").exit_code(), 1);
        assert_eq!(Outcome::Failure(Vec::new()).exit_code(), 1);
        assert_eq!(Outcome::NotRunning(None).exit_code(), 3);
    }

    /// Every argument and option of every command says in `--help` what it is for.
    #[test]
    fn every_argument_has_a_help_line() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "plesk-reseller-agent", &mut missing);
        assert!(missing.is_empty(), "no help line for: {}", missing.join(", "));
    }
}
