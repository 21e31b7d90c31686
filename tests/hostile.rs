//! The hostile-package catalogue: packages dpkg-deb refuses (or that would take the
//! repository down: decompression bombs) are refused by `repo add` with an error that
//! names the rule, and the repository is byte-identical afterwards; packages in every
//! compression dpkg reads are accepted.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::faults::Repo;
use crate::support;

const GOOD_CONTROL: &str = "Package: hostile\nVersion: 1.0\nArchitecture: all\n\
                            Maintainer: Test <test@example.com>\nDescription: a test\n";

/// A tar archive of `files` (regular files, mode 0644).
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, *bytes)
            .expect("tar entry");
    }
    builder.into_inner().expect("tar")
}

/// `bytes` compressed as the member extension says (`gz`, `xz`, `zst`, `bz2`, `lzma`, or
/// none).
fn compress(extension: &str, bytes: &[u8]) -> Vec<u8> {
    match extension {
        "" => bytes.to_vec(),
        "gz" => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(bytes).expect("gzip");
            encoder.finish().expect("gzip")
        }
        "xz" => {
            let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
            encoder.write_all(bytes).expect("xz");
            encoder.finish().expect("xz")
        }
        // With the frame checksum, as debstage build and dpkg-deb write it: without one,
        // damage inside a literal block cannot be seen by any reader.
        "zst" => {
            let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd");
            encoder.include_checksum(true).expect("zstd");
            encoder.write_all(bytes).expect("zstd");
            encoder.finish().expect("zstd")
        }
        "bz2" => {
            let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            encoder.write_all(bytes).expect("bzip2");
            encoder.finish().expect("bzip2")
        }
        "lzma" => {
            let options = liblzma::stream::LzmaOptions::new_preset(1).expect("lzma preset");
            let stream = liblzma::stream::Stream::new_lzma_encoder(&options).expect("lzma");
            let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
            encoder.write_all(bytes).expect("lzma");
            encoder.finish().expect("lzma")
        }
        other => panic!("no compressor {other}"),
    }
}

/// An ar archive of the members, in order.
fn ar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = ar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
        header.set_mode(0o100644);
        header.set_mtime(1_700_000_000);
        builder.append(&header, &bytes[..]).expect("ar member");
    }
    builder.into_inner().expect("ar")
}

/// A package: control file text, control and data compression, data files.
fn package(control: &str, control_compression: &str, data_compression: &str) -> Vec<u8> {
    let control_tar = tar_of(&[("./control", control.as_bytes())]);
    let data_tar = tar_of(&[("./usr/share/doc/hostile/README", b"hello\n")]);
    with_members(
        member("control.tar", control_compression),
        compress(control_compression, &control_tar),
        member("data.tar", data_compression),
        compress(data_compression, &data_tar),
    )
}

fn member(stem: &str, extension: &str) -> String {
    if extension.is_empty() {
        stem.to_string()
    } else {
        format!("{stem}.{extension}")
    }
}

fn with_members(
    control_name: String,
    control: Vec<u8>,
    data_name: String,
    data: Vec<u8>,
) -> Vec<u8> {
    ar_of(&[
        ("debian-binary", b"2.0\n".to_vec()),
        (&control_name, control),
        (&data_name, data),
    ])
}

/// Flips a byte in the middle of the data member's compressed stream.
fn corrupt_data(data_compression: &str) -> Vec<u8> {
    let control_tar = tar_of(&[("./control", GOOD_CONTROL.as_bytes())]);
    let content: Vec<u8> = (0..200_000u32).flat_map(|n| n.to_le_bytes()).collect();
    let mut data = compress(data_compression, &tar_of(&[("./big", &content)]));
    let middle = data.len() / 2;
    data[middle] ^= 0x55;
    data[middle + 1] ^= 0xaa;
    with_members(
        "control.tar.gz".into(),
        compress("gz", &control_tar),
        member("data.tar", data_compression),
        data,
    )
}

/// 64 MiB of zeros, xz-compressed (a few KiB): far over the test repository's 1 MiB limit.
fn xz_bomb() -> Vec<u8> {
    let zeros = vec![0u8; 64 << 20];
    compress("xz", &tar_of(&[("./zeros", &zeros)]))
}

/// The refused cases: name, package bytes, what the error must say.
fn refused() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let control = |text: &str| package(text, "gz", "gz");
    let good_control_tar = || compress("gz", &tar_of(&[("./control", GOOD_CONTROL.as_bytes())]));
    let good_data_tar = || compress("gz", &tar_of(&[("./a", b"a")]));
    let many: Vec<(String, Vec<u8>)> = (0..300).map(|n| (format!("./f{n}"), Vec::new())).collect();
    let many: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect();
    let whole = package(GOOD_CONTROL, "gz", "xz");
    vec![
        (
            "duplicate Package",
            control(&format!("{GOOD_CONTROL}Package: other\n")),
            "duplicate field \"Package\"",
        ),
        (
            "duplicate Version",
            control(&format!("{GOOD_CONTROL}Version: 2.0\n")),
            "duplicate field \"Version\"",
        ),
        (
            "duplicate Architecture",
            control(&format!("{GOOD_CONTROL}architecture: amd64\n")),
            "duplicate field",
        ),
        (
            "second paragraph",
            control(&format!("{GOOD_CONTROL}\nPackage: smuggled\nVersion: 9\n")),
            "a second paragraph",
        ),
        (
            "whitespace-only line",
            control("Package: hostile\nVersion: 1.0\n \nArchitecture: all\nDescription: x\n"),
            "blank line",
        ),
        (
            "CR byte",
            control("Package: hostile\nVersion: 1.0\r\nArchitecture: all\nDescription: x\n"),
            "control character",
        ),
        (
            "NUL byte",
            control("Package: hostile\nVersion: 1.0\nArchitecture: all\nDescription: x\0y\n"),
            "control character",
        ),
        (
            "field name with a space",
            control(&format!("{GOOD_CONTROL}Bad Name: x\n")),
            "field name",
        ),
        (
            "field name starting with -",
            control(&format!("{GOOD_CONTROL}-Hidden: x\n")),
            "field name",
        ),
        (
            "no Package field",
            control("Version: 1.0\nArchitecture: all\nDescription: x\n"),
            "no Package field",
        ),
        (
            "corrupt data.tar.bz2",
            corrupt_data("bz2"),
            "data.tar.bz2 cannot be unpacked",
        ),
        (
            "corrupt data.tar.lzma",
            corrupt_data("lzma"),
            "data.tar.lzma cannot be unpacked",
        ),
        (
            "corrupt data.tar.xz",
            corrupt_data("xz"),
            "data.tar.xz cannot be unpacked",
        ),
        (
            "corrupt data.tar.gz",
            corrupt_data("gz"),
            "data.tar.gz cannot be unpacked",
        ),
        (
            "corrupt data.tar.zst",
            corrupt_data("zst"),
            "data.tar.zst cannot be unpacked",
        ),
        (
            "xz bomb in data.tar.xz",
            with_members(
                "control.tar.gz".into(),
                good_control_tar(),
                "data.tar.xz".into(),
                xz_bomb(),
            ),
            "data.tar.xz unpacks to more than 1048576 bytes",
        ),
        (
            "xz bomb in control.tar.xz",
            {
                let mut entries = tar_of(&[
                    ("./control", GOOD_CONTROL.as_bytes()),
                    ("./zeros", &vec![0u8; 64 << 20]),
                ]);
                entries = compress("xz", &entries);
                with_members(
                    "control.tar.xz".into(),
                    entries,
                    "data.tar.gz".into(),
                    good_data_tar(),
                )
            },
            "control.tar.xz unpacks to more than 1048576 bytes",
        ),
        (
            "too many entries in data.tar",
            with_members(
                "control.tar.gz".into(),
                good_control_tar(),
                "data.tar.gz".into(),
                compress("gz", &tar_of(&many)),
            ),
            "holds more than 100 entries",
        ),
        (
            "data.tar.lz4 (a compression dpkg does not read)",
            with_members(
                "control.tar.gz".into(),
                good_control_tar(),
                "data.tar.lz4".into(),
                good_data_tar(),
            ),
            "compression dpkg does not read",
        ),
        (
            "truncated data member",
            whole[..whole.len() - 40].to_vec(),
            "is truncated",
        ),
        (
            "truncated data stream inside a whole member",
            {
                let data = compress("xz", &tar_of(&[("./a", &[7u8; 5000])]));
                let cut = data[..data.len() - 30].to_vec();
                with_members(
                    "control.tar.gz".into(),
                    good_control_tar(),
                    "data.tar.xz".into(),
                    cut,
                )
            },
            "data.tar.xz cannot be unpacked",
        ),
        (
            "truncated control member",
            {
                let cut = good_control_tar()[..20].to_vec();
                with_members(
                    "control.tar.gz".into(),
                    cut,
                    "data.tar.gz".into(),
                    good_data_tar(),
                )
            },
            "control.tar.gz cannot be unpacked",
        ),
        (
            "not an ar archive",
            b"hello, world\n".to_vec(),
            "not a Debian package",
        ),
    ]
}

/// A hash of every file and directory name under `root`, except the lock and SQLite's
/// -wal and -shm files (which readers may touch).
fn tree_hash(root: &Path) -> BTreeMap<String, String> {
    let mut hashes = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.expect("readable tree");
        let relative = entry
            .path()
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        if relative == "lock" || relative.ends_with("-wal") || relative.ends_with("-shm") {
            continue;
        }
        let value = if entry.file_type().is_file() {
            hex::encode(Sha256::digest(
                fs::read(entry.path()).expect("readable file"),
            ))
        } else {
            format!("{:?}", entry.file_type())
        };
        hashes.insert(relative, value);
    }
    hashes
}

/// Writes `[limits]` small enough that a bomb is found in milliseconds.
fn small_limits(repo: &Repo) {
    let config = repo.root.join("debstage-repo.toml");
    let text = fs::read_to_string(&config).expect("config");
    let text = text
        .replace("unpacked_size = \"16GiB\"", "unpacked_size = \"1MiB\"")
        .replace("entries = 1000000", "entries = 100");
    assert!(text.contains("unpacked_size = \"1MiB\""), "{text}");
    fs::write(&config, text).expect("config");
}

#[test]
#[allow(clippy::print_stderr)]
fn hostile_packages_are_refused_by_rule_and_leave_the_repository_unchanged() {
    let repo = Repo::new();
    small_limits(&repo);
    let packages = repo.root.parent().expect("parent").join("hostile");
    fs::create_dir_all(&packages).expect("dir");
    let before = tree_hash(&repo.root);
    let mut wrong = Vec::new();
    let cases = refused();
    for (index, (name, bytes, rule)) in cases.iter().enumerate() {
        let path = packages.join(format!("case-{index}.deb"));
        fs::write(&path, bytes).expect("write package");
        let output = repo
            .command(&["add", path.to_str().expect("UTF-8")])
            .output()
            .expect("debstage runs");
        let error = support::stderr(&output);
        if output.status.code() != Some(1) || !error.contains(rule) {
            wrong.push(format!(
                "{name}: exit {}, expected {rule:?} in: {error}",
                output.status
            ));
        }
        if tree_hash(&repo.root) != before {
            wrong.push(format!("{name}: the repository changed"));
        }
    }
    eprintln!(
        "hostile packages: {} refused by rule, {} wrong",
        cases.len() - wrong.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_compression_dpkg_reads_is_accepted() {
    let repo = Repo::new();
    let packages = repo.root.parent().expect("parent").join("good");
    fs::create_dir_all(&packages).expect("dir");
    for (index, (control, data)) in [
        ("gz", "gz"),
        ("xz", "xz"),
        ("zst", "zst"),
        ("gz", "bz2"),
        ("gz", "lzma"),
        ("", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let text = GOOD_CONTROL.replace("1.0", &format!("1.{index}"));
        let path = packages.join(format!("good-{index}.deb"));
        fs::write(&path, package(&text, control, data)).expect("write");
        repo.ok(&["add", path.to_str().expect("UTF-8")]);
    }
    repo.ok(&["verify"]);
}

#[test]
fn init_copies_a_given_key_under_private_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let first = Repo::new();
    let key = first.root.parent().expect("parent").join("key.asc");
    fs::copy(first.root.join("private/signing-key.asc"), &key).expect("copy key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let second = first.root.parent().expect("parent").join("second");
    let output = support::run_ok(
        support::debstage()
            .args(["repo", "--repo"])
            .arg(&second)
            .args(["init", "--arch", "amd64", "--key"])
            .arg(&key),
    );
    let warning = support::stderr(&output);
    assert!(
        warning.contains("can be read by others (mode 0644)"),
        "{warning}"
    );
    let copy = second.join("private/signing-key.asc");
    let mode = fs::metadata(&copy).expect("copy").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(fs::read(&copy).expect("copy"), fs::read(&key).expect("key"));
    let config = fs::read_to_string(second.join("debstage-repo.toml")).expect("config");
    assert!(
        config.contains("file = \"private/signing-key.asc\""),
        "{config}"
    );
    // The repository signs with its copy once the original is gone.
    fs::remove_file(&key).expect("remove original");
    support::run_ok(
        support::debstage()
            .args(["repo", "--repo"])
            .arg(&second)
            .arg("publish"),
    );
}
