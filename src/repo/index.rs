//! The index files: `Packages` paragraphs and the `Release` file.
//!
//! Everything here is a pure function of its input: the same suite and settings give the
//! same bytes (sorted paragraphs, compressed chunk by chunk with fixed settings), which is
//! what makes two publications of the same state byte-identical.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context, Result};
use md5::{Digest, Md5};
use rayon::prelude::*;
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use crate::repo::index_cache::ChunkCache;
use crate::repo::publish::{IndexedPackage, PublishSettings, SuiteView};

/// The one component every suite has.
pub const COMPONENT: &str = "main";

/// The fields the index adds after the control paragraph; a control paragraph that
/// already carries one of them has it replaced.
const INDEX_FIELDS: [&str; 6] = ["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"];

/// The digest algorithms of `Release`, with the name used both as its field and as the
/// `by-hash/` directory.
pub const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::Md5,
    Algorithm::Sha1,
    Algorithm::Sha256,
    Algorithm::Sha512,
];

/// A digest algorithm listed in `Release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// MD5 (listed for old clients; apt does not trust it alone).
    Md5,
    /// SHA1 (likewise).
    Sha1,
    /// SHA256, what apt checks.
    Sha256,
    /// SHA512.
    Sha512,
}

impl Algorithm {
    /// The `Release` field and the `by-hash/` directory name: `MD5Sum`, `SHA1`, `SHA256`,
    /// `SHA512`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5Sum",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// The algorithm of a `Release` field name.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        ALGORITHMS
            .into_iter()
            .find(|algorithm| algorithm.name() == name)
    }
}

/// Size and digests of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Size in bytes.
    pub size: u64,
    /// MD5, hex.
    pub md5: String,
    /// SHA1, hex.
    pub sha1: String,
    /// SHA256, hex.
    pub sha256: String,
    /// SHA512, hex.
    pub sha512: String,
}

impl Digests {
    /// The digests of `bytes`, the four algorithms side by side.
    pub fn of(bytes: &[u8]) -> Digests {
        let ((md5, sha1), (sha256, sha512)) = rayon::join(
            || {
                rayon::join(
                    || hex::encode(Md5::digest(bytes)),
                    || hex::encode(Sha1::digest(bytes)),
                )
            },
            || {
                rayon::join(
                    || hex::encode(Sha256::digest(bytes)),
                    || hex::encode(Sha512::digest(bytes)),
                )
            },
        );
        Digests {
            size: bytes.len() as u64,
            md5,
            sha1,
            sha256,
            sha512,
        }
    }

    /// The hex digest of one algorithm.
    pub fn get(&self, algorithm: Algorithm) -> &str {
        match algorithm {
            Algorithm::Md5 => &self.md5,
            Algorithm::Sha1 => &self.sha1,
            Algorithm::Sha256 => &self.sha256,
            Algorithm::Sha512 => &self.sha512,
        }
    }
}

/// One index file of a suite, ready to be written.
#[derive(Debug, Clone)]
pub struct IndexFile {
    /// The path relative to `dists/<suite>/` (`main/binary-amd64/Packages.xz`).
    pub path: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Their size and digests.
    pub digests: Digests,
}

impl IndexFile {
    fn new(path: String, bytes: Vec<u8>) -> IndexFile {
        let digests = Digests::of(&bytes);
        IndexFile {
            path,
            bytes,
            digests,
        }
    }
}

/// A control paragraph split into fields, each with its raw value (continuation lines
/// included, without the final newline).
struct Paragraph<'a> {
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Paragraph<'a> {
    fn parse(text: &'a str, origin: &str) -> Result<Paragraph<'a>> {
        let text = text.trim_end_matches('\n');
        let mut fields: Vec<(&'a str, &'a str)> = Vec::new();
        let mut offset = 0;
        let mut current: Option<(&'a str, usize)> = None;
        for line in text.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let content = line.trim_end_matches('\n');
            if content.trim().is_empty() {
                bail!(
                    "{origin}: the control paragraph has an empty line; one paragraph is allowed"
                );
            }
            if content.starts_with([' ', '\t']) {
                if current.is_none() {
                    bail!("{origin}: the control paragraph starts with a continuation line");
                }
                continue;
            }
            if let Some((name, value_start)) = current.take() {
                fields.push((name, text[value_start..start].trim_end_matches('\n')));
            }
            let (name, _) = content.split_once(':').ok_or_else(|| {
                anyhow!("{origin}: control line {content:?} is not `Field: value`")
            })?;
            if name.is_empty() || name.contains(char::is_whitespace) {
                bail!("{origin}: control field name {name:?} is not allowed");
            }
            let mut value_start = start + name.len() + 1;
            value_start += text[value_start..]
                .bytes()
                .take_while(|byte| *byte == b' ' || *byte == b'\t')
                .count();
            current = Some((name, value_start));
        }
        if let Some((name, value_start)) = current {
            fields.push((name, &text[value_start.min(text.len())..]));
        }
        Ok(Paragraph { fields })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

/// One package ready to be listed: its sort key and paragraph text.
struct Listed<'a> {
    package: &'a str,
    version: &'a str,
    architecture: &'a str,
    text: String,
}

fn listed(package: &IndexedPackage) -> Result<Listed<'_>> {
    let origin = format!("package {}", package.filename);
    let paragraph = Paragraph::parse(&package.control, &origin)?;
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
    for (field, value) in &paragraph.fields {
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
        package.filename, package.size, package.md5, package.sha1, package.sha256
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
pub fn packages_text(packages: &[IndexedPackage], architecture: &str) -> Result<String> {
    let mut entries = packages
        .iter()
        .filter(|package| package.architecture == architecture || package.architecture == "all")
        .map(listed)
        .collect::<Result<Vec<_>>>()?;
    entries.sort_by(|left, right| {
        left.package
            .cmp(right.package)
            .then_with(|| crate::version::compare(left.version, right.version))
            .then_with(|| left.architecture.cmp(right.architecture))
            .then_with(|| left.text.cmp(&right.text))
    });
    entries.dedup_by(|right, left| left.text == right.text);
    for pair in entries.windows(2) {
        if let [left, right] = pair {
            if left.package == right.package
                && left.architecture == right.architecture
                && crate::version::compare(left.version, right.version) == Ordering::Equal
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
pub struct SuiteIndexes {
    /// `Packages`, `Packages.gz` and `Packages.xz` of each architecture, in that order.
    pub files: Vec<IndexFile>,
    /// The keys of the compressed chunks, for [`ChunkCache::record_suite`].
    pub keys: Vec<String>,
}

/// Every index file of a suite: `Packages`, `Packages.gz` and `Packages.xz` under
/// `main/binary-<arch>/` for each architecture, in a fixed order. The compressed files
/// are put together from chunks (see [`crate::repo::index_cache`]).
pub fn suite_indexes(
    suite: &SuiteView,
    architectures: &[String],
    cache: &ChunkCache,
) -> Result<SuiteIndexes> {
    if architectures.is_empty() {
        bail!("suite {}: no architectures are configured", suite.name);
    }
    for architecture in architectures {
        if !crate::names::is_served_architecture(architecture) {
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

/// An RFC 2822 date in UTC as Release files carry it: `Mon, 01 Jan 2024 00:00:00 UTC`.
pub fn release_date(time: SystemTime) -> Result<String> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] UTC"
    );
    time::OffsetDateTime::from(time)
        .format(format)
        .map_err(|error| anyhow!("date {time:?} cannot be written in a Release file: {error}"))
}

fn single_line(key: &str, value: &str) -> Result<()> {
    if value.is_empty()
        || value.contains(['\n', '\r'])
        || value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace)
    {
        bail!("{key} {value:?}: must be one non-empty line without leading or trailing spaces");
    }
    Ok(())
}

/// The `Release` text of a suite listing `files` (paths relative to `dists/<suite>/`).
/// No line ends in a space: rPGP's clearsign keeps trailing spaces, which verifiers strip,
/// so such a line would break the signature.
pub fn release_text(
    settings: &PublishSettings,
    suite: &str,
    files: &[IndexFile],
) -> Result<String> {
    single_line("origin", &settings.origin)?;
    single_line("label", &settings.label)?;
    single_line("suite", suite)?;
    let mut text = String::new();
    let _ = writeln!(text, "Origin: {}", settings.origin);
    let _ = writeln!(text, "Label: {}", settings.label);
    let _ = writeln!(text, "Suite: {suite}");
    let _ = writeln!(text, "Codename: {suite}");
    let _ = writeln!(text, "Date: {}", release_date(settings.date)?);
    if let Some(valid_for) = settings.valid_for {
        let until = settings
            .date
            .checked_add(valid_for)
            .ok_or_else(|| anyhow!("Valid-Until: {valid_for:?} after the Date is out of range"))?;
        let _ = writeln!(text, "Valid-Until: {}", release_date(until)?);
    }
    let _ = writeln!(text, "Acquire-By-Hash: yes");
    let _ = writeln!(text, "Architectures: {}", settings.architectures.join(" "));
    let _ = writeln!(text, "Components: {COMPONENT}");
    let width = files
        .iter()
        .map(|file| file.digests.size.to_string().len())
        .max()
        .unwrap_or(1);
    for algorithm in ALGORITHMS {
        let _ = writeln!(text, "{}:", algorithm.name());
        for file in files {
            let _ = writeln!(
                text,
                " {} {:>width$} {}",
                file.digests.get(algorithm),
                file.digests.size,
                file.path
            );
        }
    }
    Ok(text)
}

/// One entry of a `Release` hash list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseEntry {
    /// Which list it is in.
    pub algorithm: Algorithm,
    /// The hex digest.
    pub digest: String,
    /// The size in bytes.
    pub size: u64,
    /// The path relative to `dists/<suite>/`.
    pub path: String,
}

/// The hash lists of a `Release` text (unknown fields and malformed lines are skipped:
/// this reads what an earlier publication wrote, to keep its by-hash files).
pub fn release_entries(text: &str) -> Vec<ReleaseEntry> {
    let mut entries = Vec::new();
    let mut current: Option<Algorithm> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(' ') {
            let Some(algorithm) = current else { continue };
            let mut parts = rest.split_whitespace();
            if let (Some(digest), Some(size), Some(path), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            {
                if let Ok(size) = size.parse() {
                    entries.push(ReleaseEntry {
                        algorithm,
                        digest: digest.to_string(),
                        size,
                        path: path.to_string(),
                    });
                }
            }
        } else {
            current = line.strip_suffix(':').and_then(Algorithm::from_name);
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn package(name: &str, version: &str, architecture: &str) -> IndexedPackage {
        IndexedPackage {
            control: format!(
                "Package: {name}\nVersion: {version}\nArchitecture: {architecture}\nDescription: test\n two lines\n"
            ),
            architecture: architecture.to_string(),
            filename: format!("pool/main/h/hello/{name}_{version}_{architecture}.deb"),
            size: 10,
            md5: "m".into(),
            sha1: "s1".into(),
            sha256: "s256".into(),
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
        other.sha256 = "different".into();
        let error = packages_text(&[package("a", "1.0", "amd64"), other], "amd64").unwrap_err();
        assert!(error.to_string().contains("listed twice"), "{error}");
    }

    #[test]
    fn release_lists_every_file_and_reads_back() {
        let settings = PublishSettings {
            origin: "Example".into(),
            label: "Example apps".into(),
            architectures: vec!["amd64".into()],
            date: UNIX_EPOCH + Duration::from_secs(1_704_067_200),
            valid_for: Some(Duration::from_secs(86_400 * 7)),
        };
        let suite = SuiteView {
            name: "test".into(),
            packages: vec![package("a", "1.0", "all")],
        };
        let files = suite_indexes(&suite, &settings.architectures, &ChunkCache::none())
            .unwrap()
            .files;
        assert_eq!(files.len(), 3);
        let text = release_text(&settings, "test", &files).unwrap();
        assert!(text.starts_with("Origin: Example\nLabel: Example apps\nSuite: test\nCodename: test\nDate: Mon, 01 Jan 2024 00:00:00 UTC\nValid-Until: Mon, 08 Jan 2024 00:00:00 UTC\nAcquire-By-Hash: yes\nArchitectures: amd64\nComponents: main\nMD5Sum:\n"));
        assert!(!text.lines().any(|line| line.ends_with(' ')));
        let entries = release_entries(&text);
        assert_eq!(entries.len(), 12);
        let packages = &files[0];
        assert!(entries.contains(&ReleaseEntry {
            algorithm: Algorithm::Sha512,
            digest: packages.digests.sha512.clone(),
            size: packages.digests.size,
            path: "main/binary-amd64/Packages".into(),
        }));
        // The same input gives the same bytes, compressed files included.
        let again = suite_indexes(&suite, &settings.architectures, &ChunkCache::none())
            .unwrap()
            .files;
        for (left, right) in files.iter().zip(&again) {
            assert_eq!(left.bytes, right.bytes, "{}", left.path);
        }
    }
}
