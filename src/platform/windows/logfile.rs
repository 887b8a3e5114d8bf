//! The Windows service's log: a file under the config directory, rotated by size
//! (`agent.log` → `agent.log.1` … `.3`), since a service has no console and no journal.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Rotate when the file reaches this size.
pub const MAX_BYTES: u64 = 5 * 1024 * 1024;
/// Old files kept.
pub const KEEP: u32 = 3;

struct State {
    path: PathBuf,
    file: Option<File>,
    written: u64,
}

/// A `MakeWriter` for tracing: every line goes to the current file, rotated by size.
#[derive(Clone)]
pub struct RotatingFile(Arc<Mutex<State>>);

impl RotatingFile {
    pub fn new(path: PathBuf) -> Self {
        RotatingFile(Arc::new(Mutex::new(State {
            path,
            file: None,
            written: 0,
        })))
    }
}

impl State {
    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new().create(true).append(true).open(&self.path)?;
            self.written = f.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(f);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    fn rotate(&mut self) {
        self.file = None;
        let name = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let _ = std::fs::remove_file(name(KEEP));
        for n in (1..KEEP).rev() {
            let _ = std::fs::rename(name(n), name(n + 1));
        }
        let _ = std::fs::rename(&self.path, name(1));
        self.written = 0;
    }
}

/// One write of one event.
pub struct Line(Arc<Mutex<State>>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if st.written >= MAX_BYTES {
            st.rotate();
        }
        let n = st.open()?.write(buf)?;
        st.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut st = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match st.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_rotated_by_size_and_old_files_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        let log = RotatingFile::new(path.clone());
        let chunk = vec![b'x'; (MAX_BYTES / 2) as usize + 1];
        for _ in 0..10 {
            tracing_subscriber::fmt::MakeWriter::make_writer(&log)
                .write_all(&chunk)
                .unwrap();
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["agent.log", "agent.log.1", "agent.log.2", "agent.log.3"]);
        assert!(std::fs::metadata(&path).unwrap().len() <= MAX_BYTES + chunk.len() as u64);
    }
}
