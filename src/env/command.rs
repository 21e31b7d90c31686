//! `kind = "command"`: the output of a build command run with `DESTDIR`.

use std::path::Path;

use anyhow::{bail, Result};

use super::StagedTree;
use crate::manifest::{CommandEnvironment, LoadedManifest};
use crate::report::Reporter;

/// Runs the build command with `DESTDIR` inside `scratch`.
pub fn stage(
    manifest: &LoadedManifest,
    _options: &CommandEnvironment,
    _scratch: &Path,
    _reporter: &Reporter,
) -> Result<StagedTree> {
    bail!(
        "{}: [environment] kind \"command\" is not implemented yet",
        manifest.path.display()
    )
}
