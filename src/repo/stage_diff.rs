//! What differs between two sides of the repository (two stages, or a stage and a
//! version), per application and distribution: the versions, their provenance, and the
//! packages whose Depends changed. `repo diff` prints it; the dashboard shows it for
//! each pair of adjacent stages.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{bail, Result};
use rusqlite::Connection;

use crate::debian::control::Paragraph;
use crate::naming::distribution::suite_of;
use crate::repo::config::RepoConfig;
use crate::repo::state::{self, PoolEntry, ReleaseProvenance, Role};
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

/// What a comparison reads from the state, read once: the dashboard compares every pair
/// of adjacent stages with one. Control paragraphs are read only for the releases whose
/// Depends are compared.
pub(crate) struct Snapshot<'c> {
    connection: &'c Connection,
    provenance: BTreeMap<(String, String), ReleaseProvenance>,
    /// The packages of each application (only `app`'s when one was given).
    apps: BTreeMap<String, Vec<PoolEntry>>,
    /// The version each suite points to, per application.
    currents: HashMap<String, HashMap<String, String>>,
    /// The one application the snapshot was read for, if any.
    only: Option<String>,
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
    Snapshot::load(connection, config, app)?.compare(config, from, to)
}

impl<'c> Snapshot<'c> {
    /// Reads the packages (of `app` only, when given), the stage pointers and the
    /// provenance of every release.
    pub(crate) fn load(
        connection: &'c Connection,
        config: &RepoConfig,
        app: Option<&str>,
    ) -> Result<Snapshot<'c>> {
        // The keyring package is no application: every suite lists its one version.
        let keyring = crate::repo::keyring::package_name(config)?;
        let mut apps: BTreeMap<String, Vec<PoolEntry>> = BTreeMap::new();
        for package in state::all_pool_entries(connection)? {
            if package.app != keyring && app.is_none_or(|app| app == package.app) {
                apps.entry(package.app.clone()).or_default().push(package);
            }
        }
        if let Some(app) = app {
            if !apps.contains_key(app) {
                bail!("{app}: no such application in the repository");
            }
        }
        Ok(Snapshot {
            connection,
            provenance: state::all_provenance(connection)?,
            apps,
            currents: state::currents_by_app(connection)?,
            only: app.map(str::to_string),
        })
    }

    /// Reads what [`Snapshot::load`] reads, for the applications `wanted` only (those that
    /// have packages; the keyring package's name is skipped): a query each, for a few.
    pub(crate) fn load_apps<'a>(
        connection: &'c Connection,
        config: &RepoConfig,
        wanted: impl IntoIterator<Item = &'a str>,
    ) -> Result<Snapshot<'c>> {
        let keyring = crate::repo::keyring::package_name(config)?;
        let mut snapshot = Snapshot {
            connection,
            provenance: BTreeMap::new(),
            apps: BTreeMap::new(),
            currents: HashMap::new(),
            only: None,
        };
        for app in wanted {
            let packages = state::pool_entries(connection, Some(app))?;
            if app == keyring || packages.is_empty() {
                continue;
            }
            snapshot.apps.insert(app.to_string(), packages);
            snapshot
                .provenance
                .extend(state::provenance(connection, Some(app))?);
            let pointers: HashMap<String, String> = state::currents_of_app(connection, app)?
                .into_iter()
                .collect();
            if !pointers.is_empty() {
                snapshot.currents.insert(app.to_string(), pointers);
            }
        }
        Ok(snapshot)
    }

    /// The provenance of every release, by application and Debian version.
    pub(crate) fn provenance(&self) -> &BTreeMap<(String, String), ReleaseProvenance> {
        &self.provenance
    }

    /// The packages of each application, by application.
    pub(crate) fn apps(&self) -> &BTreeMap<String, Vec<PoolEntry>> {
        &self.apps
    }

    /// The version each suite points to, per application.
    pub(crate) fn currents(&self) -> &HashMap<String, HashMap<String, String>> {
        &self.currents
    }

    /// Compares two sides for every application the snapshot holds.
    pub(crate) fn compare(
        &self,
        config: &RepoConfig,
        from: &Side,
        to: &Side,
    ) -> Result<Vec<Difference>> {
        let mut differences = Vec::new();
        let mut version_found = false;
        for (app, packages) in &self.apps {
            let pointers = self.currents.get(app);
            let distributions = suites::distributions_of(
                packages
                    .iter()
                    .map(|package| package.identity.version.as_str()),
            );
            for distribution in distributions {
                let resolve = |side: &Side| -> Option<String> {
                    match side {
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
                    }
                };
                let from_version = resolve(from);
                let to_version = resolve(to);
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
                        .and_then(|version| self.provenance.get(&(app.clone(), version.clone())))
                        .cloned(),
                };
                let depends =
                    self.depends_changes(packages, from_version.as_deref(), to_version.as_deref())?;
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
                let of_app = self
                    .only
                    .as_ref()
                    .map(|app| format!(" of {app}"))
                    .unwrap_or_default();
                bail!(
                    "repo diff: {version:?} is neither a stage ({}) nor a version in the \
                     pool{of_app}",
                    config.stages.join(", "),
                );
            }
        }
        Ok(differences)
    }

    /// The Depends of a release's payload and plain packages, by package name (the
    /// upstream version in it written `{version}`) and architecture.
    fn depends_of(
        &self,
        packages: &[PoolEntry],
        version: &str,
    ) -> Result<BTreeMap<(String, String), Option<String>>> {
        let mut depends = BTreeMap::new();
        for package in packages {
            if package.identity.version != version
                || !matches!(package.role, Role::Payload | Role::Plain)
            {
                continue;
            }
            let name = package
                .identity
                .package
                .replace(&package.upstream, "{version}");
            let control = state::control_of(self.connection, package.id)?;
            let field = Paragraph::parse(&control)
                .ok()
                .and_then(|paragraph| paragraph.get("Depends").map(str::to_string));
            depends.insert((name, package.identity.architecture.clone()), field);
        }
        Ok(depends)
    }

    /// The packages whose Depends differ between two releases of one application.
    fn depends_changes(
        &self,
        packages: &[PoolEntry],
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<DependsChange>> {
        let (Some(from), Some(to)) = (from, to) else {
            return Ok(Vec::new());
        };
        if from == to {
            return Ok(Vec::new());
        }
        let before = self.depends_of(packages, from)?;
        let after = self.depends_of(packages, to)?;
        let keys: BTreeSet<&(String, String)> = before.keys().chain(after.keys()).collect();
        Ok(keys
            .into_iter()
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
            .collect())
    }
}
