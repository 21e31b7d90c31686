//! `debstage repo key`: several keys, each signing or retired; one signature per signing
//! key in `InRelease` and `Release.gpg`, checked with the real gpgv and sqv against
//! keyrings that hold one key each; expiry, with keys whose own dates are in the past.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The shared repository fixture (origin acme, stages test and production, a fixed
/// `SOURCE_DATE_EPOCH`), with room in its temporary directory for key files.
struct Keys {
    repository: crate::support::repository::TestRepository,
    temp: PathBuf,
    repo: PathBuf,
}

impl std::ops::Deref for Keys {
    type Target = crate::support::repository::TestRepository;

    fn deref(&self) -> &Self::Target {
        &self.repository
    }
}

impl Keys {
    fn new() -> Keys {
        Keys::with(&[
            "--arch",
            "amd64",
            "--origin",
            "acme",
            "--stages",
            "test,production",
        ])
    }

    /// A repository made by `repo init ARGUMENTS`.
    fn with(arguments: &[&str]) -> Keys {
        Keys::from(crate::support::repository::TestRepository::init_with(
            arguments,
            &[("SOURCE_DATE_EPOCH", "1700000000")],
        ))
    }

    fn from(repository: crate::support::repository::TestRepository) -> Keys {
        let temp = repository.dir().to_path_buf();
        let repo = repository.repo.clone();
        Keys {
            repository,
            temp,
            repo,
        }
    }

    fn run(&self, arguments: &[&str]) -> Output {
        self.output(arguments)
    }

    /// `repo key list`: (fingerprint, state) of each key, and the keyring version.
    fn listed(&self) -> (Vec<(String, String)>, u64) {
        listed(&self.json(&["key", "list"]))
    }

    /// The binary keyring of one key, from `repo key export FINGERPRINT`.
    fn keyring_of(&self, fingerprint: &str) -> PathBuf {
        let armored = self.temp.as_path().join(format!("{fingerprint}.asc"));
        fs::write(&armored, self.ok(&["key", "export", fingerprint])).expect("write");
        let binary = self.temp.as_path().join(format!("{fingerprint}.gpg"));
        let output = Command::new("gpg")
            .args(["--batch", "--yes", "--dearmor", "--output"])
            .arg(&binary)
            .arg(&armored)
            .output()
            .expect("gpg runs");
        assert!(output.status.success(), "{output:?}");
        binary
    }

    fn suite(&self, suite: &str) -> PathBuf {
        self.repo.join("dists").join(suite)
    }
}

/// What `repo key list --format json` printed: (fingerprint, state) of each key, oldest
/// first, and the keyring version.
pub(crate) fn listed(document: &Value) -> (Vec<(String, String)>, u64) {
    let keys = document["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| {
            (
                key["fingerprint"]
                    .as_str()
                    .expect("fingerprint")
                    .to_string(),
                key["state"].as_str().expect("state").to_string(),
            )
        })
        .collect();
    (keys, document["keyring_version"].as_u64().expect("version"))
}

/// The fingerprints gpgv found a good signature of (`VALIDSIG`) in `files` (InRelease,
/// or Release.gpg and Release) with only `keyring`, and whether it exited 0.
fn gpgv(keyring: &Path, files: &[PathBuf]) -> (Vec<String>, bool) {
    let output = Command::new("gpgv")
        .args(["--status-fd", "1", "--keyring"])
        .arg(keyring)
        .args(files)
        .output()
        .expect("gpgv runs (install gpgv)");
    let valid = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("[GNUPG:] VALIDSIG "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_string)
        .collect();
    (valid, output.status.success())
}

/// Whether sqv (apt's verifier on newer Debian) accepts `Release.gpg` over `Release`
/// with only `keyring`.
fn sqv(keyring: &Path, suite: &Path) -> bool {
    Command::new("sqv")
        .arg("--keyring")
        .arg(keyring)
        .arg(suite.join("Release.gpg"))
        .arg(suite.join("Release"))
        .output()
        .expect("sqv runs (install sqv)")
        .status
        .success()
}

/// The number of public keys in a binary keyring, as gpg shows them.
fn keys_in(keyring: &Path) -> usize {
    let output = Command::new("gpg")
        .args(["--batch", "--show-keys", "--with-colons"])
        .arg(keyring)
        .output()
        .expect("gpg runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("pub:"))
        .count()
}

/// While two keys sign, InRelease and Release.gpg carry a signature of each, and a client
/// holding either key alone verifies them (gpgv and sqv); the public key files and the
/// keyring version follow every change. Once the old key is retired, only the new one
/// signs, a client holding only the old key fails, and the last signing key cannot be
/// retired.
#[test]
fn a_second_key_signs_beside_the_first_until_the_first_is_retired() {
    let keys = Keys::new();
    let (listed, version) = keys.listed();
    assert_eq!(version, 1);
    let [(old, state)] = listed.as_slice() else {
        panic!("one key after init: {listed:?}");
    };
    assert_eq!(state, "signing");
    let old = old.clone();
    let document = keys.json(&["key", "list"]);
    let expires = document["keys"][0]["expires"].as_str().expect("an expiry");
    let created = document["keys"][0]["created"].as_str().expect("created");
    // Two years by default.
    let years = |time: &str| time[..4].parse::<u32>().expect("year");
    assert_eq!(years(expires) - years(created), 2, "{document}");
    assert_eq!(document["keys"][0]["algorithm"], "ed25519");
    let old_keyring = keys.keyring_of(&old);
    let one_key = fs::read(keys.suite("production").join("InRelease")).expect("InRelease");

    keys.ok(&["key", "add"]);
    let (listed, version) = keys.listed();
    assert_eq!(version, 2);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed.iter().all(|(_, state)| state == "signing"),
        "{listed:?}"
    );
    let new = listed[1].0.clone();
    let new_keyring = keys.keyring_of(&new);
    assert_eq!(keys_in(&keys.repo.join("acme.gpg")), 2);
    let secret = keys.repo.join(format!("private/keys/{new}.asc"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&secret)
            .expect("the new key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    for suite in ["test", "production"] {
        let suite = keys.suite(suite);
        let in_release = vec![suite.join("InRelease")];
        let detached = vec![suite.join("Release.gpg"), suite.join("Release")];
        for (keyring, fingerprint) in [(&old_keyring, &old), (&new_keyring, &new)] {
            for files in [&in_release, &detached] {
                let (valid, _) = gpgv(keyring, files);
                assert_eq!(
                    valid.as_slice(),
                    std::slice::from_ref(fingerprint),
                    "{files:?}"
                );
            }
            assert!(
                sqv(keyring, &suite),
                "sqv with one of two keys: {}",
                suite.display()
            );
        }
        let (valid, success) = gpgv(&keys.repo.join("acme.gpg"), &in_release);
        assert_eq!(valid, vec![old.clone(), new.clone()]);
        assert!(success);
    }

    keys.ok(&["verify"]);
    // A suite left signed by the old key set alone is found by verify.
    let production = keys.suite("production").join("InRelease");
    let both = fs::read(&production).expect("InRelease");
    fs::write(&production, &one_key).expect("write");
    let refused = keys.fails(&["verify"]);
    assert!(
        refused.contains(&format!(
            "dists/production/InRelease: signed by {old}, but the keys that sign now are"
        )),
        "{refused}"
    );
    fs::write(&production, &both).expect("restore");
    keys.ok(&["verify"]);

    // A second writer gets both keys: the secret export, given to its `repo init --key`.
    let exported = keys.temp.as_path().join("secret.asc");
    fs::write(&exported, keys.ok(&["key", "export", "--secret"])).expect("export");
    let second = Keys::with(&[
        "--arch",
        "amd64",
        "--origin",
        "acme",
        "--key",
        exported.to_str().expect("UTF-8"),
    ]);
    assert_eq!(second.listed().0, keys.listed().0);
    assert_eq!(
        fs::read(second.repo.join("acme.gpg")).expect("keyring"),
        fs::read(keys.repo.join("acme.gpg")).expect("keyring")
    );

    // A retired key signs nothing more; a key is named by its last 16 hex digits too.
    keys.ok(&["key", "retire", &old[24..]]);
    let (listed, version) = keys.listed();
    assert_eq!(version, 3);
    assert_eq!(
        listed,
        vec![
            (old.clone(), "retired".to_string()),
            (new.clone(), "signing".to_string())
        ]
    );
    assert_eq!(keys_in(&keys.repo.join("acme.gpg")), 1);
    let suite = keys.suite("production");
    let (valid, success) = gpgv(&old_keyring, &[suite.join("InRelease")]);
    assert!(
        valid.is_empty() && !success,
        "the old key still verifies: {valid:?}"
    );
    assert!(!sqv(&old_keyring, &suite));
    assert_eq!(
        gpgv(&new_keyring, &[suite.join("InRelease")]).0,
        vec![new.clone()]
    );

    let refused = keys.fails(&["key", "retire", &new]);
    assert!(
        refused.contains("only key that signs") && refused.contains("repo key add"),
        "{refused}"
    );
    let refused = keys.fails(&["key", "retire", "ABCDEF"]);
    assert!(
        refused.contains(&new) && refused.contains("repo key list"),
        "{refused}"
    );
    let refused = keys.fails(&["key", "add", "--import", secret.to_str().expect("UTF-8")]);
    assert!(
        refused.contains("already a key of the repository"),
        "{refused}"
    );

    // The secret keys a second writer needs: every key not retired.
    let exported = keys.json(&["key", "export", "--secret"]);
    assert_eq!(exported["fingerprints"], serde_json::json!([new]));
    assert!(exported["armored"]
        .as_str()
        .expect("armored")
        .starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
}

/// gpg's `--faked-system-time` for `days` days ago (and a minute, so that a key made
/// then for `days + 30` days expires in 29 whole days).
fn soon_before(days: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    (now - days * 86_400 - 60).to_string()
}

/// A gpg home with one unprotected Ed25519 key made at `created` (gpg's
/// `--faked-system-time`, so the key's own dates lie in the past) valid for `expiry`;
/// the armored secret key and its fingerprint.
fn key_made_at(directory: &Path, created: &str, expiry: &str) -> (PathBuf, String) {
    let home = directory.join(format!("gnupg-{created}"));
    fs::create_dir_all(&home).expect("gpg home");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("mode");
    }
    let gpg = |arguments: &[&str]| {
        let output = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(arguments)
            .output()
            .expect("gpg runs");
        assert!(
            output.status.success(),
            "gpg {arguments:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    gpg(&[
        "--faked-system-time",
        &format!("{created}!"),
        "--quick-gen-key",
        "old <old@example.org>",
        "ed25519",
        "sign",
        expiry,
    ]);
    let listing = gpg(&["--list-secret-keys", "--with-colons"]);
    let fingerprint = listing
        .lines()
        .find_map(|line| line.strip_prefix("fpr:::::::::"))
        .and_then(|rest| rest.split(':').next())
        .expect("a fingerprint")
        .to_string();
    let armored = directory.join(format!("{fingerprint}.asc"));
    fs::write(
        &armored,
        gpg(&["--armor", "--export-secret-keys", &fingerprint]),
    )
    .expect("key");
    (armored, fingerprint)
}

/// A key whose own expiry is in the past never signs: `key add` refuses it; one already
/// in the set is listed as expired, publishing warns that it signs nothing and signs
/// with the others only; and when no key is left that can sign, publishing refuses and
/// names the ways out. `key extend` moves a key's expiry.
#[test]
fn expired_keys_never_sign_and_publishing_says_so() {
    let keys = Keys::new();
    let (listed, _) = keys.listed();
    let current = listed[0].0.clone();
    let current_keyring = keys.keyring_of(&current);
    let (expired_file, expired) = key_made_at(keys.temp.as_path(), "20200101T000000", "1y");

    let refused = keys.fails(&[
        "key",
        "add",
        "--import",
        expired_file.to_str().expect("UTF-8"),
    ]);
    assert!(
        refused.contains(&expired) && refused.contains("expired on 2020-12-31"),
        "{refused}"
    );

    // An expired key in the set, as one that was valid when it was added would be.
    let private = keys.repo.join("private/keys");
    fs::create_dir_all(&private).expect("private/keys");
    fs::copy(&expired_file, private.join(format!("{expired}.asc"))).expect("copy");
    let config = keys.repo.join("debstage-repo.toml");
    let mut text = fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[[signing.keys]]\nfingerprint = \"{expired}\"\nfile = \"private/keys/{expired}.asc\"\nstate = \"signing\"\n"
    ));
    fs::write(&config, &text).expect("config");
    let (listed, _) = keys.listed();
    assert_eq!(listed[1], (expired.clone(), "expired".to_string()));
    let refused = keys.fails(&["verify"]);
    assert!(
        refused.contains(&format!("the signing key {expired} expired on 2020-12-31")),
        "{refused}"
    );

    let output = keys.run(&["publish"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("the signing key {expired} expired on 2020-12-31"))
            && stderr.contains("signs nothing"),
        "{stderr}"
    );
    let suite = keys.suite("test");
    assert_eq!(
        gpgv(&current_keyring, &[suite.join("InRelease")]).0,
        vec![current.clone()]
    );
    let signatures = fs::read_to_string(suite.join("InRelease")).expect("InRelease");
    assert_eq!(signatures.matches("BEGIN PGP SIGNATURE").count(), 1);

    // Only the expired key left in the signing state: nothing can be published.
    fs::write(
        &config,
        text.replacen("state = \"signing\"", "state = \"retired\"", 1),
    )
    .expect("config");
    let refused = keys.fails(&["publish"]);
    assert!(
        refused.contains("every signing key of the repository has expired")
            && refused.contains(&expired)
            && refused.contains("repo key add")
            && refused.contains("repo key extend"),
        "{refused}"
    );
    fs::write(&config, &text).expect("config");

    // Retired, it is no problem any more; a key that expires within 60 days is warned of.
    keys.ok(&["key", "retire", &expired]);
    keys.ok(&["verify"]);
    let (near_file, near) = key_made_at(keys.temp.as_path(), &soon_before(700), "730d");
    keys.ok(&["key", "add", "--import", near_file.to_str().expect("UTF-8")]);
    let output = keys.run(&["verify"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("the signing key {near} expires on"))
            && stderr.contains("(in 29 days)"),
        "{stderr}"
    );

    // Extending moves the expiry of a key made by debstage.
    let before = keys.json(&["key", "list"])["keys"][0]["expires"].clone();
    keys.ok(&["key", "extend", &current, "--expires", "30d"]);
    let after = keys.json(&["key", "list"])["keys"][0]["expires"].clone();
    assert_ne!(before, after);
    let refused = keys.fails(&["key", "extend", &current, "--expires", "never"]);
    assert!(refused.contains("--expires never"), "{refused}");
    // A client with the key as it was still verifies (the expiry it knows is later).
    assert_eq!(
        gpgv(&current_keyring, &[suite.join("InRelease")]).0,
        vec![current]
    );
}

/// A repository served by `repo serve` (in the first temporary directory) and its keys.
fn served_keys() -> (tempfile::TempDir, crate::e2e::harness::RepoServer, Keys) {
    let temp = tempfile::tempdir().expect("temp dir");
    let server =
        crate::e2e::harness::RepoServer::start(&temp.path().join("repo"), "test,production");
    let keys = Keys::from(crate::support::repository::TestRepository::attach(
        &server.directory,
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    ));
    (temp, server, keys)
}

/// `apt-get update`: whether it was clean (exit 0, no warning, no error), and what it
/// printed.
fn apt_update(apt: &crate::support::apt::Apt) -> (bool, String) {
    let output = apt.command(&["update"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.success() && !text.contains("W:") && !text.contains("E:"),
        text,
    )
}

/// A rotation as apt sees it, through `repo serve`: while two keys sign, an apt that
/// trusts only the old key and one that trusts only the new key both update cleanly;
/// once the old key is retired, the first fails with `NO_PUBKEY <new key id>` and the
/// second still updates.
#[test]
fn apt_holding_either_key_updates_until_the_old_one_is_retired() {
    let (temp, server, keys) = served_keys();
    let old = keys.listed().0[0].0.clone();
    keys.ok(&["key", "add"]);
    let new = keys.listed().0[1].0.clone();
    let apt_of = |name: &str, fingerprint: &str| {
        let keyring = fs::read(keys.keyring_of(fingerprint)).expect("keyring");
        crate::support::apt::Apt::for_suite(
            &temp.path().join(name),
            &server.url(),
            "production",
            &keyring,
        )
    };
    let (with_old, with_new) = (apt_of("apt-old", &old), apt_of("apt-new", &new));
    let update = apt_update;
    for apt in [&with_old, &with_new] {
        let (clean, text) = update(apt);
        assert!(clean, "during dual signing:\n{text}");
    }
    keys.ok(&["key", "retire", &old]);
    let (clean, text) = update(&with_old);
    assert!(
        !clean,
        "an apt with only the retired key still updates:\n{text}"
    );
    assert!(
        text.contains(&format!("NO_PUBKEY {}", &new[24..])),
        "{text}"
    );
    let (clean, text) = update(&with_new);
    assert!(clean, "after the retirement:\n{text}");
}

/// `[publish] valid_for`: each Release says `Valid-Until` that long after its Date; apt
/// refuses a suite whose Valid-Until has passed (a Release dated two days ago that was
/// valid for one day) and accepts it once `repo publish` dates it now.
#[test]
fn apt_refuses_a_release_past_its_valid_until() {
    if !crate::support::tools_present(
        "apt_refuses_a_release_past_its_valid_until",
        &[("apt-get", "apt")],
    ) {
        return;
    }
    let (temp, server, keys) = served_keys();
    let config = keys.repo.join("debstage-repo.toml");
    let text = fs::read_to_string(&config).expect("config");
    fs::write(&config, format!("{text}\n[publish]\nvalid_for = \"1d\"\n")).expect("config");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let publish_at = |seconds: u64| {
        let output = crate::support::debstage()
            .args(["repo", "--repo"])
            .arg(&keys.repo)
            .arg("publish")
            .env("SOURCE_DATE_EPOCH", seconds.to_string())
            .output()
            .expect("debstage runs");
        assert!(output.status.success(), "{output:?}");
        fs::read_to_string(keys.suite("production").join("Release")).expect("Release")
    };
    let field = |release: &str, name: &str| {
        release
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in\n{release}"))
            .to_string()
    };
    let two_days_ago = now - 2 * 86_400;
    let release = publish_at(two_days_ago);
    let date = |seconds: u64| {
        let output = Command::new("date")
            .args(["-u", "-R", "-d"])
            .arg(format!("@{seconds}"))
            .output()
            .expect("date runs");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .replace("+0000", "UTC")
    };
    assert_eq!(field(&release, "Date"), date(two_days_ago));
    assert_eq!(field(&release, "Valid-Until"), date(two_days_ago + 86_400));
    let keyring = fs::read(keys.keyring_of(&keys.listed().0[0].0)).expect("keyring");
    let apt = crate::support::apt::Apt::for_suite(
        &temp.path().join("apt"),
        &server.url(),
        "production",
        &keyring,
    );
    let update = || apt_update(&apt);
    let (clean, text) = update();
    assert!(
        !clean && text.contains("is expired"),
        "apt accepted a Release past its Valid-Until:\n{text}"
    );
    let release = publish_at(now);
    assert_eq!(field(&release, "Valid-Until"), date(now + 86_400));
    let (clean, text) = update();
    assert!(
        clean,
        "apt refused a Release within its Valid-Until:\n{text}"
    );
}

/// The keyring package that `repo init` and every key change put into each suite:
/// `<origin>-archive-keyring`, one version per key set, carrying in
/// `/usr/share/keyrings/<origin>-archive-keyring.gpg` every key not retired (a keyring
/// gpgv verifies the suites with); lintian finds nothing wrong with it. (Two writes of
/// the same keys giving the same bytes: the unit test in `src/repo/keyring.rs`.)
#[test]
fn the_keyring_package_carries_every_key_that_is_not_retired() {
    if !crate::support::tools_present(
        "the_keyring_package_carries_every_key_that_is_not_retired",
        &[
            ("dpkg-deb", "dpkg"),
            ("lintian", "lintian"),
            ("gpgv", "gpgv"),
            ("shellcheck", "shellcheck"),
        ],
    ) {
        return;
    }
    let keys = Keys::new();
    let old = keys.listed().0[0].0.clone();
    // From `repo init` on, every suite carries version 1 with the first key.
    let (deb, _) = keyring_package(&keys, 1, 1);
    crate::support::assert_lintian_clean(&[&deb]);
    // Its scripts (the node_exporter textfile of the installed version) pass sh -n and
    // shellcheck; they run in e2e::rotation and e2e::piuparts.
    let control = keys.temp.as_path().join("control-1");
    crate::support::run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let scripts = [control.join("postinst"), control.join("postrm")];
    for script in &scripts {
        crate::support::run_ok(Command::new("sh").arg("-n").arg(script));
    }
    crate::support::run_ok(
        Command::new("shellcheck")
            .args(["--shell=sh", "--severity=style"])
            .args(&scripts),
    );
    let postinst = fs::read_to_string(&scripts[0]).expect("postinst");
    assert!(
        postinst.contains("VERSION='1'")
            && postinst.contains(
                "METRICS='/var/lib/prometheus/node-exporter/debstage_acme-archive-keyring.prom'"
            ),
        "{postinst}"
    );
    let before = keys.ok(&["sources", "production", "--url", "http://repo.example:8080"]);
    assert!(
        before.contains("apt-get install acme-archive-keyring"),
        "{before}"
    );
    keys.ok(&["key", "add"]);
    let new = keys.listed().0[1].0.clone();
    let (deb, keyring) = keyring_package(&keys, 2, 2);
    crate::support::assert_lintian_clean(&[&deb]);
    let (mut valid, ok) = gpgv(&keyring, &[keys.suite("production").join("InRelease")]);
    valid.sort();
    let mut both = vec![old.clone(), new.clone()];
    both.sort();
    assert!(ok && valid == both, "{valid:?}");
    let sources = keys.ok(&["sources", "production", "--url", "http://repo.example:8080"]);
    crate::snapshots::settings(keys.temp.as_path()).bind(|| {
        insta::assert_snapshot!("keys_sources_with_the_keyring_package", sources);
    });
    // gc keeps it: the suites point to it.
    keys.ok(&["gc", "--keep", "0"]);
    keyring_package(&keys, 2, 2);

    keys.ok(&["key", "retire", &old]);
    let (deb, keyring) = keyring_package(&keys, 3, 1);
    let (valid, ok) = gpgv(&keyring, &[keys.suite("test").join("InRelease")]);
    assert!(ok && valid == [new.clone()], "{valid:?}");
    crate::support::assert_lintian_clean(&[&deb]);
}

/// The keyring package every suite of `keys` lists (only `version`, in each suite), and
/// its keyring unpacked by dpkg-deb, holding `count` keys.
fn keyring_package(keys: &Keys, version: u64, count: usize) -> (PathBuf, PathBuf) {
    let name = "acme-archive-keyring";
    for suite in ["test", "production"] {
        assert_eq!(
            keyring_versions(keys, suite),
            [version.to_string()],
            "{suite}"
        );
    }
    let deb = keys
        .repo
        .join(format!("pool/main/a/{name}/{name}_{version}_all.deb"));
    let unpacked = keys.temp.as_path().join(format!("unpacked-{version}"));
    let output = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .output()
        .expect("dpkg-deb runs");
    assert!(output.status.success(), "{output:?}");
    let keyring = unpacked.join(format!("usr/share/keyrings/{name}.gpg"));
    assert_eq!(keys_in(&keyring), count, "keys in {}", keyring.display());
    (deb, keyring)
}

/// `repo key add --gpg-key`: a key gpg holds (here in a GNUPGHOME of the test's own)
/// signs beside the repository's own key; gpgv finds both signatures, each with a keyring
/// of that key alone, and the keyring package carries both.
#[test]
fn a_key_held_by_gpg_signs_beside_the_first() {
    if !crate::support::tools_present(
        "a_key_held_by_gpg_signs_beside_the_first",
        &[("gpg", "gpg"), ("gpgv", "gpgv"), ("dpkg-deb", "dpkg")],
    ) {
        return;
    }
    let keys = Keys::new();
    let old = keys.listed().0[0].0.clone();
    let home = keys.temp.as_path().join("gnupg");
    fs::create_dir_all(&home).expect("GNUPGHOME");
    fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("GNUPGHOME mode");
    let gpg = |arguments: &[&str]| {
        let output = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(arguments)
            .output()
            .expect("gpg runs");
        assert!(output.status.success(), "gpg {arguments:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    gpg(&[
        "--quick-generate-key",
        "Acme apt <apt@acme.example>",
        "ed25519",
        "sign",
        "1y",
    ]);
    let listed = gpg(&["--list-secret-keys", "--with-colons"]);
    let fingerprint = listed
        .lines()
        .find_map(|line| line.strip_prefix("fpr:"))
        .map(|rest| rest.trim_matches(':').to_string())
        .expect("the new key's fingerprint");
    // Every command that loads the keys asks gpg for this one: all run with its home.
    let debstage = |arguments: &[&str]| {
        let output = crate::support::debstage()
            .args(["repo", "--repo"])
            .arg(&keys.repo)
            .args(arguments)
            .env("GNUPGHOME", &home)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .expect("debstage runs");
        assert!(output.status.success(), "{arguments:?}: {output:?}");
        output.stdout
    };
    let old_keyring = keys.temp.as_path().join("old.gpg");
    fs::write(&old_keyring, debstage(&["export-key", "--binary"])).expect("keyring");
    debstage(&["key", "add", "--gpg-key", &fingerprint]);
    let listed: Value =
        serde_json::from_slice(&debstage(&["--format", "json", "key", "list"])).expect("JSON");
    let states: Vec<(&str, &str)> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| {
            (
                key["fingerprint"].as_str().expect("fingerprint"),
                key["state"].as_str().expect("state"),
            )
        })
        .collect();
    assert_eq!(
        states,
        [(old.as_str(), "signing"), (fingerprint.as_str(), "signing")]
    );
    assert_eq!(listed["keys"][1]["held_by"], "gpg");
    let gpg_keyring = keys.temp.as_path().join("gpg-key.gpg");
    fs::write(&gpg_keyring, {
        let output = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--export", &fingerprint])
            .output()
            .expect("gpg runs");
        output.stdout
    })
    .expect("keyring");
    let in_release = keys.suite("test").join("InRelease");
    for (keyring, expected) in [
        (old_keyring, old.clone()),
        (gpg_keyring, fingerprint.clone()),
    ] {
        // gpgv exits non-zero for the signature whose key it lacks; apt accepts a file
        // with one good signature, which VALIDSIG shows.
        let (valid, _) = gpgv(&keyring, std::slice::from_ref(&in_release));
        assert_eq!(valid, std::slice::from_ref(&expected), "InRelease");
        let suite = keys.suite("test");
        let (valid, _) = gpgv(
            &keyring,
            &[suite.join("Release.gpg"), suite.join("Release")],
        );
        assert_eq!(valid, std::slice::from_ref(&expected), "Release.gpg");
    }
    keyring_package(&keys, 2, 2);
}

/// The versions of the keyring package the published Packages of `suite` lists.
fn keyring_versions(keys: &Keys, suite: &str) -> Vec<String> {
    let packages =
        fs::read_to_string(keys.suite(suite).join("main/binary-amd64/Packages")).expect("Packages");
    crate::support::versions_of(&packages, "acme-archive-keyring")
}

/// Makes `keys` look as a repository of the version before the keyring was listed from
/// `repo init` on and its version moved into the state: schema 10 (no `keyring`
/// table), `keyring_version` in the configuration, and (with `listed` false) no keyring
/// package at all, as a repository whose keys never changed had.
fn make_legacy(keys: &Keys, config_version: u64, listed: bool) {
    let connection = rusqlite::Connection::open(keys.repo.join("state.db")).expect("state");
    let mut script = String::from("DROP TABLE keyring; PRAGMA user_version = 10;");
    if !listed {
        script.push_str(
            "DELETE FROM listed WHERE package_id IN \
             (SELECT id FROM packages WHERE package = 'acme-archive-keyring'); \
             DELETE FROM current WHERE app = 'acme-archive-keyring'; \
             DELETE FROM packages WHERE package = 'acme-archive-keyring';",
        );
    }
    connection.execute_batch(&script).expect("made legacy");
    drop(connection);
    if !listed {
        fs::remove_dir_all(keys.repo.join("pool/main/a/acme-archive-keyring")).expect("pool");
    }
    let config = keys.repo.join("debstage-repo.toml");
    let text = fs::read_to_string(&config).expect("config");
    assert!(!text.contains("keyring_version"), "{text}");
    if config_version > 0 {
        // As that version wrote it: `[signing]` with the version, then the keys.
        let text = text.replacen(
            "[[signing.keys]]\n",
            &format!("[signing]\nkeyring_version = {config_version}\n\n[[signing.keys]]\n"),
            1,
        );
        assert!(
            text.contains("keyring_version"),
            "no [[signing.keys]]:\n{text}"
        );
        fs::write(&config, text).expect("config");
    }
}

/// A repository made before every suite carried the keyring package gets it at its next
/// publication (`repo publish`, or any writing command), version 1, and says so; `repo
/// sources` said until then that the suite lacks it. One whose keys had changed keeps
/// the version its configuration recorded, now kept in the state: the next change raises
/// it from there, and the configuration no longer holds it.
#[test]
fn a_repository_from_before_gets_the_keyring_at_its_next_publication() {
    let keys = Keys::new();
    make_legacy(&keys, 0, false);
    let sources = keys.ok(&["sources", "production", "--url", "http://repo.example:8080"]);
    assert!(
        sources.contains("The suite does not carry acme-archive-keyring yet")
            && sources.contains("debstage repo publish"),
        "{sources}"
    );
    let output = keys.run(&["publish"]);
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success()
            && text
                .contains("listed the keyring package acme-archive-keyring 1 in test, production"),
        "{text}"
    );
    for suite in ["test", "production"] {
        assert_eq!(keyring_versions(&keys, suite), ["1"], "{suite}");
    }
    assert_eq!(keys.listed().1, 1);
    keys.ok(&["verify"]);
    // Once listed, a publication changes nothing more.
    let again = keys.run(&["publish"]);
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("listed the keyring package"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Keys changed twice before: version 3 listed, and recorded in the configuration.
    let changed = Keys::new();
    changed.ok(&["key", "add"]);
    changed.ok(&["key", "add"]);
    make_legacy(&changed, 3, true);
    assert_eq!(changed.listed().1, 3);
    changed.ok(&["publish"]);
    let fingerprint = changed.listed().0[0].0.clone();
    changed.ok(&["key", "retire", &fingerprint]);
    assert_eq!(changed.listed().1, 4);
    for suite in ["test", "production"] {
        assert_eq!(keyring_versions(&changed, suite), ["4"], "{suite}");
    }
    let config = fs::read_to_string(changed.repo.join("debstage-repo.toml")).expect("config");
    assert!(!config.contains("keyring_version"), "{config}");
    changed.ok(&["verify"]);
}

/// The keyring package is no application: promote, rollback, remove, show and diff
/// refuse it by name, `repo add` refuses a package that takes its name, and `repo gc`
/// keeps the version the suites list while it drops the ones before.
#[test]
fn the_keyring_package_is_not_an_application() {
    let keys = Keys::new();
    for arguments in [
        &["promote", "acme-archive-keyring", "1", "--to", "production"][..],
        &["rollback", "acme-archive-keyring", "production"],
        &["remove", "acme-archive-keyring", "1"],
        &["show", "acme-archive-keyring"],
        &[
            "diff",
            "test",
            "production",
            "--app",
            "acme-archive-keyring",
        ],
    ] {
        let error = keys.fails(arguments);
        assert!(
            error.contains(
                "acme-archive-keyring is the repository's keyring package, not an application"
            ) && error.contains(&format!(
                "`debstage repo {}` does not take it",
                arguments[0]
            )),
            "{arguments:?}: {error}"
        );
    }
    // A package of that name from elsewhere (here: a copy of the repository's own).
    let copy = keys.temp.as_path().join("acme-archive-keyring_1_all.deb");
    fs::copy(
        keys.repo
            .join("pool/main/a/acme-archive-keyring/acme-archive-keyring_1_all.deb"),
        &copy,
    )
    .expect("copy");
    let error = keys.fails(&["add", "test", copy.to_str().expect("UTF-8")]);
    assert!(
        error.contains(
            "acme-archive-keyring is the name of the repository's keyring package, which \
             debstage writes itself"
        ),
        "{error}"
    );
    keys.ok(&["key", "add"]);
    keys.ok(&["gc", "--keep", "0"]);
    let listed = keys.json(&["list"]);
    let versions: Vec<&str> = listed["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|package| package["package"] == "acme-archive-keyring")
        .map(|package| package["version"].as_str().expect("version"))
        .collect();
    assert_eq!(versions, ["2"], "{listed}");
    assert_eq!(listed["keyring"]["version"], "2");
    assert_eq!(
        listed["keyring"]["fingerprints"].as_array().map(Vec::len),
        Some(2)
    );
    keys.ok(&["verify"]);
}
