//! The build manifest: the record of one build that `debstage build` writes beside its
//! packages and `repo add --manifest` reads. Both sides use this one type.

use serde::{Deserialize, Serialize};

use crate::naming::Role;

/// One package in the build manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BuiltPackage {
    /// The file name, relative to the build manifest.
    pub(crate) file: String,
    /// Package, Version and Architecture.
    #[serde(flatten)]
    pub(crate) id: crate::naming::package_id::PackageId,
    /// Size in bytes.
    pub(crate) size: u64,
    /// SHA256 in hex.
    pub sha256: String,
    /// Payload, stage or debug-symbols package.
    pub(crate) role: Role,
    /// The stage of a stage package.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) stage: Option<String>,
}

/// The machine-readable record of one build (`<app>_<version>-<revision>.build.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BuildManifest {
    /// The application.
    pub(crate) app: String,
    /// The upstream version.
    pub(crate) version: String,
    /// The Debian revision.
    pub(crate) revision: String,
    /// `version-revision`.
    pub(crate) debian_version: String,
    /// The stages in promotion order.
    pub(crate) stages: Vec<String>,
    /// The distribution built for (`bookworm`); absent for a build on the host.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) target: Option<String>,
    /// Every package written.
    pub(crate) packages: Vec<BuiltPackage>,
    /// Where the build's time came from and the git state of its input; absent in build
    /// manifests written before debstage recorded it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) provenance: Option<Provenance>,
}

/// The provenance of a build: its time, the rule that gave it, the git commit and branch of
/// the application directory with whether it had uncommitted changes, the host that built
/// it and debstage's version. (The distribution built for is the manifest's `target`.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Provenance {
    /// The time stamped into the packages (seconds since 1970).
    pub(crate) source_date: u64,
    /// `source_date_epoch`, `git_commit` or `newest_file`.
    pub(crate) source_date_rule: crate::source_date::Rule,
    /// The commit checked out, when the application is in a git work tree.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) git_commit: Option<String>,
    /// Whether the application directory had changes git does not hold.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) git_dirty: Option<bool>,
    /// The branch checked out; absent outside a work tree and on a detached HEAD.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) git_branch: Option<String>,
    /// The host name of the machine that built (`/proc/sys/kernel/hostname`); absent in
    /// manifests written before debstage recorded it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) build_host: Option<String>,
    /// The version of the debstage that built; absent in older manifests.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) debstage_version: Option<String>,
}
