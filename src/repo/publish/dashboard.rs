//! The fleet view: `index.html` and the `status.json` it shows, written at the published
//! tree's root by every publication, so that `repo serve`, a bucket's website endpoint
//! and a CDN serve the same page with no code of their own. The page is rendered here
//! (the matrix needs no JavaScript; a little filters the history) and has no external
//! assets. `[publish] dashboard = false` removes both files.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};
use handlebars::Handlebars;
use rusqlite::Connection;
use serde::Serialize;

use crate::naming::distribution::suite_of;
use crate::naming::Distribution;
use crate::repo::clock::format_time;
use crate::repo::config::{KeyState, RepoConfig};
use crate::repo::sign::keys;
use crate::repo::stage_diff::{self, Difference, Side};
use crate::repo::state::{self, Action, ReleaseProvenance, Role};
use crate::repo::{subscribe, suites};

/// The files of the dashboard at the published tree's root.
pub(crate) const FILES: [&str; 2] = ["index.html", "status.json"];

/// How many history entries the dashboard shows, newest first.
const HISTORY_LENGTH: usize = 100;

/// What `status.json` holds (docs/schemas/dashboard-status.schema.json).
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    schema_version: u64,
    origin: String,
    label: String,
    /// When the page was published (SOURCE_DATE_EPOCH when set).
    generated: String,
    /// The stages in promotion order.
    stages: Vec<String>,
    /// Every application, in name order.
    apps: Vec<String>,
    /// One row per application and distribution, a cell per stage.
    applications: Vec<Row>,
    /// What differs between each pair of adjacent stages.
    differences: Vec<StagePair>,
    /// The latest history entries, newest first.
    history: Vec<Event>,
    /// How a server subscribes to each stage.
    subscribe: Subscribe,
    /// The keyring package every suite lists (no application: no row of the matrix).
    keyring: crate::repo::keyring::Shown,
}

/// The URL the page does not know when it is rendered (it is served from anywhere): the
/// `.sources` texts carry this placeholder, and the page's script puts its own address in
/// its place.
pub(crate) const URL_PLACEHOLDER: &str = "REPOSITORY_URL";

/// What a server needs to follow a stage: the `.sources` text per suite, as `repo
/// sources` prints it, and the fingerprints of the keys servers trust.
#[derive(Debug, Serialize)]
struct Subscribe {
    url_placeholder: &'static str,
    /// Every key not retired (signing), upper-case hex.
    fingerprints: Vec<String>,
    suites: Vec<SuiteSources>,
}

/// The `.sources` text of one suite (one stage of one distribution).
#[derive(Debug, Serialize)]
struct SuiteSources {
    stage: String,
    distribution: Option<String>,
    suite: String,
    text: String,
}

/// The cells of one application and distribution.
#[derive(Debug, Serialize)]
struct Row {
    app: String,
    distribution: Option<String>,
    cells: Vec<Cell>,
}

/// What one stage of one application holds.
#[derive(Debug, Serialize)]
struct Cell {
    stage: String,
    suite: String,
    version: Option<String>,
    commit: Option<String>,
    commit_short: Option<String>,
    dirty: Option<bool>,
    /// Who moved the stage to its version, when and how (the latest history entry that
    /// did).
    promoted_by: Option<String>,
    promoted_at: Option<String>,
    action: Option<Action>,
    /// Whether the version differs from the stage before's (false for the first stage).
    differs_from_previous: bool,
}

/// Two adjacent stages and the applications whose releases differ between them.
#[derive(Debug, Serialize)]
struct StagePair {
    from_stage: String,
    to_stage: String,
    applications: Vec<Difference>,
}

/// One history entry.
#[derive(Debug, Serialize)]
struct Event {
    when: String,
    who: String,
    action: Action,
    app: String,
    stage: Option<String>,
    distribution: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// The commit of the version moved to, when known.
    commit: Option<String>,
    commit_short: Option<String>,
}

/// The first 12 digits of a commit.
fn short(commit: &Option<String>) -> Option<String> {
    commit
        .as_ref()
        .map(|commit| commit.chars().take(12).collect())
}

/// Reads what the dashboard shows from the state.
pub(crate) fn status(
    root: &Path,
    connection: &Connection,
    config: &RepoConfig,
    generated: SystemTime,
) -> Result<Status> {
    let provenance = state::all_provenance(connection)?;
    let commit_of = |app: &str, version: &Option<String>| -> Option<&ReleaseProvenance> {
        version
            .as_ref()
            .and_then(|version| provenance.get(&(app.to_string(), version.clone())))
    };
    let keyring = crate::repo::keyring::Shown::of(root, config, connection)?;
    let packages = state::all_packages(connection)?;
    let apps: BTreeSet<String> = packages
        .iter()
        .filter(|package| package.app != keyring.package)
        .map(|package| package.app.clone())
        .collect();
    let history = state::history(connection, None)?;
    let mut applications = Vec::new();
    let mut shown: Vec<Option<Distribution>> = Vec::new();
    for app in &apps {
        let mut distributions: Vec<Option<Distribution>> = packages
            .iter()
            .filter(|package| package.app == *app)
            .map(|package| suites::distribution_of(&package.identity.version))
            .collect();
        distributions.sort_by_key(|distribution| suites::distribution_rank(*distribution));
        distributions.dedup();
        for distribution in distributions {
            let codename = suites::codename(distribution);
            if !shown.contains(&distribution) {
                shown.push(distribution);
            }
            let mut cells: Vec<Cell> = Vec::new();
            for stage in &config.stages {
                let suite = suite_of(distribution, stage);
                let version = state::current(connection, app, &suite)?;
                let known = commit_of(app, &version);
                let moved = history.iter().rev().find(|entry| {
                    entry.app == *app
                        && entry.stage.as_deref() == Some(stage.as_str())
                        && entry.distribution == codename
                        && entry.to.is_some()
                        && entry.to == version
                });
                let differs_from_previous = cells
                    .last()
                    .is_some_and(|previous| previous.version != version);
                let commit = known.and_then(|known| known.commit.clone());
                cells.push(Cell {
                    stage: stage.clone(),
                    suite,
                    commit_short: short(&commit),
                    commit,
                    dirty: known.and_then(|known| known.dirty),
                    promoted_by: moved.map(|entry| entry.who.clone()),
                    promoted_at: moved.map(|entry| format_time(entry.time)),
                    action: moved.map(|entry| entry.action),
                    differs_from_previous,
                    version,
                });
            }
            applications.push(Row {
                app: app.clone(),
                distribution: codename,
                cells,
            });
        }
    }
    let mut differences = Vec::new();
    for pair in config.stages.windows(2) {
        let compared = stage_diff::compare(
            connection,
            config,
            &Side::Stage(pair[0].clone()),
            &Side::Stage(pair[1].clone()),
            None,
        )?;
        differences.push(StagePair {
            from_stage: pair[0].clone(),
            to_stage: pair[1].clone(),
            applications: compared
                .into_iter()
                .filter(|difference| !difference.same)
                .collect(),
        });
    }
    differences.retain(|pair| !pair.applications.is_empty());
    let history = history
        .iter()
        .rev()
        .take(HISTORY_LENGTH)
        .map(|entry| {
            let commit = commit_of(&entry.app, &entry.to).and_then(|known| known.commit.clone());
            Event {
                when: format_time(entry.time),
                who: entry.who.clone(),
                action: entry.action,
                app: entry.app.clone(),
                stage: entry.stage.clone(),
                distribution: entry.distribution.clone(),
                from: entry.from.clone(),
                to: entry.to.clone(),
                commit_short: short(&commit),
                commit,
            }
        })
        .collect();
    let generated = generated
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    shown.sort_by_key(|distribution| suites::distribution_rank(*distribution));
    let subscribe = subscribe(root, connection, config, shown)?;
    Ok(Status {
        schema_version: 1,
        origin: config.origin.clone(),
        label: config.label.clone(),
        generated: format_time(generated),
        stages: config.stages.clone(),
        apps: apps.into_iter().collect(),
        applications,
        differences,
        history,
        subscribe,
        keyring,
    })
}

/// The `.sources` text of every stage of every distribution the matrix shows (the host
/// suites when it shows none), and the fingerprints of the keys servers trust.
fn subscribe(
    root: &Path,
    connection: &Connection,
    config: &RepoConfig,
    mut shown: Vec<Option<Distribution>>,
) -> Result<Subscribe> {
    let fingerprints = keys::records(root, &config.signing)?
        .into_iter()
        .filter(|record| record.state == KeyState::Signing)
        .map(|record| record.fingerprint)
        .collect();
    if shown.is_empty() {
        shown.push(None);
    }
    let mut suites = Vec::new();
    for distribution in shown {
        for stage in &config.stages {
            let suite = suite_of(distribution, stage);
            let mut stage_packages: Vec<String> = state::suite_packages(connection, &suite)?
                .into_iter()
                .filter(|package| package.role == Role::Stage)
                .map(|package| package.identity.package)
                .collect();
            stage_packages.dedup();
            suites.push(SuiteSources {
                stage: stage.clone(),
                distribution: suites::codename(distribution),
                text: subscribe::server_text(
                    URL_PLACEHOLDER,
                    &suite,
                    &config.origin,
                    &subscribe::Keyring::of(connection, &config.origin, &suite)?,
                    &stage_packages,
                ),
                suite,
            });
        }
    }
    Ok(Subscribe {
        url_placeholder: URL_PLACEHOLDER,
        fingerprints,
        suites,
    })
}

/// The page: the template rendered with HTML escaping (handlebars' default) and strict
/// mode, so a missing value is an error rather than an empty cell.
pub(crate) fn render(status: &Status) -> Result<String> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry
        .register_template_string(
            "dashboard",
            include_str!("../../../templates/dashboard.html.hbs"),
        )
        .context("templates/dashboard.html.hbs cannot be parsed")?;
    registry
        .render("dashboard", status)
        .context("templates/dashboard.html.hbs cannot be rendered")
}

/// The bytes of both files: (`index.html`, `status.json`).
pub(crate) fn files(
    root: &Path,
    connection: &Connection,
    config: &RepoConfig,
    generated: SystemTime,
) -> Result<[Vec<u8>; 2]> {
    let status = status(root, connection, config, generated)?;
    let mut json = serde_json::to_vec_pretty(&status)?;
    json.push(b'\n');
    Ok([render(&status)?.into_bytes(), json])
}

/// Removes the dashboard's files (`dashboard = false`): a repository that turns it off
/// stops showing its history.
pub(crate) fn remove(root: &Path) -> Result<()> {
    for name in FILES {
        let path = root.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("{}: cannot be removed", path.display()))
            }
        }
    }
    Ok(())
}
