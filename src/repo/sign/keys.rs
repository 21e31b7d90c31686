//! The repository's set of keys: each signing or retired, in key files under `private/`
//! or held by gpg. Every signing key that has not expired signs each Release; the public
//! keys of the keys not retired are what clients trust.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use pgp::composed::CleartextSignedMessage;

use crate::repo::clock::format_time;
use crate::repo::config::{KeyRecord, KeyState, RepoConfig, SigningConfig};
use crate::repo::sign::gpg::GpgSigner;
use crate::repo::sign::rpgp::Signer;
use crate::repo::sign::sign_release::{self, KeyFacts, ReleaseKey, SignRelease};

/// How long before a signing key expires `repo verify` starts warning.
pub(crate) const EXPIRY_WARNING: Duration = Duration::from_secs(60 * 86_400);

/// Where `repo key add` keeps a key file: `private/keys/<FINGERPRINT>.asc`.
pub(crate) fn key_file_of(fingerprint: &str) -> PathBuf {
    PathBuf::from("private/keys").join(format!("{fingerprint}.asc"))
}

/// The keys a configuration names, as `[[signing.keys]]` records: a configuration of
/// the older form (one `key` or `gpg_key`) gives one signing key.
pub(crate) fn records(root: &Path, signing: &SigningConfig) -> Result<Vec<KeyRecord>> {
    if !signing.keys.is_empty() {
        return Ok(signing.keys.clone());
    }
    if let Some(file) = &signing.key {
        let path = root.join(file);
        let signer = Signer::load(&path)
            .with_context(|| format!("{}: the signing key cannot be loaded", path.display()))?;
        return Ok(vec![KeyRecord {
            fingerprint: signer.fingerprint(),
            file: Some(file.clone()),
            gpg: false,
            state: KeyState::Signing,
        }]);
    }
    if let Some(id) = &signing.gpg_key {
        return Ok(vec![KeyRecord {
            fingerprint: GpgSigner::new(id)?.fingerprint().to_string(),
            file: None,
            gpg: true,
            state: KeyState::Signing,
        }]);
    }
    bail!("the repository configuration names no signing key")
}

/// The fingerprints of the keys in the signing state, sorted: the key set that writers
/// sharing a publish target's state must agree on.
pub(crate) fn signing_fingerprints(root: &Path, signing: &SigningConfig) -> Result<Vec<String>> {
    let mut fingerprints: Vec<String> = records(root, signing)?
        .into_iter()
        .filter(|record| record.state == KeyState::Signing)
        .map(|record| record.fingerprint.to_uppercase())
        .collect();
    fingerprints.sort();
    fingerprints.dedup();
    Ok(fingerprints)
}

/// Rewrites an older configuration (one `key` or `gpg_key`) into `[[signing.keys]]`, the
/// form every change of the keys writes.
pub(crate) fn migrate(root: &Path, config: &mut RepoConfig) -> Result<()> {
    if config.signing.keys.is_empty() {
        config.signing.keys = records(root, &config.signing)?;
        config.signing.key = None;
        config.signing.gpg_key = None;
    }
    Ok(())
}

/// One key of the set, loaded.
pub(crate) struct LoadedKey {
    /// What the configuration records of it.
    pub(crate) record: KeyRecord,
    /// Its fingerprint, algorithm and dates.
    pub(crate) facts: KeyFacts,
    key: Box<dyn ReleaseKey>,
}

impl LoadedKey {
    /// Whether the key has expired at `now` (seconds since 1970).
    pub(crate) fn expired_at(&self, now: u64) -> bool {
        self.facts.expires.is_some_and(|expires| expires <= now)
    }

    /// Its public key as binary packets.
    pub(crate) fn public_key_binary(&self) -> Vec<u8> {
        self.key.public_key_binary()
    }
}

/// Loads one key of the set.
pub(crate) fn load_key(root: &Path, record: &KeyRecord) -> Result<LoadedKey> {
    let key: Box<dyn ReleaseKey> =
        match &record.file {
            Some(file) => {
                let path = root.join(file);
                Box::new(Signer::load(&path).with_context(|| {
                    format!("{}: the signing key cannot be loaded", path.display())
                })?)
            }
            None => Box::new(GpgSigner::new(&record.fingerprint)?),
        };
    let facts = key.facts();
    if facts.fingerprint != record.fingerprint {
        bail!(
            "signing.keys: the key {} is {} (the configuration records the fingerprint {})",
            record
                .file
                .as_ref()
                .map_or_else(|| "in gpg".to_string(), |file| file.display().to_string()),
            facts.fingerprint,
            record.fingerprint
        );
    }
    Ok(LoadedKey {
        record: record.clone(),
        facts,
        key,
    })
}

/// The repository's keys, loaded, and the time expiry is judged at.
pub(crate) struct KeySet {
    /// Every key, oldest first.
    pub(crate) keys: Vec<LoadedKey>,
    /// Now, in seconds since 1970 (the system clock: a key's expiry is a fact of the
    /// world, not of SOURCE_DATE_EPOCH).
    pub(crate) now: u64,
}

impl KeySet {
    /// Loads every key the configuration names.
    pub(crate) fn load(root: &Path, config: &RepoConfig) -> Result<KeySet> {
        let keys = records(root, &config.signing)?
            .iter()
            .map(|record| load_key(root, record))
            .collect::<Result<Vec<_>>>()?;
        Ok(KeySet {
            keys,
            now: now_seconds(),
        })
    }

    /// The keys that sign: in the signing state and not expired.
    pub(crate) fn signers(&self) -> Vec<&dyn ReleaseKey> {
        self.keys
            .iter()
            .filter(|key| key.record.state == KeyState::Signing && !key.expired_at(self.now))
            .map(|key| key.key.as_ref())
            .collect()
    }

    /// The keys in the signing state that have expired, and so sign nothing.
    pub(crate) fn expired_signing(&self) -> Vec<&LoadedKey> {
        self.keys
            .iter()
            .filter(|key| key.record.state == KeyState::Signing && key.expired_at(self.now))
            .collect()
    }

    /// The keys clients trust: every key not retired.
    pub(crate) fn trusted(&self) -> Vec<&LoadedKey> {
        self.keys
            .iter()
            .filter(|key| key.record.state != KeyState::Retired)
            .collect()
    }

    /// Fails, naming the way out, when no key can sign; otherwise the warnings about
    /// signing keys that have expired.
    pub(crate) fn check_signing(&self) -> Result<Vec<String>> {
        let expired: Vec<String> = self
            .expired_signing()
            .iter()
            .map(|key| {
                format!(
                    "the signing key {} expired on {}: it signs nothing",
                    key.facts.fingerprint,
                    format_time(key.facts.expires.unwrap_or_default() as i64)
                )
            })
            .collect();
        if self.signers().is_empty() {
            if expired.is_empty() {
                bail!(
                    "the repository has no signing key (every key is retired); add one with \
                     `debstage repo key add`"
                );
            }
            bail!(
                "every signing key of the repository has expired ({}); nothing can be \
                 published: add a key with `debstage repo key add`, or extend one with \
                 `debstage repo key extend FINGERPRINT` (clients then need the refreshed \
                 public key)",
                expired.join("; ")
            );
        }
        Ok(expired
            .into_iter()
            .map(|message| {
                format!("{message}; retire it with `debstage repo key retire` or extend it")
            })
            .collect())
    }

    /// What `repo verify` says of the keys' expiry: a problem for each signing key that
    /// has expired, a warning for each that expires within `warning`.
    pub(crate) fn expiry_notes(&self, warning: Duration) -> (Vec<String>, Vec<String>) {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        for key in &self.keys {
            let (KeyState::Signing, Some(expires)) = (key.record.state, key.facts.expires) else {
                continue;
            };
            let fingerprint = &key.facts.fingerprint;
            let date = format_time(expires as i64);
            if expires <= self.now {
                problems.push(format!(
                    "the signing key {fingerprint} expired on {date}: it signs nothing; \
                     retire it (`debstage repo key retire {fingerprint}`) or extend it"
                ));
            } else if expires - self.now <= warning.as_secs() {
                warnings.push(format!(
                    "the signing key {fingerprint} expires on {date} (in {} days): extend \
                     it (`debstage repo key extend {fingerprint}`) or rotate it (`debstage \
                     repo key add`, then `retire`)",
                    (expires - self.now) / 86_400
                ));
            }
        }
        (problems, warnings)
    }

    /// What is wrong with the signatures of a suite's `InRelease` (`text`): it must carry
    /// one signature by each key that signs now and no other (a key added or retired
    /// since the suite was last published leaves it behind).
    pub(crate) fn in_release_problems(&self, suite: &str, text: &str) -> Vec<String> {
        let message = match CleartextSignedMessage::from_string(text) {
            Ok((message, _headers)) => message,
            Err(error) => {
                return vec![format!("dists/{suite}/InRelease: not signed text: {error}")]
            }
        };
        let mut found: Vec<String> = message
            .signatures()
            .iter()
            .flat_map(|signature| signature.issuer_fingerprint())
            .map(|fingerprint| hex::encode_upper(fingerprint.as_bytes()))
            .collect();
        found.sort();
        let mut expected: Vec<String> = self
            .signers()
            .iter()
            .map(|key| key.facts().fingerprint)
            .collect();
        expected.sort();
        if found == expected {
            return Vec::new();
        }
        vec![format!(
            "dists/{suite}/InRelease: signed by {}, but the keys that sign now are {} (run \
             `debstage repo publish`)",
            if found.is_empty() {
                "no key".to_string()
            } else {
                found.join(", ")
            },
            expected.join(", ")
        )]
    }

    /// The public keys clients trust, as binary packets one after the other.
    pub(crate) fn trusted_binary(&self) -> Vec<u8> {
        self.trusted()
            .iter()
            .flat_map(|key| key.public_key_binary())
            .collect()
    }
}

impl SignRelease for KeySet {
    fn clearsign(&self, text: &str, time: SystemTime) -> Result<String> {
        self.check_signing()?;
        sign_release::clearsign(&self.signers(), text, time)
    }

    fn detached_armored(&self, text: &str, time: SystemTime) -> Result<String> {
        self.check_signing()?;
        sign_release::detached_armored(&self.signers(), text, time)
    }

    fn public_key_armored(&self) -> Result<String> {
        sign_release::armored_keyring(&self.trusted_binary())
    }

    fn public_key_binary(&self) -> Vec<u8> {
        self.trusted_binary()
    }
}

/// Writes `<origin>.asc` and `<origin>.gpg` at the root: the public keys of every key
/// that is not retired. Each file is replaced by rename, so a reader never sees half.
pub(crate) fn write_public_keys(root: &Path, origin: &str, keys: &dyn SignRelease) -> Result<()> {
    let armored = keys.public_key_armored()?;
    for (name, bytes) in [
        (format!("{origin}.asc"), armored.into_bytes()),
        (format!("{origin}.gpg"), keys.public_key_binary()),
    ] {
        let path = root.join(&name);
        let temporary = root.join(format!(".{name}.tmp"));
        fs::write(&temporary, &bytes)
            .and_then(|()| fs::rename(&temporary, &path))
            .with_context(|| format!("{}: cannot be written", path.display()))?;
    }
    Ok(())
}

/// Seconds since 1970 by the system clock.
pub(crate) fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
