//! What every repository command starts from: the opened repository, and for writers a
//! session that holds the lock and the state database; who and when, for the history.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use rusqlite::Connection;

use crate::repo::config::RepoConfig;
use crate::repo::lock::RepoLock;
use crate::repo::{pool, publish, state, suites};
use crate::report::Reporter;

/// An opened repository: its root and configuration.
#[derive(Debug, Clone)]
pub(crate) struct Repository {
    /// The repository directory.
    pub(crate) root: PathBuf,
    /// Its configuration.
    pub(crate) config: RepoConfig,
}

impl Repository {
    /// Opens the repository at `root` (reads and checks its configuration).
    pub(crate) fn open(root: &Path) -> Result<Repository> {
        Ok(Repository {
            root: root.to_path_buf(),
            config: RepoConfig::load(root)?,
        })
    }
}

/// A writer's session: the lock held, the database open, crashed work recovered and the
/// publication debt paid.
pub(crate) struct Session<'a> {
    /// The repository.
    pub(crate) repository: Repository,
    /// The state database.
    pub(crate) connection: Connection,
    /// How to talk to the user.
    pub(crate) reporter: &'a Reporter,
    /// The state shared on a publish target (`share_state`), whose lock the session holds.
    shared: Option<crate::repo::targets::shared::SharedState>,
    _lock: RepoLock,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            // A lock left behind runs out with its lease.
            if let Err(error) = shared.release() {
                self.reporter.warn(format!("{error:#}"));
            }
        }
    }
}

impl<'a> Session<'a> {
    /// Takes the lock on the repository at `root` and opens its state.
    pub(crate) fn begin(
        root: &Path,
        lock_timeout: Option<Duration>,
        reporter: &'a Reporter,
    ) -> Result<Session<'a>> {
        let repository = Repository::open(root)?;
        let lock = RepoLock::acquire(root, lock_timeout, reporter)?;
        // A shared state is taken from the store (under its lock) before it is opened.
        let shared = crate::repo::targets::shared::begin(root, &repository.config, reporter)?;
        let connection = state::open(root)?;
        if let Some(shared) = &shared {
            crate::repo::targets::shared::check_signing_keys(
                root,
                &repository.config,
                &connection,
            )?;
            let fetched = shared.fetch_missing_pool_files(root, &repository.config, &connection)?;
            if fetched > 0 {
                reporter.status(format!(
                    "fetched {fetched} pool file(s) from the shared target"
                ));
            }
            if shared.replaced {
                for stage in &repository.config.stages {
                    state::owe_publication(&connection, stage)?;
                }
            }
        }
        let recovered = pool::recover(root, &connection)?;
        if recovered > 0 {
            reporter.status(format!(
                "finished {recovered} pool file(s) left in {} by an interrupted command",
                pool::INCOMING
            ));
        }
        let session = Session {
            repository,
            connection,
            reporter,
            shared,
            _lock: lock,
        };
        // A command that died after its commit left suites unpublished (or half
        // published): they are published before anything else changes.
        let owed = session.publish_pending_locally()?;
        // A target behind (an interrupted copy) is caught up too, but a store that
        // cannot be reached must not stop local work: its copy stays owed.
        if let Err(error) = session.publish_targets(!owed.is_empty()) {
            reporter.warn(format!("{error:#}"));
        }
        // What that publication recorded (generations, the target's objects) is shared
        // now, even if the command then changes nothing.
        if let Some(shared) = &session.shared {
            if shared.replaced || !owed.is_empty() {
                shared.write_back(&session.repository.root, &session.connection)?;
            }
        }
        if !owed.is_empty() {
            reporter.status(format!(
                "published the suite(s) {} that an interrupted command left pending",
                owed.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(session)
    }

    /// Publishes every suite whose publication is pending (the transactions that
    /// changed them recorded it with [`state::owe_publication`]), then copies the tree
    /// to the automatic publish targets; returns the suites.
    pub(crate) fn publish_pending(&self) -> Result<BTreeSet<String>> {
        let owed = self.publish_pending_locally()?;
        self.publish_targets(!owed.is_empty())?;
        if let Some(shared) = &self.shared {
            shared.write_back(&self.repository.root, &self.connection)?;
        }
        Ok(owed)
    }

    /// Records the configuration's signing keys as the shared state's (after a change of
    /// the keys); nothing when no target shares its state.
    pub(crate) fn record_signing_keys(&self) -> Result<()> {
        if self.shared.is_none() {
            return Ok(());
        }
        let fingerprints = crate::repo::sign::keys::signing_fingerprints(
            &self.repository.root,
            &self.repository.config.signing,
        )?;
        state::record_signing_keys(&self.connection, &fingerprints)
    }

    /// Copies the published tree to every automatic target that is behind (`changed`:
    /// the local tree was just published).
    fn publish_targets(&self, changed: bool) -> Result<()> {
        crate::repo::targets::publish_automatic(
            &self.repository.root,
            &self.repository.config,
            &self.connection,
            changed,
            self.reporter,
        )?;
        Ok(())
    }

    /// Publishes the pending suites into the local tree only, after listing the keyring
    /// package in any suite that lacks it (a new distribution's, or every suite of a
    /// repository made before the keyring was listed from `repo init` on).
    fn publish_pending_locally(&self) -> Result<BTreeSet<String>> {
        if let Some(refreshed) = crate::repo::keyring::ensure(
            &self.repository.root,
            &self.repository.config,
            &self.connection,
        )? {
            if !refreshed.newly_listed.is_empty() {
                self.reporter.status(format!(
                    "listed the keyring package {} {} in {} (every suite carries it: servers \
                     that install it follow key changes through apt)",
                    refreshed.package,
                    refreshed.version,
                    refreshed.newly_listed.join(", ")
                ));
            }
        }
        let pending: BTreeSet<String> = state::pending_publications(&self.connection)?
            .into_iter()
            .collect();
        let config = &self.repository.config;
        // A suite no longer among the stages (of host builds or of a distribution) has
        // nothing to publish.
        let (owed, gone): (BTreeSet<String>, BTreeSet<String>) = pending
            .into_iter()
            .partition(|suite| suites::parse(config, suite).is_some());
        for gone in &gone {
            state::paid_publication(&self.connection, gone)?;
        }
        publish::publish_suites(
            &self.repository.root,
            &self.repository.config,
            &self.connection,
            &owed,
            self.reporter,
        )?;
        Ok(owed)
    }
}

/// Who runs the command, for the history: `$SUDO_USER`, else `$USER`, else the uid.
pub(crate) fn who() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| format!("uid {}", unsafe_free_uid()))
}

fn unsafe_free_uid() -> u32 {
    fs::metadata("/proc/self")
        .map(|metadata| std::os::unix::fs::MetadataExt::uid(&metadata))
        .unwrap_or(u32::MAX)
}
