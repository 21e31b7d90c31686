//! The distributions debstage builds for and serves: a codename (`bookworm`), the suffix
//! its builds carry in their Debian version (`+deb12`), and the suites of its stages
//! (`bookworm-production`).
//!
//! A release built for a distribution has its own bytes (an interpreter, a C library, a
//! Node ABI of that distribution), so the same application version exists once per
//! distribution. Debian's own rebuilds for a stable release mark the version with
//! `+debNN` (`+deb12u1` for point releases), and Ubuntu's with `~ubuntuNN.NN`; debstage
//! appends `+debNN` or `+ubuntuNN.NN` after the revision, so `1.4.2-1+deb12` and
//! `1.4.2-1+deb13` are two builds of release `1.4.2-1`, and a host upgraded from
//! bookworm to trixie sees the trixie build as the newer one.

use std::fmt;

/// Who makes the distribution; decides the version suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vendor {
    Debian,
    Ubuntu,
}

/// One distribution release debstage knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Distribution {
    codename: &'static str,
    vendor: Vendor,
    /// The release number: `12` for bookworm, `24.04` for noble.
    release: &'static str,
}

/// Every distribution debstage can build for, oldest first per vendor. A codename
/// missing here is refused with this list, rather than guessed.
const KNOWN: &[Distribution] = &[
    Distribution::new("bullseye", Vendor::Debian, "11"),
    Distribution::new("bookworm", Vendor::Debian, "12"),
    Distribution::new("trixie", Vendor::Debian, "13"),
    Distribution::new("forky", Vendor::Debian, "14"),
    Distribution::new("focal", Vendor::Ubuntu, "20.04"),
    Distribution::new("jammy", Vendor::Ubuntu, "22.04"),
    Distribution::new("noble", Vendor::Ubuntu, "24.04"),
];

impl Distribution {
    const fn new(codename: &'static str, vendor: Vendor, release: &'static str) -> Self {
        Distribution {
            codename,
            vendor,
            release,
        }
    }

    /// The distribution called `codename`, or an error that lists the known ones.
    pub(crate) fn by_codename(codename: &str) -> Result<Distribution, UnknownDistribution> {
        KNOWN
            .iter()
            .copied()
            .find(|known| known.codename == codename)
            .ok_or_else(|| UnknownDistribution(codename.to_string()))
    }

    /// The distribution a Debian version was built for, read from its suffix
    /// (`1.0-1+deb12` gives bookworm); `None` for a host build without one.
    pub(crate) fn of_version(version: &str) -> Option<Distribution> {
        KNOWN
            .iter()
            .copied()
            .find(|known| version.ends_with(&known.version_suffix()))
    }

    /// The codename: `bookworm`.
    pub(crate) fn codename(&self) -> &'static str {
        self.codename
    }

    /// The vendor: Debian or Ubuntu.
    pub(crate) fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// The release number: `12`, `24.04`.
    pub(crate) fn release(&self) -> &'static str {
        self.release
    }

    /// What a build for this distribution appends to its Debian version: `+deb12`,
    /// `+ubuntu24.04`.
    pub(crate) fn version_suffix(&self) -> String {
        match self.vendor {
            Vendor::Debian => format!("+deb{}", self.release),
            Vendor::Ubuntu => format!("+ubuntu{}", self.release),
        }
    }

    /// The suite of `stage` for this distribution: `bookworm-production`.
    pub(crate) fn suite(&self, stage: &str) -> String {
        format!("{}-{stage}", self.codename)
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.codename)
    }
}

/// The suite of `stage` for builds of `distribution` (`bookworm-production`), or the
/// stage's own name for builds on the host (`production`). The repository publishes it
/// under `dists/` with this name as Suite and Codename, and a stage package's apt pin
/// names it.
pub(crate) fn suite_of(distribution: Option<Distribution>, stage: &str) -> String {
    distribution.map_or_else(
        || stage.to_string(),
        |distribution| distribution.suite(stage),
    )
}

/// A codename debstage does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown distribution {0:?}; known: {list}", list = known_codenames().join(", "))]
pub(crate) struct UnknownDistribution(pub(crate) String);

/// The codenames of every known distribution, in the table's order.
pub(crate) fn known_codenames() -> Vec<&'static str> {
    KNOWN.iter().map(|known| known.codename).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_suites_and_the_way_back() {
        let bookworm = Distribution::by_codename("bookworm").expect("known");
        assert_eq!(bookworm.version_suffix(), "+deb12");
        assert_eq!(bookworm.suite("production"), "bookworm-production");
        assert_eq!(suite_of(Some(bookworm), "test"), "bookworm-test");
        assert_eq!(suite_of(None, "test"), "test");
        let noble = Distribution::by_codename("noble").expect("known");
        assert_eq!(noble.version_suffix(), "+ubuntu24.04");
        assert_eq!(Distribution::of_version("1.0-1+deb12"), Some(bookworm));
        assert_eq!(Distribution::of_version("1.0-1+ubuntu24.04"), Some(noble));
        assert_eq!(Distribution::of_version("1.0-1"), None);
        let Err(error) = Distribution::by_codename("buster") else {
            panic!("buster is not in the table");
        };
        let error = error.to_string();
        assert!(
            error.contains("\"buster\"") && error.contains("trixie"),
            "{error}"
        );
    }
}
