//! `repo export-key`: the public key clients trust, armored or as a binary keyring, and
//! where a server keeps it.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use crate::repo::session::Repository;
use crate::repo::sign::rpgp::public_key_fingerprint;
use crate::repo::subscribe::key_path_on_server;
use crate::report::Reporter;

/// The repository's public key as clients get it.
pub(crate) struct PublicKey {
    /// Upper-case hex, as `gpg --list-keys` shows it.
    pub(crate) fingerprint: String,
    /// The armored key (`<origin>.asc`).
    pub(crate) armored: String,
    /// Where a server keeps the binary keyring (`Signed-By`).
    pub(crate) keyring_path_on_server: String,
}

impl PublicKey {
    /// Reads `<origin>.asc` from the repository's root.
    pub(crate) fn load(root: &Path, origin: &str) -> Result<PublicKey> {
        let path = root.join(format!("{origin}.asc"));
        let armored = fs_err::read_to_string(&path)?;
        let fingerprint = public_key_fingerprint(&armored)
            .with_context(|| format!("{}: the repository's public key", path.display()))?;
        Ok(PublicKey {
            fingerprint,
            armored,
            keyring_path_on_server: key_path_on_server(origin)?,
        })
    }

    /// The JSON fields of the key (`repo export-key`, and `key` in `repo sources`).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({
            "fingerprint": self.fingerprint,
            "armored": self.armored,
            "keyring_path_on_server": self.keyring_path_on_server,
        })
    }
}

/// Prints the public key of the repository: armored (with `--format json`: with its
/// fingerprint and the path a server keeps it at), or the binary keyring that
/// `Signed-By: /usr/share/keyrings/<origin>-archive-keyring.gpg` names, whatever the
/// format.
pub(crate) fn run(root: &Path, binary: bool, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let origin = &repository.config.origin;
    if !binary && reporter.is_json() {
        reporter.data("", &PublicKey::load(root, origin)?.to_json())?;
        return Ok(());
    }
    let extension = if binary { "gpg" } else { "asc" };
    let path = root.join(format!("{origin}.{extension}"));
    let bytes = fs_err::read(&path)?;
    if binary {
        // Binary data bypasses the reporter, whose raw output is text.
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes).and_then(|()| out.flush())?;
    } else {
        reporter.raw(&String::from_utf8_lossy(&bytes))?;
    }
    Ok(())
}
