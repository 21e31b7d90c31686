//! Publishing suites atomically for readers: pool and by-hash files first, indexes by
//! rename, `Release` and `InRelease` last.
//!
//! A client that fetched the old `InRelease` finds the indexes it names under `by-hash/`
//! (the previous generation is kept); one that fetches the new `InRelease` finds the new
//! ones, which were in place before it. Each file is written under a temporary name in its
//! own directory, synced and renamed, so no reader sees a partial file; a crash leaves the
//! previous publication intact and the next one removes the leftovers.

pub(crate) mod chunk_cache;
pub(crate) mod packages;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use rusqlite::Connection;

use crate::debian::release::{self, IndexFile, ReleaseFields, ALGORITHMS};
use crate::repo::config::RepoConfig;
use crate::repo::publish::chunk_cache::ChunkCache;
pub(crate) use crate::repo::publish::packages::{IndexedPackage, SuiteView};
use crate::repo::sign::{self, SignRelease};
use crate::repo::state::{self, PackageRecord};
use crate::report::Reporter;

/// The prefix of temporary files; leftovers of an interrupted publication are removed.
const TEMPORARY_PREFIX: &str = ".debstage-tmp-";

/// Repository-wide values that go into every Release file.
#[derive(Debug, Clone)]
pub(crate) struct PublishSettings {
    /// Origin field.
    pub(crate) origin: String,
    /// Label field.
    pub(crate) label: String,
    /// Architectures served (without `all`).
    pub(crate) architectures: Vec<String>,
    /// The Date field (SOURCE_DATE_EPOCH when set, for reproducible indexes).
    pub(crate) date: SystemTime,
    /// How long a Release stays valid (Valid-Until), if at all.
    pub(crate) valid_for: Option<std::time::Duration>,
}

/// Writes the indexes of `suites` under `root/dists/` and signs them. Suites not passed
/// in are left as they are.
pub(crate) fn publish(
    root: &Path,
    settings: &PublishSettings,
    suites: &[SuiteView],
    signer: &dyn SignRelease,
    reporter: &Reporter,
) -> Result<()> {
    let cache = ChunkCache::of_repository(root);
    for suite in suites {
        publish_suite(root, settings, suite, signer, &cache, reporter)
            .with_context(|| format!("publishing suite {}", suite.name))?;
    }
    // The cache keeps what the suites under dists/ are made of now.
    let published: Vec<String> = match fs::read_dir(root.join("dists")) {
        Ok(entries) => entries
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    // The suites are published: a cache that cannot be tidied is only reported.
    if let Err(error) = cache.prune(&published) {
        reporter.warn(format!("the index cache was not pruned: {error:#}"));
    }
    Ok(())
}

/// Rewrites the indexes of `suites` (stage names) from the state in `connection`.
pub(crate) fn publish_suites(
    root: &Path,
    config: &RepoConfig,
    connection: &Connection,
    suites: &BTreeSet<String>,
    reporter: &Reporter,
) -> Result<()> {
    if suites.is_empty() {
        return Ok(());
    }
    let mut views = Vec::new();
    for suite in config.stages.iter().filter(|stage| suites.contains(*stage)) {
        let packages = state::suite_packages(connection, suite)?
            .into_iter()
            .map(indexed)
            .collect();
        views.push(SuiteView {
            name: suite.clone(),
            packages,
        });
    }
    let settings = PublishSettings {
        origin: config.origin.clone(),
        label: config.label.clone(),
        architectures: config.architectures.clone(),
        date: publish_date()?,
        valid_for: config
            .valid_days
            .map(|days| Duration::from_secs(days * 86_400)),
    };
    let signer = sign::signer_of(root, config)?;
    let names: Vec<&str> = views.iter().map(|view| view.name.as_str()).collect();
    publish(root, &settings, &views, signer.as_ref(), reporter).with_context(|| {
        format!(
            "the state is saved, but the suites {} were not published; \
             run `debstage repo publish` once the cause is fixed",
            names.join(", ")
        )
    })
}

fn indexed(record: PackageRecord) -> IndexedPackage {
    IndexedPackage {
        control: record.control,
        architecture: record.architecture,
        filename: record.filename,
        size: record.size,
        md5: record.md5,
        sha1: record.sha1,
        sha256: record.sha256,
    }
}

/// The Date of Release files: SOURCE_DATE_EPOCH when set (reproducible), else now.
fn publish_date() -> Result<SystemTime> {
    Ok(
        crate::source_date::source_date_epoch()?.map_or_else(SystemTime::now, |seconds| {
            UNIX_EPOCH + Duration::from_secs(seconds)
        }),
    )
}

/// Checks a suite name: it becomes a directory under `dists/` and a Release field.
fn check_suite_name(name: &str) -> Result<()> {
    let mut characters = name.chars();
    let first_ok = characters
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric());
    if !first_ok
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        bail!("suite name {name:?}: must match [A-Za-z0-9][A-Za-z0-9._-]*");
    }
    Ok(())
}

fn publish_suite(
    root: &Path,
    settings: &PublishSettings,
    suite: &SuiteView,
    signer: &dyn SignRelease,
    cache: &ChunkCache,
    reporter: &Reporter,
) -> Result<()> {
    check_suite_name(&suite.name)?;
    // Everything is computed and signed before the first byte is written.
    let packages::SuiteIndexes { files, keys } =
        packages::suite_indexes(suite, &settings.architectures, cache)?;
    let fields = ReleaseFields {
        origin: &settings.origin,
        label: &settings.label,
        suite: &suite.name,
        date: settings.date,
        valid_for: settings.valid_for,
        architectures: &settings.architectures,
        components: &[packages::COMPONENT],
    };
    let release = release::release_text(&fields, &files)?;
    let in_release = signer.clearsign(&release, settings.date)?;
    let release_gpg = signer.detached_armored(&release, settings.date)?;

    let suite_directory = root.join("dists").join(&suite.name);
    let mut directories: BTreeSet<PathBuf> = BTreeSet::new();
    directories.insert(suite_directory.clone());
    for file in &files {
        if let Some(parent) = suite_directory.join(&file.path).parent() {
            directories.insert(parent.to_path_buf());
        }
    }
    for directory in &directories {
        fs::create_dir_all(directory)
            .with_context(|| format!("{}: cannot create the directory", directory.display()))?;
        remove_leftovers(directory)?;
        for by_hash in existing_by_hash_directories(directory) {
            remove_leftovers(&by_hash)?;
        }
    }
    let previous = match fs::read_to_string(suite_directory.join("Release")) {
        Ok(text) => release::release_entries(&text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => {
            return Err(error).with_context(|| {
                format!(
                    "{}: cannot be read",
                    suite_directory.join("Release").display()
                )
            })
        }
    };

    // 1. Each index is written (and synced) once, under a temporary name beside its
    // plain name; its by-hash names, which the old and new Release both point into, are
    // hard links to it.
    // The files are written side by side, so that their syncs overlap.
    let staged_indexes = files
        .par_iter()
        .map(|file| -> Result<_> {
            let plain = suite_directory.join(&file.path);
            let directory = plain.parent().unwrap_or(&suite_directory);
            let temporary = stage(directory, &file.bytes)?;
            for algorithm in ALGORITHMS {
                let path = by_hash_path(
                    &suite_directory,
                    &file.path,
                    algorithm.name(),
                    file.digest(algorithm),
                );
                if !path.exists() {
                    link_atomically(temporary.path(), &path)?;
                }
            }
            Ok((plain, temporary))
        })
        .collect::<Result<Vec<_>>>()?;
    // 2. The indexes under their plain names.
    for (plain, temporary) in staged_indexes {
        temporary
            .persist(&plain)
            .with_context(|| format!("{}: cannot be written", plain.display()))?;
    }
    // The new names (indexes and by-hash links) are on disk before a Release names them.
    for directory in &directories {
        sync_directory(directory)?;
        for by_hash in existing_by_hash_directories(directory) {
            sync_directory(&by_hash)?;
        }
    }
    // 3. The Release files last, renamed one right after the other.
    let staged = [
        ("Release", release.as_bytes()),
        ("Release.gpg", release_gpg.as_bytes()),
        ("InRelease", in_release.as_bytes()),
    ]
    .into_iter()
    .map(|(name, bytes)| Ok((name, stage(&suite_directory, bytes)?)))
    .collect::<Result<Vec<_>>>()?;
    for (name, temporary) in staged {
        let target = suite_directory.join(name);
        temporary
            .persist(&target)
            .with_context(|| format!("{}: cannot be written", target.display()))?;
    }
    sync_directory(&suite_directory)?;

    // 4. by-hash files of neither the new nor the previous generation are removed. When
    // nothing changed, the previous generation is the current one: keep everything, or a
    // client holding the one before would lose its files.
    let current: BTreeSet<(String, String, String)> = files
        .iter()
        .flat_map(|file| {
            ALGORITHMS.into_iter().map(|algorithm| {
                (
                    file.path.clone(),
                    algorithm.name().to_string(),
                    file.digest(algorithm).to_string(),
                )
            })
        })
        .collect();
    let previous: BTreeSet<(String, String, String)> = previous
        .into_iter()
        .map(|entry| (entry.path, entry.algorithm.name().to_string(), entry.digest))
        .collect();
    if current != previous {
        prune_by_hash(&suite_directory, &files, &current, &previous)?;
    }
    // Without this record the suite's chunks are pruned, and made again next time.
    if let Err(error) = cache.record_suite(&suite.name, &keys) {
        reporter.warn(format!(
            "the index cache of suite {} was not recorded: {error:#}",
            suite.name
        ));
    }
    Ok(())
}

/// `dists/<suite>/<dir of path>/by-hash/<algorithm>/<digest>`.
fn by_hash_path(suite_directory: &Path, path: &str, algorithm: &str, digest: &str) -> PathBuf {
    let file = suite_directory.join(path);
    let directory = file.parent().unwrap_or(suite_directory);
    by_hash_directory(directory, algorithm).join(digest)
}

/// `<index directory>/by-hash/<algorithm>`.
fn by_hash_directory(directory: &Path, algorithm: &str) -> PathBuf {
    directory.join("by-hash").join(algorithm)
}

/// The by-hash directories under an index directory that exist.
fn existing_by_hash_directories(directory: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    ALGORITHMS
        .into_iter()
        .map(|algorithm| by_hash_directory(directory, algorithm.name()))
        .filter(|by_hash| by_hash.is_dir())
}

/// Removes by-hash files of the directories `files` live in that belong to neither
/// generation.
fn prune_by_hash(
    suite_directory: &Path,
    files: &[IndexFile],
    current: &BTreeSet<(String, String, String)>,
    previous: &BTreeSet<(String, String, String)>,
) -> Result<()> {
    // by-hash paths (relative to the suite) that stay.
    let keep: BTreeSet<PathBuf> = current
        .iter()
        .chain(previous)
        .map(|(path, algorithm, digest)| by_hash_path(Path::new(""), path, algorithm, digest))
        .collect();
    let directories: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|file| Path::new(&file.path).parent().map(Path::to_path_buf))
        .collect();
    for directory in directories {
        for algorithm in ALGORITHMS {
            let relative = by_hash_directory(&directory, algorithm.name());
            let absolute = suite_directory.join(&relative);
            let entries = match fs::read_dir(&absolute) {
                Ok(entries) => entries,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("{}: cannot be listed", absolute.display()))
                }
            };
            for entry in entries {
                let entry =
                    entry.with_context(|| format!("{}: cannot be listed", absolute.display()))?;
                if !keep.contains(&relative.join(entry.file_name())) {
                    fs::remove_file(entry.path()).with_context(|| {
                        format!("{}: cannot remove an old index", entry.path().display())
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// Removes temporary files an interrupted publication left in `directory`.
fn remove_leftovers(directory: &Path) -> Result<()> {
    let entries = fs::read_dir(directory)
        .with_context(|| format!("{}: cannot be listed", directory.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot be listed", directory.display()))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(TEMPORARY_PREFIX)
        {
            fs::remove_file(entry.path()).with_context(|| {
                format!(
                    "{}: cannot remove a leftover temporary file",
                    entry.path().display()
                )
            })?;
        }
    }
    Ok(())
}

/// Writes `bytes` to a synced temporary file (mode 0644) in `directory`.
fn stage(directory: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile> {
    let mut temporary = tempfile::Builder::new()
        .prefix(TEMPORARY_PREFIX)
        .permissions(fs::Permissions::from_mode(0o644))
        .tempfile_in(directory)
        .with_context(|| format!("{}: cannot create a temporary file", directory.display()))?;
    temporary
        .write_all(bytes)
        .and_then(|()| temporary.as_file().sync_all())
        .with_context(|| format!("{}: cannot write a temporary file", directory.display()))?;
    // The umask may have narrowed the mode; clients and the server read these files.
    fs::set_permissions(temporary.path(), fs::Permissions::from_mode(0o644))
        .with_context(|| format!("{}: cannot set permissions", temporary.path().display()))?;
    Ok(temporary)
}

/// Gives the complete file `source` the name `path` too (a hard link, made under a
/// temporary name and renamed, so that `path` never names a partial file).
fn link_atomically(source: &Path, path: &Path) -> Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(directory)
        .with_context(|| format!("{}: cannot create the directory", directory.display()))?;
    let temporary = directory.join(format!(
        "{TEMPORARY_PREFIX}link-{}",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = fs::remove_file(&temporary);
    fs::hard_link(source, &temporary)
        .and_then(|()| fs::rename(&temporary, path))
        .with_context(|| format!("{}: cannot be written", path.display()))
}

/// Makes the renames in `directory` durable.
fn sync_directory(directory: &Path) -> Result<()> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .with_context(|| format!("{}: cannot be synced", directory.display()))
}

#[cfg(test)]
mod tests;
