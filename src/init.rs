//! `debstage init`: writes a commented `debstage.toml` and an example activation hook.

use anyhow::Result;

use crate::cli::InitOptions;
use crate::report::Reporter;

/// Writes the skeleton into the application directory.
pub fn run(_options: &InitOptions, _reporter: &Reporter) -> Result<()> {
    anyhow::bail!("debstage init: not implemented yet")
}
