//! What `repo verify` found whole before, so that the next verify need not read every
//! pool file again (the fast path; `repo verify --full` reads them all).
//!
//! Pool files are never changed in place. A file whose size, modification time, change
//! time, device and inode are what they were when its bytes last matched the recorded
//! SHA256 is taken as unchanged, as git's index does for a work tree: a write through
//! any path changes the change time, which no user can set back. The stamps are kept in
//! `cache/verified` (one line per file), a hint only: missing or damaged, a verify reads
//! the files it cannot vouch for, and the file is written again after each verify.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a pool file was when its bytes last matched the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    device: u64,
    inode: u64,
    /// The SHA256 the bytes had (the record's then).
    sha256: String,
}

impl Stamp {
    /// The stamp of a file as it is now, whose bytes have `sha256`.
    pub(super) fn of(metadata: &fs::Metadata, sha256: &str) -> Stamp {
        Stamp {
            size: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
            device: metadata.dev(),
            inode: metadata.ino(),
            sha256: sha256.to_string(),
        }
    }

    fn line(&self, filename: &str) -> String {
        format!(
            "{filename}\t{}\t{}.{}\t{}.{}\t{}\t{}\t{}\n",
            self.size,
            self.modified.0,
            self.modified.1,
            self.changed.0,
            self.changed.1,
            self.device,
            self.inode,
            self.sha256
        )
    }

    fn parse(line: &str) -> Option<(String, Stamp)> {
        let fields: Vec<&str> = line.split('\t').collect();
        let [filename, size, modified, changed, device, inode, sha256] = fields.as_slice() else {
            return None;
        };
        let time = |text: &str| -> Option<(i64, i64)> {
            let (seconds, nanoseconds) = text.split_once('.')?;
            Some((seconds.parse().ok()?, nanoseconds.parse().ok()?))
        };
        Some((
            (*filename).to_string(),
            Stamp {
                size: size.parse().ok()?,
                modified: time(modified)?,
                changed: time(changed)?,
                device: device.parse().ok()?,
                inode: inode.parse().ok()?,
                sha256: (*sha256).to_string(),
            },
        ))
    }
}

/// The stamps of the last verify, by pool filename.
pub(super) struct Seen {
    path: PathBuf,
    stamps: HashMap<String, Stamp>,
}

impl Seen {
    /// Reads the stamps of the repository at `root` (none when absent or unreadable).
    pub(super) fn load(root: &Path) -> Seen {
        let path = root.join("cache").join("verified");
        let stamps = fs::read_to_string(&path)
            .map(|text| text.lines().filter_map(Stamp::parse).collect())
            .unwrap_or_default();
        Seen { path, stamps }
    }

    /// Whether `filename`, now as `metadata` says, is the file whose bytes had `sha256`
    /// when it was stamped.
    pub(super) fn vouches_for(
        &self,
        filename: &str,
        metadata: &fs::Metadata,
        sha256: &str,
    ) -> bool {
        self.stamps
            .get(filename)
            .is_some_and(|stamp| *stamp == Stamp::of(metadata, sha256))
    }

    /// Replaces the stamps with `stamps` (the files found whole by this verify). A
    /// failure is no error: the stamps are a hint, and the next verify reads the files.
    pub(super) fn store(&self, mut stamps: Vec<(String, Stamp)>) {
        stamps.sort_by(|a, b| a.0.cmp(&b.0));
        let text: String = stamps
            .iter()
            .map(|(filename, stamp)| stamp.line(filename))
            .collect();
        let Some(directory) = self.path.parent() else {
            return;
        };
        let temporary = directory.join(format!(".verified.{}", std::process::id()));
        let written = fs::create_dir_all(directory)
            .and_then(|()| fs::write(&temporary, text))
            .and_then(|()| fs::rename(&temporary, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_stamp_vouches_for_the_same_file_only() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        let file = root.join("a.deb");
        fs::write(&file, b"bytes").unwrap();
        let metadata = fs::metadata(&file).unwrap();
        let seen = Seen::load(root);
        assert!(!seen.vouches_for("pool/a.deb", &metadata, "ab"));
        seen.store(vec![("pool/a.deb".to_string(), Stamp::of(&metadata, "ab"))]);
        let seen = Seen::load(root);
        assert!(seen.vouches_for("pool/a.deb", &metadata, "ab"));
        // Another recorded hash, or the file written again (same size), is not vouched for.
        assert!(!seen.vouches_for("pool/a.deb", &metadata, "cd"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&file, b"BYTES").unwrap();
        let metadata = fs::metadata(&file).unwrap();
        assert!(!seen.vouches_for("pool/a.deb", &metadata, "ab"));
        // A damaged line is skipped, not an error.
        fs::write(root.join("cache/verified"), "pool/a.deb\tnot a stamp\n").unwrap();
        assert!(!Seen::load(root).vouches_for("pool/a.deb", &metadata, "ab"));
    }
}
