//! `SOURCE_DATE_EPOCH` (reproducible-builds.org): the time that builds and publications
//! stamp instead of the clock, so the same input gives the same bytes.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// SOURCE_DATE_EPOCH when set: seconds since 1970. A value that is not a number is an
/// error rather than ignored, because ignoring it silently breaks reproducibility.
pub(crate) fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.is_empty() => text.trim().parse().map(Some).with_context(|| {
            format!("SOURCE_DATE_EPOCH {text:?}: must be a number of seconds since 1970")
        }),
        _ => Ok(None),
    }
}

/// Which rule gave a build its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Rule {
    /// `SOURCE_DATE_EPOCH` was set.
    SourceDateEpoch,
    /// The application directory is in a clean git work tree: the time of the last commit
    /// that touched it (`git log -1 --format=%ct -- <dir>`), the same in every clone.
    GitCommit,
    /// The newest modification time of the application's files.
    NewestFile,
}

/// The time a build stamps and where it came from, with the git state of the application
/// directory (the build's provenance).
#[derive(Debug, Clone)]
pub(crate) struct SourceDate {
    /// The time, unless the newest file decides it (read later, from the tree).
    pub(crate) epoch: Option<u64>,
    /// The rule that gives the time.
    pub(crate) rule: Rule,
    /// The commit checked out (`git rev-parse HEAD`), when the directory is in a work tree.
    pub(crate) commit: Option<String>,
    /// Whether the directory has changes git does not hold (modified or untracked files).
    pub(crate) dirty: Option<bool>,
    /// The branch checked out (`git symbolic-ref --short HEAD`); `None` on a detached HEAD.
    pub(crate) branch: Option<String>,
}

/// The build's time for the application in `directory`: SOURCE_DATE_EPOCH; else, in a
/// clean git work tree, the time of the last commit that touched the directory; else the
/// newest file's (`epoch` left `None`). `out` (where the packages go) does not make the
/// tree dirty.
pub(crate) fn choose(directory: &Path, out: &Path) -> Result<SourceDate> {
    let git = git_state(directory, out);
    let (commit, dirty, branch, commit_time) = match git {
        Some(state) => (
            Some(state.commit),
            Some(state.dirty),
            state.branch,
            state.time,
        ),
        None => (None, None, None, None),
    };
    if let Some(epoch) = source_date_epoch()? {
        return Ok(SourceDate {
            epoch: Some(epoch),
            rule: Rule::SourceDateEpoch,
            commit,
            dirty,
            branch,
        });
    }
    match (dirty, commit_time) {
        (Some(false), Some(time)) => Ok(SourceDate {
            epoch: Some(time),
            rule: Rule::GitCommit,
            commit,
            dirty,
            branch,
        }),
        _ => Ok(SourceDate {
            epoch: None,
            rule: Rule::NewestFile,
            commit,
            dirty,
            branch,
        }),
    }
}

/// What git says of a directory in a work tree.
struct GitState {
    commit: String,
    dirty: bool,
    branch: Option<String>,
    /// The last commit touching the directory; `None` when none does (new files only).
    time: Option<u64>,
}

/// The git state of `directory`, or `None` when git is not installed or the directory is
/// not in a work tree git is willing to read.
fn git_state(directory: &Path, out: &Path) -> Option<GitState> {
    let git = |arguments: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .arg("-C")
            .arg(directory)
            .args(arguments)
            .env("LC_ALL", "C")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    if git(&["rev-parse", "--is-inside-work-tree"])? != "true" {
        return None;
    }
    let commit = git(&["rev-parse", "--verify", "HEAD"])?;
    let mut status = vec![
        "status".to_string(),
        "--porcelain=v1".into(),
        "--untracked-files=all".into(),
        "--".into(),
        ".".into(),
    ];
    // The packages written into the application directory are not its input.
    if let (Ok(root), Ok(out)) = (std::fs::canonicalize(directory), std::fs::canonicalize(out)) {
        if let Ok(relative) = out.strip_prefix(&root) {
            if !relative.as_os_str().is_empty() {
                status.push(format!(":(exclude){}", relative.display()));
            }
        }
    }
    let status: Vec<&str> = status.iter().map(String::as_str).collect();
    let dirty = !git(&status)?.is_empty();
    let time = git(&["log", "-1", "--format=%ct", "--", "."]).and_then(|text| text.parse().ok());
    let branch =
        git(&["symbolic-ref", "--quiet", "--short", "HEAD"]).filter(|name| !name.is_empty());
    Some(GitState {
        commit,
        dirty,
        branch,
        time,
    })
}
