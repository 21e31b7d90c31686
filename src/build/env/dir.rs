//! `kind = "dir"`: a directory tree taken as it is (the include and exclude globs of
//! `[files]` apply later, when the tree is listed).

use anyhow::Result;

use super::staged::StagedTree;
use crate::build::manifest::{DirEnvironment, LoadedManifest};

/// The source directory is the staged tree: nothing is copied.
pub(crate) fn stage(manifest: &LoadedManifest, options: &DirEnvironment) -> Result<StagedTree> {
    Ok(StagedTree {
        root: manifest.resolve(&options.source),
        depends: Vec::new(),
    })
}
