//! What each publish target holds, as the state database records it (tables
//! `target_objects` and `targets`, schema version 5): every object written (key, size,
//! SHA256), since when an object is no longer in the local tree, and how many
//! publications the target has seen.

use std::collections::HashMap;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

/// One recorded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// Size in bytes.
    pub(crate) size: u64,
    /// SHA256, hex.
    pub(crate) sha256: String,
    /// When it left the local tree (Unix seconds) and the target's publication count then.
    pub(crate) orphaned: Option<(i64, i64)>,
}

/// Every object recorded on `target`, by key.
pub(crate) fn objects(connection: &Connection, target: &str) -> Result<HashMap<String, Recorded>> {
    let mut statement = connection.prepare(
        "SELECT key, size, sha256, orphaned_at, orphaned_publication FROM target_objects \
         WHERE target = ?1",
    )?;
    let rows = statement.query_map([target], |row| {
        let orphaned_at: Option<i64> = row.get(3)?;
        let orphaned_publication: Option<i64> = row.get(4)?;
        Ok((
            row.get::<_, String>(0)?,
            Recorded {
                size: row.get::<_, i64>(1)? as u64,
                sha256: row.get(2)?,
                orphaned: orphaned_at.zip(orphaned_publication),
            },
        ))
    })?;
    rows.collect::<rusqlite::Result<_>>()
        .with_context(|| format!("the record of publish target {target} cannot be read"))
}

/// Records that `target` holds `key` with these bytes (and that it is in the local tree).
pub(crate) fn put(
    connection: &Connection,
    target: &str,
    key: &str,
    size: u64,
    sha256: &str,
) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO target_objects (target, key, size, sha256) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (target, key) DO UPDATE SET size = excluded.size, \
             sha256 = excluded.sha256, orphaned_at = NULL, orphaned_publication = NULL",
        )?
        .execute(params![target, key, size as i64, sha256])?;
    Ok(())
}

/// How many uploads one transaction records at most: a commit per object cost more than
/// the upload of a small pool file on loopback.
const PUTS_PER_COMMIT: usize = 512;

/// Records uploads as they finish, [`PUTS_PER_COMMIT`] to a transaction. An upload made
/// but not committed when the process dies is written again by the next publication (a
/// pool object is then found with the same bytes and recorded), so the record never
/// names an object the store lacks.
pub(crate) struct Recorder<'a> {
    connection: &'a Connection,
    target: &'a str,
    pending: usize,
}

impl<'a> Recorder<'a> {
    /// Records for `target`.
    pub(crate) fn new(connection: &'a Connection, target: &'a str) -> Self {
        Recorder {
            connection,
            target,
            pending: 0,
        }
    }

    /// Records that the target holds `key` with these bytes ([`put`]).
    pub(crate) fn put(&mut self, key: &str, size: u64, sha256: &str) -> Result<()> {
        if self.pending == 0 {
            self.connection.execute_batch("BEGIN IMMEDIATE")?;
        }
        self.pending += 1;
        put(self.connection, self.target, key, size, sha256)?;
        if self.pending >= PUTS_PER_COMMIT {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits what is recorded so far.
    pub(crate) fn commit(&mut self) -> Result<()> {
        if self.pending > 0 {
            self.pending = 0;
            self.connection.execute_batch("COMMIT")?;
        }
        Ok(())
    }
}

impl Drop for Recorder<'_> {
    /// An upload phase that fails midway keeps the record of what it wrote.
    fn drop(&mut self) {
        let _ = self.commit();
    }
}

/// Marks `key` as gone from the local tree since `now`, at publication `publication`.
pub(crate) fn orphan(
    connection: &Connection,
    target: &str,
    key: &str,
    now: i64,
    publication: i64,
) -> Result<()> {
    connection.execute(
        "UPDATE target_objects SET orphaned_at = ?3, orphaned_publication = ?4 \
         WHERE target = ?1 AND key = ?2 AND orphaned_at IS NULL",
        params![target, key, now, publication],
    )?;
    Ok(())
}

/// Clears the mark of an object back in the local tree.
pub(crate) fn adopt(connection: &Connection, target: &str, key: &str) -> Result<()> {
    connection.execute(
        "UPDATE target_objects SET orphaned_at = NULL, orphaned_publication = NULL \
         WHERE target = ?1 AND key = ?2",
        params![target, key],
    )?;
    Ok(())
}

/// Forgets `key` (deleted from the store).
pub(crate) fn forget(connection: &Connection, target: &str, key: &str) -> Result<()> {
    connection.execute(
        "DELETE FROM target_objects WHERE target = ?1 AND key = ?2",
        params![target, key],
    )?;
    Ok(())
}

/// The target's publication count and whether its last publication completed.
pub(crate) fn status(connection: &Connection, target: &str) -> Result<(i64, bool)> {
    let found: Option<(i64, i64)> = connection
        .query_row(
            "SELECT publications, complete FROM targets WHERE target = ?1",
            [target],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(found.map_or((0, true), |(count, complete)| (count, complete != 0)))
}

/// Records that a publication to `target` began (an interruption leaves it incomplete,
/// so the next writer publishes to the target again).
pub(crate) fn begin(connection: &Connection, target: &str) -> Result<()> {
    connection.execute(
        "INSERT INTO targets (target, complete) VALUES (?1, 0) \
         ON CONFLICT (target) DO UPDATE SET complete = 0",
        [target],
    )?;
    Ok(())
}

/// Records that a publication to `target` completed; `new_generation` counts it among
/// the publications that hold old objects back.
pub(crate) fn finish(connection: &Connection, target: &str, new_generation: bool) -> Result<()> {
    connection.execute(
        "UPDATE targets SET complete = 1, publications = publications + ?2 WHERE target = ?1",
        params![target, i64::from(new_generation)],
    )?;
    Ok(())
}

/// Runs `work` in one transaction (many small writes at once).
pub(crate) fn batch<T>(connection: &Connection, work: impl FnOnce() -> Result<T>) -> Result<T> {
    connection.execute_batch("BEGIN IMMEDIATE")?;
    match work() {
        Ok(value) => {
            connection.execute_batch("COMMIT")?;
            Ok(value)
        }
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_4_database_gains_the_target_tables() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let connection = crate::repo::state::create(directory.path()).expect("created");
        // What a repository made before publish targets looks like.
        connection
            .execute_batch(
                "DROP TABLE target_objects; DROP TABLE targets; DROP TABLE removed; \
                 DROP TABLE provenance; DROP TABLE signing_keys; DROP TABLE keyring; \
                 PRAGMA user_version = 4;",
            )
            .expect("made version 4");
        drop(connection);
        let connection = crate::repo::state::open(directory.path()).expect("upgraded");
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("version");
        // Upgraded through 5 (publish targets) to the current version (7: layers; 8:
        // provenance; 9: signing keys; 10: the rest of the provenance; 11: the keyring's
        // version; 12: the applications' change tokens).
        assert_eq!(version, 12);
        assert_eq!(status(&connection, "fleet").expect("status"), (0, true));
        begin(&connection, "fleet").expect("begin");
        put(&connection, "fleet", "pool/a.deb", 10, "ab").expect("put");
        assert_eq!(status(&connection, "fleet").expect("status"), (0, false));
        orphan(&connection, "fleet", "pool/a.deb", 100, 0).expect("orphan");
        let recorded = objects(&connection, "fleet").expect("objects");
        assert_eq!(recorded["pool/a.deb"].orphaned, Some((100, 0)));
        adopt(&connection, "fleet", "pool/a.deb").expect("adopt");
        finish(&connection, "fleet", true).expect("finish");
        assert_eq!(status(&connection, "fleet").expect("status"), (1, true));
        assert_eq!(
            objects(&connection, "fleet").expect("objects")["pool/a.deb"].orphaned,
            None
        );
        forget(&connection, "fleet", "pool/a.deb").expect("forget");
        assert!(objects(&connection, "fleet").expect("objects").is_empty());
    }
}
