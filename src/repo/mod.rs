//! `debstage repo`: a local apt repository with one suite per stage.

use anyhow::{bail, Result};

use crate::cli::RepoOptions;
use crate::report::Reporter;

/// Runs one `debstage repo` command.
pub fn run(options: RepoOptions, _reporter: &Reporter) -> Result<()> {
    bail!("debstage repo {:?}: not implemented yet", options.command)
}
