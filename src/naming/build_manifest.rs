//! The build manifest: the record of one build that `debstage build` writes beside its
//! packages and `repo add --manifest` reads. Both sides use this one type.

use serde::{Deserialize, Serialize};

use crate::naming::Role;

/// One package in the build manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltPackage {
    /// The file name, relative to the build manifest.
    pub file: String,
    /// The Package field.
    pub package: String,
    /// The Version field.
    pub version: String,
    /// The Architecture field.
    pub architecture: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA256 in hex.
    pub sha256: String,
    /// Payload or stage package.
    pub role: Role,
    /// The stage of a stage package.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stage: Option<String>,
}

/// The machine-readable record of one build (`<app>_<version>-<revision>.build.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildManifest {
    /// The application.
    pub app: String,
    /// The upstream version.
    pub version: String,
    /// The Debian revision.
    pub revision: String,
    /// `version-revision`.
    pub debian_version: String,
    /// The stages in promotion order.
    pub stages: Vec<String>,
    /// Every package written.
    pub packages: Vec<BuiltPackage>,
}
