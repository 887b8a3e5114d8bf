//! The control channel on Windows: a named pipe whose DACL lets only SYSTEM and
//! Administrators open it (`D:P(A;;GA;;;SY)(A;;GA;;;BA)`, protected from inheritance), local
//! clients only. One instance is always waiting; each accepted client gets its own.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions};
use windows_sys::Win32::Foundation::{LocalFree, ERROR_PIPE_BUSY};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};

/// Who may open the pipe: SYSTEM and the Administrators group, full access; nobody else.
pub const PIPE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";

/// A security descriptor made from SDDL, freed on drop.
pub struct SecurityDescriptor(PSECURITY_DESCRIPTOR);

// SAFETY: the descriptor is immutable memory owned by this value alone.
unsafe impl Send for SecurityDescriptor {}
unsafe impl Sync for SecurityDescriptor {}

impl SecurityDescriptor {
    pub fn from_sddl(sddl: &str) -> io::Result<Self> {
        let wide: Vec<u16> = sddl.encode_utf16().chain([0]).collect();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: wide is NUL-terminated; sd receives a LocalAlloc'd descriptor.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SecurityDescriptor(sd))
    }

    pub fn as_ptr(&self) -> PSECURITY_DESCRIPTOR {
        self.0
    }

    fn attributes(&self) -> SECURITY_ATTRIBUTES {
        SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.0,
            bInheritHandle: 0,
        }
    }
}

impl Drop for SecurityDescriptor {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(self.0) };
    }
}

/// The listening side: the pipe's name, its DACL and the instance waiting for a client.
pub struct PipeListener {
    name: OsString,
    sd: SecurityDescriptor,
    next: NamedPipeServer,
}

impl PipeListener {
    /// Creates the pipe's first instance; fails (access denied) when another process already
    /// serves this name.
    pub fn bind(path: &Path) -> io::Result<PipeListener> {
        Self::bind_with(path, PIPE_SDDL)
    }

    /// [`PipeListener::bind`] with another DACL (tests).
    pub fn bind_with(path: &Path, sddl: &str) -> io::Result<PipeListener> {
        // FILE_FLAG_FIRST_PIPE_INSTANCE refuses a second server on Windows, not under Wine:
        // a server that answers a client probe counts as taken too.
        match ClientOptions::new().open(path.as_os_str()) {
            Ok(_) => return Err(io::Error::from_raw_os_error(5)),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => return Err(io::Error::from_raw_os_error(5)),
            Err(_) => {}
        }
        let sd = SecurityDescriptor::from_sddl(sddl)?;
        let next = create(path.as_os_str(), &sd, true)?;
        Ok(PipeListener {
            name: path.as_os_str().to_owned(),
            sd,
            next,
        })
    }

    /// Waits for a client; the next instance is created before the connected one is returned.
    pub async fn accept(&mut self) -> io::Result<NamedPipeServer> {
        self.next.connect().await?;
        let fresh = create(&self.name, &self.sd, false)?;
        Ok(std::mem::replace(&mut self.next, fresh))
    }
}

fn create(name: &std::ffi::OsStr, sd: &SecurityDescriptor, first: bool) -> io::Result<NamedPipeServer> {
    let mut attrs = sd.attributes();
    let mut opts = ServerOptions::new();
    opts.first_pipe_instance(first).reject_remote_clients(true);
    // SAFETY: attrs points to a valid SECURITY_ATTRIBUTES whose descriptor outlives the call.
    unsafe { opts.create_with_security_attributes_raw(name, (&mut attrs as *mut SECURITY_ATTRIBUTES).cast()) }
}

/// Opens the pipe as a client; waits a little while every instance is busy. No pipe: NotFound.
pub async fn connect(path: &Path) -> io::Result<NamedPipeClient> {
    let mut tries = 0;
    loop {
        match ClientOptions::new().open(path.as_os_str()) {
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn name(tag: &str) -> std::path::PathBuf {
        format!(r"\\.\pipe\plesk-reseller-agent-test-{tag}-{}", std::process::id()).into()
    }

    #[tokio::test]
    async fn a_client_reaches_the_pipe_and_a_second_server_is_refused() {
        let p = name("basic");
        let mut listener = PipeListener::bind(&p).unwrap();
        let err = PipeListener::bind(&p).err().expect("a second first instance must fail");
        assert_eq!(err.raw_os_error(), Some(5), "{err}");
        let server = tokio::spawn(async move {
            loop {
                // The second bind's probe was a client too: it left without a word.
                let mut s = listener.accept().await.unwrap();
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).await.is_err() {
                    continue;
                }
                s.write_all(b"pong").await.unwrap();
                let _ = s.read(&mut [0u8; 1]).await;
                break;
            }
        });
        let mut c = connect(&p).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        drop(c);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn no_pipe_is_not_found() {
        let e = connect(&name("none")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    /// Wine does not enforce a pipe's DACL (a pipe allowing nobody still lets every client
    /// in) and runs everything as one administrator, so "a non-admin is refused" cannot be
    /// shown under Wine; what can be is that the pipe carries the admins-only DACL.
    #[tokio::test]
    async fn the_pipe_carries_the_admins_only_dacl() {
        use std::os::windows::io::AsHandle;
        let p = name("dacl");
        let listener = PipeListener::bind(&p).unwrap();
        let sddl = super::super::acl::handle_sddl(listener.next.as_handle()).unwrap();
        assert!(sddl.starts_with("D:P"), "{sddl}");
        assert!(sddl.contains("(A;;GA;;;SY)") || sddl.contains(";;;SY)"), "{sddl}");
        assert_eq!(super::super::acl::readers_beyond(&sddl, None), None, "{sddl}");
    }
}
