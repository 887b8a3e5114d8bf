//! `service install|uninstall` (Windows): the service manager's registration of the agent;
//! `service dispatch` is what the service manager runs.

use std::path::Path;

use clap::Subcommand;

use super::Outcome;
use crate::platform::windows::service;

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Register the service (automatic start, LocalSystem, restart on failure) with this --config
    Install,
    /// Stop and remove the service
    Uninstall,
    /// What the service manager runs (not for people: use `run` in a console)
    #[command(hide = true)]
    Dispatch,
}

pub fn run(config_path: &Path, cmd: ServiceCommand) -> Outcome {
    let result = match cmd {
        ServiceCommand::Install => {
            // An absolute path: the service starts in C:\Windows\System32.
            let config = std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_path_buf());
            service::install(&config).map(|()| {
                println!(
                    "registered the service {} (config {})",
                    service::SERVICE_NAME,
                    config.display()
                )
            })
        }
        ServiceCommand::Uninstall => {
            service::uninstall().map(|()| println!("removed the service {}", service::SERVICE_NAME))
        }
        ServiceCommand::Dispatch => service::dispatch(config_path),
    };
    match result {
        Ok(()) => Outcome::Success,
        Err(e) => Outcome::fail(e),
    }
}
