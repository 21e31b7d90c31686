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

use crate::repo::config::{KeyRecord, KeyState, RepoConfig, SigningConfig, GENERATED_KEY};
use crate::repo::lock::RepoLock;
use crate::repo::sign::gpg::GpgSigner;
use crate::repo::sign::keys::write_public_keys;
use crate::repo::sign::{KeySet, Signer};
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
    /// How long a generated key is valid (`None`: for ever).
    pub(crate) expires: Option<std::time::Duration>,
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
    let mut config = RepoConfig {
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
        // Made whole below, once the key is known.
        signing: SigningConfig {
            key: Some(PathBuf::from(GENERATED_KEY)),
            ..Default::default()
        },
    };
    config.check().context("repo init: invalid options")?;

    fs_err::create_dir_all(root)?;
    let _lock = RepoLock::acquire(root, None, reporter)?;
    for directory in ["pool/main", pool::INCOMING, "dists"] {
        let path = root.join(directory);
        fs_err::create_dir_all(&path)?;
    }

    // A key given is copied under private/, so the repository owns it with the mode it
    // needs, wherever the original lies; a gpg key is named by its fingerprint, not the
    // id given, so the same key signs at every publication.
    let records = match (&request.key, gpg_signer) {
        (Some(path), _) => {
            let signers = Signer::load_all(path)
                .with_context(|| format!("--key {}: not a usable signing key", path.display()))?;
            if let [signer] = signers.as_slice() {
                copy_key(root, path, reporter)?;
                vec![file_record(
                    signer.fingerprint(),
                    PathBuf::from(GENERATED_KEY),
                )]
            } else {
                // Several keys (`repo key export --secret` of a repository that signs
                // with more than one): each gets its file, as `repo key add` gives it.
                warn_if_readable(path, reporter)?;
                create_private(root)?;
                let mut records = Vec::new();
                for signer in &signers {
                    let file = crate::repo::sign::keys::key_file_of(&signer.fingerprint());
                    create_keys_directory(root)?;
                    signer.save_secret(&root.join(&file))?;
                    records.push(file_record(signer.fingerprint(), file));
                }
                records
            }
        }
        (None, Some(gpg)) => vec![KeyRecord {
            fingerprint: gpg.fingerprint().to_string(),
            file: None,
            gpg: true,
            state: KeyState::Signing,
        }],
        (None, None) => {
            let signer = generate_key(&config.origin, request.expires)?;
            create_private(root)?;
            signer.save_secret(&root.join(GENERATED_KEY))?;
            vec![file_record(
                signer.fingerprint(),
                PathBuf::from(GENERATED_KEY),
            )]
        }
    };
    config.signing = SigningConfig {
        keys: records,
        ..Default::default()
    };
    let keys = KeySet::load(root, &config)?;
    write_public_keys(root, &config.origin, &keys)?;
    let public_binary = root.join(format!("{}.gpg", config.origin));

    let connection = state::create(root)?;
    config.save(root)?;
    // Every suite carries the keyring package from the start, so a server can install it
    // before the first key change needs it.
    crate::repo::keyring::refresh(root, &config, &keys, &connection, 1)?;
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

/// The record of a signing key in the key file `file`.
pub(crate) fn file_record(fingerprint: String, file: PathBuf) -> KeyRecord {
    KeyRecord {
        fingerprint,
        file: Some(file),
        gpg: false,
        state: KeyState::Signing,
    }
}

/// Creates `private/keys/` (mode 0700), where keys beyond the first are kept.
pub(crate) fn create_keys_directory(root: &Path) -> Result<()> {
    create_private(root)?;
    let directory = root.join("private/keys");
    fs::create_dir_all(&directory)
        .and_then(|()| fs::set_permissions(&directory, fs::Permissions::from_mode(0o700)))
        .with_context(|| format!("{}: cannot be created", directory.display()))
}

/// A new Ed25519 key for the repository of `origin`, made now, valid for `lifetime`.
pub(crate) fn generate_key(origin: &str, lifetime: Option<std::time::Duration>) -> Result<Signer> {
    let user_id = format!("{origin} archive signing key");
    Signer::generate(&user_id, SystemTime::now(), lifetime).context("cannot generate a signing key")
}

/// Creates `private/` with mode 0700.
pub(crate) fn create_private(root: &Path) -> Result<()> {
    let private = root.join("private");
    fs::create_dir_all(&private)
        .and_then(|()| fs::set_permissions(&private, fs::Permissions::from_mode(0o700)))
        .with_context(|| format!("{}: cannot be created", private.display()))
}

/// Copies the key file `source` to `private/` with mode 0600; warns when the original
/// can be read by group or others.
fn copy_key(root: &Path, source: &Path, reporter: &Reporter) -> Result<()> {
    warn_if_readable(source, reporter)?;
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

/// Warns when the key file `source` can be read by group or others.
fn warn_if_readable(source: &Path, reporter: &Reporter) -> Result<()> {
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
    Ok(())
}
