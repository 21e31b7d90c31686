//! Signing `Release` files: the [`SignRelease`] trait publishing uses, rPGP keys
//! ([`rpgp`]), the user's gpg ([`gpg`]), and the repository's set of keys ([`keys`]).

pub(crate) mod gpg;
pub(crate) mod keys;
pub(crate) mod rpgp;
mod sign_release;

use std::path::Path;

use anyhow::Result;

use crate::repo::config::RepoConfig;
pub(crate) use crate::repo::sign::keys::KeySet;
pub(crate) use crate::repo::sign::rpgp::Signer;
pub(crate) use crate::repo::sign::sign_release::{armored_keyring, ReleaseKey, SignRelease};

/// The keys the repository's configuration names, which sign together.
pub(crate) fn signer_of(root: &Path, config: &RepoConfig) -> Result<KeySet> {
    KeySet::load(root, config)
}
