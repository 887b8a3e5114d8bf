//! The Windows service: `service install|uninstall` through the service manager (automatic
//! start, restart on failure, LocalSystem), the dispatcher the service manager starts
//! (`service dispatch`), which runs the same daemon as the console mode `run`, and start,
//! stop and failure lines in the Windows Event Log (source `plesk-reseller-agent`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Notify;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept, ServiceErrorControl,
    ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState,
    ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

pub const SERVICE_NAME: &str = "plesk-reseller-agent";
const DISPLAY_NAME: &str = "Plesk reseller agent";
const DESCRIPTION: &str =
    "Keeps Plesk's panel.ini at a reseller's values and runs the reseller store's license work at once";

static STOP: Notify = Notify::const_new();
static CONFIG: OnceLock<PathBuf> = OnceLock::new();

/// Completes when the service manager asked the service to stop (a permit is kept if the
/// request came before anyone waited).
pub fn stop_requested() -> &'static Notify {
    &STOP
}

/// Registers the service: this executable with `--config PATH service dispatch`, automatic
/// start, LocalSystem, restarted 5 s, 5 s and 30 s after failures (the count resets after a
/// day). An existing registration is an error that says so.
pub fn install(config: &Path) -> Result<(), String> {
    // The config directory (token, push secret, logs, state): SYSTEM and Administrators only.
    if let Some(dir) = config.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        super::acl::restrict_to_admins(dir)
            .map_err(|e| format!("cannot restrict {} to SYSTEM and Administrators: {e}", dir.display()))?;
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot tell this program's path: {e}"))?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(|e| format!("cannot open the service manager (run as Administrator): {e}"))?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments: vec![
            OsString::from("--config"),
            config.as_os_str().to_owned(),
            OsString::from("service"),
            OsString::from("dispatch"),
        ],
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
        .map_err(|e| format!("cannot register the service {SERVICE_NAME}: {e}"))?;
    let _ = service.set_description(DESCRIPTION);
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(5), restart(5), restart(30)]),
        })
        .map_err(|e| format!("cannot set the service's restart on failure: {e}"))?;
    // An exit with an error code counts as a failure too, not only a crash.
    let _ = service.set_failure_actions_on_non_crash_failures(true);
    Ok(())
}

/// Stops the service if it runs and removes its registration.
pub fn uninstall() -> Result<(), String> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(|e| format!("cannot open the service manager (run as Administrator): {e}"))?;
    let service = manager
        .open_service(
            SERVICE_NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(|e| format!("cannot open the service {SERVICE_NAME}: {e}"))?;
    if let Ok(status) = service.query_status() {
        if status.current_state != ServiceState::Stopped {
            let _ = service.stop();
            for _ in 0..100 {
                match service.query_status() {
                    Ok(s) if s.current_state == ServiceState::Stopped => break,
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
    }
    service
        .delete()
        .map_err(|e| format!("cannot remove the service {SERVICE_NAME}: {e}"))
}

define_windows_service!(ffi_service_main, service_main);

/// Hands this process to the service manager, which calls [`service_main`]; returns when the
/// service has stopped. Fails when not started by the service manager.
pub fn dispatch(config: &Path) -> Result<(), String> {
    let _ = CONFIG.set(config.to_path_buf());
    service_dispatcher::start(SERVICE_NAME, ffi_service_main)
        .map_err(|e| format!("not started by the service manager ({e}); use `run` in a console"))
}

fn service_main(_args: Vec<OsString>) {
    let config = CONFIG
        .get()
        .cloned()
        .unwrap_or_else(|| PathBuf::from(super::defaults::CONFIG_PATH));
    let log = config
        .parent()
        .map(|d| d.join("logs").join("agent.log"))
        .unwrap_or_else(|| PathBuf::from("agent.log"));
    crate::logging::init_file(&log, tracing::level_filters::LevelFilter::INFO);

    let handler = move |event| match event {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            STOP.notify_one();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(status) = service_control_handler::register(SERVICE_NAME, handler) else {
        event_log(
            EventKind::Error,
            "the service could not register with the service manager",
        );
        return;
    };
    let set = |state, accept, code| {
        let _ = status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code: ServiceExitCode::Win32(code),
            checkpoint: 0,
            wait_hint: Duration::from_secs(10),
            process_id: None,
        });
    };
    set(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        0,
    );
    event_log(EventKind::Info, &format!("started (config {})", config.display()));
    let outcome = crate::cli::run_daemon(&config);
    match &outcome {
        crate::cli::Outcome::Success => event_log(EventKind::Info, "stopped"),
        crate::cli::Outcome::Failure(why) => {
            tracing::error!("the daemon stopped: {}", why.join("; "));
            event_log(EventKind::Error, &format!("failed: {}", why.join("; ")));
        }
        crate::cli::Outcome::NotRunning(_) => {}
    }
    // A non-zero exit code makes the service manager apply the restart-on-failure actions.
    let code = if matches!(outcome, crate::cli::Outcome::Success) {
        0
    } else {
        1
    };
    set(ServiceState::Stopped, ServiceControlAccept::empty(), code);
}

/// What an Event Log entry is.
#[derive(Debug, Clone, Copy)]
pub enum EventKind {
    Info,
    Error,
}

/// Writes one line to the Application log under our source. The source is not registered
/// with a message file, so Event Viewer shows the text after a note that the description
/// is missing; that needs no installer step. Failures to log are ignored.
pub fn event_log(kind: EventKind, message: &str) {
    use windows_sys::Win32::System::EventLog::{
        DeregisterEventSource, RegisterEventSourceW, ReportEventW, EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE,
    };
    let source: Vec<u16> = SERVICE_NAME.encode_utf16().chain([0]).collect();
    let text: Vec<u16> = format!("{SERVICE_NAME}: {message}").encode_utf16().chain([0]).collect();
    // SAFETY: the strings are NUL-terminated and outlive the calls; the handle is closed.
    unsafe {
        let h = RegisterEventSourceW(std::ptr::null(), source.as_ptr());
        if h.is_null() {
            return;
        }
        let strings = [text.as_ptr()];
        let kind = match kind {
            EventKind::Info => EVENTLOG_INFORMATION_TYPE,
            EventKind::Error => EVENTLOG_ERROR_TYPE,
        };
        ReportEventW(
            h,
            kind,
            0,
            1,
            std::ptr::null_mut(),
            1,
            0,
            strings.as_ptr(),
            std::ptr::null(),
        );
        DeregisterEventSource(h);
    }
}
