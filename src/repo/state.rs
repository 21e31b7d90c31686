//! The state database (SQLite): packages, suite contents, promotion history.
//!
//! Tables:
//! - `packages`: every `.deb` in the pool, with its hashes and control paragraph; one row
//!   per (Package, Version, Architecture).
//! - `listed`: which package each suite lists.
//! - `current`: the version each suite of an application points to (its stage package);
//!   a suite is a stage of host builds (`production`) or of a distribution's builds
//!   (`bookworm-production`).
//! - `history`: every change of a `current` row, and removals (who, when, from, to, and
//!   the distribution concerned).
//! - `pending`: the suites whose published indexes lag behind the state (the publication
//!   debt): set in the transaction that changes a suite, cleared once it is published.
//! - `generations`: the Release text of each publication of a suite that may still be
//!   served (clients hold a cached `InRelease`); by-hash files and pool files they name stay.
//!
//! Every command changes the state in one transaction; the published tree is derived
//! from it. The database runs in WAL mode so that readers are never blocked by a writer.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::debian::digests::Digests;
use crate::naming::package_id::PackageId;

pub(crate) use crate::naming::Role;

/// The name of the database file at the repository's root.
pub(crate) const FILE_NAME: &str = "state.db";

/// The schema version this code reads and writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 12;

const SCHEMA: &str = "
CREATE TABLE packages (
    id INTEGER PRIMARY KEY,
    app TEXT NOT NULL,
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    upstream TEXT NOT NULL,
    architecture TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('payload', 'stage', 'plain', 'dbgsym', 'layer')),
    stage TEXT,
    filename TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    sha1 TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    control TEXT NOT NULL,
    added INTEGER NOT NULL,
    UNIQUE (package, version, architecture)
);
CREATE INDEX packages_by_app ON packages (app, version);
CREATE INDEX packages_by_sha256 ON packages (sha256);
CREATE TABLE listed (
    suite TEXT NOT NULL,
    package_id INTEGER NOT NULL REFERENCES packages (id),
    PRIMARY KEY (suite, package_id)
) WITHOUT ROWID;
CREATE INDEX listed_by_package ON listed (package_id);
CREATE TABLE current (
    app TEXT NOT NULL,
    stage TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (app, stage)
) WITHOUT ROWID;
CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    app TEXT NOT NULL,
    stage TEXT,
    from_version TEXT,
    to_version TEXT
);
CREATE INDEX history_by_app ON history (app, stage);
";

/// What version 2 adds to version 1: the publication debt and the served generations.
const SCHEMA_2: &str = "
CREATE TABLE pending (
    suite TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE generations (
    id INTEGER PRIMARY KEY,
    suite TEXT NOT NULL,
    published INTEGER NOT NULL,
    release TEXT NOT NULL
);
CREATE INDEX generations_by_suite ON generations (suite, id);
";

/// What version 3 adds to version 2: the distribution dimension. A stage's pointer is
/// kept per suite (a host build's suite has the stage's name, so the rows of version 2
/// keep their meaning), and a history line names its distribution (none: host builds).
const SCHEMA_3: &str = "
ALTER TABLE current RENAME COLUMN stage TO suite;
ALTER TABLE history ADD COLUMN distribution TEXT;
";

/// What version 5 adds to version 4: what each publish target holds (read and written by
/// `crate::repo::targets::record`).
const SCHEMA_5: &str = "
CREATE TABLE target_objects (
    target TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    orphaned_at INTEGER,
    orphaned_publication INTEGER,
    PRIMARY KEY (target, key)
) WITHOUT ROWID;
CREATE TABLE targets (
    target TEXT PRIMARY KEY,
    publications INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
";

/// What version 6 adds to version 5: the bytes of removed packages. A name, version and
/// architecture removed (`repo remove`, `repo gc`) stays reserved for the bytes it had,
/// so it cannot come back as something else, until `repo gc --forget`.
const SCHEMA_6: &str = "
CREATE TABLE removed (
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    architecture TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    filename TEXT NOT NULL,
    removed INTEGER NOT NULL,
    PRIMARY KEY (package, version, architecture)
) WITHOUT ROWID;
";

/// What version 8 adds to version 7: where each release came from, as its build manifest
/// said (`repo add --manifest`), keyed by application and Debian version (whose suffix
/// names the distribution).
const SCHEMA_8: &str = "
CREATE TABLE provenance (
    app TEXT NOT NULL,
    version TEXT NOT NULL,
    git_commit TEXT,
    git_dirty INTEGER,
    source_date INTEGER NOT NULL,
    PRIMARY KEY (app, version)
) WITHOUT ROWID;
";

/// What version 9 adds to version 8: the fingerprints of the keys that sign the
/// publications, so that writers sharing the state on a publish target (`share_state`)
/// find out when they sign with different keys.
const SCHEMA_9: &str = "
CREATE TABLE signing_keys (
    fingerprint TEXT PRIMARY KEY
) WITHOUT ROWID;
";

/// What version 10 adds to version 9: the rest of a
/// release's provenance, its branch, build host, debstage version and target
/// distribution (NULL for releases added before, and for builds that had none).
const SCHEMA_10: &str = "
ALTER TABLE provenance ADD COLUMN git_branch TEXT;
ALTER TABLE provenance ADD COLUMN build_host TEXT;
ALTER TABLE provenance ADD COLUMN debstage_version TEXT;
ALTER TABLE provenance ADD COLUMN target TEXT;
";

/// What version 11 adds to version 10: the version of the keyring package
/// (`<origin>-archive-keyring`), raised at every change of the keys. It lives in the state,
/// not the configuration, so that writers sharing a target's state (`share_state`) agree
/// on it. No row: a repository from before (the next session records it).
const SCHEMA_11: &str = "
CREATE TABLE keyring (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL CHECK (version >= 1)
);
";

/// What version 12 adds to version 11: a token per application, replaced by a new
/// random one (triggers, in the transaction of the change) whenever a row of that
/// application changes in a table the dashboard shows. A publication re-renders only the
/// applications whose token differs from the one its dashboard cache was made from
/// (`crate::repo::publish::dashboard`); random, not a counter, so that a state restored
/// from a copy never repeats a token with other contents.
fn schema_12() -> String {
    let mut sql = String::from(
        "CREATE TABLE IF NOT EXISTS app_changes (app TEXT PRIMARY KEY, token INTEGER NOT NULL) WITHOUT ROWID;\n",
    );
    for table in ["packages", "current", "history", "provenance"] {
        for (event, rows) in [
            ("INSERT", &["NEW"][..]),
            ("DELETE", &["OLD"][..]),
            ("UPDATE", &["OLD", "NEW"][..]),
        ] {
            let marks: String = rows
                .iter()
                .map(|row| {
                    // No conflict clause: a trigger's would give way to the outer
                    // statement's (`INSERT ... ON CONFLICT DO NOTHING`, say).
                    format!(
                        "INSERT INTO app_changes (app, token) SELECT {row}.app, 0 WHERE NOT \
                         EXISTS (SELECT 1 FROM app_changes WHERE app = {row}.app); \
                         UPDATE app_changes SET token = random() WHERE app = {row}.app; "
                    )
                })
                .collect();
            sql.push_str(&format!(
                "CREATE TRIGGER IF NOT EXISTS {table}_{} AFTER {event} ON {table} BEGIN {marks}END;\n",
                event.to_lowercase()
            ));
        }
    }
    sql
}

/// The role stored in a row's `role` column.
fn role_from_column(text: &str) -> Result<Role, rusqlite::Error> {
    match text {
        "payload" => Ok(Role::Payload),
        "stage" => Ok(Role::Stage),
        "plain" => Ok(Role::Plain),
        "dbgsym" => Ok(Role::Dbgsym),
        "layer" => Ok(Role::Layer),
        other => Err(rusqlite::Error::InvalidColumnType(
            6,
            format!("role {other:?}"),
            rusqlite::types::Type::Text,
        )),
    }
}

/// One package of the pool, as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PackageRecord {
    /// Row id.
    #[serde(skip)]
    pub(crate) id: i64,
    /// The application it belongs to.
    pub(crate) app: String,
    /// Its Package, Version and Architecture, side by side with the other fields in JSON.
    #[serde(flatten)]
    pub(crate) identity: PackageId,
    /// The upstream part of the version (without epoch and revision).
    pub(crate) upstream: String,
    /// Payload, stage package or plain package.
    pub(crate) role: Role,
    /// The stage a stage package switches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stage: Option<String>,
    /// The pool path relative to the repository root.
    pub(crate) filename: String,
    /// Its size and digests (JSON shows `size` and `sha256`).
    #[serde(flatten)]
    pub(crate) digests: Digests,
    /// The control paragraph.
    #[serde(skip)]
    pub(crate) control: String,
}

/// What a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    /// `repo add` listed a version in a stage.
    Add,
    /// `repo promote` moved a version to the next stage.
    Promote,
    /// `repo add --skip` put a version into a stage after the first.
    #[serde(rename = "add-skip")]
    AddSkipping,
    /// `repo promote --skip` moved a version past a stage it was not in.
    #[serde(rename = "promote-skip")]
    PromoteSkipping,
    /// `repo rollback` moved a stage back.
    Rollback,
    /// `repo remove` removed a version.
    Remove,
    /// `repo gc` deleted what retention no longer keeps.
    Gc,
}

impl Action {
    /// The name stored in the database and shown in `repo history`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::AddSkipping => "add-skip",
            Action::Promote => "promote",
            Action::PromoteSkipping => "promote-skip",
            Action::Rollback => "rollback",
            Action::Remove => "remove",
            Action::Gc => "gc",
        }
    }

    fn from_column(text: &str) -> rusqlite::Result<Action> {
        [
            Action::Add,
            Action::AddSkipping,
            Action::Promote,
            Action::PromoteSkipping,
            Action::Rollback,
            Action::Remove,
            Action::Gc,
        ]
        .into_iter()
        .find(|action| action.as_str() == text)
        .ok_or_else(|| {
            rusqlite::Error::InvalidColumnType(
                2,
                format!("action {text:?}"),
                rusqlite::types::Type::Text,
            )
        })
    }
}

/// One line of the history.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct HistoryEntry {
    /// When (Unix seconds).
    pub(crate) time: i64,
    /// Who ($SUDO_USER, else $USER).
    pub(crate) who: String,
    /// What was done.
    pub(crate) action: Action,
    /// The application.
    pub(crate) app: String,
    /// The stage concerned, if one.
    pub(crate) stage: Option<String>,
    /// The distribution whose suite changed (its codename); `None` for host builds.
    pub(crate) distribution: Option<String>,
    /// The version the stage pointed to before.
    pub(crate) from: Option<String>,
    /// The version it points to after.
    pub(crate) to: Option<String>,
}

const PACKAGE_COLUMNS: &str = "id, app, package, version, upstream, architecture, role, stage, \
     filename, size, md5, sha1, sha256, control, added";

fn package_from_row(row: &Row<'_>) -> rusqlite::Result<PackageRecord> {
    let entry = pool_entry_from_row(row)?;
    Ok(PackageRecord {
        id: entry.id,
        app: entry.app,
        identity: entry.identity,
        upstream: entry.upstream,
        role: entry.role,
        stage: row.get(7)?,
        filename: row.get(8)?,
        digests: Digests {
            size: row.get::<_, i64>(9)?.max(0) as u64,
            md5: row.get(10)?,
            sha1: row.get(11)?,
            sha256: row.get(12)?,
        },
        control: row.get(13)?,
    })
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(std::time::Duration::from_secs(30))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Creates the database of a new repository.
pub(crate) fn create(root: &Path) -> Result<Connection> {
    let path = root.join(FILE_NAME);
    if path.exists() {
        bail!("{}: already exists", path.display());
    }
    let connection = Connection::open(&path)
        .with_context(|| format!("{}: cannot be created", path.display()))?;
    configure(&connection).with_context(|| format!("{}: cannot be set up", path.display()))?;
    connection
        .execute_batch(SCHEMA)
        .and_then(|()| connection.execute_batch(SCHEMA_2))
        .and_then(|()| connection.execute_batch(SCHEMA_3))
        .and_then(|()| connection.execute_batch(SCHEMA_5))
        .and_then(|()| connection.execute_batch(SCHEMA_6))
        .and_then(|()| connection.execute_batch(SCHEMA_8))
        .and_then(|()| connection.execute_batch(SCHEMA_9))
        .and_then(|()| connection.execute_batch(SCHEMA_10))
        .and_then(|()| connection.execute_batch(SCHEMA_11))
        .and_then(|()| connection.execute_batch(&schema_12()))
        .and_then(|()| connection.pragma_update(None, "user_version", SCHEMA_VERSION))
        .with_context(|| format!("{}: cannot be set up", path.display()))?;
    Ok(connection)
}

/// Opens the database of an existing repository.
pub(crate) fn open(root: &Path) -> Result<Connection> {
    let path = root.join(FILE_NAME);
    if !path.is_file() {
        bail!(
            "{}: no state database; is {} a repository? (create one with `debstage repo init`)",
            path.display(),
            root.display()
        );
    }
    let connection =
        Connection::open(&path).with_context(|| format!("{}: cannot be opened", path.display()))?;
    configure(&connection).with_context(|| format!("{}: cannot be opened", path.display()))?;
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .with_context(|| format!("{}: cannot be read", path.display()))?;
    if version == 1 || version == 2 {
        // Version 1 had no publication debt: every suite is published once more.
        let to_2 = if version == 1 {
            format!("{SCHEMA_2} INSERT INTO pending (suite) SELECT DISTINCT suite FROM listed;")
        } else {
            String::new()
        };
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {to_2} {SCHEMA_3} PRAGMA user_version = 3; COMMIT;"
            ))
            .with_context(|| {
                format!(
                    "{}: cannot be upgraded from version {version} to 3",
                    path.display()
                )
            })?;
    }
    if (1..=3).contains(&version) {
        upgrade_to_4(&connection)
            .with_context(|| format!("{}: cannot be upgraded to version 4", path.display()))?;
    }
    if (1..=4).contains(&version) {
        // Version 4 had no publish targets: nothing is recorded on any.
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA_5} PRAGMA user_version = 5; COMMIT;"
            ))
            .with_context(|| format!("{}: cannot be upgraded to version 5", path.display()))?;
    }
    if (1..=5).contains(&version) {
        // Version 5 forgot the bytes of what it removed: nothing is reserved yet.
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA_6} PRAGMA user_version = 6; COMMIT;"
            ))
            .with_context(|| format!("{}: cannot be upgraded to version 6", path.display()))?;
    }
    if (1..=6).contains(&version) {
        upgrade_role_check(&connection, ROLES_4, ROLES_7, 7)
            .with_context(|| format!("{}: cannot be upgraded to version 7", path.display()))?;
    }
    if (1..=7).contains(&version) {
        // Version 7 kept no provenance: releases added before show none.
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA_8} PRAGMA user_version = 8; COMMIT;"
            ))
            .with_context(|| format!("{}: cannot be upgraded to version 8", path.display()))?;
    }
    if (1..=8).contains(&version) {
        // Version 8 recorded no signing keys: the next writer records its own.
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA_9} PRAGMA user_version = 9; COMMIT;"
            ))
            .with_context(|| format!("{}: cannot be upgraded to version 9", path.display()))?;
    }
    if (1..=9).contains(&version) {
        // Versions 8 and 9 kept commit, dirty flag and time only: the rest stays unknown
        // for the releases they hold.
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA_10} PRAGMA user_version = 10; COMMIT;"
            ))
            .with_context(|| format!("{}: cannot be upgraded to version 10", path.display()))?;
    }
    if (1..=10).contains(&version) {
        // Version 10 kept the keyring's version in the configuration: the next session
        // records it here (`crate::repo::keyring::ensure`).
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA_11} PRAGMA user_version = 11; COMMIT;"
            ))
            .with_context(|| format!("{}: cannot be upgraded to version 11", path.display()))?;
    }
    if (1..=11).contains(&version) {
        // Version 11 kept no tokens: every application gets one (a dashboard cache from
        // before holds none of them, so the next publication renders every row).
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {} INSERT OR REPLACE INTO app_changes (app, token) \
                 SELECT app, random() FROM (SELECT app FROM packages UNION SELECT app FROM \
                 current UNION SELECT app FROM history UNION SELECT app FROM provenance); \
                 PRAGMA user_version = 12; COMMIT;",
                schema_12()
            ))
            .with_context(|| format!("{}: cannot be upgraded to version 12", path.display()))?;
        return Ok(connection);
    }
    if version != SCHEMA_VERSION {
        bail!(
            "{}: schema version {version}; this debstage reads version {SCHEMA_VERSION}",
            path.display()
        );
    }
    Ok(connection)
}

/// Version 4 allows the role `dbgsym`. SQLite cannot alter a CHECK constraint; its
/// documented way to change one without rebuilding the table (which the `listed` rows
/// reference) is to edit the table's text in `sqlite_schema` and bump `schema_version`,
/// in one transaction (sqlite.org/lang_altertable.html, "Making Other Kinds Of Table
/// Schema Changes").
fn upgrade_to_4(connection: &Connection) -> rusqlite::Result<()> {
    upgrade_role_check(connection, ROLES_3, ROLES_4, 4)
}

/// The role check of versions 1 to 3.
const ROLES_3: &str = "CHECK (role IN ('payload', 'stage', 'plain'))";
/// The role check of versions 4 to 6, which added `dbgsym`.
const ROLES_4: &str = "CHECK (role IN ('payload', 'stage', 'plain', 'dbgsym'))";
/// The role check of version 7, which adds `layer` (layered releases).
const ROLES_7: &str = "CHECK (role IN ('payload', 'stage', 'plain', 'dbgsym', 'layer'))";

/// Replaces the role check `from` of the packages table by `to` and sets the schema
/// version to `version`, in one transaction, the way [`upgrade_to_4`] describes.
fn upgrade_role_check(
    connection: &Connection,
    from: &str,
    to: &str,
    version: i64,
) -> rusqlite::Result<()> {
    connection.execute_batch("BEGIN IMMEDIATE;")?;
    let result = (|| {
        let schema_version: i64 =
            connection.pragma_query_value(None, "schema_version", |row| row.get(0))?;
        connection.pragma_update(None, "writable_schema", "ON")?;
        connection.execute(
            "UPDATE sqlite_schema SET sql = replace(sql, ?1, ?2) \
             WHERE type = 'table' AND name = 'packages'",
            [from, to],
        )?;
        connection.pragma_update(None, "schema_version", schema_version + 1)?;
        connection.pragma_update(None, "writable_schema", "OFF")?;
        connection.pragma_update(None, "user_version", version)?;
        connection.execute_batch("COMMIT;")
    })();
    if result.is_err() {
        let _ = connection.execute_batch("ROLLBACK;");
    }
    result
}

/// A package about to be recorded.
#[derive(Debug, Clone)]
pub(crate) struct NewPackage<'a> {
    /// The application.
    pub(crate) app: &'a str,
    /// Its Package, Version and Architecture.
    pub(crate) identity: &'a PackageId,
    /// The upstream version.
    pub(crate) upstream: &'a str,
    /// Its role.
    pub(crate) role: Role,
    /// The stage of a stage package.
    pub(crate) stage: Option<&'a str>,
    /// The pool path.
    pub(crate) filename: &'a str,
    /// Its size and digests.
    pub(crate) digests: &'a Digests,
    /// The control paragraph.
    pub(crate) control: &'a str,
    /// When (Unix seconds).
    pub(crate) added: i64,
}

/// Records a package; returns its id.
pub(crate) fn insert_package(connection: &Connection, package: &NewPackage<'_>) -> Result<i64> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO packages (app, package, version, upstream, architecture, role, stage, \
         filename, size, md5, sha1, sha256, control, added) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    statement
        .execute(params![
            package.app,
            package.identity.package,
            package.identity.version,
            package.upstream,
            package.identity.architecture,
            package.role.as_str(),
            package.stage,
            package.filename,
            package.digests.size as i64,
            package.digests.md5,
            package.digests.sha1,
            package.digests.sha256,
            package.control,
            package.added,
        ])
        .with_context(|| format!("{} cannot be recorded", package.identity))?;
    Ok(connection.last_insert_rowid())
}

/// The package with this name, version and architecture, if recorded.
pub(crate) fn find_package(
    connection: &Connection,
    package: &str,
    version: &str,
    architecture: &str,
) -> Result<Option<PackageRecord>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {PACKAGE_COLUMNS} FROM packages \
         WHERE package = ?1 AND version = ?2 AND architecture = ?3"
    ))?;
    Ok(statement
        .query_row(params![package, version, architecture], package_from_row)
        .optional()?)
}

/// Every package of an application (all versions, all roles).
pub(crate) fn packages_of_app(connection: &Connection, app: &str) -> Result<Vec<PackageRecord>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {PACKAGE_COLUMNS} FROM packages WHERE app = ?1 ORDER BY package, version"
    ))?;
    let rows = statement.query_map(params![app], package_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every package of one application version (payloads of every architecture and stage
/// packages).
pub(crate) fn packages_of_version(
    connection: &Connection,
    app: &str,
    version: &str,
) -> Result<Vec<PackageRecord>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {PACKAGE_COLUMNS} FROM packages WHERE app = ?1 AND version = ?2 ORDER BY package"
    ))?;
    let rows = statement.query_map(params![app, version], package_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every package in the pool.
pub(crate) fn all_packages(connection: &Connection) -> Result<Vec<PackageRecord>> {
    let mut statement = connection.prepare(&format!(
        "SELECT {PACKAGE_COLUMNS} FROM packages ORDER BY app, package, version, architecture"
    ))?;
    let rows = statement.query_map([], package_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A package of the pool without its control paragraph, pool path and digests: what a
/// comparison of releases reads for every package.
#[derive(Debug, Clone)]
pub(crate) struct PoolEntry {
    /// Row id (for [`control_of`]).
    pub(crate) id: i64,
    /// The application it belongs to.
    pub(crate) app: String,
    /// Its Package, Version and Architecture.
    pub(crate) identity: PackageId,
    /// The upstream part of the version.
    pub(crate) upstream: String,
    /// Payload, stage package or plain package.
    pub(crate) role: Role,
}

/// Every package in the pool, without its control paragraph (with 20,000 packages the
/// paragraphs are most of what [`all_packages`] reads), in the same order.
pub(crate) fn all_pool_entries(connection: &Connection) -> Result<Vec<PoolEntry>> {
    pool_entries(connection, None)
}

/// The packages of one application (every one when `app` is `None`), without their
/// control paragraphs, in the order of [`all_pool_entries`].
pub(crate) fn pool_entries(connection: &Connection, app: Option<&str>) -> Result<Vec<PoolEntry>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, app, package, version, upstream, architecture, role FROM packages \
         WHERE ?1 IS NULL OR app = ?1 ORDER BY app, package, version, architecture",
    )?;
    let rows = statement.query_map(params![app], pool_entry_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every application's change token (see [`schema_12`]).
pub(crate) fn app_tokens(connection: &Connection) -> Result<HashMap<String, i64>> {
    let mut statement = connection.prepare_cached("SELECT app, token FROM app_changes")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A [`PoolEntry`] from the first seven of [`PACKAGE_COLUMNS`].
fn pool_entry_from_row(row: &Row<'_>) -> rusqlite::Result<PoolEntry> {
    Ok(PoolEntry {
        id: row.get(0)?,
        app: row.get(1)?,
        identity: PackageId {
            package: row.get(2)?,
            version: row.get(3)?,
            architecture: row.get(5)?,
        },
        upstream: row.get(4)?,
        role: role_from_column(&row.get::<_, String>(6)?)?,
    })
}

/// The control paragraph of the package with row id `id`.
pub(crate) fn control_of(connection: &Connection, id: i64) -> Result<String> {
    let mut statement = connection.prepare_cached("SELECT control FROM packages WHERE id = ?1")?;
    Ok(statement.query_row(params![id], |row| row.get(0))?)
}

/// Every package a suite lists, by package, version and architecture.
pub(crate) fn suite_packages(connection: &Connection, suite: &str) -> Result<Vec<PackageRecord>> {
    listed_in(
        connection,
        suite,
        "ORDER BY p.package, p.version, p.architecture",
    )
}

/// Every package a suite lists, in no particular order: for its index, which sorts them
/// itself (by Debian version), so that SQLite need not sort 20,000 rows first.
pub(crate) fn suite_packages_unordered(
    connection: &Connection,
    suite: &str,
) -> Result<Vec<PackageRecord>> {
    listed_in(connection, suite, "")
}

fn listed_in(connection: &Connection, suite: &str, order: &str) -> Result<Vec<PackageRecord>> {
    let columns = PACKAGE_COLUMNS
        .split(", ")
        .map(|column| format!("p.{column}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {columns} FROM listed l JOIN packages p ON p.id = l.package_id \
         WHERE l.suite = ?1 {order}"
    ))?;
    let rows = statement.query_map(params![suite], package_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The names of the packages of `role` a suite lists, once each, in name order.
pub(crate) fn listed_names(
    connection: &Connection,
    suite: &str,
    role: Role,
) -> Result<Vec<String>> {
    let mut statement = connection.prepare_cached(
        "SELECT DISTINCT p.package FROM listed l JOIN packages p ON p.id = l.package_id \
         WHERE l.suite = ?1 AND p.role = ?2 ORDER BY p.package",
    )?;
    let rows = statement.query_map(params![suite, role.as_str()], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether a suite lists a package of this name (any version and architecture).
pub(crate) fn lists_name(connection: &Connection, suite: &str, package: &str) -> Result<bool> {
    let mut statement = connection.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM packages p JOIN listed l ON l.package_id = p.id \
         WHERE p.package = ?1 AND l.suite = ?2)",
    )?;
    Ok(statement.query_row(params![package, suite], |row| row.get(0))?)
}

/// Every (suite, package id) listing.
pub(crate) fn listings(connection: &Connection) -> Result<Vec<(String, i64)>> {
    let mut statement = connection.prepare("SELECT suite, package_id FROM listed")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The suites that list a package.
pub(crate) fn suites_of(connection: &Connection, package_id: i64) -> Result<Vec<String>> {
    let mut statement =
        connection.prepare_cached("SELECT suite FROM listed WHERE package_id = ?1")?;
    let rows = statement.query_map(params![package_id], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Lists a package in a suite; returns false when it was listed already.
pub(crate) fn list(connection: &Connection, suite: &str, package_id: i64) -> Result<bool> {
    let mut statement = connection
        .prepare_cached("INSERT OR IGNORE INTO listed (suite, package_id) VALUES (?1, ?2)")?;
    Ok(statement.execute(params![suite, package_id])? > 0)
}

/// Stops listing a package in a suite; returns false when it was not listed.
pub(crate) fn unlist(connection: &Connection, suite: &str, package_id: i64) -> Result<bool> {
    let mut statement =
        connection.prepare_cached("DELETE FROM listed WHERE suite = ?1 AND package_id = ?2")?;
    Ok(statement.execute(params![suite, package_id])? > 0)
}

/// Stops listing every version of the package named `package` in a suite.
pub(crate) fn unlist_name(connection: &Connection, suite: &str, package: &str) -> Result<usize> {
    let mut statement = connection.prepare_cached(
        "DELETE FROM listed WHERE suite = ?1 \
         AND package_id IN (SELECT id FROM packages WHERE package = ?2)",
    )?;
    Ok(statement.execute(params![suite, package])?)
}

/// Removes a package's row and its listings; its name, version and architecture stay
/// reserved for its bytes (see [`reserved_sha256`]).
pub(crate) fn delete_package(connection: &Connection, package_id: i64) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT OR REPLACE INTO removed \
             (package, version, architecture, sha256, filename, removed) \
             SELECT package, version, architecture, sha256, filename, \
             CAST(strftime('%s', 'now') AS INTEGER) FROM packages WHERE id = ?1",
        )?
        .execute(params![package_id])?;
    connection
        .prepare_cached("DELETE FROM listed WHERE package_id = ?1")?
        .execute(params![package_id])?;
    connection
        .prepare_cached("DELETE FROM packages WHERE id = ?1")?
        .execute(params![package_id])?;
    Ok(())
}

/// The SHA256 a removed package had, which its name, version and architecture stay
/// reserved for; `None` when it was never removed (or was forgotten).
pub(crate) fn reserved_sha256(
    connection: &Connection,
    package: &str,
    version: &str,
    architecture: &str,
) -> Result<Option<String>> {
    Ok(connection
        .prepare_cached(
            "SELECT sha256 FROM removed WHERE package = ?1 AND version = ?2 AND architecture = ?3",
        )?
        .query_row(params![package, version, architecture], |row| row.get(0))
        .optional()?)
}

/// Forgets the bytes of the removed packages whose pool file is gone (`repo gc
/// --forget`): their names and versions may then come back with other bytes. A file still
/// in the pool is named by an index still served, which other bytes under the same path
/// would contradict, so its reservation stays. Returns (forgotten, still reserved).
pub(crate) fn forget_removed(connection: &Connection, root: &Path) -> Result<(usize, usize)> {
    let rows: Vec<(String, String, String, String)> = connection
        .prepare("SELECT package, version, architecture, filename FROM removed")?
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let (mut forgotten, mut kept) = (0, 0);
    for (package, version, architecture, filename) in rows {
        if root.join(&filename).exists() {
            kept += 1;
            continue;
        }
        forgotten += connection.execute(
            "DELETE FROM removed WHERE package = ?1 AND version = ?2 AND architecture = ?3",
            params![package, version, architecture],
        )?;
    }
    Ok((forgotten, kept))
}

/// The version a suite (a stage, of host builds or of one distribution) of an
/// application points to.
pub(crate) fn current(connection: &Connection, app: &str, suite: &str) -> Result<Option<String>> {
    let mut statement =
        connection.prepare_cached("SELECT version FROM current WHERE app = ?1 AND suite = ?2")?;
    Ok(statement
        .query_row(params![app, suite], |row| row.get(0))
        .optional()?)
}

/// Every (suite, version) an application's suites point to.
pub(crate) fn currents_of_app(connection: &Connection, app: &str) -> Result<Vec<(String, String)>> {
    let mut statement =
        connection.prepare_cached("SELECT suite, version FROM current WHERE app = ?1")?;
    let rows = statement.query_map(params![app], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every (app, suite, version) pointer.
pub(crate) fn all_currents(connection: &Connection) -> Result<Vec<(String, String, String)>> {
    let mut statement = connection.prepare("SELECT app, suite, version FROM current")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every pointer, by application and then suite: the version each suite points to.
pub(crate) fn currents_by_app(
    connection: &Connection,
) -> Result<HashMap<String, HashMap<String, String>>> {
    let mut by_app: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (app, suite, version) in all_currents(connection)? {
        by_app.entry(app).or_default().insert(suite, version);
    }
    Ok(by_app)
}

/// Points a suite of an application to a version.
pub(crate) fn set_current(
    connection: &Connection,
    app: &str,
    suite: &str,
    version: &str,
) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO current (app, suite, version) VALUES (?1, ?2, ?3) \
             ON CONFLICT (app, suite) DO UPDATE SET version = excluded.version",
        )?
        .execute(params![app, suite, version])?;
    Ok(())
}

/// Appends one line to the history.
pub(crate) fn record_history(connection: &Connection, entry: &HistoryEntry) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO history \
             (time, who, action, app, stage, from_version, to_version, distribution) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            entry.time,
            entry.who,
            entry.action.as_str(),
            entry.app,
            entry.stage,
            entry.from,
            entry.to,
            entry.distribution,
        ])?;
    Ok(())
}

/// The history, oldest first; only one application's when `app` is given.
pub(crate) fn history(connection: &Connection, app: Option<&str>) -> Result<Vec<HistoryEntry>> {
    let mut statement = connection.prepare_cached(
        "SELECT time, who, action, app, stage, from_version, to_version, distribution \
         FROM history \
         WHERE ?1 IS NULL OR app = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map(params![app], history_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The latest `count` history entries, newest first.
pub(crate) fn latest_history(connection: &Connection, count: usize) -> Result<Vec<HistoryEntry>> {
    let mut statement = connection.prepare_cached(
        "SELECT time, who, action, app, stage, from_version, to_version, distribution \
         FROM history ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = statement.query_map(params![count as i64], history_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn history_from_row(row: &Row<'_>) -> rusqlite::Result<HistoryEntry> {
    Ok(HistoryEntry {
        time: row.get(0)?,
        who: row.get(1)?,
        action: Action::from_column(&row.get::<_, String>(2)?)?,
        app: row.get(3)?,
        stage: row.get(4)?,
        from: row.get(5)?,
        to: row.get(6)?,
        distribution: row.get(7)?,
    })
}

/// The history of one stage of one application for one distribution (`None`: host
/// builds), oldest first.
pub(crate) fn stage_history(
    connection: &Connection,
    app: &str,
    stage: &str,
    distribution: Option<&str>,
) -> Result<Vec<HistoryEntry>> {
    Ok(history(connection, Some(app))?
        .into_iter()
        .filter(|entry| {
            entry.stage.as_deref() == Some(stage) && entry.distribution.as_deref() == distribution
        })
        .collect())
}

/// Where a release came from, as `repo add` kept it from its build manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ReleaseProvenance {
    /// The git commit the release was built from, if the application was in a work tree.
    pub(crate) commit: Option<String>,
    /// Whether that work tree had changes git does not hold.
    pub(crate) dirty: Option<bool>,
    /// The time the build stamped (Unix seconds).
    pub(crate) source_date: i64,
    /// The branch checked out when it was built (none on a detached HEAD).
    pub(crate) branch: Option<String>,
    /// The host that built it.
    pub(crate) build_host: Option<String>,
    /// The version of the debstage that built it.
    pub(crate) debstage_version: Option<String>,
    /// The distribution it was built for (`debstage build --target`); none for a build
    /// on the host.
    pub(crate) target: Option<String>,
}

impl ReleaseProvenance {
    /// The commit as a table shows it: its first 12 digits, `+dirty` when the tree had
    /// changes; `-` for none.
    pub(crate) fn short_commit(provenance: Option<&ReleaseProvenance>) -> String {
        match provenance.and_then(|provenance| {
            provenance
                .commit
                .as_deref()
                .map(|commit| (commit, provenance.dirty))
        }) {
            Some((commit, dirty)) => {
                let short: String = commit.chars().take(12).collect();
                if dirty == Some(true) {
                    format!("{short}+dirty")
                } else {
                    short
                }
            }
            None => "-".to_string(),
        }
    }
}

/// Keeps the provenance of a release (application and Debian version); the first record
/// stays, since the same version always has the same bytes.
pub(crate) fn record_provenance(
    connection: &Connection,
    app: &str,
    version: &str,
    provenance: &ReleaseProvenance,
) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO provenance (app, version, git_commit, git_dirty, source_date, \
             git_branch, build_host, debstage_version, target) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (app, version) DO NOTHING",
        )?
        .execute(params![
            app,
            version,
            provenance.commit,
            provenance.dirty,
            provenance.source_date,
            provenance.branch,
            provenance.build_host,
            provenance.debstage_version,
            provenance.target,
        ])?;
    Ok(())
}

/// The provenance of every release of every application, by (application, version).
pub(crate) fn all_provenance(
    connection: &Connection,
) -> Result<std::collections::BTreeMap<(String, String), ReleaseProvenance>> {
    provenance(connection, None)
}

/// The provenance of every release of one application (of every one when `app` is
/// `None`), by (application, version).
pub(crate) fn provenance(
    connection: &Connection,
    app: Option<&str>,
) -> Result<std::collections::BTreeMap<(String, String), ReleaseProvenance>> {
    let mut statement = connection.prepare_cached(
        "SELECT app, version, git_commit, git_dirty, source_date, git_branch, build_host, \
         debstage_version, target FROM provenance WHERE ?1 IS NULL OR app = ?1",
    )?;
    let rows = statement.query_map(params![app], |row| {
        Ok((
            (row.get(0)?, row.get(1)?),
            ReleaseProvenance {
                commit: row.get(2)?,
                dirty: row.get(3)?,
                source_date: row.get(4)?,
                branch: row.get(5)?,
                build_host: row.get(6)?,
                debstage_version: row.get(7)?,
                target: row.get(8)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records that `suite` must be published (in the transaction that changes it).
pub(crate) fn owe_publication(connection: &Connection, suite: &str) -> Result<()> {
    connection
        .prepare_cached("INSERT OR IGNORE INTO pending (suite) VALUES (?1)")?
        .execute(params![suite])?;
    Ok(())
}

/// The suites whose publication is pending.
pub(crate) fn pending_publications(connection: &Connection) -> Result<Vec<String>> {
    let mut statement = connection.prepare_cached("SELECT suite FROM pending ORDER BY suite")?;
    let rows = statement.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Clears the debt of `suite`: its publication finished.
pub(crate) fn paid_publication(connection: &Connection, suite: &str) -> Result<()> {
    connection
        .prepare_cached("DELETE FROM pending WHERE suite = ?1")?
        .execute(params![suite])?;
    Ok(())
}

/// The fingerprints of the signing keys the state records, sorted (empty: none yet).
pub(crate) fn signing_keys(connection: &Connection) -> Result<Vec<String>> {
    let mut statement =
        connection.prepare_cached("SELECT fingerprint FROM signing_keys ORDER BY fingerprint")?;
    let rows = statement.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Records `fingerprints` as the signing keys, in place of what was recorded.
pub(crate) fn record_signing_keys(connection: &Connection, fingerprints: &[String]) -> Result<()> {
    connection.execute_batch("SAVEPOINT signing_keys; DELETE FROM signing_keys;")?;
    for fingerprint in fingerprints {
        connection
            .prepare_cached("INSERT OR IGNORE INTO signing_keys (fingerprint) VALUES (?1)")?
            .execute(params![fingerprint])?;
    }
    connection.execute_batch("RELEASE signing_keys;")?;
    Ok(())
}

/// The version of the keyring package the state records (`None`: a repository from
/// before version 11 whose keyring nobody has recorded yet).
pub(crate) fn keyring_version(connection: &Connection) -> Result<Option<u64>> {
    Ok(connection
        .query_row("SELECT version FROM keyring WHERE id = 1", [], |row| {
            row.get::<_, i64>(0)
        })
        .optional()?
        .map(|version| u64::try_from(version).unwrap_or(1)))
}

/// Records `version` as the keyring package's version.
pub(crate) fn record_keyring_version(connection: &Connection, version: u64) -> Result<()> {
    let version = i64::try_from(version).context("the keyring version is out of range")?;
    connection.execute(
        "INSERT INTO keyring (id, version) VALUES (1, ?1) \
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        params![version],
    )?;
    Ok(())
}

/// One publication of a suite: when, and the Release text it served.
#[derive(Debug, Clone)]
pub(crate) struct Generation {
    /// Row id (increasing with time).
    pub(crate) id: i64,
    /// When it was published (Unix seconds).
    pub(crate) published: i64,
    /// Its Release text.
    pub(crate) release: String,
}

/// Records a publication of `suite` before its Release files are renamed into place.
pub(crate) fn record_generation(
    connection: &Connection,
    suite: &str,
    published: i64,
    release: &str,
) -> Result<()> {
    connection
        .prepare_cached("INSERT INTO generations (suite, published, release) VALUES (?1, ?2, ?3)")?
        .execute(params![suite, published, release])?;
    Ok(())
}

/// The recorded publications of `suite`, newest first.
pub(crate) fn generations(connection: &Connection, suite: &str) -> Result<Vec<Generation>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, published, release FROM generations WHERE suite = ?1 ORDER BY id DESC",
    )?;
    let rows = statement.query_map(params![suite], |row| {
        Ok(Generation {
            id: row.get(0)?,
            published: row.get(1)?,
            release: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Forgets the publications of `suite` older than the one with id `oldest_kept`.
pub(crate) fn forget_generations(
    connection: &Connection,
    suite: &str,
    oldest_kept: i64,
) -> Result<()> {
    connection
        .prepare_cached("DELETE FROM generations WHERE suite = ?1 AND id < ?2")?
        .execute(params![suite, oldest_kept])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A version 2 database (a pointer per stage, history without distributions) opens
    /// as version 3 with its rows meaning what they meant: a stage's pointer is its host
    /// suite's, its history lines are the host builds'.
    #[test]
    fn a_version_5_database_is_upgraded_to_reserve_removed_versions() {
        let root = tempfile::tempdir().unwrap();
        {
            let old = Connection::open(root.path().join(FILE_NAME)).unwrap();
            old.execute_batch(&format!(
                "{SCHEMA}{SCHEMA_2}{SCHEMA_3}{SCHEMA_5} PRAGMA user_version = 5;"
            ))
            .unwrap();
            old.execute_batch(
                "INSERT INTO packages (app, package, version, upstream, architecture, role, \
                 filename, size, md5, sha1, sha256, control, added) VALUES ('shop', 'shop', \
                 '1.0-1', '1.0', 'all', 'plain', 'pool/main/s/shop/shop_1.0-1_all.deb', 1, \
                 'm', 's', 'abc', 'Package: shop', 1);",
            )
            .unwrap();
        }
        let connection = open(root.path()).expect("upgraded");
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // Nothing was reserved before the upgrade; a removal after it reserves the bytes.
        assert_eq!(
            reserved_sha256(&connection, "shop", "1.0-1", "all").unwrap(),
            None
        );
        let package = find_package(&connection, "shop", "1.0-1", "all")
            .unwrap()
            .expect("kept by the upgrade");
        delete_package(&connection, package.id).unwrap();
        assert_eq!(
            reserved_sha256(&connection, "shop", "1.0-1", "all")
                .unwrap()
                .as_deref(),
            Some("abc")
        );
        // While its pool file is there (an index still served names it), it stays.
        let file = root.path().join("pool/main/s/shop/shop_1.0-1_all.deb");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(forget_removed(&connection, root.path()).unwrap(), (0, 1));
        std::fs::remove_file(&file).unwrap();
        assert_eq!(forget_removed(&connection, root.path()).unwrap(), (1, 0));
        assert_eq!(
            reserved_sha256(&connection, "shop", "1.0-1", "all").unwrap(),
            None
        );
        drop(connection);
        assert!(open(root.path()).is_ok());
    }

    /// A version 8 database keeps the provenance it holds (commit, dirty flag, time) and
    /// gains the rest, unknown for what it held; a new record keeps all of it.
    #[test]
    fn a_version_8_database_keeps_its_provenance_and_gains_the_rest() {
        let root = tempfile::tempdir().unwrap();
        {
            let connection = create(root.path()).unwrap();
            connection
                .execute_batch(&format!(
                    "DROP TABLE provenance; DROP TABLE signing_keys; DROP TABLE keyring; {SCHEMA_8} \
                     PRAGMA user_version = 8; \
                     INSERT INTO provenance (app, version, git_commit, git_dirty, source_date) \
                     VALUES ('shop', '1.0-1', 'abc', 0, 7);"
                ))
                .unwrap();
        }
        let connection = open(root.path()).expect("upgraded");
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(keyring_version(&connection).unwrap(), None);
        let newer = ReleaseProvenance {
            commit: Some("def".into()),
            dirty: Some(true),
            source_date: 8,
            branch: Some("main".into()),
            build_host: Some("builder".into()),
            debstage_version: Some("1.2.3".into()),
            target: Some("bookworm".into()),
        };
        record_provenance(&connection, "shop", "1.1-1", &newer).unwrap();
        let all = all_provenance(&connection).unwrap();
        assert_eq!(
            all[&("shop".to_string(), "1.0-1".to_string())],
            ReleaseProvenance {
                commit: Some("abc".into()),
                dirty: Some(false),
                source_date: 7,
                branch: None,
                build_host: None,
                debstage_version: None,
                target: None,
            }
        );
        assert_eq!(all[&("shop".to_string(), "1.1-1".to_string())], newer);
    }

    #[test]
    fn version_2_is_upgraded_in_place() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(FILE_NAME);
        let old = Connection::open(&path).unwrap();
        old.execute_batch(SCHEMA).unwrap();
        old.execute_batch(SCHEMA_2).unwrap();
        old.execute_batch(
            "INSERT INTO current (app, stage, version) VALUES ('shop', 'production', '1.0-1');
             INSERT INTO history (time, who, action, app, stage, from_version, to_version)
             VALUES (1, 'tester', 'promote', 'shop', 'production', NULL, '1.0-1');
             PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(old);
        let connection = open(directory.path()).unwrap();
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(
            current(&connection, "shop", "production")
                .unwrap()
                .as_deref(),
            Some("1.0-1")
        );
        let entries = stage_history(&connection, "shop", "production", None).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].distribution, None);
        set_current(&connection, "shop", "bookworm-production", "1.0-1+deb12").unwrap();
        assert_eq!(currents_of_app(&connection, "shop").unwrap().len(), 2);
        drop(connection);
        // Opening it again finds the current version and changes nothing.
        assert!(open(directory.path()).is_ok());
    }

    #[test]
    fn a_version_2_database_is_upgraded_to_take_dbgsym_packages_and_distributions() {
        let root = tempfile::tempdir().expect("temp dir");
        let old_schema = SCHEMA.replace(ROLES_7, ROLES_3);
        assert_ne!(old_schema, SCHEMA);
        {
            let connection = Connection::open(root.path().join(FILE_NAME)).expect("open");
            connection
                .execute_batch(&format!("{old_schema}{SCHEMA_2} PRAGMA user_version = 2;"))
                .expect("version 2");
        }
        let connection = open(root.path()).expect("upgraded");
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        let dbgsym = PackageId::new("shop-1.0-dbgsym", "1.0-1", "amd64");
        let digests = Digests {
            size: 1,
            md5: String::new(),
            sha1: String::new(),
            sha256: String::new(),
        };
        let package = NewPackage {
            app: "shop",
            identity: &dbgsym,
            upstream: "1.0",
            role: Role::Dbgsym,
            stage: None,
            filename: "pool/main/s/shop/shop-1.0-dbgsym_1.0-1_amd64.deb",
            digests: &digests,
            control: "",
            added: 0,
        };
        insert_package(&connection, &package).expect("a dbgsym row is allowed");
        let stored = find_package(&connection, "shop-1.0-dbgsym", "1.0-1", "amd64")
            .expect("read")
            .expect("found");
        assert_eq!(stored.role, Role::Dbgsym);
        // Version 7 takes layers.
        let layer_id = PackageId::new("shop-layer-0123456789abcdef", "1", "amd64");
        let layer = NewPackage {
            identity: &layer_id,
            upstream: "1",
            role: Role::Layer,
            filename: "pool/main/s/shop/shop-layer-0123456789abcdef_1_amd64.deb",
            ..package
        };
        insert_package(&connection, &layer).expect("a layer row is allowed");
        let check: String = connection
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity");
        assert_eq!(check, "ok");
        drop(connection);
        // Opened again, it is at the current version and not upgraded twice.
        open(root.path()).expect("reopened");
    }
}
