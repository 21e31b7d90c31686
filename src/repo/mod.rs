//! `debstage repo`: a local apt repository with one suite per stage.
//!
//! State lives in SQLite ([`state`]); the published tree (`dists/`, `pool/`) is derived
//! from it by [`publish`], signed by [`sign`], and served by [`serve`].

pub mod add;
pub mod commands;
pub mod config;
pub mod gpg;
mod http;
pub mod index;
pub mod index_cache;
pub mod listing;
pub mod lock;
pub mod maintenance;
pub mod pool;
pub mod publish;
pub mod serve;
pub mod sign;
pub mod sources;
pub mod stages;
pub mod state;

use anyhow::Result;

use crate::cli::RepoOptions;
use crate::report::Reporter;

/// Runs one `debstage repo` command.
pub fn run(options: RepoOptions, reporter: &Reporter) -> Result<()> {
    commands::run(options, reporter)
}
