//! The error every check of a manifest gives: the file, the key, what was found and
//! what is allowed.

use std::fmt;
use std::path::PathBuf;

/// A manifest value that is not allowed, located by file and key.
#[derive(Debug, thiserror::Error)]
pub(crate) struct ManifestError {
    /// The manifest file.
    pub(crate) file: PathBuf,
    /// The section and key, as `[package] name`.
    pub(crate) key: String,
    /// What is wrong and what is allowed.
    pub(crate) message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}: {}: {}",
            self.file.display(),
            self.key,
            self.message
        )
    }
}

/// The error maker every check of one manifest file shares.
pub(super) type Fail<'a> = dyn Fn(&str, String) -> ManifestError + 'a;
