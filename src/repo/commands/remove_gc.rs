//! `repo remove` and `repo gc`.
//!
//! Removal policy: a version that a stage points to is never removed, neither by
//! `remove` nor by `gc`; roll the stage back or promote another version first. Removing
//! from one stage (`--stage`) only stops listing the version there; removing without
//! `--stage` deletes every package of the version (payloads and stage packages) from the
//! database, so nothing can be promoted or rolled back to it afterwards. A package that
//! leaves the database (by `remove` or `gc`) leaves its SHA256 behind: its name, version
//! and architecture stay reserved for those bytes (`repo add` of other bytes is a
//! conflict) until `gc --forget`.
//!
//! Both change the state (and record the publication they owe) in one transaction,
//! publish, and only then delete pool files: a file leaves the pool once no row and no
//! index still served (by-hash generations included, see `[retention]`) names it, so a
//! client holding an older `InRelease` still finds every file its indexes name. A file
//! that stays for that reason is deleted by a later `repo gc` or `repo remove`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use anyhow::{bail, Result};
use rusqlite::Transaction;
use serde_json::json;

use crate::debian::version;
use crate::naming::distribution::suite_of;
use crate::repo::clock::now;
use crate::repo::commands::stages::resolve_version;
use crate::repo::layers;
use crate::repo::pool;
use crate::repo::publish::served::served_pool_files;
use crate::repo::session::{who, Session};
use crate::repo::state::{self, Action, HistoryEntry, PackageRecord, Role};
use crate::repo::suites;

/// Runs `repo remove APP VERSION [--stage S]`.
pub(crate) fn remove(
    session: &mut Session<'_>,
    app: &str,
    requested: &str,
    stage: Option<&str>,
) -> Result<()> {
    let config = session.repository.config.clone();
    crate::repo::keyring::refuse_as_application(&config, app, "remove")?;
    let transaction = session.connection.transaction()?;
    let version = resolve_version(&transaction, app, requested)?;
    let distribution = suites::distribution_of(&version);
    let suite = stage.map(|stage| suite_of(distribution, stage));
    let packages = state::packages_of_version(&transaction, app, &version)?;
    let pointing: Vec<String> = state::currents_of_app(&transaction, app)?
        .into_iter()
        .filter(|(suite_name, current)| {
            *current == version && suite.as_ref().is_none_or(|only| only == suite_name)
        })
        .map(|(suite_name, _)| suite_name)
        .collect();
    if !pointing.is_empty() {
        bail!(
            "cannot remove {app} {version}: {} point(s) to it; promote another version \
             there (`debstage repo promote {app} VERSION STAGE`) or roll back first \
             (`debstage repo rollback {app} STAGE`)",
            pointing.join(", ")
        );
    }
    let mut changed = BTreeSet::new();
    match stage {
        Some(stage) => {
            config.stage_index(stage)?;
            let suite = suite_of(distribution, stage);
            for package in &packages {
                if state::unlist(&transaction, &suite, package.id)? {
                    changed.insert(suite.clone());
                }
            }
            if changed.is_empty() {
                bail!(
                    "cannot remove {app} {version} from {suite}: the stage does not list it; \
                     `debstage repo show {app}` shows which stages list it"
                );
            }
        }
        None => {
            for package in &packages {
                changed.extend(state::suites_of(&transaction, package.id)?);
                state::delete_package(&transaction, package.id)?;
            }
        }
    }
    // A layer leaves with the last release that needs it.
    let (layer_suites, _) = layers::settle(&transaction)?;
    changed.extend(layer_suites);
    state::record_history(
        &transaction,
        &HistoryEntry {
            time: now(),
            who: who(),
            action: Action::Remove,
            app: app.to_string(),
            stage: stage.map(str::to_string),
            distribution: suites::codename(distribution),
            from: Some(version.clone()),
            to: None,
        },
    )?;
    for suite in &changed {
        state::owe_publication(&transaction, suite)?;
    }
    transaction.commit()?;
    crate::fault::point("remove-committed");
    session.publish_pending()?;
    crate::fault::point("remove-published");
    let deleted_files = delete_unused(session)?;
    let place = stage.map_or("the repository".to_string(), |stage| stage.to_string());
    session
        .reporter
        .status(format!("removed {app} {version} from {place}"));
    session.reporter.data(
        "",
        &json!({"app": app, "version": version, "stage": stage, "changed": true, "deleted": deleted_files}),
    )?;
    Ok(())
}

/// Runs `repo gc --keep N [--forget]`: each stage keeps, per application, its current
/// version and the `keep` highest versions it lists; versions no stage lists or points to
/// leave the database, and pool files leave the disk once nothing names them. A removed
/// version's name stays reserved for its bytes unless `forget` is given.
pub(crate) fn gc(session: &mut Session<'_>, keep: usize, forget: bool) -> Result<()> {
    let config = session.repository.config.clone();
    let transaction = session.connection.transaction()?;
    let currents: HashSet<(String, String, String)> =
        state::all_currents(&transaction)?.into_iter().collect();
    let all_suites: Vec<String> = suites::all_suites(&config, &transaction)?
        .iter()
        .map(suites::Suite::name)
        .collect();
    let mut changed = unlist_beyond(&transaction, &all_suites, keep, &currents)?;
    let versions_removed = delete_unlisted(&transaction, &currents)?;
    // Layers stay while a kept release in any suite needs them.
    let (layer_suites, _) = layers::settle(&transaction)?;
    changed.extend(layer_suites);
    for suite in &changed {
        state::owe_publication(&transaction, suite)?;
    }
    transaction.commit()?;
    crate::fault::point("gc-committed");
    session.publish_pending()?;
    crate::fault::point("gc-published");
    let removed_files = delete_unused(session)?;
    // After the deletions: a reservation goes only with its pool file.
    let (forgotten, still_reserved) = if forget {
        state::forget_removed(&session.connection, &session.repository.root)?
    } else {
        (0, 0)
    };
    session.reporter.status(format!(
        "gc: {} version(s) removed, {} file(s) deleted from the pool",
        versions_removed.len(),
        removed_files.len()
    ));
    if forget {
        session.reporter.status(format!(
            "gc: forgot the bytes of {forgotten} removed package(s); their versions may come \
             back with other bytes"
        ));
    }
    if still_reserved > 0 {
        session.reporter.status(format!(
            "gc: {still_reserved} removed package(s) stay reserved for their bytes: an index \
             still served names their pool file; run `debstage repo gc --forget` again later"
        ));
    }
    let removed: Vec<_> = versions_removed
        .iter()
        .map(|(app, version)| json!({"app": app, "version": version}))
        .collect();
    session.reporter.data(
        "",
        &json!({
            "changed": !changed.is_empty()
                || !removed.is_empty()
                || !removed_files.is_empty()
                || forgotten > 0,
            "removed": removed,
            "deleted": removed_files,
            "forgotten": forgotten,
        }),
    )?;
    Ok(())
}

/// Stops listing, in each suite, the versions beyond the `keep` highest that the suite
/// does not point to; returns the suites changed.
fn unlist_beyond(
    transaction: &Transaction<'_>,
    stages: &[String],
    keep: usize,
    currents: &HashSet<(String, String, String)>,
) -> Result<BTreeSet<String>> {
    let mut changed = BTreeSet::new();
    for stage in stages {
        let mut by_app: BTreeMap<String, BTreeMap<String, Vec<i64>>> = BTreeMap::new();
        for package in state::suite_packages(transaction, stage)? {
            // Layers have versions of their own; they follow the releases (layers::settle).
            if package.role != Role::Stage && package.role != Role::Layer {
                by_app
                    .entry(package.app.clone())
                    .or_default()
                    .entry(package.identity.version.clone())
                    .or_default()
                    .push(package.id);
            }
        }
        for (app, versions) in by_app {
            let mut ordered: Vec<&String> = versions.keys().collect();
            ordered.sort_by(|left, right| version::compare(right, left));
            for (rank, version) in ordered.into_iter().enumerate() {
                let pointed = currents.contains(&(app.clone(), stage.clone(), version.clone()));
                if rank < keep || pointed {
                    continue;
                }
                for id in &versions[version] {
                    state::unlist(transaction, stage, *id)?;
                }
                changed.insert(stage.clone());
            }
        }
    }
    Ok(changed)
}

/// Deletes the rows of the versions that no suite lists and no stage points to, with a
/// line of history each; returns those (app, version).
fn delete_unlisted(
    transaction: &Transaction<'_>,
    currents: &HashSet<(String, String, String)>,
) -> Result<BTreeSet<(String, String)>> {
    let listed: HashSet<i64> = state::listings(transaction)?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let all = state::all_packages(transaction)?;
    let mut alive: HashSet<(String, String)> = currents
        .iter()
        .map(|(app, _, version)| (app.clone(), version.clone()))
        .collect();
    for package in &all {
        if listed.contains(&package.id) {
            alive.insert((package.app.clone(), package.identity.version.clone()));
        }
    }
    let doomed: Vec<&PackageRecord> = all
        .iter()
        .filter(|package| package.role != Role::Layer)
        .filter(|package| !alive.contains(&(package.app.clone(), package.identity.version.clone())))
        .collect();
    let (time, who) = (now(), who());
    let mut versions_removed: BTreeSet<(String, String)> = BTreeSet::new();
    for package in &doomed {
        state::delete_package(transaction, package.id)?;
        versions_removed.insert((package.app.clone(), package.identity.version.clone()));
    }
    for (app, version) in &versions_removed {
        state::record_history(
            transaction,
            &HistoryEntry {
                time,
                who: who.clone(),
                action: Action::Gc,
                app: app.clone(),
                stage: None,
                distribution: suites::codename(suites::distribution_of(version)),
                from: Some(version.clone()),
                to: None,
            },
        )?;
    }
    Ok(versions_removed)
}

/// Deletes the pool files that no row names and no published index (current or kept
/// by-hash generation) names; returns them. Runs after the publication, so that an
/// index never names a file that is gone.
fn delete_unused(session: &Session<'_>) -> Result<Vec<String>> {
    let root = &session.repository.root;
    let mut known: HashSet<String> = state::all_packages(&session.connection)?
        .into_iter()
        .map(|package| package.filename)
        .collect();
    known.extend(served_pool_files(root)?);
    let unused = pool::unreferenced(root, &known)?;
    for (index, filename) in unused.iter().enumerate() {
        pool::remove(root, filename)?;
        if index == 0 {
            crate::fault::point("gc-deleting");
        }
    }
    Ok(unused)
}
