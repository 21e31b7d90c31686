//! Publish targets on S3-compatible stores: `[[publish.targets]]`, `repo publish --target`,
//! automatic targets, `repo verify --target`, the lock object, crash safety. The store is
//! a real server on loopback (tests/support/s3.rs): moto where the test needs conditional
//! writes, Garage where it shows what a store without them gets.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest;

use crate::support::s3::S3;
use crate::support::{self, stderr, stdout};

const ORIGIN: &str = "s3test";

/// A repository whose configuration names one target on `s3`.
pub(crate) struct Repo {
    _temp: tempfile::TempDir,
    pub(crate) root: PathBuf,
    environment: Vec<(&'static str, String)>,
}

impl Repo {
    /// `repo init` (grace 0 unless `grace` says otherwise) and a target `name` at
    /// `prefix` with `extra` lines.
    pub(crate) fn new(s3: &S3, prefix: &str, extra: &str) -> Repo {
        Repo::with_keys(s3, prefix, extra, None)
    }

    /// A second writer of the repository `self`: `repo init --key` with the secret keys
    /// `self` exports (`repo key export --secret`), as the README says.
    pub(crate) fn second_writer(&self, s3: &S3, prefix: &str, extra: &str) -> Repo {
        let secret = self.run(&["key", "export", "--secret"]).stdout;
        let file = self._temp.path().join("keys-for-the-second-writer.asc");
        fs::write(&file, secret).expect("secret keys written");
        Repo::with_keys(s3, prefix, extra, Some(&file))
    }

    /// `repo init` with the secret keys of `keys`, or a generated key.
    fn with_keys(s3: &S3, prefix: &str, extra: &str, keys: Option<&Path>) -> Repo {
        let temp = tempfile::tempdir().expect("temp dir");
        let root = temp.path().join("repo");
        let repo = Repo {
            _temp: temp,
            root,
            environment: s3.environment(),
        };
        let mut arguments = vec![
            "init",
            "--arch",
            "amd64",
            "--origin",
            ORIGIN,
            "--stages",
            "test,staging,production",
        ];
        if let Some(keys) = keys {
            arguments.extend(["--key", keys.to_str().expect("UTF-8")]);
        }
        repo.ok(&arguments);
        let config = repo.root.join("debstage-repo.toml");
        let text = fs::read_to_string(&config).expect("config");
        let text = text.replace("grace = \"1h\"", "grace = \"0\"")
            + &s3.target_toml("store", prefix, extra);
        fs::write(&config, text).expect("config");
        repo
    }

    pub(crate) fn command(&self, arguments: &[&str]) -> Command {
        let mut command = support::repo_command(&self.root, arguments);
        command.envs(self.environment.iter().map(|(k, v)| (k, v.as_str())));
        command
    }

    pub(crate) fn run(&self, arguments: &[&str]) -> Output {
        support::run_ok(&mut self.command(arguments))
    }

    pub(crate) fn ok(&self, arguments: &[&str]) -> String {
        stdout(&self.run(arguments))
    }

    pub(crate) fn add(&self, index: usize) -> Output {
        let manifest = support::hello_builds()[index]
            .to_str()
            .expect("UTF-8")
            .to_string();
        self.run(&["add", "--manifest", &manifest])
    }

    /// `repo publish --target store --format json`.
    pub(crate) fn publish(&self) -> serde_json::Value {
        let output = self.run(&["--format", "json", "publish", "--target", "store"]);
        let document: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("publish --target prints JSON");
        support::schema::assert_valid("repo-publish-target", &document);
        document
    }

    /// `repo verify --target store`, failing the test with its report when unclean.
    pub(crate) fn verify_target(&self) -> serde_json::Value {
        let output = self
            .command(&["--format", "json", "verify", "--target", "store"])
            .output()
            .expect("runs");
        let document: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("verify --target prints JSON");
        support::schema::assert_valid("repo-verify-target", &document);
        assert!(
            output.status.success() && document["ok"] == true,
            "verify --target is not clean:\n{document:#}\n{}",
            stderr(&output)
        );
        document
    }
}

/// The objects a command wrote per phase, from the summary line it printed.
pub(crate) fn uploads(output: &Output) -> BTreeMap<String, usize> {
    let text = stderr(output);
    let line = text
        .lines()
        .find(|line| line.starts_with("publish target store: uploaded"))
        .unwrap_or_else(|| panic!("no publish target summary in:\n{text}"));
    let mut counts = BTreeMap::new();
    if let Some((_, phases)) = line.split_once("; ") {
        let phases = phases.split(')').next().unwrap_or_default();
        for phase in phases.split(", ") {
            if let Some((name, count)) = phase.rsplit_once(' ') {
                counts.insert(name.to_string(), count.parse().expect("count"));
            }
        }
    }
    counts
}

/// Every suite on the store is whole for apt: its InRelease (if any) names indexes that
/// are all there by hash with those bytes, and every pool file those name is there.
pub(crate) fn assert_store_consistent(s3: &S3, prefix: &str) {
    for suite in ["test", "staging", "production"] {
        let (status, _, in_release) = s3.get(&format!("{prefix}/dists/{suite}/InRelease"));
        if status == 404 {
            continue;
        }
        assert_eq!(status, 200, "InRelease of {suite}");
        assert_generation_served(s3, prefix, suite, &String::from_utf8_lossy(&in_release));
    }
}

/// Every index the Release text `text` of `suite` names is on the store by hash with
/// those bytes, and every pool file those indexes name is there.
pub(crate) fn assert_generation_served(s3: &S3, prefix: &str, suite: &str, text: &str) {
    let mut in_sha512 = false;
    for line in text.lines() {
        if line.starts_with("SHA512:") {
            in_sha512 = true;
            continue;
        }
        if !line.starts_with(' ') {
            in_sha512 = false;
            continue;
        }
        if !in_sha512 {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [digest, size, path] = fields.as_slice() else {
            continue;
        };
        let directory = Path::new(path)
            .parent()
            .map(|p| p.to_string_lossy().into_owned());
        let by_hash = match directory.as_deref() {
            Some("") | None => format!("by-hash/SHA512/{digest}"),
            Some(directory) => format!("{directory}/by-hash/SHA512/{digest}"),
        };
        let (status, _, body) = s3.get(&format!("{prefix}/dists/{suite}/{by_hash}"));
        assert_eq!(
            status, 200,
            "{suite}: {path} by hash is missing on the store"
        );
        assert_eq!(body.len().to_string(), *size, "{suite}: {path} size");
        assert_eq!(
            hex::encode(sha2::Sha512::digest(&body)),
            *digest,
            "{suite}: {path} by hash has other bytes"
        );
        if path.ends_with("/Packages") {
            for filename in String::from_utf8_lossy(&body)
                .lines()
                .filter_map(|line| line.strip_prefix("Filename: "))
            {
                let (status, _, _) = s3.get(&format!("{prefix}/{filename}"));
                assert_eq!(status, 200, "{suite}: {filename} missing on the store");
            }
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

#[test]
fn target_copy_is_incremental_with_headers_and_verified() {
    let Some(s3) = S3::moto("publish target copy") else {
        return;
    };
    let repo = Repo::new(&s3, "apt/main", "");
    repo.add(0);
    // The first copy writes everything in the reader-safe phases.
    let first = repo.publish();
    assert_eq!(first["target"], "store");
    assert_eq!(
        first["locked"], true,
        "moto honours conditional writes: {first:#}"
    );
    for phase in ["pool", "by-hash", "indexes", "Release", "InRelease"] {
        assert!(
            first["uploaded"][phase].as_u64().unwrap_or(0) > 0,
            "phase {phase} wrote nothing: {first:#}"
        );
    }
    // The store serves the same InRelease as the local tree, with the headers a CDN needs.
    let (status, headers, body) = s3.get("apt/main/dists/test/InRelease");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        fs::read(repo.root.join("dists/test/InRelease")).expect("local")
    );
    assert_eq!(header(&headers, "cache-control"), "public, max-age=60");
    assert!(header(&headers, "content-type").starts_with("text/plain"));
    let pool = support::files_in(&repo.root.join("pool/main/h/hello"));
    let deb = pool
        .iter()
        .find(|name| name.ends_with(".deb"))
        .expect("a .deb");
    let (status, headers, _) = s3.get(&format!("apt/main/pool/main/h/hello/{deb}"));
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        header(&headers, "content-type"),
        "application/vnd.debian.binary-package"
    );
    assert_store_consistent(&s3, "apt/main");
    repo.verify_target();
    // Nothing changed: nothing written.
    let again = repo.publish();
    assert_eq!(again["uploaded_total"], 0, "{again:#}");
    // A promote (target made automatic) writes only the changed indexes and Release
    // files: no pool object.
    let config = repo.root.join("debstage-repo.toml");
    let text = fs::read_to_string(&config).expect("config");
    fs::write(&config, text + "automatic = true\n").expect("config");
    let promoted = repo.run(&["promote", "hello", "1.0"]);
    let counts = uploads(&promoted);
    assert!(
        !counts.contains_key("pool"),
        "a promote wrote pool objects: {counts:?}"
    );
    assert_eq!(counts.get("InRelease"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("Release"), Some(&2), "{counts:?}");
    // One by-hash copy per changed index (under SHA512), not one per hash the Release
    // lists.
    assert!(
        counts.get("indexes").is_some_and(|indexes| *indexes > 0),
        "{counts:?}"
    );
    assert_eq!(counts.get("by-hash"), counts.get("indexes"), "{counts:?}");
    assert_store_consistent(&s3, "apt/main");
    repo.verify_target();
    // verify --target sees an object the store lost.
    s3.boto("c.delete_object(Bucket='apt', Key='apt/main/dists/staging/Release')\n");
    let output = repo
        .command(&["verify", "--target", "store"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(
        stdout(&output).contains("dists/staging/Release: recorded but missing on the store"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn target_pool_object_is_never_overwritten() {
    let Some(s3) = S3::moto("pool objects never overwritten") else {
        return;
    };
    let repo = Repo::new(&s3, "x", "");
    repo.add(0);
    let pool = repo.root.join("pool/main/h/hello");
    let deb = support::files_in(&pool)
        .into_iter()
        .find(|name| name.starts_with("hello-1.0_"))
        .expect("payload");
    // Another writer put other bytes under the same key.
    s3.boto(&format!(
        "c.put_object(Bucket='apt', Key='x/pool/main/h/hello/{deb}', Body=b'other bytes')\n"
    ));
    refuses_other_bytes(&repo, &s3, "x", &deb);
}

/// `repo publish --target store` fails on hello's pool file `deb`, which holds `other
/// bytes` on the store under `prefix`, and leaves it so.
fn refuses_other_bytes(repo: &Repo, s3: &S3, prefix: &str, deb: &str) {
    let output = support::run_fail(&mut repo.command(&["publish", "--target", "store"]));
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "pool object pool/main/h/hello/{deb} exists with other bytes"
        )),
        "{text}"
    );
    let (_, _, body) = s3.get(&format!("{prefix}/pool/main/h/hello/{deb}"));
    assert_eq!(body, b"other bytes", "the pool object was overwritten");
}

#[test]
fn target_lock_waits_for_a_live_lease_and_takes_over_a_stale_one() {
    let Some(s3) = S3::moto("lock object") else {
        return;
    };
    let repo = Repo::new(&s3, "locked", "");
    repo.add(0);
    // Another machine holds the lock for 3 more seconds, then its lease runs out.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    s3.boto(&format!(
        "c.put_object(Bucket='apt', Key='.debstage/locked/lock', Body=b'{{\"host\": \"builder-7\", \
         \"pid\": 4242, \"since\": {}, \"expires\": {}}}')\n",
        now - 100,
        now + 3
    ));
    let started = std::time::Instant::now();
    let output = repo.run(&["publish", "--target", "store"]);
    let text = stderr(&output);
    assert!(
        text.contains("waiting for the lock on publish target store")
            && text.contains("held by builder-7 (pid 4242) since"),
        "{text}"
    );
    assert!(text.contains("took over the lock"), "{text}");
    assert!(
        started.elapsed().as_secs() >= 2,
        "did not wait for the lease"
    );
    // Released after the publication.
    let (status, _, _) = s3.get(".debstage/locked/lock");
    assert_eq!(status, 404, "the lock object was left behind");
    repo.verify_target();
}

#[test]
fn target_without_conditional_writes_is_refused_unless_opted_out() {
    let Some(s3) = S3::garage("Garage without conditional writes") else {
        return;
    };
    let repo = Repo::new(&s3, "g", "");
    repo.add(0);
    let output = support::run_fail(&mut repo.command(&["publish", "--target", "store"]));
    let text = stderr(&output);
    assert!(
        text.contains("the store ignores conditional writes")
            && text.contains("conditional_writes = false"),
        "{text}"
    );
    let config = repo.root.join("debstage-repo.toml");
    let text = fs::read_to_string(&config).expect("config");
    fs::write(&config, text + "conditional_writes = false\n").expect("config");
    let published = repo.publish();
    assert_eq!(published["locked"], false);
    assert_store_consistent(&s3, "g");
    repo.verify_target();
    // A second publication replaces Release files, so it reads the store's clock: with
    // a small object in the private area, outside the tree the website serves.
    repo.run(&["promote", "hello", "1.0", "staging"]);
    repo.publish();
    let (status, _, _) = s3.get(".debstage/g/clock");
    assert_eq!(status, 200, "the clock object is not in the private area");
    let (status, _, _) = s3.get("g/.debstage/clock");
    assert_eq!(status, 404, "a clock object in the published tree");
    repo.verify_target();
}

#[test]
fn without_conditional_writes_a_pool_object_on_the_store_is_compared_not_overwritten() {
    let Some(s3) = S3::garage("pool objects on a store without conditional writes")
        .and_then(|s3| s3.with_boto("pool objects put on Garage by boto3"))
    else {
        return;
    };
    let repo = Repo::new(&s3, "seeded", "conditional_writes = false\n");
    repo.add(0);
    let pool = repo.root.join("pool/main/h/hello");
    let deb = |version: &str| {
        support::files_in(&pool)
            .into_iter()
            .find(|name| name.starts_with(&format!("hello-{version}_")))
            .expect("payload")
    };
    let seed = |deb: &str, body: &str| {
        s3.boto(&format!(
            "c.put_object(Bucket='{}', Key='seeded/pool/main/h/hello/{deb}', Body={body})\n",
            s3.bucket
        ));
    };
    // A cold copy (the pool listed once, not a HEAD per package) finds another
    // writer's bytes under one key.
    let first = deb("1.0");
    seed(&first, "b'other bytes'");
    refuses_other_bytes(&repo, &s3, "seeded", &first);
    // The same bytes there (a copy killed before its record was written) are taken
    // as they are: recorded, not written again (the other pool objects were written
    // and recorded by the refused copy).
    let local = pool.join(&first);
    seed(&first, &format!("open('{}', 'rb').read()", local.display()));
    let published = repo.publish();
    assert!(published["uploaded"].get("pool").is_none(), "{published:#}");
    repo.verify_target();
    // One new package (a HEAD before its upload) meets the same check.
    repo.add(1);
    let second = deb("1.1");
    seed(&second, "b'other bytes'");
    refuses_other_bytes(&repo, &s3, "seeded", &second);
}

/// How many kill points the crash test uses: `DEBSTAGE_S3_CRASHES` (the full run uses 24).
fn crash_points() -> usize {
    std::env::var("DEBSTAGE_S3_CRASHES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(8)
}

#[test]
fn target_killed_at_random_upload_points_stays_consistent() {
    let Some(s3) = S3::moto("kill -9 during uploads") else {
        return;
    };
    let repo = Repo::new(&s3, "crash", "automatic = true\n");
    repo.add(0);
    repo.add(1);
    repo.run(&["promote", "hello", "1.0"]);
    let mut seed = 0x5eed_u64;
    let points = crash_points();
    let mut killed = 0;
    let mut survivors = Vec::new();
    for round in 0..points {
        // The first round adds 1.2 (its pool objects, the test suite's new by-hash
        // indexes, plain indexes, Release files: 20 objects or more); the others move
        // staging between 1.0 and 1.1, whose indexes are on the store by hash already
        // (3 plain indexes, Release, Release.gpg, InRelease). Each dies after a
        // pseudo-random upload of its own.
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let random = (seed >> 33) as usize;
        let manifest = support::hello_builds()[2]
            .to_str()
            .expect("UTF-8")
            .to_string();
        let (arguments, point): (Vec<&str>, usize) = if round == 0 {
            (vec!["add", "--manifest", &manifest], 1 + random % 20)
        } else if round % 2 == 1 {
            (
                vec!["promote", "hello", "1.1", "--to", "staging"],
                1 + random % 6,
            )
        } else {
            (vec!["rollback", "hello", "staging"], 1 + random % 6)
        };
        let output = repo
            .command(&arguments)
            .env("DEBSTAGE_FAIL_AT", format!("target-upload-{point}"))
            .output()
            .expect("runs");
        if output.status.signal() == Some(9) {
            killed += 1;
        } else {
            survivors.push(format!(
                "{arguments:?} at target-upload-{point}: {}\n{}",
                output.status,
                stderr(&output)
            ));
        }
        // Whatever apt fetches now is whole.
        assert_store_consistent(&s3, "crash");
        // The next writer completes the copy.
        repo.run(&["publish"]);
        assert_store_consistent(&s3, "crash");
        repo.verify_target();
    }
    assert!(
        killed == points,
        "only {killed} of {points} runs died at their point:\n{}",
        survivors.join("\n")
    );
}

/// The deleted and retained counts of the summary line a command printed.
fn deleted_and_retained(output: &Output) -> (usize, usize) {
    let text = stderr(output);
    let line = text
        .lines()
        .find(|line| line.starts_with("publish target store: uploaded"))
        .unwrap_or_else(|| panic!("no publish target summary in:\n{text}"));
    let number_before = |word: &str| -> usize {
        let end = line
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {line}"));
        line[..end]
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("a number before {word} in {line}"))
    };
    (number_before(" deleted"), number_before(" retained"))
}

#[test]
fn target_deletes_old_objects_only_after_three_publications() {
    let Some(s3) = S3::moto("retention on the store") else {
        return;
    };
    let repo = Repo::new(&s3, "kept", "automatic = true\n");
    repo.add(0);
    repo.add(1);
    repo.run(&["promote", "hello", "1.0", "--to", "staging"]);
    let mut served = Vec::new();
    let mut deleted = 0;
    let mut retained = 0;
    for round in 0..8 {
        let output = if round % 2 == 0 {
            repo.run(&["promote", "hello", "1.1", "--to", "staging"])
        } else {
            repo.run(&["rollback", "hello", "staging"])
        };
        let (round_deleted, round_retained) = deleted_and_retained(&output);
        deleted += round_deleted;
        retained = retained.max(round_retained);
        let (status, _, in_release) = s3.get("kept/dists/staging/InRelease");
        assert_eq!(status, 200);
        served.push(String::from_utf8_lossy(&in_release).into_owned());
        // The last three generations a client may hold are all still whole.
        for text in served.iter().rev().take(3) {
            assert_generation_served(&s3, "kept", "staging", text);
        }
    }
    assert!(
        retained > 0,
        "nothing was held back for clients of older generations"
    );
    assert!(deleted > 0, "old by-hash objects were never deleted");
    repo.verify_target();
}

/// Operations per writer in the two-writer test: `DEBSTAGE_S3_WRITER_OPS` (full run 50).
fn writer_operations() -> usize {
    std::env::var("DEBSTAGE_S3_WRITER_OPS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(5)
}

/// Two repository directories (two machines) publishing to one target at once: the lock
/// object makes them take turns, no command fails, and after every turn the store is
/// whole for apt. (Each directory publishes its own state: what one adds, the other's
/// next publication does not list; see the README.) Both sign with the same keys, as
/// writers of one target must (`repo key export --secret`): then their keyring packages
/// are the same bytes too, where writers of other keys would collide on its pool object.
#[test]
fn two_writers_on_one_target_take_turns_and_leave_it_whole() {
    let Some(s3) = S3::moto("two writers on one target") else {
        return;
    };
    let first = Repo::new(&s3, "shared", "automatic = true\n");
    let second = first.second_writer(&s3, "shared", "automatic = true\n");
    let writers = [first, second];
    for writer in &writers {
        writer.add(0);
        writer.add(1);
        writer.run(&["promote", "hello", "1.0", "--to", "staging"]);
    }
    let operations = writer_operations();
    let waited = std::thread::scope(|scope| {
        let handles: Vec<_> = writers
            .iter()
            .map(|writer| {
                scope.spawn(move || {
                    let mut waited = 0;
                    for operation in 0..operations {
                        let arguments: &[&str] = if operation % 2 == 0 {
                            &["promote", "hello", "1.1", "--to", "staging"]
                        } else {
                            &["rollback", "hello", "staging"]
                        };
                        let output = writer.run(arguments);
                        if stderr(&output).contains("waiting for the lock on publish target") {
                            waited += 1;
                        }
                    }
                    waited
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("writer"))
            .sum::<usize>()
    });
    assert!(waited > 0, "the writers never met at the lock");
    assert_store_consistent(&s3, "shared");
    let (status, _, _) = s3.get(".debstage/shared/lock");
    assert_eq!(status, 404, "a lock object was left behind");
    crate::support::s3::shout(&format!(
        "two writers, {operations} operations each: {waited} waited for the lock, store whole"
    ));
}

/// The packages a `Packages` index on the store lists (by hash, from its InRelease).
fn packages_on_store(s3: &S3, prefix: &str, suite: &str) -> Vec<String> {
    let (status, _, body) = s3.get(&format!(
        "{prefix}/dists/{suite}/main/binary-amd64/Packages"
    ));
    assert_eq!(status, 200, "Packages of {suite}");
    let mut names: Vec<String> = String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|line| line.strip_prefix("Package: "))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Two repository directories sharing one state on the store (`share_state`): what one
/// adds, the other's publications keep; promotions by both at once all reach the history.
#[test]
fn two_writers_sharing_the_state_lose_nothing() {
    let Some(s3) = S3::moto("two writers sharing the state") else {
        return;
    };
    let first = Repo::new(&s3, "team", "automatic = true\nshare_state = true\n");
    let second = first.second_writer(&s3, "team", "automatic = true\nshare_state = true\n");
    let writers = [first, second];
    // Each adds its own version; the other's next command takes the state and the pool
    // files from the store, so the suite lists both.
    writers[0].add(0);
    writers[1].add(1);
    let listed = packages_on_store(&s3, "team", "test");
    assert!(
        listed.contains(&"hello-1.0".to_string()) && listed.contains(&"hello-1.1".to_string()),
        "the test suite on the store lost a version: {listed:?}"
    );
    writers[0].run(&["promote", "hello", "1.0", "--to", "staging"]);
    let operations = writer_operations();
    let changed: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(index, writer)| {
                scope.spawn(move || {
                    let mut changed = 0;
                    for operation in 0..operations {
                        let version = if (operation + index) % 2 == 0 {
                            "1.1"
                        } else {
                            "1.0"
                        };
                        let output = writer.run(&["promote", "hello", version, "--to", "staging"]);
                        if stderr(&output).contains("promoted hello") {
                            changed += 1;
                        }
                    }
                    changed
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("writer"))
            .sum()
    });
    // Whoever writes next holds every change in its history.
    writers[1].run(&["publish"]);
    let history = writers[1].ok(&["--format", "json", "history", "hello"]);
    let history: serde_json::Value = serde_json::from_str(&history).expect("JSON");
    let promotions = history["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|entry| entry["action"] == "promote" && entry["stage"] == "staging")
        .count();
    assert_eq!(
        promotions,
        changed + 1,
        "promotions to staging in the shared history vs. the commands that changed it"
    );
    let listed = packages_on_store(&s3, "team", "test");
    assert!(listed.contains(&"hello-1.0".to_string()) && listed.contains(&"hello-1.1".to_string()));
    assert_store_consistent(&s3, "team");
    writers[1].verify_target();
    crate::support::s3::shout(&format!(
        "two writers sharing the state, {operations} operations each: {changed} promotions, \
         all {promotions} in the history"
    ));
}

/// The keys on the store that start with `prefix` (moto only).
pub(crate) fn keys_under(s3: &S3, prefix: &str) -> Vec<String> {
    let listed = s3.boto(&format!(
        "for page in c.get_paginator('list_objects_v2').paginate(Bucket='apt', Prefix='{prefix}'):\n\
         \x20   for item in page.get('Contents', []):\n\
         \x20       print(item['Key'])\n"
    ));
    listed.lines().map(str::to_string).collect()
}

/// The shared state lives outside the published tree (`.debstage/<prefix>/`); a state
/// an older version left inside it (`<prefix>/.debstage/state.db`) is moved there by the
/// first session that finds it, and nothing of debstage's own stays in the published tree.
#[test]
fn a_shared_state_in_the_published_tree_moves_to_the_private_area() {
    let Some(s3) = S3::moto("shared state moved out of the published tree") else {
        return;
    };
    let shared = "automatic = true\nshare_state = true\n";
    let first = Repo::new(&s3, "moved", shared);
    first.add(0);
    assert_eq!(
        keys_under(&s3, ".debstage/"),
        [".debstage/moved/state.db"],
        "the private area after a shared session"
    );
    assert!(keys_under(&s3, "moved/.debstage").is_empty());
    // What an older version left: the state and the clock object inside the tree.
    s3.boto(
        "c.copy_object(Bucket='apt', Key='moved/.debstage/state.db', \
         CopySource={'Bucket': 'apt', 'Key': '.debstage/moved/state.db'})\n\
         c.delete_object(Bucket='apt', Key='.debstage/moved/state.db')\n\
         c.put_object(Bucket='apt', Key='moved/.debstage/clock', Body=b'clock')\n",
    );
    let second = first.second_writer(&s3, "moved", shared);
    let output = second.add(1);
    let text = stderr(&output);
    assert!(
        text.contains(
            "moved the shared state of publish target store out of the published tree: from \
             moved/.debstage/state.db to .debstage/moved/state.db"
        ) && text.contains("took the repository state from publish target store"),
        "{text}"
    );
    assert!(
        keys_under(&s3, "moved/.debstage").is_empty(),
        "left in the published tree: {:?}",
        keys_under(&s3, "moved/.debstage")
    );
    let private = keys_under(&s3, ".debstage/");
    assert!(
        private.contains(&".debstage/moved/state.db".to_string())
            && private
                .iter()
                .all(|key| [".debstage/moved/state.db", ".debstage/moved/clock"]
                    .contains(&key.as_str())),
        "the private area after the move: {private:?}"
    );
    // The moved state carried the first writer's package, and the first writer takes
    // the second's from it.
    let listed = packages_on_store(&s3, "moved", "test");
    assert!(
        listed.contains(&"hello-1.0".to_string()) && listed.contains(&"hello-1.1".to_string()),
        "the test suite on the store lost a version: {listed:?}"
    );
    let again = stderr(&first.run(&["publish"]));
    assert!(!again.contains("moved the shared state"), "{again}");
    let shown = first.ok(&["--format", "json", "list", "test"]);
    assert!(shown.contains("\"1.1\""), "{shown}");
    assert_store_consistent(&s3, "moved");
    first.verify_target();
}

/// A repository whose target `store` has `endpoint`, and a command on it with only the
/// AWS variables of `environment` (no profile file).
fn repo_with_endpoint(
    endpoint: &str,
    environment: &[(&str, &str)],
) -> (tempfile::TempDir, impl Fn(&[&str]) -> Command) {
    let temp = tempfile::tempdir().expect("temp dir");
    let root = temp.path().join("repo");
    let environment: Vec<(String, String)> = environment
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let repo = move |arguments: &[&str]| {
        let mut command = support::debstage();
        command.arg("repo").arg("--repo").arg(&root).args(arguments);
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("AWS_")) {
            command.env_remove(name);
        }
        command
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .envs(environment.iter().map(|(name, value)| (name, value)));
        command
    };
    support::run_ok(&mut repo(&[
        "init", "--arch", "amd64", "--origin", ORIGIN, "--stages", "test",
    ]));
    let config = temp.path().join("repo/debstage-repo.toml");
    let text = fs::read_to_string(&config).expect("config")
        + &format!(
            "\n[[publish.targets]]\nname = \"store\"\nurl = \"s3://apt/repo\"\n\
             endpoint = \"{endpoint}\"\nregion = \"us-east-1\"\npath_style = true\n"
        );
    fs::write(&config, text).expect("config");
    (temp, repo)
}

#[test]
fn a_secret_in_the_endpoint_is_never_printed() {
    // No store listens on the port: the client's error names the request URL, which
    // holds the endpoint's userinfo, and the message shows the target.
    let port = support::s3::free_port();
    let (_temp, repo) = repo_with_endpoint(
        &format!("http://AKIAUSER:TOPSECRET@127.0.0.1:{port}"),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIATEST"),
            ("AWS_SECRET_ACCESS_KEY", "ENVIRONMENTSECRET"),
        ],
    );
    for format in [&[][..], &["--format", "json"][..]] {
        for command in [
            &["publish", "--target", "store"][..],
            &["verify", "--target", "store"],
        ] {
            let arguments: Vec<&str> = format.iter().chain(command).copied().collect();
            let output = support::run_fail(&mut repo(&arguments));
            let text = stderr(&output);
            assert!(
                text.contains(&format!("http://***@127.0.0.1:{port}")),
                "{arguments:?}: the target is not shown:\n{text}"
            );
            for secret in ["TOPSECRET", "AKIAUSER", "ENVIRONMENTSECRET"] {
                assert!(
                    !text.contains(secret) && !stdout(&output).contains(secret),
                    "{arguments:?} printed {secret}:\n{text}"
                );
            }
            if !format.is_empty() {
                let error: serde_json::Value =
                    serde_json::from_str(&text).expect("stderr is one JSON object");
                assert!(error.is_object(), "{text}");
            }
        }
    }
}

#[test]
fn without_credentials_the_error_says_none_were_found_and_what_to_set() {
    // The instance metadata endpoint is a closed loopback port, as off EC2.
    let store = support::s3::free_port();
    let metadata = format!("http://127.0.0.1:{}", support::s3::free_port());
    let (_temp, repo) = repo_with_endpoint(
        &format!("http://127.0.0.1:{store}"),
        &[("AWS_METADATA_ENDPOINT", &metadata)],
    );
    let output = support::run_fail(&mut repo(&[
        "--format", "json", "publish", "--target", "store",
    ]));
    let error: serde_json::Value =
        serde_json::from_slice(&output.stderr).expect("stderr is one JSON object");
    let text = error.to_string();
    for expected in [
        "credentials used: none (no AWS_ACCESS_KEY_ID in the environment, no profile [default] \
         in /nonexistent), so the client asked the instance metadata for a role's and that failed",
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} is missing:\n{error:#}"
        );
    }
}

#[test]
fn refused_credentials_say_which_were_used_and_what_to_check() {
    let Some(s3) = S3::garage("a store refusing wrong keys") else {
        return;
    };
    let repo = Repo::new(&s3, "keys", "");
    let publish = ["--format", "json", "publish", "--target", "store"];
    let refused = |command: &mut Command| {
        let output = support::run_fail(command);
        let error: serde_json::Value =
            serde_json::from_slice(&output.stderr).expect("stderr is one JSON object");
        let text = error.to_string();
        assert!(
            !text.contains("WRONGSECRET"),
            "the secret is shown:\n{error:#}"
        );
        assert!(
            text.contains("check that this key exists on this store"),
            "no word on what to check:\n{error:#}"
        );
        text
    };
    let text = refused(
        repo.command(&publish)
            .env("AWS_ACCESS_KEY_ID", "GK00000000000000000000dead")
            .env("AWS_SECRET_ACCESS_KEY", "WRONGSECRET"),
    );
    assert!(
        text.contains(
            "the store refused the credentials used: AWS_ACCESS_KEY_ID \
             GK00000000000000000000dead and AWS_SECRET_ACCESS_KEY from the environment"
        ),
        "{text}"
    );
    let file = repo.root.join("credentials");
    fs::write(
        &file,
        "[ci]\naws_access_key_id = GK11111111111111111111dead\n\
         aws_secret_access_key = WRONGSECRET\n",
    )
    .expect("credentials file");
    let text = refused(
        repo.command(&publish)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_PROFILE", "ci")
            .env("AWS_SHARED_CREDENTIALS_FILE", &file),
    );
    assert!(
        text.contains(&format!(
            "the store refused the credentials used: profile [ci] of {} \
             (aws_access_key_id GK11111111111111111111dead)",
            file.display()
        )),
        "{text}"
    );
}

/// Writers sharing a target's state must sign with the same keys: a second writer made
/// by its own `repo init` (another key) is refused before it publishes anything, naming
/// both key sets and the way out; one made from the first's exported keys publishes, and
/// a key the first adds later is recorded, so the second is refused until it has it.
#[test]
fn writers_sharing_the_state_must_sign_with_the_same_keys() {
    let Some(s3) = S3::moto("writers sharing the state with different keys") else {
        return;
    };
    let shared = "automatic = true\nshare_state = true\n";
    let first = Repo::new(&s3, "keys", shared);
    first.add(0);
    let (_, _, published) = s3.get("keys/dists/test/InRelease");
    let stranger = Repo::new(&s3, "keys", shared);
    let output = stranger
        .command(&[
            "add",
            "--manifest",
            support::hello_builds()[1].to_str().expect("UTF-8"),
        ])
        .output()
        .expect("runs");
    let text = stderr(&output);
    let first_keys = fingerprints(&first);
    let stranger_keys = fingerprints(&stranger);
    assert!(
        !output.status.success()
            && text.contains(&format!(
                "the shared state records the signing key(s) {}",
                first_keys.join(", ")
            ))
            && text.contains(&format!("signs with {}", stranger_keys.join(", ")))
            && text.contains("repo key export --secret")
            && text.contains("repo init --key"),
        "{text}"
    );
    crate::snapshots::settings(stranger._temp.path()).bind(|| {
        insta::assert_snapshot!("targets_shared_state_other_keys", text);
    });
    assert_eq!(
        s3.get("keys/dists/test/InRelease").2,
        published,
        "the refused writer changed the published InRelease"
    );
    let second = first.second_writer(&s3, "keys", shared);
    second.add(1);
    let listed = packages_on_store(&s3, "keys", "test");
    assert!(listed.contains(&"hello-1.1".to_string()), "{listed:?}");
    second.verify_target();
    // A key added by the first writer becomes the shared set: the second, which lacks it,
    // is refused until it has the keys again.
    first.run(&["key", "add"]);
    let output = second.command(&["publish"]).output().expect("runs");
    assert!(
        !output.status.success() && stderr(&output).contains("repo key export --secret"),
        "{}",
        stderr(&output)
    );
    let third = first.second_writer(&s3, "keys", shared);
    third.run(&["publish"]);
    third.verify_target();
}

/// The fingerprints of the keys `repo` signs with, sorted.
fn fingerprints(repo: &Repo) -> Vec<String> {
    let listed: serde_json::Value =
        serde_json::from_str(&repo.ok(&["--format", "json", "key", "list"])).expect("JSON");
    let mut found: Vec<String> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|key| key["state"] == "signing")
        .map(|key| {
            key["fingerprint"]
                .as_str()
                .expect("fingerprint")
                .to_string()
        })
        .collect();
    found.sort();
    found
}

/// The versions of `package` a `Packages` index on the store lists.
fn versions_on_store(s3: &S3, prefix: &str, suite: &str, package: &str) -> Vec<String> {
    let (status, _, body) = s3.get(&format!(
        "{prefix}/dists/{suite}/main/binary-amd64/Packages"
    ));
    assert_eq!(status, 200, "Packages of {suite}");
    support::versions_of(&String::from_utf8_lossy(&body), package)
}

/// The keyring version `repo key list` of `repo` gives.
fn keyring_version(repo: &Repo) -> u64 {
    let listed: serde_json::Value =
        serde_json::from_str(&repo.ok(&["--format", "json", "key", "list"])).expect("JSON");
    listed["keyring_version"].as_u64().expect("keyring_version")
}

/// The keyring package's version lives in the shared state: a second writer built from
/// `repo key export --secret` (whose own `repo init` wrote a version 1 with other bytes)
/// raises the shared version at its first key change, never publishes its own older
/// one, and takes the shared version 1's bytes in place of its own; the first writer
/// follows.
#[test]
fn writers_sharing_the_state_share_the_keyring_version() {
    let Some(s3) = S3::moto("writers sharing the keyring version") else {
        return;
    };
    let shared = "automatic = true\nshare_state = true\n";
    let first = Repo::new(&s3, "ring", shared);
    first.add(0);
    first.run(&["key", "add"]);
    assert_eq!(keyring_version(&first), 2);
    let keyring = format!("{ORIGIN}-archive-keyring").to_lowercase();
    assert_eq!(versions_on_store(&s3, "ring", "test", &keyring), ["2"]);
    // The export holds both keys: the second writer's own version 1 carries two keys,
    // the shared version 1 one.
    let second = first.second_writer(&s3, "ring", shared);
    let one = fingerprints(&first)
        .into_iter()
        .next()
        .expect("a fingerprint");
    second.run(&["key", "extend", &one, "--expires", "800d"]);
    assert_eq!(keyring_version(&second), 3);
    for suite in ["test", "staging", "production"] {
        assert_eq!(
            versions_on_store(&s3, "ring", suite, &keyring),
            ["3"],
            "{suite}"
        );
    }
    second.ok(&["verify"]);
    second.verify_target();
    first.run(&["publish"]);
    assert_eq!(keyring_version(&first), 3);
    first.ok(&["verify"]);
}
