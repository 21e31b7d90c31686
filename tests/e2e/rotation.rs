//! A signing key rotated under a fleet that follows the production suite with apt: a
//! server that only ever holds the first key file, one that installs the keyring package
//! when it is set up (every suite carries it from `repo init` on) and upgrades it while
//! two keys sign, and one set up after the rotation as `repo sources` says. The
//! servers read the suite through `repo serve`, and again through a Garage bucket.

use std::fs;
use std::process::Output;

use super::apt::{Release, TO_PRODUCTION};
use super::harness::Server;
use super::object_store;
use crate::publish_targets::Repo;
use crate::support::s3::S3;
use crate::support::{stderr, stdout, without_progress};

/// Where the fleet reads the repository from: `repo serve`, or a bucket the repository
/// copies every change to (an automatic publish target).
trait Published {
    /// `debstage repo ARGUMENTS` on the repository, failing the test if it fails.
    fn repo(&self, arguments: &[&str]) -> Output;
    /// Adds hello `version` (1.0 or 1.1) and promotes it to production.
    fn release(&self, version: &str);
    /// The URL the servers read the repository at.
    fn url(&self) -> String;
    /// Subscribes `server` to production as `repo sources` says (the key file that
    /// `repo export-key --binary` prints, then the `.sources` file); what it printed.
    fn subscribe(&self, server: &Server) -> String;
}

impl Published for Release {
    fn repo(&self, arguments: &[&str]) -> Output {
        self.repository.run(arguments)
    }

    fn release(&self, version: &str) {
        Release::release(self, version, TO_PRODUCTION);
    }

    fn url(&self) -> String {
        self.repository.url()
    }

    fn subscribe(&self, server: &Server) -> String {
        server.subscribe(&self.repository, "production", "hello")
    }
}

/// A repository whose automatic target is a Garage bucket, read by apt through the
/// bucket's website endpoint.
struct Bucket {
    s3: S3,
    repo: Repo,
}

/// Where in the bucket the repository is copied.
const PREFIX: &str = "debian";

impl Published for Bucket {
    fn repo(&self, arguments: &[&str]) -> Output {
        self.repo.run(arguments)
    }

    fn release(&self, version: &str) {
        let index = match version {
            "1.0" => 0,
            "1.1" => 1,
            other => panic!("no build of hello {other}"),
        };
        self.repo.add(index);
        for stage in TO_PRODUCTION {
            self.repo.run(&["promote", "hello", version, "--to", stage]);
        }
    }

    fn url(&self) -> String {
        object_store::bucket_url(&self.s3, PREFIX)
    }

    fn subscribe(&self, server: &Server) -> String {
        object_store::subscribe(server, &self.repo, &self.s3, PREFIX, "production")
    }
}

/// The fingerprints `repo key list` shows, with each key's state, in its order (the
/// oldest first), and the keyring package's version.
fn listed_keys(published: &dyn Published) -> (Vec<(String, String)>, String) {
    let output = published.repo(&["--format", "json", "key", "list"]);
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

/// `apt-get update` exits 0 with no warning, no error and no source ignored; what it
/// printed.
fn update_cleanly(server: &Server, who: &str) -> String {
    let (success, text) = update(server);
    let complaint = ["W:", "E:", "Err:", "Ign:"]
        .iter()
        .find(|marker| text.contains(*marker));
    assert!(
        success && complaint.is_none(),
        "{who}: apt-get update was not clean ({complaint:?}):\n{text}"
    );
    text
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
/// from the printed procedure, update and upgrade. The keyring package's scripts keep its
/// version in a node_exporter textfile through each upgrade (`check_with_promtool`: and
/// promtool accepts it) and remove it with the purge.
fn rotate(published: &dyn Published, scenario: &str, check_with_promtool: bool) {
    let Some(old_only) = Server::new(&format!("{scenario}-old-key")) else {
        return;
    };
    let mut upgraded = old_only.beside(&format!("{scenario}-upgraded"));
    // node_exporter's textfile directory, as Debian's prometheus-node-exporter makes it:
    // the keyring package's scripts write its version there.
    fs::create_dir_all(upgraded.path(TEXTFILES)).expect("the textfile directory");
    published.release("1.0");
    let (keys, _) = listed_keys(published);
    let [(old, _)] = keys.as_slice() else {
        panic!("a new repository has one key: {keys:?}");
    };
    let old = old.clone();
    let old_export = published.repo(&["export-key", "--binary"]).stdout;

    // Both servers start as `repo sources` says, before anything rotates.
    let mut keyring = String::new();
    for server in [&old_only, &upgraded] {
        keyring = signed_by(&published.subscribe(server));
        let text = update_cleanly(server, "before the rotation");
        let fetched = format!("{} production InRelease", published.url());
        assert!(
            text.contains(&fetched),
            "apt did not read {fetched}:\n{text}"
        );
        install(server, &["hello-production"]);
        assert_eq!(
            hello(server),
            (Some("1.0-1".to_string()), Some("1.0".to_string()))
        );
        assert_eq!(signers(server, &keyring), [old.as_str()]);
    }
    // The keyring package's name is the file's (`<origin>-archive-keyring`); that the
    // package owns the file is checked once it is installed.
    let keyring_package = keyring
        .strip_prefix("/usr/share/keyrings/")
        .and_then(|name| name.strip_suffix(".gpg"))
        .unwrap_or_else(|| panic!("Signed-By: {keyring}: not in /usr/share/keyrings"))
        .to_string();
    // The second server installs it from the start: version 1, the first key.
    install(&upgraded, &[keyring_package.as_str()]);
    assert_eq!(
        upgraded.installed_version(&keyring_package),
        Some("1".to_string())
    );
    let metrics = format!("{TEXTFILES}/debstage_{keyring_package}.prom");
    assert_keyring_metric(&upgraded, &metrics, &keyring_package, "1");
    assert_eq!(
        fs::read(upgraded.path(&keyring)).expect("the keyring file"),
        old_export,
        "version 1 holds the first key"
    );

    // Dual signing: the new key signs beside the old one, and every suite carries the
    // keyring package with both.
    published.repo(&["key", "add"]);
    let (keys, dual_version) = listed_keys(published);
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
    let printed = stdout(&published.repo(&[
        "sources",
        "production",
        "--url",
        &published.url(),
        "--app",
        "hello",
    ]));
    assert!(
        printed.contains(&format!("apt-get install {keyring_package}")),
        "repo sources names the keyring package once the suite carries it:\n{printed}"
    );
    let mut expected = vec![old.clone(), new.clone()];
    expected.sort();
    for server in [&old_only, &upgraded] {
        update_cleanly(server, "during dual signing");
        // The server checks the old key's signature; the new one's it cannot check yet.
        assert_eq!(signers(server, &keyring), [old.as_str()]);
    }
    // The upgrade apt offers brings the second key.
    upgraded.apt_get_ok(&["upgrade"]);
    assert_eq!(
        upgraded.installed_version(&keyring_package),
        Some(dual_version.clone())
    );
    assert_keyring_metric(&upgraded, &metrics, &keyring_package, &dual_version);
    let owner = upgraded.run_ok("dpkg-query", &["-S", &keyring]);
    assert_eq!(
        stdout(&owner).trim(),
        format!("{keyring_package}: {keyring}"),
        "the keyring package owns the file Signed-By names"
    );
    let dual_export = published.repo(&["export-key", "--binary"]).stdout;
    assert_eq!(
        fs::read(upgraded.path(&keyring)).expect("the keyring file"),
        dual_export,
        "the package's keyring holds the keys that are not retired"
    );
    update_cleanly(&upgraded, "with the keyring package");
    assert_eq!(signers(&upgraded, &keyring), expected);

    // The old key retired: only the new one signs, and 1.1 reaches production.
    published.repo(&["key", "retire", &old]);
    let (keys, retired_version) = listed_keys(published);
    assert_eq!(
        keys,
        [
            (old.clone(), "retired".to_string()),
            (new.clone(), "signing".to_string())
        ]
    );
    published.release("1.1");

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
        upgraded.installed_version(&keyring_package),
        Some(retired_version.clone()),
        "apt-get upgrade brings the keyring package without the retired key"
    );
    assert_keyring_metric(&upgraded, &metrics, &keyring_package, &retired_version);
    assert_eq!(
        fs::read(upgraded.path(&keyring)).expect("the keyring file"),
        published.repo(&["export-key", "--binary"]).stdout
    );
    install(&upgraded, &["hello-production"]);
    assert_eq!(
        hello(&upgraded),
        (Some("1.1-1".to_string()), Some("1.1".to_string()))
    );

    // A server set up after the rotation: the current key file, then the package.
    let after = old_only.beside(&format!("{scenario}-after"));
    published.subscribe(&after);
    update_cleanly(&after, "set up after the rotation");
    install(&after, &[keyring_package.as_str()]);
    assert_eq!(
        after.installed_version(&keyring_package),
        Some(retired_version)
    );
    let verify = after.run("dpkg", &["--verify", keyring_package.as_str()]);
    assert!(
        verify.status.success() && stdout(&verify).trim().is_empty(),
        "dpkg --verify {keyring_package}: {}",
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

    // promtool (from Debian's prometheus package) accepts the keyring's file, once: the
    // file is the same whichever way the servers read the repository.
    if check_with_promtool {
        upgraded.use_mirror();
        upgraded.apt_get_ok(&["update"]);
        super::metrics::unpack_promtool(&upgraded);
        super::metrics::promtool_accepts_file(&upgraded, &metrics);
    }
    // Purged, the keys are gone and so is the metric.
    upgraded.apt_get_ok(&["purge", keyring_package.as_str()]);
    assert!(!upgraded.exists(&metrics), "{metrics} outlived the purge");
}

/// node_exporter's textfile directory (Debian's `prometheus-node-exporter`).
const TEXTFILES: &str = "/var/lib/prometheus/node-exporter";

/// Checks that the keyring package's textfile on `server` says `version` is installed.
fn assert_keyring_metric(server: &Server, metrics: &str, package: &str, version: &str) {
    let text = fs::read_to_string(server.path(metrics))
        .unwrap_or_else(|error| panic!("{metrics}: {error}"));
    let sample = format!("debstage_keyring_version{{package=\"{package}\"}} {version}");
    assert!(
        text.lines().any(|line| line == sample),
        "{metrics} does not say {sample}:\n{text}"
    );
}

/// The rotation with the servers reading `repo serve`.
#[test]
fn a_rotation_reaches_the_servers_that_upgrade_the_keyring_package() {
    rotate(&Release::new(), "rotation", true);
}

/// The same rotation with the servers reading a Garage bucket the repository copies
/// every change to (the key changes included).
#[test]
fn a_rotation_through_a_garage_bucket_reaches_the_same_servers() {
    let Some(s3) = S3::garage("a key rotation read from a Garage bucket") else {
        return;
    };
    // Garage ignores If-None-Match: one writer, by the target's opt-out.
    let repo = Repo::new(
        &s3,
        PREFIX,
        "automatic = true\nconditional_writes = false\n",
    );
    rotate(&Bucket { s3, repo }, "rotation-s3", false);
}
