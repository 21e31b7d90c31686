//! `repo remove`, `repo gc` and `repo verify`.
//!
//! Removal policy: a version that a stage points to is never removed, neither by
//! `remove` nor by `gc`; roll the stage back or promote another version first. Removing
//! from one stage (`--stage`) only stops listing the version there; removing without
//! `--stage` deletes every package of the version (payloads and stage packages) from the
//! database and the pool, so nothing can be promoted or rolled back to it afterwards.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde_json::json;

use crate::repo::commands::{now, who, Repository, Session};
use crate::repo::pool;
use crate::repo::stages::resolve_version;
use crate::repo::state::{self, HistoryEntry, PackageRecord, Role};
use crate::report::Reporter;
use crate::version;

/// Runs `repo remove APP VERSION [--stage S]`.
pub fn remove(
    session: &mut Session<'_>,
    app: &str,
    requested: &str,
    stage: Option<&str>,
) -> Result<()> {
    let config = session.repository.config.clone();
    let root = session.repository.root.clone();
    let transaction = session.connection.transaction()?;
    let version = resolve_version(&transaction, app, requested)?;
    let packages = state::packages_of_version(&transaction, app, &version)?;
    let pointing: Vec<String> = state::currents_of_app(&transaction, app)?
        .into_iter()
        .filter(|(stage_name, current)| {
            *current == version && stage.is_none_or(|only| only == stage_name)
        })
        .map(|(stage_name, _)| stage_name)
        .collect();
    if !pointing.is_empty() {
        bail!(
            "cannot remove {app} {version}: {} point(s) to it; promote another version \
             there or roll back first",
            pointing.join(", ")
        );
    }
    let mut changed = BTreeSet::new();
    let mut deleted_files = Vec::new();
    match stage {
        Some(stage) => {
            config.stage_index(stage)?;
            for package in &packages {
                if state::unlist(&transaction, stage, package.id)? {
                    changed.insert(stage.to_string());
                }
            }
            if changed.is_empty() {
                bail!("cannot remove {app} {version} from {stage}: the stage does not list it");
            }
        }
        None => {
            for package in &packages {
                changed.extend(state::suites_of(&transaction, package.id)?);
                state::delete_package(&transaction, package.id)?;
                deleted_files.push(package.filename.clone());
            }
        }
    }
    state::record_history(
        &transaction,
        &HistoryEntry {
            time: now(),
            who: who(),
            action: "remove".to_string(),
            app: app.to_string(),
            stage: stage.map(str::to_string),
            from: Some(version.clone()),
            to: None,
        },
    )?;
    transaction.commit()?;
    for filename in &deleted_files {
        pool::remove(&root, filename)?;
    }
    session.publish(&changed)?;
    let place = stage.map_or("the repository".to_string(), |stage| stage.to_string());
    session
        .reporter
        .status(format!("removed {app} {version} from {place}"));
    session.reporter.data(
        "",
        &json!({"app": app, "version": version, "stage": stage, "deleted": deleted_files}),
    )?;
    Ok(())
}

/// Runs `repo gc --keep N`: each stage keeps, per application, its current version and
/// the `keep` highest versions it lists; versions no stage lists or points to leave the
/// database and the pool, and so do pool files no row names.
pub fn gc(session: &mut Session<'_>, keep: usize) -> Result<()> {
    let config = session.repository.config.clone();
    let root = session.repository.root.clone();
    let transaction = session.connection.transaction()?;
    let currents: HashSet<(String, String, String)> =
        state::all_currents(&transaction)?.into_iter().collect();
    let mut changed = BTreeSet::new();
    for stage in &config.stages {
        let mut by_app: BTreeMap<String, BTreeMap<String, Vec<i64>>> = BTreeMap::new();
        for package in state::suite_packages(&transaction, stage)? {
            if package.role != Role::Stage {
                by_app
                    .entry(package.app.clone())
                    .or_default()
                    .entry(package.version.clone())
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
                    state::unlist(&transaction, stage, *id)?;
                }
                changed.insert(stage.clone());
            }
        }
    }

    let listed: HashSet<i64> = state::listings(&transaction)?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let pointed: HashSet<(String, String)> = currents
        .iter()
        .map(|(app, _, version)| (app.clone(), version.clone()))
        .collect();
    let all = state::all_packages(&transaction)?;
    let mut alive: HashSet<(String, String)> = pointed.clone();
    for package in &all {
        if listed.contains(&package.id) {
            alive.insert((package.app.clone(), package.version.clone()));
        }
    }
    let doomed: Vec<&PackageRecord> = all
        .iter()
        .filter(|package| !alive.contains(&(package.app.clone(), package.version.clone())))
        .collect();
    let (time, who) = (now(), who());
    let mut versions_removed: BTreeSet<(String, String)> = BTreeSet::new();
    for package in &doomed {
        state::delete_package(&transaction, package.id)?;
        versions_removed.insert((package.app.clone(), package.version.clone()));
    }
    for (app, version) in &versions_removed {
        state::record_history(
            &transaction,
            &HistoryEntry {
                time,
                who: who.clone(),
                action: "gc".to_string(),
                app: app.clone(),
                stage: None,
                from: Some(version.clone()),
                to: None,
            },
        )?;
    }
    transaction.commit()?;

    let mut removed_files: Vec<String> = doomed.iter().map(|p| p.filename.clone()).collect();
    for filename in &removed_files {
        pool::remove(&root, filename)?;
    }
    let known: HashSet<String> = all
        .iter()
        .filter(|package| alive.contains(&(package.app.clone(), package.version.clone())))
        .map(|package| package.filename.clone())
        .collect();
    for orphan in pool::unreferenced(&root, &known)? {
        pool::remove(&root, &orphan)?;
        removed_files.push(orphan);
    }
    session.publish(&changed)?;
    session.reporter.status(format!(
        "gc: {} version(s) removed, {} file(s) deleted from the pool",
        versions_removed.len(),
        removed_files.len()
    ));
    let removed: Vec<_> = versions_removed
        .iter()
        .map(|(app, version)| json!({"app": app, "version": version}))
        .collect();
    session
        .reporter
        .data("", &json!({"removed": removed, "files": removed_files}))?;
    Ok(())
}

/// One line of a Packages file, reduced to what must match the database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct IndexLine {
    package: String,
    version: String,
    architecture: String,
    filename: String,
    size: String,
    sha256: String,
}

impl IndexLine {
    fn describe(&self) -> String {
        format!(
            "{} {} {} ({})",
            self.package, self.version, self.architecture, self.filename
        )
    }
}

/// Reads the paragraphs of a Packages file.
fn parse_packages(text: &str) -> Vec<IndexLine> {
    text.split("\n\n")
        .filter(|paragraph| !paragraph.trim().is_empty())
        .map(|paragraph| {
            let mut fields: HashMap<&str, &str> = HashMap::new();
            for line in paragraph.lines() {
                if line.starts_with([' ', '\t']) {
                    continue;
                }
                if let Some((name, value)) = line.split_once(':') {
                    fields.insert(name, value.trim());
                }
            }
            let field = |name: &str| fields.get(name).copied().unwrap_or_default().to_string();
            IndexLine {
                package: field("Package"),
                version: field("Version"),
                architecture: field("Architecture"),
                filename: field("Filename"),
                size: field("Size"),
                sha256: field("SHA256"),
            }
        })
        .collect()
}

/// The (size, sha256) a Release file gives for `name` in its SHA256 section.
fn release_entry(release: &str, name: &str) -> Option<(u64, String)> {
    let mut in_section = false;
    for line in release.lines() {
        if !line.starts_with(' ') {
            in_section = line.trim_end() == "SHA256:";
            continue;
        }
        if in_section {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [hash, size, file] = parts.as_slice() {
                if *file == name {
                    return Some((size.parse().ok()?, (*hash).to_string()));
                }
            }
        }
    }
    None
}

/// Runs `repo verify`: pool files against recorded sizes and hashes, pointers against
/// listings, and the published Packages and Release files against the database.
pub fn verify(root: &Path, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let connection = state::open(root)?;
    let packages = state::all_packages(&connection)?;
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();

    let bar = reporter.progress(packages.len() as u64, "verifying");
    let mut file_problems: Vec<String> = packages
        .par_iter()
        .filter_map(|package| {
            bar.inc(1);
            let path = root.join(&package.filename);
            match pool::sha256_of(&path) {
                Err(error) => Some(format!("{}: cannot be read: {error}", package.filename)),
                Ok((size, _)) if size != package.size => Some(format!(
                    "{}: {size} bytes, recorded {}",
                    package.filename, package.size
                )),
                Ok((_, sha256)) if sha256 != package.sha256 => Some(format!(
                    "{}: sha256 {sha256}, recorded {}",
                    package.filename, package.sha256
                )),
                Ok(_) => None,
            }
        })
        .collect();
    bar.finish_and_clear();
    file_problems.sort();
    problems.extend(file_problems);

    let known: HashSet<String> = packages.iter().map(|p| p.filename.clone()).collect();
    for orphan in pool::unreferenced(root, &known)? {
        warnings.push(format!(
            "{orphan}: in the pool but not recorded (repo gc deletes it)"
        ));
    }
    for waiting in pool::waiting(root) {
        warnings.push(format!(
            "{waiting}: left by an interrupted command (the next writer finishes it)"
        ));
    }

    let by_id: HashMap<i64, &PackageRecord> = packages.iter().map(|p| (p.id, p)).collect();
    let mut suites: BTreeMap<String, Vec<&PackageRecord>> = BTreeMap::new();
    for (suite, id) in state::listings(&connection)? {
        if let Some(package) = by_id.get(&id) {
            suites.entry(suite).or_default().push(package);
        }
    }
    for (app, stage, version) in state::all_currents(&connection)? {
        let listed = suites.get(&stage).map(Vec::as_slice).unwrap_or_default();
        let of_version: Vec<&&PackageRecord> = listed
            .iter()
            .filter(|package| package.app == app && package.version == version)
            .collect();
        if !of_version.iter().any(|package| package.role != Role::Stage) {
            problems.push(format!(
                "{app}: {stage} points to {version} but its suite does not list that version"
            ));
        }
    }

    for stage in &repository.config.stages {
        let listed = suites.get(stage).map(Vec::as_slice).unwrap_or_default();
        let release_path = root.join("dists").join(stage).join("Release");
        let release = match std::fs::read_to_string(&release_path) {
            Ok(text) => Some(text),
            Err(error) => {
                problems.push(format!(
                    "{}: cannot be read: {error}",
                    release_path.display()
                ));
                None
            }
        };
        for architecture in &repository.config.architectures {
            let name = format!("main/binary-{architecture}/Packages");
            let path = root.join("dists").join(stage).join(&name);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) => {
                    problems.push(format!("{}: cannot be read: {error}", path.display()));
                    continue;
                }
            };
            let published: BTreeSet<IndexLine> = parse_packages(&text).into_iter().collect();
            let expected: BTreeSet<IndexLine> = listed
                .iter()
                .filter(|package| {
                    package.architecture == *architecture || package.architecture == "all"
                })
                .map(|package| IndexLine {
                    package: package.package.clone(),
                    version: package.version.clone(),
                    architecture: package.architecture.clone(),
                    filename: package.filename.clone(),
                    size: package.size.to_string(),
                    sha256: package.sha256.clone(),
                })
                .collect();
            for line in expected.difference(&published) {
                problems.push(format!(
                    "dists/{stage}/{name}: does not list {}, which the state lists",
                    line.describe()
                ));
            }
            for line in published.difference(&expected) {
                problems.push(format!(
                    "dists/{stage}/{name}: lists {}, which the state does not (or with other \
                     size or sha256)",
                    line.describe()
                ));
            }
            if let Some(release) = &release {
                let (size, sha256) = pool::sha256_of(&path)
                    .with_context(|| format!("{}: cannot be read", path.display()))?;
                match release_entry(release, &name) {
                    Some((listed_size, listed_sha256))
                        if listed_size == size && listed_sha256 == sha256 => {}
                    Some(_) => problems.push(format!(
                        "dists/{stage}/Release: the SHA256 or size of {name} does not match the file"
                    )),
                    None => problems.push(format!(
                        "dists/{stage}/Release: has no SHA256 line for {name}"
                    )),
                }
            }
        }
    }

    for warning in &warnings {
        reporter.warn(warning);
    }
    let document = json!({"packages": packages.len(), "problems": problems, "warnings": warnings});
    if problems.is_empty() {
        let text = format!(
            "ok: {} package(s), {} suite(s) match the state\n",
            packages.len(),
            repository.config.stages.len()
        );
        reporter.data(text, &document)?;
        return Ok(());
    }
    // The problems are the error's text; JSON readers also get them on stdout.
    reporter.data("", &document)?;
    let shown: Vec<String> = problems
        .iter()
        .take(50)
        .map(|problem| format!("  {problem}"))
        .collect();
    let more = if problems.len() > shown.len() {
        format!("\n  ... and {} more", problems.len() - shown.len())
    } else {
        String::new()
    };
    bail!(
        "repo verify: {} problem(s) found in {}:\n{}{more}",
        problems.len(),
        root.display(),
        shown.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_release_and_packages() {
        let release = "Origin: x\nMD5Sum:\n 00 1 main/binary-amd64/Packages\nSHA256:\n \
                       abc 12 main/binary-amd64/Packages\n def 3 main/binary-amd64/Packages.gz\n";
        assert_eq!(
            release_entry(release, "main/binary-amd64/Packages"),
            Some((12, "abc".to_string()))
        );
        assert_eq!(release_entry(release, "main/binary-arm64/Packages"), None);
        let packages = "Package: a\nVersion: 1\nArchitecture: all\nDescription: x\n more\n\
                        Filename: pool/a.deb\nSize: 5\nSHA256: ff\n\nPackage: b\nVersion: 2\n";
        let lines = parse_packages(packages);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].filename, "pool/a.deb");
        assert_eq!(lines[1].package, "b");
    }
}
