//! What differs between two sides of the repository (two stages, or a stage and a
//! version), per application and distribution: the versions, their provenance, and the
//! packages whose Depends changed. `repo diff` prints it; the dashboard shows it for
//! each pair of adjacent stages.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use rusqlite::Connection;

use crate::debian::control::Paragraph;
use crate::naming::distribution::suite_of;
use crate::repo::config::RepoConfig;
use crate::repo::state::{self, PackageRecord, ReleaseProvenance, Role};
use crate::repo::suites;

/// One side of a comparison, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Side {
    /// What a stage points to (per application and distribution).
    Stage(String),
    /// A version in the pool: a Debian version without its distribution's suffix
    /// (`1.1-1`) or an upstream version (`1.1`).
    Version(String),
}

impl Side {
    /// A stage when the configuration names it, else a version.
    pub(crate) fn parse(config: &RepoConfig, text: &str) -> Side {
        if config.stages.iter().any(|stage| stage == text) {
            Side::Stage(text.to_string())
        } else {
            Side::Version(text.to_string())
        }
    }

    /// What the user typed.
    pub(crate) fn label(&self) -> &str {
        match self {
            Side::Stage(text) | Side::Version(text) => text,
        }
    }
}

/// One side's release of one application and distribution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Release {
    /// The Debian version, or `None` when this side has no release of the application.
    pub(crate) version: Option<String>,
    /// Where it came from, when its build manifest said.
    pub(crate) provenance: Option<ReleaseProvenance>,
}

/// A package whose Depends differ between the two releases.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct DependsChange {
    /// The package, with the upstream version written `{version}` when its name carries
    /// it (`hello-{version}`), so the two releases' packages line up.
    pub(crate) package: String,
    /// The architecture.
    pub(crate) architecture: String,
    /// Depends on the first side (`None`: the package was not there or had none).
    pub(crate) from: Option<String>,
    /// Depends on the second side.
    pub(crate) to: Option<String>,
}

/// What differs for one application and distribution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Difference {
    /// The application.
    pub(crate) app: String,
    /// The distribution's codename; `None` for host builds.
    pub(crate) distribution: Option<String>,
    /// The first side's release.
    pub(crate) from: Release,
    /// The second side's release.
    pub(crate) to: Release,
    /// Whether both sides have the same version.
    pub(crate) same: bool,
    /// The packages whose Depends changed (payloads and plain packages; a stage package
    /// always depends on its own release, which `to` already says).
    pub(crate) depends: Vec<DependsChange>,
}

/// Compares two sides for every application (or only `app`), per distribution, in the
/// order of applications and then distributions.
pub(crate) fn compare(
    connection: &Connection,
    config: &RepoConfig,
    from: &Side,
    to: &Side,
    app: Option<&str>,
) -> Result<Vec<Difference>> {
    if let (Side::Version(_), Side::Version(version)) = (from, to) {
        bail!(
            "repo diff: {version:?} is not a stage ({}); give two stages, or a stage and a \
             version",
            config.stages.join(", ")
        );
    }
    if let Some(app) = app {
        crate::repo::keyring::refuse_as_application(config, app, "diff")?;
    }
    let provenance = state::all_provenance(connection)?;
    // The keyring package is no application: every suite lists its one version.
    let keyring = crate::repo::keyring::package_name(config)?;
    let mut apps: BTreeMap<String, Vec<PackageRecord>> = BTreeMap::new();
    for package in state::all_packages(connection)? {
        if package.app != keyring && app.is_none_or(|app| app == package.app) {
            apps.entry(package.app.clone()).or_default().push(package);
        }
    }
    if let Some(app) = app {
        if !apps.contains_key(app) {
            bail!("{app}: no such application in the repository");
        }
    }
    let currents = state::currents_by_app(connection)?;
    let mut differences = Vec::new();
    let mut version_found = false;
    for (app, packages) in &apps {
        let pointers = currents.get(app);
        let distributions = suites::distributions_of(
            packages
                .iter()
                .map(|package| package.identity.version.as_str()),
        );
        for distribution in distributions {
            let resolve = |side: &Side| -> Result<Option<String>> {
                Ok(match side {
                    Side::Stage(stage) => pointers
                        .and_then(|pointers| pointers.get(&suite_of(distribution, stage)))
                        .cloned(),
                    Side::Version(wanted) => packages
                        .iter()
                        .find(|package| {
                            suites::distribution_of(&package.identity.version) == distribution
                                && (suites::release_of(&package.identity.version)
                                    == wanted.as_str()
                                    || package.upstream == *wanted)
                        })
                        .map(|package| package.identity.version.clone()),
                })
            };
            let from_version = resolve(from)?;
            let to_version = resolve(to)?;
            let has_version = |side: &Side, version: &Option<String>| {
                matches!(side, Side::Version(_)) && version.is_some()
            };
            if has_version(from, &from_version) || has_version(to, &to_version) {
                version_found = true;
            } else if matches!(from, Side::Version(_)) || matches!(to, Side::Version(_)) {
                // The application has no such version: nothing to compare it with.
                continue;
            }
            if from_version.is_none() && to_version.is_none() {
                continue;
            }
            let release = |version: &Option<String>| Release {
                version: version.clone(),
                provenance: version
                    .as_ref()
                    .and_then(|version| provenance.get(&(app.clone(), version.clone())))
                    .cloned(),
            };
            let depends = depends_changes(packages, from_version.as_deref(), to_version.as_deref());
            differences.push(Difference {
                app: app.clone(),
                distribution: suites::codename(distribution),
                same: from_version == to_version,
                from: release(&from_version),
                to: release(&to_version),
                depends,
            });
        }
    }
    if !version_found {
        if let Some(Side::Version(version)) = [from, to]
            .into_iter()
            .find(|side| matches!(side, Side::Version(_)))
        {
            bail!(
                "repo diff: {version:?} is neither a stage ({}) nor a version in the pool{}",
                config.stages.join(", "),
                app.map(|app| format!(" of {app}")).unwrap_or_default()
            );
        }
    }
    Ok(differences)
}

/// The Depends of a release's payload and plain packages, by package name (the upstream
/// version in it written `{version}`) and architecture.
fn depends_of(
    packages: &[PackageRecord],
    version: Option<&str>,
) -> BTreeMap<(String, String), Option<String>> {
    let Some(version) = version else {
        return BTreeMap::new();
    };
    packages
        .iter()
        .filter(|package| {
            package.identity.version == version
                && matches!(package.role, Role::Payload | Role::Plain)
        })
        .map(|package| {
            let name = package
                .identity
                .package
                .replace(&package.upstream, "{version}");
            let depends = Paragraph::parse(&package.control)
                .ok()
                .and_then(|paragraph| paragraph.get("Depends").map(str::to_string));
            ((name, package.identity.architecture.clone()), depends)
        })
        .collect()
}

/// The packages whose Depends differ between two releases of one application.
fn depends_changes(
    packages: &[PackageRecord],
    from: Option<&str>,
    to: Option<&str>,
) -> Vec<DependsChange> {
    if from.is_none() || to.is_none() || from == to {
        return Vec::new();
    }
    let before = depends_of(packages, from);
    let after = depends_of(packages, to);
    let keys: BTreeSet<&(String, String)> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let from = before.get(key).cloned().flatten();
            let to = after.get(key).cloned().flatten();
            (from != to).then(|| DependsChange {
                package: key.0.clone(),
                architecture: key.1.clone(),
                from,
                to,
            })
        })
        .collect()
}
