//! The `debstage repo` commands: each writer takes the lock, changes the state in one
//! transaction, and publishes the suites that changed. Readers take no lock.

pub(crate) mod add;
pub(crate) mod diff;
pub(crate) mod export_key;
pub(crate) mod init;
pub(crate) mod key;
pub(crate) mod list;
pub(crate) mod remove_gc;
pub(crate) mod sources;
pub(crate) mod stages;
pub(crate) mod targets;
pub(crate) mod verify;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::cli::RepoCommand;
use crate::repo::session::{Repository, Session};
use crate::repo::suites;
use crate::report::Reporter;

/// Runs one `debstage repo` command.
pub(crate) fn run(
    root: &Path,
    timeout: Option<Duration>,
    command: RepoCommand,
    reporter: &Reporter,
) -> Result<()> {
    match command {
        RepoCommand::Init {
            stages,
            origin,
            label,
            architectures,
            key,
            gpg_key,
            expires,
        } => {
            let request = init::InitRequest {
                stages,
                origin,
                label,
                architectures,
                key,
                gpg_key,
                expires: expires.0,
            };
            init::run(root, &request, reporter)
        }
        RepoCommand::Key(command) => key::run(root, timeout, command, reporter),
        RepoCommand::Add {
            arguments,
            manifest,
            skip,
        } => add::run(
            root,
            timeout,
            reporter,
            &arguments,
            manifest.as_deref(),
            skip,
        ),
        RepoCommand::Promote {
            app,
            version,
            stage,
            to,
            skip,
            dist,
        } => {
            let dist = suites::parse_distribution(dist.as_deref())?;
            let mut session = Session::begin(root, timeout, reporter)?;
            let stage = stage.or(to);
            stages::promote(&mut session, &app, &version, stage.as_deref(), skip, dist)
        }
        RepoCommand::Rollback {
            app,
            stage,
            to,
            dist,
        } => {
            let dist = suites::parse_distribution(dist.as_deref())?;
            let mut session = Session::begin(root, timeout, reporter)?;
            stages::rollback(&mut session, &app, &stage, to.as_deref(), dist)
        }
        RepoCommand::Remove {
            app,
            version,
            stage,
        } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            remove_gc::remove(&mut session, &app, &version, stage.as_deref())
        }
        RepoCommand::Gc { keep, forget } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            remove_gc::gc(&mut session, keep, forget)
        }
        RepoCommand::Publish {
            target: Some(target),
        } => {
            let session = Session::begin(root, timeout, reporter)?;
            targets::publish(&session, &target)
        }
        RepoCommand::Publish { target: None } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            let transaction = session.connection.transaction()?;
            let all = suites::all_suites(&session.repository.config, &transaction)?;
            for suite in &all {
                crate::repo::state::owe_publication(&transaction, &suite.name())?;
            }
            transaction.commit()?;
            session.publish_pending()?;
            reporter.status(format!("published {} suite(s)", all.len()));
            Ok(())
        }
        RepoCommand::List { stage } => list::list(root, stage.as_deref(), reporter),
        RepoCommand::Show { app } => list::show(root, &app, reporter),
        RepoCommand::History { app } => list::history(root, app.as_deref(), reporter),
        RepoCommand::Diff { from, to, app, git } => diff::run(
            root,
            &diff::DiffRequest {
                from: &from,
                to: &to,
                app: app.as_deref(),
                git: git.as_deref(),
            },
            reporter,
        ),
        RepoCommand::Verify { target: None, full } => verify::run(root, full, reporter),
        RepoCommand::Verify {
            target: Some(target),
            ..
        } => targets::verify(root, &target, reporter),
        RepoCommand::ExportKey { binary } => export_key::run(root, binary, reporter),
        RepoCommand::Sources {
            stage,
            url,
            app,
            dist,
        } => {
            let dist = suites::parse_distribution(dist.as_deref())?;
            sources::run(root, &stage, dist, &url, app.as_deref(), reporter)
        }
        RepoCommand::Serve { addr } => {
            Repository::open(root)?;
            crate::repo::serve::serve(root, &addr, reporter)
        }
    }
}
