//! A state database shared on the store (`share_state = true` on one target): writers on
//! machines without a shared disk (CI runners) work on one repository.
//!
//! A writer's session takes the target's lock object first and holds it to the end; it
//! reads `.debstage/state.db` from the store, and when that is not the copy it wrote last
//! (by ETag), replaces its own database with it, fetches the pool files it lacks from the
//! store (checked against the SHA256 the state records) and publishes every suite again.
//! After its publication it writes the database back with `If-Match` on the ETag it read
//! (`If-None-Match: *` for the first writer), so a copy written by another writer in
//! between is never overwritten.

use std::cell::RefCell;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::repo::config::RepoConfig;
use crate::repo::state;
use crate::repo::targets::config::TargetConfig;
use crate::repo::targets::lock::{self, StoreLock};
use crate::repo::targets::store::{Conditional, Store};
use crate::report::Reporter;

/// The key of the shared database under the target's prefix.
pub(crate) const STATE_KEY: &str = ".debstage/state.db";

/// Where a writer keeps the ETag of the shared copy its database matches (never served).
const ETAG_FILE: &str = "shared-state.etag";

/// The shared state of one session: the store, its lock, and the ETag of the copy read.
pub(crate) struct SharedState {
    store: Store,
    lock: StoreLock,
    e_tag: RefCell<Option<String>>,
    /// Whether the local database was replaced by the store's copy.
    pub(crate) replaced: bool,
}

/// The target whose `share_state` is set, if any (at most one: checked with the config).
fn shared_target(config: &RepoConfig) -> Option<&TargetConfig> {
    config
        .publish
        .targets
        .iter()
        .find(|target| target.share_state)
}

/// Takes the lock of the shared target and brings the local database up to the store's
/// copy; `None` when no target shares its state. Called before the database is opened.
pub(crate) fn begin(
    root: &Path,
    config: &RepoConfig,
    reporter: &Reporter,
) -> Result<Option<SharedState>> {
    let Some(target) = shared_target(config) else {
        return Ok(None);
    };
    let store = Store::open(target)?;
    if !lock::supports_conditional_writes(&store)? {
        bail!(
            "publish target {}: share_state needs a store with conditional writes \
             (If-None-Match, If-Match), which this one ignores",
            store.description
        );
    }
    let lock = StoreLock::acquire(&store, target.lease_seconds()?, None, reporter)?;
    let known = fs::read_to_string(root.join(ETAG_FILE))
        .ok()
        .map(|text| text.trim().to_string());
    let mut replaced = false;
    let e_tag = match store.get(STATE_KEY)? {
        None => None,
        Some(shared) => {
            if shared.e_tag.is_some() && shared.e_tag == known {
                shared.e_tag
            } else {
                replace_database(root, &shared.bytes)?;
                replaced = true;
                reporter.status(format!(
                    "took the repository state from publish target {}",
                    target.name
                ));
                shared.e_tag
            }
        }
    };
    Ok(Some(SharedState {
        store,
        lock,
        e_tag: RefCell::new(e_tag),
        replaced,
    }))
}

/// Puts `bytes` in place of the local database (its WAL files removed first: they
/// belong to the copy being replaced).
fn replace_database(root: &Path, bytes: &[u8]) -> Result<()> {
    let path = root.join(state::FILE_NAME);
    let temporary = root.join(format!("{}.shared", state::FILE_NAME));
    fs::write(&temporary, bytes)
        .with_context(|| format!("{}: cannot be written", temporary.display()))?;
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(root.join(format!("{}{suffix}", state::FILE_NAME)));
    }
    fs::rename(&temporary, &path).with_context(|| format!("{}: cannot be replaced", path.display()))
}

impl SharedState {
    /// Fetches from the store the pool files the state names and the local pool lacks.
    pub(crate) fn fetch_missing_pool_files(
        &self,
        root: &Path,
        connection: &Connection,
    ) -> Result<usize> {
        let mut fetched = 0;
        for package in state::all_packages(connection)? {
            let path = root.join(&package.filename);
            if path.exists() {
                continue;
            }
            let Some(found) = self.store.get(&package.filename)? else {
                bail!(
                    "{}: named by the shared state but neither here nor on publish target {}",
                    package.filename,
                    self.store.description
                );
            };
            let digest = hex::encode(Sha256::digest(&found.bytes));
            if digest != package.sha256 {
                bail!(
                    "{} on publish target {}: SHA256 {digest}, the state records {}",
                    package.filename,
                    self.store.description,
                    package.sha256
                );
            }
            let directory = path.parent().unwrap_or(root);
            fs::create_dir_all(directory)
                .with_context(|| format!("{}: cannot be created", directory.display()))?;
            let temporary = directory.join(".debstage-fetched");
            fs::write(&temporary, &found.bytes)
                .and_then(|()| fs::rename(&temporary, &path))
                .with_context(|| format!("{}: cannot be written", path.display()))?;
            fetched += 1;
        }
        Ok(fetched)
    }

    /// Writes the local database back to the store, if it changed since it was read.
    pub(crate) fn write_back(&self, root: &Path, connection: &Connection) -> Result<()> {
        connection
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .context("the state database cannot be checkpointed")?;
        let path = root.join(state::FILE_NAME);
        let bytes =
            fs::read(&path).with_context(|| format!("{}: cannot be read", path.display()))?;
        let previous = self.e_tag.borrow().clone();
        let written = match previous {
            None => self.store.create(STATE_KEY, bytes.clone()),
            Some(e_tag) => self.store.replace(STATE_KEY, bytes.clone(), Some(e_tag)),
        };
        let e_tag = match written {
            Ok(e_tag) => e_tag,
            // A write whose answer was lost, retried by the client: the store holds our bytes.
            Err(Conditional::Lost)
                if self
                    .store
                    .get(STATE_KEY)?
                    .is_some_and(|found| found.bytes == bytes) =>
            {
                self.store.get(STATE_KEY)?.and_then(|found| found.e_tag)
            }
            Err(Conditional::Lost) => bail!(
                "publish target {}: the shared state changed on the store while this writer \
                 held the lock (a lease ran out?); this writer's change is published locally \
                 only",
                self.store.description
            ),
            Err(Conditional::Failed(error)) => return Err(error),
        };
        if let Some(e_tag) = &e_tag {
            fs::write(root.join(ETAG_FILE), format!("{e_tag}\n")).with_context(|| {
                format!("{}: cannot be written", root.join(ETAG_FILE).display())
            })?;
        }
        *self.e_tag.borrow_mut() = e_tag;
        Ok(())
    }

    /// Releases the lock (at the session's end).
    pub(crate) fn release(&self) -> Result<()> {
        self.lock.release(&self.store)
    }
}
