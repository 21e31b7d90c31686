//! A signing key rotated under a fleet that follows the production suite with apt: a
//! server that only ever holds the first key file, one that installs the keyring package
//! while two keys sign, and one set up after the rotation as `repo sources` says.

use std::fs;

use super::apt::{Release, TO_PRODUCTION};
use super::harness::{RepoServer, Server};
use crate::support::{stderr, stdout, without_progress};

/// The keyring package of the harness's repository (origin `debstage-test`).
const KEYRING_PACKAGE: &str = "debstage-test-archive-keyring";

/// The fingerprints `repo key list` shows, with each key's state, in its order (the
/// oldest first), and the keyring package's version.
fn listed_keys(repository: &RepoServer) -> (Vec<(String, String)>, String) {
    let output = repository.run(&["--format", "json", "key", "list"]);
    let document = serde_json::from_str(&stdout(&output)).expect("repo key list --format json");
    let (keys, version) = crate::keys::listed(&document);
    (keys, version.to_string())
}

/// The path `Signed-By` names in what `repo sources` printed.
fn signed_by(printed: &str) -> String {
    printed
        .lines()
        .find_map(|line| line.strip_prefix("Signed-By:"))
        .map(|path| path.trim().to_string())
        .unwrap_or_else(|| panic!("no Signed-By in:\n{printed}"))
}

/// `apt-get update`: whether it exited 0, and all it printed.
fn update(server: &Server) -> (bool, String) {
    let output = server.apt_get(&["update"]);
    let text = format!("{}{}", without_progress(&stdout(&output)), stderr(&output));
    (output.status.success(), text)
}

/// `apt-get update` exits 0 with no warning, no error and no source ignored.
fn update_cleanly(server: &Server, who: &str) {
    let (success, text) = update(server);
    let complaint = ["W:", "E:", "Err:", "Ign:"]
        .iter()
        .find(|marker| text.contains(*marker));
    assert!(
        success && complaint.is_none(),
        "{who}: apt-get update was not clean ({complaint:?}):\n{text}"
    );
}

/// The keys (fingerprints, sorted) whose good signature the server's own gpgv finds on
/// the production InRelease apt keeps, checked against the keyring at `keyring`.
fn signers(server: &Server, keyring: &str) -> Vec<String> {
    let lists = server.path("/var/lib/apt/lists");
    let name = fs::read_dir(&lists)
        .unwrap_or_else(|error| panic!("{}: {error}", lists.display()))
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with("_dists_production_InRelease"))
        .unwrap_or_else(|| panic!("apt keeps no production InRelease in {}", lists.display()));
    let output = server.run(
        "gpgv",
        &[
            "--status-fd",
            "1",
            "--keyring",
            keyring,
            &format!("/var/lib/apt/lists/{name}"),
        ],
    );
    let mut found: Vec<String> = stdout(&output)
        .lines()
        .filter_map(|line| line.strip_prefix("[GNUPG:] VALIDSIG "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect();
    found.sort();
    found
}

/// The installed version of hello-production and the release its link points to.
fn hello(server: &Server) -> (Option<String>, Option<String>) {
    (
        server.installed_version("hello-production"),
        server.link("/opt/hello/production"),
    )
}

/// Installs `packages` with apt; dpkg must not have asked about (or kept) a changed
/// configuration file.
fn install(server: &Server, packages: &[&str]) {
    let mut arguments = vec!["install"];
    arguments.extend_from_slice(packages);
    let output = server.apt_get_ok(&arguments);
    let text = stdout(&output) + &stderr(&output);
    assert!(
        !text.contains("Configuration file") && !text.contains("conffile"),
        "dpkg asked about a configuration file:\n{text}"
    );
}

/// A rotation with real apt: during dual signing every server updates cleanly; once the
/// old key is retired the server that never installed the keyring package fails with
/// `NO_PUBKEY <new key id>`, while the one that did, and one set up after the rotation
/// from the printed procedure, update and upgrade.
#[test]
fn a_rotation_reaches_the_servers_that_upgrade_the_keyring_package() {
    let release = Release::new();
    let Some(old_only) = Server::new("rotation-old-key") else {
        return;
    };
    let upgraded = old_only.beside("rotation-upgraded");
    let repository = &release.repository;
    release.release("1.0", TO_PRODUCTION);
    let (keys, _) = listed_keys(repository);
    let [(old, _)] = keys.as_slice() else {
        panic!("a new repository has one key: {keys:?}");
    };
    let old = old.clone();
    let old_export = repository.run(&["export-key", "--binary"]).stdout;

    // Both servers start as `repo sources` says, before anything rotates.
    let mut keyring = String::new();
    for server in [&old_only, &upgraded] {
        keyring = signed_by(&server.subscribe(repository, "production", "hello"));
        update_cleanly(server, "before the rotation");
        install(server, &["hello-production"]);
        assert_eq!(
            hello(server),
            (Some("1.0-1".to_string()), Some("1.0".to_string()))
        );
        assert_eq!(signers(server, &keyring), [old.as_str()]);
    }
    assert_eq!(
        keyring,
        format!("/usr/share/keyrings/{KEYRING_PACKAGE}.gpg"),
        "Signed-By names the keyring package's file"
    );

    // Dual signing: the new key signs beside the old one, and every suite carries the
    // keyring package with both.
    repository.run(&["key", "add"]);
    let (keys, dual_version) = listed_keys(repository);
    let new = match keys.as_slice() {
        [(first, first_state), (second, second_state)] => {
            assert_eq!(first, &old);
            assert_eq!(
                (first_state.as_str(), second_state.as_str()),
                ("signing", "signing")
            );
            second.clone()
        }
        other => panic!("after repo key add: {other:?}"),
    };
    let printed = stdout(&repository.run(&[
        "sources",
        "production",
        "--url",
        &repository.url(),
        "--app",
        "hello",
    ]));
    assert!(
        printed.contains(&format!("apt-get install {KEYRING_PACKAGE}")),
        "repo sources names the keyring package once the suite carries it:\n{printed}"
    );
    let mut expected = vec![old.clone(), new.clone()];
    expected.sort();
    for server in [&old_only, &upgraded] {
        update_cleanly(server, "during dual signing");
        // The server checks the old key's signature; the new one's it cannot check yet.
        assert_eq!(signers(server, &keyring), [old.as_str()]);
    }
    install(&upgraded, &[KEYRING_PACKAGE]);
    assert_eq!(
        upgraded.installed_version(KEYRING_PACKAGE),
        Some(dual_version.clone())
    );
    let dual_export = repository.run(&["export-key", "--binary"]).stdout;
    assert_eq!(
        fs::read(upgraded.path(&keyring)).expect("the keyring file"),
        dual_export,
        "the package's keyring holds the keys that are not retired"
    );
    update_cleanly(&upgraded, "with the keyring package");
    assert_eq!(signers(&upgraded, &keyring), expected);

    // The old key retired: only the new one signs, and 1.1 reaches production.
    repository.run(&["key", "retire", &old]);
    let (keys, retired_version) = listed_keys(repository);
    assert_eq!(
        keys,
        [
            (old.clone(), "retired".to_string()),
            (new.clone(), "signing".to_string())
        ]
    );
    release.release("1.1", TO_PRODUCTION);

    // apt keeps the indexes it had, says why, and exits 0 unless told to fail on errors.
    let id = &new[new.len() - 16..];
    let (success, text) = update(&old_only);
    assert!(
        success
            && text.contains("Err:")
            && text.contains(&format!("NO_PUBKEY {id}"))
            && text.contains(
                "The repository is not updated and the previous index files will be used"
            ),
        "a server holding only the retired key did not fail on the new key {id}:\n{text}"
    );
    let strict = old_only.apt_get(&["update", "--error-on=any"]);
    let strict_text = stdout(&strict) + &stderr(&strict);
    assert!(
        strict.status.code() == Some(100) && strict_text.contains(&format!("NO_PUBKEY {id}")),
        "apt-get update --error-on=any with only the retired key ({}):\n{strict_text}",
        strict.status
    );
    assert_eq!(
        fs::read(old_only.path(&keyring)).expect("the keyring file"),
        old_export,
        "the first server never got another key"
    );
    let policy = old_only.apt_cache(&["policy", "hello-production"]);
    assert!(
        policy.contains("Candidate: 1.0-1"),
        "the first server sees nothing signed by the new key alone:\n{policy}"
    );

    update_cleanly(&upgraded, "after the retirement, with the keyring package");
    assert_eq!(signers(&upgraded, &keyring), [new.as_str()]);
    upgraded.apt_get_ok(&["upgrade"]);
    assert_eq!(
        upgraded.installed_version(KEYRING_PACKAGE),
        Some(retired_version.clone()),
        "apt-get upgrade brings the keyring package without the retired key"
    );
    assert_eq!(
        fs::read(upgraded.path(&keyring)).expect("the keyring file"),
        repository.run(&["export-key", "--binary"]).stdout
    );
    install(&upgraded, &["hello-production"]);
    assert_eq!(
        hello(&upgraded),
        (Some("1.1-1".to_string()), Some("1.1".to_string()))
    );

    // A server set up after the rotation: the current key file, then the package.
    let after = old_only.beside("rotation-after");
    after.subscribe(repository, "production", "hello");
    update_cleanly(&after, "set up after the rotation");
    install(&after, &[KEYRING_PACKAGE]);
    assert_eq!(
        after.installed_version(KEYRING_PACKAGE),
        Some(retired_version)
    );
    let verify = after.run("dpkg", &["--verify", KEYRING_PACKAGE]);
    assert!(
        verify.status.success() && stdout(&verify).trim().is_empty(),
        "dpkg --verify {KEYRING_PACKAGE}: {}",
        stdout(&verify)
    );
    update_cleanly(
        &after,
        "set up after the rotation, with the keyring package",
    );
    assert_eq!(signers(&after, &keyring), [new]);
    install(&after, &["hello-production"]);
    assert_eq!(
        hello(&after),
        (Some("1.1-1".to_string()), Some("1.1".to_string()))
    );
}
