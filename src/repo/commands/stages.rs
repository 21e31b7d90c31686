//! `repo promote` and `repo rollback`: moving a stage of an application to another
//! version by listing references. No byte is copied or rebuilt.
//!
//! A stage points to a version (table `current`) through its stage package
//! `<app>-<stage>`, which its suite lists in that one version only. The payload
//! `<app>-<upstream>` stays listed in every suite it reached, so rolling back is always
//! installable.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use rusqlite::Connection;

use crate::debian::version;
use crate::repo::config::RepoConfig;
use crate::repo::session::{now, who, Session};
use crate::repo::state::{self, Action, HistoryEntry, PackageRecord, Role};

/// Finds the full version of `app` that `requested` names: the full version (`1.1-1`),
/// or an upstream version (`1.1`) when only one revision of it exists.
pub(crate) fn resolve_version(
    connection: &Connection,
    app: &str,
    requested: &str,
) -> Result<String> {
    let packages = state::packages_of_app(connection, app)?;
    if packages.is_empty() {
        bail!("{app}: no such application in the repository");
    }
    let mut versions: Vec<String> = packages
        .iter()
        .map(|package| package.version.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    versions.sort_by(|left, right| version::compare(left, right));
    if versions.iter().any(|known| known == requested) {
        return Ok(requested.to_string());
    }
    let matching: Vec<&String> = packages
        .iter()
        .filter(|package| package.upstream == requested)
        .map(|package| &package.version)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!(
            "{app} {requested}: no such version in the repository; it has {}",
            versions.join(", ")
        ),
        several => bail!(
            "{app} {requested}: several revisions match ({}); give the full version",
            several
                .iter()
                .map(|version| version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The packages a stage lists for a version: payloads (every architecture) or plain
/// packages.
fn anchors(packages: &[PackageRecord]) -> Vec<&PackageRecord> {
    packages
        .iter()
        .filter(|package| package.role != Role::Stage)
        .collect()
}

/// The stage package of `stage` among a version's packages.
fn stage_package<'a>(packages: &'a [PackageRecord], stage: &str) -> Option<&'a PackageRecord> {
    packages
        .iter()
        .find(|package| package.role == Role::Stage && package.stage.as_deref() == Some(stage))
}

/// Points `stage` of `app` to `version` inside the open transaction: lists the payloads,
/// and the stage package as the only version of its name. Returns the version before.
fn point(
    connection: &Connection,
    app: &str,
    stage: &str,
    version: &str,
    packages: &[PackageRecord],
) -> Result<Option<String>> {
    let anchors = anchors(packages);
    if anchors.is_empty() {
        bail!("{app} {version}: the pool has no payload of this version (only stage packages)");
    }
    let needs_stage_package = anchors.iter().any(|package| package.role == Role::Payload);
    for anchor in &anchors {
        state::list(connection, stage, anchor.id)?;
    }
    match stage_package(packages, stage) {
        Some(pointer) => {
            state::unlist_name(connection, stage, &pointer.package)?;
            state::list(connection, stage, pointer.id)?;
        }
        None if needs_stage_package => bail!(
            "{app} {version}: the pool has no stage package {app}-{stage} of this version; \
             add the build's packages again with `debstage repo add --manifest` \
             (stage packages of later stages wait in the pool)"
        ),
        None => {}
    }
    let before = state::current(connection, app, stage)?;
    state::set_current(connection, app, stage, version)?;
    Ok(before)
}

/// Runs `repo promote APP VERSION [--to STAGE]`.
pub(crate) fn promote(
    session: &mut Session<'_>,
    app: &str,
    requested: &str,
    to: Option<&str>,
    skip: bool,
) -> Result<()> {
    let config = session.repository.config.clone();
    let transaction = session.connection.transaction()?;
    let version = resolve_version(&transaction, app, requested)?;
    let packages = state::packages_of_version(&transaction, app, &version)?;
    let held = stages_holding(&transaction, &config, &packages)?;
    let target_index = match to {
        Some(target) => config.stage_index(target)?,
        None => {
            let Some(&latest) = held.last() else {
                bail!("{app} {version} is in no stage yet; add it with `debstage repo add` first");
            };
            if latest + 1 >= config.stages.len() {
                bail!(
                    "{app} {version} is already in {}, the last stage",
                    config.stages[latest]
                );
            }
            latest + 1
        }
    };
    let target = config.stages[target_index].clone();
    if !held.iter().any(|&index| index < target_index) {
        let before = if target_index == 0 {
            "it is the first stage: use `debstage repo add` to put a version there".to_string()
        } else {
            format!(
                "it must be in {} (the stage before {target}) or an earlier stage first",
                config.stages[target_index - 1]
            )
        };
        let now_in = if held.is_empty() {
            "no stage".to_string()
        } else {
            held.iter()
                .map(|&index| config.stages[index].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        bail!("cannot promote {app} {version} to {target}: it is in {now_in}; {before}");
    }
    // Promotion goes one stage at a time: from the stage directly before the target.
    let skipping = !held.contains(&(target_index - 1));
    if skipping && !skip {
        bail!(
            "cannot promote {app} {version} to {target}: it is not in {}, the stage before \
             {target}; promote it there first, or pass --skip to go past it (recorded as a skip)",
            config.stages[target_index - 1]
        );
    }
    if state::current(&transaction, app, &target)?.as_deref() == Some(version.as_str()) {
        session.reporter.status(format!(
            "{app} {version} is already the version of {target}"
        ));
        let current = Some(version.as_str());
        session.reporter.data(
            "",
            &serde_json::json!({"app": app, "stage": target, "from": current, "to": current, "changed": false, "skipped": false}),
        )?;
        return Ok(());
    }
    let before = point(&transaction, app, &target, &version, &packages)?;
    state::record_history(
        &transaction,
        &HistoryEntry {
            time: now(),
            who: who(),
            action: if skipping {
                Action::PromoteSkipping
            } else {
                Action::Promote
            },
            app: app.to_string(),
            stage: Some(target.clone()),
            from: before.clone(),
            to: Some(version.clone()),
        },
    )?;
    state::owe_publication(&transaction, &target)?;
    transaction.commit()?;
    crate::fault::point("promote-committed");
    session.publish_pending()?;
    session.reporter.status(format!(
        "promoted {app} {version} to {target} (was {})",
        before.as_deref().unwrap_or("none")
    ));
    session.reporter.data(
        "",
        &serde_json::json!({"app": app, "stage": target, "from": before, "to": version, "changed": true, "skipped": skipping}),
    )?;
    Ok(())
}

/// The stage indexes whose suites list a payload (or plain package) of the version.
fn stages_holding(
    connection: &Connection,
    config: &RepoConfig,
    packages: &[PackageRecord],
) -> Result<Vec<usize>> {
    let mut held = BTreeSet::new();
    for anchor in anchors(packages) {
        for suite in state::suites_of(connection, anchor.id)? {
            if let Some(index) = config.stages.iter().position(|stage| *stage == suite) {
                held.insert(index);
            }
        }
    }
    Ok(held.into_iter().collect())
}

/// Runs `repo rollback APP STAGE [--to VERSION]`.
pub(crate) fn rollback(
    session: &mut Session<'_>,
    app: &str,
    stage: &str,
    to: Option<&str>,
) -> Result<()> {
    let config = session.repository.config.clone();
    config.stage_index(stage)?;
    let transaction = session.connection.transaction()?;
    let Some(current) = state::current(&transaction, app, stage)? else {
        bail!("cannot roll back {app} in {stage}: the stage has no version of {app}");
    };
    let history = state::stage_history(&transaction, app, stage)?;
    let target = match to {
        Some(requested) => {
            let had: BTreeSet<&str> = history
                .iter()
                .flat_map(|entry| [entry.from.as_deref(), entry.to.as_deref()])
                .flatten()
                .collect();
            let found = had.iter().find(|version| {
                **version == requested
                    || crate::debian::version::Version::parse(version)
                        .is_ok_and(|parsed| parsed.upstream == requested)
            });
            match found {
                Some(version) => (*version).to_string(),
                None => bail!(
                    "cannot roll back {app} in {stage} to {requested}: the stage never had \
                     that version; it had {}",
                    had.into_iter().collect::<Vec<_>>().join(", ")
                ),
            }
        }
        None => {
            // The version before is where the change that brought the current version
            // came from; rollbacks are skipped so that rolling back twice goes back twice.
            let arrival = history.iter().rev().find(|entry| {
                entry.action != Action::Rollback && entry.to.as_deref() == Some(current.as_str())
            });
            match arrival.and_then(|entry| entry.from.clone()) {
                Some(previous) => previous,
                None => bail!(
                    "cannot roll back {app} in {stage}: {current} is the first version the \
                     stage had, there is no earlier one"
                ),
            }
        }
    };
    if target == current {
        session
            .reporter
            .status(format!("{app} in {stage} is at {current} already"));
        session.reporter.data(
            "",
            &serde_json::json!({"app": app, "stage": stage, "from": current, "to": current, "changed": false}),
        )?;
        return Ok(());
    }
    let packages = state::packages_of_version(&transaction, app, &target)?;
    if packages.is_empty() {
        bail!(
            "cannot roll back {app} in {stage} to {target}: that version was removed from \
             the repository"
        );
    }
    point(&transaction, app, stage, &target, &packages)?;
    state::record_history(
        &transaction,
        &HistoryEntry {
            time: now(),
            who: who(),
            action: Action::Rollback,
            app: app.to_string(),
            stage: Some(stage.to_string()),
            from: Some(current.clone()),
            to: Some(target.clone()),
        },
    )?;
    state::owe_publication(&transaction, stage)?;
    transaction.commit()?;
    crate::fault::point("rollback-committed");
    session.publish_pending()?;
    session.reporter.status(format!(
        "rolled {app} in {stage} back from {current} to {target}"
    ));
    session.reporter.data(
        "",
        &serde_json::json!({"app": app, "stage": stage, "from": current, "to": target, "changed": true}),
    )?;
    Ok(())
}
