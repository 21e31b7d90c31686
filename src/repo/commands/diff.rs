//! `repo diff FROM TO [--app APP] [--git DIR]`: which releases differ between two stages
//! (or a stage and a version), with the commits between them and the packages whose
//! Depends changed. Takes no lock.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::repo::session::Repository;
use crate::repo::stage_diff::{self, Difference, Release, Side};
use crate::repo::state::{self, ReleaseProvenance};
use crate::report::Reporter;

/// One commit between two releases.
#[derive(Debug, Clone, serde::Serialize)]
struct Commit {
    /// The full hash.
    commit: String,
    /// Its subject line.
    subject: String,
}

/// The commits between two releases' commits, read from a git repository: those in the
/// second side's history and not the first's (`added`), and the other way (`removed`,
/// what a move to the second side takes away).
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Commits {
    added: Vec<Commit>,
    removed: Vec<Commit>,
}

/// The options of `repo diff`.
pub(crate) struct DiffRequest<'a> {
    /// The first side: a stage or a version.
    pub(crate) from: &'a str,
    /// The second side: a stage or a version.
    pub(crate) to: &'a str,
    /// Only this application.
    pub(crate) app: Option<&'a str>,
    /// The git repository the releases were built from.
    pub(crate) git: Option<&'a Path>,
}

/// Runs `repo diff`.
pub(crate) fn run(root: &Path, request: &DiffRequest<'_>, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let connection = state::open(root)?;
    let config = &repository.config;
    let from = Side::parse(config, request.from);
    let to = Side::parse(config, request.to);
    let differences = stage_diff::compare(&connection, config, &from, &to, request.app)?;
    let mut text = String::new();
    let mut documents = Vec::new();
    for difference in &differences {
        let commits = match request.git {
            Some(git) if !difference.same => commits_between(git, difference)?,
            _ => None,
        };
        text.push_str(&describe(difference, &from, &to, commits.as_ref()));
        let mut document = serde_json::to_value(difference)?;
        document["commits"] = serde_json::to_value(&commits)?;
        documents.push(document);
    }
    if differences.is_empty() {
        text.push_str(&format!(
            "{} and {}: no application has a release on either side\n",
            from.label(),
            to.label()
        ));
    }
    // The keyring is the same on both sides (every suite lists its one version).
    let keyring = crate::repo::keyring::Shown::of(root, config, &connection)?;
    text.push_str(&keyring.line());
    reporter.data(
        text,
        &json!({
            "from": from.label(),
            "to": to.label(),
            "app": request.app,
            "applications": documents,
            "keyring": keyring,
        }),
    )?;
    Ok(())
}

/// A release as the text shows it: `1.1-1 (commit 0123456789ab)`, or `-`.
fn release_text(release: &Release) -> String {
    match &release.version {
        Some(version) => match release
            .provenance
            .as_ref()
            .filter(|provenance| provenance.commit.is_some())
        {
            Some(provenance) => format!(
                "{version} (commit {})",
                ReleaseProvenance::short_commit(Some(provenance))
            ),
            None => version.clone(),
        },
        None => "-".to_string(),
    }
}

/// The text of one application's difference.
fn describe(difference: &Difference, from: &Side, to: &Side, commits: Option<&Commits>) -> String {
    let name = match &difference.distribution {
        Some(codename) => format!("{} ({codename})", difference.app),
        None => difference.app.clone(),
    };
    if difference.same {
        return format!("{name}: same release {}\n", release_text(&difference.from));
    }
    let mut text = format!(
        "{name}: {} {} -> {} {}\n",
        from.label(),
        release_text(&difference.from),
        to.label(),
        release_text(&difference.to)
    );
    if let Some(commits) = commits {
        for (sign, list) in [("+", &commits.added), ("-", &commits.removed)] {
            for commit in list {
                let short: String = commit.commit.chars().take(12).collect();
                text.push_str(&format!("  {sign} {short} {}\n", commit.subject));
            }
        }
    }
    for change in &difference.depends {
        text.push_str(&format!(
            "  Depends of {} ({}): {} -> {}\n",
            change.package,
            change.architecture,
            change.from.as_deref().unwrap_or("(none)"),
            change.to.as_deref().unwrap_or("(none)")
        ));
    }
    text
}

/// The commits between the two releases' commits, from `git log` in `directory`; `None`
/// when either release has no commit recorded.
fn commits_between(directory: &Path, difference: &Difference) -> Result<Option<Commits>> {
    let commit = |release: &Release| {
        release
            .provenance
            .as_ref()
            .and_then(|provenance| provenance.commit.clone())
    };
    let (Some(from), Some(to)) = (commit(&difference.from), commit(&difference.to)) else {
        return Ok(None);
    };
    for commit in [&from, &to] {
        // Recorded from `git rev-parse HEAD`, but the state is input: never let a value
        // reach git that it could read as an option or a range.
        if !commit.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!(
                "{}: the recorded commit {commit:?} is not a hexadecimal hash",
                difference.app
            );
        }
    }
    Ok(Some(Commits {
        added: log(directory, &from, &to)?,
        removed: log(directory, &to, &from)?,
    }))
}

/// `git log --format=%H%x09%s EXCLUDED..INCLUDED` in `directory`.
fn log(directory: &Path, excluded: &str, included: &str) -> Result<Vec<Commit>> {
    let output = Command::new("git")
        .arg("-C")
        .arg(directory)
        .args([
            "log",
            "--format=%H%x09%s",
            &format!("{excluded}..{included}"),
        ])
        .output()
        .with_context(|| format!("--git {}: git cannot be run", directory.display()))?;
    if !output.status.success() {
        bail!(
            "--git {}: git log {excluded}..{included} failed (is it the repository the \
             releases were built from, with both commits fetched?): {}",
            directory.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(commit, subject)| Commit {
            commit: commit.to_string(),
            subject: subject.to_string(),
        })
        .collect())
}
