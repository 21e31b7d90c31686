//! `Release` files: the fields, the hash lists of the index files, and reading those lists
//! back (to keep the by-hash files an earlier publication still names).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Result};
use sha2::{Digest, Sha512};

use crate::debian::digests::Digests;

/// The digest algorithms of `Release`, with the name used both as its field and as the
/// `by-hash/` directory.
pub(crate) const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::Md5,
    Algorithm::Sha1,
    Algorithm::Sha256,
    Algorithm::Sha512,
];

/// The one algorithm whose `by-hash/` directory is written. apt fetches an index by hash
/// under the strongest hash the Release lists for it (SHA512 > SHA256 > SHA1 > MD5Sum), and
/// never under a weaker one, so copies under the others are bytes nobody reads: on a
/// publish target they were three objects in four of every promote. Debian's archive lists
/// SHA256 as its strongest and keeps by-hash under SHA256 alone; the Release here lists
/// SHA512 too, so by-hash lives under SHA512. The weaker sums stay in the Release itself
/// for old clients that check them.
pub(crate) const BY_HASH: Algorithm = Algorithm::Sha512;

/// A digest algorithm listed in `Release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Algorithm {
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
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5Sum",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// The algorithm of a `Release` field name.
    pub(crate) fn from_name(name: &str) -> Option<Algorithm> {
        ALGORITHMS
            .into_iter()
            .find(|algorithm| algorithm.name() == name)
    }
}

/// One index file of a suite, ready to be written.
#[derive(Debug, Clone)]
pub(crate) struct IndexFile {
    /// The path relative to `dists/<suite>/` (`main/binary-amd64/Packages.xz`).
    pub(crate) path: String,
    /// The bytes.
    pub(crate) bytes: Vec<u8>,
    /// Their size and the digests a `Packages` paragraph would list.
    pub(crate) digests: Digests,
    /// SHA512, hex: Release files list it too.
    pub sha512: String,
}

impl IndexFile {
    /// An index file with its digests, the four computed side by side.
    pub(crate) fn new(path: String, bytes: Vec<u8>) -> IndexFile {
        let (digests, sha512) = rayon::join(
            || Digests::of(&bytes),
            || hex::encode(Sha512::digest(&bytes)),
        );
        IndexFile {
            path,
            bytes,
            digests,
            sha512,
        }
    }

    /// The hex digest of one algorithm.
    pub(crate) fn digest(&self, algorithm: Algorithm) -> &str {
        match algorithm {
            Algorithm::Md5 => &self.digests.md5,
            Algorithm::Sha1 => &self.digests.sha1,
            Algorithm::Sha256 => &self.digests.sha256,
            Algorithm::Sha512 => &self.sha512,
        }
    }
}

/// The fields of a `Release` file other than its hash lists.
#[derive(Debug, Clone)]
pub(crate) struct ReleaseFields<'a> {
    /// Origin.
    pub(crate) origin: &'a str,
    /// Label.
    pub(crate) label: &'a str,
    /// Suite, also written as Codename.
    pub(crate) suite: &'a str,
    /// Date.
    pub(crate) date: SystemTime,
    /// How long after Date the file stays valid (Valid-Until), if at all.
    pub(crate) valid_for: Option<Duration>,
    /// Architectures (without `all`).
    pub(crate) architectures: &'a [String],
    /// Components.
    pub(crate) components: &'a [&'a str],
}

/// An RFC 2822 date in UTC as Release files carry it: `Mon, 01 Jan 2024 00:00:00 UTC`.
pub(crate) fn release_date(time: SystemTime) -> Result<String> {
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
pub(crate) fn release_text(fields: &ReleaseFields<'_>, files: &[IndexFile]) -> Result<String> {
    let settings = fields;
    let suite = fields.suite;
    single_line("origin", settings.origin)?;
    single_line("label", settings.label)?;
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
    let _ = writeln!(text, "Components: {}", fields.components.join(" "));
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
                file.digest(algorithm),
                file.digests.size,
                file.path
            );
        }
    }
    Ok(text)
}

/// One entry of a `Release` hash list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ReleaseEntry {
    /// Which list it is in.
    pub(crate) algorithm: Algorithm,
    /// The hex digest.
    pub(crate) digest: String,
    /// The size in bytes.
    pub(crate) size: u64,
    /// The path relative to `dists/<suite>/`.
    pub(crate) path: String,
}

/// The hash lists of a `Release` text (unknown fields and malformed lines are skipped:
/// this reads what an earlier publication wrote, to keep its by-hash files).
pub(crate) fn release_entries(text: &str) -> Vec<ReleaseEntry> {
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
