//! The one thing publishing needs of a signing key.

use std::time::SystemTime;

use anyhow::Result;

/// What publishing needs of a signing key: the two signatures of `Release` and the
/// public key clients trust. `rpgp::Signer` (a key file) and
/// `gpg::GpgSigner` (the local gpg) provide it.
pub(crate) trait SignRelease {
    /// `InRelease`: `text` clearsigned, with signature time `time`.
    fn clearsign(&self, text: &str, time: SystemTime) -> Result<String>;
    /// `Release.gpg`: an armored detached signature over the bytes of `text`.
    fn detached_armored(&self, text: &str, time: SystemTime) -> Result<String>;
    /// The public key, armored.
    fn public_key_armored(&self) -> String;
    /// The public key as binary packets (a keyring for `Signed-By`).
    fn public_key_binary(&self) -> Vec<u8>;
}
