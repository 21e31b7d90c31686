//! Environment kinds: each turns the manifest's `[environment]` into a staged tree, the
//! directory that becomes `/opt/<app>/<version>` on the server.

pub(crate) mod command;
pub(crate) mod dir;
mod kind_check;
pub(crate) mod node;
pub(crate) mod node_abi;
pub(crate) mod node_engines;
pub(crate) mod node_layer;
pub(crate) mod node_manager;
pub(crate) mod pip_failure;
pub(crate) mod python;
pub(crate) mod python_layer;
pub(crate) mod python_lock;
pub(crate) mod staged;

use std::path::Path;

use anyhow::Result;

use crate::build::env::staged::{StagedLayer, StagedTree};
use crate::build::manifest::{Environment, LoadedManifest, ManifestError};
use crate::build::runner::Runner;
use crate::report::Reporter;
use kind_check::KindCheck;

/// Checks the `[environment]` keys of the manifest's kind, each kind by the rules beside
/// its code; the keys every kind shares are checked when the manifest is loaded.
pub(crate) fn check(manifest: &LoadedManifest) -> Result<(), ManifestError> {
    let check = KindCheck {
        file: &manifest.path,
        root: &manifest.directory,
    };
    match &manifest.manifest.environment {
        Environment::Dir(options) => dir::check(options, &check),
        Environment::Python(options) => python::check(options, &check),
        Environment::Command(options) => command::check(options, &check),
        Environment::Node(options) => node::check(options, &check),
    }
}

/// Stages the manifest's environment with the programs of `runner` (the host, or the
/// target's build root); `scratch` is an empty directory from `runner.scratch()` the kind
/// may use; `out` is where the packages go (never part of what is built). Gives the
/// release's tree and, for a layered build, the layer split off it.
pub(crate) fn stage(
    manifest: &LoadedManifest,
    runner: &Runner,
    scratch: &Path,
    out: &Path,
    reporter: &Reporter,
) -> Result<(StagedTree, Option<StagedLayer>)> {
    match &manifest.manifest.environment {
        Environment::Dir(options) => Ok((dir::stage(manifest, options)?, None)),
        Environment::Python(options) => {
            python::stage(manifest, options, runner, scratch, out, reporter)
        }
        Environment::Command(options) => Ok((
            command::stage(manifest, options, runner, scratch, reporter)?,
            None,
        )),
        Environment::Node(options) => {
            node::stage(manifest, options, runner, scratch, out, reporter)
        }
    }
}

/// The Debian packages an environment kind needs in a build root, before those of
/// `[build] packages`: Python's venv module and pip for `python`, Node.js and npm for
/// `node`.
pub(crate) fn root_packages(environment: &Environment) -> Vec<String> {
    match environment {
        Environment::Python(_) => python::ROOT_PACKAGES
            .iter()
            .map(|package| package.to_string())
            .collect(),
        Environment::Node(_) => node::ROOT_PACKAGES
            .iter()
            .map(|package| package.to_string())
            .collect(),
        Environment::Dir(_) | Environment::Command(_) => Vec::new(),
    }
}

/// Lintian tags that an environment kind raises by design, shipped as overrides of the
/// payload beside the ones every `/opt` bundle has.
pub(crate) fn lintian_overrides(environment: &Environment) -> &'static [&'static str] {
    match environment {
        Environment::Python(_) => python::LINTIAN_OVERRIDES,
        Environment::Node(_) => node::LINTIAN_OVERRIDES,
        Environment::Dir(_) | Environment::Command(_) => &[],
    }
}
