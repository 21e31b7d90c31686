//! Debian's own package tester on the example: piuparts installs and purges the packages
//! of a release, and upgrades to them from the release before (served by `repo serve`),
//! and fails on anything the system does not get back as it was.

use std::path::Path;
use std::process::Command;

use super::apt::{Release, TO_PRODUCTION};
use super::harness::{can_run, debian_mirror, pristine_root, repo, RepoServer, POLICY_RC_D};
use crate::support::{run_ok, stderr, stdout};

#[test]
fn piuparts_installs_upgrades_from_the_previous_release_and_purges() {
    if !can_run("piuparts", &[("piuparts", "piuparts")]) {
        return;
    }
    let release = Release::new();
    // The release before, in the production suite: what the upgrade test starts from.
    release.release("1.0", TO_PRODUCTION);
    let next = release.builds.good("1.1", "1");

    piuparts(
        &release.repository.url(),
        &[&next.payload(), &next.stage("production")],
    );
}

/// Runs piuparts on `files` against bookworm with the production suite of the repository
/// at `url` as an extra source (what the upgrade test starts from); both its install and
/// purge test and its upgrade test must pass.
pub(super) fn piuparts(url: &str, files: &[&Path]) {
    // The base is the suite's cached debootstrap root, without the suite's policy-rc.d
    // (piuparts brings its own).
    let scratch = tempfile::tempdir().expect("temporary directory");
    let base = scratch.path().join("bookworm.tar.gz");
    run_ok(
        Command::new("tar")
            .arg("--create")
            .arg("--gzip")
            .arg("--file")
            .arg(&base)
            .arg("--directory")
            .arg(pristine_root())
            .arg(format!("--exclude=./{POLICY_RC_D}"))
            .arg("."),
    );
    let repository = format!("deb [trusted=yes] {url} production main");
    let output = Command::new("piuparts")
        .args(["--distribution", "bookworm", "--mirror", &debian_mirror()])
        .arg("--basetgz")
        .arg(&base)
        .arg(format!("--extra-repo={repository}"))
        .arg("--tmpdir")
        .arg(scratch.path())
        .args(files)
        .output()
        .expect("piuparts runs (make deps installs it)");
    let text = stdout(&output) + &stderr(&output);
    assert!(output.status.success(), "piuparts failed:\n{text}");
    // Both tests ran: install and purge, and the suite's release upgraded to these.
    assert!(
        text.contains("PASS: Installation and purging test."),
        "{text}"
    );
    assert!(
        text.contains("PASS: Installation, upgrade and purging tests."),
        "{text}"
    );
}

/// piuparts installs and purges the keyring package (its scripts write and remove the
/// node_exporter textfile where that directory exists, which piuparts' root has not), and
/// upgrades to a key change's version from the one every suite carries since `repo init`.
#[test]
fn piuparts_installs_upgrades_and_purges_the_keyring_package() {
    if !can_run("piuparts keyring", &[("piuparts", "piuparts")]) {
        return;
    }
    let directory = tempfile::tempdir().expect("temporary directory");
    let repository = RepoServer::start(&directory.path().join("repo"), "test,production");
    // The served suite carries version 1; a copy of the repository changes its keys and
    // so writes version 2, the file piuparts upgrades to.
    let changed = directory.path().join("changed");
    crate::support::copy_tree(&repository.directory, &changed);
    run_ok(repo(&changed).args(["key", "add"]));
    let package = "debstage-test-archive-keyring";
    let next = changed.join(format!("pool/main/d/{package}/{package}_2_all.deb"));
    crate::support::assert_lintian_clean(&[&next]);
    piuparts(&repository.url(), &[&next]);
}
