//! OpenPGP signing of `Release` (InRelease, Release.gpg) with rPGP, and the signing key.

use std::path::Path;

use anyhow::{bail, Result};

/// A loaded signing key.
#[derive(Debug)]
pub struct Signer {}

impl Signer {
    /// Loads an armored secret key.
    pub fn load(path: &Path) -> Result<Signer> {
        bail!("{}: signing is not implemented yet", path.display())
    }
}
