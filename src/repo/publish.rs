//! Publishing suites atomically for readers: pool and by-hash files first, indexes by
//! rename, `Release` and `InRelease` last.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Result};

/// One package as a suite lists it.
#[derive(Debug, Clone)]
pub struct IndexedPackage {
    /// The control paragraph read from the `.deb`, without a trailing blank line.
    pub control: String,
    /// The Architecture field (`all` is listed under every architecture).
    pub architecture: String,
    /// The pool path relative to the repository root (`pool/main/h/hello/...deb`).
    pub filename: String,
    /// Size of the `.deb` in bytes.
    pub size: u64,
    /// Hex digests of the `.deb`.
    pub md5: String,
    /// SHA1, hex.
    pub sha1: String,
    /// SHA256, hex.
    pub sha256: String,
}

/// The contents of one suite (one stage).
#[derive(Debug, Clone)]
pub struct SuiteView {
    /// The suite name, which is the stage name (also used as Codename).
    pub name: String,
    /// Every package the suite lists.
    pub packages: Vec<IndexedPackage>,
}

/// Repository-wide values that go into every Release file.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    /// Origin field.
    pub origin: String,
    /// Label field.
    pub label: String,
    /// Architectures served (without `all`).
    pub architectures: Vec<String>,
    /// The Date field (SOURCE_DATE_EPOCH when set, for reproducible indexes).
    pub date: SystemTime,
    /// How long a Release stays valid (Valid-Until), if at all.
    pub valid_for: Option<std::time::Duration>,
}

/// Writes the indexes of `suites` under `root/dists/` and signs them.
pub fn publish(
    _root: &Path,
    _settings: &PublishSettings,
    _suites: &[SuiteView],
    _signer: &crate::repo::sign::Signer,
) -> Result<()> {
    bail!("publishing is not implemented yet")
}
