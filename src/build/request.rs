//! What `debstage build` and `debstage init` are asked to do, in the build's own terms.
//! The command line (`src/cli.rs`) converts its clap options into these once, at the
//! boundary, so that the pipeline does not depend on how its options are spelled.

use std::path::PathBuf;

use crate::deb::compress::Compression;

/// One `debstage build`.
#[derive(Debug, Clone)]
pub(crate) struct BuildRequest {
    /// The manifest to read.
    pub(crate) manifest: PathBuf,
    /// The directory that receives the packages and the build manifest.
    pub(crate) out: PathBuf,
    /// Overrides the manifest's upstream version.
    pub(crate) version: Option<String>,
    /// Overrides the manifest's Debian revision.
    pub(crate) revision: Option<String>,
    /// The compressor of the package members.
    pub(crate) compress: Compression,
    /// The compression level; the compressor's default when unset.
    pub(crate) level: Option<u32>,
    /// The distribution to build in (a codename, or `all`); the host when unset.
    pub(crate) target: Option<String>,
}

/// One `debstage init`.
#[derive(Debug, Clone)]
pub(crate) struct InitRequest {
    /// The application directory that receives `debstage.toml`.
    pub(crate) directory: PathBuf,
    /// The package name, instead of the project's or the directory's.
    pub(crate) name: Option<String>,
    /// Whether an existing `debstage.toml` is replaced.
    pub(crate) force: bool,
}
