//! One application's share of the dashboard: its rows of the matrix and its items of the
//! stage differences, in HTML and in JSON. Each is rendered on its own so that a
//! publication renders only the applications whose state changed; the others come from
//! the cache of the publication before (`cache.rs`).

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::naming::distribution::suite_of;
use crate::repo::clock::format_time;
use crate::repo::config::RepoConfig;
use crate::repo::stage_diff::{Difference, Side, Snapshot};
use crate::repo::state::{Action, HistoryEntry, ReleaseProvenance};
use crate::repo::suites;

/// The cells of one application and distribution.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
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

/// What the state says of one application: its rows and, per pair of adjacent stages,
/// its differences (one per distribution whose releases differ).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    rows: Vec<Row>,
    differences: Vec<Vec<Difference>>,
}

impl Facts {
    /// The codenames of its rows' distributions (`None`: host builds).
    pub(crate) fn distributions(&self) -> impl Iterator<Item = &Option<String>> {
        self.rows.iter().map(|row| &row.distribution)
    }
}

/// A piece of one of the two files: rendered now, or a range of the previous file of the
/// same name, which the new file copies without reading it into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Text {
    /// Rendered by this publication.
    New(String),
    /// The bytes at (offset, length) of the previous file.
    Old(u64, u64),
}

impl Text {
    /// Whether the piece holds no byte.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Text::New(text) => text.is_empty(),
            Text::Old(_, length) => *length == 0,
        }
    }
}

/// One application's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// The application's change token when it was read (`state::app_tokens`).
    pub(crate) token: i64,
    /// The codenames of its rows' distributions (`None`: host builds).
    pub(crate) distributions: Vec<Option<String>>,
    /// Its rows of the matrix (`index.html`).
    pub(crate) html_rows: Text,
    /// The same rows as JSON objects, separated by commas (`status.json`).
    pub(crate) json_rows: Text,
    /// Per pair of adjacent stages, its items: (HTML, JSON objects separated by commas);
    /// both empty when its releases do not differ.
    pub(crate) differences: Vec<(Text, Text)>,
}

/// The first 12 digits of a commit.
pub(crate) fn short(commit: &Option<String>) -> Option<String> {
    commit
        .as_ref()
        .map(|commit| commit.chars().take(12).collect())
}

/// The facts of every application `snapshot` holds. `history` holds at least every
/// entry of those applications, oldest first.
pub(crate) fn facts(
    snapshot: &Snapshot<'_>,
    config: &RepoConfig,
    history: &[HistoryEntry],
) -> Result<BTreeMap<String, Facts>> {
    let provenance = snapshot.provenance();
    let commit_of = |app: &str, version: &Option<String>| -> Option<&ReleaseProvenance> {
        version
            .as_ref()
            .and_then(|version| provenance.get(&(app.to_string(), version.clone())))
    };
    // The latest entry that moved each (application, stage, distribution) to a version.
    let mut moved_to: HashMap<(&str, &str, Option<&str>, &str), &HistoryEntry> = HashMap::new();
    for entry in history {
        if let (Some(stage), Some(to)) = (&entry.stage, &entry.to) {
            moved_to.insert(
                (&entry.app, stage, entry.distribution.as_deref(), to),
                entry,
            );
        }
    }
    let currents = snapshot.currents();
    let mut facts: BTreeMap<String, Facts> = BTreeMap::new();
    for (app, packages) in snapshot.apps() {
        let pointers = currents.get(app);
        let versions = packages
            .iter()
            .map(|package| package.identity.version.as_str());
        let mut rows = Vec::new();
        for distribution in suites::distributions_of(versions) {
            let codename = suites::codename(distribution);
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
            rows.push(Row {
                app: app.clone(),
                distribution: codename,
                cells,
            });
        }
        facts.insert(
            app.clone(),
            Facts {
                rows,
                differences: Vec::new(),
            },
        );
    }
    for pair in config.stages.windows(2) {
        for fact in facts.values_mut() {
            fact.differences.push(Vec::new());
        }
        let compared = snapshot.compare(
            config,
            &Side::Stage(pair[0].clone()),
            &Side::Stage(pair[1].clone()),
        )?;
        for difference in compared.into_iter().filter(|difference| !difference.same) {
            if let Some(fact) = facts.get_mut(&difference.app) {
                if let Some(last) = fact.differences.last_mut() {
                    last.push(difference);
                }
            }
        }
    }
    Ok(facts)
}

/// One row of the matrix, as `templates/dashboard_row.html` writes it.
#[derive(askama::Template)]
#[template(path = "dashboard_row.html")]
struct RowHtml<'a> {
    row: &'a Row,
}

/// The two stages a difference lies between, as the templates name them.
struct Pair<'a> {
    from_stage: &'a str,
    to_stage: &'a str,
}

/// One item of the stage differences, as `templates/dashboard_difference.html` writes it.
#[derive(askama::Template)]
#[template(path = "dashboard_difference.html")]
struct DifferenceHtml<'a> {
    pair: Pair<'a>,
    difference: &'a Difference,
}

/// Renders one application's facts; `stages` in promotion order.
pub(crate) fn render(facts: &Facts, token: i64, stages: &[String]) -> Result<Part> {
    let mut html_rows = String::new();
    let mut rows = Vec::new();
    for row in &facts.rows {
        askama::Template::render_into(&RowHtml { row }, &mut html_rows)
            .context("templates/dashboard_row.html cannot be rendered")?;
        rows.push(serde_json::to_string(row)?);
    }
    let mut differences = Vec::new();
    for (pair, items) in stages.windows(2).zip(&facts.differences) {
        let mut html = String::new();
        let mut json = Vec::new();
        for difference in items {
            let item = DifferenceHtml {
                pair: Pair {
                    from_stage: &pair[0],
                    to_stage: &pair[1],
                },
                difference,
            };
            askama::Template::render_into(&item, &mut html)
                .context("templates/dashboard_difference.html cannot be rendered")?;
            json.push(serde_json::to_string(difference)?);
        }
        differences.push((Text::New(html), Text::New(json.join(","))));
    }
    Ok(Part {
        token,
        distributions: facts
            .rows
            .iter()
            .map(|row| row.distribution.clone())
            .collect(),
        html_rows: Text::New(html_rows),
        json_rows: Text::New(rows.join(",")),
        differences,
    })
}
