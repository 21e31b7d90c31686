//! `debstage init` on projects in the shapes people have (`tests/projects/`, written for
//! these tests): the manifest it writes for each kind is pinned by a snapshot, loads as a
//! manifest, and init keeps its hands off an existing one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{copy_tree, debstage, project_root, run_fail, run_ok, stderr};

/// The projects init is tried on, each with the kind it must see.
const PROJECTS: &[(&str, &str)] = &[
    ("setuptools-flat", "python"),
    ("setuptools-src", "python"),
    ("setuppy", "python"),
    ("setup-cfg", "python"),
    ("hatchling", "python"),
    ("flit", "python"),
    ("poetry", "python"),
    ("pdm", "python"),
    ("requirements-hashes", "python"),
    ("requirements-only", "python"),
    ("poetry-lock", "python"),
    ("uv-lock", "python"),
    ("node-npm", "node"),
    ("node-pnpm", "node"),
    ("npm-app", "node"),
    ("pnpm-app", "node"),
    ("yarn-app", "node"),
    ("berry-app", "node"),
    ("cargo", "command"),
    ("go", "command"),
    ("plain", "dir"),
];

/// A fresh copy of `tests/projects/<name>` in a temporary directory.
pub fn project(name: &str) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temporary directory");
    let target = temp.path().join(name);
    copy_tree(&project_root().join("tests/projects").join(name), &target);
    (temp, target)
}

/// Runs `debstage init` in `directory` and gives the manifest it wrote.
pub fn init(directory: &Path) -> String {
    run_ok(debstage().arg("init").arg(directory));
    fs::read_to_string(directory.join("debstage.toml")).expect("init wrote debstage.toml")
}

/// `debstage build` of the manifest in `directory` (as init wrote it) into `out`, at a
/// fixed SOURCE_DATE_EPOCH.
pub fn build_command(directory: &Path, out: &Path) -> std::process::Command {
    let mut command = debstage();
    command
        .args(["build", "--manifest"])
        .arg(directory.join("debstage.toml"))
        .arg("--out")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    command
}

#[test]
fn init_reads_each_kind_of_project() {
    for (name, kind) in PROJECTS {
        let (_temp, directory) = project(name);
        let manifest = init(&directory);
        let table: toml::Table = manifest
            .parse()
            .unwrap_or_else(|error| panic!("{name}: {error}\n{manifest}"));
        assert_eq!(table["environment"]["kind"].as_str(), Some(*kind), "{name}");
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("snapshots");
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!(format!("init_{name}"), manifest));
        // The hook is where no build tool looks for sources, and executable.
        let hook = directory.join(".debstage/activate");
        let mode = fs::metadata(&hook).expect("hook").permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{name}: {mode:o}");
        assert!(!directory.join("hooks").exists(), "{name}");
    }
}

#[test]
fn init_refuses_an_existing_manifest_without_force() {
    let (_temp, directory) = project("hatchling");
    init(&directory);
    fs::write(directory.join("debstage.toml"), "# mine\n").expect("write");
    let output = run_fail(debstage().arg("init").arg(&directory));
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("--force"), "{}", stderr(&output));
    assert_eq!(
        fs::read_to_string(directory.join("debstage.toml")).expect("read"),
        "# mine\n"
    );
    // An existing hook is kept even with --force.
    fs::write(directory.join(".debstage/activate"), "#!/bin/sh\nexit 0\n").expect("write");
    run_ok(debstage().arg("init").arg("--force").arg(&directory));
    assert!(fs::read_to_string(directory.join("debstage.toml"))
        .expect("read")
        .contains("name = \"shape-hatch\""));
    assert_eq!(
        fs::read_to_string(directory.join(".debstage/activate")).expect("read"),
        "#!/bin/sh\nexit 0\n"
    );
}

/// A dynamic version is left for the user: the manifest says why, and a build given
/// `--version` takes it.
#[test]
fn init_leaves_a_dynamic_version_to_the_user() {
    let (_temp, directory) = project("setuptools-src");
    let manifest = init(&directory);
    assert!(
        manifest.contains("# The project's version is dynamic"),
        "{manifest}"
    );
    assert!(!manifest.contains("\nversion ="), "{manifest}");
    let output = run_fail(
        debstage()
            .args(["build", "--manifest"])
            .arg(directory.join("debstage.toml")),
    );
    assert!(
        stderr(&output).contains("[package] version"),
        "{}",
        stderr(&output)
    );
}
