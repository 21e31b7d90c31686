//! One writer at a time: an exclusive lock on the repository, with a clear message while
//! waiting.
//!
//! The lock is an advisory lock (`flock`) on `<repo>/lock`, so it is released by the
//! kernel when its holder exits, even on a crash. The holder writes its pid and command
//! into the file for the message of whoever waits.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::report::Reporter;

/// The name of the lock file at the repository's root.
pub(crate) const FILE_NAME: &str = "lock";

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    /// Another writer kept the lock longer than `--lock-timeout`.
    #[error(
        "the lock on {repo} is still held by {holder} after {waited:?}; \
         try again later or raise --lock-timeout"
    )]
    Timeout {
        /// The repository.
        repo: PathBuf,
        /// Who holds it, as the holder wrote it.
        holder: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The lock file cannot be opened or locked.
    #[error("{path}: cannot be locked: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The exclusive lock of one writer; released when dropped.
#[derive(Debug)]
pub(crate) struct RepoLock {
    file: File,
}

impl RepoLock {
    /// Takes the lock on the repository at `root`, waiting for another writer (with one
    /// message) at most `timeout` (forever when `None`).
    pub(crate) fn acquire(
        root: &Path,
        timeout: Option<Duration>,
        reporter: &Reporter,
    ) -> Result<RepoLock, LockError> {
        let path = root.join(FILE_NAME);
        let io_error = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        let started = Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(error)) => return Err(io_error(error)),
            }
            let holder = holder(&mut file);
            let waited = started.elapsed();
            if timeout.is_some_and(|limit| waited >= limit) {
                return Err(LockError::Timeout {
                    repo: root.to_path_buf(),
                    holder,
                    waited,
                });
            }
            if !told {
                reporter.status(format!(
                    "waiting for the lock on {} held by {holder}",
                    root.display()
                ));
                told = true;
            }
            let pause = Duration::from_millis(50);
            std::thread::sleep(match timeout {
                Some(limit) => pause
                    .min(limit.saturating_sub(waited))
                    .max(Duration::from_millis(1)),
                None => pause,
            });
        }
        let command: Vec<String> = std::env::args().collect();
        let note = format!("pid {} ({})", std::process::id(), command.join(" "));
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(note.as_bytes()))
            .map_err(io_error)?;
        Ok(RepoLock { file })
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        // Clear the note first: a waiter that reads it after the unlock sees no stale pid.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// What the holder wrote into the lock file.
fn holder(file: &mut File) -> String {
    let mut note = String::new();
    let read = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut note));
    match read {
        Ok(_) if !note.trim().is_empty() => note.trim().to_string(),
        _ => "another process".to_string(),
    }
}
