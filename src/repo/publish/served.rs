//! The pool files that a published index may still send a client to: those named by a
//! `Packages` file under `dists/`, whether current or kept under `by-hash/` for clients
//! that hold an older `InRelease`. A pool file leaves the disk only when none names it.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};

/// The magic numbers of the compressed indexes, which name the same files as the plain
/// `Packages` beside them.
const COMPRESSED_MAGIC: [&[u8]; 2] = [b"\x1f\x8b", b"\xfd7zXZ\x00"];

/// Every pool path (relative to the root) that a `Packages` file under `root/dists`
/// names, by-hash generations included.
pub(crate) fn served_pool_files(root: &Path) -> Result<HashSet<String>> {
    let dists = root.join("dists");
    let mut served = HashSet::new();
    if !dists.exists() {
        return Ok(served);
    }
    for entry in walkdir::WalkDir::new(&dists) {
        let entry = entry.with_context(|| format!("{}: cannot be listed", dists.display()))?;
        if !entry.file_type().is_file() || !is_packages_index(entry.path()) {
            continue;
        }
        let bytes = fs_err::read(entry.path())?;
        if COMPRESSED_MAGIC
            .iter()
            .any(|magic| bytes.starts_with(magic))
        {
            continue;
        }
        served.extend(filenames(&bytes));
    }
    Ok(served)
}

/// A plain `Packages` file, or a file of a `by-hash/<algorithm>` directory: SHA512's,
/// the only one written now, or one an earlier version wrote under a weaker hash and the
/// next publication of its suite prunes.
fn is_packages_index(path: &Path) -> bool {
    let name = path.file_name().and_then(|name| name.to_str());
    let by_hash = path
        .parent()
        .and_then(Path::parent)
        .and_then(|directory| directory.file_name())
        .is_some_and(|name| name == "by-hash");
    name == Some("Packages") || by_hash
}

/// The values of the `Filename` fields of a Packages text.
fn filenames(bytes: &[u8]) -> impl Iterator<Item = String> + '_ {
    bytes.split(|byte| *byte == b'\n').filter_map(|line| {
        line.strip_prefix(b"Filename:")
            .map(|value| String::from_utf8_lossy(value).trim().to_string())
            .filter(|value| !value.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_filename_fields() {
        let text = b"Package: a\nFilename: pool/main/a/a/a.deb\nSize: 1\n\n\
                     Package: b\nFilename:  pool/main/b/b/b.deb \n";
        let found: Vec<String> = filenames(text).collect();
        assert_eq!(found, ["pool/main/a/a/a.deb", "pool/main/b/b/b.deb"]);
        assert!(is_packages_index(Path::new(
            "dists/t/main/binary-amd64/Packages"
        )));
        assert!(is_packages_index(Path::new(
            "dists/t/main/binary-amd64/by-hash/SHA512/ab"
        )));
        assert!(is_packages_index(Path::new(
            "dists/t/main/binary-amd64/by-hash/SHA256/ab"
        )));
        assert!(!is_packages_index(Path::new(
            "dists/t/main/binary-amd64/Packages.xz"
        )));
        assert!(!is_packages_index(Path::new("dists/t/Release")));
    }
}
