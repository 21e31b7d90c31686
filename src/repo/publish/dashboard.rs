//! The fleet view: `index.html` and the `status.json` it shows, written at the published
//! tree's root by every publication, so that `repo serve`, a bucket's website endpoint
//! and a CDN serve the same page with no code of their own. The page is rendered here
//! (the matrix needs no JavaScript; a little filters the history) and has no external
//! assets. `[publish] dashboard = false` removes both files.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};
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
    // Every lookup below is in maps read once: with 20,000 applications, a scan of the
    // packages or the history per application was quadratic (seconds per publication).
    // The snapshot the stage comparisons read also gives the provenance, the stage
    // pointers and each application's packages (the keyring package left out).
    let snapshot = stage_diff::Snapshot::load(connection, config, None)?;
    let provenance = snapshot.provenance();
    let commit_of = |app: &str, version: &Option<String>| -> Option<&ReleaseProvenance> {
        version
            .as_ref()
            .and_then(|version| provenance.get(&(app.to_string(), version.clone())))
    };
    let keyring = crate::repo::keyring::Shown::of(root, config, connection)?;
    let currents = snapshot.currents();
    let history = state::history(connection, None)?;
    // The latest entry that moved each (application, stage, distribution) to a version.
    let mut moved_to: HashMap<(&str, &str, Option<&str>, &str), &state::HistoryEntry> =
        HashMap::new();
    for entry in &history {
        if let (Some(stage), Some(to)) = (&entry.stage, &entry.to) {
            moved_to.insert(
                (&entry.app, stage, entry.distribution.as_deref(), to),
                entry,
            );
        }
    }
    let mut applications = Vec::new();
    let mut shown: Vec<Option<Distribution>> = Vec::new();
    for (app, packages) in snapshot.apps() {
        let pointers = currents.get(app);
        let versions = packages
            .iter()
            .map(|package| package.identity.version.as_str());
        for distribution in suites::distributions_of(versions) {
            let codename = suites::codename(distribution);
            if !shown.contains(&distribution) {
                shown.push(distribution);
            }
            let mut cells: Vec<Cell> = Vec::new();
            for stage in &config.stages {
                let suite = suite_of(distribution, stage);
                let version = pointers.and_then(|pointers| pointers.get(&suite)).cloned();
                let known = commit_of(app, &version);
                let moved = version.as_deref().and_then(|version| {
                    moved_to
                        .get(&(app.as_str(), stage.as_str(), codename.as_deref(), version))
                        .copied()
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
        let compared = snapshot.compare(
            config,
            &Side::Stage(pair[0].clone()),
            &Side::Stage(pair[1].clone()),
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
        apps: snapshot.apps().keys().cloned().collect(),
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
            let stage_packages = state::listed_names(connection, &suite, Role::Stage)?;
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

/// The page, rendered from `templates/dashboard.html` by askama: the template is compiled
/// with the crate (every field it names is checked by the compiler) and HTML-escapes what
/// it prints. The other templates are handlebars', rendered once per build; this one is
/// rendered by every publication, and with 20,000 applications handlebars took ~0.45 s
/// of the ~1.2 s an add took (it turns the whole status into JSON values first, then
/// looks each name up in them), against ~25 ms here (bench/NOTES.md).
#[derive(askama::Template)]
#[template(path = "dashboard.html")]
struct Page<'a> {
    status: &'a Status,
}

fn page(status: &Status) -> Result<String> {
    askama::Template::render(&Page { status })
        .context("templates/dashboard.html cannot be rendered")
}

/// The bytes of both files, [`FILES`]: (`index.html`, `status.json`), made side by side.
/// `status.json` is compact: pretty-printed, it was 2.2 times the size (22 MB with
/// 20,000 applications), written and uploaded to every target by every publication.
pub(crate) fn render(status: &Status) -> Result<[Vec<u8>; 2]> {
    // Threads of their own, not rayon's: the caller's rayon threads are writing the
    // suites meanwhile.
    let (html, json) = std::thread::scope(|scope| {
        let json = scope.spawn(|| {
            serde_json::to_vec(status).map(|mut json| {
                json.push(b'\n');
                json
            })
        });
        (page(status), json.join())
    });
    let json = json.map_err(|_| anyhow::anyhow!("the dashboard's JSON thread panicked"))??;
    Ok([html?.into_bytes(), json])
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
