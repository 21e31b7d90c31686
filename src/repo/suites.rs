//! The suites of a repository: one per stage for builds made on the host (`production`),
//! and one per stage for each distribution the repository holds builds of
//! (`bookworm-production`, `trixie-production`). A package's distribution is the suffix
//! of its version (`1.0-1+deb12`, see [`crate::naming::distribution`]); one key, one
//! history, one lock and one state database serve them all.
//!
//! A suite is published under `dists/<name>` with its name as both `Suite` and
//! `Codename`, as Debian does for its per-release suites (`dists/bookworm-updates` has
//! `Codename: bookworm-updates`): apt checks a source's `Suites` value against those two
//! fields and warns of a "Conflicting distribution" when neither matches, and a stage
//! package's pin selects its suite by `n=` (Codename). Host builds keep the stage's name.

use std::collections::BTreeSet;

use anyhow::{anyhow, Result};
use rusqlite::Connection;

use crate::naming::distribution::{known_codenames, suite_of};
use crate::naming::Distribution;
use crate::repo::config::RepoConfig;

/// One suite: a stage, for host builds or for one distribution's builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suite {
    /// The distribution; `None` for host builds.
    pub(crate) distribution: Option<Distribution>,
    /// The stage.
    pub(crate) stage: String,
    /// The stage's place in promotion order.
    pub(crate) stage_index: usize,
}

impl Suite {
    /// The suite's name: its directory under `dists/`, its Suite and Codename.
    pub(crate) fn name(&self) -> String {
        suite_of(self.distribution, &self.stage)
    }

    /// The distribution's codename, as the state's history and the JSON output give it.
    pub(crate) fn codename(&self) -> Option<String> {
        codename(self.distribution)
    }
}

/// The codename of a distribution, `None` for host builds.
pub(crate) fn codename(distribution: Option<Distribution>) -> Option<String> {
    distribution.map(|distribution| distribution.codename().to_string())
}

/// The distribution a package of this version was built for (its version's suffix).
pub(crate) fn distribution_of(version: &str) -> Option<Distribution> {
    Distribution::of_version(version)
}

/// The suite of `stage` (which must be one of the configuration's) for `distribution`.
pub(crate) fn suite(
    config: &RepoConfig,
    distribution: Option<Distribution>,
    stage: &str,
) -> Result<Suite> {
    Ok(Suite {
        distribution,
        stage: stage.to_string(),
        stage_index: config.stage_index(stage)?,
    })
}

/// The suite a name stands for: a stage (host builds) or `<codename>-<stage>`; `None`
/// when it is neither.
pub(crate) fn parse(config: &RepoConfig, name: &str) -> Option<Suite> {
    if let Some(stage_index) = config.stages.iter().position(|stage| stage == name) {
        return Some(Suite {
            distribution: None,
            stage: name.to_string(),
            stage_index,
        });
    }
    let (codename, stage) = name.split_once('-')?;
    let distribution = Distribution::by_codename(codename).ok()?;
    let stage_index = config.stages.iter().position(|known| known == stage)?;
    Some(Suite {
        distribution: Some(distribution),
        stage: stage.to_string(),
        stage_index,
    })
}

/// The distributions of builds with these versions (each version's suffix), once each,
/// host builds first and then in [`distribution_rank`] order.
pub(crate) fn distributions_of<'a>(
    versions: impl IntoIterator<Item = &'a str>,
) -> Vec<Option<Distribution>> {
    let mut distributions: Vec<Option<Distribution>> =
        versions.into_iter().map(distribution_of).collect();
    distributions.sort_by_key(|distribution| distribution_rank(*distribution));
    distributions.dedup();
    distributions
}

/// Where a distribution sorts: host builds first, then the distributions in the
/// contract's table order (oldest first per vendor).
pub(crate) fn distribution_rank(distribution: Option<Distribution>) -> usize {
    distribution.map_or(0, |distribution| {
        known_codenames()
            .iter()
            .position(|codename| *codename == distribution.codename())
            .map_or(usize::MAX, |index| index + 1)
    })
}

/// The order suites are shown and published in: by distribution, then by stage.
pub(crate) fn order_key(config: &RepoConfig, name: &str) -> (usize, usize, String) {
    parse(config, name).map_or((usize::MAX, usize::MAX, name.to_string()), |suite| {
        (
            distribution_rank(suite.distribution),
            suite.stage_index,
            name.to_string(),
        )
    })
}

/// The release a version belongs to, without its distribution's suffix: `1.0-1` for
/// `1.0-1+deb12` and for `1.0-1`.
pub(crate) fn release_of(version: &str) -> &str {
    distribution_of(version)
        .and_then(|distribution| version.strip_suffix(distribution.version_suffix().as_str()))
        .unwrap_or(version)
}

/// Reads a `--dist` value, if given: a codename debstage knows.
pub(crate) fn parse_distribution(codename: Option<&str>) -> Result<Option<Distribution>> {
    codename
        .map(|codename| {
            Distribution::by_codename(codename)
                .map_err(|error| anyhow!("--dist {codename}: {error}"))
        })
        .transpose()
}

/// The distributions the repository holds builds of, in [`distribution_rank`] order;
/// host builds (`None`) are always among them, since their suites always exist.
pub(crate) fn distributions(connection: &Connection) -> Result<Vec<Option<Distribution>>> {
    let mut statement = connection.prepare_cached("SELECT DISTINCT version FROM packages")?;
    let versions = statement.query_map([], |row| row.get::<_, String>(0))?;
    let mut found: BTreeSet<(usize, &'static str)> = BTreeSet::new();
    for version in versions {
        if let Some(distribution) = distribution_of(&version?) {
            found.insert((
                distribution_rank(Some(distribution)),
                distribution.codename(),
            ));
        }
    }
    let mut all = vec![None];
    all.extend(
        found
            .into_iter()
            .filter_map(|(_, codename)| Distribution::by_codename(codename).ok())
            .map(Some),
    );
    Ok(all)
}

/// Every suite of the repository: each stage of host builds and of every distribution
/// it holds builds of, in [`order_key`] order.
pub(crate) fn all_suites(config: &RepoConfig, connection: &Connection) -> Result<Vec<Suite>> {
    Ok(distributions(connection)?
        .into_iter()
        .flat_map(|distribution| {
            config
                .stages
                .iter()
                .enumerate()
                .map(move |(stage_index, stage)| Suite {
                    distribution,
                    stage: stage.clone(),
                    stage_index,
                })
        })
        .collect())
}
