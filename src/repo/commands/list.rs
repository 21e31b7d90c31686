//! The read-only commands: `repo list`, `repo show`, `repo history`. They take no lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Result};
use serde_json::json;

use crate::debian::version;
use crate::naming::distribution::suite_of;
use crate::naming::AppNames;
use crate::repo::clock::format_time;
use crate::repo::session::Repository;
use crate::repo::state::{self, ReleaseProvenance, Role};
use crate::repo::suites;
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
            // The stage's suite of every distribution (and of host builds).
            let mut packages = Vec::new();
            for suite in suites::all_suites(&repository.config, &connection)? {
                if suite.stage == stage {
                    packages.extend(state::suite_packages(&connection, &suite.name())?);
                }
            }
            packages.sort_by(|left, right| {
                (
                    &left.identity.package,
                    &left.identity.version,
                    &left.identity.architecture,
                )
                    .cmp(&(
                        &right.identity.package,
                        &right.identity.version,
                        &right.identity.architecture,
                    ))
            });
            packages.dedup_by_key(|package| package.id);
            packages
        }
        None => state::all_packages(&connection)?,
    };
    let mut listed_in: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (suite, id) in state::listings(&connection)? {
        listed_in.entry(id).or_default().push(suite);
    }
    for listed in listed_in.values_mut() {
        listed.sort_by_key(|suite| suites::order_key(&repository.config, suite));
    }
    // The DIST column appears once the listing has a build for a distribution, so a
    // repository of host builds reads as it always did.
    let with_distributions = packages
        .iter()
        .any(|package| suites::distribution_of(&package.identity.version).is_some());
    // The keyring package is no application's: the table leaves it out and a line of its
    // own says what it is (the JSON lists it among the packages, as it always did).
    let keyring = crate::repo::keyring::Shown::of(root, &repository.config, &connection)?;
    let mut rows = Vec::new();
    let mut documents = Vec::new();
    for package in &packages {
        let listed = listed_in.get(&package.id).cloned().unwrap_or_default();
        let document = |distribution: &Option<String>| -> Result<serde_json::Value> {
            let mut document = serde_json::to_value(package)?;
            document["distribution"] = json!(distribution);
            document["suites"] = json!(listed);
            Ok(document)
        };
        if package.app == keyring.package {
            documents.push(document(&None)?);
            continue;
        }
        let distribution = suites::codename(suites::distribution_of(&package.identity.version));
        let mut row = vec![
            package.identity.package.clone(),
            package.identity.version.clone(),
            package.identity.architecture.clone(),
        ];
        if with_distributions {
            row.push(dash(&distribution));
        }
        row.push(if listed.is_empty() {
            "-".to_string()
        } else {
            listed.join(",")
        });
        rows.push(row);
        documents.push(document(&distribution)?);
    }
    let headers: &[&str] = if with_distributions {
        &["PACKAGE", "VERSION", "ARCH", "DIST", "SUITES"]
    } else {
        &["PACKAGE", "VERSION", "ARCH", "SUITES"]
    };
    reporter.data(
        format!("{}{}", table(headers, &rows), keyring.line()),
        &json!({"stage": stage, "packages": documents, "keyring": keyring}),
    )?;
    Ok(())
}

/// Runs `repo show APP`: which version each stage points to and lists, per
/// distribution the application has builds for. Per stage the JSON also gives what a
/// server needs to pin and check it: the stage package's versions the suite holds
/// (installable as `<app>-<stage>=VERSION`), the current version's upstream part and the
/// release directory the stage link points to on servers.
pub(crate) fn show(root: &Path, app: &str, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    crate::repo::keyring::refuse_as_application(&repository.config, app, "show")?;
    let connection = state::open(root)?;
    let packages = state::packages_of_app(&connection, app)?;
    if packages.is_empty() {
        bail!("{app}: no such application in the repository");
    }
    let currents: BTreeMap<String, String> = state::currents_of_app(&connection, app)?
        .into_iter()
        .collect();
    let provenance = state::all_provenance(&connection)?;
    let provenance_of = |version: &str| {
        provenance
            .get(&(app.to_string(), version.to_string()))
            .cloned()
    };
    // The COMMIT column appears once a stage points to a release with a known commit.
    let with_commits = currents
        .values()
        .any(|version| provenance_of(version).is_some_and(|known| known.commit.is_some()));
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut installable: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in &packages {
        if package.role == Role::Layer {
            // A layer's version is its own, not a release: shown apart below.
            continue;
        }
        let distribution = suites::distribution_of(&package.identity.version);
        for suite in state::suites_of(&connection, package.id)? {
            let versions = if package.role == Role::Stage {
                // A stage package is installable from its own suite only.
                let own = package
                    .stage
                    .as_deref()
                    .map(|stage| suite_of(distribution, stage));
                if own.as_deref() != Some(suite.as_str()) {
                    continue;
                }
                &mut installable
            } else {
                &mut listed
            };
            versions
                .entry(suite)
                .or_default()
                .insert(package.identity.version.clone());
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
            .find(|package| package.identity.version == version)
            .map(|package| package.upstream.clone())
    };
    // The distributions of the application's builds, host builds first; an application
    // with none but host builds shows its stages as it always did.
    let distributions = suites::distributions_of(
        packages
            .iter()
            .map(|package| package.identity.version.as_str()),
    );
    let with_distributions = distributions.iter().any(Option::is_some);
    let names = AppNames::new(app);
    let mut rows = Vec::new();
    let mut stages = Vec::new();
    for distribution in &distributions {
        for stage in &repository.config.stages {
            let suite = suite_of(*distribution, stage);
            let current = currents.get(&suite).cloned();
            let upstream = current.as_deref().and_then(upstream_of);
            let link_target = upstream
                .as_deref()
                .map(|upstream| names.release_dir(upstream));
            let versions = listed.get(&suite).map(sorted).unwrap_or_default();
            let current_provenance = current.as_deref().and_then(provenance_of);
            let mut row = Vec::with_capacity(5);
            if with_distributions {
                row.push(dash(&suites::codename(*distribution)));
            }
            row.extend([stage.clone(), dash(&current)]);
            if with_commits {
                row.push(ReleaseProvenance::short_commit(current_provenance.as_ref()));
            }
            row.push(if versions.is_empty() {
                "-".to_string()
            } else {
                versions.join(", ")
            });
            rows.push(row);
            stages.push(json!({
                "stage": stage,
                "distribution": suites::codename(*distribution),
                "suite": suite,
                "stage_package": names.stage_package(stage),
                "installable": installable.get(&suite).map(sorted).unwrap_or_default(),
                "current": current,
                "provenance": current_provenance,
                "upstream": upstream,
                "link": names.stage_link(stage),
                "link_target": link_target,
                "listed": versions,
            }));
        }
    }
    let all: BTreeSet<String> = packages
        .iter()
        .filter(|package| package.role != Role::Layer)
        .map(|package| package.identity.version.clone())
        .collect();
    let all = sorted(&all);
    // Which releases share each layer.
    let mut layers: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for package in &packages {
        if package.role == Role::Layer {
            layers
                .entry((
                    package.identity.package.clone(),
                    package.identity.version.clone(),
                ))
                .or_default();
        }
        for needed in crate::repo::layers::needed_by(package) {
            layers
                .entry(needed)
                .or_default()
                .insert(package.identity.version.clone());
        }
    }
    // Oldest first: in the order of the first release that uses each.
    let mut layers: Vec<((String, String), Vec<String>)> = layers
        .into_iter()
        .map(|(layer, releases)| (layer, sorted(&releases)))
        .collect();
    layers.sort_by(|(left_layer, left), (right_layer, right)| {
        match (left.first(), right.first()) {
            (Some(left), Some(right)) => version::compare(left, right),
            (left, right) => left.is_none().cmp(&right.is_none()),
        }
        .then_with(|| left_layer.cmp(right_layer))
    });
    let mut layer_lines = String::new();
    let mut layer_documents = Vec::new();
    for ((layer, layer_version), releases) in &layers {
        layer_lines.push_str(&format!(
            "layer {layer} {layer_version}: {}\n",
            if releases.is_empty() {
                "no release".to_string()
            } else {
                releases.join(", ")
            }
        ));
        layer_documents.push(json!({
            "package": layer,
            "version": layer_version,
            "releases": releases,
        }));
    }
    let mut headers = Vec::with_capacity(5);
    if with_distributions {
        headers.push("DIST");
    }
    headers.extend(["STAGE", "CURRENT"]);
    if with_commits {
        headers.push("COMMIT");
    }
    headers.push("LISTED");
    let text = format!(
        "{app}\n{}in the pool: {}\n{layer_lines}",
        table(&headers, &rows),
        all.join(", ")
    );
    let mut document = json!({"app": app, "stages": stages, "versions": all});
    if !layer_documents.is_empty() {
        document["layers"] = json!(layer_documents);
    }
    reporter.data(text, &document)?;
    Ok(())
}

/// A value for a table cell: `-` for none.
fn dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_string())
}

/// Runs `repo history [APP]`.
pub(crate) fn history(root: &Path, app: Option<&str>, reporter: &Reporter) -> Result<()> {
    Repository::open(root)?;
    let connection = state::open(root)?;
    let entries = state::history(&connection, app)?;
    let provenance = state::all_provenance(&connection)?;
    let provenance_of = |app: &str, version: &Option<String>| {
        version
            .as_ref()
            .and_then(|version| provenance.get(&(app.to_string(), version.clone())))
    };
    // The DIST column appears once the history has a change for a distribution, the
    // COMMIT column (of the version moved to) once a version moved to has a known commit.
    let with_distributions = entries.iter().any(|entry| entry.distribution.is_some());
    let with_commits = entries.iter().any(|entry| {
        provenance_of(&entry.app, &entry.to).is_some_and(|known| known.commit.is_some())
    });
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            let mut row = vec![
                format_time(entry.time),
                entry.who.clone(),
                entry.action.as_str().to_string(),
                entry.app.clone(),
            ];
            if with_distributions {
                row.push(dash(&entry.distribution));
            }
            row.extend([dash(&entry.stage), dash(&entry.from), dash(&entry.to)]);
            if with_commits {
                row.push(ReleaseProvenance::short_commit(provenance_of(
                    &entry.app, &entry.to,
                )));
            }
            row
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
                "distribution": entry.distribution,
                "from": entry.from,
                "to": entry.to,
                "to_provenance": provenance_of(&entry.app, &entry.to),
            })
        })
        .collect();
    let mut headers = vec!["WHEN", "WHO", "ACTION", "APP"];
    if with_distributions {
        headers.push("DIST");
    }
    headers.extend(["STAGE", "FROM", "TO"]);
    if with_commits {
        headers.push("COMMIT");
    }
    reporter.data(
        table(&headers, &rows),
        &json!({"app": app, "entries": documents}),
    )?;
    Ok(())
}
