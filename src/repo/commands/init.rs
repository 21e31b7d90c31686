//! `repo init`: the configuration, the state database, the pool, the signing key and the
//! public key files, and empty signed suites.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::repo::config::{RepoConfig, SigningConfig, GENERATED_KEY};
use crate::repo::lock::RepoLock;
use crate::repo::sign::gpg::GpgSigner;
use crate::repo::sign::{SignRelease, Signer};
use crate::repo::{pool, publish, state};
use crate::report::Reporter;

/// What `repo init` was asked for.
#[derive(Debug, Clone)]
pub(crate) struct InitRequest {
    /// Stages in promotion order.
    pub(crate) stages: Vec<String>,
    /// Origin field.
    pub(crate) origin: String,
    /// Label field (the origin when absent).
    pub(crate) label: Option<String>,
    /// Architectures served.
    pub(crate) architectures: Vec<String>,
    /// An existing armored secret key.
    pub(crate) key: Option<PathBuf>,
    /// A key in the user's gpg keyring, by id or fingerprint.
    pub(crate) gpg_key: Option<String>,
}

/// Creates a repository: configuration, state database, pool, signing key, empty suites.
pub(crate) fn run(root: &Path, request: &InitRequest, reporter: &Reporter) -> Result<()> {
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
    // A key given is copied under private/, so the repository owns it with the mode it
    // needs, wherever the original lies.
    let key_setting = match &request.gpg_key {
        Some(_) if request.key.is_none() => None,
        _ => Some(PathBuf::from(GENERATED_KEY)),
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
        retention: Default::default(),
        limits: Default::default(),
        publish: Default::default(),
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
        (Some(path), _) => {
            let signer = Signer::load(path)
                .with_context(|| format!("--key {}: not a usable signing key", path.display()))?;
            copy_key(root, path, reporter)?;
            Box::new(signer)
        }
        (None, Some(_)) => match gpg_signer {
            Some(gpg) => Box::new(gpg),
            None => unreachable!("checked before anything was written"),
        },
        (None, None) => {
            let user_id = format!("{} archive signing key", config.origin);
            let signer = Signer::generate(&user_id, SystemTime::now())
                .context("cannot generate a signing key")?;
            create_private(root)?;
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
    for stage in &config.stages {
        state::owe_publication(&connection, stage)?;
    }
    let all: BTreeSet<String> = config.stages.iter().cloned().collect();
    publish::publish_suites(root, &config, &connection, &all, reporter)?;
    reporter.status(format!(
        "created the repository {} with the suites {}; clients trust {}",
        root.display(),
        config.stages.join(", "),
        public_binary.display()
    ));
    Ok(())
}

/// Creates `private/` with mode 0700.
fn create_private(root: &Path) -> Result<()> {
    let private = root.join("private");
    fs::create_dir_all(&private)
        .and_then(|()| fs::set_permissions(&private, fs::Permissions::from_mode(0o700)))
        .with_context(|| format!("{}: cannot be created", private.display()))
}

/// Copies the key file `source` to `private/` with mode 0600; warns when the original
/// can be read by group or others.
fn copy_key(root: &Path, source: &Path, reporter: &Reporter) -> Result<()> {
    let mode = fs::metadata(source)
        .with_context(|| format!("--key {}: cannot be read", source.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        reporter.warn(format!(
            "--key {}: the secret key can be read by others (mode {:04o}); the repository \
             keeps its own copy with mode 0600 in private/: delete or protect the original",
            source.display(),
            mode & 0o7777
        ));
    }
    create_private(root)?;
    let bytes =
        fs::read(source).with_context(|| format!("--key {}: cannot be read", source.display()))?;
    let target = root.join(GENERATED_KEY);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .with_context(|| format!("{}: cannot be created", target.display()))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("{}: cannot be written", target.display()))?;
    // The umask may have narrowed the mode, never widened it; set it all the same.
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("{}: cannot set its mode", target.display()))
}
