//! What publishing needs of the signing keys, and how several keys sign one text.

use std::time::SystemTime;

use anyhow::{anyhow, bail, Result};
use pgp::armor::{self, BlockType};
use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey,
};
use pgp::packet::Signature;

/// What publishing needs of the signing keys: the two signatures of `Release` and the
/// public keys clients trust. One key (`rpgp::Signer`, `gpg::GpgSigner`) or a repository's
/// set of keys (`keys::KeySet`) provides it.
pub(crate) trait SignRelease {
    /// `InRelease`: `text` clearsigned, with signature time `time`, one signature per
    /// signing key.
    fn clearsign(&self, text: &str, time: SystemTime) -> Result<String>;
    /// `Release.gpg`: armored detached signatures over the bytes of `text`, one per
    /// signing key.
    fn detached_armored(&self, text: &str, time: SystemTime) -> Result<String>;
    /// The public keys, armored in one block.
    fn public_key_armored(&self) -> Result<String>;
    /// The public keys as binary packets, one after the other (a keyring for
    /// `Signed-By`).
    fn public_key_binary(&self) -> Vec<u8>;
}

/// What `repo key list` shows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyFacts {
    /// Upper-case hex, as `gpg --list-keys` shows it.
    pub(crate) fingerprint: String,
    /// `ed25519`, `rsa`, ...
    pub(crate) algorithm: String,
    /// When the key was made, seconds since 1970.
    pub(crate) created: u64,
    /// When it expires, seconds since 1970; `None`: never.
    pub(crate) expires: Option<u64>,
}

/// One key that signs: its facts, its signature packets and its public key.
pub(crate) trait ReleaseKey {
    /// The key's fingerprint, algorithm and dates.
    fn facts(&self) -> KeyFacts;
    /// A text signature (type 0x01) over `text`, whose lines end in CRLF (the
    /// cleartext framework's form).
    fn text_signature(&self, text: &str, time: SystemTime) -> Result<Signature>;
    /// A binary signature (type 0x00) over `bytes`.
    fn binary_signature(&self, bytes: &[u8], time: SystemTime) -> Result<Signature>;
    /// The public key as binary packets.
    fn public_key_binary(&self) -> Vec<u8>;
}

impl<K: ReleaseKey> SignRelease for K {
    fn clearsign(&self, text: &str, time: SystemTime) -> Result<String> {
        clearsign(&[self as &dyn ReleaseKey], text, time)
    }

    fn detached_armored(&self, text: &str, time: SystemTime) -> Result<String> {
        detached_armored(&[self as &dyn ReleaseKey], text, time)
    }

    fn public_key_armored(&self) -> Result<String> {
        armored_keyring(&ReleaseKey::public_key_binary(self))
    }

    fn public_key_binary(&self) -> Vec<u8> {
        ReleaseKey::public_key_binary(self)
    }
}

/// Clearsigns `text` (for `InRelease`) with every key of `keys`, each signature dated
/// `time` (or the key's creation, if later).
///
/// The line break that ends `text` is the one before the signature block, which the
/// signatures do not cover (as `gpg --clearsign` does). Lines must not end in spaces or
/// tabs: verifiers strip them, so such a text could never verify.
pub(crate) fn clearsign(keys: &[&dyn ReleaseKey], text: &str, time: SystemTime) -> Result<String> {
    if let Some(line) = text
        .lines()
        .find(|line| line.ends_with(' ') || line.ends_with('\t'))
    {
        bail!("cannot clearsign a text with a line that ends in white space: {line:?}");
    }
    if keys.is_empty() {
        bail!("no key to sign with");
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    // The signed form: every line break CRLF (the text has no CR of its own).
    let canonical = body.replace('\r', "").replace('\n', "\r\n");
    let signatures = keys
        .iter()
        .map(|key| key.text_signature(&canonical, time))
        .collect::<Result<Vec<_>>>()?;
    let message = CleartextSignedMessage::new_many(body, |_| Ok(signatures))
        .map_err(|error| anyhow!("clearsigning: {error}"))?;
    message
        .to_armored_string(ArmorOptions::default())
        .map_err(|error| anyhow!("armoring the clearsigned text: {error}"))
}

/// Detached signatures over the exact bytes of `text` (for `Release.gpg`), one per key,
/// armored in one block.
pub(crate) fn detached_armored(
    keys: &[&dyn ReleaseKey],
    text: &str,
    time: SystemTime,
) -> Result<String> {
    if keys.is_empty() {
        bail!("no key to sign with");
    }
    // A DetachedSignature writes the packet with its header, a bare Signature only its body.
    let signatures = keys
        .iter()
        .map(|key| {
            key.binary_signature(text.as_bytes(), time)
                .map(DetachedSignature::new)
        })
        .collect::<Result<Vec<_>>>()?;
    armored(&signatures, BlockType::Signature)
}

/// Public keys given as binary packets (one key after the other), armored in one block.
pub(crate) fn armored_keyring(binary: &[u8]) -> Result<String> {
    let keys = <SignedPublicKey as Deserializable>::from_bytes_many(binary)
        .map_err(|error| anyhow!("reading the public keys: {error}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow!("reading the public keys: {error}"))?;
    armored(&keys, BlockType::PublicKey)
}

/// `packets` (several signatures, several keys) in one armored block of kind `block`.
fn armored(packets: &impl pgp::ser::Serialize, block: BlockType) -> Result<String> {
    let mut out = Vec::new();
    armor::write(
        packets,
        block,
        &mut out,
        None,
        ArmorOptions::default().include_checksum,
    )
    .map_err(|error| anyhow!("armoring: {error}"))?;
    String::from_utf8(out).map_err(|_| anyhow!("the armored block is not text"))
}
