//! Who may read a file, from its DACL in SDDL form: token and push secret files must be
//! readable only by SYSTEM and Administrators (the Windows counterpart of mode 0600 owned by
//! root).

use std::path::Path;

/// The file's DACL as an SDDL string (`D:P(A;;FA;;;SY)(A;;FA;;;BA)`).
pub fn file_sddl(path: &Path) -> std::io::Result<String> {
    use windows_sys::Win32::Security::Authorization::{GetNamedSecurityInfoW, SE_FILE_OBJECT};
    use windows_sys::Win32::Security::{DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR};

    let wide: Vec<u16> = path.as_os_str().to_string_lossy().encode_utf16().chain([0]).collect();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: the path is NUL-terminated; sd receives a LocalAlloc'd descriptor freed below.
    let rc = unsafe {
        GetNamedSecurityInfoW(
            wide.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc as i32));
    }
    descriptor_sddl(sd)
}

/// The DACL of `sd` as SDDL; frees `sd`.
fn descriptor_sddl(sd: windows_sys::Win32::Security::PSECURITY_DESCRIPTOR) -> std::io::Result<String> {
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertSecurityDescriptorToStringSecurityDescriptorW, SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::DACL_SECURITY_INFORMATION;
    let mut text: *mut u16 = std::ptr::null_mut();
    let mut len = 0u32;
    // SAFETY: sd is a valid descriptor; text receives a LocalAlloc'd string freed below.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            &mut len,
        )
    };
    let result = if ok == 0 {
        Err(std::io::Error::last_os_error())
    } else {
        // SAFETY: text points to len UTF-16 units (with the NUL) allocated by the call.
        let units = unsafe { std::slice::from_raw_parts(text, len as usize) };
        Ok(String::from_utf16_lossy(units).trim_end_matches('\0').to_string())
    };
    // SAFETY: both were allocated by the calls above with LocalAlloc.
    unsafe {
        if !text.is_null() {
            LocalFree(text.cast());
        }
        LocalFree(sd);
    }
    result
}

/// What the config directory, the token and the push secret get: full control for SYSTEM
/// and Administrators, inherited by what is created inside, nothing for anyone else.
pub const ADMINS_ONLY_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// Replaces the DACL of `path` (a file or a directory) with [`ADMINS_ONLY_SDDL`], protected
/// from inheritance.
pub fn restrict_to_admins(path: &Path) -> std::io::Result<()> {
    use windows_sys::Win32::Security::{
        SetFileSecurityW, DACL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION,
    };
    let sd = super::pipe::SecurityDescriptor::from_sddl(ADMINS_ONLY_SDDL)?;
    let wide: Vec<u16> = path.as_os_str().to_string_lossy().encode_utf16().chain([0]).collect();
    // SAFETY: the path is NUL-terminated and the descriptor valid for the call.
    let ok = unsafe {
        SetFileSecurityW(
            wide.as_ptr(),
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            sd.as_ptr(),
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The DACL of a kernel object's handle (a named pipe) as SDDL.
pub fn handle_sddl(handle: std::os::windows::io::BorrowedHandle<'_>) -> std::io::Result<String> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Security::Authorization::{GetSecurityInfo, SE_KERNEL_OBJECT};
    use windows_sys::Win32::Security::{DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR};
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: handle is valid for the call; sd receives a LocalAlloc'd descriptor.
    let rc = unsafe {
        GetSecurityInfo(
            handle.as_raw_handle() as _,
            SE_KERNEL_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc as i32));
    }
    descriptor_sddl(sd)
}

/// The SID of the account this process runs as (`S-1-5-18` for SYSTEM), as a string.
pub fn current_user_sid() -> std::io::Result<String> {
    use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, HANDLE};
    use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
    use windows_sys::Win32::Security::{GetTokenInformation, TokenUser, TOKEN_QUERY, TOKEN_USER};
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo handle of this process is always valid; token is closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = vec![0u64; 64];
    let mut len = 0u32;
    // SAFETY: buf is 512 bytes, aligned for TOKEN_USER; len receives the size used.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenUser,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut len,
        )
    };
    // SAFETY: token was opened above.
    unsafe { CloseHandle(token) };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: GetTokenInformation filled buf with a TOKEN_USER.
    let user = unsafe { &*(buf.as_ptr() as *const TOKEN_USER) };
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: the SID points into buf, alive here; text is LocalAlloc'd and freed below.
    if unsafe { ConvertSidToStringSidW(user.User.Sid, &mut text) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: text is a NUL-terminated string from the call.
    let s = unsafe {
        let n = (0..).take_while(|&i| *text.add(i) != 0).count();
        let s = String::from_utf16_lossy(std::slice::from_raw_parts(text, n));
        LocalFree(text.cast());
        s
    };
    Ok(s)
}

/// Trustees that an allow ACE lets read, other than SYSTEM, Administrators and the account
/// the agent runs as (SYSTEM as a service; an administrator in a console: the counterpart of
/// a 0600 file owned by the daemon's user), in words; None when there are none.
pub fn readers_beyond_admins(sddl: &str) -> Option<String> {
    let me = current_user_sid().ok();
    readers_beyond(sddl, me.as_deref())
}

/// [`readers_beyond_admins`] with the running account given. A missing DACL
/// (`D:NO_ACCESS_CONTROL`, no `D:`) lets everyone read.
pub fn readers_beyond(sddl: &str, me: Option<&str>) -> Option<String> {
    let Some(dacl) = sddl.split_once("D:").map(|(_, d)| d) else {
        return Some("everyone (no DACL)".into());
    };
    if dacl.starts_with("NO_ACCESS_CONTROL") {
        return Some("everyone (no DACL)".into());
    }
    let mut others = Vec::new();
    for ace in dacl.split('(').skip(1) {
        let ace = ace.split(')').next().unwrap_or("");
        let f: Vec<&str> = ace.split(';').collect();
        if f.len() < 6 || f[0] != "A" || !grants_read(f[2]) {
            continue;
        }
        // Inherit-only ACEs (IO) apply to children, not to this file.
        if f[1].contains("IO") {
            continue;
        }
        let sid = f[5];
        if !matches!(sid, "SY" | "BA" | "S-1-5-18" | "S-1-5-32-544") && Some(sid) != me && !others.contains(&sid) {
            others.push(sid);
        }
    }
    (!others.is_empty()).then(|| others.iter().map(|s| trustee(s)).collect::<Vec<_>>().join(", "))
}

/// True when the rights field lets its trustee read the file's data.
fn grants_read(rights: &str) -> bool {
    if let Some(hex) = rights.strip_prefix("0x").or_else(|| rights.strip_prefix("0X")) {
        // FILE_READ_DATA, GENERIC_READ, GENERIC_ALL
        return u32::from_str_radix(hex, 16).is_ok_and(|m| m & (0x1 | 0x8000_0000 | 0x1000_0000) != 0);
    }
    rights
        .as_bytes()
        .chunks(2)
        .any(|c| matches!(c, b"GA" | b"GR" | b"FA" | b"FR"))
}

fn trustee(sid: &str) -> String {
    match sid {
        "WD" => "Everyone".into(),
        "BU" => "Users".into(),
        "AU" => "Authenticated Users".into(),
        "IU" => "Interactive users".into(),
        "OW" => "the owner rights".into(),
        "CO" => "the creator owner".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_system_and_administrators_count_as_private() {
        assert_eq!(readers_beyond("D:P(A;;FA;;;SY)(A;;FA;;;BA)", None), None);
        assert_eq!(readers_beyond("D:PAI(A;;0x1200a9;;;S-1-5-18)(A;;GA;;;BA)", None), None);
        // Inherited from ProgramData: Users may read.
        assert_eq!(
            readers_beyond("D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)", None).as_deref(),
            Some("Users")
        );
        assert_eq!(readers_beyond("D:(A;;GR;;;WD)", None).as_deref(), Some("Everyone"));
        // A deny ACE, an ACE for children only, and write-only rights do not make it readable.
        assert_eq!(
            readers_beyond("D:(D;;FA;;;WD)(A;OICIIO;GA;;;BU)(A;;0x2;;;BU)(A;;FA;;;SY)", None),
            None
        );
        assert_eq!(
            readers_beyond("D:NO_ACCESS_CONTROL", None).as_deref(),
            Some("everyone (no DACL)")
        );
        assert_eq!(readers_beyond("O:BA", None).as_deref(), Some("everyone (no DACL)"));
    }

    #[test]
    fn a_files_acl_can_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "secret").unwrap();
        let sddl = file_sddl(&p).unwrap();
        assert!(sddl.starts_with("D:"), "{sddl}");
        restrict_to_admins(&p).unwrap();
        // Wine keeps its own default DACL (SYSTEM and the running user) whatever is set, so
        // only what holds on both can be asserted: nobody but those may read it.
        let sddl = file_sddl(&p).unwrap();
        assert_eq!(readers_beyond_admins(&sddl), None, "{sddl}");
    }

    #[test]
    fn the_running_account_counts_like_the_owner_of_a_0600_file() {
        let me = current_user_sid().unwrap();
        assert!(me.starts_with("S-1-5-"), "{me}");
        let sddl = format!("D:(A;;FA;;;SY)(A;;FA;;;{me})");
        assert_eq!(readers_beyond(&sddl, Some(&me)), None);
        assert_eq!(readers_beyond(&sddl, None).as_deref(), Some(me.as_str()));
    }
}
