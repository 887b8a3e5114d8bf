//! A license command's process tree in a Job object: at the timeout, and once the command
//! exits, `TerminateJobObject` ends every process it started (the Windows counterpart of
//! killing the process group). Windows has no SIGTERM: the grace period is not used.

use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation, SetInformationJobObject,
    TerminateJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};

/// A Job object; dropping it (closing the last handle) kills what is still in it.
pub struct Job(OwnedHandle);

impl Job {
    /// A new, unnamed job that kills its processes when its handle closes.
    pub fn new() -> std::io::Result<Job> {
        // SAFETY: both arguments may be null (no security attributes, no name).
        let h = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
        if h.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: h is a fresh handle we own.
        let job = Job(unsafe { OwnedHandle::from_raw_handle(h as _) });
        // SAFETY: a plain C struct; all-zero is valid, one flag set below.
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: info is the struct this information class expects, with its size.
        let ok = unsafe {
            SetInformationJobObject(
                job.raw(),
                JobObjectExtendedLimitInformation,
                (&info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(job)
    }

    fn raw(&self) -> HANDLE {
        self.0.as_raw_handle() as HANDLE
    }

    /// Puts the process (a handle with PROCESS_SET_QUOTA | PROCESS_TERMINATE) into the job;
    /// what it starts from then on is in the job too.
    pub fn assign(&self, process: std::os::windows::io::BorrowedHandle<'_>) -> std::io::Result<()> {
        // SAFETY: both handles are valid for the call.
        if unsafe { AssignProcessToJobObject(self.raw(), process.as_raw_handle() as HANDLE) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Ends every process in the job.
    pub fn terminate(&self) {
        // SAFETY: the handle is valid; exit code 1 is what a killed process reports.
        unsafe { TerminateJobObject(self.raw(), 1) };
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.terminate();
    }
}
