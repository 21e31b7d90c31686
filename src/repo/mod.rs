//! `debstage repo`: a local apt repository with one suite per stage.
//!
//! State lives in SQLite ([`state`]); the published tree (`dists/`, `pool/`) is derived
//! from it by [`publish`], signed by [`sign`], and served by [`serve`].

pub(crate) mod commands;
pub(crate) mod config;
mod http;
pub(crate) mod lock;
pub(crate) mod pool;
pub(crate) mod publish;
pub(crate) mod serve;
#[cfg(test)]
mod serve_tests;
pub(crate) mod session;
pub(crate) mod sign;
pub(crate) mod state;

use anyhow::Result;

use crate::cli::RepoOptions;
use crate::report::Reporter;

/// Runs one `debstage repo` command.
pub(crate) fn run(options: RepoOptions, reporter: &Reporter) -> Result<()> {
    commands::run(options, reporter)
}
