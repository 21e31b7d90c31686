//! `kind = "dir"`: a directory tree taken as it is (the include and exclude globs of
//! `[files]` apply later, when the tree is listed).

use anyhow::Result;

use super::kind_check::KindCheck;
use super::staged::StagedTree;
use crate::build::manifest::{DirEnvironment, LoadedManifest, ManifestError};

/// The source directory is the staged tree: nothing is copied.
pub(crate) fn stage(manifest: &LoadedManifest, options: &DirEnvironment) -> Result<StagedTree> {
    Ok(StagedTree {
        root: manifest.resolve(&options.source),
        depends: Vec::new(),
    })
}

/// The key of `kind = "dir"`: the source directory exists.
pub(super) fn check(dir: &DirEnvironment, check: &KindCheck<'_>) -> Result<(), ManifestError> {
    check.directory("[environment] source", &dir.source)
}
