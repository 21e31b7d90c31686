//! debstage: build versioned Debian packages of an application and carry them through
//! release stages (test, staging, production) in a signed apt repository.
//!
//! The data flow is visible in the modules: `build` (manifest, environment, staged tree,
//! packages written by `deb`) -> `repo` (pool, indexes); both sit on `naming` (the
//! contract between them) and `debian` (the formats). Only the command line, the reporter
//! and [`run`] are public.

mod build;
pub mod cli;
mod deb;
mod debian;
mod fault;
mod host;
mod naming;
mod repo;
pub mod report;
mod source_date;
mod units;

#[cfg(test)]
mod fuzz_tests;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::report::{Failure, Reporter};

/// Runs one parsed command line.
pub fn run(cli: Cli, reporter: &Reporter) -> Result<()> {
    match cli.command {
        Command::Build(options) => build::run(&options.into(), reporter).map(|_| ()),
        Command::Init(options) => build::init::run(&options.into(), reporter),
        Command::Repo(options) => repo::run(&cli.repo, cli.lock_timeout, options.command, reporter),
    }
}

/// Reports how a command ended and gives the process's exit code: 0, or the code of its
/// [`Failure`]. A closed stdout (`debstage repo list | head`) is success.
pub fn finish(result: Result<()>, reporter: &Reporter) -> ExitCode {
    let Err(error) = result else {
        reporter.finish();
        return ExitCode::SUCCESS;
    };
    if report::is_broken_pipe(&error) {
        reporter.finish();
        return ExitCode::SUCCESS;
    }
    let failure = failure_of(&error);
    let location = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<build::manifest::ManifestError>())
        .map(|located| (located.file.display().to_string(), located.key.clone()));
    reporter.error(&error, failure, location);
    ExitCode::from(failure.exit_code())
}

/// Reports a command line clap refused: help and version requests print as clap says
/// and succeed; a usage error is the user's input (exit 1), printed as clap words it, or
/// with `--format json` anywhere on the line as the error object.
pub fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let arguments: Vec<String> = std::env::args().collect();
    let json = arguments
        .windows(2)
        .any(|pair| pair[0] == "--format" && pair[1] == "json")
        || arguments.iter().any(|argument| argument == "--format=json");
    if json {
        Reporter::new(false, report::Format::Json).usage_error(&error.render().to_string());
    } else {
        let _ = error.print();
    }
    ExitCode::from(Failure::Input.exit_code())
}

/// The kind of failure an error is, from the typed errors callers act on.
fn failure_of(error: &anyhow::Error) -> Failure {
    if report::is_bug(error) {
        return Failure::Bug;
    }
    for cause in error.chain() {
        if matches!(
            cause.downcast_ref::<repo::lock::LockError>(),
            Some(repo::lock::LockError::Timeout { .. })
        ) {
            return Failure::LockHeld;
        }
        if cause
            .downcast_ref::<repo::commands::add::ConflictError>()
            .is_some()
        {
            return Failure::Conflict;
        }
    }
    Failure::Input
}
