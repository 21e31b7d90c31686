//! The read-only commands: `repo list`, `repo show`, `repo history`. They take no lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Result};
use serde_json::json;

use crate::debian::version;
use crate::naming::AppNames;
use crate::repo::session::{format_time, Repository};
use crate::repo::state::{self, Role};
use crate::report::Reporter;

/// Lays out rows under headers in columns separated by two spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    text
}

/// Runs `repo list [--stage S]`.
pub(crate) fn list(root: &Path, stage: Option<&str>, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let connection = state::open(root)?;
    let packages = match stage {
        Some(stage) => {
            repository.config.stage_index(stage)?;
            state::suite_packages(&connection, stage)?
        }
        None => state::all_packages(&connection)?,
    };
    let mut suites: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (suite, id) in state::listings(&connection)? {
        suites.entry(id).or_default().push(suite);
    }
    let order = |suite: &String| {
        repository
            .config
            .stages
            .iter()
            .position(|stage| stage == suite)
    };
    for listed in suites.values_mut() {
        listed.sort_by_key(order);
    }
    let mut rows = Vec::new();
    let mut documents = Vec::new();
    for package in &packages {
        let listed = suites.get(&package.id).cloned().unwrap_or_default();
        rows.push(vec![
            package.package.clone(),
            package.version.clone(),
            package.architecture.clone(),
            if listed.is_empty() {
                "-".to_string()
            } else {
                listed.join(",")
            },
        ]);
        let mut document = serde_json::to_value(package)?;
        document["suites"] = json!(listed);
        documents.push(document);
    }
    reporter.data(
        table(&["PACKAGE", "VERSION", "ARCH", "SUITES"], &rows),
        &json!({"stage": stage, "packages": documents}),
    )?;
    Ok(())
}

/// Runs `repo show APP`: which version each stage points to and lists. Per stage the
/// JSON also gives what a server needs to pin and check it: the stage package's versions
/// the suite holds (installable as `<app>-<stage>=VERSION`), the current version's
/// upstream part and the release directory the stage link points to on servers.
pub(crate) fn show(root: &Path, app: &str, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let connection = state::open(root)?;
    let packages = state::packages_of_app(&connection, app)?;
    if packages.is_empty() {
        bail!("{app}: no such application in the repository");
    }
    let currents: BTreeMap<String, String> = state::currents_of_app(&connection, app)?
        .into_iter()
        .collect();
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut installable: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in &packages {
        for suite in state::suites_of(&connection, package.id)? {
            let versions = if package.role == Role::Stage {
                // A stage package is installable from its own suite only.
                if package.stage.as_deref() != Some(suite.as_str()) {
                    continue;
                }
                &mut installable
            } else {
                &mut listed
            };
            versions
                .entry(suite)
                .or_default()
                .insert(package.version.clone());
        }
    }
    let sorted = |versions: &BTreeSet<String>| {
        let mut versions: Vec<String> = versions.iter().cloned().collect();
        versions.sort_by(|left, right| version::compare(left, right));
        versions
    };
    let upstream_of = |version: &str| {
        packages
            .iter()
            .find(|package| package.version == version)
            .map(|package| package.upstream.clone())
    };
    let names = AppNames::new(app);
    let mut rows = Vec::new();
    let mut stages = Vec::new();
    for stage in &repository.config.stages {
        let current = currents.get(stage).cloned();
        let upstream = current.as_deref().and_then(upstream_of);
        let link_target = upstream
            .as_deref()
            .map(|upstream| names.release_dir(upstream));
        let versions = listed.get(stage).map(sorted).unwrap_or_default();
        rows.push(vec![
            stage.clone(),
            current.clone().unwrap_or_else(|| "-".to_string()),
            if versions.is_empty() {
                "-".to_string()
            } else {
                versions.join(", ")
            },
        ]);
        stages.push(json!({
            "stage": stage,
            "stage_package": names.stage_package(stage),
            "installable": installable.get(stage).map(sorted).unwrap_or_default(),
            "current": current,
            "upstream": upstream,
            "link": names.stage_link(stage),
            "link_target": link_target,
            "listed": versions,
        }));
    }
    let all: BTreeSet<String> = packages
        .iter()
        .map(|package| package.version.clone())
        .collect();
    let all = sorted(&all);
    let text = format!(
        "{app}\n{}in the pool: {}\n",
        table(&["STAGE", "CURRENT", "LISTED"], &rows),
        all.join(", ")
    );
    reporter.data(
        text,
        &json!({"app": app, "stages": stages, "versions": all}),
    )?;
    Ok(())
}

/// Runs `repo history [APP]`.
pub(crate) fn history(root: &Path, app: Option<&str>, reporter: &Reporter) -> Result<()> {
    Repository::open(root)?;
    let connection = state::open(root)?;
    let entries = state::history(&connection, app)?;
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_string());
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            vec![
                format_time(entry.time),
                entry.who.clone(),
                entry.action.as_str().to_string(),
                entry.app.clone(),
                dash(&entry.stage),
                dash(&entry.from),
                dash(&entry.to),
            ]
        })
        .collect();
    let documents: Vec<serde_json::Value> = entries
        .iter()
        .map(|entry| {
            json!({
                "when": format_time(entry.time),
                "who": entry.who,
                "action": entry.action,
                "app": entry.app,
                "stage": entry.stage,
                "from": entry.from,
                "to": entry.to,
            })
        })
        .collect();
    reporter.data(
        table(
            &["WHEN", "WHO", "ACTION", "APP", "STAGE", "FROM", "TO"],
            &rows,
        ),
        &json!({"app": app, "entries": documents}),
    )?;
    Ok(())
}
