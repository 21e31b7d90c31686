//! Publish targets: a reader-safe, incremental copy of the published tree on an
//! S3-compatible store (`[[publish.targets]]` in `debstage-repo.toml`).
//!
//! The local tree stays the source of truth: it is computed, signed and pruned by
//! [`crate::repo::publish`] as before, and a target receives the same files. The order on
//! the store is the local tree's: pool objects, by-hash indexes, plain-name indexes,
//! `Release` and `Release.gpg`, `InRelease` last; each object is written whole (a PUT is
//! atomic), so a reader that fetches an `InRelease` finds every object it names. The
//! state database records what the target holds (key, size, SHA256), so only what
//! changed is written. An object gone from the local tree stays on the store for
//! `[retention] generations` more publications of the target and its grace period,
//! since clients and caches in front of the store may still hold an `InRelease` naming it.

pub(crate) mod config;
pub(crate) mod credentials;
pub(crate) mod lock;
pub(crate) mod plan;
pub(crate) mod record;
pub(crate) mod redact;
pub(crate) mod shared;
pub(crate) mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use rusqlite::Connection;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::repo::clock::now;
use crate::repo::config::RepoConfig;
use crate::repo::publish::later_second;
use crate::repo::targets::config::TargetConfig;
use crate::repo::targets::lock::StoreLock;
use crate::repo::targets::plan::{Class, LocalObject};
use crate::repo::targets::store::{Area, CreateOnly, Store, Upload, Written};
use crate::report::Reporter;

/// Whether a file of the local tree is written.
enum Due {
    /// The record names the same bytes.
    Unchanged,
    /// Written; with its SHA256 when it was hashed to compare it with the record.
    Write(Option<String>),
}

/// What one publication to a target did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The target's name.
    pub(crate) target: String,
    /// Objects written, by phase in writing order.
    pub(crate) uploaded: BTreeMap<String, usize>,
    /// Bytes written.
    pub(crate) uploaded_bytes: u64,
    /// Objects the target held already.
    pub(crate) unchanged: usize,
    /// Objects deleted (gone from the local tree past the retention).
    pub(crate) deleted: usize,
    /// Objects gone from the local tree, kept until their retention ends.
    pub(crate) retained: usize,
    /// Whether the lock object was taken (false: the store lacks conditional writes and
    /// the target opted out).
    pub(crate) locked: bool,
}

impl Outcome {
    /// Objects written in all.
    pub(crate) fn uploaded_total(&self) -> usize {
        self.uploaded.values().sum()
    }

    /// The one-line summary the reporter prints.
    pub(crate) fn summary(&self) -> String {
        let phases: Vec<String> = Class::ORDER
            .iter()
            .filter_map(|class| {
                self.uploaded
                    .get(class.name())
                    .map(|count| format!("{} {count}", class.name()))
            })
            .collect();
        format!(
            "publish target {}: uploaded {} object(s) ({} bytes{}), {} unchanged, {} deleted, \
             {} retained",
            self.target,
            self.uploaded_total(),
            self.uploaded_bytes,
            if phases.is_empty() {
                String::new()
            } else {
                format!("; {}", phases.join(", "))
            },
            self.unchanged,
            self.deleted,
            self.retained
        )
    }
}

/// Publishes to every automatic target of `config` whose copy is behind: after a local
/// publication (`changed`), or when the last publication to it did not complete.
pub(crate) fn publish_automatic(
    root: &Path,
    config: &RepoConfig,
    connection: &Connection,
    changed: bool,
    reporter: &Reporter,
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for target in config
        .publish
        .targets
        .iter()
        .filter(|target| target.automatic)
    {
        let (_, complete) = record::status(connection, &target.name)?;
        if !changed && complete {
            continue;
        }
        // On record before the store is reached: a publication that fails anywhere is
        // retried by the next writer.
        record::begin(connection, &target.name)?;
        let outcome = publish(root, config, connection, target, reporter).with_context(|| {
            format!(
                "the suites are published locally, but not to target {}; the next writer \
                 publishes them there (or run `debstage repo publish --target {}`)",
                target.name, target.name
            )
        })?;
        reporter.status(outcome.summary());
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Copies the published tree at `root` to `target`, in the reader-safe order.
pub(crate) fn publish(
    root: &Path,
    config: &RepoConfig,
    connection: &Connection,
    target: &TargetConfig,
    reporter: &Reporter,
) -> Result<Outcome> {
    let store = Store::open(target)?;
    let private = Store::open_area(target, Area::Private)?;
    let conditional = lock::supports_conditional_writes(&private)?;
    if !conditional && target.conditional_writes {
        bail!(
            "publish target {}: the store ignores conditional writes (a second create of a \
             probe key with If-None-Match: * succeeded), so the lock object cannot keep two \
             writers apart and a pool object could be overwritten; with one writer only, set \
             `conditional_writes = false` in this target's [[publish.targets]] entry of \
             debstage-repo.toml",
            store.description
        );
    }
    let mut lock = if conditional {
        Some(StoreLock::acquire(
            &private,
            target.lease_seconds()?,
            None,
            reporter,
        )?)
    } else {
        None
    };
    let result = copy_tree(
        root,
        config,
        connection,
        target,
        Stores {
            published: &store,
            private: &private,
        },
        lock.as_mut(),
        reporter,
    );
    if let Some(lock) = lock {
        // A lock left behind runs out with its lease; the publication's own error
        // matters more.
        if let Err(error) = lock.release(&private) {
            reporter.warn(format!("{error:#}"));
        }
    }
    let mut outcome = result?;
    outcome.locked = conditional;
    Ok(outcome)
}

/// A target's published tree and its private area (lock, clock).
#[derive(Clone, Copy)]
struct Stores<'a> {
    published: &'a Store,
    private: &'a Store,
}

fn copy_tree(
    root: &Path,
    config: &RepoConfig,
    connection: &Connection,
    target: &TargetConfig,
    stores: Stores<'_>,
    mut lock: Option<&mut StoreLock>,
    reporter: &Reporter,
) -> Result<Outcome> {
    let store = stores.published;
    let name = target.name.as_str();
    record::begin(connection, name)?;
    let objects = plan::local_objects(root, &config.origin)?;
    let recorded = record::objects(connection, name)?;
    let mut outcome = Outcome {
        target: name.to_string(),
        ..Outcome::default()
    };
    let mut new_generation = false;
    let mut uploads_done = 0usize;
    // The store's clock as last read, if it was.
    let mut store_clock: Option<i64> = None;
    for class in Class::ORDER {
        if let Some(lock) = lock.as_deref_mut() {
            lock.renew(stores.private)?;
        }
        let phase: Vec<&LocalObject> = objects.iter().filter(|o| o.class == class).collect();
        // A file recorded with its size is hashed (on every core) unless its key is
        // immutable; one not on record, or of another size, is written whatever it
        // holds and hashed as its upload reads it: a cold copy reads the pool once,
        // while the store works.
        let due = phase
            .par_iter()
            .map(|object| match recorded.get(&object.key) {
                Some(known) if known.size == object.size => {
                    if class.immutable() {
                        return Ok(Due::Unchanged);
                    }
                    let sha256 = hash_file(&object.path)?;
                    Ok(if sha256 == known.sha256 {
                        Due::Unchanged
                    } else {
                        Due::Write(Some(sha256))
                    })
                }
                _ => Ok(Due::Write(None)),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut uploads = Vec::new();
        for (object, due) in phase.into_iter().zip(due) {
            let Due::Write(sha256) = due else {
                outcome.unchanged += 1;
                continue;
            };
            uploads.push(Upload {
                key: object.key.clone(),
                file: object.path.clone(),
                sha256,
                cache_control: plan::cache_control(class, &object.key, target.index_max_age),
                content_type: crate::repo::http::content_type,
                create_only: class == Class::Pool && object.key.starts_with("pool/"),
            });
        }
        let sizes: HashMap<String, u64> = objects
            .iter()
            .filter(|o| o.class == class)
            .map(|o| (o.key.clone(), o.size))
            .collect();
        if !class.immutable() && !uploads.is_empty() {
            store_clock = later_than_replaced(stores, &uploads, store_clock, reporter)?;
        }
        let mut existing = Vec::new();
        let create_only = if lock.is_some() {
            CreateOnly::Conditional
        } else {
            look_or_list(store, &recorded, &mut uploads, &mut existing)?
        };
        let mut written = 0usize;
        let mut recorder = record::Recorder::new(connection, name);
        store.put_all(uploads, create_only, |upload, sha256, result| {
            let size = sizes.get(&upload.key).copied().unwrap_or_default();
            match result {
                Written::Written => {
                    recorder.put(&upload.key, size, sha256)?;
                    outcome.uploaded_bytes += size;
                    written += 1;
                    uploads_done += 1;
                    crate::fault::point(&format!("target-upload-{uploads_done}"));
                }
                Written::Exists => existing.push(Upload {
                    sha256: Some(sha256.to_string()),
                    ..upload.clone()
                }),
            }
            Ok(())
        })?;
        recorder.commit()?;
        drop(recorder);
        for upload in existing {
            let sha256 = match &upload.sha256 {
                Some(sha256) => sha256.clone(),
                None => hash_file(&upload.file)?,
            };
            check_same_bytes(store, &upload.key, &sha256)?;
            let size = sizes.get(&upload.key).copied().unwrap_or_default();
            record::put(connection, name, &upload.key, size, &sha256)?;
            outcome.unchanged += 1;
        }
        if written > 0 {
            outcome.uploaded.insert(class.name().to_string(), written);
            if class == Class::InRelease {
                new_generation = true;
            }
        }
        crate::fault::point(&format!("target-phase-{}", class.name()));
    }
    let (publications, _) = record::status(connection, name)?;
    let publications = publications + i64::from(new_generation);
    let local: HashSet<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    let now = now();
    let retention = plan::retention(
        recorded
            .iter()
            .map(|(key, known)| (key.as_str(), known.orphaned)),
        &local,
        now,
        publications,
        config.retention.generations,
        config.retention.grace_seconds()?,
    );
    record::batch(connection, || {
        for key in &retention.adopt {
            record::adopt(connection, name, key)?;
        }
        for key in &retention.orphan {
            record::orphan(connection, name, key, now, publications)?;
        }
        Ok(())
    })?;
    outcome.retained = retention.retained;
    let due = retention.due;
    crate::fault::point("target-before-deletions");
    store.delete_all(&due)?;
    record::batch(connection, || {
        for key in &due {
            record::forget(connection, name, key)?;
        }
        Ok(())
    })?;
    outcome.deleted = due.len();
    record::finish(connection, name, new_generation)?;
    Ok(outcome)
}

/// How many listed keys cost the store about one request: Garage 2.5 on this project's
/// 2-core machine spent ~0.3 ms of CPU on a HEAD and ~18 ms on a page of 1,000 keys.
const LISTED_KEYS_PER_REQUEST: usize = 16;

/// Keys a listing returns per request (S3's most).
const LIST_PAGE: usize = 1000;

/// Whether one listing of `pool/` costs the store less than a HEAD before each of
/// `creates` uploads, with `recorded` pool objects on the target: the listing makes a
/// request per page and reads every key.
fn listing_is_cheaper(creates: usize, recorded: usize) -> bool {
    creates > recorded / LIST_PAGE + 1 + recorded / LISTED_KEYS_PER_REQUEST
}

/// How create-only uploads are checked without conditional writes: a HEAD before each
/// one, or one listing of `pool/` before the phase when that costs the store less (a
/// cold publication of 20,000 packages: one request instead of 20,000). Uploads found
/// by the listing move to `existing`, to be compared like the ones a HEAD finds.
fn look_or_list(
    store: &Store,
    recorded: &HashMap<String, record::Recorded>,
    uploads: &mut Vec<Upload>,
    existing: &mut Vec<Upload>,
) -> Result<CreateOnly> {
    let creates = uploads.iter().filter(|upload| upload.create_only).count();
    let recorded_pool = recorded
        .keys()
        .filter(|key| key.starts_with("pool/"))
        .count();
    if !listing_is_cheaper(creates, recorded_pool) {
        return Ok(CreateOnly::Look);
    }
    let listed = store.list_under(Some("pool"))?;
    let (found, missing): (Vec<Upload>, Vec<Upload>) = std::mem::take(uploads)
        .into_iter()
        .partition(|upload| upload.create_only && listed.contains_key(&upload.key));
    *uploads = missing;
    existing.extend(found);
    Ok(CreateOnly::Listed)
}

/// Waits until the store's clock reads a later second than the `Last-Modified` of every
/// object `uploads` replace, so that a client asking with `If-Modified-Since` gets the
/// new ones (see [`crate::repo::publish::later_second`]). `known` is the store's clock
/// as read before in this publication; the clock as last read is returned.
fn later_than_replaced(
    stores: Stores<'_>,
    uploads: &[Upload],
    known: Option<i64>,
    reporter: &Reporter,
) -> Result<Option<i64>> {
    let store = stores.published;
    let keys: Vec<String> = uploads.iter().map(|upload| upload.key.clone()).collect();
    let Some(replaced) = store.newest_modified(&keys)? else {
        return Ok(known);
    };
    if known.is_some_and(|clock| clock > replaced) {
        return Ok(known);
    }
    let later =
        later_second::wait_for_later_second(replaced, || stores.private.clock(lock::CLOCK_KEY))?;
    if let later_second::Later::ClockBehind(clock) = later {
        reporter.warn(format!(
            "publish target {}: objects there are dated {} s ahead of the store's clock; \
             clients that fetched them may miss this publication until the next one",
            store.description,
            replaced - clock
        ));
    }
    Ok(Some(later.second()))
}

/// A create-only object found on the store: the same bytes (by the SHA256 its metadata
/// records, or by reading it when another tool wrote it) or an error naming the key.
fn check_same_bytes(store: &Store, key: &str, sha256: &str) -> Result<()> {
    let recorded = match store.head(key)? {
        Some((_, Some(found))) => found,
        Some((_, None)) => match store.get(key)? {
            Some(found) => hex::encode(Sha256::digest(&found.bytes)),
            None => bail!(
                "publish target {}: {} vanished while it was compared",
                store.description,
                key
            ),
        },
        None => bail!(
            "publish target {}: {} was reported as existing but is not there",
            store.description,
            key
        ),
    };
    if recorded != sha256 {
        bail!(
            "publish target {}: pool object {} exists with other bytes (SHA256 {recorded}, \
             ours {}); a pool object is never overwritten: remove it from the store by hand \
             if it is really wrong",
            store.description,
            key,
            sha256
        );
    }
    Ok(())
}

/// The SHA256 of a file, hex.
fn hash_file(path: &Path) -> Result<String> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("{}: cannot be read", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What `repo verify --target` found.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Verification {
    /// The target's name.
    pub(crate) target: String,
    /// Objects recorded.
    pub(crate) recorded: usize,
    /// Objects listed on the store under the prefix (the lock and probe keys aside).
    pub(crate) listed: usize,
    /// Each disagreement, as a sentence naming the key.
    pub(crate) problems: Vec<String>,
}

/// Checks the record of `target` against the store's listing: every recorded object
/// listed with its size, nothing listed that is not recorded, and the local tree's
/// files all recorded (else a publication is owed).
pub(crate) fn verify(
    root: &Path,
    config: &RepoConfig,
    connection: &Connection,
    target: &TargetConfig,
) -> Result<Verification> {
    let store = Store::open(target)?;
    let listed = store.list()?;
    let recorded = record::objects(connection, &target.name)?;
    let mut problems = Vec::new();
    // The private area of a target at the bucket's root lies inside its listing, and
    // older versions kept the same objects under the prefix's `.debstage/`.
    let private = format!("{}/", config::PRIVATE_AREA);
    let listed: BTreeMap<String, store::Listed> = listed
        .into_iter()
        .filter(|(key, _)| !key.starts_with(&private))
        .collect();
    let recorded_sorted: BTreeMap<&String, &record::Recorded> = recorded.iter().collect();
    for (key, known) in &recorded_sorted {
        match listed.get(*key) {
            None => problems.push(format!("{key}: recorded but missing on the store")),
            Some(found) if found.size != known.size => problems.push(format!(
                "{key}: {} bytes on the store, {} recorded",
                found.size, known.size
            )),
            Some(_) => {}
        }
    }
    for key in listed.keys() {
        if !recorded.contains_key(key) {
            problems.push(format!("{key}: on the store but not recorded"));
        }
    }
    for object in plan::local_objects(root, &config.origin)? {
        if !recorded.contains_key(&object.key) {
            problems.push(format!(
                "{}: in the local tree but not on the target (run `debstage repo publish --target {}`)",
                object.key, target.name
            ));
        }
    }
    let (_, complete) = record::status(connection, &target.name)?;
    if !complete {
        problems.push(format!(
            "the last publication to {} did not complete (run `debstage repo publish --target {}`)",
            target.name, target.name
        ));
    }
    Ok(Verification {
        target: target.name.clone(),
        recorded: recorded.len(),
        listed: listed.len(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_listed_when_that_costs_less_than_a_head_per_upload() {
        // A cold copy lists (one request for an empty pool), a promote uploads no pool
        // object, an add of one package into 20,000 looks at its own keys only.
        assert!(listing_is_cheaper(2, 0));
        assert!(listing_is_cheaper(20_003, 0));
        assert!(!listing_is_cheaper(1, 0));
        assert!(!listing_is_cheaper(0, 20_000));
        assert!(!listing_is_cheaper(3, 20_000));
        // 20,000 recorded: 21 pages and 1,250 requests' worth of keys.
        assert!(!listing_is_cheaper(1_271, 20_000));
        assert!(listing_is_cheaper(1_272, 20_000));
    }
}
