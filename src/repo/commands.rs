//! The `debstage repo` commands: each takes the lock, changes the state in one
//! transaction, and publishes the suites that changed.

use anyhow::{bail, Result};

use crate::cli::RepoOptions;
use crate::report::Reporter;

/// Runs one `debstage repo` command.
pub fn run(options: RepoOptions, _reporter: &Reporter) -> Result<()> {
    bail!("debstage repo {:?}: not implemented yet", options.command)
}
