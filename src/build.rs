//! The build pipeline: manifest -> staged tree -> payload and stage packages -> build
//! manifest.

use anyhow::Result;

use crate::cli::BuildOptions;
use crate::report::Reporter;

/// Builds every package of the manifest into `--out`.
pub fn run(_options: &BuildOptions, _reporter: &Reporter) -> Result<()> {
    anyhow::bail!("not implemented yet")
}
