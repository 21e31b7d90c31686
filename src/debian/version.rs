//! Debian version numbers: parsing with dpkg's rules and ordering exactly as
//! `dpkg --compare-versions` does.
//!
//! Written here rather than taken from `debversion`, which orders some pairs differently
//! from dpkg (`1a` against `1a0`) and accepts versions dpkg refuses (`1:`, `1.0-`).

use std::cmp::Ordering;
use std::fmt;

/// Why a version string is not a valid Debian version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VersionError {
    /// The string is empty.
    #[error("version is empty")]
    Empty,
    /// The string has whitespace in it.
    #[error("version has embedded whitespace")]
    Whitespace,
    /// The epoch is empty, not a number or too large.
    #[error("epoch must be a number from 0 to 2147483647")]
    BadEpoch,
    /// Nothing follows the epoch's colon.
    #[error("nothing after the epoch's colon")]
    NothingAfterColon,
    /// The upstream part is empty.
    #[error("upstream version is empty")]
    EmptyUpstream,
    /// The revision after the last `-` is empty.
    #[error("revision after the last '-' is empty")]
    EmptyRevision,
    /// The upstream part does not start with a digit.
    #[error("upstream version must start with a digit")]
    UpstreamNotDigit,
    /// A character outside `[A-Za-z0-9.+~-:]` in the upstream part.
    #[error("upstream version has the character {0:?}; allowed are letters, digits and . + ~ - :")]
    UpstreamCharacter(char),
    /// A character outside `[A-Za-z0-9.+~]` in the revision.
    #[error("revision has the character {0:?}; allowed are letters, digits and . + ~")]
    RevisionCharacter(char),
}

/// A parsed Debian version: `[epoch:]upstream[-revision]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Version {
    /// The epoch (0 when absent).
    pub(crate) epoch: u32,
    /// The upstream version.
    pub(crate) upstream: String,
    /// The Debian revision (empty when absent).
    pub(crate) revision: String,
}

impl Version {
    /// Parses a version with the rules of dpkg's `parseversion`.
    pub(crate) fn parse(text: &str) -> Result<Version, VersionError> {
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        if text.chars().any(char::is_whitespace) {
            return Err(VersionError::Whitespace);
        }
        let (epoch, rest) = match text.split_once(':') {
            Some((epoch, rest)) => {
                if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VersionError::BadEpoch);
                }
                let epoch: u32 = epoch.parse().map_err(|_| VersionError::BadEpoch)?;
                if epoch > i32::MAX as u32 {
                    return Err(VersionError::BadEpoch);
                }
                if rest.is_empty() {
                    return Err(VersionError::NothingAfterColon);
                }
                (epoch, rest)
            }
            None => (0, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((upstream, revision)) => {
                if revision.is_empty() {
                    return Err(VersionError::EmptyRevision);
                }
                (upstream, revision)
            }
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(VersionError::EmptyUpstream);
        }
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(VersionError::UpstreamNotDigit);
        }
        if let Some(bad) = upstream
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || ".+~-:".contains(c)))
        {
            return Err(VersionError::UpstreamCharacter(bad));
        }
        if let Some(bad) = revision
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || ".+~".contains(c)))
        {
            return Err(VersionError::RevisionCharacter(bad));
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The version without its epoch, as Debian writes it in file names.
    pub(crate) fn without_epoch(&self) -> String {
        if self.revision.is_empty() {
            self.upstream.clone()
        } else {
            format!("{}-{}", self.upstream, self.revision)
        }
    }
}

impl fmt::Display for Version {
    /// The version as dpkg writes it: the epoch only when it is not 0, or when the upstream
    /// part holds a colon (then `0:` keeps it from being read as an epoch).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch > 0 || self.upstream.contains(':') {
            write!(formatter, "{}:", self.epoch)?;
        }
        formatter.write_str(&self.without_epoch())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(&self.upstream, &other.upstream))
            .then_with(|| compare_part(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two version strings as `dpkg --compare-versions` does; a string that does not
/// parse sorts before every valid one (and such strings compare as text among themselves).
pub(crate) fn compare(left: &str, right: &str) -> Ordering {
    match (Version::parse(left), Version::parse(right)) {
        (Ok(left), Ok(right)) => left.cmp(&right),
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Ok(_)) => Ordering::Less,
        (Err(_), Err(_)) => left.cmp(right),
    }
}

/// The weight dpkg gives one character of a non-digit run: `~` sorts before the end of the
/// string, letters before everything else.
fn weight(byte: Option<u8>) -> i32 {
    match byte {
        None => 0,
        Some(b) if b.is_ascii_digit() => 0,
        Some(b) if b.is_ascii_alphabetic() => i32::from(b),
        Some(b'~') => -1,
        Some(b) => i32::from(b) + 256,
    }
}

/// dpkg's `verrevcmp`: alternating runs of non-digits (by weight) and digits (by value).
fn compare_part(left: &str, right: &str) -> Ordering {
    let (left, right) = (left.as_bytes(), right.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let is_digit = |bytes: &[u8], index: usize| bytes.get(index).is_some_and(u8::is_ascii_digit);
    while i < left.len() || j < right.len() {
        while (i < left.len() && !is_digit(left, i)) || (j < right.len() && !is_digit(right, j)) {
            let (a, b) = (weight(left.get(i).copied()), weight(right.get(j).copied()));
            if a != b {
                return a.cmp(&b);
            }
            i += 1;
            j += 1;
        }
        while left.get(i) == Some(&b'0') {
            i += 1;
        }
        while right.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_difference = Ordering::Equal;
        while is_digit(left, i) && is_digit(right, j) {
            if first_difference == Ordering::Equal {
                first_difference = left[i].cmp(&right[j]);
            }
            i += 1;
            j += 1;
        }
        if is_digit(left, i) {
            return Ordering::Greater;
        }
        if is_digit(right, j) {
            return Ordering::Less;
        }
        if first_difference != Ordering::Equal {
            return first_difference;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzz target: an upstream part with a colon needs its epoch printed,
    /// even 0, to parse back as the same version.
    #[test]
    fn an_upstream_colon_keeps_the_epoch_in_print() {
        let version = Version::parse("0:0:~").expect("dpkg accepts it");
        assert_eq!(version.to_string(), "0:0:~");
        assert_eq!(Version::parse(&version.to_string()).ok(), Some(version));
        assert_eq!(
            Version::parse("1.0-1")
                .map(|v| v.to_string())
                .ok()
                .as_deref(),
            Some("1.0-1")
        );
    }

    #[test]
    fn orders_like_dpkg_on_known_pairs() {
        let ascending = [
            "0~", "0", "0a", "0.1", "1.0~rc1", "1.0", "1.0-1", "1.0-1.1", "1.0a", "1.0+b1", "1.1",
            "1.10", "2", "1:0", "1:0.1",
        ];
        for pair in ascending.windows(2) {
            assert_eq!(
                compare(pair[0], pair[1]),
                Ordering::Less,
                "{} < {}",
                pair[0],
                pair[1]
            );
            assert_eq!(
                compare(pair[1], pair[0]),
                Ordering::Greater,
                "{} > {}",
                pair[1],
                pair[0]
            );
        }
        assert_eq!(compare("1.0", "1.00"), Ordering::Equal);
        assert_eq!(compare("0:1.0", "1.0"), Ordering::Equal);
        assert_eq!(compare("1.0", "1.0-0"), Ordering::Equal);
        assert_eq!(compare("1a", "1a0"), Ordering::Equal);
    }

    #[test]
    fn refuses_what_dpkg_refuses() {
        for bad in ["", "1:", ":1", "1.0-", "a1", "1 0", "1_0", "1.0-r_1", "x:1"] {
            assert!(Version::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let version = Version::parse("2:1.4.2~rc1-1+deb12u1").expect("valid");
        assert_eq!(version.epoch, 2);
        assert_eq!(version.upstream, "1.4.2~rc1");
        assert_eq!(version.revision, "1+deb12u1");
        assert_eq!(version.to_string(), "2:1.4.2~rc1-1+deb12u1");
    }

    /// A valid Debian version over a small alphabet, so that pairs often differ in one place.
    fn generated_version() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let epoch = proptest::option::weighted(0.2, "[0-2]");
        let plain = "[0-9][0-9abZ.+~]{0,6}";
        let with_revision = ("[0-9][0-9abZ.+~-]{0,6}", "[0-9abZ.+~]{1,4}")
            .prop_map(|(upstream, revision)| format!("{upstream}-{revision}"));
        let body = prop_oneof![plain.prop_map(|text: String| text), with_revision];
        (epoch, body).prop_map(|(epoch, body)| match epoch {
            Some(epoch) => format!("{epoch}:{body}"),
            None => body,
        })
    }

    /// dpkg's answers for a batch of pairs, as orderings: one `sh` runs dpkg for every
    /// pair, so a few thousand pairs cost a few seconds; a mismatch shrinks to a small batch.
    fn dpkg_orderings(pairs: &[(String, String)]) -> Vec<Ordering> {
        let mut script = String::new();
        for (left, right) in pairs {
            script.push_str(&format!(
                "if dpkg --compare-versions '{left}' lt '{right}'; then echo lt; \
                 elif dpkg --compare-versions '{left}' eq '{right}'; then echo eq; else echo gt; fi\n"
            ));
        }
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh runs");
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "dpkg: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| match line {
                "lt" => Ordering::Less,
                "eq" => Ordering::Equal,
                _ => Ordering::Greater,
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 50,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// `compare` against `dpkg --compare-versions`, on generated pairs.
        #[test]
        fn compare_orders_like_dpkg(
            pairs in proptest::collection::vec((generated_version(), generated_version()), 40)
        ) {
            let theirs = dpkg_orderings(&pairs);
            proptest::prop_assert_eq!(theirs.len(), pairs.len());
            for ((left, right), expected) in pairs.iter().zip(theirs) {
                proptest::prop_assert_eq!(compare(left, right), expected, "{} vs {}", left, right);
            }
        }
    }
}
