//! Scenarios 1 to 8: servers that follow the suites of a served debstage repository with
//! apt, as they would in production.

use std::collections::BTreeMap;
use std::fs;

use super::fixtures::{Builds, Built};
use super::harness::{RepoServer, Server};
use crate::support::{sha256_file, stdout};

/// A repository of one scenario, served on loopback, with the hello builds beside it.
pub(super) struct Release {
    pub(super) builds: Builds,
    pub(super) repository: RepoServer,
    _directory: tempfile::TempDir,
}

impl Release {
    pub(super) fn new() -> Release {
        let directory = tempfile::tempdir().expect("temporary directory");
        let repository =
            RepoServer::start(&directory.path().join("repo"), "test,staging,production");
        Release {
            builds: Builds::new(),
            repository,
            _directory: directory,
        }
    }

    /// `repo add --manifest` of a build: its packages enter the first stage (test).
    pub(super) fn add(&self, built: &Built) {
        let manifest = built.manifest_file.to_string_lossy().into_owned();
        self.repository.run(&["add", "--manifest", &manifest]);
    }

    /// `repo promote hello VERSION` to the next stage, once per stage in `stages`.
    pub(super) fn promote(&self, version: &str, stages: &[&str]) {
        for stage in stages {
            self.repository
                .run(&["promote", "hello", version, "--to", stage]);
        }
    }

    /// Builds a good version, adds it, and promotes it through `stages`.
    pub(super) fn release(&self, version: &str, stages: &[&str]) -> Built {
        let built = self.builds.good(version, "1");
        self.add(&built);
        self.promote(version, stages);
        built
    }
}

pub(super) const TO_PRODUCTION: &[&str] = &["staging", "production"];

/// `apt-get update` on the server, failing the test if it fails or ignores our suite.
pub(super) fn update(server: &Server) {
    let output = server.apt_get_ok(&["update"]);
    let text = stdout(&output);
    assert!(
        !text.contains("Ign:") && !text.contains("Err:"),
        "apt-get update skipped or failed a source:\n{text}"
    );
}

/// The status and version of every installed `hello*` package per `dpkg -l`.
pub(super) fn dpkg_list(server: &Server) -> BTreeMap<String, (String, String)> {
    let output = server.run("dpkg", &["-l", "hello*"]);
    stdout(&output)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [status, package, version, ..] if status.len() == 2 && *status != "||/" => Some((
                    package.to_string(),
                    (status.to_string(), version.to_string()),
                )),
                _ => None,
            }
        })
        .collect()
}

pub(super) fn installed(
    list: &BTreeMap<String, (String, String)>,
    package: &str,
) -> Option<String> {
    list.get(package)
        .filter(|(status, _)| status == "ii")
        .map(|(_, version)| version.clone())
}

/// The `.deb` files in the server's apt cache.
fn cached_debs(server: &Server) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(server.path("/var/cache/apt/archives"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".deb"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn scenario_1_apt_installs_the_version_promoted_to_production() {
    let release = Release::new();
    let Some(server) = Server::new("apt-install") else {
        return;
    };
    release.release("1.0", TO_PRODUCTION);
    let printed = server.subscribe(&release.repository, "production", "hello");
    assert!(
        printed.contains("comes with the package")
            && printed.contains("apt-get install --allow-downgrades hello-production"),
        "{printed}"
    );
    update(&server);
    let output = server.apt_get_ok(&["install", "hello-production"]);
    // The pin came with the stage package, and nothing the packages ship was changed by
    // following `repo sources` (a second copy of the pin would be a changed conffile).
    let pin = fs::read_to_string(server.path("/etc/apt/preferences.d/hello-production"))
        .expect("the stage package ships its pin");
    assert!(
        pin.contains("Package: hello-production")
            && pin.contains("Pin: release n=production")
            && pin.contains("Pin-Priority: 1001"),
        "{pin}"
    );
    let verify = server.run("dpkg", &["--verify", "hello-production", "hello-1.0"]);
    assert!(
        verify.status.success() && stdout(&verify).trim().is_empty(),
        "dpkg --verify: {}",
        stdout(&verify)
    );
    let text = stdout(&output);
    assert!(
        text.contains("hello-1.0"),
        "apt pulled in the payload:\n{text}"
    );

    assert!(server.path("/opt/hello/1.0/bin/hello").is_file());
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    let unit = fs::read_to_string(server.path("/lib/systemd/system/hello-production.service"))
        .expect("the unit file is installed");
    assert!(unit.contains("/opt/hello/production"), "{unit}");
    let pin = fs::read_to_string(server.path("/etc/apt/preferences.d/hello-production"))
        .expect("the pin file is installed");
    assert!(pin.contains("Pin-Priority: 1001"), "{pin}");
    // apt sees the pin: the installed version is the suite's, at priority 1001.
    let policy = server.apt_cache(&["policy", "hello-production"]);
    assert!(policy.contains("Installed: 1.0-1"), "{policy}");
    assert!(policy.contains("1001"), "{policy}");
    let list = dpkg_list(&server);
    assert_eq!(installed(&list, "hello-1.0").as_deref(), Some("1.0-1"));
}

#[test]
fn scenario_2_an_upgrade_promoted_through_every_stage_reaches_the_server() {
    let release = Release::new();
    let Some(server) = Server::new("apt-upgrade") else {
        return;
    };
    release.release("1.0", TO_PRODUCTION);
    server.subscribe(&release.repository, "production", "hello");
    update(&server);
    server.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));

    // 1.1 enters test; until it reaches production the server does not move.
    release.release("1.1", &["staging"]);
    update(&server);
    server.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    release.promote("1.1", &["production"]);

    update(&server);
    server.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));
    assert!(server.path("/opt/hello/1.0/bin/hello").is_file());
    assert!(server.path("/opt/hello/1.1/bin/hello").is_file());
    let list = dpkg_list(&server);
    assert_eq!(installed(&list, "hello-1.0").as_deref(), Some("1.0-1"));
    assert_eq!(installed(&list, "hello-1.1").as_deref(), Some("1.1-1"));
    assert_eq!(
        installed(&list, "hello-production").as_deref(),
        Some("1.1-1")
    );
}

#[test]
fn scenario_3_a_failed_activation_keeps_the_old_release_until_a_fixed_revision() {
    let release = Release::new();
    let Some(server) = Server::new("apt-failed-hook") else {
        return;
    };
    release.release("1.1", TO_PRODUCTION);
    server.subscribe(&release.repository, "production", "hello");
    update(&server);
    server.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));

    let broken = release.builds.broken("1.2", "1");
    release.add(&broken);
    release.promote("1.2-1", TO_PRODUCTION);
    update(&server);
    let output = server.apt_get(&["install", "hello-production"]);
    assert_eq!(output.status.code(), Some(100), "{}", stdout(&output));
    // apt runs dpkg on a pty: what the scripts print arrives on apt's stdout.
    let text = stdout(&output) + &crate::support::stderr(&output);
    assert!(
        text.contains("migration of 1.2 failed")
            && text.contains("activation hook of 1.2 failed (exit 1)")
            && text.contains("/opt/hello/production still points to 1.1")
            && text.contains("Sub-process /usr/bin/dpkg returned an error code (1)"),
        "{text}"
    );
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));
    assert_eq!(server.package_status("hello-production"), "iF");

    let fixed = release.builds.good("1.2", "2");
    release.add(&fixed);
    release.promote("1.2-2", TO_PRODUCTION);
    update(&server);
    server.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.2"));
    let list = dpkg_list(&server);
    assert_eq!(
        installed(&list, "hello-production").as_deref(),
        Some("1.2-2")
    );
    assert_eq!(installed(&list, "hello-1.2").as_deref(), Some("1.2-2"));
    let audit = server.run_ok("dpkg", &["--audit"]);
    assert!(stdout(&audit).trim().is_empty(), "{}", stdout(&audit));
}

#[test]
fn scenario_4_a_rollback_reaches_the_server_without_downloading_the_old_payload() {
    let release = Release::new();
    let Some(server) = Server::new("apt-rollback") else {
        return;
    };
    release.release("1.0", TO_PRODUCTION);
    server.subscribe(&release.repository, "production", "hello");
    update(&server);
    server.apt_get_ok(&["install", "hello-production"]);
    release.release("1.1", TO_PRODUCTION);
    update(&server);
    server.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));

    release.repository.run(&["rollback", "hello", "production"]);
    server.apt_get_ok(&["clean"]);
    update(&server);
    let policy = server.apt_cache(&["policy", "hello-production"]);
    assert!(policy.contains("Candidate: 1.0-1"), "{policy}");
    let output = server.apt_get_ok(&["install", "--allow-downgrades", "hello-production"]);
    let text = stdout(&output);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    assert!(
        text.contains("Unpacking hello-production (1.0-1)")
            && !text.contains("Unpacking hello-1.0"),
        "apt touched the 1.0 payload again:\n{text}"
    );
    let downloads: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("Get:"))
        .collect();
    assert_eq!(downloads.len(), 1, "{text}");
    assert!(downloads[0].contains("hello-production"), "{text}");
    assert_eq!(cached_debs(&server), ["hello-production_1.0-1_all.deb"]);
    // 1.1 stays on disk for the next roll forward.
    assert!(server.path("/opt/hello/1.1/bin/hello").is_file());
}

#[test]
fn scenario_5_one_server_follows_two_stages() {
    let release = Release::new();
    let Some(server) = Server::new("apt-two-stages") else {
        return;
    };
    release.release("1.0", TO_PRODUCTION);
    release.release("1.1", &["staging"]);
    server.subscribe(&release.repository, "staging", "hello");
    server.subscribe(&release.repository, "production", "hello");
    update(&server);
    server.apt_get_ok(&["install", "hello-staging", "hello-production"]);
    assert_eq!(server.link("/opt/hello/staging").as_deref(), Some("1.1"));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    assert!(server.exists("/lib/systemd/system/hello-staging.service"));
    assert!(server.exists("/lib/systemd/system/hello-production.service"));
    let list = dpkg_list(&server);
    assert_eq!(installed(&list, "hello-staging").as_deref(), Some("1.1-1"));
    assert_eq!(
        installed(&list, "hello-production").as_deref(),
        Some("1.0-1")
    );
    assert_eq!(installed(&list, "hello-1.0").as_deref(), Some("1.0-1"));
    assert_eq!(installed(&list, "hello-1.1").as_deref(), Some("1.1-1"));
}

#[test]
fn scenario_6_a_staging_server_never_sees_an_unpromoted_version() {
    let release = Release::new();
    let Some(server) = Server::new("apt-visibility") else {
        return;
    };
    release.release("1.0", &["staging"]);
    release.release("1.1", &[]);
    server.subscribe(&release.repository, "staging", "hello");
    update(&server);

    let policy = server.apt_cache(&["policy", "hello-staging"]);
    assert!(policy.contains("Candidate: 1.0-1"), "{policy}");
    assert!(!policy.contains("1.1"), "{policy}");
    // Neither the 1.1 payload nor other stages' packages are visible.
    for package in ["hello-1.1", "hello-test", "hello-production"] {
        let policy = server.apt_cache(&["policy", package]);
        assert!(
            !policy.contains("Candidate:") || policy.contains("Candidate: (none)"),
            "{package} is visible to a staging server:\n{policy}"
        );
    }
    let output = server.apt_get(&["install", "hello-1.1"]);
    assert!(!output.status.success(), "{}", stdout(&output));

    // Once promoted, it shows up: the check above can fail.
    release.promote("1.1", &["staging"]);
    update(&server);
    let policy = server.apt_cache(&["policy", "hello-staging"]);
    assert!(policy.contains("Candidate: 1.1-1"), "{policy}");
}

#[test]
fn scenario_7_purge_removes_link_and_journal_autoremove_the_unused_payloads() {
    let release = Release::new();
    let Some(server) = Server::new("apt-purge") else {
        return;
    };
    release.release("1.0", TO_PRODUCTION);
    release.release("1.1", TO_PRODUCTION);
    // Staging goes back to 1.0, so that one payload stays needed after the purge.
    release
        .repository
        .run(&["rollback", "hello", "staging", "--to", "1.0"]);
    server.subscribe(&release.repository, "staging", "hello");
    server.subscribe(&release.repository, "production", "hello");
    update(&server);
    server.apt_get_ok(&[
        "install",
        "--allow-downgrades",
        "hello-staging",
        "hello-production",
    ]);
    assert_eq!(server.link("/opt/hello/staging").as_deref(), Some("1.0"));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));
    assert!(server.exists("/var/lib/hello/production.journal"));

    server.apt_get_ok(&["purge", "hello-production"]);
    assert!(!server.exists("/opt/hello/production"));
    assert!(!server.exists("/var/lib/hello/production.journal"));
    assert!(!server.exists("/etc/apt/preferences.d/hello-production"));
    // Purging a stage leaves the payloads; autoremove takes those no stage needs.
    assert!(server.path("/opt/hello/1.1/bin/hello").is_file());
    let output = server.apt_get_ok(&["autoremove", "--purge"]);
    let text = stdout(&output);
    assert!(text.contains("hello-1.1"), "{text}");
    assert!(!server.exists("/opt/hello/1.1"));
    assert!(server.path("/opt/hello/1.0/bin/hello").is_file());
    assert_eq!(server.link("/opt/hello/staging").as_deref(), Some("1.0"));
    let list = dpkg_list(&server);
    assert_eq!(installed(&list, "hello-1.1"), None);
    assert_eq!(installed(&list, "hello-1.0").as_deref(), Some("1.0-1"));
    assert_eq!(installed(&list, "hello-staging").as_deref(), Some("1.0-1"));
}

/// The paragraphs of a `Packages` index, by `Package` and `Version`.
fn packages_index(text: &str) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    text.split("\n\n")
        .filter(|paragraph| !paragraph.trim().is_empty())
        .map(|paragraph| {
            let fields: BTreeMap<String, String> = paragraph
                .lines()
                .filter(|line| !line.starts_with(' '))
                .filter_map(|line| line.split_once(": "))
                .map(|(key, value)| (key.to_string(), value.trim().to_string()))
                .collect();
            let key = (
                fields.get("Package").cloned().unwrap_or_default(),
                fields.get("Version").cloned().unwrap_or_default(),
            );
            (key, fields)
        })
        .collect()
}

#[test]
fn scenario_8_every_suite_serves_the_same_bytes() {
    let release = Release::new();
    let built = release.release("1.0", TO_PRODUCTION);
    let payload_sha256 = sha256_file(&built.payload());
    let mut seen = Vec::new();
    for stage in ["test", "staging", "production"] {
        let (status, body) = release
            .repository
            .get(&format!("/dists/{stage}/main/binary-amd64/Packages"));
        assert_eq!(status, 200, "Packages of {stage}");
        let index = packages_index(&String::from_utf8_lossy(&body));
        let entry = index
            .get(&("hello-1.0".to_string(), "1.0-1".to_string()))
            .unwrap_or_else(|| panic!("hello-1.0 is not in {stage}: {index:#?}"));
        assert_eq!(entry.get("SHA256"), Some(&payload_sha256), "{stage}");
        let filename = entry.get("Filename").cloned().unwrap_or_default();
        let (status, bytes) = release.repository.get(&format!("/{filename}"));
        assert_eq!(status, 200, "{filename}");
        let path = std::env::temp_dir().join(format!("debstage-e2e-{}.deb", std::process::id()));
        fs::write(&path, &bytes).expect("write the fetched .deb");
        let fetched = sha256_file(&path);
        let _ = fs::remove_file(&path);
        assert_eq!(fetched, payload_sha256, "{stage} serves other bytes");
        seen.push(filename);
        // Each suite lists its own stage package, and no other stage's.
        for other in ["test", "staging", "production"] {
            let listed = index
                .keys()
                .any(|(package, _)| *package == format!("hello-{other}"));
            assert_eq!(listed, other == stage, "hello-{other} in the {stage} suite");
        }
    }
    // Promotion copies a reference: one pool file for all three suites.
    seen.dedup();
    assert_eq!(seen.len(), 1, "{seen:?}");
}
