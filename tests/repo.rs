//! `debstage repo`: state, pool and stage commands, run through the real binary.
//!
//! Packages are what `debstage build` writes (of a tiny `dir` app, gzip for speed), or
//! assembled member by member when a test needs a broken or plain one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The shared repository fixture, with packages in `debs/` beside the repository.
struct TestRepo {
    repository: crate::support::repository::TestRepository,
    root: PathBuf,
    repo: PathBuf,
    debs: PathBuf,
}

impl std::ops::Deref for TestRepo {
    type Target = crate::support::repository::TestRepository;

    fn deref(&self) -> &Self::Target {
        &self.repository
    }
}

impl TestRepo {
    fn new() -> TestRepo {
        let repository = crate::support::repository::TestRepository::init(&["--arch", "amd64"]);
        let root = repository.dir().to_path_buf();
        let repo = repository.repo.clone();
        let debs = root.join("debs");
        fs::create_dir_all(&debs).expect("debs dir");
        TestRepo {
            repository,
            root,
            repo,
            debs,
        }
    }

    fn run(&self, arguments: &[&str]) -> Output {
        self.output(arguments)
    }

    /// The version each stage of `app` points to, from `repo show --format json`.
    fn currents(&self, app: &str) -> Vec<Option<String>> {
        let shown = self.json(&["show", app]);
        shown["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .map(|stage| stage["current"].as_str().map(str::to_string))
            .collect()
    }

    /// Every file of the repository with its SHA256 (the lock and SQLite's WAL side files
    /// left out), and the state as `list` and `history` print it.
    fn snapshot(&self) -> (BTreeMap<String, String>, Value, Value) {
        let mut files = BTreeMap::new();
        for entry in walkdir::WalkDir::new(&self.repo) {
            let entry = entry.expect("walk");
            let relative = entry
                .path()
                .strip_prefix(&self.repo)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            if ["lock", "state.db-wal", "state.db-shm"].contains(&relative.as_str()) {
                continue;
            }
            let digest = if entry.file_type().is_file() {
                hex::encode(Sha256::digest(fs::read(entry.path()).expect("read")))
            } else {
                "dir".to_string()
            };
            files.insert(relative, digest);
        }
        (files, self.json(&["list"]), self.json(&["history"]))
    }

    /// Runs `debstage build` on a tiny `dir` app `app` version `upstream` (revision 1)
    /// whose one file `VERSION` holds `content`, into `debs/`; returns the path of the
    /// build manifest it writes.
    fn build(&self, app: &str, upstream: &str, content: &str) -> PathBuf {
        self.build_into(&self.debs, app, upstream, content)
    }

    /// [`TestRepo::build`], then `repo add --manifest` of what it wrote.
    fn add_built(&self, app: &str, upstream: &str, content: &str) -> String {
        let manifest = self.build(app, upstream, content);
        self.ok(&["add", "--manifest", path_str(&manifest)])
    }

    /// [`TestRepo::build`] into `out`.
    fn build_into(&self, out: &Path, app: &str, upstream: &str, content: &str) -> PathBuf {
        self.build_with(out, app, upstream, content, None)
    }

    /// [`TestRepo::build`] into `out`, for a distribution (`--target`) or the host.
    fn build_with(
        &self,
        out: &Path,
        app: &str,
        upstream: &str,
        content: &str,
        target: Option<&str>,
    ) -> PathBuf {
        let source = tempfile::Builder::new()
            .prefix("app-")
            .tempdir_in(&self.root)
            .expect("app dir");
        fs::create_dir_all(source.path().join("app")).expect("app dir");
        fs::write(source.path().join("app/VERSION"), content).expect("VERSION");
        let manifest = source.path().join("debstage.toml");
        fs::write(
            &manifest,
            format!(
                "[package]\nname = \"{app}\"\nversion = \"{upstream}\"\nrevision = \"1\"\n\
                 maintainer = \"Test <test@example.org>\"\n\
                 description = \"{app} for the repository tests\"\n\
                 [environment]\nkind = \"dir\"\nsource = \"app\"\n\
                 [stages]\nnames = [\"test\", \"staging\", \"production\"]\n"
            ),
        )
        .expect("debstage.toml");
        let built = crate::support::debstage()
            .args(["--quiet", "build", "--compress", "gzip", "--manifest"])
            .arg(&manifest)
            .arg("--out")
            .arg(out)
            .args(target.map(|target| ["--target", target]).iter().flatten())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .expect("debstage build runs");
        assert!(
            built.status.success(),
            "debstage build of {app} {upstream} failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let suffix = match target {
            Some("bookworm") => "+deb12",
            Some("trixie") => "+deb13",
            Some(other) => panic!("no suffix known here for {other}"),
            None => "",
        };
        let path = out.join(format!("{app}_{upstream}-1{suffix}.build.json"));
        assert!(path.is_file(), "{} was not written", path.display());
        path
    }
}

/// A tar archive of the directory `./` and the given regular files.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_path("./").expect("path");
    header.set_mode(0o755);
    header.set_size(0);
    header.set_mtime(0);
    header.set_cksum();
    builder.append(&header, std::io::empty()).expect("tar");
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_path(name).expect("path");
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        builder.append(&header, *bytes).expect("tar");
    }
    builder.into_inner().expect("tar")
}

/// `bytes` gzip-compressed.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// The compressions a control member is written with here.
#[derive(Debug, Clone, Copy)]
enum Compressed {
    Not,
    Xz,
}

/// A `.deb` assembled member by member, without debstage: `control` as given (dpkg-deb
/// would refuse to build most of these), control.tar compressed as `compression` says, an
/// empty data.tar.gz; the ar archive is written by hand.
fn raw_deb(path: &Path, control: &str, compression: Compressed) {
    let control_tar = tar_of(&[("./control", control.as_bytes())]);
    let (name, member) = match compression {
        Compressed::Not => ("control.tar", control_tar),
        Compressed::Xz => {
            let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
            encoder.write_all(&control_tar).expect("xz");
            ("control.tar.xz", encoder.finish().expect("xz"))
        }
    };
    let data = gzip(&tar_of(&[]));
    let mut ar = b"!<arch>\n".to_vec();
    for (name, bytes) in [
        ("debian-binary", &b"2.0\n"[..]),
        (name, &member[..]),
        ("data.tar.gz", &data[..]),
    ] {
        let header = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            100644,
            bytes.len()
        );
        assert_eq!(header.len(), 60);
        ar.extend_from_slice(header.as_bytes());
        ar.extend_from_slice(bytes);
        if bytes.len() % 2 == 1 {
            ar.push(b'\n');
        }
    }
    fs::write(path, ar).expect("write");
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn stages_follow_add_promote_and_rollback() {
    let repo = TestRepo::new();
    let first = repo.build("hello", "1.0", "one");
    let second = repo.build("hello", "1.1", "two");
    let none = None::<String>;
    let some = |version: &str| Some(version.to_string());

    repo.ok(&["add", "--manifest", path_str(&first)]);
    assert_eq!(
        repo.currents("hello"),
        vec![some("1.0-1"), none.clone(), none.clone()]
    );
    repo.ok(&["promote", "hello", "1.0"]);
    repo.ok(&["promote", "hello", "1.0-1"]);
    assert_eq!(repo.currents("hello"), vec![some("1.0-1"); 3]);

    repo.ok(&["add", "test", "--manifest", path_str(&second)]);
    repo.ok(&["promote", "hello", "1.1", "--to", "staging"]);
    repo.ok(&["promote", "hello", "1.1"]);
    assert_eq!(repo.currents("hello"), vec![some("1.1-1"); 3]);

    repo.ok(&["rollback", "hello", "production"]);
    assert_eq!(
        repo.currents("hello"),
        vec![some("1.1-1"), some("1.1-1"), some("1.0-1")]
    );

    // Each suite lists the stage package once, at the version the stage points to, and
    // keeps every payload it received.
    let production = repo.json(&["list", "production"]);
    let mut listed: Vec<(String, String)> = production["packages"]
        .as_array()
        .expect("array")
        .iter()
        .map(|package| {
            (
                package["package"].as_str().unwrap_or_default().to_string(),
                package["version"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    listed.sort();
    // And the keyring package, which every suite lists from `repo init` on.
    let expected: Vec<(String, String)> = [
        ("debstage-archive-keyring", "1"),
        ("hello-1.0", "1.0-1"),
        ("hello-1.1", "1.1-1"),
        ("hello-production", "1.0-1"),
    ]
    .iter()
    .map(|(package, version)| (package.to_string(), version.to_string()))
    .collect();
    assert_eq!(listed, expected);

    let history = repo.json(&["history", "hello"]);
    let story: Vec<(String, String, String, String, String)> = history["entries"]
        .as_array()
        .expect("array")
        .iter()
        .map(|entry| {
            let text = |key: &str| entry[key].as_str().unwrap_or("-").to_string();
            (
                text("who"),
                text("action"),
                text("stage"),
                text("from"),
                text("to"),
            )
        })
        .collect();
    let expected = [
        ("add", "test", "-", "1.0-1"),
        ("promote", "staging", "-", "1.0-1"),
        ("promote", "production", "-", "1.0-1"),
        ("add", "test", "1.0-1", "1.1-1"),
        ("promote", "staging", "1.0-1", "1.1-1"),
        ("promote", "production", "1.0-1", "1.1-1"),
        ("rollback", "production", "1.1-1", "1.0-1"),
    ];
    let expected: Vec<(String, String, String, String, String)> = expected
        .iter()
        .map(|(action, stage, from, to)| {
            (
                "tester".to_string(),
                action.to_string(),
                stage.to_string(),
                from.to_string(),
                to.to_string(),
            )
        })
        .collect();
    assert_eq!(story, expected);
    assert!(history["entries"][0]["when"]
        .as_str()
        .is_some_and(|when| when.ends_with('Z')));

    // Rolling back again goes one more step back; there is nothing before 1.0-1.
    repo.ok(&["rollback", "hello", "staging"]);
    let error = repo.fails(&["rollback", "hello", "staging"]);
    assert!(
        error.contains("hello in staging") && error.contains("no earlier"),
        "{error}"
    );
    repo.ok(&["rollback", "hello", "staging", "--to", "1.1"]);
    assert_eq!(
        repo.currents("hello"),
        vec![some("1.1-1"), some("1.1-1"), some("1.0-1")]
    );
    repo.ok(&["verify"]);
}

#[test]
fn refused_promotions_and_rollbacks_change_nothing() {
    let repo = TestRepo::new();
    repo.add_built("shop", "2.0", "x");
    repo.add_built("shop", "2.1", "y");
    // 2.0 leaves test: no stage before staging or production holds it any more.
    repo.ok(&["remove", "shop", "2.0", "test"]);
    let before = repo.snapshot();

    let error = repo.fails(&["promote", "shop", "2.0", "--to", "staging"]);
    assert!(
        error.contains("cannot promote shop 2.0-1 to staging: it is in no stage")
            && error.contains("must be in test"),
        "{error}"
    );
    let error = repo.fails(&["promote", "shop", "2.0"]);
    assert!(error.contains("shop 2.0-1 is in no stage"), "{error}");
    let error = repo.fails(&["rollback", "shop", "test", "--to", "1.0"]);
    assert!(
        error.contains("shop in test to 1.0: the stage never had"),
        "{error}"
    );
    let error = repo.fails(&["rollback", "shop", "staging"]);
    assert!(
        error.contains("the stage has no version of shop"),
        "{error}"
    );
    let error = repo.fails(&["promote", "shop", "3.0"]);
    assert!(error.contains("shop 3.0: no such version"), "{error}");
    let error = repo.fails(&["promote", "shop", "2.1", "--to", "qa"]);
    assert!(error.contains("\"qa\" is not a stage"), "{error}");

    assert_eq!(repo.snapshot(), before);
    repo.ok(&["verify"]);
}

#[test]
fn broken_packages_are_refused_and_change_nothing() {
    let repo = TestRepo::new();
    let manifest = repo.build("hello", "1.0", "one");
    repo.ok(&["add", "--manifest", path_str(&manifest)]);
    let before = repo.snapshot();
    let good = repo.debs.join("hello-1.0_1.0-1_all.deb");
    let bytes = fs::read(&good).expect("read");

    let truncated = repo.root.join("truncated.deb");
    fs::write(&truncated, &bytes[..bytes.len() - 40]).expect("write");
    let corrupt = repo.root.join("corrupt.deb");
    let mut damaged = bytes.clone();
    // Inside the compressed control member (after the ar magic and two headers).
    for byte in &mut damaged[140..170] {
        *byte ^= 0x5a;
    }
    fs::write(&corrupt, &damaged).expect("write");
    // Inside the data member, which comes last: only unpacking it finds this.
    let corrupt_data = repo.root.join("corrupt-data.deb");
    let mut damaged = bytes.clone();
    let middle_of_data = bytes.len() - 120;
    for byte in &mut damaged[middle_of_data..middle_of_data + 16] {
        *byte ^= 0x5a;
    }
    fs::write(&corrupt_data, &damaged).expect("write");
    let text = repo.root.join("notes.deb");
    fs::write(&text, "just some text\n").expect("write");
    let no_version = repo.root.join("no-version.deb");
    raw_deb(
        &no_version,
        "Package: nover\nArchitecture: all\nDescription: x\n",
        Compressed::Xz,
    );
    let no_package = repo.root.join("no-package.deb");
    raw_deb(
        &no_package,
        "Version: 1.0\nArchitecture: all\nDescription: x\n",
        Compressed::Not,
    );
    // A rebuild of hello 1.0-1 with other content: same name, version and architecture.
    let other_bytes = repo.root.join("other");
    repo.build_into(&other_bytes, "hello", "1.0", "evil");
    let impostor = other_bytes.join("hello-1.0_1.0-1_all.deb");
    assert_ne!(fs::read(&impostor).expect("read"), bytes);

    let cases: [(&Path, &str); 7] = [
        (&truncated, "is truncated"),
        (&corrupt, "is corrupt"),
        (&corrupt_data, "is corrupt: data.tar"),
        (&text, "is not a Debian package"),
        (&no_version, "has no Version field"),
        (&no_package, "has no Package field"),
        (&impostor, "already in the repository with other bytes"),
    ];
    // A good new package in the same command must not get in either.
    repo.build("other", "1.0", "fresh");
    for (file, problem) in cases {
        let fresh_deb = repo.debs.join("other-1.0_1.0-1_all.deb");
        // A conflict has its own exit code (4); every other refusal is the input's (1).
        let code = if file == impostor.as_path() { 4 } else { 1 };
        let error = repo.fails_with(code, &["add", path_str(&fresh_deb), path_str(file)]);
        assert!(
            error.contains(path_str(file)) && error.contains(problem),
            "{}: expected {problem:?} in:\n{error}",
            file.display()
        );
        assert_eq!(
            repo.snapshot(),
            before,
            "{} changed the repository",
            file.display()
        );
    }
    repo.ok(&["verify"]);
}

#[test]
fn adding_the_same_bytes_again_changes_nothing() {
    let repo = TestRepo::new();
    let manifest = repo.build("hello", "1.0", "one");
    repo.ok(&["add", "--manifest", path_str(&manifest)]);
    let before = repo.snapshot();
    let again = repo.json(&["add", "--manifest", path_str(&manifest)]);
    let statuses: Vec<&str> = again["packages"]
        .as_array()
        .expect("array")
        .iter()
        .map(|package| package["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, vec!["present"; 4]);
    let payload = repo.debs.join("hello-1.0_1.0-1_all.deb");
    repo.ok(&["add", path_str(&payload), path_str(&payload)]);
    assert_eq!(repo.snapshot(), before);
}

#[test]
fn a_manifest_that_does_not_match_its_files_is_refused() {
    let repo = TestRepo::new();
    let manifest = repo.build("hello", "1.0", "one");
    let before = repo.snapshot();
    let text = fs::read_to_string(&manifest).expect("read");
    let mut document: Value = serde_json::from_str(&text).expect("json");
    document["packages"][2]["sha256"] = Value::from("00".repeat(32));
    fs::write(&manifest, document.to_string()).expect("write");
    let error = repo.fails(&["add", "--manifest", path_str(&manifest)]);
    assert!(
        error.contains("hello-staging_1.0-1_all.deb: does not match the build manifest"),
        "{error}"
    );
    assert_eq!(repo.snapshot(), before);
}

#[test]
fn a_second_writer_waits_for_the_lock_or_times_out() {
    let repo = TestRepo::new();
    let manifest = repo.build("hello", "1.0", "one");
    let holder = crate::support::hold_repository_lock(&repo.repo);

    let started = Instant::now();
    // A lock held past --lock-timeout has its own exit code (3).
    let error = repo.fails_with(
        3,
        &[
            "--lock-timeout",
            "1s",
            "add",
            "--manifest",
            path_str(&manifest),
        ],
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        error.contains("waiting for the lock on")
            && error.contains("held by pid 4242 (the test)")
            && error.contains("still held"),
        "{error}"
    );
    // With --format json stderr is the one error object, the waiting line left out.
    let output = repo
        .command(&[
            "--format",
            "json",
            "--lock-timeout",
            "1s",
            "add",
            "--manifest",
            path_str(&manifest),
        ])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(3));
    let object: Value = serde_json::from_slice(&output.stderr).unwrap_or_else(|error| {
        panic!(
            "stderr is not one JSON object ({error}):\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(object["error"]["kind"], "lock_held", "{object}");
    crate::support::schema::assert_valid("error", &object);
    // Readers are not blocked.
    repo.ok(&["list"]);

    let child = repo
        .command(&["add", "--manifest", path_str(&manifest)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(700));
    holder.unlock().expect("unlock");
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("waiting for the lock").count(),
        1,
        "{stderr}"
    );
    assert_eq!(repo.currents("hello")[0].as_deref(), Some("1.0-1"));
}

#[test]
fn remove_and_gc_keep_what_stages_point_to() {
    let repo = TestRepo::new();
    for (upstream, content) in [("1.0", "a"), ("1.1", "b"), ("1.2", "c")] {
        repo.ok(&[
            "add",
            "--manifest",
            path_str(&repo.build("app", upstream, content)),
        ]);
    }
    repo.ok(&["promote", "app", "1.0"]);
    let error = repo.fails(&["remove", "app", "1.2"]);
    assert!(error.contains("test point(s) to it"), "{error}");
    let error = repo.fails(&["remove", "app", "1.0", "staging"]);
    assert!(error.contains("staging point(s) to it"), "{error}");

    repo.ok(&["remove", "app", "1.1", "test"]);
    let test: Vec<String> = repo.json(&["show", "app"])["stages"][0]["listed"]
        .as_array()
        .expect("array")
        .iter()
        .map(|version| version.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(test, vec!["1.0-1", "1.2-1"]);

    // keep 0: only what stages point to remains (1.2 in test, 1.0 in staging).
    repo.ok(&["gc", "--keep", "0"]);
    let versions = repo.json(&["show", "app"])["versions"].clone();
    assert_eq!(versions, serde_json::json!(["1.0-1", "1.2-1"]));
    // The removed version's file stays while an index generation still served (apt
    // clients hold a cached InRelease) names it: within the grace period, or among the
    // last 3 generations of its suite.
    let removed = repo.repo.join("pool/main/a/app/app-1.1_1.1-1_all.deb");
    assert!(removed.exists(), "deleted while a served index names it");
    let config = repo.repo.join("debstage-repo.toml");
    let text = fs::read_to_string(&config).expect("config");
    assert!(text.contains("grace = \"1h\""), "{text}");
    fs::write(&config, text.replace("grace = \"1h\"", "grace = \"0s\"")).expect("config");
    for _ in 0..3 {
        repo.ok(&["publish"]);
    }
    repo.ok(&["gc", "--keep", "0"]);
    assert!(
        !removed.exists(),
        "kept after 3 newer generations and no grace"
    );
    assert!(repo
        .repo
        .join("pool/main/a/app/app-production_1.0-1_all.deb")
        .exists());
    repo.ok(&["verify"]);
    let error = repo.fails(&["rollback", "app", "test", "--to", "1.1"]);
    assert!(
        error.contains("never had") || error.contains("removed"),
        "{error}"
    );
}

#[test]
fn verify_finds_a_changed_pool_file() {
    let repo = TestRepo::new();
    repo.add_built("hello", "1.0", "one");
    repo.ok(&["verify"]);
    // The files found whole are stamped; the next verify reads only what changed since.
    let stamps = fs::read_to_string(repo.repo.join("cache/verified")).expect("stamps");
    // The payload, the three stage packages and the keyring package.
    assert_eq!(stamps.lines().count(), 5, "{stamps}");
    repo.ok(&["verify"]);
    let file = repo.repo.join("pool/main/h/hello/hello-1.0_1.0-1_all.deb");
    let modified = fs::metadata(&file)
        .and_then(|metadata| metadata.modified())
        .expect("mtime");
    let mut bytes = fs::read(&file).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&file, bytes).expect("write");
    // Same size, modification time set back: the change time still gives it away.
    fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|opened| opened.set_modified(modified))
        .expect("set the mtime back");
    for arguments in [&["verify"][..], &["verify", "--full"]] {
        let error = repo.fails(arguments);
        assert!(
            error.contains("pool/main/h/hello/hello-1.0_1.0-1_all.deb: sha256"),
            "{arguments:?}: {error}"
        );
    }
}

#[test]
fn what_debstage_build_writes_goes_through_the_stages() {
    let repo = TestRepo::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/debstage.toml");
    let out = repo.root.join("out");
    let built = crate::support::debstage()
        .args(["--quiet", "build", "--manifest", path_str(&example)])
        .args(["--out", path_str(&out), "--version", "3.0"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("debstage build runs");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let manifest = out.join("hello_3.0-1.build.json");
    repo.ok(&["add", "--manifest", path_str(&manifest)]);
    repo.ok(&["promote", "hello", "3.0"]);
    let some = Some("3.0-1".to_string());
    assert_eq!(repo.currents("hello"), vec![some.clone(), some, None]);
    let production = repo.json(&["list", "staging"]);
    let names: Vec<&str> = production["packages"]
        .as_array()
        .expect("array")
        .iter()
        .map(|package| package["package"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        vec!["debstage-archive-keyring", "hello-3.0", "hello-staging"]
    );
    repo.ok(&["verify"]);
}

#[test]
fn the_next_writer_finishes_what_a_crashed_add_left() {
    let repo = TestRepo::new();
    repo.add_built("hello", "1.0", "one");
    // A crash after the commit and before the rename: the row exists, the file waits.
    let placed = repo.repo.join("pool/main/h/hello/hello-1.0_1.0-1_all.deb");
    let waiting = repo.repo.join("pool/.incoming/hello-1.0_1.0-1_all.deb");
    fs::rename(&placed, &waiting).expect("move back");
    // A crash before the commit: a copy no row names.
    let stray = repo.repo.join("pool/.incoming/stray_1.0_all.deb");
    fs::write(&stray, "partial").expect("stray");
    let error = repo.fails(&["verify"]);
    assert!(
        error.contains("hello-1.0_1.0-1_all.deb: cannot be read"),
        "{error}"
    );

    let output = repo.run(&["publish"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("interrupted command"));
    assert!(placed.is_file() && !waiting.exists() && !stray.exists());
    repo.ok(&["verify"]);
}

#[test]
fn files_from_debstage_build_are_recognised_by_their_source_field() {
    let repo = TestRepo::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello/debstage.toml");
    let out = repo.root.join("out");
    let built = crate::support::debstage()
        .args(["--quiet", "build", "--manifest", path_str(&example)])
        .args(["--out", path_str(&out), "--version", "4.0~rc1"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("debstage build runs");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let mut arguments = vec!["add".to_string()];
    for stage in ["test", "staging", "production"] {
        arguments.push(path_str(&out.join(format!("hello-{stage}_4.0~rc1-1_all.deb"))).to_string());
    }
    arguments.push(path_str(&out.join("hello-4.0-rc1_4.0~rc1-1_all.deb")).to_string());
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    repo.ok(&arguments);
    // Past staging only with --skip, and history says it was a skip.
    let error = repo.fails(&["promote", "hello", "4.0~rc1", "--to", "production"]);
    assert!(
        error.contains("it is not in staging, the stage before production")
            && error.contains("--skip"),
        "{error}"
    );
    repo.ok(&[
        "promote",
        "hello",
        "4.0~rc1",
        "--to",
        "production",
        "--skip",
    ]);
    let history = repo.json(&["history", "hello"]);
    let last = history["entries"]
        .as_array()
        .and_then(|entries| entries.last())
        .expect("an entry");
    assert_eq!(last["action"], "promote-skip", "{history}");
    assert_eq!(last["stage"], "production", "{history}");
    let some = Some("4.0~rc1-1".to_string());
    assert_eq!(repo.currents("hello"), vec![some.clone(), None, some]);
    let listed = repo.json(&["list", "production"]);
    let names: Vec<&str> = listed["packages"]
        .as_array()
        .expect("array")
        .iter()
        .map(|package| package["package"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        vec![
            "debstage-archive-keyring",
            "hello-4.0-rc1",
            "hello-production"
        ]
    );
    repo.ok(&["verify"]);
}

/// `repo init --gpg-key`: gpg (with a keyring of its own here) signs every publication,
/// and gpgv accepts InRelease and Release.gpg against the exported keyring, also with a
/// SOURCE_DATE_EPOCH older than the key. The keyring holds the signing key alone, even
/// when the id given also matches another (public) key. A key gpg does not have, or one
/// it cannot use without a passphrase, is refused before anything is written.
#[test]
fn a_key_in_gpg_signs_the_suites() {
    let temp = tempfile::tempdir().expect("temp dir");
    let home = temp.path().join("gnupg");
    fs::create_dir(&home).expect("gnupg home");
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("mode");
    let gpg = |passphrase: &str, arguments: &[&str]| {
        let output = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .env("LC_ALL", "C")
            .args([
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                passphrase,
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
    let fingerprint_of = |listing: String| -> String {
        listing
            .lines()
            .find_map(|line| line.strip_prefix("fpr:"))
            .map(|rest| rest.trim_matches(':').to_string())
            .expect("a fingerprint")
    };
    gpg(
        "",
        &[
            "--quick-gen-key",
            "Example Archive <archive@example.org>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let fingerprint = fingerprint_of(gpg("", &["--list-secret-keys", "--with-colons"]));
    // Another key whose user ID also matches "Example Archive", of which only the public
    // half stays.
    gpg(
        "",
        &[
            "--quick-gen-key",
            "Mallory Example Archive <mallory@example.org>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let other = fingerprint_of(gpg(
        "",
        &["--list-keys", "--with-colons", "mallory@example.org"],
    ));
    gpg("", &["--yes", "--delete-secret-keys", &other]);
    // A key with a passphrase, which gpg-agent forgets when it is stopped.
    gpg(
        "secret",
        &[
            "--quick-gen-key",
            "Locked <locked@example.org>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let stop_agent = || {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &home)
            .args(["--kill", "gpg-agent"])
            .status();
    };
    stop_agent();

    let repo = temp.path().join("repo");
    let debstage = |arguments: &[&str], epoch: Option<&str>| {
        let mut command = crate::support::debstage();
        command
            .env("GNUPGHOME", &home)
            .env_remove("SOURCE_DATE_EPOCH")
            .arg("repo")
            .arg("--repo")
            .arg(&repo)
            .args(arguments);
        if let Some(epoch) = epoch {
            command.env("SOURCE_DATE_EPOCH", epoch);
        }
        command.output().expect("debstage runs")
    };

    for (id, problem) in [
        ("nobody@example.org", "gpg has no secret key"),
        ("locked@example.org", "without asking for anything"),
    ] {
        let refused = debstage(&["init", "--origin", "example", "--gpg-key", id], None);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("--gpg-key {id}")) && stderr.contains(problem),
            "{stderr}"
        );
        assert!(!repo.exists(), "a refused init wrote {}", repo.display());
    }

    let init = debstage(
        &[
            "init",
            "--origin",
            "example",
            "--arch",
            "amd64",
            "--gpg-key",
            "Example Archive",
        ],
        None,
    );
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(!repo.join("private").exists(), "no key of our own is made");
    let config = fs::read_to_string(repo.join("debstage-repo.toml")).expect("config");
    assert!(config.contains(&fingerprint), "{config}");
    let keyring = repo.join("example.gpg");
    let shown = gpg("", &["--show-keys", "--with-colons", path_str(&keyring)]);
    let published: Vec<&str> = shown
        .lines()
        .filter(|line| line.starts_with("pub:"))
        .collect();
    assert_eq!(published.len(), 1, "{shown}");
    assert!(!shown.contains(&other), "{shown}");

    let package = temp.path().join("tool_1.0-1_amd64.deb");
    raw_deb(
        &package,
        "Package: tool\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: T <t@example.org>\nDescription: a tool\n",
        Compressed::Xz,
    );
    // A SOURCE_DATE_EPOCH from 2020, older than the key: signed at the key's creation.
    let add = debstage(&["add", "test", path_str(&package)], Some("1600000000"));
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );

    let suite = repo.join("dists/test");
    for signed in [
        vec![suite.join("InRelease")],
        vec![suite.join("Release.gpg"), suite.join("Release")],
    ] {
        let output = Command::new("gpgv")
            .arg("--keyring")
            .arg(&keyring)
            .args(&signed)
            .output()
            .expect("gpgv runs");
        assert!(
            output.status.success(),
            "gpgv {signed:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let in_release = fs::read_to_string(suite.join("InRelease")).expect("InRelease");
    assert!(
        in_release.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n")
            && in_release.contains("\nOrigin: example\n")
            && in_release.contains("\nDate: Sun, 13 Sep 2020 12:26:40 UTC\n"),
        "{in_release}"
    );
    stop_agent();
}

/// The Packages file of a suite, as published.
/// The published Packages of `suite` without the keyring package, which every suite
/// lists beside the applications' packages (see [`keyring_in`]).
fn published_packages(repo: &TestRepo, suite: &str) -> String {
    published_stanzas(repo, suite, false)
}

/// The keyring package of the test repositories (origin `debstage`).
const KEYRING: &str = "debstage-archive-keyring";

/// The paragraphs of the published Packages of `suite` that are the keyring package's
/// (`keyring`) or not, each with its blank line.
fn published_stanzas(repo: &TestRepo, suite: &str, keyring: bool) -> String {
    let text = fs::read_to_string(
        repo.repo
            .join(format!("dists/{suite}/main/binary-amd64/Packages")),
    )
    .unwrap_or_else(|error| panic!("dists/{suite}: {error}"));
    text.split_inclusive("\n\n")
        .filter(|stanza| stanza.starts_with(&format!("Package: {KEYRING}\n")) == keyring)
        .collect()
}

/// The versions of the keyring package `suite` lists (every suite lists one, from
/// `repo init` on).
fn keyring_in(repo: &TestRepo, suite: &str) -> Vec<String> {
    crate::support::versions_of(&published_stanzas(repo, suite, true), KEYRING)
}

/// The Version fields of a Packages text.
fn versions_in(packages: &str) -> Vec<&str> {
    packages
        .lines()
        .filter_map(|line| line.strip_prefix("Version: "))
        .collect()
}

/// Builds of one release for bookworm and trixie share one repository: each lands in
/// its distribution's suites (Suite and Codename `<codename>-<stage>`), its stage
/// packages pin that suite, a release promotes and rolls back in every distribution (or
/// in the one `--dist` or a full version names), and what disagrees with the version's
/// suffix is refused without a change.
#[test]
fn builds_for_two_distributions_share_one_repository() {
    let repo = TestRepo::new();
    let bookworm = repo.root.join("bookworm");
    let trixie = repo.root.join("trixie");
    let mut manifests = Vec::new();
    for upstream in ["1.0", "1.1"] {
        for (out, target) in [(&bookworm, "bookworm"), (&trixie, "trixie")] {
            let content = format!("{upstream} for {target}");
            manifests.push(repo.build_with(out, "shop", upstream, &content, Some(target)));
        }
    }

    // A manifest whose target is not the distribution its versions carry is refused,
    // and so is one that names no target for suffixed versions.
    let text = fs::read_to_string(&manifests[0]).expect("build manifest");
    let mut document: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(document["target"], "bookworm");
    let before = repo.snapshot();
    document["target"] = Value::from("trixie");
    let wrong = bookworm.join("wrong-target.build.json");
    fs::write(&wrong, document.to_string()).expect("write");
    let error = repo.fails(&["add", "--manifest", path_str(&wrong)]);
    assert!(
        error.contains("wrong-target.build.json")
            && error.contains("target \"trixie\"")
            && error.contains("+deb12 of bookworm"),
        "{error}"
    );
    document.as_object_mut().expect("object").remove("target");
    fs::write(&wrong, document.to_string()).expect("write");
    let error = repo.fails(&["add", "--manifest", path_str(&wrong)]);
    assert!(error.contains("no target"), "{error}");
    assert_eq!(
        repo.snapshot(),
        before,
        "a refused add changed the repository"
    );

    // 1.0: bookworm's from its manifest, trixie's as bare files (placed by suffix).
    repo.ok(&["add", "--manifest", path_str(&manifests[0])]);
    let bare: Vec<String> = ["shop-1.0", "shop-test", "shop-staging", "shop-production"]
        .iter()
        .map(|package| path_str(&trixie.join(format!("{package}_1.0-1+deb13_all.deb"))).to_string())
        .collect();
    let mut arguments = vec!["add"];
    arguments.extend(bare.iter().map(String::as_str));
    let added = repo.json(&arguments);
    assert!(
        added["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .all(|package| package["suite"] == "trixie-test" && package["distribution"] == "trixie"),
        "{added}"
    );
    for suite in [
        "bookworm-test",
        "bookworm-production",
        "trixie-staging",
        "production",
    ] {
        let release =
            fs::read_to_string(repo.repo.join(format!("dists/{suite}/Release"))).expect("Release");
        assert!(
            release.contains(&format!("\nSuite: {suite}\nCodename: {suite}\n")),
            "{suite}: {release}"
        );
    }
    assert_eq!(
        versions_in(&published_packages(&repo, "bookworm-test")),
        vec!["1.0-1+deb12", "1.0-1+deb12"]
    );
    assert_eq!(
        versions_in(&published_packages(&repo, "trixie-test")),
        vec!["1.0-1+deb13", "1.0-1+deb13"]
    );
    assert_eq!(published_packages(&repo, "test"), "");

    // The stage package built for bookworm pins bookworm's suite of its stage.
    let unpacked = repo.root.join("unpacked");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(bookworm.join("shop-production_1.0-1+deb12_all.deb"))
        .arg(&unpacked)
        .status()
        .expect("dpkg-deb runs");
    assert!(status.success());
    let pin = fs::read_to_string(unpacked.join("etc/apt/preferences.d/shop-production"))
        .expect("the pin");
    assert!(
        pin.contains("Pin: release n=bookworm-production\n"),
        "{pin}"
    );

    // The release moves in both distributions; each suite gets its own build.
    let promoted = repo.json(&["promote", "shop", "1.0-1"]);
    assert_eq!(promoted["to"], "1.0-1", "{promoted}");
    assert_eq!(promoted["distributions"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        versions_in(&published_packages(&repo, "trixie-staging")),
        vec!["1.0-1+deb13", "1.0-1+deb13"]
    );
    repo.ok(&["add", "--manifest", path_str(&manifests[2])]);
    repo.ok(&["add", "--manifest", path_str(&manifests[3])]);
    // One distribution: by --dist, or by the full version.
    let one = repo.json(&["promote", "shop", "1.1", "--dist", "trixie"]);
    assert_eq!(one["to"], "1.1-1+deb13", "{one}");
    repo.ok(&["promote", "shop", "1.1-1+deb12"]);
    let staging = |shown: &Value| -> Vec<(String, String)> {
        shown["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .filter(|stage| stage["stage"] == "staging")
            .map(|stage| {
                (
                    stage["suite"].as_str().unwrap_or_default().to_string(),
                    stage["current"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect()
    };
    let pair = |suite: &str, version: &str| (suite.to_string(), version.to_string());
    assert_eq!(
        staging(&repo.json(&["show", "shop"])),
        vec![
            pair("bookworm-staging", "1.1-1+deb12"),
            pair("trixie-staging", "1.1-1+deb13")
        ]
    );
    // Both roll back, each to its own previous build; then trixie alone goes forward.
    let rolled = repo.json(&["rollback", "shop", "staging"]);
    assert_eq!(
        (&rolled["from"], &rolled["to"]),
        (&Value::from("1.1-1"), &Value::from("1.0-1"))
    );
    assert_eq!(
        staging(&repo.json(&["show", "shop"])),
        vec![
            pair("bookworm-staging", "1.0-1+deb12"),
            pair("trixie-staging", "1.0-1+deb13")
        ]
    );
    repo.ok(&[
        "rollback", "shop", "staging", "--dist", "trixie", "--to", "1.1-1",
    ]);
    assert_eq!(
        staging(&repo.json(&["show", "shop"])),
        vec![
            pair("bookworm-staging", "1.0-1+deb12"),
            pair("trixie-staging", "1.1-1+deb13")
        ]
    );
    let history = repo.json(&["history", "shop"]);
    let moves: Vec<(String, String, String)> = history["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|entry| entry["stage"] == "staging")
        .map(|entry| {
            (
                entry["action"].as_str().unwrap_or_default().to_string(),
                entry["distribution"].as_str().unwrap_or("-").to_string(),
                entry["to"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let line = |action: &str, distribution: &str, to: &str| {
        (action.to_string(), distribution.to_string(), to.to_string())
    };
    assert_eq!(
        moves,
        vec![
            line("promote", "bookworm", "1.0-1+deb12"),
            line("promote", "trixie", "1.0-1+deb13"),
            line("promote", "trixie", "1.1-1+deb13"),
            line("promote", "bookworm", "1.1-1+deb12"),
            line("rollback", "bookworm", "1.0-1+deb12"),
            line("rollback", "trixie", "1.0-1+deb13"),
            line("rollback", "trixie", "1.1-1+deb13"),
        ]
    );
    // A release that names two builds is not removed as one.
    let error = repo.fails(&["remove", "shop", "1.0-1"]);
    assert!(error.contains("several distributions"), "{error}");
    let verified = repo.json(&["verify"]);
    assert_eq!(verified["suite_count"], 9, "{verified}");
    repo.ok(&["publish"]);
    // gc keeps, in every distribution's suites, what each points to.
    repo.ok(&["gc", "--keep", "0"]);
    assert_eq!(
        versions_in(&published_packages(&repo, "bookworm-staging")),
        vec!["1.0-1+deb12", "1.0-1+deb12"]
    );
    assert_eq!(
        versions_in(&published_packages(&repo, "trixie-staging")),
        vec!["1.1-1+deb13", "1.1-1+deb13"]
    );
    repo.ok(&["verify"]);
}

/// A release built on the host and for bookworm: the release names both builds, each in
/// its own suites; alone, the host build's full version still names the host build.
#[test]
fn a_release_built_on_the_host_and_for_a_distribution() {
    let repo = TestRepo::new();
    let host = repo.build("shop", "2.0", "host");
    let bookworm = repo.build_with(&repo.debs, "shop", "2.0", "bookworm", Some("bookworm"));
    repo.ok(&["add", "--manifest", path_str(&host)]);
    repo.ok(&["add", "--manifest", path_str(&bookworm)]);
    let promoted = repo.json(&["promote", "shop", "2.0-1"]);
    let suites: Vec<&str> = promoted["distributions"]
        .as_array()
        .expect("distributions")
        .iter()
        .map(|moved| moved["suite"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(suites, vec!["staging", "bookworm-staging"], "{promoted}");
    assert_eq!(promoted["to"], "2.0-1");
    assert_eq!(
        versions_in(&published_packages(&repo, "staging")),
        vec!["2.0-1", "2.0-1"]
    );
    let rolled = repo.fails(&["rollback", "shop", "staging"]);
    assert!(
        rolled.contains("first version") && rolled.contains("--dist bookworm"),
        "{rolled}"
    );
    // The host build by its full version: only its own suites.
    let error = repo.fails(&["remove", "shop", "2.0-1", "staging"]);
    assert!(error.contains("staging point(s) to it"), "{error}");
    let shown = repo.ok(&["show", "shop"]);
    assert!(
        shown.contains("-         staging     2.0-1 ")
            && shown.contains("bookworm  staging     2.0-1+deb12 "),
        "{shown}"
    );
    repo.ok(&["verify"]);
}

/// A promote of a release across two distributions killed after its commit leaves both
/// suites owed: `repo verify` names both, and the next writer publishes them. And a
/// suite that lists another distribution's build is a problem `repo verify` names.
#[test]
fn distribution_suites_are_owed_published_and_verified() {
    use std::os::unix::process::ExitStatusExt;

    let repo = TestRepo::new();
    for target in ["bookworm", "trixie"] {
        let out = repo.root.join(target);
        let manifest = repo.build_with(&out, "shop", "1.0", target, Some(target));
        repo.ok(&["add", "--manifest", path_str(&manifest)]);
    }
    let killed = repo
        .command(&["promote", "shop", "1.0-1"])
        .env("DEBSTAGE_FAIL_AT", "promote-committed")
        .output()
        .expect("debstage runs");
    assert_eq!(killed.status.signal(), Some(9), "{killed:?}");
    let pending = repo.fails(&["verify"]);
    for suite in ["bookworm-staging", "trixie-staging"] {
        assert!(
            pending.contains(&format!("dists/{suite}: publication pending")),
            "{pending}"
        );
    }
    // The next writer publishes what the killed one owed.
    repo.ok(&["gc"]);
    repo.ok(&["verify"]);
    assert_eq!(
        versions_in(&published_packages(&repo, "trixie-staging")),
        vec!["1.0-1+deb13", "1.0-1+deb13"]
    );
    // The keyring package (keys, no build) is in every suite, the host's and each
    // distribution's, from the first publication of the suite on; verify accepts it there.
    for suite in [
        "test",
        "production",
        "bookworm-test",
        "bookworm-production",
        "trixie-staging",
    ] {
        assert_eq!(keyring_in(&repo, suite), ["1"], "{suite}");
    }

    // The state says trixie's production lists bookworm's payload: verify says so.
    let connection = rusqlite::Connection::open(repo.repo.join("state.db")).expect("state");
    connection
        .execute(
            "INSERT INTO listed (suite, package_id) SELECT 'trixie-production', id \
             FROM packages WHERE package = 'shop-1.0' AND version = '1.0-1+deb12'",
            [],
        )
        .expect("tampered");
    drop(connection);
    let error = repo.fails(&["verify"]);
    assert!(
        error.contains("dists/trixie-production: lists shop-1.0 1.0-1+deb12, a build for bookworm"),
        "{error}"
    );
}

#[test]
fn an_add_past_the_first_stage_takes_skip_and_is_recorded_as_one() {
    let repo = TestRepo::new();
    let manifest = repo.build("shop", "3.0", "s");
    let before = repo.snapshot();
    let error = repo.fails(&["add", "staging", "--manifest", path_str(&manifest)]);
    assert!(
        error.contains("packages enter the repository in the first stage, test")
            && error.contains("--skip")
            && error.contains("debstage repo promote"),
        "{error}"
    );
    assert_eq!(repo.snapshot(), before);
    // A stage misspelt is named as such, not as a file that cannot be read.
    let error = repo.fails(&["add", "prod", "--manifest", path_str(&manifest)]);
    assert!(
        error.contains("repo add prod: no such stage (the stages are test, staging, production)"),
        "{error}"
    );
    assert_eq!(repo.snapshot(), before);

    repo.ok(&[
        "add",
        "staging",
        "--skip",
        "--manifest",
        path_str(&manifest),
    ]);
    let history = repo.json(&["history", "shop"]);
    let actions: Vec<(&str, &str)> = history["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().expect("action"),
                entry["stage"].as_str().expect("stage"),
            )
        })
        .collect();
    assert_eq!(actions, [("add-skip", "staging")], "{history}");
    crate::support::schema::assert_valid("repo-history", &history);
}

#[test]
fn rollback_goes_only_to_versions_the_stage_still_lists() {
    let repo = TestRepo::new();
    for (upstream, content) in [("1.0", "a"), ("1.1", "b"), ("1.2", "c")] {
        repo.ok(&[
            "add",
            "--manifest",
            path_str(&repo.build("shop", upstream, content)),
        ]);
    }
    // 1.1 leaves test on purpose: a rollback must not bring it back.
    repo.ok(&["remove", "shop", "1.1", "test"]);
    let before = repo.snapshot();
    let error = repo.fails(&["rollback", "shop", "test"]);
    assert!(
        error.contains("cannot roll back shop in test to 1.1-1: the stage no longer lists")
            && error.contains(
                "it can go back to 1.0-1 (`debstage repo rollback shop test --to VERSION`)"
            ),
        "{error}"
    );
    let error = repo.fails(&["rollback", "shop", "test", "--to", "1.1"]);
    assert!(error.contains("no longer lists"), "{error}");
    assert_eq!(repo.snapshot(), before);
    assert_eq!(repo.currents("shop")[0].as_deref(), Some("1.2-1"));

    // What it still lists, it goes back to.
    repo.ok(&["rollback", "shop", "test", "--to", "1.0"]);
    assert_eq!(repo.currents("shop")[0].as_deref(), Some("1.0-1"));
    let error = repo.fails(&["rollback", "shop", "test"]);
    assert!(
        error.contains("1.0-1 is the first version the stage had")
            && error.contains("it can go back to 1.2-1"),
        "{error}"
    );
    repo.ok(&["verify"]);
}

#[test]
fn a_removed_version_stays_reserved_for_its_bytes_until_gc_forget() {
    let repo = TestRepo::new();
    let first = repo.build("shop", "1.0", "first bytes");
    repo.ok(&["add", "--manifest", path_str(&first)]);
    repo.add_built("shop", "1.1", "b");
    repo.ok(&["remove", "shop", "1.0"]);
    let other_debs = repo.root.join("other-debs");
    let other = repo.build_into(&other_debs, "shop", "1.0", "other bytes");
    let before = repo.snapshot();
    let error = repo.fails_with(4, &["add", "--manifest", path_str(&other)]);
    assert!(
        error.contains("shop-1.0 1.0-1 (all) was in the repository (removed since) with other bytes")
            && error.contains("build a new revision instead, or let removed versions come back with other bytes with `debstage repo gc --forget`"),
        "{error}"
    );
    assert_eq!(repo.snapshot(), before);
    // A gc without --forget keeps the reservation.
    let collected = repo.json(&["gc"]);
    assert_eq!(collected["forgotten"], 0);
    repo.fails_with(4, &["add", "--manifest", path_str(&other)]);

    // The same bytes may come back.
    repo.ok(&["add", "--manifest", path_str(&first)]);
    assert!(repo.json(&["show", "shop"])["versions"]
        .as_array()
        .expect("versions")
        .contains(&Value::from("1.0-1")));

    // Removed again and forgotten, the name and version take other bytes.
    repo.ok(&["rollback", "shop", "test", "--to", "1.1"]);
    repo.ok(&["remove", "shop", "1.0"]);
    // While an index still served (a cached InRelease) names its pool file, other bytes
    // under that path would break it: the reservation stays.
    // (Stage packages no suite ever listed have no file left: those are forgotten.)
    let output = repo.run(&["gc", "--forget"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success()
            && stderr.contains(
                "stay reserved for their bytes: an index still served names their pool file"
            ),
        "{stderr}"
    );
    repo.fails_with(4, &["add", "--manifest", path_str(&other)]);
    let config = repo.repo.join("debstage-repo.toml");
    let text = fs::read_to_string(&config).expect("config");
    fs::write(&config, text.replace("grace = \"1h\"", "grace = \"0s\"")).expect("config");
    for _ in 0..3 {
        repo.ok(&["publish"]);
    }
    let collected = repo.json(&["gc", "--forget"]);
    assert!(collected["forgotten"].as_u64() > Some(0), "{collected}");
    assert_eq!(collected["changed"], true);
    repo.ok(&["add", "--manifest", path_str(&other)]);
    repo.ok(&["verify"]);
}

#[test]
fn a_version_rolled_back_can_be_promoted_again() {
    let repo = TestRepo::new();
    repo.add_built("shop", "1.0", "a");
    repo.ok(&["promote", "shop", "1.0"]);
    repo.add_built("shop", "1.1", "b");
    repo.ok(&["promote", "shop", "1.1"]);
    repo.ok(&["rollback", "shop", "staging"]);
    repo.ok(&["gc", "--keep", "1"]);
    // Without a stage, 1.1 goes back to staging, where it was rolled back from, not on
    // to production past the rollback.
    let promoted = repo.json(&["promote", "shop", "1.1"]);
    assert_eq!(promoted["stage"], "staging");
    assert_eq!(promoted["from"], "1.0-1");
    assert_eq!(promoted["skipped"], false);
    assert_eq!(
        repo.currents("shop"),
        vec![Some("1.1-1".to_string()), Some("1.1-1".to_string()), None]
    );

    // Rolled back in staging, and gone from test (test moved on to 1.2, then 1.1 was
    // removed there): the stage that still lists it takes it again, not as a skip.
    repo.ok(&["rollback", "shop", "staging"]);
    repo.add_built("shop", "1.2", "c");
    repo.ok(&["remove", "shop", "1.1", "test"]);
    repo.ok(&["promote", "shop", "1.1", "staging"]);
    repo.ok(&["promote", "shop", "1.1"]);
    assert_eq!(
        repo.currents("shop"),
        vec![
            Some("1.2-1".to_string()),
            Some("1.1-1".to_string()),
            Some("1.1-1".to_string())
        ]
    );
    let history = repo.json(&["history", "shop"]);
    let actions: Vec<&str> = history["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|entry| entry["action"].as_str())
        .collect();
    assert!(!actions.contains(&"promote-skip"), "{actions:?}");

    // Rolled back everywhere and deleted by gc, a version says so and how to bring it back.
    let repo = TestRepo::new();
    repo.add_built("shop", "1.0", "a");
    repo.ok(&["promote", "shop", "1.0"]);
    repo.add_built("shop", "1.1", "b");
    repo.ok(&["promote", "shop", "1.1"]);
    repo.ok(&["rollback", "shop", "staging"]);
    repo.ok(&["rollback", "shop", "test"]);
    repo.ok(&["gc", "--keep", "0"]);
    let before = repo.snapshot();
    let error = repo.fails(&["promote", "shop", "1.1"]);
    assert!(
        error.contains("shop 1.1: no such version in the repository: `repo gc` deleted 1.1-1")
            && error.contains("`debstage repo add --manifest FILE`"),
        "{error}"
    );
    assert_eq!(repo.snapshot(), before);
    repo.ok(&["verify"]);
}

#[test]
fn every_refusal_of_promote_rollback_and_remove_names_the_next_step() {
    let repo = TestRepo::new();
    repo.add_built("shop", "1.0", "a");
    repo.ok(&["promote", "shop", "1.0"]);
    repo.ok(&["promote", "shop", "1.0"]);
    repo.add_built("shop", "1.1", "b");
    repo.ok(&["remove", "shop", "1.0", "test"]);
    let before = repo.snapshot();
    let refusals: [(&[&str], &str); 8] = [
        (
            &["promote", "nothing", "1.0"],
            "`debstage repo add --manifest FILE` adds a build",
        ),
        (
            &["promote", "shop", "1.0"],
            "there is no stage to promote it to; `debstage repo show shop`",
        ),
        (
            &["promote", "shop", "1.1", "production"],
            "promote it there first (`debstage repo promote shop 1.1-1 staging`)",
        ),
        (
            &["promote", "shop", "1.9"],
            "(give one of those, or add the build with `debstage repo add --manifest FILE`)",
        ),
        (
            &["rollback", "shop", "staging"],
            "promote one there with `debstage repo promote shop VERSION staging`",
        ),
        (
            &["rollback", "shop", "test"],
            "add one there with `debstage repo add test --manifest FILE`",
        ),
        (
            &["remove", "shop", "1.0", "test"],
            "the stage does not list it; `debstage repo show shop` shows which stages list it",
        ),
        (
            &["remove", "shop", "1.1"],
            "(`debstage repo rollback shop STAGE`)",
        ),
    ];
    for (arguments, next_step) in refusals {
        let error = repo.fails(arguments);
        assert!(error.contains(next_step), "{arguments:?}: {error}");
    }
    assert_eq!(repo.snapshot(), before);
    repo.ok(&["verify"]);
}

#[test]
fn a_promotion_from_no_stage_says_to_add_then_promote() {
    let repo = TestRepo::new();
    repo.add_built("shop", "1.0", "a");
    repo.add_built("shop", "1.1", "b");
    repo.ok(&["promote", "shop", "1.1", "staging"]);
    repo.ok(&["remove", "shop", "1.0", "test"]);
    let before = repo.snapshot();
    let error = repo.fails(&["promote", "shop", "1.0", "staging"]);
    assert!(
        error.contains("it is in no stage; it must be in test (the stage before staging) first; add it with `debstage repo add --manifest FILE`"),
        "{error}"
    );
    let error = repo.fails(&["rollback", "shop", "production"]);
    assert!(
        error.contains("the stage has no version of shop; `debstage repo show shop` shows which stages have one"),
        "{error}"
    );
    assert_eq!(repo.snapshot(), before);
}
