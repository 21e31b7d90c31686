//! Signing `Release` files: the [`SignRelease`] trait publishing uses, rPGP keys
//! ([`rpgp`]) and the user's gpg ([`gpg`]), and which of them a repository names.

pub(crate) mod gpg;
pub(crate) mod rpgp;
mod sign_release;

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::repo::config::RepoConfig;
pub(crate) use crate::repo::sign::rpgp::Signer;
pub(crate) use crate::repo::sign::sign_release::SignRelease;

/// The signer the repository's configuration names: its own key under `private/` (or
/// the file `--key` gave), or a key in the user's gpg keyring.
pub(crate) fn signer_of(root: &Path, config: &RepoConfig) -> Result<Box<dyn SignRelease>> {
    match (config.key_path(root), &config.signing.gpg_key) {
        (Some(key), _) => Ok(Box::new(Signer::load(&key).with_context(|| {
            format!("{}: the signing key cannot be loaded", key.display())
        })?)),
        (None, Some(id)) => Ok(Box::new(gpg::GpgSigner::new(id)?)),
        (None, None) => bail!("the repository configuration names no signing key"),
    }
}
