//! A state database shared on the store (`share_state = true` on one target): writers on
//! machines without a shared disk (CI runners) work on one repository.
//!
//! The state lives in the target's private area (`.debstage/<prefix>/state.db` at the
//! bucket's root), outside the published tree: it holds the history (who, when) and
//! every hash, which readers of the repository have no business with. A session that
//! finds it in the old place, `<prefix>/.debstage/state.db` inside the published tree,
//! moves it (see [`move_from_legacy_area`]).
//!
//! The shared object is the SQLite database itself: what a later version needs to share
//! (a fingerprint of the signing keys, say) goes into its tables, which the state's
//! schema versions and upgrades, so old and new writers never disagree on the format.
//!
//! A writer's session takes the target's lock object first and holds it to the end; it
//! reads `state.db` from the store, and when that is not the copy it wrote last
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
use crate::repo::sign::keys::signing_fingerprints;
use crate::repo::state;
use crate::repo::targets::config::TargetConfig;
use crate::repo::targets::lock::{self, StoreLock};
use crate::repo::targets::store::{Area, Conditional, Store, Versioned};
use crate::report::Reporter;

/// The key of the shared database in the target's private area (and in the legacy one).
pub(crate) const STATE_KEY: &str = "state.db";

/// Where a writer keeps the ETag of the shared copy its database matches (never served).
const ETAG_FILE: &str = "shared-state.etag";

/// The shared state of one session: the store, its lock, and the ETag of the copy read.
pub(crate) struct SharedState {
    /// The target's private area, where the state and the lock live.
    store: Store,
    /// The published tree, where the pool files are.
    published: Store,
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
    let store = Store::open_area(target, Area::Private)?;
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
    let mut found = store.get(STATE_KEY)?;
    if found.is_none() {
        found = move_from_legacy_area(target, &store, reporter)?;
    }
    let e_tag = match found {
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
        published: Store::open(target)?,
        lock,
        e_tag: RefCell::new(e_tag),
        replaced,
    }))
}

/// Refuses a writer whose signing keys differ from the ones the shared state records
/// (servers trust one set; a writer that re-signs every suite with another key makes them
/// all fail with `NO_PUBKEY`); records the writer's own keys when none are recorded.
pub(crate) fn check_signing_keys(
    root: &Path,
    config: &RepoConfig,
    connection: &Connection,
) -> Result<()> {
    let Some(target) = shared_target(config) else {
        return Ok(());
    };
    let own = signing_fingerprints(root, &config.signing)?;
    let recorded = state::signing_keys(connection)?;
    if recorded.is_empty() {
        return state::record_signing_keys(connection, &own);
    }
    if recorded != own {
        bail!(
            "publish target {}: the shared state records the signing key(s) {}, but this \
             repository ({}) signs with {}; writers that share a target's state must sign \
             with the same keys, or every server fails with NO_PUBKEY. On the writer that \
             has the recorded keys run `debstage repo key export --secret > keys.asc`, keep \
             the file in this writer's secret store, and create this repository again with \
             `debstage repo init --key keys.asc`",
            target.name,
            recorded.join(", "),
            root.join(crate::repo::config::FILE_NAME).display(),
            own.join(", ")
        );
    }
    Ok(())
}

/// Moves a shared state kept inside the published tree by an older version
/// (`<prefix>/.debstage/state.db`) to the private area, and returns it as read there;
/// `None` when there is none. Called with the private area's lock held; the old place's
/// lock is taken as well, so that a writer of the older version is not in the middle of
/// a session. The old copy is deleted only once the new one is written.
fn move_from_legacy_area(
    target: &TargetConfig,
    private: &Store,
    reporter: &Reporter,
) -> Result<Option<Versioned>> {
    let url = target.parsed_url()?;
    if url.legacy_area() == url.private_area() {
        return Ok(None);
    }
    let legacy = Store::open_area(target, Area::Legacy)?;
    let legacy_lock = StoreLock::acquire(&legacy, target.lease_seconds()?, None, reporter)?;
    let moved = (|| {
        let Some(old) = legacy.get(STATE_KEY)? else {
            return Ok(None);
        };
        match private.create(STATE_KEY, old.bytes.clone()) {
            Ok(_) | Err(Conditional::Lost) => {}
            Err(Conditional::Failed(error)) => return Err(error),
        }
        let Some(new) = private.get(STATE_KEY)? else {
            bail!(
                "publish target {}: {STATE_KEY} was written but cannot be read back",
                private.description
            );
        };
        // The clock object of older versions goes too: nothing of debstage's own stays
        // in the published tree.
        legacy.delete_all(&[STATE_KEY.to_string(), lock::CLOCK_KEY.to_string()])?;
        reporter.status(format!(
            "moved the shared state of publish target {} out of the published tree: from \
             {} to {}",
            target.name,
            url.legacy_area().key(STATE_KEY),
            url.private_area().key(STATE_KEY)
        ));
        Ok(Some(new))
    })();
    if let Err(error) = legacy_lock.release(&legacy) {
        reporter.warn(format!("{error:#}"));
    }
    moved
}

/// Puts `bytes` in place of the local database (its WAL files removed first: they
/// belong to the copy being replaced).
fn replace_database(root: &Path, bytes: &[u8]) -> Result<()> {
    let path = root.join(state::FILE_NAME);
    let temporary = root.join(format!("{}.shared", state::FILE_NAME));
    fs_err::write(&temporary, bytes)?;
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(root.join(format!("{}{suffix}", state::FILE_NAME)));
    }
    fs::rename(&temporary, &path).with_context(|| format!("{}: cannot be replaced", path.display()))
}

impl SharedState {
    /// Fetches from the store the pool files the state names and the local pool lacks
    /// (or holds with other bytes: the keyring package of its own `repo init`).
    pub(crate) fn fetch_missing_pool_files(
        &self,
        root: &Path,
        config: &RepoConfig,
        connection: &Connection,
    ) -> Result<usize> {
        let mut fetched = 0;
        // Every writer's `repo init` wrote a keyring package of its own keys as version 1:
        // where that differs from the shared state's, the shared bytes replace it (a
        // small file, so it is hashed; other pool files are taken as they are).
        let keyring = crate::repo::keyring::package_name(config)?;
        for package in state::all_packages(connection)? {
            let path = root.join(&package.filename);
            let stale_keyring = package.identity.package == keyring
                && path.exists()
                && fs::read(&path)
                    .map(|bytes| hex::encode(Sha256::digest(&bytes)) != package.digests.sha256)
                    .unwrap_or(true);
            if path.exists() && !stale_keyring {
                continue;
            }
            let Some(found) = self.published.get(&package.filename)? else {
                bail!(
                    "{}: named by the shared state but neither here nor on publish target {}",
                    package.filename,
                    self.published.description
                );
            };
            let digest = hex::encode(Sha256::digest(&found.bytes));
            if digest != package.digests.sha256 {
                bail!(
                    "{} on publish target {}: SHA256 {digest}, the state records {}",
                    package.filename,
                    self.published.description,
                    package.digests.sha256
                );
            }
            let directory = path.parent().unwrap_or(root);
            fs_err::create_dir_all(directory)?;
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
        let bytes = fs_err::read(&path)?;
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
