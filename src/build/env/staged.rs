//! What every environment kind produces, apart from the dispatch in `env/mod.rs`, so
//! that the kinds and the dispatcher do not import each other.

use std::path::PathBuf;

/// What an environment kind produced.
#[derive(Debug)]
pub(crate) struct StagedTree {
    /// The directory whose contents become the release directory.
    pub(crate) root: PathBuf,
    /// Packages the environment itself needs on the server (`python3.11`).
    pub(crate) depends: Vec<String>,
}

/// The layer an environment kind split off its staged tree (see `python_layer` and
/// `node_layer`).
#[derive(Debug)]
pub(crate) struct StagedLayer {
    /// The layer key, which names the layer package and its directory.
    pub(crate) key: String,
    /// The directory whose contents become `/opt/<app>/.layers/<key>`.
    pub(crate) root: PathBuf,
    /// Packages the layer needs on the server (the interpreter whose `.pyc` it holds).
    pub(crate) depends: Vec<String>,
    /// The layer cache's entry, where the layer's `.deb` is kept for the next build.
    pub(crate) cache: Option<PathBuf>,
    /// The layer's `.deb` from a previous build (in `--out` or the layer cache), taken as
    /// it is: the same key gives the same bytes.
    pub(crate) prebuilt: Option<PathBuf>,
}
