//! Exclusive locks on files (`flock(2)`), the way labctl processes exclude each other: a lab's
//! lock, the claim on a lab's name, the image build. A lock is held until its file closes, so it
//! goes with the process that held it, however it ended.

use std::fs::File;
use std::io;
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::FlockOperation;
use rustix::io::Errno;

/// Opens the lock file `path` for reading and writing, creating it if need be (never truncating
/// it: it may say who holds it).
pub fn open(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Takes the exclusive lock on `file`, waiting while another process holds it.
pub fn wait_exclusive(file: &File) -> io::Result<()> {
    flock(file, FlockOperation::LockExclusive)
}

/// Takes the exclusive lock on `file` if no other process holds it; `Ok(false)` if one does.
pub fn try_exclusive(file: &File) -> io::Result<bool> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(error) => Err(error),
    }
}

/// `flock(2)`, again when a signal interrupted it.
fn flock(file: &File, operation: FlockOperation) -> io::Result<()> {
    loop {
        match rustix::fs::flock(file, operation) {
            Err(Errno::INTR) => continue,
            result => return result.map_err(io::Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two open files of one path are two locks: the second cannot be taken while the first is
    /// held, and can once the first file closes.
    #[test]
    fn a_held_lock_excludes_another_until_its_file_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = open(&path).unwrap();
        wait_exclusive(&first).unwrap();
        let second = open(&path).unwrap();
        assert!(!try_exclusive(&second).unwrap());
        drop(first);
        assert!(try_exclusive(&second).unwrap());
    }
}
