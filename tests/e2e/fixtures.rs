//! Builds of `examples/hello` that the scenarios install: good versions, and versions
//! whose activation hook fails. Each scenario makes its own, in its own temp dir.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::BuildManifest;

use crate::support::{build, copy_tree, project_root};

/// A scratch directory with a copy of `examples/hello` and the packages built from it.
pub struct Builds {
    temp: tempfile::TempDir,
    /// Where every build writes its packages and build manifests.
    pub out: PathBuf,
}

/// One build: its manifest and where its files are.
pub struct Built {
    /// What `debstage build` recorded.
    pub manifest: BuildManifest,
    /// The build manifest file (`repo add --manifest` takes it).
    pub manifest_file: PathBuf,
    out: PathBuf,
}

impl Built {
    /// The payload package file.
    pub fn payload(&self) -> PathBuf {
        self.file_of(|package| package.role == "payload")
    }

    /// The stage package file of `stage`.
    pub fn stage(&self, stage: &str) -> PathBuf {
        self.file_of(|package| package.role == "stage" && package.stage.as_deref() == Some(stage))
    }

    fn file_of(&self, wanted: impl Fn(&crate::support::BuiltPackage) -> bool) -> PathBuf {
        let package = self
            .manifest
            .packages
            .iter()
            .find(|package| wanted(package))
            .unwrap_or_else(|| panic!("no such package in {}", self.manifest_file.display()));
        self.out.join(&package.file)
    }
}

impl Builds {
    /// A scratch directory with two copies of the example: as shipped, and with an
    /// activation hook that fails.
    pub fn new() -> Builds {
        let temp = tempfile::tempdir().expect("temporary directory");
        let example = project_root().join("examples/hello");
        copy_tree(&example, &temp.path().join("hello"));
        copy_tree(&example, &temp.path().join("hello-broken"));
        let hook = temp.path().join("hello-broken/app/hooks/activate");
        fs::write(
            &hook,
            "#!/bin/sh\necho \"migration of $DEBSTAGE_VERSION failed\" >&2\nexit 1\n",
        )
        .unwrap_or_else(|error| panic!("{}: {error}", hook.display()));
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|error| panic!("{}: {error}", hook.display()));
        let out = temp.path().join("out");
        Builds { temp, out }
    }

    /// Builds a version whose activation hook works.
    pub fn good(&self, version: &str, revision: &str) -> Built {
        self.build_from(&self.temp.path().join("hello"), version, revision)
    }

    /// Builds a version whose activation hook exits 1.
    pub fn broken(&self, version: &str, revision: &str) -> Built {
        self.build_from(&self.temp.path().join("hello-broken"), version, revision)
    }

    fn build_from(&self, app: &Path, version: &str, revision: &str) -> Built {
        let value = build(
            &app.join("debstage.toml"),
            &self.out,
            &["--version", version, "--revision", revision],
        );
        let manifest: BuildManifest = serde_json::from_value(value)
            .unwrap_or_else(|error| panic!("build manifest of hello {version}: {error}"));
        let manifest_file = self.out.join(manifest.file_name());
        assert!(
            manifest_file.is_file(),
            "{} missing",
            manifest_file.display()
        );
        Built {
            manifest,
            manifest_file,
            out: self.out.clone(),
        }
    }
}
