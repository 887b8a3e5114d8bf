//! Writes the man page and the shell completions from the clap definitions, so they can never
//! drift from the real command line. Kept as an example (with dev-dependencies) so the shipped
//! binary carries none of this. `packaging/build-packages.sh` runs it:
//!
//!     cargo run --example gen-docs -- OUT_DIR
//!
//! OUT_DIR gets `plesk-reseller-agent.1` and `completions/{plesk-reseller-agent.bash,
//! _plesk-reseller-agent, plesk-reseller-agent.fish}`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use plesk_reseller_agent::cli::Cli;

const NAME: &str = "plesk-reseller-agent";

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gen-docs OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-docs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> Result<(), String> {
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions).map_err(|e| format!("cannot create {}: {e}", completions.display()))?;

    write(&out.join(format!("{NAME}.1")), &man_page()?)?;

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), NAME, &mut buf);
        let file = match shell {
            Shell::Bash => format!("{NAME}.bash"),
            Shell::Zsh => format!("_{NAME}"),
            _ => format!("{NAME}.fish"),
        };
        write(&completions.join(file), &buf)?;
    }
    Ok(())
}

/// One page for the whole tool: clap_mangen's own subcommand section only points at
/// per-command pages, so the commands and their options are written out here instead.
fn man_page() -> Result<Vec<u8>, String> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("1")
        .manual("System Administration");
    let mut page = Vec::new();
    let err = |e: std::io::Error| format!("cannot render the man page: {e}");
    man.render_title(&mut page).map_err(err)?;
    man.render_name_section(&mut page).map_err(err)?;
    man.render_synopsis_section(&mut page).map_err(err)?;
    man.render_description_section(&mut page).map_err(err)?;
    man.render_options_section(&mut page).map_err(err)?;

    let mut text = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        text.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            roff(sub.get_name()),
            roff(&about(sub))
        ));
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set() && !a.is_global_set()) {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" {
                continue;
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            text.push_str(&format!(
                ".RS\n.TP\n\\fB\\-\\-{}\\fR\n{}\n.RE\n",
                roff(long),
                roff(&help)
            ));
        }
    }
    text.push_str(FILES_SECTION);
    page.extend_from_slice(text.as_bytes());
    man.render_version_section(&mut page).map_err(err)?;
    Ok(page)
}

fn about(cmd: &clap::Command) -> String {
    cmd.get_about().map(|a| a.to_string()).unwrap_or_default()
}

/// Escapes text for roff: backslashes, hyphens, and a leading control character.
fn roff(s: &str) -> String {
    let mut out = s.replace('\\', "\\e").replace('-', "\\-");
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What clap does not know: where things live and how the service is run.
const FILES_SECTION: &str = r#".SH FILES
.TP
\fI/etc/plesk\-reseller\-agent/agent.ini\fR
The configuration; every key is documented in it. \fBPLESK_RESELLER_AGENT_CONFIG\fR or \fB\-\-config\fR name another.
.TP
\fI/etc/plesk\-reseller\-agent/token\fR
The store's bearer token; must be readable by root only (mode 0600).
.TP
\fI/var/lib/plesk\-reseller\-agent/\fR
Job journal, undelivered results, panel.ini backups.
.TP
\fI/run/plesk\-reseller\-agent/agent.sock\fR
The control socket used by \fBstatus\fR, \fBsync\fR and \fBpoll\-now\fR.
.SH SERVICE
The daemon runs as the systemd unit \fBplesk\-reseller\-agent.service\fR;
\fBsystemctl reload plesk\-reseller\-agent\fR rereads the configuration, and
\fBjournalctl \-u plesk\-reseller\-agent\fR shows its log.
.SH EXIT STATUS
0 done or healthy; 1 something failed or degraded; 3 the daemon is not running (\fBstatus\fR, \fBpoll\-now\fR).
"#;
