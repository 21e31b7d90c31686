//! Publishing suites atomically for readers: pool and by-hash files first, indexes by
//! rename, `Release` and `InRelease` last.
//!
//! A client that fetched an older `InRelease` finds the indexes it names under `by-hash/`
//! (the generations `[retention]` keeps, each recorded in the state before it is
//! served); one that fetches the new `InRelease` finds the new ones, which were in place
//! before it. Each file is written under a temporary name in its
//! own directory, synced and renamed, so no reader sees a partial file; a crash leaves the
//! previous publication intact and the next one removes the leftovers.

pub(crate) mod chunk_cache;
pub(crate) mod dashboard;
pub(crate) mod later_second;
pub(crate) mod packages;
pub(crate) mod served;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use rusqlite::Connection;

use crate::debian::release::{self, IndexFile, ReleaseFields, ALGORITHMS, BY_HASH};
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

/// What a publication keeps of the generations before it: without a history (the
/// library call [`publish`]), the previous `Release` on disk; with one, also every
/// generation the repository's `[retention]` keeps.
pub(crate) struct History<'a> {
    /// The state database, which records each generation's Release text.
    pub(crate) connection: &'a Connection,
    /// How many generations stay served per suite (the current one included).
    pub(crate) generations: usize,
    /// How long (seconds) a replaced generation stays served whatever its rank.
    pub(crate) grace: u64,
}

/// Writes the indexes of `suites` under `root/dists/` and signs them. Suites not passed
/// in are left as they are (the tests' way in; commands go through [`publish_suites`]).
#[cfg(test)]
pub(crate) fn publish(
    root: &Path,
    settings: &PublishSettings,
    suites: &[SuiteView],
    signer: &dyn SignRelease,
    reporter: &Reporter,
) -> Result<()> {
    let cache = ChunkCache::of_repository(root);
    for suite in suites {
        publish_suite(root, settings, suite, signer, &cache, reporter, None)
            .with_context(|| format!("publishing suite {}", suite.name))?;
    }
    prune_cache(root, &cache, reporter);
    Ok(())
}

/// Keeps in the chunk cache what the suites under dists/ are made of now.
fn prune_cache(root: &Path, cache: &ChunkCache, reporter: &Reporter) {
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
}

/// Rewrites the indexes of `suites` (`production`, `bookworm-production`; the callers
/// pass suites of the configuration's stages) from the state in `connection`, and clears
/// the publication debt of each one published.
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
    let settings = PublishSettings {
        origin: config.origin.clone(),
        label: config.label.clone(),
        architectures: config.architectures.clone(),
        date: publish_date()?,
        valid_for: config.valid_for()?,
    };
    let history = History {
        connection,
        generations: config.retention.generations,
        grace: config.retention.grace_seconds()?,
    };
    let signer = sign::signer_of(root, config)?;
    for warning in signer.check_signing()? {
        reporter.warn(warning);
    }
    let cache = ChunkCache::of_repository(root);
    let mut names: Vec<&String> = suites.iter().collect();
    names.sort_by_key(|name| crate::repo::suites::order_key(config, name));
    // The dashboard is read from the state (committed before any publication) first, and
    // rendered and written on a thread of its own while the suites are published: with
    // 20,000 applications that overlaps ~90 ms of its work with theirs.
    let dashboard = if config.publish.dashboard {
        Some(dashboard::prepare(root, connection, config, settings.date)?)
    } else {
        dashboard::remove(root)?;
        None
    };
    std::thread::scope(|scope| {
        let written = dashboard.map(|prepared| {
            scope.spawn(|| {
                // Dated now, not at the publication's date: a browser's
                // If-Modified-Since must see the change even under SOURCE_DATE_EPOCH.
                dashboard::write(root, prepared, &|| {
                    write_temporary(root, b"", SystemTime::now())
                })
            })
        });
        for suite in &names {
            publish_one(root, &settings, &history, &signer, &cache, reporter, suite)?;
        }
        match written.map(|thread| thread.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => bail!("the dashboard's thread panicked"),
            None => Ok(()),
        }
    })?;
    prune_cache(root, &cache, reporter);
    Ok(())
}

/// Publishes one suite from the state and clears its publication debt.
fn publish_one(
    root: &Path,
    settings: &PublishSettings,
    history: &History<'_>,
    signer: &dyn SignRelease,
    cache: &ChunkCache,
    reporter: &Reporter,
    suite: &str,
) -> Result<()> {
    let connection = history.connection;
    let packages = state::suite_packages_unordered(connection, suite)?
        .into_iter()
        .map(indexed)
        .collect();
    let view = SuiteView {
        name: suite.to_string(),
        packages,
    };
    publish_suite(
        root,
        settings,
        &view,
        signer,
        cache,
        reporter,
        Some(history),
    )
    .with_context(|| format!("publishing suite {suite}"))
    .with_context(|| {
        format!(
            "the state is saved, but the suite {suite} was not published; the next \
                 writer publishes it (or run `debstage repo publish` once the cause is fixed)"
        )
    })?;
    crate::fault::point("publish-before-paid");
    state::paid_publication(connection, suite)
}

fn indexed(record: PackageRecord) -> IndexedPackage {
    IndexedPackage {
        control: record.control,
        architecture: record.identity.architecture,
        filename: record.filename,
        digests: record.digests,
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

/// One generation of a suite, computed and signed before the first byte is written: its
/// index files, and the Release text with both its signatures, made from that one text.
struct Generation {
    files: Vec<IndexFile>,
    keys: Vec<String>,
    release: String,
    in_release: String,
    release_gpg: String,
}

fn prepare_generation(
    settings: &PublishSettings,
    suite: &SuiteView,
    signer: &dyn SignRelease,
    cache: &ChunkCache,
) -> Result<Generation> {
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
    Ok(Generation {
        files,
        keys,
        release,
        in_release,
        release_gpg,
    })
}

fn publish_suite(
    root: &Path,
    settings: &PublishSettings,
    suite: &SuiteView,
    signer: &dyn SignRelease,
    cache: &ChunkCache,
    reporter: &Reporter,
    history: Option<&History<'_>>,
) -> Result<()> {
    check_suite_name(&suite.name)?;
    let generation = prepare_generation(settings, suite, signer, cache)?;
    let suite_directory = root.join("dists").join(&suite.name);
    let directories = index_directories(&suite_directory, &generation.files)?;
    let previous = read_release(&suite_directory)?;
    let stamp = replacement_stamp(&suite_directory, &generation.files, &suite.name, reporter)?;
    write_indexes(&suite_directory, &directories, &generation.files, stamp)?;
    crate::fault::point("publish-indexes-written");
    // The generation is on record before any client can fetch its InRelease, so that
    // its by-hash files are kept as long as it may be served.
    if let Some(history) = history {
        state::record_generation(
            history.connection,
            &suite.name,
            unix_now(),
            &generation.release,
        )?;
    }
    write_release_files(&suite_directory, &generation, stamp)?;
    crate::fault::point("publish-release-files-written");
    let current = by_hash_entries(&generation.release);
    let previous = by_hash_entries(&previous);
    match history {
        Some(history) => {
            let mut keep = current;
            keep.extend(previous);
            for release in kept_generations(history, &suite.name)? {
                keep.extend(by_hash_entries(&release));
            }
            prune_by_hash(&suite_directory, &generation.files, &keep)?;
        }
        // Without a history, only the previous generation is known. When nothing
        // changed, it is the current one: keep everything, or a client holding the one
        // before would lose its files.
        None if current != previous => {
            let keep = current.union(&previous).cloned().collect();
            prune_by_hash(&suite_directory, &generation.files, &keep)?;
        }
        None => {}
    }
    // Without this record the suite's chunks are pruned, and made again next time.
    if let Err(error) = cache.record_suite(&suite.name, &generation.keys) {
        reporter.warn(format!(
            "the index cache of suite {} was not recorded: {error:#}",
            suite.name
        ));
    }
    Ok(())
}

/// The mtime the suite's new files get: a later second than any file they replace
/// (see [`later_second`]), so that apt's `If-Modified-Since` never hides them.
fn replacement_stamp(
    suite_directory: &Path,
    files: &[IndexFile],
    suite: &str,
    reporter: &Reporter,
) -> Result<SystemTime> {
    let replaced: Vec<PathBuf> = ["Release", "Release.gpg", "InRelease"]
        .into_iter()
        .map(|name| suite_directory.join(name))
        .chain(files.iter().map(|file| suite_directory.join(&file.path)))
        .collect();
    let newest = later_second::newest_mtime(replaced.iter().map(PathBuf::as_path))?;
    let (stamp, later) = later_second::local_stamp(newest)?;
    if let later_second::Later::ClockBehind(second) = later {
        reporter.warn(format!(
            "suite {suite}: its files are dated {} s ahead of the system clock (was the \
             clock set back?); the new ones are dated one second after them",
            newest.unwrap_or(second) - second
        ));
    }
    Ok(stamp)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// The Release texts of the generations of `suite` still served: the newest
/// `generations`, and any replaced less than `grace` ago. Older ones are forgotten.
fn kept_generations(history: &History<'_>, suite: &str) -> Result<Vec<String>> {
    let all = state::generations(history.connection, suite)?;
    let now = unix_now();
    let mut kept = Vec::new();
    let mut oldest_kept = None;
    // Newest first: each generation was replaced when the one before it in the list
    // was published.
    let mut replaced_at: Option<i64> = None;
    for (rank, generation) in all.into_iter().enumerate() {
        let within_grace =
            replaced_at.is_none_or(|replaced| now.saturating_sub(replaced) < history.grace as i64);
        if rank < history.generations || within_grace {
            oldest_kept = Some(generation.id);
            replaced_at = Some(generation.published);
            kept.push(generation.release);
        } else {
            break;
        }
    }
    if let Some(oldest) = oldest_kept {
        state::forget_generations(history.connection, suite, oldest)?;
    }
    Ok(kept)
}

/// The Release text in `suite_directory`, or an empty text when there is none yet.
fn read_release(suite_directory: &Path) -> Result<String> {
    let path = suite_directory.join("Release");
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(error).with_context(|| format!("{}: cannot be read", path.display())),
    }
}

/// The by-hash (path, algorithm, digest) of every index a Release text names: under
/// [`BY_HASH`] only, so that the copies earlier versions wrote under the weaker hashes are
/// pruned.
fn by_hash_entries(release: &str) -> BTreeSet<(String, String, String)> {
    release::release_entries(release)
        .into_iter()
        .filter(|entry| entry.algorithm == BY_HASH)
        .map(|entry| (entry.path, entry.algorithm.name().to_string(), entry.digest))
        .collect()
}

/// The directories the index files go to (created, and cleared of the temporary files
/// an interrupted publication left).
fn index_directories(suite_directory: &Path, files: &[IndexFile]) -> Result<BTreeSet<PathBuf>> {
    let mut directories: BTreeSet<PathBuf> = BTreeSet::new();
    directories.insert(suite_directory.to_path_buf());
    for file in files {
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
    Ok(directories)
}

/// Writes each index once (synced), under a temporary name beside its plain name; its
/// by-hash names, which the old and new Release both point into, are hard links to it;
/// then renames it to its plain name, and syncs the directories, so that the new names
/// are on disk before a Release names them.
fn write_indexes(
    suite_directory: &Path,
    directories: &BTreeSet<PathBuf>,
    files: &[IndexFile],
    stamp: SystemTime,
) -> Result<()> {
    // The files are written side by side, so that their syncs overlap.
    let staged_indexes = files
        .par_iter()
        .map(|file| -> Result<_> {
            let plain = suite_directory.join(&file.path);
            let directory = plain.parent().unwrap_or(suite_directory);
            let temporary = stage(directory, &file.bytes, stamp)?;
            let path = by_hash_path(
                suite_directory,
                &file.path,
                BY_HASH.name(),
                file.digest(BY_HASH),
            );
            if !path.exists() {
                link_atomically(temporary.path(), &path)?;
            }
            Ok((plain, temporary))
        })
        .collect::<Result<Vec<_>>>()?;
    crate::fault::point("publish-by-hash-linked");
    for (plain, temporary) in staged_indexes {
        temporary
            .persist(&plain)
            .with_context(|| format!("{}: cannot be written", plain.display()))?;
    }
    for directory in directories {
        sync_directory(directory)?;
        for by_hash in existing_by_hash_directories(directory) {
            sync_directory(&by_hash)?;
        }
    }
    Ok(())
}

/// Renames `Release`, `Release.gpg` and `InRelease` into place, one right after the
/// other. A crash between them leaves them disagreeing until the next writer publishes
/// the suite again: its publication debt is cleared only after this.
fn write_release_files(
    suite_directory: &Path,
    generation: &Generation,
    stamp: SystemTime,
) -> Result<()> {
    let staged = [
        ("Release", generation.release.as_bytes()),
        ("Release.gpg", generation.release_gpg.as_bytes()),
        ("InRelease", generation.in_release.as_bytes()),
    ]
    .into_iter()
    .map(|(name, bytes)| Ok((name, stage(suite_directory, bytes, stamp)?)))
    .collect::<Result<Vec<_>>>()?;
    for (name, temporary) in staged {
        let target = suite_directory.join(name);
        temporary
            .persist(&target)
            .with_context(|| format!("{}: cannot be written", target.display()))?;
        crate::fault::point(&format!("publish-renamed-{name}"));
    }
    sync_directory(suite_directory)
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

/// Removes the by-hash files of the directories `files` live in that no generation in
/// `keep` (path, algorithm, digest) names.
fn prune_by_hash(
    suite_directory: &Path,
    files: &[IndexFile],
    keep: &BTreeSet<(String, String, String)>,
) -> Result<()> {
    // by-hash paths (relative to the suite) that stay.
    let keep: BTreeSet<PathBuf> = keep
        .iter()
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
            if algorithm != BY_HASH {
                // Emptied of what an earlier version wrote under a weaker hash.
                fs::remove_dir(&absolute).with_context(|| {
                    format!("{}: cannot remove the directory", absolute.display())
                })?;
            }
        }
    }
    Ok(())
}

/// Removes temporary files an interrupted publication left in `directory`.
fn remove_leftovers(directory: &Path) -> Result<()> {
    let entries = fs_err::read_dir(directory)?;
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

/// Writes `bytes` to a synced temporary file (mode 0644, modified at `stamp`) in
/// `directory`.
fn stage(directory: &Path, bytes: &[u8], stamp: SystemTime) -> Result<tempfile::NamedTempFile> {
    let temporary = write_temporary(directory, bytes, stamp)?;
    temporary
        .as_file()
        .sync_all()
        .with_context(|| format!("{}: cannot write a temporary file", directory.display()))?;
    Ok(temporary)
}

/// Writes `bytes` to a temporary file (mode 0644, modified at `stamp`) in `directory`,
/// not synced.
fn write_temporary(
    directory: &Path,
    bytes: &[u8],
    stamp: SystemTime,
) -> Result<tempfile::NamedTempFile> {
    let mut temporary = tempfile::Builder::new()
        .prefix(TEMPORARY_PREFIX)
        .permissions(fs::Permissions::from_mode(0o644))
        .tempfile_in(directory)
        .with_context(|| format!("{}: cannot create a temporary file", directory.display()))?;
    temporary
        .write_all(bytes)
        .and_then(|()| temporary.as_file().set_modified(stamp))
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
