//! `repo promote` and `repo rollback`: moving a stage of an application to another
//! version by listing references. No byte is copied or rebuilt.
//!
//! A stage points to a version (table `current`) through its stage package
//! `<app>-<stage>`, which its suite lists in that one version only. The payload
//! `<app>-<upstream>` stays listed in every suite it reached, so rolling back is always
//! installable.
//!
//! Each distribution's builds move in that distribution's suites (`bookworm-staging`);
//! a release (`1.0-1`) names its build for every distribution, and one command moves
//! them all in one transaction, or none when one of them cannot move.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use rusqlite::Connection;

use crate::debian::version;
use crate::naming::distribution::suite_of;
use crate::naming::Distribution;
use crate::repo::clock::now;
use crate::repo::config::RepoConfig;
use crate::repo::layers;
use crate::repo::session::{who, Session};
use crate::repo::stage_rules::{self, NoNextStage, NoRollbackTarget, NotPromotable, Standing};
use crate::repo::state::{self, Action, HistoryEntry, PackageRecord, Role};
use crate::repo::suites::{self, Suite};

/// Finds the full version of `app` that `requested` names, when it names one build:
/// the full version (`1.1-1`, `1.1-1+deb12`), or a release or upstream version that only
/// one build has.
pub(crate) fn resolve_version(
    connection: &Connection,
    app: &str,
    requested: &str,
) -> Result<String> {
    let mut versions = resolve_versions(connection, app, requested, None)?;
    // A host build's full version is also a release: alone, it names the host build.
    if let Some(exact) = versions.iter().position(|version| version == requested) {
        return Ok(versions.swap_remove(exact));
    }
    if versions.len() > 1 {
        bail!(
            "{app} {requested}: names the builds of several distributions ({}); give the \
             full version of one",
            versions.join(", ")
        );
    }
    Ok(versions.remove(0))
}

/// Finds the builds of `app` that `requested` names, at most one per distribution,
/// host builds first: a full version (`1.1-1+deb12`: that build only), a release
/// (`1.1-1`: its build for every distribution that has one) or an upstream version
/// (`1.1`) when only one revision of it exists. `only` keeps one distribution's build.
/// A layer's version (`1+deb12`) names no build: layers move with their releases.
pub(crate) fn resolve_versions(
    connection: &Connection,
    app: &str,
    requested: &str,
    only: Option<Distribution>,
) -> Result<Vec<String>> {
    let mut packages = state::packages_of_app(connection, app)?;
    packages.retain(|package| package.role != Role::Layer);
    if packages.is_empty() {
        bail!(
            "{app}: no such application in the repository; `debstage repo list` shows the \
             packages it has, `debstage repo add --manifest FILE` adds a build"
        );
    }
    let mut versions: Vec<String> = packages
        .iter()
        .map(|package| package.identity.version.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    versions.sort_by(|left, right| version::compare(left, right));
    let restriction = only.map_or_else(String::new, |only| format!(" for {only}"));
    // A full version with a distribution's suffix names that build alone; a version
    // without one is a release, which a host build and distributions' builds may share.
    if let Some(built_for) = suites::distribution_of(requested)
        .filter(|_| versions.iter().any(|known| known == requested))
    {
        if let Some(only) = only.filter(|only| *only != built_for) {
            bail!(
                "{app} {requested} is the build for {built_for}, not for --dist {only}; give \
                 --dist {built_for}, or the release without the suffix"
            );
        }
        return Ok(vec![requested.to_string()]);
    }
    let wanted =
        |version: &&String| only.is_none_or(|only| suites::distribution_of(version) == Some(only));
    let mut matching: Vec<&String> = versions
        .iter()
        .filter(|version| suites::release_of(version) == requested)
        .filter(wanted)
        .collect();
    if matching.is_empty() {
        matching = packages
            .iter()
            .filter(|package| package.upstream == requested)
            .map(|package| &package.identity.version)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(wanted)
            .collect();
    }
    let mut by_distribution: BTreeMap<usize, Vec<&String>> = BTreeMap::new();
    for version in matching {
        by_distribution
            .entry(suites::distribution_rank(suites::distribution_of(version)))
            .or_default()
            .push(version);
    }
    if by_distribution.is_empty() {
        // A version that `repo remove` or `repo gc` deleted says so, and how to bring it back.
        let names = |version: &str| stage_rules::names(version, requested);
        let deleted = state::history(connection, Some(app))?
            .into_iter()
            .rev()
            .find(|entry| {
                matches!(entry.action, Action::Remove | Action::Gc)
                    && entry.stage.is_none()
                    && entry.from.as_deref().is_some_and(names)
            });
        if let Some(entry) = deleted {
            bail!(
                "{app} {requested}: no such version{restriction} in the repository: `repo {}` \
                 deleted {} (see `debstage repo history {app}`); add the same build again with \
                 `debstage repo add --manifest FILE` (it has {})",
                entry.action.as_str(),
                entry.from.unwrap_or_default(),
                versions.join(", ")
            );
        }
        bail!(
            "{app} {requested}: no such version{restriction} in the repository; it has {} \
             (give one of those, or add the build with `debstage repo add --manifest FILE`)",
            versions.join(", ")
        );
    }
    if let Some(several) = by_distribution.values().find(|builds| builds.len() > 1) {
        bail!(
            "{app} {requested}: several revisions match ({}); give the full version",
            several
                .iter()
                .map(|version| version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(by_distribution.into_values().flatten().cloned().collect())
}

/// The packages a stage lists for a version: payloads (every architecture) or plain
/// packages. Layers are listed for the payloads that name them ([`layers::list_layers_of`]).
fn anchors(packages: &[PackageRecord]) -> Vec<&PackageRecord> {
    packages
        .iter()
        .filter(|package| package.role != Role::Stage && package.role != Role::Layer)
        .collect()
}

/// The stage package of `stage` among a version's packages.
fn stage_package<'a>(packages: &'a [PackageRecord], stage: &str) -> Option<&'a PackageRecord> {
    packages
        .iter()
        .find(|package| package.role == Role::Stage && package.stage.as_deref() == Some(stage))
}

/// Points `suite` (a stage, for one distribution's builds) of `app` to `version` inside
/// the open transaction: lists the payloads, and the stage package as the only version
/// of its name. Returns the version before.
fn point(
    connection: &Connection,
    app: &str,
    suite: &Suite,
    version: &str,
    packages: &[PackageRecord],
) -> Result<Option<String>> {
    let stage = suite.stage.as_str();
    let name = suite.name();
    let anchors = anchors(packages);
    if anchors.is_empty() {
        bail!(
            "{app} {version}: the pool has no payload of this version (only stage packages); \
             add the build's packages again with `debstage repo add --manifest FILE`"
        );
    }
    let needs_stage_package = anchors.iter().any(|package| package.role == Role::Payload);
    for anchor in &anchors {
        state::list(connection, &name, anchor.id)?;
        // The release's layer moves with it (layers have versions of their own).
        layers::list_layers_of(connection, &name, anchor)?;
    }
    match stage_package(packages, stage) {
        Some(pointer) => {
            state::unlist_name(connection, &name, &pointer.identity.package)?;
            state::list(connection, &name, pointer.id)?;
        }
        None if needs_stage_package => bail!(
            "{app} {version}: the pool has no stage package {app}-{stage} of this version; \
             add the build's packages again with `debstage repo add --manifest` \
             (stage packages of later stages wait in the pool)"
        ),
        None => {}
    }
    let before = state::current(connection, app, &name)?;
    state::set_current(connection, app, &name, version)?;
    Ok(before)
}

/// What a promote or a rollback did to one suite.
#[derive(Debug, Clone, serde::Serialize)]
struct Moved {
    /// The distribution's codename; `None` for host builds.
    distribution: Option<String>,
    /// The suite changed.
    suite: String,
    from: Option<String>,
    to: String,
    changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<bool>,
}

/// The JSON result of a promote or a rollback: one entry per distribution under
/// `distributions`; `from` and `to` at the top are the entry's for one distribution and
/// the releases (versions without the suffix) for several.
fn summary(app: &str, stage: &str, moves: &[Moved]) -> serde_json::Value {
    let (from, to) = match moves {
        [one] => (one.from.clone(), one.to.clone()),
        _ => {
            let froms: BTreeSet<Option<&str>> = moves
                .iter()
                .map(|moved| moved.from.as_deref().map(suites::release_of))
                .collect();
            let from = match froms.into_iter().collect::<Vec<_>>().as_slice() {
                [Some(one)] => Some((*one).to_string()),
                _ => None,
            };
            let to = moves
                .first()
                .map(|moved| suites::release_of(&moved.to).to_string())
                .unwrap_or_default();
            (from, to)
        }
    };
    let mut document = serde_json::json!({
        "app": app,
        "stage": stage,
        "from": from,
        "to": to,
        "changed": moves.iter().any(|moved| moved.changed),
        "distributions": moves,
    });
    if moves.iter().any(|moved| moved.skipped.is_some()) {
        document["skipped"] =
            serde_json::json!(moves.iter().any(|moved| moved.skipped == Some(true)));
    }
    document
}

/// Runs `repo promote APP VERSION [--to STAGE] [--dist CODENAME]`: the build of every
/// distribution that has the version (or of `--dist`'s only), each in its own suite, in
/// one transaction.
pub(crate) fn promote(
    session: &mut Session<'_>,
    app: &str,
    requested: &str,
    to: Option<&str>,
    skip: bool,
    only: Option<Distribution>,
) -> Result<()> {
    let config = session.repository.config.clone();
    crate::repo::keyring::refuse_as_application(&config, app, "promote")?;
    let transaction = session.connection.transaction()?;
    let versions = resolve_versions(&transaction, app, requested, only)?;
    let mut builds = Vec::with_capacity(versions.len());
    for version in versions {
        let distribution = suites::distribution_of(&version);
        let packages = state::packages_of_version(&transaction, app, &version)?;
        let held = stages_holding(&transaction, &config, distribution, &packages)?;
        builds.push((version, distribution, packages, held));
    }
    let target_index = match to {
        Some(target) => config.stage_index(target)?,
        None => {
            let mut rolled_back = Vec::with_capacity(builds.len());
            for (version, distribution, _, held) in &builds {
                rolled_back.push(match held.last() {
                    Some(&latest) if latest > 0 => rolled_back_from(
                        &transaction,
                        app,
                        *distribution,
                        &config.stages[latest],
                        version,
                    )?,
                    _ => false,
                });
            }
            let standings: Vec<Standing<'_>> = builds
                .iter()
                .zip(&rolled_back)
                .map(|((_, _, _, held), &rolled_back_from_latest)| Standing {
                    held,
                    rolled_back_from_latest,
                })
                .collect();
            match stage_rules::next_stage(&standings, config.stages.len()) {
                Ok(index) => index,
                Err(NoNextStage::InNoStage(build)) => bail!(
                    "{app} {} is in no stage yet; add it with `debstage repo add` first",
                    builds[build].0
                ),
                Err(NoNextStage::AtLastStage { build, latest }) => bail!(
                    "{app} {} is already in {}, the last stage: there is no stage to promote it \
                     to; `debstage repo show {app}` shows every stage",
                    builds[build].0,
                    suite_of(builds[build].1, &config.stages[latest])
                ),
                Err(NoNextStage::Split) => bail!(
                    "cannot promote {app} {requested}: its builds are in different stages ({}); \
                     give the stage with --to, or one distribution with --dist",
                    builds
                        .iter()
                        .map(|(version, distribution, _, held)| format!(
                            "{version} in {}",
                            held.last()
                                .map_or("no stage".to_string(), |&index| suite_of(
                                    *distribution,
                                    &config.stages[index]
                                ))
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    let stage = config.stages[target_index].clone();
    let mut moves = Vec::with_capacity(builds.len());
    for (version, distribution, packages, held) in &builds {
        let suite = suites::suite(&config, *distribution, &stage)?;
        let target = suite.name();
        let earlier = |index: usize| suite_of(*distribution, &config.stages[index]);
        let skipping = match stage_rules::promotion(held, target_index) {
            Ok(promotion) => promotion.skipping,
            Err(refusal) => {
                let before = match refusal {
                    NotPromotable::FirstStage => "it is the first stage: use `debstage repo add` \
                                                  to put a version there"
                        .to_string(),
                    NotPromotable::InNoStage => format!(
                        "it must be in {} (the stage before {target}) first; add it with \
                         `debstage repo add --manifest FILE`, then promote it stage by stage",
                        earlier(target_index - 1)
                    ),
                    NotPromotable::OnlyLater => format!(
                        "it must be in {} (the stage before {target}) or an earlier stage first; \
                         promote it there with `debstage repo promote {app} {version} {}`",
                        earlier(target_index - 1),
                        config.stages[target_index - 1]
                    ),
                };
                let now_in = if held.is_empty() {
                    "no stage".to_string()
                } else {
                    held.iter()
                        .map(|&index| earlier(index))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                bail!("cannot promote {app} {version} to {target}: it is in {now_in}; {before}");
            }
        };
        if skipping && !skip {
            bail!(
                "cannot promote {app} {version} to {target}: it is not in {}, the stage before \
                 {target}; promote it there first (`debstage repo promote {app} {version} {}`), \
                 or pass --skip to go past it (recorded as a skip)",
                earlier(target_index - 1),
                config.stages[target_index - 1]
            );
        }
        if state::current(&transaction, app, &target)?.as_deref() == Some(version.as_str()) {
            session.reporter.status(format!(
                "{app} {version} is already the version of {target}"
            ));
            moves.push(Moved {
                distribution: suite.codename(),
                suite: target,
                from: Some(version.clone()),
                to: version.clone(),
                changed: false,
                skipped: Some(false),
            });
            continue;
        }
        let before = point(&transaction, app, &suite, version, packages)?;
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
                stage: Some(stage.clone()),
                distribution: suite.codename(),
                from: before.clone(),
                to: Some(version.clone()),
            },
        )?;
        state::owe_publication(&transaction, &target)?;
        moves.push(Moved {
            distribution: suite.codename(),
            suite: target,
            from: before,
            to: version.clone(),
            changed: true,
            skipped: Some(skipping),
        });
    }
    transaction.commit()?;
    crate::fault::point("promote-committed");
    session.publish_pending()?;
    for moved in moves.iter().filter(|moved| moved.changed) {
        session.reporter.status(format!(
            "promoted {app} {} to {} (was {})",
            moved.to,
            moved.suite,
            moved.from.as_deref().unwrap_or("none")
        ));
    }
    session.reporter.data("", &summary(app, &stage, &moves))?;
    Ok(())
}

/// The stage indexes whose suites (of `distribution`) list a payload (or plain package)
/// of the version.
fn stages_holding(
    connection: &Connection,
    config: &RepoConfig,
    distribution: Option<Distribution>,
    packages: &[PackageRecord],
) -> Result<Vec<usize>> {
    let mut held = BTreeSet::new();
    for anchor in anchors(packages) {
        for suite in state::suites_of(connection, anchor.id)? {
            if let Some(index) = config
                .stages
                .iter()
                .position(|stage| suite_of(distribution, stage) == suite)
            {
                held.insert(index);
            }
        }
    }
    Ok(held.into_iter().collect())
}

/// Runs `repo rollback APP STAGE [--to VERSION] [--dist CODENAME]`: the stage's suite of
/// every distribution that has a version of `app` there (or `--dist`'s only) goes back,
/// each to its own previous version, in one transaction.
pub(crate) fn rollback(
    session: &mut Session<'_>,
    app: &str,
    stage: &str,
    to: Option<&str>,
    only: Option<Distribution>,
) -> Result<()> {
    let config = session.repository.config.clone();
    crate::repo::keyring::refuse_as_application(&config, app, "rollback")?;
    config.stage_index(stage)?;
    // A full version with a distribution's suffix names that distribution.
    let only = match (only, to.and_then(suites::distribution_of)) {
        (Some(only), Some(named)) if only != named => bail!(
            "cannot roll back {app} in {stage} to {}: that is the build for {named}, not for \
             --dist {only}; give --dist {named}, or the release without the suffix",
            to.unwrap_or_default()
        ),
        (only, named) => only.or(named),
    };
    let transaction = session.connection.transaction()?;
    let mut rolled = Vec::new();
    for distribution in suites::distributions(&transaction)? {
        if only.is_some_and(|only| Some(only) != distribution) {
            continue;
        }
        let suite = suites::suite(&config, distribution, stage)?;
        if let Some(current) = state::current(&transaction, app, &suite.name())? {
            rolled.push((suite, current));
        }
    }
    if rolled.is_empty() {
        let place = only.map_or_else(|| stage.to_string(), |only| only.suite(stage));
        bail!(
            "cannot roll back {app} in {place}: the stage has no version of {app}; \
             `debstage repo show {app}` shows which stages have one"
        );
    }
    // One distribution that cannot go back stops them all; `--dist` moves the others.
    let hint = if rolled.len() > 1 {
        let others: Vec<String> = rolled
            .iter()
            .filter_map(|(suite, _)| suite.codename())
            .collect();
        format!(
            " (nothing was rolled back; to roll back one distribution alone, give --dist {})",
            others.join(" or --dist ")
        )
    } else {
        String::new()
    };
    let mut moves = Vec::with_capacity(rolled.len());
    for (suite, current) in rolled {
        let name = suite.name();
        let codename = suite.codename();
        let history = state::stage_history(&transaction, app, stage, codename.as_deref())?;
        let choices = rollback_choices(&transaction, app, &name, &current, &history)?;
        let next_step = if choices.is_empty() && config.stage_index(stage)? == 0 {
            format!(
                "the stage lists no other version it held; add one there with \
                 `debstage repo add {stage} --manifest FILE`"
            )
        } else if choices.is_empty() {
            format!(
                "the stage lists no other version it held; promote one there with \
                 `debstage repo promote {app} VERSION {stage}`"
            )
        } else {
            format!(
                "it can go back to {} (`debstage repo rollback {app} {stage} --to VERSION`)",
                choices.join(", ")
            )
        };
        let target = match stage_rules::rollback_target(&history, &current, to) {
            Ok(target) => target,
            Err(NoRollbackTarget::NeverHad) => bail!(
                "cannot roll back {app} in {name} to {}: the stage never had that version; \
                 {next_step}{hint}",
                to.unwrap_or_default()
            ),
            Err(NoRollbackTarget::FirstVersion) => bail!(
                "cannot roll back {app} in {name}: {current} is the first version the stage \
                 had, there is no earlier one; {next_step}{hint}"
            ),
        };
        if target == current {
            session
                .reporter
                .status(format!("{app} in {name} is at {current} already"));
            moves.push(Moved {
                distribution: codename,
                suite: name,
                from: Some(current.clone()),
                to: current,
                changed: false,
                skipped: None,
            });
            continue;
        }
        let packages = state::packages_of_version(&transaction, app, &target)?;
        if packages.is_empty() {
            bail!(
                "cannot roll back {app} in {name} to {target}: that version was removed from \
                 the repository; {next_step}{hint}"
            );
        }
        // A version removed from the stage (`repo remove --stage`, `repo gc`) left it on
        // purpose: a rollback does not bring it back behind the remover's back.
        if !listed_in(&transaction, &name, &packages)? {
            bail!(
                "cannot roll back {app} in {name} to {target}: the stage no longer lists that \
                 version (it was removed from there); {next_step}{hint}"
            );
        }
        point(&transaction, app, &suite, &target, &packages)?;
        state::record_history(
            &transaction,
            &HistoryEntry {
                time: now(),
                who: who(),
                action: Action::Rollback,
                app: app.to_string(),
                stage: Some(stage.to_string()),
                distribution: codename.clone(),
                from: Some(current.clone()),
                to: Some(target.clone()),
            },
        )?;
        state::owe_publication(&transaction, &name)?;
        moves.push(Moved {
            distribution: codename,
            suite: name,
            from: Some(current),
            to: target,
            changed: true,
            skipped: None,
        });
    }
    transaction.commit()?;
    crate::fault::point("rollback-committed");
    session.publish_pending()?;
    for moved in moves.iter().filter(|moved| moved.changed) {
        session.reporter.status(format!(
            "rolled {app} in {} back from {} to {}",
            moved.suite,
            moved.from.as_deref().unwrap_or("none"),
            moved.to
        ));
    }
    session.reporter.data("", &summary(app, stage, &moves))?;
    Ok(())
}

/// Whether `suite` lists a payload (or plain package) of the version.
fn listed_in(connection: &Connection, suite: &str, packages: &[PackageRecord]) -> Result<bool> {
    for anchor in anchors(packages) {
        if state::suites_of(connection, anchor.id)?
            .iter()
            .any(|listed| listed == suite)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The versions `suite` of `app` can be rolled back to: those its history shows it held,
/// that it still lists, other than `current`; lowest first.
fn rollback_choices(
    connection: &Connection,
    app: &str,
    suite: &str,
    current: &str,
    history: &[HistoryEntry],
) -> Result<Vec<String>> {
    let mut choices = Vec::new();
    for version in stage_rules::versions_held_before(history, current) {
        let packages = state::packages_of_version(connection, app, version)?;
        if !packages.is_empty() && listed_in(connection, suite, &packages)? {
            choices.push(version.to_string());
        }
    }
    choices.sort_by(|left, right| version::compare(left, right));
    Ok(choices)
}

/// Whether the last change that moved `stage` (of `distribution`) of `app` away from
/// `version` was a rollback.
fn rolled_back_from(
    connection: &Connection,
    app: &str,
    distribution: Option<Distribution>,
    stage: &str,
    version: &str,
) -> Result<bool> {
    let codename = suites::codename(distribution);
    let history = state::stage_history(connection, app, stage, codename.as_deref())?;
    let still_there = state::current(connection, app, &suite_of(distribution, stage))?.as_deref()
        == Some(version);
    Ok(stage_rules::rolled_back_from(
        &history,
        version,
        still_there,
    ))
}
