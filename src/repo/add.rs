//! `repo add [STAGE] FILES... | --manifest BUILD.json`: read, check and copy packages
//! into the pool, record them, and list them in a stage's suite.
//!
//! Three phases, so that a refusal leaves the repository exactly as it was:
//! 1. every file is read (control member only), checked and copied into
//!    `pool/.incoming` while it is hashed (in parallel);
//! 2. one transaction records the packages and their listings; a package already present
//!    with other bytes aborts it;
//! 3. after the commit, the copies move to their pool paths and the suite is published.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Deserialize;

use crate::deb::read::{read_and_check_from, PackageControl};
use crate::names;
use crate::repo::commands::{now, who, Session};
use crate::repo::config::RepoConfig;
use crate::repo::pool::{self, StagedFile};
use crate::repo::state::{self, HistoryEntry, NewPackage, Role};
use crate::version::Version;

/// The same package name, version and architecture is in the repository with other bytes.
#[derive(Debug, thiserror::Error)]
#[error(
    "{file}: {package} {version} ({architecture}) is already in the repository with other \
     bytes (recorded sha256 {recorded}, this file {offered}); a version is immutable: \
     build a new revision instead"
)]
pub struct ConflictError {
    /// The file offered.
    pub file: PathBuf,
    /// Package name.
    pub package: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub architecture: String,
    /// The recorded SHA256.
    pub recorded: String,
    /// The offered file's SHA256.
    pub offered: String,
}

/// The build manifest `debstage build` writes (`<app>_<version>.build.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct BuildManifest {
    /// The application.
    pub app: String,
    /// The Debian version of every package of the build.
    pub debian_version: String,
    /// The packages, with paths relative to the manifest's directory.
    pub packages: Vec<ManifestPackage>,
}

/// One package of a build manifest: the type `debstage build` writes.
pub type ManifestPackage = crate::build::BuiltPackage;

/// One file to add, with what its manifest says about it.
struct Input {
    path: PathBuf,
    expected: Option<ManifestPackage>,
    /// The manifest's application.
    app: Option<String>,
}

/// A file read, checked and copied into `.incoming`.
struct Candidate {
    path: PathBuf,
    control: PackageControl,
    app: String,
    package: String,
    version: String,
    upstream: String,
    architecture: String,
    role: Role,
    stage: Option<String>,
    staged: StagedFile,
}

/// What happened to one file.
#[derive(Debug, Clone, serde::Serialize)]
struct Outcome {
    file: String,
    package: String,
    version: String,
    architecture: String,
    filename: String,
    status: &'static str,
}

/// Runs `repo add`.
pub fn run(session: &mut Session<'_>, arguments: &[String], manifest: Option<&Path>) -> Result<()> {
    let config = session.repository.config.clone();
    let (stage, inputs) = inputs(&config, arguments, manifest)?;
    let root = session.repository.root.clone();
    let reporter = session.reporter;

    let bar = reporter.progress(inputs.len() as u64, "reading");
    let prepared: Vec<Result<Candidate>> = inputs
        .par_iter()
        .map(|input| {
            let result = prepare(&root, &config, input);
            bar.inc(1);
            result
        })
        .collect();
    bar.finish_and_clear();
    let mut candidates = Vec::with_capacity(prepared.len());
    let mut first_error = None;
    for result in prepared {
        match result {
            Ok(candidate) => candidates.push(candidate),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        discard(&candidates);
        return Err(error);
    }

    let staged: Vec<&Path> = candidates
        .iter()
        .map(|candidate| candidate.staged.path.as_path())
        .collect();
    if let Err(error) = pool::make_durable(&root, &staged) {
        discard(&candidates);
        return Err(error);
    }
    let recorded = match record(session, &stage, &candidates) {
        Ok(recorded) => recorded,
        Err(error) => {
            discard(&candidates);
            return Err(error);
        }
    };

    // The rows are committed: move the new files into place, drop the copies of the rest.
    // One thread: the renames and directory creations all lock the same few directories,
    // and two threads spend more time waiting on those locks than renaming (measured with
    // 20,000 packages: 4x the system time).
    candidates
        .iter()
        .zip(&recorded.outcomes)
        .filter(|(candidate, outcome)| outcome.status == "added" && candidate.staged.path.exists())
        .try_for_each(|(candidate, outcome)| {
            pool::place(&root, &candidate.staged.path, &outcome.filename)
        })?;
    discard(&candidates);

    let changed: BTreeSet<String> = if recorded.changed {
        BTreeSet::from([stage.clone()])
    } else {
        BTreeSet::new()
    };
    session.publish(&changed)?;
    let added = recorded
        .outcomes
        .iter()
        .filter(|outcome| outcome.status == "added")
        .count();
    reporter.status(format!(
        "added {added} package(s) to the pool, {} already present; suite {stage} {}",
        recorded.outcomes.len() - added,
        if recorded.changed {
            "updated"
        } else {
            "unchanged"
        }
    ));
    for outcome in &recorded.outcomes {
        if outcome.status == "present, not listed here" {
            reporter.status(format!(
                "{} {} is already in the repository but not listed in {stage}: \
                 use `debstage repo promote` to list it there",
                outcome.package, outcome.version
            ));
        }
    }
    reporter.data(
        "",
        &serde_json::json!({ "stage": stage, "packages": recorded.outcomes }),
    )?;
    Ok(())
}

/// Splits the arguments into the stage and the files (or the manifest's files).
fn inputs(
    config: &RepoConfig,
    arguments: &[String],
    manifest: Option<&Path>,
) -> Result<(String, Vec<Input>)> {
    let first_is_stage = arguments
        .first()
        .is_some_and(|first| config.stages.contains(first) && !Path::new(first).exists());
    let (stage, files) = if first_is_stage {
        (arguments[0].clone(), &arguments[1..])
    } else {
        (config.stages[0].clone(), arguments)
    };
    match manifest {
        Some(manifest) => {
            if !files.is_empty() {
                bail!(
                    "repo add --manifest {}: give either a manifest or files, not both \
                     (found {:?}; the stages are {})",
                    manifest.display(),
                    files[0],
                    config.stages.join(", ")
                );
            }
            Ok((stage, manifest_inputs(manifest)?))
        }
        None => {
            if files.is_empty() {
                bail!(
                    "repo add: no files given (repo add [STAGE] FILES... or --manifest BUILD.json)"
                );
            }
            let inputs = files
                .iter()
                .map(|file| Input {
                    path: PathBuf::from(file),
                    expected: None,
                    app: None,
                })
                .collect();
            Ok((stage, inputs))
        }
    }
}

fn manifest_inputs(manifest: &Path) -> Result<Vec<Input>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("{}: cannot be read", manifest.display()))?;
    let parsed: BuildManifest = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a build manifest of `debstage build`",
            manifest.display()
        )
    })?;
    if parsed.packages.is_empty() {
        bail!("{}: lists no packages", manifest.display());
    }
    let directory = manifest.parent().unwrap_or(Path::new("."));
    parsed
        .packages
        .into_iter()
        .map(|package| {
            names::check_relative_path(&package.file).map_err(|reason| {
                anyhow::anyhow!("{}: file {:?} {reason}", manifest.display(), package.file)
            })?;
            if package.version != parsed.debian_version {
                bail!(
                    "{}: package {} has version {} but the build's debian_version is {}",
                    manifest.display(),
                    package.package,
                    package.version,
                    parsed.debian_version
                );
            }
            Ok(Input {
                path: directory.join(&package.file),
                expected: Some(package),
                app: Some(parsed.app.clone()),
            })
        })
        .collect()
}

/// Reads, checks and copies one file.
/// What `debstage build` says of a package through its `Source` field: the payload is
/// named `<source>-<upstream>` (with `~` written `-`), a stage package `<source>-<stage>`.
/// Gives (app, role, stage).
fn infer_from_source(
    source: Option<&str>,
    config: &RepoConfig,
    package: &str,
    upstream: &str,
) -> Option<(String, &'static str, Option<String>)> {
    let source = source?.split_whitespace().next()?;
    let rest = package.strip_prefix(source)?.strip_prefix('-')?;
    if rest == upstream.replace('~', "-") {
        return Some((source.to_string(), "payload", None));
    }
    if config.stages.iter().any(|stage| stage == rest) {
        return Some((source.to_string(), "stage", Some(rest.to_string())));
    }
    None
}

fn prepare(root: &Path, config: &RepoConfig, input: &Input) -> Result<Candidate> {
    let path = &input.path;
    let shown = path.display();
    let mut file = std::fs::File::open(path).with_context(|| format!("{shown}: cannot be read"))?;
    let control =
        read_and_check_from(&mut file).map_err(|error| anyhow::anyhow!("{shown}: {error}"))?;
    let package = control.field("Package").to_string();
    let version = control.field("Version").to_string();
    let architecture = control.field("Architecture").to_string();
    let upstream = Version::parse(&version)
        .map(|parsed| parsed.upstream)
        .unwrap_or_else(|_| version.clone());

    let inferred = infer_from_source(control.control.get("Source"), config, &package, &upstream);
    let role_field = control.control.get("X-Debstage-Role").map(str::to_string);
    let role_field = match (&role_field, &input.expected) {
        // A package without debstage fields takes them from its build manifest (whose
        // size and sha256 it must match, checked below), or from its Source field.
        (None, Some(expected)) => Some(expected.role.clone()),
        (None, None) => inferred.as_ref().map(|found| found.1.to_string()),
        _ => role_field,
    };
    let declared = |field: &str| -> Option<String> {
        control.control.get(field).map(str::to_string).or_else(|| {
            if control.control.get("X-Debstage-Role").is_some() {
                return None;
            }
            match field {
                "X-Debstage-App" => input
                    .app
                    .clone()
                    .or_else(|| inferred.as_ref().map(|found| found.0.clone())),
                "X-Debstage-Stage" => input
                    .expected
                    .as_ref()
                    .and_then(|e| e.stage.clone())
                    .or_else(|| inferred.as_ref().and_then(|found| found.2.clone())),
                _ => None,
            }
        })
    };
    let (app, role, stage) = match role_field.as_deref() {
        None => (package.clone(), Role::Plain, None),
        Some(role) => {
            let app = declared("X-Debstage-App")
                .with_context(|| format!("{shown}: has X-Debstage-Role but no X-Debstage-App"))?;
            names::check_package_name(&app)
                .map_err(|reason| anyhow::anyhow!("{shown}: X-Debstage-App {app:?} {reason}"))?;
            match role {
                "payload" => (app, Role::Payload, None),
                "stage" => {
                    let stage = declared("X-Debstage-Stage").with_context(|| {
                        format!("{shown}: a stage package without X-Debstage-Stage")
                    })?;
                    config.stage_index(&stage).with_context(|| {
                        format!("{shown}: X-Debstage-Stage {stage:?} cannot be added")
                    })?;
                    if package != format!("{app}-{stage}") {
                        bail!("{shown}: the stage package of {app} for {stage} must be named {app}-{stage}, not {package}");
                    }
                    (app, Role::Stage, Some(stage))
                }
                other => {
                    bail!("{shown}: X-Debstage-Role {other:?} is not allowed (payload or stage)")
                }
            }
        }
    };
    if architecture != "all" && !config.architectures.contains(&architecture) {
        bail!(
            "{shown}: Architecture {architecture} is not served by this repository ({}, all)",
            config.architectures.join(", ")
        );
    }
    if let Some(expected) = &input.expected {
        let checks = [
            ("package", expected.package.as_str(), package.as_str()),
            ("version", expected.version.as_str(), version.as_str()),
            (
                "architecture",
                expected.architecture.as_str(),
                architecture.as_str(),
            ),
            ("role", expected.role.as_str(), role.as_str()),
        ];
        for (key, said, found) in checks {
            if said != found {
                bail!("{shown}: the manifest says {key} {said:?} but the package has {found:?}");
            }
        }
        if expected.stage.as_deref() != stage.as_deref() {
            bail!(
                "{shown}: the manifest says stage {:?} but the package has {:?}",
                expected.stage,
                stage
            );
        }
    }
    let file_name = crate::deb::file_name(&package, &version, &architecture);
    let staged = pool::stage(root, &mut file, path, &file_name)?;
    if let Some(expected) = &input.expected {
        let digests = &staged.digests;
        if digests.size != expected.size || !digests.sha256.eq_ignore_ascii_case(&expected.sha256) {
            let _ = std::fs::remove_file(&staged.path);
            bail!(
                "{shown}: does not match the build manifest (manifest: {} bytes, sha256 {}; \
                 file: {} bytes, sha256 {})",
                expected.size,
                expected.sha256,
                digests.size,
                digests.sha256
            );
        }
    }
    Ok(Candidate {
        path: path.clone(),
        control,
        app,
        package,
        version,
        upstream,
        architecture,
        role,
        stage,
        staged,
    })
}

/// Removes the `.incoming` copies that are left.
fn discard(candidates: &[Candidate]) {
    for candidate in candidates {
        let _ = std::fs::remove_file(&candidate.staged.path);
    }
}

struct Recorded {
    outcomes: Vec<Outcome>,
    changed: bool,
}

/// Records the candidates in one transaction.
fn record(session: &mut Session<'_>, stage: &str, candidates: &[Candidate]) -> Result<Recorded> {
    let transaction = session.connection.transaction()?;
    let (time, who) = (now(), who());
    let mut outcomes = Vec::with_capacity(candidates.len());
    let mut changed = false;
    // (app, version) pairs whose pointer moved in this stage, and from what.
    let mut moved: HashMap<String, (Option<String>, String)> = HashMap::new();
    for candidate in candidates {
        let filename = pool::pool_path(
            &candidate.app,
            &crate::deb::file_name(
                &candidate.package,
                &candidate.version,
                &candidate.architecture,
            ),
        );
        let existing = state::find_package(
            &transaction,
            &candidate.package,
            &candidate.version,
            &candidate.architecture,
        )?;
        let (id, status) = match existing {
            Some(existing) if existing.sha256 == candidate.staged.digests.sha256 => {
                (existing.id, "present")
            }
            Some(existing) => {
                return Err(ConflictError {
                    file: candidate.path.clone(),
                    package: candidate.package.clone(),
                    version: candidate.version.clone(),
                    architecture: candidate.architecture.clone(),
                    recorded: existing.sha256,
                    offered: candidate.staged.digests.sha256.clone(),
                }
                .into())
            }
            None => {
                let digests = &candidate.staged.digests;
                let id = state::insert_package(
                    &transaction,
                    &NewPackage {
                        app: &candidate.app,
                        package: &candidate.package,
                        version: &candidate.version,
                        upstream: &candidate.upstream,
                        architecture: &candidate.architecture,
                        role: candidate.role,
                        stage: candidate.stage.as_deref(),
                        filename: &filename,
                        size: digests.size,
                        md5: &digests.md5,
                        sha1: &digests.sha1,
                        sha256: &digests.sha256,
                        control: &candidate.control.text,
                        added: time,
                    },
                )
                .with_context(|| {
                    format!(
                        "{}: {} (another version may map to the same file name)",
                        candidate.path.display(),
                        filename
                    )
                })?;
                (id, "added")
            }
        };
        let points_here = match candidate.role {
            Role::Plain => true,
            Role::Stage => candidate.stage.as_deref() == Some(stage),
            Role::Payload => false,
        };
        let listed_here = candidate.role != Role::Stage || points_here;
        let mut status = status;
        if status == "present" && listed_here {
            let already = state::suites_of(&transaction, id)?
                .iter()
                .any(|s| s == stage);
            if !already {
                status = "present, not listed here";
            }
        } else if listed_here {
            if candidate.role == Role::Stage {
                state::unlist_name(&transaction, stage, &candidate.package)?;
            }
            changed |= state::list(&transaction, stage, id)?;
            if points_here {
                let before = state::current(&transaction, &candidate.app, stage)?;
                if before.as_deref() != Some(candidate.version.as_str()) {
                    state::set_current(&transaction, &candidate.app, stage, &candidate.version)?;
                    moved
                        .entry(candidate.app.clone())
                        .or_insert((before, String::new()))
                        .1 = candidate.version.clone();
                }
            }
        }
        outcomes.push(Outcome {
            file: candidate.path.display().to_string(),
            package: candidate.package.clone(),
            version: candidate.version.clone(),
            architecture: candidate.architecture.clone(),
            filename,
            status,
        });
    }
    let mut apps: Vec<_> = moved.into_iter().collect();
    apps.sort();
    for (app, (from, to)) in apps {
        state::record_history(
            &transaction,
            &HistoryEntry {
                time,
                who: who.clone(),
                action: "add".to_string(),
                app,
                stage: Some(stage.to_string()),
                from,
                to: Some(to),
            },
        )?;
    }
    transaction
        .commit()
        .context("the state database cannot be saved")?;
    Ok(Recorded { outcomes, changed })
}
