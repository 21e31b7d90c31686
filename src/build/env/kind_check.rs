//! What each environment kind's manifest check is given: the manifest file its errors
//! name and the directory its relative paths start from.

use std::path::Path;

use crate::build::manifest::ManifestError;

/// What a kind's check needs: the manifest file its errors name, and the directory its
/// relative paths start from.
pub(crate) struct KindCheck<'a> {
    pub(super) file: &'a Path,
    /// The manifest's directory.
    pub(crate) root: &'a Path,
}

impl KindCheck<'_> {
    /// The error for `key`: `message` says what was found and what is allowed.
    pub(crate) fn fail(&self, key: &str, message: String) -> ManifestError {
        ManifestError {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            message,
        }
    }

    /// `path`, relative to the manifest, must be a directory.
    pub(crate) fn directory(&self, key: &str, path: &Path) -> Result<(), ManifestError> {
        let full = self.root.join(path);
        if full.is_dir() {
            Ok(())
        } else {
            Err(self.fail(key, format!("{}: no such directory", full.display())))
        }
    }
}
