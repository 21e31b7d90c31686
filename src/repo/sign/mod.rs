//! OpenPGP signing of `Release` (InRelease, Release.gpg) with rPGP, and the signing key.
//!
//! The key is a **v4** Ed25519 key (the legacy EdDSA encoding): gpgv 2.2 and sqv, which
//! apt runs, read it; v6 keys they cannot read. One primary key certifies and signs, so
//! the exported public key is all a client needs for `Signed-By`.
//!
//! Ed25519 signatures are deterministic, and the signature time is passed in rather than
//! read from the clock, so the same text signed at the same time gives the same bytes.

pub mod gpg;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::repo::config::RepoConfig;
use anyhow::{anyhow, bail, Context, Result};

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, KeyType,
    SecretKeyParamsBuilder, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, KeyVersion, Password, Tag, Timestamp};

/// The digest every signature uses; apt rejects SHA1 and accepts SHA256.
const HASH: HashAlgorithm = HashAlgorithm::Sha256;

/// What publishing needs of a signing key: the two signatures of `Release` and the
/// public key clients trust. [`Signer`] (rPGP, a key file) and
/// [`crate::repo::sign::gpg::GpgSigner`] (the local gpg) provide it.
pub trait SignRelease {
    /// `InRelease`: `text` clearsigned, with signature time `time`.
    fn clearsign(&self, text: &str, time: SystemTime) -> Result<String>;
    /// `Release.gpg`: an armored detached signature over the bytes of `text`.
    fn detached_armored(&self, text: &str, time: SystemTime) -> Result<String>;
    /// The public key, armored.
    fn public_key_armored(&self) -> String;
    /// The public key as binary packets (a keyring for `Signed-By`).
    fn public_key_binary(&self) -> Vec<u8>;
}

impl SignRelease for Signer {
    fn clearsign(&self, text: &str, time: SystemTime) -> Result<String> {
        Signer::clearsign(self, text, time)
    }

    fn detached_armored(&self, text: &str, time: SystemTime) -> Result<String> {
        Signer::detached_armored(self, text, time)
    }

    fn public_key_armored(&self) -> String {
        Signer::public_key_armored(self)
    }

    fn public_key_binary(&self) -> Vec<u8> {
        Signer::public_key_binary(self)
    }
}

/// A loaded signing key.
#[derive(Debug, Clone)]
pub struct Signer {
    secret: SignedSecretKey,
    /// The public key, armored; made once when the key is generated or loaded.
    public_armored: String,
    /// The public key as binary packets.
    public_binary: Vec<u8>,
}

impl Signer {
    /// Generates a new v4 Ed25519 key for `user_id` ("Example Repository <ops@example.org>")
    /// whose creation time is `created`.
    pub fn generate(user_id: &str, created: SystemTime) -> Result<Signer> {
        if user_id.trim().is_empty() || user_id.contains('\n') {
            bail!("signing key user ID {user_id:?}: must be one non-empty line");
        }
        let mut params = SecretKeyParamsBuilder::default();
        params
            .version(KeyVersion::V4)
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .created_at(timestamp(created)?)
            .primary_user_id(user_id.to_string())
            .preferred_hash_algorithms(vec![HashAlgorithm::Sha256, HashAlgorithm::Sha512].into());
        let params = params
            .build()
            .map_err(|error| anyhow!("signing key parameters: {error}"))?;
        let mut secret = params
            .generate(rand::thread_rng())
            .map_err(|error| anyhow!("generating the signing key: {error}"))?;
        redate_self_signatures(&mut secret, timestamp(created)?)
            .map_err(|error| anyhow!("dating the signing key's self-signature: {error}"))?;
        Signer::from_secret(secret)
    }

    /// Loads a secret key, armored (`-----BEGIN PGP PRIVATE KEY BLOCK-----`) or binary.
    pub fn load(path: &Path) -> Result<Signer> {
        let bytes =
            fs::read(path).with_context(|| format!("{}: cannot be read", path.display()))?;
        let secret = if bytes.starts_with(b"-----") {
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                anyhow!("{}: an armored key must be ASCII text", path.display())
            })?;
            SignedSecretKey::from_string(text).map(|(key, _headers)| key)
        } else {
            SignedSecretKey::from_bytes(bytes.as_slice())
        }
        .map_err(|error| {
            anyhow!(
                "{}: not an OpenPGP secret key ({error}); expected one made by `debstage repo init`",
                path.display()
            )
        })?;
        secret.verify_bindings().map_err(|error| {
            anyhow!(
                "{}: the key's self-signatures do not verify: {error}",
                path.display()
            )
        })?;
        if secret.version() != KeyVersion::V4 {
            bail!(
                "{}: a {:?} key; only v4 keys are allowed (gpgv and sqv, which apt runs, cannot read v6 keys)",
                path.display(),
                secret.version()
            );
        }
        Signer::from_secret(secret)
    }

    fn from_secret(secret: SignedSecretKey) -> Result<Signer> {
        let public = secret.to_public_key();
        let public_armored = public
            .to_armored_string(ArmorOptions::default())
            .map_err(|error| anyhow!("armoring the public key: {error}"))?;
        let public_binary = public
            .to_bytes()
            .map_err(|error| anyhow!("serialising the public key: {error}"))?;
        Ok(Signer {
            secret,
            public_armored,
            public_binary,
        })
    }

    /// The secret key, armored (`-----BEGIN PGP PRIVATE KEY BLOCK-----`), unencrypted:
    /// keep it in a file only its owner reads (see [`Signer::save_secret`]).
    pub fn secret_key_armored(&self) -> Result<String> {
        self.secret
            .to_armored_string(ArmorOptions::default())
            .map_err(|error| anyhow!("armoring the secret key: {error}"))
    }

    /// Writes the secret key, armored, readable only by its owner (mode 0600). An existing
    /// file is replaced atomically.
    pub fn save_secret(&self, path: &Path) -> Result<()> {
        let text = self.secret_key_armored()?;
        let directory = parent_directory(path);
        // NamedTempFile is created with mode 0600, and the secret never exists with
        // wider permissions.
        let mut file = tempfile::NamedTempFile::new_in(directory)
            .with_context(|| format!("{}: cannot create a temporary file", directory.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.as_file().sync_all())
            .with_context(|| format!("{}: cannot be written", path.display()))?;
        file.persist(path)
            .with_context(|| format!("{}: cannot be written", path.display()))?;
        Ok(())
    }

    /// The key's fingerprint in upper-case hex (what `gpg --list-keys` shows).
    pub fn fingerprint(&self) -> String {
        hex::encode_upper(self.secret.fingerprint().as_bytes())
    }

    /// When the key was created.
    pub fn created(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(u64::from(self.secret.created_at().as_secs()))
    }

    /// The public key, armored (`<origin>.asc`).
    pub fn public_key_armored(&self) -> String {
        self.public_armored.clone()
    }

    /// The public key as binary OpenPGP packets: a keyring apt takes in `Signed-By`
    /// (`<origin>.gpg`, for `/etc/apt/keyrings/`).
    pub fn public_key_binary(&self) -> Vec<u8> {
        self.public_binary.clone()
    }

    /// Clearsigns `text` (for `InRelease`) with signature time `time`.
    ///
    /// The line break that ends `text` is the one before the signature block, which the
    /// signature does not cover (as `gpg --clearsign` does). Lines must not end in spaces
    /// or tabs: verifiers strip them, so such a text could never verify.
    pub fn clearsign(&self, text: &str, time: SystemTime) -> Result<String> {
        if let Some(line) = text
            .lines()
            .find(|line| line.ends_with(' ') || line.ends_with('\t'))
        {
            bail!("cannot clearsign a text with a line that ends in white space: {line:?}");
        }
        let body = text.strip_suffix('\n').unwrap_or(text);
        let config = self.signature_config(SignatureType::Text, time)?;
        let message = CleartextSignedMessage::new(body, config, &*self.secret, &Password::empty())
            .map_err(|error| anyhow!("clearsigning: {error}"))?;
        message
            .to_armored_string(ArmorOptions::default())
            .map_err(|error| anyhow!("armoring the clearsigned text: {error}"))
    }

    /// A detached, armored signature over the exact bytes of `text` (for `Release.gpg`).
    pub fn detached_armored(&self, text: &str, time: SystemTime) -> Result<String> {
        let config = self.signature_config(SignatureType::Binary, time)?;
        let signature = config
            .sign(&*self.secret, &Password::empty(), text.as_bytes())
            .map_err(|error| anyhow!("signing: {error}"))?;
        DetachedSignature::new(signature)
            .to_armored_string(ArmorOptions::default())
            .map_err(|error| anyhow!("armoring the signature: {error}"))
    }

    /// A v4 signature made at `time`, never earlier than the key itself: gpgv rejects a
    /// signature older than its key ("public key is newer than the signature"), which a
    /// SOURCE_DATE_EPOCH from before the key was made would otherwise produce.
    fn signature_config(&self, kind: SignatureType, time: SystemTime) -> Result<SignatureConfig> {
        let created = timestamp(time)?.max(self.secret.created_at());
        let mut config = SignatureConfig::v4(kind, self.secret.algorithm(), HASH);
        config.hashed_subpackets = vec![
            Subpacket::regular(SubpacketData::SignatureCreationTime(created))
                .map_err(|error| anyhow!("signature subpacket: {error}"))?,
            Subpacket::regular(SubpacketData::IssuerFingerprint(self.secret.fingerprint()))
                .map_err(|error| anyhow!("signature subpacket: {error}"))?,
        ];
        config.unhashed_subpackets =
            vec![
                Subpacket::regular(SubpacketData::IssuerKeyId(self.secret.legacy_key_id()))
                    .map_err(|error| anyhow!("signature subpacket: {error}"))?,
            ];
        Ok(config)
    }
}

/// Makes the user ID self-signatures as old as the key. rPGP stamps them with the
/// current time; sqv (and so apt on newer Debian) then holds the key unbound at any
/// earlier time and rejects a Release signed with a reproducible date before it.
fn redate_self_signatures(
    secret: &mut SignedSecretKey,
    created: Timestamp,
) -> pgp::errors::Result<()> {
    let primary = secret.primary_key.clone();
    for user in &mut secret.details.users {
        let mut dated = Vec::with_capacity(user.signatures.len());
        for signature in &user.signatures {
            let Some(config) = signature.config() else {
                dated.push(signature.clone());
                continue;
            };
            let mut config = config.clone();
            for subpacket in &mut config.hashed_subpackets {
                if let SubpacketData::SignatureCreationTime(_) = subpacket.data {
                    *subpacket = Subpacket::regular(SubpacketData::SignatureCreationTime(created))?;
                }
            }
            dated.push(config.sign_certification(
                &primary,
                primary.public_key(),
                &Password::empty(),
                Tag::UserId,
                &user.id,
            )?);
        }
        user.signatures = dated;
    }
    Ok(())
}

/// An OpenPGP timestamp (seconds since 1970 in 32 bits).
fn timestamp(time: SystemTime) -> Result<Timestamp> {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| anyhow!("time {time:?}: must not be before 1970"))?
        .as_secs();
    let seconds =
        u32::try_from(seconds).map_err(|_| anyhow!("time {seconds}: OpenPGP times end in 2106"))?;
    Ok(Timestamp::from_secs(seconds))
}

fn parent_directory(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// The signer the repository's configuration names: its own key under `private/` (or
/// the file `--key` gave), or a key in the user's gpg keyring.
pub fn signer_of(root: &Path, config: &RepoConfig) -> Result<Box<dyn SignRelease>> {
    match (config.key_path(root), &config.signing.gpg_key) {
        (Some(key), _) => Ok(Box::new(Signer::load(&key).with_context(|| {
            format!("{}: the signing key cannot be loaded", key.display())
        })?)),
        (None, Some(id)) => Ok(Box::new(gpg::GpgSigner::new(id)?)),
        (None, None) => bail!("the repository configuration names no signing key"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::Duration;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn signatures_are_reproducible_and_never_older_than_the_key() {
        let signer = Signer::generate("Test <test@example.org>", at(1_700_000_000)).unwrap();
        let text = "Origin: test\nSuite: test\n";
        let first = signer.clearsign(text, at(1_700_000_100)).unwrap();
        assert_eq!(first, signer.clearsign(text, at(1_700_000_100)).unwrap());
        assert!(first.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: test\nSuite: test\n-----BEGIN PGP SIGNATURE-----\n"));
        // A time before the key's creation is raised to it.
        assert_eq!(
            signer.detached_armored(text, at(5)).unwrap(),
            signer.detached_armored(text, at(1_700_000_000)).unwrap()
        );
        assert!(signer.clearsign("Origin: x \n", at(1_700_000_100)).is_err());
    }

    #[test]
    fn saved_keys_load_with_owner_only_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("signing-key.asc");
        let signer = Signer::generate("Test <test@example.org>", at(1_700_000_000)).unwrap();
        signer.save_secret(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = Signer::load(&path).unwrap();
        assert_eq!(loaded.fingerprint(), signer.fingerprint());
        assert_eq!(loaded.created(), at(1_700_000_000));
        let text = "Suite: test\n";
        assert_eq!(
            loaded.clearsign(text, at(1_700_000_001)).unwrap(),
            signer.clearsign(text, at(1_700_000_001)).unwrap()
        );
        fs::write(&path, "not a key").unwrap();
        let error = Signer::load(&path).unwrap_err().to_string();
        assert!(error.contains("signing-key.asc"), "{error}");
    }
}
