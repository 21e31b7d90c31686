//! The index files: `Packages` paragraphs and the `Release` file.
//!
//! Everything here is a pure function of its input: the same suite and settings give the
//! same bytes (sorted paragraphs, compressed chunk by chunk with fixed settings), which is
//! what makes two publications of the same state byte-identical.

use std::cmp::Ordering;
use std::fmt::Write as _;

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;

use crate::debian::control::Paragraph;
use crate::debian::digests::Digests;
use crate::debian::release::IndexFile;

use crate::repo::publish::chunk_cache::ChunkCache;

/// One package as a suite lists it.
#[derive(Debug, Clone)]
pub(crate) struct IndexedPackage {
    /// The control paragraph read from the `.deb`, without a trailing blank line.
    pub(crate) control: String,
    /// The Architecture field (`all` is listed under every architecture).
    pub(crate) architecture: String,
    /// The pool path relative to the repository root (`pool/main/h/hello/...deb`).
    pub(crate) filename: String,
    /// Size and digests of the `.deb`.
    pub(crate) digests: Digests,
}

/// The contents of one suite (one stage).
#[derive(Debug, Clone)]
pub(crate) struct SuiteView {
    /// The suite name, which is the stage name (also used as Codename).
    pub(crate) name: String,
    /// Every package the suite lists.
    pub(crate) packages: Vec<IndexedPackage>,
}

/// The one component every suite has.
pub(crate) const COMPONENT: &str = "main";

/// The fields the index adds after the control paragraph; a control paragraph that
/// already carries one of them has it replaced.
const INDEX_FIELDS: [&str; 6] = ["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"];

/// One package ready to be listed: its sort key and paragraph text.
struct Listed<'a> {
    package: &'a str,
    version: &'a str,
    architecture: &'a str,
    text: String,
}

fn listed(package: &IndexedPackage) -> Result<Listed<'_>> {
    let origin = format!("package {}", package.filename);
    let paragraph =
        Paragraph::parse(&package.control).map_err(|error| anyhow!("{origin}: {error}"))?;
    let field = |name: &str| {
        paragraph
            .get(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| anyhow!("{origin}: the control paragraph has no {name} field"))
    };
    let (name, version) = (field("Package")?, field("Version")?);
    if package.filename.is_empty()
        || package.filename.starts_with('/')
        || package
            .filename
            .split('/')
            .any(|part| part == ".." || part.is_empty())
        || package.filename.contains(char::is_whitespace)
    {
        bail!(
            "{origin}: Filename must be a relative path inside the repository without spaces or `..`"
        );
    }
    let mut text = String::new();
    for (field, value) in paragraph.fields() {
        if INDEX_FIELDS
            .iter()
            .any(|index| index.eq_ignore_ascii_case(field))
        {
            continue;
        }
        if value.is_empty() {
            let _ = writeln!(text, "{field}:");
        } else {
            let _ = writeln!(text, "{field}: {value}");
        }
    }
    let _ = write!(
        text,
        "Filename: {}\nSize: {}\nMD5sum: {}\nSHA1: {}\nSHA256: {}\n",
        package.filename,
        package.digests.size,
        package.digests.md5,
        package.digests.sha1,
        package.digests.sha256
    );
    Ok(Listed {
        package: name,
        version,
        architecture: &package.architecture,
        text,
    })
}

/// The `Packages` text of one architecture: every package of that architecture and every
/// `Architecture: all` package, sorted by name, then version (Debian ordering), then
/// architecture; paragraphs separated by an empty line. Empty when nothing is listed.
pub(crate) fn packages_text(packages: &[IndexedPackage], architecture: &str) -> Result<String> {
    // Every core: with 20,000 packages, parsing and writing the paragraphs is a good part
    // of a publication.
    let mut entries = packages
        .par_iter()
        .filter(|package| package.architecture == architecture || package.architecture == "all")
        .map(listed)
        .collect::<Result<Vec<_>>>()?;
    entries.par_sort_by(|left, right| {
        left.package
            .cmp(right.package)
            .then_with(|| crate::debian::version::compare(left.version, right.version))
            .then_with(|| left.architecture.cmp(right.architecture))
            .then_with(|| left.text.cmp(&right.text))
    });
    entries.dedup_by(|right, left| left.text == right.text);
    for pair in entries.windows(2) {
        if let [left, right] = pair {
            if left.package == right.package
                && left.architecture == right.architecture
                && crate::debian::version::compare(left.version, right.version) == Ordering::Equal
            {
                bail!(
                    "package {} {} ({}) is listed twice with different contents; a suite holds one file per name, version and architecture",
                    left.package,
                    left.version,
                    left.architecture
                );
            }
        }
    }
    let texts: Vec<String> = entries.into_iter().map(|entry| entry.text).collect();
    Ok(texts.join("\n"))
}

/// The index files of a suite, and the cached chunks they were compressed from.
#[derive(Debug, Clone)]
pub(crate) struct SuiteIndexes {
    /// `Packages`, `Packages.gz` and `Packages.xz` of each architecture, in that order.
    pub(crate) files: Vec<IndexFile>,
    /// The keys of the compressed chunks, for [`ChunkCache::record_suite`].
    pub(crate) keys: Vec<String>,
}

/// Every index file of a suite: `Packages`, `Packages.gz` and `Packages.xz` under
/// `main/binary-<arch>/` for each architecture, in a fixed order. The compressed files
/// are put together from chunks (see [`crate::repo::publish::chunk_cache`]).
pub(crate) fn suite_indexes(
    suite: &SuiteView,
    architectures: &[String],
    cache: &ChunkCache,
) -> Result<SuiteIndexes> {
    if architectures.is_empty() {
        bail!("suite {}: no architectures are configured", suite.name);
    }
    for architecture in architectures {
        if !crate::debian::names::is_served_architecture(architecture) {
            bail!(
                "architecture {architecture:?}: must match [a-z0-9-]+ and not be `all` (`all` packages are listed under every architecture)"
            );
        }
    }
    for package in &suite.packages {
        if package.architecture != "all" && !architectures.contains(&package.architecture) {
            bail!(
                "suite {}: package {} has Architecture {:?}; the repository serves {} and all",
                suite.name,
                package.filename,
                package.architecture,
                architectures.join(", ")
            );
        }
    }
    let mut files = Vec::new();
    let mut keys = Vec::new();
    for architecture in architectures {
        let text = packages_text(&suite.packages, architecture)
            .with_context(|| format!("suite {}, architecture {architecture}", suite.name))?;
        let directory = format!("{COMPONENT}/binary-{architecture}");
        let compressed = cache.compress(text.as_bytes())?;
        keys.extend(compressed.keys);
        let contents = [
            (format!("{directory}/Packages"), text.into_bytes()),
            (format!("{directory}/Packages.gz"), compressed.gzip),
            (format!("{directory}/Packages.xz"), compressed.xz),
        ];
        // Four digests of each file, the three files side by side.
        files.extend(
            contents
                .into_par_iter()
                .map(|(path, bytes)| IndexFile::new(path, bytes))
                .collect::<Vec<_>>(),
        );
    }
    Ok(SuiteIndexes { files, keys })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::debian::release::{
        release_entries, release_text, Algorithm, ReleaseEntry, ReleaseFields,
    };
    use std::time::{Duration, UNIX_EPOCH};

    fn package(name: &str, version: &str, architecture: &str) -> IndexedPackage {
        IndexedPackage {
            control: format!(
                "Package: {name}\nVersion: {version}\nArchitecture: {architecture}\nDescription: test\n two lines\n"
            ),
            architecture: architecture.to_string(),
            filename: format!("pool/main/h/hello/{name}_{version}_{architecture}.deb"),
            digests: Digests {
                size: 10,
                md5: "m".into(),
                sha1: "s1".into(),
                sha256: "s256".into(),
            },
        }
    }

    #[test]
    fn packages_are_sorted_by_name_then_debian_version() {
        let packages = vec![
            package("b", "1.0-1", "all"),
            package("a", "1.10-1", "amd64"),
            package("a", "1.9-1", "amd64"),
            package("a", "1.0~rc1-1", "arm64"),
        ];
        let text = packages_text(&packages, "amd64").unwrap();
        let order: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("Version:"))
            .collect();
        assert_eq!(
            order,
            ["Version: 1.9-1", "Version: 1.10-1", "Version: 1.0-1"]
        );
        assert!(text.contains("Description: test\n two lines\nFilename: pool/main/h/hello/a_1.10-1_amd64.deb\nSize: 10\nMD5sum: m\nSHA1: s1\nSHA256: s256\n\nPackage: b\n"), "{text}");
        assert!(text.ends_with("SHA256: s256\n"));
        assert!(!text.lines().any(|line| line.ends_with(' ')));
    }

    #[test]
    fn a_second_file_for_the_same_name_and_version_is_refused() {
        let mut other = package("a", "1.0", "amd64");
        other.digests.sha256 = "different".into();
        let error = packages_text(&[package("a", "1.0", "amd64"), other], "amd64").unwrap_err();
        assert!(error.to_string().contains("listed twice"), "{error}");
    }

    #[test]
    fn release_lists_every_file_and_reads_back() {
        let architectures = vec!["amd64".to_string()];
        let fields = ReleaseFields {
            origin: "Example",
            label: "Example apps",
            suite: "test",
            date: UNIX_EPOCH + Duration::from_secs(1_704_067_200),
            valid_for: Some(Duration::from_secs(86_400 * 7)),
            architectures: &architectures,
            components: &[COMPONENT],
        };
        let suite = SuiteView {
            name: "test".into(),
            packages: vec![package("a", "1.0", "all")],
        };
        let files = suite_indexes(&suite, &architectures, &ChunkCache::none())
            .unwrap()
            .files;
        assert_eq!(files.len(), 3);
        let text = release_text(&fields, &files).unwrap();
        assert!(text.starts_with("Origin: Example\nLabel: Example apps\nSuite: test\nCodename: test\nDate: Mon, 01 Jan 2024 00:00:00 UTC\nValid-Until: Mon, 08 Jan 2024 00:00:00 UTC\nAcquire-By-Hash: yes\nArchitectures: amd64\nComponents: main\nMD5Sum:\n"));
        assert!(!text.lines().any(|line| line.ends_with(' ')));
        let entries = release_entries(&text);
        assert_eq!(entries.len(), 12);
        let packages = &files[0];
        assert!(entries.contains(&ReleaseEntry {
            algorithm: Algorithm::Sha512,
            digest: packages.sha512.clone(),
            size: packages.digests.size,
            path: "main/binary-amd64/Packages".into(),
        }));
        // The same input gives the same bytes, compressed files included.
        let again = suite_indexes(&suite, &architectures, &ChunkCache::none())
            .unwrap()
            .files;
        for (left, right) in files.iter().zip(&again) {
            assert_eq!(left.bytes, right.bytes, "{}", left.path);
        }
    }
}
