//! `kind = "python"`: a virtualenv built with a Debian interpreter and made to work at
//! `/opt/<app>/<version>`.

use std::path::Path;

use anyhow::{bail, Result};

use super::StagedTree;
use crate::manifest::{LoadedManifest, PythonEnvironment};
use crate::report::Reporter;

/// Builds the virtualenv into `scratch`.
pub fn stage(
    manifest: &LoadedManifest,
    _options: &PythonEnvironment,
    _scratch: &Path,
    _reporter: &Reporter,
) -> Result<StagedTree> {
    bail!(
        "{}: [environment] kind \"python\" is not implemented yet",
        manifest.path.display()
    )
}
