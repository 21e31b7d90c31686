//! Sonames to Debian packages, the way `dpkg-shlibdeps` maps them: from the shlibs and
//! symbols files of the installed packages.

use crate::elf::ElfReport;
use crate::manifest::LoadedManifest;

/// The Depends entries that satisfy the report's sonames.
pub fn resolve(_manifest: &LoadedManifest, _report: &ElfReport) -> anyhow::Result<Vec<String>> {
    Ok(Vec::new())
}
