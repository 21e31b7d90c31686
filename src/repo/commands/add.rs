//! `repo add [STAGE] FILES... | --manifest BUILD.json`: read, check and copy packages
//! into the pool, record them, and list them in a stage's suite.
//!
//! Four phases, so that a refusal leaves the repository exactly as it was and a slow
//! check never blocks another writer:
//! 1. before the lock: every file is read and checked, every member unpacked to its end
//!    within `[limits]` (in parallel);
//! 2. under the lock: each file is copied into `pool/.incoming` while it is hashed, and
//!    must not have changed since it was checked;
//! 3. one transaction records the packages and their listings, and that the suite must be
//!    published; a package already present with other bytes aborts it;
//! 4. after the commit, the copies move to their pool paths and the suite is published.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use rusqlite::Connection;

use crate::deb::read::{read_and_check_from, PackageControl, UnpackLimits};
use crate::debian::names;
use crate::debian::version::Version;
use crate::naming::build_manifest::{BuildManifest, BuiltPackage};
use crate::naming::package_id::PackageId;
use crate::naming::{rules, AppNames, Distribution};
use crate::repo::clock::now;
use crate::repo::config::RepoConfig;
use crate::repo::layers;
use crate::repo::pool::{self, StagedFile};
use crate::repo::session::{who, Repository, Session};
use crate::repo::state::{self, Action, HistoryEntry, NewPackage, Role};
use crate::repo::suites;
use crate::report::Reporter;

/// The same package name, version and architecture is in the repository with other bytes,
/// or was, and was removed (its name and version stay reserved for its bytes).
#[derive(Debug, thiserror::Error)]
#[error(
    "{file}: {id} {} with other bytes (recorded sha256 \
     {recorded}, this file {offered}); a version is immutable: build a new revision \
     instead{}",
    if *.removed { "was in the repository (removed since)" } else { "is already in the repository" },
    if *.removed {
        ", or let removed versions come back with other bytes with `debstage repo gc --forget`"
    } else {
        ""
    }
)]
pub(crate) struct ConflictError {
    /// The file offered.
    pub(crate) file: PathBuf,
    /// The package.
    pub(crate) id: PackageId,
    /// The recorded SHA256.
    pub(crate) recorded: String,
    /// The offered file's SHA256.
    pub(crate) offered: String,
    /// Whether the recorded bytes are those of a removed package.
    pub(crate) removed: bool,
}

/// One file to add, with what its manifest says about it.
struct Input {
    path: PathBuf,
    expected: Option<BuiltPackage>,
    /// The manifest's application.
    app: Option<String>,
    /// Where the build came from, as its manifest says.
    provenance: Option<state::ReleaseProvenance>,
}

/// A file read and checked, not yet copied.
struct Checked {
    input: Input,
    control: PackageControl,
    app: String,
    id: PackageId,
    upstream: String,
    role: Role,
    stage: Option<String>,
    /// What the file was when checked: (size, modification time).
    seen: (u64, std::time::SystemTime),
}

/// A file read, checked and copied into `.incoming`.
struct Candidate {
    checked: Checked,
    staged: StagedFile,
}

/// What `repo add` did with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
enum AddStatus {
    /// New in the pool.
    #[serde(rename = "added")]
    Added,
    /// The same bytes were in the pool already.
    #[serde(rename = "present")]
    Present,
    /// The same bytes were in the pool, listed in other stages only: `repo promote`
    /// lists them here, not `repo add`.
    #[serde(rename = "present_not_listed_here")]
    PresentNotListedHere,
}

/// What happened to one file.
#[derive(Debug, Clone, serde::Serialize)]
struct Outcome {
    file: String,
    #[serde(flatten)]
    id: PackageId,
    filename: String,
    /// The suite it was placed in: the stage's, for its distribution.
    suite: String,
    /// The distribution it was built for (its version's suffix); `None`: on the host.
    distribution: Option<String>,
    status: AddStatus,
}

/// Runs `repo add`: checks the packages, then takes the lock to record them.
pub(crate) fn run(
    root: &Path,
    lock_timeout: Option<std::time::Duration>,
    reporter: &Reporter,
    arguments: &[String],
    manifest: Option<&Path>,
    skip: bool,
) -> Result<()> {
    keep_large_buffers_off_the_heap();
    let config = Repository::open(root)?.config;
    let (stage, inputs) = inputs(&config, arguments, manifest)?;
    let skipping = first_stage_or_skip(&config, &stage, skip)?;
    let limits = config.limits.unpack_limits()?;
    let checked = check_all(&config, inputs, limits, reporter)?;
    crate::fault::point("add-checked");

    let mut session = Session::begin(root, lock_timeout, reporter)?;
    let candidates = stage_all(&session.repository.root, checked, reporter)?;
    crate::fault::point("add-staged");
    let recorded = match record(&mut session, &stage, skipping, &candidates) {
        Ok(recorded) => recorded,
        Err(error) => {
            discard(&candidates);
            return Err(error);
        }
    };
    crate::fault::point("add-committed");
    place_all(&session.repository.root, &candidates, &recorded)?;
    crate::fault::point("add-placed");
    session.publish_pending()?;
    report(reporter, &stage, &recorded)
}

/// Has glibc serve buffers of 64 KiB and more by `mmap`, returned whole when freed.
///
/// Each check allocates read buffers and a decompressor's window (16 to about 100 KiB)
/// and keeps a few small strings; with glibc's default, which raises the `mmap`
/// threshold to the largest block freed so far, those buffers come from the heap, the
/// survivors split the freed space, and the next file's buffers no longer fit it. With
/// 20,000 packages that grew the heap by about 7 KiB per package (143 MB after the
/// checks, 65 MB with a fixed 64 KiB threshold; bench/NOTES.md). A fixed threshold turns
/// the adjustment off. No allocator crate is needed for one setting; other C libraries
/// keep their own policy.
fn keep_large_buffers_off_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tuning value of glibc's allocator; called before
    // the threads that check packages start, and a refusal (0) leaves the default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

/// Phase 1: reads and checks every file (in parallel); the first refusal is the error.
fn check_all(
    config: &RepoConfig,
    inputs: Vec<Input>,
    limits: UnpackLimits,
    reporter: &Reporter,
) -> Result<Vec<Checked>> {
    let bar = reporter.progress(inputs.len() as u64, "checking");
    let checked: Vec<Result<Checked>> = inputs
        .into_par_iter()
        .map(|input| {
            let result = check(config, input, limits);
            bar.inc(1);
            result
        })
        .collect();
    bar.finish_and_clear();
    checked.into_iter().collect()
}

/// Phase 2: copies every checked file into `.incoming` (in parallel) and makes the
/// copies durable; on failure nothing is left there.
fn stage_all(root: &Path, checked: Vec<Checked>, reporter: &Reporter) -> Result<Vec<Candidate>> {
    let bar = reporter.progress(checked.len() as u64, "copying");
    let staged: Vec<Result<Candidate>> = checked
        .into_par_iter()
        .map(|checked| {
            let result = stage_checked(root, checked);
            bar.inc(1);
            result
        })
        .collect();
    bar.finish_and_clear();
    let mut candidates = Vec::with_capacity(staged.len());
    let mut first_error = None;
    for result in staged {
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
    let paths: Vec<&Path> = candidates
        .iter()
        .map(|candidate| candidate.staged.path.as_path())
        .collect();
    if let Err(error) = pool::make_durable(root, &paths) {
        discard(&candidates);
        return Err(error);
    }
    Ok(candidates)
}

/// Phase 4: the rows are committed; moves the new files into place and drops the copies
/// of the rest. One thread: the renames and directory creations all lock the same few
/// directories, and two threads spend more time waiting on those locks than renaming
/// (measured with 20,000 packages: 4x the system time).
fn place_all(root: &Path, candidates: &[Candidate], recorded: &Recorded) -> Result<()> {
    candidates
        .iter()
        .zip(&recorded.outcomes)
        .filter(|(candidate, outcome)| {
            outcome.status == AddStatus::Added && candidate.staged.path.exists()
        })
        .try_for_each(|(candidate, outcome)| {
            pool::place(root, &candidate.staged.path, &outcome.filename)
        })?;
    discard(candidates);
    Ok(())
}

/// Tells what was done.
fn report(reporter: &Reporter, stage: &str, recorded: &Recorded) -> Result<()> {
    let added = recorded
        .outcomes
        .iter()
        .filter(|outcome| outcome.status == AddStatus::Added)
        .count();
    let mut suites: Vec<&str> = Vec::new();
    for outcome in &recorded.outcomes {
        if !suites.contains(&outcome.suite.as_str()) {
            suites.push(&outcome.suite);
        }
    }
    reporter.status(format!(
        "added {added} package(s) to the pool, {} already present; suite {} {}",
        recorded.outcomes.len() - added,
        suites.join(", "),
        if recorded.changed {
            "updated"
        } else {
            "unchanged"
        }
    ));
    for outcome in &recorded.outcomes {
        if outcome.status == AddStatus::PresentNotListedHere {
            reporter.status(format!(
                "{} {} is already in the repository but not listed in {}: \
                 use `debstage repo promote` to list it there",
                outcome.id.package, outcome.id.version, outcome.suite
            ));
        }
    }
    reporter.data(
        "",
        &serde_json::json!({ "stage": stage, "changed": recorded.changed, "packages": recorded.outcomes }),
    )?;
    Ok(())
}

/// Whether an add into `stage` skips stages: an add into any stage but the first puts a
/// build there that no earlier stage has seen, so it takes `--skip` (and the history
/// records it as `add-skip`).
fn first_stage_or_skip(config: &RepoConfig, stage: &str, skip: bool) -> Result<bool> {
    let first = &config.stages[0];
    if stage == first {
        return Ok(false);
    }
    if !skip {
        let before: Vec<&str> = config
            .stages
            .iter()
            .take_while(|earlier| *earlier != stage)
            .map(String::as_str)
            .collect();
        bail!(
            "repo add {stage}: packages enter the repository in the first stage, {first}; an \
             add to {stage} would skip {}. Add to {first} and promote (`debstage repo promote \
             APP VERSION {stage}`), or pass --skip to add to {stage} anyway (the history \
             records it as add-skip)",
            before.join(" and ")
        );
    }
    Ok(true)
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
    // A first word that is neither a file nor a stage, followed by more words or given
    // with a manifest, is a stage misspelt: say so rather than that it cannot be read.
    if let Some(first) = arguments.first().filter(|_| !first_is_stage) {
        let looks_like_stage = !Path::new(first).exists()
            && !first.contains('/')
            && !first.ends_with(".deb")
            && (arguments.len() > 1 || manifest.is_some());
        if looks_like_stage {
            bail!(
                "repo add {first}: no such stage (the stages are {}) and no such file",
                config.stages.join(", ")
            );
        }
    }
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
                    provenance: None,
                })
                .collect();
            Ok((stage, inputs))
        }
    }
}

fn manifest_inputs(manifest: &Path) -> Result<Vec<Input>> {
    let text = fs_err::read_to_string(manifest)?;
    let parsed: BuildManifest = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a build manifest of `debstage build`",
            manifest.display()
        )
    })?;
    if parsed.packages.is_empty() {
        bail!("{}: lists no packages", manifest.display());
    }
    check_target(manifest, &parsed)?;
    let directory = manifest.parent().unwrap_or(Path::new("."));
    let provenance = parsed
        .provenance
        .as_ref()
        .map(|provenance| state::ReleaseProvenance {
            commit: provenance.git_commit.clone(),
            dirty: provenance.git_dirty,
            source_date: i64::try_from(provenance.source_date).unwrap_or(i64::MAX),
            branch: provenance.git_branch.clone(),
            build_host: provenance.build_host.clone(),
            debstage_version: provenance.debstage_version.clone(),
            target: parsed.target.clone(),
        });
    parsed
        .packages
        .into_iter()
        .map(|package| {
            rules::check_relative_path(&package.file).map_err(|reason| {
                anyhow::anyhow!("{}: file {:?} {reason}", manifest.display(), package.file)
            })?;
            // A layer has a version of its own (`1`, with the build's distribution suffix).
            let expected_version = if package.role == Role::Layer {
                crate::naming::layer_version(suites::distribution_of(&parsed.debian_version))
            } else {
                parsed.debian_version.clone()
            };
            if package.id.version != expected_version {
                bail!(
                    "{}: package {} has version {} but the build's debian_version is {}{}",
                    manifest.display(),
                    package.id.package,
                    package.id.version,
                    parsed.debian_version,
                    if package.role == Role::Layer {
                        format!(" (a layer's version is {expected_version})")
                    } else {
                        String::new()
                    }
                );
            }
            Ok(Input {
                path: directory.join(&package.file),
                expected: Some(package),
                app: Some(parsed.app.clone()),
                provenance: provenance.clone(),
            })
        })
        .collect()
}

/// Checks that the build manifest's `target` is the distribution its versions carry
/// (`bookworm` and `1.0-1+deb12`; no target and no suffix for a build on the host): the
/// suffix places each package, so a manifest that disagrees with it is refused.
fn check_target(manifest: &Path, parsed: &BuildManifest) -> Result<()> {
    let target = match &parsed.target {
        Some(codename) => Some(Distribution::by_codename(codename).map_err(|error| {
            anyhow::anyhow!("{}: target {codename:?}: {error}", manifest.display())
        })?),
        None => None,
    };
    let carried = suites::distribution_of(&parsed.debian_version);
    if target != carried {
        let said = target.map_or_else(
            || "no target (a build on the host)".to_string(),
            |target| format!("target {:?}", target.codename()),
        );
        let found = carried.map_or_else(
            || "no distribution suffix".to_string(),
            |carried| format!("the suffix {} of {carried}", carried.version_suffix()),
        );
        bail!(
            "{}: the manifest says {said} but its debian_version {} carries {found}; \
             the target must be the distribution the versions are built for",
            manifest.display(),
            parsed.debian_version
        );
    }
    Ok(())
}

/// What a package is: its application, role and stage. A package in a build manifest is
/// what the manifest says, checked against the naming contract; a package given alone is
/// identified through its `Source` field (every package `debstage build` writes carries
/// `Source: <app>`) and the contract's names; any other package is plain.
fn identify(
    shown: &str,
    config: &RepoConfig,
    input: &Input,
    control: &PackageControl,
    upstream: &str,
) -> Result<(String, Role, Option<String>)> {
    let package = control.field("Package");
    let Some(expected) = &input.expected else {
        let source = control
            .control
            .get("Source")
            .and_then(|source| source.split_whitespace().next());
        let found = source.and_then(|source| {
            AppNames::new(source)
                .role_of(package, upstream, &config.stages)
                .map(|(role, stage)| (source.to_string(), role, stage))
        });
        return Ok(found.unwrap_or_else(|| (package.to_string(), Role::Plain, None)));
    };
    let app = input.app.clone().unwrap_or_default();
    names::check_package_name(&app)
        .map_err(|reason| anyhow::anyhow!("{shown}: the manifest's app {app:?} {reason}"))?;
    if let Some(stage) = &expected.stage {
        config
            .stage_index(stage)
            .with_context(|| format!("{shown}: the manifest's stage {stage:?} cannot be added"))?;
    }
    let names = AppNames::new(&app);
    let said = (expected.role, expected.stage.clone());
    if names.role_of(package, upstream, &config.stages) != Some(said.clone()) {
        let named = match said {
            (Role::Stage, Some(stage)) => names.stage_package(&stage),
            // The package name does not depend on the revision.
            (Role::Dbgsym, _) => names.release(upstream, "1").dbgsym_package(),
            (Role::Layer, _) => names.layer_package("<key>"),
            _ => names.payload_package(upstream),
        };
        bail!(
            "{shown}: the manifest says this is the {} of {app}, which must be named \
             {named}, not {package}",
            match expected.role {
                Role::Stage => "stage package",
                Role::Dbgsym => "debug symbols package",
                Role::Layer => "layer package",
                _ => "payload",
            }
        );
    }
    Ok((app, said.0, said.1))
}

/// Reads and checks one file: its members unpacked to their end within `limits`, its
/// control fields, what it is (application, role, stage), and what its manifest says.
fn check(config: &RepoConfig, input: Input, limits: UnpackLimits) -> Result<Checked> {
    let path = &input.path;
    let shown = path.display();
    let mut file = std::fs::File::open(path).with_context(|| format!("{shown}: cannot be read"))?;
    let control = read_and_check_from(&mut file, limits).map_err(|error| match error {
        crate::deb::read::ReadError::OverLimit { .. } => anyhow::anyhow!(
            "{shown}: {error}; raise [limits] in {} if the package is genuine",
            crate::repo::config::FILE_NAME
        ),
        _ => anyhow::anyhow!("{shown}: {error}"),
    })?;
    let seen = seen(&file).with_context(|| format!("{shown}: cannot be read"))?;
    let package = control.field("Package").to_string();
    let version = control.field("Version").to_string();
    let architecture = control.field("Architecture").to_string();
    let upstream = Version::parse(&version)
        .map(|parsed| parsed.upstream)
        .unwrap_or_else(|_| version.clone());
    let (app, role, stage) = identify(&shown.to_string(), config, &input, &control, &upstream)?;
    let keyring = crate::repo::keyring::package_name(config)?;
    if package == keyring || app == keyring {
        bail!(
            "{shown}: {keyring} is the name of the repository's keyring package, which \
             debstage writes itself from the repository's keys (`debstage repo key`); give \
             the package{} another name",
            if app == keyring && package != keyring {
                "'s application"
            } else {
                ""
            }
        );
    }
    if architecture != "all" && !config.architectures.contains(&architecture) {
        bail!(
            "{shown}: Architecture {architecture} is not served by this repository ({}, all)",
            config.architectures.join(", ")
        );
    }
    if let Some(expected) = &input.expected {
        let checks = [
            ("package", expected.id.package.as_str(), package.as_str()),
            ("version", expected.id.version.as_str(), version.as_str()),
            (
                "architecture",
                expected.id.architecture.as_str(),
                architecture.as_str(),
            ),
        ];
        for (key, said, found) in checks {
            if said != found {
                bail!("{shown}: the manifest says {key} {said:?} but the package has {found:?}");
            }
        }
    }
    Ok(Checked {
        input,
        control,
        app,
        id: PackageId {
            package,
            version,
            architecture,
        },
        upstream,
        role,
        stage,
        seen,
    })
}

/// A file's size and modification time, to tell that it changed after its check.
fn seen(file: &std::fs::File) -> std::io::Result<(u64, std::time::SystemTime)> {
    let metadata = file.metadata()?;
    Ok((metadata.len(), metadata.modified()?))
}

/// Copies a checked file into `.incoming`, hashing it; the file must be what was
/// checked (same size, time and control paragraph) and what its manifest says.
fn stage_checked(root: &Path, checked: Checked) -> Result<Candidate> {
    let path = &checked.input.path;
    let shown = path.display();
    let mut file = std::fs::File::open(path).with_context(|| format!("{shown}: cannot be read"))?;
    let file_name = checked.id.file_name();
    let staged = pool::stage(root, &mut file, path, &file_name)?;
    let unchanged =
        seen(&file).is_ok_and(|now| now == checked.seen) && staged.digests.size == checked.seen.0;
    if !unchanged {
        let _ = std::fs::remove_file(&staged.path);
        bail!("{shown}: changed while it was being added; add it again");
    }
    if let Some(expected) = &checked.input.expected {
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
    Ok(Candidate { checked, staged })
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

/// The pointers that moved in the stage: per application and distribution, (from, to).
type Moved = HashMap<(String, Option<String>), (Option<String>, String)>;

/// Records the candidates in one transaction, with the publication the stage now owes.
fn record(
    session: &mut Session<'_>,
    stage: &str,
    skipping: bool,
    candidates: &[Candidate],
) -> Result<Recorded> {
    let transaction = session.connection.transaction()?;
    let time = now();
    let mut outcomes = Vec::with_capacity(candidates.len());
    let mut changed = false;
    let mut moved = Moved::new();
    let mut changed_suites = BTreeSet::new();
    let mut distributions = BTreeSet::new();
    for candidate in candidates {
        let distribution = suites::distribution_of(&candidate.checked.id.version);
        let suite = suites::suite(&session.repository.config, distribution, stage)?;
        let (outcome, listed) = record_one(&transaction, &suite, candidate, time, &mut moved)?;
        if listed {
            changed_suites.insert(suite.name());
        }
        if let Some(distribution) = distribution {
            distributions.insert(distribution.codename());
        }
        changed |= listed;
        outcomes.push(outcome);
    }
    // A suite never lists a release without its layer: the layer came in this add, or
    // an earlier one left it in the pool.
    for candidate in candidates {
        let checked = &candidate.checked;
        if checked.role != Role::Payload {
            continue;
        }
        let distribution = suites::distribution_of(&checked.id.version);
        let suite = suites::suite(&session.repository.config, distribution, stage)?.name();
        let Some(payload) = state::find_package(
            &transaction,
            &checked.id.package,
            &checked.id.version,
            &checked.id.architecture,
        )?
        else {
            continue;
        };
        if layers::list_layers_of(&transaction, &suite, &payload)? {
            changed = true;
            changed_suites.insert(suite);
        }
    }
    let action = if skipping {
        Action::AddSkipping
    } else {
        Action::Add
    };
    record_moves(&transaction, stage, action, time, moved)?;
    for suite in &changed_suites {
        state::owe_publication(&transaction, suite)?;
    }
    // A distribution's first package: all its stages' suites are published (empty ones
    // too), so that a server of any stage finds its suite from the start.
    for codename in distributions {
        let distribution = Distribution::by_codename(codename).ok();
        for stage in &session.repository.config.stages {
            let suite = crate::naming::distribution::suite_of(distribution, stage);
            if state::generations(&transaction, &suite)?.is_empty() {
                state::owe_publication(&transaction, &suite)?;
            }
        }
    }
    transaction
        .commit()
        .context("the state database cannot be saved")?;
    Ok(Recorded { outcomes, changed })
}

/// Records one package (or finds it with the same bytes) and lists it in the stage;
/// gives its outcome and whether the stage's listing changed.
fn record_one(
    transaction: &Connection,
    suite: &suites::Suite,
    candidate: &Candidate,
    time: i64,
    moved: &mut Moved,
) -> Result<(Outcome, bool)> {
    let filename = pool::pool_path(
        &candidate.checked.app,
        &crate::naming::deb_file_name(
            &candidate.checked.id.package,
            &candidate.checked.id.version,
            &candidate.checked.id.architecture,
        ),
    );
    let existing = state::find_package(
        transaction,
        &candidate.checked.id.package,
        &candidate.checked.id.version,
        &candidate.checked.id.architecture,
    )?;
    let (id, mut status) = match existing {
        Some(existing) if existing.digests.sha256 == candidate.staged.digests.sha256 => {
            (existing.id, AddStatus::Present)
        }
        Some(existing) => {
            return Err(ConflictError {
                file: candidate.checked.input.path.clone(),
                id: candidate.checked.id.clone(),
                recorded: existing.digests.sha256,
                offered: candidate.staged.digests.sha256.clone(),
                removed: false,
            }
            .into())
        }
        None => {
            let reserved = state::reserved_sha256(
                transaction,
                &candidate.checked.id.package,
                &candidate.checked.id.version,
                &candidate.checked.id.architecture,
            )?;
            if let Some(recorded) =
                reserved.filter(|recorded| *recorded != candidate.staged.digests.sha256)
            {
                return Err(ConflictError {
                    file: candidate.checked.input.path.clone(),
                    id: candidate.checked.id.clone(),
                    recorded,
                    offered: candidate.staged.digests.sha256.clone(),
                    removed: true,
                }
                .into());
            }
            (
                insert(transaction, candidate, &filename, time)?,
                AddStatus::Added,
            )
        }
    };
    if let Some(provenance) = &candidate.checked.input.provenance {
        state::record_provenance(
            transaction,
            &candidate.checked.app,
            &candidate.checked.id.version,
            provenance,
        )?;
    }
    let stage = suite.stage.as_str();
    let suite_name = suite.name();
    let points_here = match candidate.checked.role {
        Role::Plain => true,
        Role::Stage => candidate.checked.stage.as_deref() == Some(stage),
        Role::Payload | Role::Dbgsym | Role::Layer => false,
    };
    let listed_here = candidate.checked.role != Role::Stage || points_here;
    let mut changed = false;
    if status == AddStatus::Present && listed_here {
        let already = state::suites_of(transaction, id)?.contains(&suite_name);
        if !already {
            status = AddStatus::PresentNotListedHere;
        }
    } else if listed_here {
        if candidate.checked.role == Role::Stage {
            state::unlist_name(transaction, &suite_name, &candidate.checked.id.package)?;
        }
        changed = state::list(transaction, &suite_name, id)?;
        if points_here {
            let before = state::current(transaction, &candidate.checked.app, &suite_name)?;
            if before.as_deref() != Some(candidate.checked.id.version.as_str()) {
                state::set_current(
                    transaction,
                    &candidate.checked.app,
                    &suite_name,
                    &candidate.checked.id.version,
                )?;
                moved
                    .entry((candidate.checked.app.clone(), suite.codename()))
                    .or_insert((before, String::new()))
                    .1 = candidate.checked.id.version.clone();
            }
        }
    }
    let outcome = Outcome {
        file: candidate.checked.input.path.display().to_string(),
        id: candidate.checked.id.clone(),
        filename,
        suite: suite_name,
        distribution: suite.codename(),
        status,
    };
    Ok((outcome, changed))
}

/// Inserts the row of a new package; returns its id.
fn insert(
    transaction: &Connection,
    candidate: &Candidate,
    filename: &str,
    time: i64,
) -> Result<i64> {
    let digests = &candidate.staged.digests;
    state::insert_package(
        transaction,
        &NewPackage {
            app: &candidate.checked.app,
            identity: &candidate.checked.id,
            upstream: &candidate.checked.upstream,
            role: candidate.checked.role,
            stage: candidate.checked.stage.as_deref(),
            filename,
            digests,
            control: &candidate.checked.control.text,
            added: time,
        },
    )
    .with_context(|| {
        format!(
            "{}: {} (another version may map to the same file name)",
            candidate.checked.input.path.display(),
            filename
        )
    })
}

/// One line of history per application whose pointer in the stage moved.
fn record_moves(
    transaction: &Connection,
    stage: &str,
    action: Action,
    time: i64,
    moved: Moved,
) -> Result<()> {
    let who = who();
    let mut apps: Vec<_> = moved.into_iter().collect();
    apps.sort();
    for ((app, distribution), (from, to)) in apps {
        state::record_history(
            transaction,
            &HistoryEntry {
                time,
                who: who.clone(),
                action,
                app,
                stage: Some(stage.to_string()),
                distribution,
                from,
                to: Some(to),
            },
        )?;
    }
    Ok(())
}
