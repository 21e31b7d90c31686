//! `repo init`: the configuration, the state database, the pool, the signing key and the
//! public key files, and empty signed suites.

use std::collections::BTreeSet;
use std::fs;
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
