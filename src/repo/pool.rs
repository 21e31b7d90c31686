//! The pool: immutable `.deb` files under `pool/main/<initial>/<app>/`.
//!
//! A file enters the pool in two steps: it is copied (and hashed on the way) into
//! `pool/.incoming/<package file name>`, and renamed to its place only after the database has
//! committed the row that names it. A crash in between leaves a file in `.incoming`
//! that [`recover`] either moves into place (its row was committed) or deletes.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Seek};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::Connection;

/// The pool directory, relative to the repository root.
pub(crate) const POOL: &str = "pool";
/// Where files wait for their database row, relative to the repository root.
pub(crate) const INCOMING: &str = "pool/.incoming";

/// The pool path of a package file: `pool/main/<initial>/<app>/<file>`, where the initial
/// is the first letter, or `libX` for names starting with `lib` (as Debian does).
pub(crate) fn pool_path(app: &str, file: &str) -> String {
    let initial = if app.len() > 3 && app.starts_with("lib") {
        &app[..4]
    } else {
        &app[..app.len().min(1)]
    };
    format!("{POOL}/main/{initial}/{app}/{file}")
}

pub(crate) use crate::debian::digests::{copy_hashing, sha256_of, Digests};

/// A file copied into `.incoming`, waiting for its database row.
#[derive(Debug, Clone)]
pub(crate) struct StagedFile {
    /// Where it waits.
    pub(crate) path: PathBuf,
    /// Its size and digests.
    pub(crate) digests: Digests,
}

/// Copies `source` (open, read from its start) into the repository's `.incoming`
/// directory as `file_name`, hashing it on the way. A name already taken in `.incoming`
/// (the same package given twice) gets a unique name instead.
pub(crate) fn stage(
    root: &Path,
    source: &mut File,
    shown: &Path,
    file_name: &str,
) -> Result<StagedFile> {
    let incoming = root.join(INCOMING);
    let mut path = incoming.join(file_name);
    let output = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(output) => output,
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            let (output, unique) = tempfile::Builder::new()
                .prefix(&format!("{file_name}."))
                .tempfile_in(&incoming)
                .with_context(|| format!("{}: cannot create a file", incoming.display()))?
                .keep()
                .with_context(|| format!("{}: cannot create a file", incoming.display()))?;
            path = unique;
            output
        }
        Err(error) => {
            return Err(error).with_context(|| format!("{}: cannot be created", path.display()))
        }
    };
    let copied = source
        .seek(io::SeekFrom::Start(0))
        .and_then(|_| copy_hashing(&mut *source, &output));
    match copied {
        Ok(digests) => Ok(StagedFile { path, digests }),
        Err(error) => {
            let _ = fs::remove_file(&path);
            Err(error)
                .with_context(|| format!("{}: cannot be copied into the pool", shown.display()))
        }
    }
}

/// Above this many files, [`make_durable`] syncs the filesystem once instead of each file.
const SYNC_EACH_UP_TO: usize = 32;

/// Makes staged files durable before the rows that name them are committed, so that a
/// crash never leaves a committed row over a short file. A few files are synced one by
/// one; for many (an add of thousands), one `syncfs` of the repository's filesystem
/// costs far less than thousands of fsyncs.
pub(crate) fn make_durable(root: &Path, staged: &[&Path]) -> Result<()> {
    if staged.len() > SYNC_EACH_UP_TO {
        let incoming = root.join(INCOMING);
        let directory = fs_err::File::open(&incoming)?;
        return rustix::fs::syncfs(&directory)
            .map_err(io::Error::from)
            .with_context(|| format!("{}: cannot be synced", incoming.display()));
    }
    for path in staged {
        File::open(path)
            .and_then(|file| file.sync_all())
            .with_context(|| format!("{}: cannot be synced", path.display()))?;
    }
    Ok(())
}

/// Moves a staged file to its pool path (relative to `root`).
pub(crate) fn place(root: &Path, staged: &Path, filename: &str) -> Result<()> {
    let target = root.join(filename);
    if let Some(parent) = target.parent() {
        fs_err::create_dir_all(parent)?;
    }
    fs::rename(staged, &target).with_context(|| {
        format!(
            "{}: cannot be moved to {}",
            staged.display(),
            target.display()
        )
    })
}

/// Deletes a pool file (relative to `root`) and the directories it leaves empty.
pub(crate) fn remove(root: &Path, filename: &str) -> Result<()> {
    let target = root.join(filename);
    match fs::remove_file(&target) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("{}: cannot be removed", target.display()))
        }
    }
    // pool/main/<initial>/<app>: remove the app and initial directories once empty.
    let mut directory = target.parent();
    for _ in 0..2 {
        match directory {
            Some(path) if fs::remove_dir(path).is_ok() => directory = path.parent(),
            _ => break,
        }
    }
    Ok(())
}

/// Finishes what a crashed writer left in `.incoming`: a file whose row was committed
/// moves into place; anything else is deleted. Returns how many files were handled.
pub(crate) fn recover(root: &Path, connection: &Connection) -> Result<usize> {
    let incoming = root.join(INCOMING);
    let entries = match fs::read_dir(&incoming) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            fs_err::create_dir_all(&incoming)?;
            return Ok(0);
        }
        Err(error) => {
            return Err(error).with_context(|| format!("{}: cannot be read", incoming.display()))
        }
    };
    let mut handled = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot be read", incoming.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // A copy is named after its package file; its row (if committed) has a pool path
        // ending in that name, and the same bytes.
        let mut statement = connection.prepare_cached(
            "SELECT filename, sha256 FROM packages WHERE filename LIKE '%/' || ?1",
        )?;
        let rows: Vec<(String, String)> = statement
            .query_map([&name], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let missing = rows
            .into_iter()
            .find(|(filename, _)| !root.join(filename).exists());
        match missing {
            Some((filename, sha256))
                if sha256_of(&path).is_ok_and(|(_, actual)| actual == sha256) =>
            {
                place(root, &path, &filename)?
            }
            _ => fs_err::remove_file(&path)?,
        }
        handled += 1;
    }
    Ok(handled)
}

/// The files under `pool/main` that are not in `known` (pool paths relative to `root`).
pub(crate) fn unreferenced(root: &Path, known: &HashSet<String>) -> Result<Vec<String>> {
    let main = root.join(POOL).join("main");
    let mut found = Vec::new();
    if !main.exists() {
        return Ok(found);
    }
    for entry in walkdir::WalkDir::new(&main).sort_by_file_name() {
        let entry = entry.with_context(|| format!("{}: cannot be read", main.display()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        if !known.contains(&relative) {
            found.push(relative);
        }
    }
    Ok(found)
}

/// The files waiting in `.incoming` (left by a crashed writer).
pub(crate) fn waiting(root: &Path) -> Vec<String> {
    fs::read_dir(root.join(INCOMING))
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| format!("{INCOMING}/{}", entry.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_paths() {
        assert_eq!(pool_path("hello", "a.deb"), "pool/main/h/hello/a.deb");
        assert_eq!(pool_path("libfoo", "a.deb"), "pool/main/libf/libfoo/a.deb");
        assert_eq!(pool_path("lib", "a.deb"), "pool/main/l/lib/a.deb");
    }

    #[test]
    fn digests_of_known_bytes() {
        let digests = copy_hashing(&b"abc"[..], io::sink()).expect("hash");
        assert_eq!(digests.size, 3);
        assert_eq!(digests.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            digests.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
