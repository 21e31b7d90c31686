//! `debstage repo`: a local apt repository with one suite per stage.
//!
//! State lives in SQLite ([`state`]); the published tree (`dists/`, `pool/`) is derived
//! from it by [`publish`], signed by [`sign`], and served by [`serve`].

pub(crate) mod clock;
pub(crate) mod commands;
pub(crate) mod config;
mod http;
pub(crate) mod keyring;
pub(crate) mod layers;
pub(crate) mod lock;
pub(crate) mod pool;
pub(crate) mod publish;
pub(crate) mod serve;
#[cfg(test)]
mod serve_tests;
pub(crate) mod session;
pub(crate) mod sign;
pub(crate) mod stage_diff;
pub(crate) mod stage_rules;
pub(crate) mod state;
pub(crate) mod subscribe;
pub(crate) mod suites;
pub(crate) mod targets;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::cli::RepoCommand;
use crate::report::Reporter;

/// Runs one `debstage repo` command.
pub(crate) fn run(
    root: &Path,
    lock_timeout: Option<Duration>,
    command: RepoCommand,
    reporter: &Reporter,
) -> Result<()> {
    commands::run(root, lock_timeout, command, reporter)
}
