//! `debstage repo`: a local apt repository with one suite per stage.
//!
//! State lives in SQLite ([`state`]); the published tree (`dists/`, `pool/`) is derived
//! from it by [`publish`], signed by [`sign`], and served by [`serve`].

pub mod commands;
pub mod config;
mod http;
pub mod lock;
pub mod pool;
pub mod publish;
pub mod serve;
pub mod session;
pub mod sign;
pub mod state;

use anyhow::Result;

use crate::cli::RepoOptions;
use crate::report::Reporter;

/// Runs one `debstage repo` command.
pub fn run(options: RepoOptions, reporter: &Reporter) -> Result<()> {
    commands::run(options, reporter)
}
