//! `repo key list|add|retire|extend|export`: the repository's signing keys. Every change
//! rewrites `[[signing.keys]]`, raises the version of the keyring package (kept in the
//! state) and lists the new package in every suite, rewrites the public key files and
//! publishes every suite again, signed by the keys that now sign.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::cli::KeyCommand;
use crate::repo::clock::format_time;
use crate::repo::commands::init::{create_keys_directory, file_record, generate_key};
use crate::repo::commands::list::table;
use crate::repo::config::{KeyRecord, KeyState, RepoConfig};
use crate::repo::session::{Repository, Session};
use crate::repo::sign::gpg::GpgSigner;
use crate::repo::sign::keys::{self, key_file_of, write_public_keys, KeySet, LoadedKey};
use crate::repo::sign::Signer;
use crate::repo::{state, suites};
use crate::report::Reporter;

/// Runs one `repo key` command.
pub(crate) fn run(
    root: &Path,
    timeout: Option<Duration>,
    command: KeyCommand,
    reporter: &Reporter,
) -> Result<()> {
    match command {
        KeyCommand::List => list(root, reporter),
        KeyCommand::Export {
            fingerprint,
            secret,
        } => export(root, fingerprint.as_deref(), secret, reporter),
        KeyCommand::Add {
            import,
            gpg_key,
            expires,
        } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            add(
                &mut session,
                import.as_deref(),
                gpg_key.as_deref(),
                expires.0,
            )
        }
        KeyCommand::Retire { fingerprint } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            retire(&mut session, &fingerprint)
        }
        KeyCommand::Extend {
            fingerprint,
            expires,
        } => {
            let mut session = Session::begin(root, timeout, reporter)?;
            let Some(lifetime) = expires.0 else {
                bail!(
                    "--expires never: a key's expiry can be moved, not removed; give a \
                     duration such as 730d"
                );
            };
            extend(&mut session, &fingerprint, lifetime)
        }
    }
}

/// The one key of `set` that `given` names: its whole fingerprint, or its last 16 hex
/// digits (the long key id gpg and apt show).
fn find<'a>(set: &'a KeySet, given: &str) -> Result<&'a LoadedKey> {
    let wanted = given.trim().to_ascii_uppercase().replace(' ', "");
    let matches: Vec<&LoadedKey> = set
        .keys
        .iter()
        .filter(|key| {
            wanted.len() >= 16 && key.facts.fingerprint.ends_with(&wanted)
                || key.facts.fingerprint == wanted
        })
        .collect();
    match matches.as_slice() {
        [key] => Ok(key),
        _ => bail!(
            "{given:?} is not the fingerprint (or the last 16 hex digits of it) of one key \
             of the repository; its keys are {} (see `debstage repo key list`)",
            set.keys
                .iter()
                .map(|key| key.facts.fingerprint.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What a key's state is shown as: `signing`, `retired`, or `expired` for a signing
/// key past its expiry (it signs nothing).
fn shown_state(key: &LoadedKey, now: u64) -> &'static str {
    match key.record.state {
        KeyState::Signing if key.expired_at(now) => "expired",
        state => state.name(),
    }
}

/// `repo key list`.
fn list(root: &Path, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let connection = state::open(root)?;
    let keyring_version = crate::repo::keyring::version(&connection, &repository.config)?;
    let (text, document) = key_document(root, &repository.config, keyring_version)?;
    reporter.data(text, &document)?;
    Ok(())
}

/// The table of the keys and its JSON document (`repo key list`, and what `add`,
/// `retire` and `extend` print with `--format json`).
fn key_document(
    root: &Path,
    config: &RepoConfig,
    keyring_version: u64,
) -> Result<(String, serde_json::Value)> {
    let set = KeySet::load(root, config)?;
    let rows: Vec<Vec<String>> = set
        .keys
        .iter()
        .map(|key| {
            vec![
                key.facts.fingerprint.clone(),
                key.facts.algorithm.clone(),
                format_time(key.facts.created as i64),
                key.facts
                    .expires
                    .map_or_else(|| "never".to_string(), |time| format_time(time as i64)),
                shown_state(key, set.now).to_string(),
            ]
        })
        .collect();
    let text = table(
        &["FINGERPRINT", "ALGORITHM", "CREATED", "EXPIRES", "STATE"],
        &rows,
    );
    let keys: Vec<serde_json::Value> = set
        .keys
        .iter()
        .map(|key| {
            json!({
                "fingerprint": key.facts.fingerprint,
                "algorithm": key.facts.algorithm,
                "created": format_time(key.facts.created as i64),
                "expires": key.facts.expires.map(|time| format_time(time as i64)),
                "state": shown_state(key, set.now),
                "held_by": if key.record.gpg { "gpg" } else { "file" },
            })
        })
        .collect();
    Ok((
        text,
        json!({
            "keys": keys,
            "keyring_version": keyring_version,
        }),
    ))
}

/// `repo key export [FINGERPRINT] [--secret]`.
fn export(root: &Path, given: Option<&str>, secret: bool, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let set = KeySet::load(root, &repository.config)?;
    let chosen: Vec<&LoadedKey> = match given {
        Some(given) => vec![find(&set, given)?],
        None => set.trusted(),
    };
    if !secret {
        let binary: Vec<u8> = chosen
            .iter()
            .flat_map(|key| key.public_key_binary())
            .collect();
        let armored = crate::repo::sign::armored_keyring(&binary)?;
        if reporter.is_json() {
            let fingerprints: Vec<&str> = chosen
                .iter()
                .map(|key| key.facts.fingerprint.as_str())
                .collect();
            reporter.data(
                "",
                &json!({ "fingerprints": fingerprints, "armored": armored, "secret": false }),
            )?;
        } else {
            reporter.raw(&armored)?;
        }
        return Ok(());
    }
    let mut armored = String::new();
    let mut fingerprints = Vec::new();
    for key in chosen {
        let Some(file) = &key.record.file else {
            reporter.warn(format!(
                "the key {} is held by gpg: export it with gpg (gpg --export-secret-keys)",
                key.facts.fingerprint
            ));
            continue;
        };
        let signer = Signer::load(&root.join(file))?;
        armored.push_str(&signer.secret_key_armored()?);
        fingerprints.push(key.facts.fingerprint.clone());
    }
    if fingerprints.is_empty() {
        bail!("no secret key to export: every key chosen is held by gpg");
    }
    if reporter.is_json() {
        reporter.data(
            "",
            &json!({ "fingerprints": fingerprints, "armored": armored, "secret": true }),
        )?;
    } else {
        reporter.raw(&armored)?;
    }
    Ok(())
}

/// `repo key add`: a generated key, an imported key file, or a key gpg holds.
fn add(
    session: &mut Session<'_>,
    import: Option<&Path>,
    gpg_key: Option<&str>,
    lifetime: Option<Duration>,
) -> Result<()> {
    let root = session.repository.root.clone();
    let mut config = session.repository.config.clone();
    keys::migrate(&root, &mut config)?;
    let (record, signer) = match (import, gpg_key) {
        (_, Some(id)) => {
            let gpg = GpgSigner::new(id)?;
            let record = KeyRecord {
                fingerprint: gpg.fingerprint().to_string(),
                file: None,
                gpg: true,
                state: KeyState::Signing,
            };
            (record, None)
        }
        (Some(path), None) => {
            let signer = Signer::load(path).with_context(|| {
                format!("--import {}: not a usable signing key", path.display())
            })?;
            let file = key_file_of(&signer.fingerprint());
            (file_record(signer.fingerprint(), file), Some(signer))
        }
        (None, None) => {
            let signer = generate_key(&config.origin, lifetime)?;
            let file = key_file_of(&signer.fingerprint());
            (file_record(signer.fingerprint(), file), Some(signer))
        }
    };
    if let Some(existing) = config
        .signing
        .keys
        .iter()
        .find(|existing| existing.fingerprint == record.fingerprint)
    {
        bail!(
            "the key {} is already a key of the repository ({}); a retired key does not come \
             back: add a new one",
            existing.fingerprint,
            existing.state.name()
        );
    }
    let loaded_facts = match &signer {
        Some(signer) => {
            use crate::repo::sign::ReleaseKey;
            signer.facts()
        }
        None => keys::load_key(&root, &record)?.facts,
    };
    if loaded_facts
        .expires
        .is_some_and(|expires| expires <= keys::now_seconds())
    {
        bail!(
            "the key {} expired on {}: an expired key never signs; extend it first or add \
             another",
            loaded_facts.fingerprint,
            format_time(loaded_facts.expires.unwrap_or_default() as i64)
        );
    }
    if let (Some(signer), Some(file)) = (&signer, &record.file) {
        create_keys_directory(&root)?;
        signer.save_secret(&root.join(file))?;
    }
    let fingerprint = record.fingerprint.clone();
    config.signing.keys.push(record);
    let signing = signing_count(&config);
    commit(session, config)?;
    session.reporter.status(format!(
        "added the key {fingerprint}; {signing} key(s) sign every Release now, and {origin}.gpg \
         holds every key not retired",
        origin = session.repository.config.origin
    ));
    Ok(())
}

/// The number of keys in the signing state.
fn signing_count(config: &RepoConfig) -> usize {
    config
        .signing
        .keys
        .iter()
        .filter(|key| key.state == KeyState::Signing)
        .count()
}

/// The configuration in the `[[signing.keys]]` form, its keys, and the position of the
/// one `given` names among them.
fn named_key(session: &Session<'_>, given: &str) -> Result<(RepoConfig, KeySet, usize)> {
    let root = &session.repository.root;
    let mut config = session.repository.config.clone();
    keys::migrate(root, &mut config)?;
    let set = KeySet::load(root, &config)?;
    let fingerprint = find(&set, given)?.facts.fingerprint.clone();
    let index = set
        .keys
        .iter()
        .position(|key| key.facts.fingerprint == fingerprint)
        .context("the key found is in the set")?;
    Ok((config, set, index))
}

/// `repo key retire FINGERPRINT`.
fn retire(session: &mut Session<'_>, given: &str) -> Result<()> {
    let (mut config, set, index) = named_key(session, given)?;
    let key = &set.keys[index];
    let fingerprint = key.facts.fingerprint.clone();
    if key.record.state == KeyState::Retired {
        bail!("the key {fingerprint} is retired already");
    }
    let others_sign = set.keys.iter().any(|other| {
        other.facts.fingerprint != fingerprint
            && other.record.state == KeyState::Signing
            && !other.expired_at(set.now)
    });
    if !others_sign {
        bail!(
            "the key {fingerprint} is the only key that signs: retiring it would leave the \
             repository unable to publish; add its successor first (`debstage repo key add`)"
        );
    }
    for record in &mut config.signing.keys {
        if record.fingerprint == fingerprint {
            record.state = KeyState::Retired;
        }
    }
    commit(session, config)?;
    session.reporter.status(format!(
        "retired the key {fingerprint}: it signs nothing more; servers that trust only it \
         fail with NO_PUBKEY until they have the new key ({origin}.gpg)",
        origin = session.repository.config.origin
    ));
    Ok(())
}

/// `repo key extend FINGERPRINT --expires DURATION`.
fn extend(session: &mut Session<'_>, given: &str, lifetime: Duration) -> Result<()> {
    let root = session.repository.root.clone();
    let (config, set, index) = named_key(session, given)?;
    let key = &set.keys[index];
    let fingerprint = key.facts.fingerprint.clone();
    if key.record.state == KeyState::Retired {
        bail!("the key {fingerprint} is retired: a retired key is not extended");
    }
    let Some(file) = key.record.file.clone() else {
        bail!(
            "the key {fingerprint} is held by gpg: extend it with `gpg --quick-set-expire \
             {fingerprint} 2y`, then run `debstage repo publish`"
        );
    };
    let path = root.join(&file);
    let mut signer = Signer::load(&path)?;
    let now = SystemTime::now();
    signer.extend(now, now + lifetime)?;
    signer.save_secret(&path)?;
    commit(session, config)?;
    session.reporter.status(format!(
        "the key {fingerprint} now expires on {}; servers need the refreshed public key \
         ({}.gpg) to see it",
        format_time(signer.expires().unwrap_or_default() as i64),
        session.repository.config.origin
    ));
    Ok(())
}

/// Saves `config`, lists the keyring package of the new keys (its version raised) in
/// every suite, writes the public key files, and publishes every suite again under the
/// session's lock.
fn commit(session: &mut Session<'_>, config: RepoConfig) -> Result<()> {
    let root: PathBuf = session.repository.root.clone();
    // The shared state's version (a writer built from `repo key export --secret` took it
    // with the state), never this directory's idea of it.
    let keyring_version = crate::repo::keyring::version(&session.connection, &config)? + 1;
    config.check().context("the new key configuration")?;
    let set = KeySet::load(&root, &config)?;
    set.check_signing()?;
    config.save(&root)?;
    write_public_keys(&root, &config.origin, &set)?;
    session.repository.config = config;
    session.record_signing_keys()?;
    let refreshed = crate::repo::keyring::refresh(
        &root,
        &session.repository.config,
        &set,
        &session.connection,
        keyring_version,
    )?;
    session.reporter.status(format!(
        "every suite carries {} {}",
        refreshed.package, refreshed.version
    ));
    let transaction = session.connection.transaction()?;
    for suite in suites::all_suites(&session.repository.config, &transaction)? {
        state::owe_publication(&transaction, &suite.name())?;
    }
    transaction.commit()?;
    session.publish_pending()?;
    let (_, document) = key_document(&root, &session.repository.config, keyring_version)?;
    session.reporter.data("", &document)?;
    Ok(())
}
