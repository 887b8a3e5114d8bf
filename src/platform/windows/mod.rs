//! The Windows side of the platform layer: defaults under %ProgramData%, Plesk's root from the
//! registry, ACL checks of secret files, the Job object for license commands (`job.rs`), the
//! named pipe (`pipe.rs`), the service manager and the Event Log (`service.rs`), and a
//! rotating log file (`logfile.rs`).

pub mod acl;
pub mod job;
pub mod logfile;
pub mod pipe;
pub mod service;

use std::path::{Path, PathBuf};

/// Defaults. The config directory is `%ProgramData%\plesk-reseller-agent\`; these constants
/// assume the usual `C:\ProgramData` (a machine with another %ProgramData% names its paths in
/// agent.ini, or passes `--config`).
pub mod defaults {
    pub const CONFIG_PATH: &str = r"C:\ProgramData\plesk-reseller-agent\agent.ini";
    /// Plesk's wrapper; its `bin` runs the utilities in `%plesk_cli%`. A guess (docs/windows.md).
    pub const PLESK_COMMAND: &str = r"C:\Program Files (x86)\Plesk\bin\plesk.exe";
    pub const TOKEN_FILE: &str = r"C:\ProgramData\plesk-reseller-agent\token";
    pub const ENROLL_KEY_FILE: &str = r"C:\ProgramData\plesk-reseller-agent\enroll.key";
    pub const PUSH_SECRET_FILE: &str = r"C:\ProgramData\plesk-reseller-agent\push.secret";
    pub const STATE_DIR: &str = r"C:\ProgramData\plesk-reseller-agent\state";
    /// The control channel: a named pipe (only SYSTEM and Administrators may open it).
    pub const CONTROL_SOCKET: &str = r"\\.\pipe\plesk-reseller-agent";
    /// `plesk.exe bin license.exe -i CODE` / `--retrieve`; `plesk.exe bin keyinfo.exe -l`.
    /// Inferred from third-party scripts, not from Plesk's documentation: a guess.
    pub const LICENSE_UTILITY: &str = "license.exe";
    pub const KEYINFO_LIST: [&str; 3] = ["bin", "keyinfo.exe", "-l"];
    /// Where Plesk lives when neither the registry nor %plesk_dir% says.
    pub const PLESK_ROOT: &str = r"C:\Program Files (x86)\Plesk\";
    /// The registry key (32-bit view) holding PRODUCT_ROOT_D.
    pub const PLESK_REG_KEY: &str = r"SOFTWARE\WOW6432Node\PLESK\PSA Config\Config";
}

/// The computer name, the default host id.
pub fn hostname() -> Option<String> {
    std::env::var("COMPUTERNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .map(|h| h.to_ascii_lowercase())
}

/// `<plesk root>\admin\conf\panel.ini`; the root is PRODUCT_ROOT_D from the registry, else
/// %plesk_dir%, else `C:\Program Files (x86)\Plesk\`. (`psa.conf` is a Linux file: ignored.)
pub fn default_panel_ini(_psa_conf: &Path) -> PathBuf {
    panel_ini_under(&plesk_root())
}

/// `<root>\admin\conf\panel.ini` (the root is used with or without its trailing backslash).
pub fn panel_ini_under(root: &Path) -> PathBuf {
    root.join("admin").join("conf").join("panel.ini")
}

/// Plesk's install root, from the first of: the registry, %plesk_dir%, the usual place.
pub fn plesk_root() -> PathBuf {
    choose_root(registry_product_root(), std::env::var("plesk_dir").ok())
}

/// The rule, apart from where the values come from (tested without a registry).
pub fn choose_root(registry: Option<String>, env: Option<String>) -> PathBuf {
    [registry, env]
        .into_iter()
        .flatten()
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(defaults::PLESK_ROOT))
}

/// PRODUCT_ROOT_D under HKLM\SOFTWARE\WOW6432Node\PLESK\PSA Config\Config (REG_SZ).
pub fn registry_product_root() -> Option<String> {
    read_hklm_string(defaults::PLESK_REG_KEY, "PRODUCT_ROOT_D")
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A REG_SZ value under HKLM, or None.
pub fn read_hklm_string(key: &str, value: &str) -> Option<String> {
    use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ};
    let (key, value) = (wide(key), wide(value));
    let mut buf = vec![0u16; 1024];
    let mut len = (buf.len() * 2) as u32;
    // SAFETY: the strings are NUL-terminated; buf is len bytes long and outlives the call.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            std::ptr::null_mut(),
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    let chars = (len as usize / 2).min(buf.len());
    let s = String::from_utf16_lossy(&buf[..chars]);
    Some(s.trim_end_matches('\0').to_string())
}

/// Why a token or secret file may be read by more than SYSTEM and Administrators (its ACL),
/// or None when it is private.
pub fn secret_file_problem(path: &Path, _meta: &std::fs::Metadata) -> Option<String> {
    match acl::file_sddl(path) {
        Ok(sddl) => acl::readers_beyond_admins(&sddl)
            .map(|who| format!("it is readable by {who} (its ACL); allow only SYSTEM and Administrators")),
        Err(e) => Some(format!("cannot read its ACL: {e}")),
    }
}

/// A file is writable if it is not read-only; a directory if a file can be created in it.
pub fn is_writable(path: &Path) -> bool {
    if path.is_dir() {
        let probe = path.join(format!(".write-check.{}", std::process::id()));
        let ok = std::fs::File::create(&probe).is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    } else {
        std::fs::metadata(path)
            .map(|m| !m.permissions().readonly())
            .unwrap_or(false)
    }
}

/// A file that Windows can start: `.exe`, `.cmd`, `.bat` or `.com`.
pub fn is_executable(path: &Path) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    path.is_file() && matches!(ext.as_str(), "exe" | "cmd" | "bat" | "com")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plesk_root_comes_from_the_registry_then_the_environment_then_the_usual_place() {
        let root = |r: Option<&str>, e: Option<&str>| choose_root(r.map(Into::into), e.map(Into::into));
        assert_eq!(root(Some(r"D:\Plesk\"), Some(r"E:\P\")), PathBuf::from(r"D:\Plesk\"));
        assert_eq!(root(Some(""), Some(r"E:\P\")), PathBuf::from(r"E:\P\"));
        assert_eq!(root(None, None), PathBuf::from(r"C:\Program Files (x86)\Plesk\"));
        assert_eq!(
            panel_ini_under(&root(None, None)),
            PathBuf::from(r"C:\Program Files (x86)\Plesk\admin\conf\panel.ini")
        );
        assert_eq!(
            panel_ini_under(Path::new(r"D:\Plesk")),
            PathBuf::from(r"D:\Plesk\admin\conf\panel.ini")
        );
    }

    #[test]
    fn the_registry_is_read_when_the_key_is_there() {
        // Wine's registry has no Plesk: the lookup must answer None, not fail.
        assert_eq!(
            read_hklm_string(r"SOFTWARE\WOW6432Node\PLESK\PSA Config\Config", "NOPE"),
            None
        );
        // A value every Windows (and Wine) has, read the same way.
        let v = read_hklm_string(r"SOFTWARE\Microsoft\Windows NT\CurrentVersion", "SystemRoot");
        assert!(v.is_some_and(|v| v.to_ascii_lowercase().ends_with(r"\windows")));
    }

    #[test]
    fn only_windows_launchable_files_count_as_executable() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["plesk.exe", "plesk.cmd", "plesk.txt"] {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        assert!(is_executable(&dir.path().join("plesk.exe")));
        assert!(is_executable(&dir.path().join("plesk.cmd")));
        assert!(!is_executable(&dir.path().join("plesk.txt")));
        assert!(!is_executable(&dir.path().join("none.exe")));
        assert!(is_writable(dir.path()));
    }
}
