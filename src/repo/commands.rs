//! The `debstage repo` commands: each writer takes the lock, changes the state in one
//! transaction, and publishes the suites that changed. Readers take no lock.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rusqlite::Connection;

use crate::cli::{RepoCommand, RepoOptions};
use crate::repo::config::{RepoConfig, SigningConfig};
use crate::repo::gpg::GpgSigner;
use crate::repo::lock::RepoLock;
use crate::repo::publish::{self, IndexedPackage, PublishSettings, SuiteView};
use crate::repo::sign::{SignRelease, Signer};
use crate::repo::state::{self, PackageRecord};
use crate::repo::{add, listing, maintenance, pool, stages};
use crate::report::Reporter;

/// Where a generated signing key is kept: never under `pool/` or `dists/`.
pub const GENERATED_KEY: &str = "private/signing-key.asc";

/// An opened repository: its root and configuration.
#[derive(Debug, Clone)]
pub struct Repository {
    /// The repository directory.
    pub root: PathBuf,
    /// Its configuration.
    pub config: RepoConfig,
}

impl Repository {
    /// Opens the repository at `root` (reads and checks its configuration).
    pub fn open(root: &Path) -> Result<Repository> {
        Ok(Repository {
            root: root.to_path_buf(),
            config: RepoConfig::load(root)?,
        })
    }
}

/// A writer's session: the lock held, the database open, crashed work recovered.
pub struct Session<'a> {
    /// The repository.
    pub repository: Repository,
    /// The state database.
    pub connection: Connection,
    /// How to talk to the user.
    pub reporter: &'a Reporter,
    _lock: RepoLock,
}

impl<'a> Session<'a> {
    /// Takes the lock on the repository at `root` and opens its state.
    pub fn begin(
        root: &Path,
        lock_timeout: Option<Duration>,
        reporter: &'a Reporter,
    ) -> Result<Session<'a>> {
        let repository = Repository::open(root)?;
        let lock = RepoLock::acquire(root, lock_timeout, reporter)?;
        let connection = state::open(root)?;
        let recovered = pool::recover(root, &connection)?;
        if recovered > 0 {
            reporter.status(format!(
                "finished {recovered} pool file(s) left in {} by an interrupted command",
                pool::INCOMING
            ));
        }
        Ok(Session {
            repository,
            connection,
            reporter,
            _lock: lock,
        })
    }

    /// Rewrites the indexes of `suites` from the committed state.
    pub fn publish(&self, suites: &BTreeSet<String>) -> Result<()> {
        publish_suites(&self.repository, &self.connection, suites)
    }
}

/// Runs one `debstage repo` command.
pub fn run(options: RepoOptions, reporter: &Reporter) -> Result<()> {
    let root = options.repo.as_path();
    let timeout = options.lock_timeout;
    match options.command {
        RepoCommand::Init {
            stages,
            origin,
            label,
            architectures,
            key,
            gpg_key,
        } => {
            let request = InitRequest {
                stages,
                origin,
                label,
                architectures,
                key,
                gpg_key,
            };
            init(root, &request, reporter)
        }
        RepoCommand::Add {
            arguments,
            manifest,
        } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            add::run(&mut session, &arguments, manifest.as_deref())
        }
        RepoCommand::Promote { app, version, to } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            stages::promote(&mut session, &app, &version, to.as_deref())
        }
        RepoCommand::Rollback { app, stage, to } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            stages::rollback(&mut session, &app, &stage, to.as_deref())
        }
        RepoCommand::Remove {
            app,
            version,
            stage,
        } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            maintenance::remove(&mut session, &app, &version, stage.as_deref())
        }
        RepoCommand::Gc { keep } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            maintenance::gc(&mut session, keep)
        }
        RepoCommand::Publish => {
            let session = Session::begin(root, timeout, reporter)?;
            let all: BTreeSet<String> = session.repository.config.stages.iter().cloned().collect();
            session.publish(&all)?;
            reporter.status(format!("published {} suite(s)", all.len()));
            Ok(())
        }
        RepoCommand::List { stage } => listing::list(root, stage.as_deref(), reporter),
        RepoCommand::Show { app } => listing::show(root, &app, reporter),
        RepoCommand::History { app } => listing::history(root, app.as_deref(), reporter),
        RepoCommand::Verify => maintenance::verify(root, reporter),
        RepoCommand::ExportKey { binary } => export_key(root, binary, reporter),
        RepoCommand::Sources { stage, url, app } => {
            sources(root, &stage, &url, app.as_deref(), reporter)
        }
        RepoCommand::Serve { addr } => {
            Repository::open(root)?;
            crate::repo::serve::serve(root, &addr, reporter)
        }
    }
}

/// What `repo init` was asked for.
#[derive(Debug, Clone)]
pub struct InitRequest {
    /// Stages in promotion order.
    pub stages: Vec<String>,
    /// Origin field.
    pub origin: String,
    /// Label field (the origin when absent).
    pub label: Option<String>,
    /// Architectures served.
    pub architectures: Vec<String>,
    /// An existing armored secret key.
    pub key: Option<PathBuf>,
    /// A gpg key id (not supported yet).
    pub gpg_key: Option<String>,
}

/// Creates a repository: configuration, state database, pool, signing key, empty suites.
pub fn init(root: &Path, request: &InitRequest, reporter: &Reporter) -> Result<()> {
    // gpg is asked first, so that a key it does not have leaves nothing behind.
    let gpg_signer = request.gpg_key.as_deref().map(GpgSigner::new).transpose()?;
    for existing in [crate::repo::config::FILE_NAME, state::FILE_NAME] {
        if root.join(existing).exists() {
            bail!(
                "{}: already exists; {} is a repository already",
                root.join(existing).display(),
                root.display()
            );
        }
    }
    let key_setting = match (&request.key, &request.gpg_key) {
        (Some(path), _) => Some(
            fs::canonicalize(path)
                .with_context(|| format!("--key {}: cannot be read", path.display()))?,
        ),
        (None, Some(_)) => None,
        (None, None) => Some(PathBuf::from(GENERATED_KEY)),
    };
    let config = RepoConfig {
        origin: request.origin.clone(),
        label: request
            .label
            .clone()
            .unwrap_or_else(|| request.origin.clone()),
        stages: request.stages.clone(),
        architectures: request.architectures.clone(),
        valid_days: None,
        signing: SigningConfig {
            key: key_setting,
            // The fingerprint, not the id given: the same key at every publication.
            gpg_key: gpg_signer.as_ref().map(|gpg| gpg.fingerprint().to_string()),
        },
    };
    config.check().context("repo init: invalid options")?;

    fs::create_dir_all(root).with_context(|| format!("{}: cannot be created", root.display()))?;
    let _lock = RepoLock::acquire(root, None, reporter)?;
    for directory in ["pool/main", pool::INCOMING, "dists"] {
        let path = root.join(directory);
        fs::create_dir_all(&path)
            .with_context(|| format!("{}: cannot be created", path.display()))?;
    }

    let signer: Box<dyn SignRelease> = match (&request.key, &request.gpg_key) {
        (Some(path), _) => Box::new(
            Signer::load(path)
                .with_context(|| format!("--key {}: not a usable signing key", path.display()))?,
        ),
        (None, Some(_)) => match gpg_signer {
            Some(gpg) => Box::new(gpg),
            None => unreachable!("checked before anything was written"),
        },
        (None, None) => {
            let user_id = format!("{} archive signing key", config.origin);
            let signer = Signer::generate(&user_id, SystemTime::now())
                .context("cannot generate a signing key")?;
            let private = root.join("private");
            fs::create_dir_all(&private)
                .and_then(|()| fs::set_permissions(&private, fs::Permissions::from_mode(0o700)))
                .with_context(|| format!("{}: cannot be created", private.display()))?;
            signer.save_secret(&root.join(GENERATED_KEY))?;
            Box::new(signer)
        }
    };
    let public_armored = root.join(format!("{}.asc", config.origin));
    fs::write(&public_armored, signer.public_key_armored())
        .with_context(|| format!("{}: cannot be written", public_armored.display()))?;
    let public_binary = root.join(format!("{}.gpg", config.origin));
    fs::write(&public_binary, signer.public_key_binary())
        .with_context(|| format!("{}: cannot be written", public_binary.display()))?;

    let connection = state::create(root)?;
    config.save(root)?;
    let repository = Repository {
        root: root.to_path_buf(),
        config: config.clone(),
    };
    let all: BTreeSet<String> = config.stages.iter().cloned().collect();
    publish_suites(&repository, &connection, &all)?;
    reporter.status(format!(
        "created the repository {} with the suites {}; clients trust {}",
        root.display(),
        config.stages.join(", "),
        public_binary.display()
    ));
    Ok(())
}

/// Prints the public key of the repository: armored, or the binary keyring that
/// `Signed-By: /etc/apt/keyrings/<origin>.gpg` names.
fn export_key(root: &Path, binary: bool, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let extension = if binary { "gpg" } else { "asc" };
    let path = root.join(format!("{}.{extension}", repository.config.origin));
    let bytes = fs::read(&path).with_context(|| format!("{}: cannot be read", path.display()))?;
    if binary {
        // Binary data bypasses the reporter, whose raw output is text.
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes).and_then(|()| out.flush())?;
    } else {
        reporter.raw(&String::from_utf8_lossy(&bytes))?;
    }
    Ok(())
}

/// Prints the `.sources` file and pin files a server of `stage` needs: pins for
/// `<app>-<stage>`, or for every stage package the suite lists.
fn sources(
    root: &Path,
    stage: &str,
    url: &str,
    app: Option<&str>,
    reporter: &Reporter,
) -> Result<()> {
    let repository = Repository::open(root)?;
    repository.config.stage_index(stage)?;
    let connection = state::open(root)?;
    let stage_packages: Vec<String> = match app {
        Some(app) => {
            if state::packages_of_app(&connection, app)?.is_empty() {
                bail!("{app}: no such application in the repository");
            }
            vec![format!("{app}-{stage}")]
        }
        None => {
            let mut names: Vec<String> = state::suite_packages(&connection, stage)?
                .into_iter()
                .filter(|package| package.role == state::Role::Stage)
                .map(|package| package.package)
                .collect();
            names.dedup();
            names
        }
    };
    let files =
        crate::repo::sources::server_files(url, stage, &repository.config.origin, &stage_packages);
    let documents: Vec<serde_json::Value> = files
        .iter()
        .map(|file| serde_json::json!({"path": file.path, "text": file.text}))
        .collect();
    reporter.data(
        crate::repo::sources::server_files_text(&files),
        &serde_json::json!(documents),
    )?;
    Ok(())
}

/// Rewrites the indexes of `suites` (stage names) from the state in `connection`.
pub fn publish_suites(
    repository: &Repository,
    connection: &Connection,
    suites: &BTreeSet<String>,
) -> Result<()> {
    if suites.is_empty() {
        return Ok(());
    }
    let mut views = Vec::new();
    for suite in repository
        .config
        .stages
        .iter()
        .filter(|stage| suites.contains(*stage))
    {
        let packages = state::suite_packages(connection, suite)?
            .into_iter()
            .map(indexed)
            .collect();
        views.push(SuiteView {
            name: suite.clone(),
            packages,
        });
    }
    let settings = PublishSettings {
        origin: repository.config.origin.clone(),
        label: repository.config.label.clone(),
        architectures: repository.config.architectures.clone(),
        date: publish_date(),
        valid_for: repository
            .config
            .valid_days
            .map(|days| Duration::from_secs(days * 86_400)),
    };
    let signer: Box<dyn SignRelease> = match (
        repository.config.key_path(&repository.root),
        &repository.config.signing.gpg_key,
    ) {
        (Some(key), _) => Box::new(
            Signer::load(&key)
                .with_context(|| format!("{}: the signing key cannot be loaded", key.display()))?,
        ),
        (None, Some(id)) => Box::new(GpgSigner::new(id)?),
        (None, None) => bail!("the repository configuration names no signing key"),
    };
    let names: Vec<&str> = views.iter().map(|view| view.name.as_str()).collect();
    publish::publish(&repository.root, &settings, &views, signer.as_ref()).with_context(|| {
        format!(
            "the state is saved, but the suites {} were not published; \
             run `debstage repo publish` once the cause is fixed",
            names.join(", ")
        )
    })
}

fn indexed(record: PackageRecord) -> IndexedPackage {
    IndexedPackage {
        control: record.control,
        architecture: record.architecture,
        filename: record.filename,
        size: record.size,
        md5: record.md5,
        sha1: record.sha1,
        sha256: record.sha256,
    }
}

/// The Date of Release files: SOURCE_DATE_EPOCH when set (reproducible), else now.
fn publish_date() -> SystemTime {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or_else(SystemTime::now, |seconds| {
            UNIX_EPOCH + Duration::from_secs(seconds)
        })
}

/// Who runs the command, for the history: `$SUDO_USER`, else `$USER`, else the uid.
pub fn who() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| format!("uid {}", unsafe_free_uid()))
}

fn unsafe_free_uid() -> u32 {
    fs::metadata("/proc/self")
        .map(|metadata| std::os::unix::fs::MetadataExt::uid(&metadata))
        .unwrap_or(u32::MAX)
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Formats Unix seconds as RFC 3339 UTC (`2026-11-23T13:21:00Z`).
pub fn format_time(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|moment| {
            moment
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| seconds.to_string())
}
