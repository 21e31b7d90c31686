//! `kind = "command"`: the output of a build command run with `DESTDIR`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use super::kind_check::KindCheck;
use super::staged::StagedTree;
use crate::build::manifest::{CommandEnvironment, LoadedManifest, ManifestError};
use crate::build::runner::Runner;
use crate::report::Reporter;

/// How many lines of a failed command's output its error shows.
const TAIL_LINES: usize = 20;

/// How many lines of a command's output are kept for a caller to find the reason of a
/// failure in (a manager's error can come after thousands of progress lines).
const KEPT_LINES: usize = 20_000;

/// A command that failed: what it was, its exit status and the end of its output.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed with {status}; its last lines of output:\n{tail}")]
pub(crate) struct CommandFailed {
    /// What was run, for the person reading (`the build command "make install"`).
    pub(crate) what: String,
    /// `exit code 2`, or the signal that ended it.
    pub(crate) status: String,
    /// The exit code, when it exited.
    pub(crate) code: Option<i32>,
    /// The last lines of its stdout and stderr, interleaved as they came.
    pub(crate) tail: String,
    /// Its lines of output from the start (at most [`KEPT_LINES`]), for a caller that
    /// knows where the program says why.
    pub(crate) lines: Vec<String>,
}

/// Runs `command` with stdout and stderr streamed line by line to the reporter (stderr,
/// unless quiet), keeping the last lines for the error when it fails.
pub(crate) fn run_streamed(command: &mut Command, what: &str, reporter: &Reporter) -> Result<()> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let tail: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
    let kept: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let forward = |stream: Box<dyn Read + Send>| {
        let tail = Arc::clone(&tail);
        let kept = Arc::clone(&kept);
        let reporter = reporter.clone();
        std::thread::spawn(move || {
            let reader = BufReader::new(stream);
            for line in reader.split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).trim_end().to_string();
                reporter.status(format!("  | {line}"));
                if let Ok(mut kept) = kept.lock() {
                    if kept.len() < KEPT_LINES {
                        kept.push(line.clone());
                    }
                }
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        })
    };
    let mut threads = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        threads.push(forward(Box::new(stdout)));
    }
    if let Some(stderr) = child.stderr.take() {
        threads.push(forward(Box::new(stderr)));
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {what}"))?;
    for thread in threads {
        let _ = thread.join();
    }
    if status.success() {
        return Ok(());
    }
    let tail = tail
        .lock()
        .map(|tail| tail.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    let status_text = match status.code() {
        Some(code) => format!("exit code {code}"),
        None => format!("{status}"),
    };
    Err(CommandFailed {
        what: what.to_string(),
        status: status_text,
        code: status.code(),
        lines: kept.lock().map(|kept| kept.clone()).unwrap_or_default(),
        tail: if tail.is_empty() {
            "(none)".to_string()
        } else {
            tail
        },
    }
    .into())
}

/// Runs the build command with `DESTDIR` inside `scratch`; what it installs there becomes
/// the release directory.
pub(crate) fn stage(
    manifest: &LoadedManifest,
    options: &CommandEnvironment,
    runner: &Runner,
    scratch: &Path,
    reporter: &Reporter,
) -> Result<StagedTree> {
    let destination = scratch.join("destdir");
    fs_err::create_dir_all(&destination)?;
    let workdir = match &options.workdir {
        Some(workdir) => manifest.resolve(workdir),
        None => manifest.directory.clone(),
    };
    let lines: Vec<&str> = options
        .command
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let shown = match lines.as_slice() {
        [single] => (*single).to_string(),
        _ => format!("{} lines of [environment] command", lines.len()),
    };
    reporter.status(format!(
        "Running the build command in {}: {shown}",
        workdir.display()
    ));
    let mut command = runner.command("sh", &runner.inside(&workdir)?);
    command
        .arg("-c")
        .arg(&options.command)
        .env("DESTDIR", runner.inside(&destination)?)
        .env("APP_NAME", manifest.app())
        .env("APP_VERSION", &manifest.version)
        .env("APP_RELEASE_DIR", manifest.names().release_dir());
    // cargo builds into `target/` beside Cargo.toml by default: in the application
    // directory, which a build never writes into (and which is read-only in a build
    // root). Its build goes to scratch space instead, unless CARGO_TARGET_DIR says where.
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        let target = scratch.join("cargo-target");
        fs_err::create_dir_all(&target)?;
        command.env("CARGO_TARGET_DIR", runner.inside(&target)?);
    }
    run_streamed(
        &mut command,
        &format!(
            "{}: [environment] command {:?}",
            manifest.path.display(),
            options.command
        ),
        reporter,
    )?;
    let empty = fs_err::read_dir(&destination)?.next().is_none();
    if empty {
        bail!(
            "{}: [environment] command {:?} succeeded but installed nothing into $DESTDIR; \
             it must install the release's files under \"$DESTDIR\" (which becomes {})",
            manifest.path.display(),
            options.command,
            manifest.names().release_dir()
        );
    }
    Ok(StagedTree {
        root: destination,
        depends: Vec::new(),
    })
}

/// The keys of `kind = "command"`: a command that is not empty, and a working directory
/// that exists.
pub(super) fn check(
    command: &CommandEnvironment,
    check: &KindCheck<'_>,
) -> Result<(), ManifestError> {
    if command.command.trim().is_empty() {
        return Err(check.fail("[environment] command", "must not be empty".into()));
    }
    if let Some(workdir) = &command.workdir {
        check.directory("[environment] workdir", workdir)?;
    }
    Ok(())
}
