//! Fuzz targets for what reads untrusted input: the `.deb` reader, the control parser,
//! version parsing and the manifest loader. Each must return an error, never panic or
//! hang, on any input.
//!
//! cargo-fuzz needs a nightly toolchain, which this project does not assume; these targets
//! run on stable through proptest, from random bytes and from mutations of valid inputs.
//! `make test` runs a short pass (proptest's default, 256 cases per target);
//! `make fuzz` runs `FUZZ_CASES` cases per target (default 20,000). A case a fuzzer
//! finds becomes a regression test in the module it concerns.

use std::io::Write;

use proptest::prelude::*;

use crate::deb::read::{parse_package_control, read_and_check_from};
use crate::debian::control::{Paragraph, Paragraphs};
use crate::debian::version::Version;

/// Cases per target: `FUZZ_CASES` when set (make fuzz), else proptest's default.
fn config() -> ProptestConfig {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid package, built by hand so that mutations start from real structure: ar
/// signature, `debian-binary`, a gzip `control.tar.gz` and `data.tar.gz`.
fn valid_deb() -> Vec<u8> {
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            header.set_cksum();
            builder
                .append_data(&mut header, name, *bytes)
                .expect("tar entry");
        }
        builder.into_inner().expect("tar")
    }
    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("gzip");
        encoder.finish().expect("gzip")
    }
    fn member(out: &mut Vec<u8>, name: &str, bytes: &[u8]) {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            1_700_000_000,
            0,
            0,
            "100644",
            bytes.len()
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(bytes);
        if bytes.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    let control = b"Package: fuzz\nVersion: 1.0-1\nArchitecture: all\nMaintainer: F <f@example.org>\nDescription: fuzz\n long\n";
    let mut out = b"!<arch>\n".to_vec();
    member(&mut out, "debian-binary", b"2.0\n");
    member(
        &mut out,
        "control.tar.gz",
        &gzip(&tar_of(&[("./control", control)])),
    );
    member(
        &mut out,
        "data.tar.gz",
        &gzip(&tar_of(&[("./opt/fuzz/1.0/file", b"content\n")])),
    );
    out
}

/// Reads bytes as a package file, as `repo add` does.
fn read_bytes(bytes: &[u8]) -> bool {
    let mut file = tempfile::tempfile().expect("temp file");
    file.write_all(bytes).expect("write");
    read_and_check_from(&mut file, crate::deb::read::UnpackLimits::default()).is_ok()
}

/// A few byte-level mutations of `base`: overwrite, insert, delete, truncate.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let length = base.len();
    prop::collection::vec((0..4u8, 0..length.max(1), any::<u8>()), 1..8).prop_map(move |edits| {
        let mut bytes = base.clone();
        for (kind, position, value) in edits {
            let position = position.min(bytes.len().saturating_sub(1));
            match kind {
                0 if !bytes.is_empty() => bytes[position] = value,
                1 => bytes.insert(position, value),
                2 if !bytes.is_empty() => {
                    bytes.remove(position);
                }
                _ => bytes.truncate(position),
            }
        }
        bytes
    })
}

#[test]
fn the_valid_package_is_read() {
    assert!(read_bytes(&valid_deb()));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn deb_reader_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut with_signature = b"!<arch>\n".to_vec();
        with_signature.extend_from_slice(&bytes);
        read_bytes(&bytes);
        read_bytes(&with_signature);
    }

    #[test]
    fn deb_reader_never_panics_on_damaged_packages(bytes in mutated(valid_deb())) {
        read_bytes(&bytes);
    }

    #[test]
    fn control_parser_never_panics(text in "(\\PC|[ \t\r\n:\\x00#-]){0,400}") {
        if let Ok(paragraph) = Paragraph::parse(&text) {
            // Whatever it accepts has names and values that re-parse to the same fields.
            let mut again = String::new();
            for (name, value) in paragraph.fields() {
                again.push_str(&format!("{name}: {value}\n"));
            }
            let reparsed = Paragraph::parse(&again);
            prop_assert!(reparsed.is_ok(), "{again:?}: {reparsed:?}");
        }
        for paragraph in Paragraphs::new(&text) {
            let _ = paragraph;
        }
        let _ = parse_package_control(&text);
    }

    #[test]
    fn control_parser_never_panics_on_field_like_text(
        lines in prop::collection::vec("[A-Za-z#-]{0,6}:?[ \t]?[ -~\r\t]{0,12}|[ \t][ -~]{0,8}|", 0..12)
    ) {
        let text = lines.join("\n");
        let _ = Paragraph::parse(&text);
        let _ = parse_package_control(&text);
    }

    #[test]
    fn version_parsing_never_panics(text in "[0-9a-zA-Z.+~:-]{0,24}|\\PC{0,24}") {
        if let Ok(version) = Version::parse(&text) {
            // A parsed version compares equal to itself and prints back into one that does.
            prop_assert_eq!(version.cmp(&version), std::cmp::Ordering::Equal);
            let printed = version.to_string();
            prop_assert!(Version::parse(&printed).is_ok(), "{printed}");
        }
    }

    #[test]
    fn manifest_loader_never_panics(text in "(\\[[a-z.]{1,12}\\]\n|[a-z-]{1,10} = (\"[ -~]{0,12}\"|[0-9]{1,3}|\\[\\]|true)\n){0,12}") {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("debstage.toml");
        std::fs::write(&path, &text).expect("write");
        if let Ok(loaded) = crate::build::manifest::load(&path, None, None) {
            let _ = crate::build::env::check(&loaded);
        }
        let _ = crate::build::manifest::load(&path, Some("1.0~rc1"), Some("1"));
    }
}
