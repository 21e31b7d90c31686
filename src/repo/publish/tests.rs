//! The published tree: indexes, signatures and serving, checked with real apt-get,
//! gpgv and sqv against a repository served on loopback, and the rules of the tree's names.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::deb::compress::Compression;
use crate::deb::compress::Settings;
use crate::deb::{write_package, Entry, PackageSpec};
use crate::debian::control::Control;
use crate::debian::digests::Digests;
use crate::repo::serve::{RunningServer, Server};
use crate::repo::sign::Signer;
use sha2::{Digest, Sha256, Sha512};

#[path = "../../../tests/support/apt.rs"]
mod apt;
use apt::Apt;

/// 2024-01-01 00:00:00 UTC: the Date of every Release here (in the past, so apt accepts it).
const DATE: u64 = 1_704_067_200;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn settings() -> PublishSettings {
    PublishSettings {
        origin: "debstage-test".into(),
        label: "debstage test repository".into(),
        architectures: vec!["amd64".into(), "arm64".into()],
        date: at(DATE),
        valid_for: None,
    }
}

fn signer() -> Signer {
    Signer::generate("debstage test <test@example.org>", at(DATE - 86_400), None).expect("key")
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("{command:?} cannot run: {error}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A package written by debstage's own writer, copied into the pool.
struct Published {
    package: String,
    sha256: String,
    indexed: IndexedPackage,
}

fn make_package(
    work: &Path,
    root: &Path,
    name: &str,
    version: &str,
    architecture: &str,
    depends: &str,
) -> Published {
    let mut control = Control::new();
    control.set("Package", name);
    control.set("Version", version);
    control.set("Architecture", architecture);
    control.set("Maintainer", "Test <test@example.org>");
    control.set("Depends", depends);
    control.set("Description", "test package\n for publishing");
    let spec = PackageSpec::new(
        control,
        vec![Entry::bytes(
            format!("opt/hello/{name}/{version}.txt"),
            0o644,
            format!("{name} {version}\n"),
        )],
        Vec::new(),
        Settings {
            compression: Compression::Xz,
            level: Some(1),
            threads: 1,
        },
        DATE,
    );
    let written = write_package(&spec, work).expect("write package");
    let bytes = fs::read(work.join(&written.file)).expect("read package");
    let filename = format!("pool/main/h/hello/{}", written.file);
    let target = root.join(&filename);
    fs::create_dir_all(target.parent().expect("parent")).expect("pool directory");
    fs::write(&target, &bytes).expect("copy into the pool");
    // The control paragraph as dpkg-deb reads it from the package.
    let control = run(Command::new("dpkg-deb").arg("--field").arg(&target));
    assert!(control.status.success(), "{}", text(&control));
    Published {
        package: name.to_string(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        indexed: IndexedPackage {
            control: String::from_utf8(control.stdout).expect("utf-8 control"),
            architecture: architecture.to_string(),
            filename,
            digests: Digests::of(&bytes),
        },
    }
}

/// A repository with a `test` suite of three packages, published and signed.
struct Repository {
    _directory: tempfile::TempDir,
    work: PathBuf,
    root: PathBuf,
    signer: Signer,
    packages: Vec<Published>,
}

impl Repository {
    /// Adds an `Architecture: all` package to what the next publication lists.
    fn add_all(&mut self, name: &str, version: &str) {
        let package = make_package(&self.work, &self.root, name, version, "all", "");
        self.packages.push(package);
    }

    fn new() -> Repository {
        Repository::with_signer(signer())
    }

    fn with_signer(signer: Signer) -> Repository {
        let directory = tempfile::tempdir().expect("temp dir");
        let work = directory.path().join("work");
        let root = directory.path().join("repo");
        fs::create_dir_all(&work).expect("work dir");
        fs::create_dir_all(&root).expect("repo dir");
        let packages = vec![
            make_package(&work, &root, "hello-1.0", "1.0-1", "all", ""),
            make_package(
                &work,
                &root,
                "hello-test",
                "1.0-1",
                "all",
                "hello-1.0 (= 1.0-1)",
            ),
            make_package(&work, &root, "hello-tool", "2.0+b1-1", "amd64", ""),
        ];
        let repository = Repository {
            _directory: directory,
            work,
            root,
            signer,
            packages,
        };
        repository.publish(&settings());
        fs::write(
            repository.root.join("debstage-test.gpg"),
            repository.signer.public_key_binary(),
        )
        .expect("export key");
        repository
    }

    fn suite(&self) -> SuiteView {
        SuiteView {
            name: "test".into(),
            packages: self
                .packages
                .iter()
                .map(|package| package.indexed.clone())
                .collect(),
        }
    }

    fn publish(&self, settings: &PublishSettings) {
        publish(
            &self.root,
            settings,
            &[self.suite()],
            &self.signer,
            &Reporter::silent(),
        )
        .expect("publish");
    }

    fn suite_file(&self, path: &str) -> PathBuf {
        self.root.join("dists/test").join(path)
    }

    /// Serves the repository on loopback and runs `apt-get update` against it with the
    /// repository's key; the server stops when its handle is dropped.
    fn update_with_apt(&self) -> (RunningServer, Apt, Output) {
        let server = Server::bind(&self.root, "127.0.0.1:0")
            .expect("bind")
            .spawn();
        let apt = Apt::new(
            &self.work.join("apt"),
            &server.url(),
            &self.signer.public_key_binary(),
        );
        let update = apt.command(&["update"]);
        (server, apt, update)
    }
}

#[test]
fn apt_accepts_the_signed_suite_and_downloads_the_published_bytes() {
    let repository = Repository::new();
    let server = Server::bind(&repository.root, "127.0.0.1:0")
        .expect("bind")
        .spawn();
    let apt_directory = repository.work.join("apt");
    let apt = Apt::new(
        &apt_directory,
        &server.url(),
        &repository.signer.public_key_binary(),
    );

    let update = apt.command(&["update"]);
    let output = text(&update);
    assert!(update.status.success(), "{output}");
    assert!(!output.contains("W:") && !output.contains("E:"), "{output}");
    assert!(output.contains("InRelease"), "{output}");

    for package in &repository.packages {
        let download = apt.command(&["download", &package.package]);
        assert!(download.status.success(), "{}", text(&download));
        let file = apt_directory.join("download").join(
            Path::new(&package.indexed.filename)
                .file_name()
                .expect("name"),
        );
        let bytes = fs::read(&file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            package.sha256,
            "{}",
            package.package
        );
    }
    // The stage package's dependency resolves against the index apt just read.
    let depends = apt.command(&["install", "--simulate", "hello-test"]);
    let output = text(&depends);
    assert!(depends.status.success(), "{output}");
    assert!(
        output.contains("Inst hello-1.0 (1.0-1 debstage test repository:test"),
        "{output}"
    );
}

#[test]
fn apt_rejects_a_tampered_index() {
    let repository = Repository::new();
    // Change one byte of every amd64 Packages file, by-hash copies included, so whichever
    // apt fetches differs from what Release lists. A by-hash name is a hard link to its
    // plain name: each file is changed once, not once per name.
    let directory = repository.suite_file("main/binary-amd64");
    let mut changed = std::collections::BTreeSet::new();
    for entry in walkdir::WalkDir::new(&directory) {
        let entry = entry.expect("walk");
        let inode = std::os::unix::fs::MetadataExt::ino(&entry.metadata().expect("stat"));
        if entry.file_type().is_file() && changed.insert(inode) {
            let mut bytes = fs::read(entry.path()).expect("read");
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x20;
            fs::write(entry.path(), bytes).expect("tamper");
        }
    }
    let (_server, _apt, update) = repository.update_with_apt();
    let output = text(&update);
    assert!(!update.status.success(), "{output}");
    assert!(output.contains("Hash Sum mismatch"), "{output}");
}

#[test]
fn apt_rejects_a_repository_signed_by_another_key() {
    let repository = Repository::new();
    let other = signer();
    let server = Server::bind(&repository.root, "127.0.0.1:0")
        .expect("bind")
        .spawn();
    let apt = Apt::new(
        &repository.work.join("apt"),
        &server.url(),
        &other.public_key_binary(),
    );
    let update = apt.command(&["update"]);
    let output = text(&update);
    assert!(!update.status.success(), "{output}");
    assert!(
        output.contains("NO_PUBKEY") && output.contains("is not signed"),
        "{output}"
    );

    // A Release changed after signing fails even with the right key.
    let in_release = repository.suite_file("InRelease");
    let signed = fs::read_to_string(&in_release).expect("InRelease");
    fs::write(
        &in_release,
        signed.replace("Label: debstage test", "Label: debstage fake"),
    )
    .expect("tamper");
    let apt = Apt::new(
        &repository.work.join("apt-right-key"),
        &server.url(),
        &repository.signer.public_key_binary(),
    );
    let update = apt.command(&["update"]);
    let output = text(&update);
    assert!(!update.status.success(), "{output}");
    assert!(output.contains("BADSIG"), "{output}");
}

#[test]
fn an_expired_release_is_refused() {
    let repository = Repository::new();
    repository.publish(&PublishSettings {
        valid_for: Some(Duration::from_secs(3_600)),
        ..settings()
    });
    let release = fs::read_to_string(repository.suite_file("Release")).expect("Release");
    assert!(
        release.contains("Valid-Until: Mon, 01 Jan 2024 01:00:00 UTC\n"),
        "{release}"
    );
    let (_server, _apt, update) = repository.update_with_apt();
    let output = text(&update);
    assert!(!update.status.success(), "{output}");
    assert!(output.contains("is expired"), "{output}");
}

/// The signed text and the signature block of a clearsigned file, for sqv, which reads
/// only detached signatures.
fn split_clearsigned(signed: &str) -> (String, String) {
    let body_start = signed.find("\n\n").expect("armor header end") + 2;
    let signature_start = signed
        .find("\n-----BEGIN PGP SIGNATURE-----")
        .expect("signature block");
    let body: String = signed[body_start..signature_start]
        .lines()
        .map(|line| line.strip_prefix("- ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");
    (body, signed[signature_start + 1..].to_string())
}

#[test]
fn gpgv_and_sqv_verify_both_signatures() {
    let repository = Repository::new();
    let keyring = repository.root.join("debstage-test.gpg");
    let home = repository.work.join("gnupg");
    fs::create_dir_all(&home).expect("gnupg home");
    let gpgv = |arguments: &[&Path]| {
        run(Command::new("gpgv")
            .env("GNUPGHOME", &home)
            .arg("--keyring")
            .arg(&keyring)
            .args(arguments))
    };
    let in_release = repository.suite_file("InRelease");
    let release = repository.suite_file("Release");
    let release_gpg = repository.suite_file("Release.gpg");
    let output = gpgv(&[&in_release]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("Good signature from \"debstage test <test@example.org>\""));
    let output = gpgv(&[&release_gpg, &release]);
    assert!(output.status.success(), "{}", text(&output));

    let sqv = |signature: &Path, file: &Path| {
        run(Command::new("sqv")
            .arg("--keyring")
            .arg(&keyring)
            .arg(signature)
            .arg(file))
    };
    let output = sqv(&release_gpg, &release);
    assert!(output.status.success(), "{}", text(&output));
    let (body, signature) = split_clearsigned(&fs::read_to_string(&in_release).expect("InRelease"));
    // The clearsigned text is the Release file, byte for byte, up to its final newline.
    assert_eq!(
        format!("{body}\n"),
        fs::read_to_string(&release).expect("Release")
    );
    let body_path = repository.work.join("InRelease.body");
    let signature_path = repository.work.join("InRelease.sig");
    fs::write(&body_path, &body).expect("body");
    fs::write(&signature_path, &signature).expect("signature");
    let output = sqv(&signature_path, &body_path);
    assert!(output.status.success(), "{}", text(&output));
    // A changed Release fails both tools.
    fs::write(&release, body.replace("Suite: test", "Suite: prod") + "\n").expect("tamper");
    assert!(!gpgv(&[&release_gpg, &release]).status.success());
    assert!(!sqv(&release_gpg, &release).status.success());
}

#[test]
fn the_same_input_publishes_the_same_bytes() {
    let first = Repository::new();
    // A second repository with the same packages and key, published from scratch.
    let second_root = first.work.join("second");
    fs::create_dir_all(&second_root).expect("second root");
    let copy = |path: &str| {
        let target = second_root.join(path);
        fs::create_dir_all(target.parent().expect("parent")).expect("dirs");
        fs::copy(first.root.join(path), target).expect("copy");
    };
    for package in &first.packages {
        copy(&package.indexed.filename);
    }
    publish(
        &second_root,
        &settings(),
        &[first.suite()],
        &first.signer,
        &Reporter::silent(),
    )
    .expect("publish");
    let mut compared = 0;
    for entry in walkdir::WalkDir::new(first.root.join("dists")) {
        let entry = entry.expect("walk");
        if entry.file_type().is_file() {
            let relative = entry.path().strip_prefix(&first.root).expect("relative");
            let left = fs::read(entry.path()).expect("read");
            let right = fs::read(second_root.join(relative))
                .unwrap_or_else(|error| panic!("{}: {error}", relative.display()));
            assert!(left == right, "{} differs", relative.display());
            compared += 1;
        }
    }
    // 3 Release files + 2 architectures x 3 indexes x (1 + 1 by-hash copy, SHA512's).
    assert_eq!(compared, 3 + 2 * 3 * 2);
    // Publishing again over itself changes nothing either.
    let before = fs::read(first.suite_file("InRelease")).expect("InRelease");
    first.publish(&settings());
    assert_eq!(
        before,
        fs::read(first.suite_file("InRelease")).expect("InRelease")
    );
}

#[test]
fn by_hash_keeps_the_previous_generation_only() {
    let mut repository = Repository::new();
    let digest_of = |repository: &Repository| {
        hex::encode(Sha512::digest(
            fs::read(repository.suite_file("main/binary-amd64/Packages")).expect("Packages"),
        ))
    };
    let root = repository.root.clone();
    let by_hash = |digest: &str| repository_path(&root, "main/binary-amd64/by-hash/SHA512", digest);
    let first = digest_of(&repository);
    repository.add_all("hello-2.0", "2.0-1");
    repository.publish(&settings());
    let second = digest_of(&repository);
    repository.add_all("hello-3.0", "3.0-1");
    repository.publish(&settings());
    let third = digest_of(&repository);
    assert!(first != second && second != third);
    assert!(
        !by_hash(&first).exists(),
        "the generation before the previous one stays"
    );
    assert!(by_hash(&second).exists(), "the previous generation is gone");
    assert!(by_hash(&third).exists());
    // Republishing the same state keeps the previous generation too.
    repository.publish(&settings());
    assert!(by_hash(&second).exists());
}

/// A tree published by an earlier version holds by-hash copies under MD5Sum, SHA1 and
/// SHA256 too; the next publication that changes the suite removes them (apt fetches by
/// SHA512 alone), and never writes them again.
#[test]
fn by_hash_under_weaker_hashes_is_pruned() {
    let mut repository = Repository::new();
    let directory = repository.suite_file("main/binary-amd64");
    let packages = directory.join("Packages");
    for algorithm in ["MD5Sum", "SHA1", "SHA256"] {
        let old = directory.join("by-hash").join(algorithm);
        fs::create_dir_all(&old).expect("by-hash directory");
        fs::hard_link(&packages, old.join("0123abcd")).expect("by-hash link");
    }
    repository.add_all("hello-2.0", "2.0-1");
    repository.publish(&settings());
    let left: Vec<String> = fs::read_dir(directory.join("by-hash"))
        .expect("by-hash")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(left, ["SHA512"]);
}

fn repository_path(root: &Path, directory: &str, name: &str) -> PathBuf {
    root.join("dists/test").join(directory).join(name)
}

/// While suites are republished over and over, a reader that takes whatever `InRelease`
/// is there finds every index it names under by-hash, with the bytes it names.
#[test]
fn readers_never_see_a_release_whose_indexes_do_not_match() {
    let repository = Repository::new();
    let suites = [
        repository.suite(),
        SuiteView {
            name: "test".into(),
            packages: repository.suite().packages[..1].to_vec(),
        },
    ];
    use std::sync::atomic::{AtomicU64, Ordering};
    const GENERATIONS: u64 = 20;
    let published = std::sync::Arc::new(AtomicU64::new(0));
    let writer = {
        let (root, signer, published) = (
            repository.root.clone(),
            repository.signer.clone(),
            published.clone(),
        );
        std::thread::spawn(move || {
            for generation in 0..GENERATIONS {
                let suite = &suites[(generation % 2) as usize];
                let settings = PublishSettings {
                    date: at(DATE + generation),
                    ..settings()
                };
                publish(
                    &root,
                    &settings,
                    std::slice::from_ref(suite),
                    &signer,
                    &Reporter::silent(),
                )
                .expect("publish");
                published.store(generation + 1, Ordering::SeqCst);
            }
        })
    };
    let mut checked = 0;
    while published.load(Ordering::SeqCst) < GENERATIONS {
        let in_release = fs::read_to_string(repository.suite_file("InRelease")).expect("InRelease");
        for line in in_release
            .lines()
            .skip_while(|line| *line != "SHA512:")
            .skip(1)
        {
            let Some(entry) = line.strip_prefix(' ') else {
                break;
            };
            let parts: Vec<&str> = entry.split_whitespace().collect();
            let [digest, _size, path] = parts[..] else {
                panic!("{line}")
            };
            let directory = Path::new(path).parent().expect("parent");
            let by_hash = repository.suite_file(
                &directory
                    .join("by-hash/SHA512")
                    .join(digest)
                    .display()
                    .to_string(),
            );
            let bytes =
                fs::read(&by_hash).unwrap_or_else(|error| panic!("{}: {error}", by_hash.display()));
            assert_eq!(hex::encode(Sha512::digest(&bytes)), digest, "{path}");
            checked += 1;
        }
    }
    writer.join().expect("writer");
    assert!(checked > 6 * GENERATIONS, "only {checked} indexes checked");
}

/// A suite of 1,500 packages: its Packages.gz and Packages.xz are put together from many
/// separately compressed chunks (gzip members, xz blocks in one stream). apt reads them
/// whole: apt-helper decompresses each to the plain Packages (apt's own reader), and
/// apt-get update with Packages.xz then knows the very last package.
#[test]
fn apt_reads_indexes_put_together_from_many_chunks() {
    let repository = Repository::new();
    let template = &repository.packages[2].indexed;
    let mut packages: Vec<IndexedPackage> = (0..1500)
        .map(|index| {
            let name = format!("bulk{index:04}");
            IndexedPackage {
                control: template
                    .control
                    .replace("Package: hello-tool", &format!("Package: {name}"))
                    .replace("test package", &format!("bulk package number {index}")),
                filename: format!("pool/main/b/{name}/{name}_2.0+b1-1_amd64.deb"),
                ..template.clone()
            }
        })
        .collect();
    packages.push(template.clone());
    let suite = SuiteView {
        name: "test".into(),
        packages,
    };
    publish(
        &repository.root,
        &settings(),
        &[suite],
        &repository.signer,
        &Reporter::silent(),
    )
    .expect("publish");

    let plain = fs::read(repository.suite_file("main/binary-amd64/Packages")).expect("Packages");
    assert!(plain.len() > 400_000, "{} bytes", plain.len());
    for name in ["Packages.gz", "Packages.xz"] {
        let path = repository.suite_file(&format!("main/binary-amd64/{name}"));
        let output = run(Command::new("/usr/lib/apt/apt-helper")
            .arg("cat-file")
            .arg(&path));
        assert!(output.status.success(), "{name}: {}", text(&output));
        assert_eq!(output.stdout.len(), plain.len(), "{name} as apt reads it");
        assert!(output.stdout == plain, "{name}: apt reads other bytes");
    }
    // More than one xz block, or this test proves nothing about putting blocks together.
    let listed = run(Command::new("xz")
        .args(["--list", "--robot"])
        .arg(repository.suite_file("main/binary-amd64/Packages.xz")));
    // `file <streams> <blocks> ...`: one stream (apt reads no further), many blocks.
    let listing = String::from_utf8_lossy(&listed.stdout).into_owned();
    let counts: Vec<u64> = listing
        .lines()
        .find_map(|line| line.strip_prefix("file\t"))
        .unwrap_or_default()
        .split('\t')
        .take(2)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    assert!(
        counts.len() == 2 && counts[0] == 1 && counts[1] > 3,
        "xz --list: {listing}"
    );

    let (_server, apt, update) = repository.update_with_apt();
    assert!(update.status.success(), "{}", text(&update));
    let show = apt.tool("apt-cache", &["show", "bulk1499"]);
    assert!(
        text(&show).contains("bulk package number 1499"),
        "{}",
        text(&show)
    );
}

#[test]
fn suite_names_become_safe_directories() {
    for good in ["test", "staging", "production", "qa-2", "v1.0"] {
        assert!(check_suite_name(good).is_ok(), "{good}");
    }
    for bad in ["", "..", "../x", "a/b", "-x", "a b", ".hidden"] {
        assert!(check_suite_name(bad).is_err(), "{bad}");
    }
}

/// The mtime of a file, in whole seconds.
fn mtime_second(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .mtime()
}

#[test]
fn a_publication_within_the_same_second_is_dated_a_later_second() {
    let repository = Repository::new();
    let names = [
        "InRelease",
        "Release",
        "Release.gpg",
        "main/binary-amd64/Packages",
        "main/binary-amd64/Packages.xz",
    ];
    for round in 0..3 {
        let before: Vec<i64> = names
            .iter()
            .map(|name| mtime_second(&repository.suite_file(name)))
            .collect();
        // Right away, within the second of the last publication in most rounds.
        repository.publish(&settings());
        for (name, before) in names.iter().zip(before) {
            let after = mtime_second(&repository.suite_file(name));
            assert!(
                after > before,
                "round {round}: {name} is dated {after}, not after the replaced file's {before}"
            );
        }
    }
}
