//! Signing through the local gpg (`repo init --gpg-key ID`), for keys that live in a
//! keyring or on a smartcard and are never exported.
//!
//! gpg runs with `--batch --pinentry-mode error`, so it never prompts: the key must be
//! usable as it is (unprotected, or unlocked in gpg-agent), which `GpgSigner::new` checks
//! with a test signature. `GNUPGHOME` is honoured. The key is always named by its full
//! fingerprint, never by the id the user gave, which could match other keys too. The
//! signature time is given with `--faked-system-time`, as rPGP is given it, and is never
//! earlier than the key (gpgv rejects such signatures; gpg refuses to make them).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use pgp::composed::{Deserializable, DetachedSignature};
use pgp::packet::Signature;

use crate::repo::sign::sign_release::{KeyFacts, ReleaseKey, SignRelease};

/// A signing key in gpg's keyring.
#[derive(Debug, Clone)]
pub(crate) struct GpgSigner {
    /// The primary key's full fingerprint: every gpg call names the key by it, so no
    /// other key that happens to match the id given is exported or used.
    fingerprint: String,
    /// When the key was made: no signature is dated earlier (gpgv rejects those).
    created: u64,
    /// When it expires (seconds since 1970), as gpg lists it.
    expires: Option<u64>,
    /// gpg's number of the key's algorithm (22: EdDSA, 1: RSA).
    algorithm: u32,
    public_binary: Vec<u8>,
}

impl GpgSigner {
    /// Finds the one secret key gpg has for `id` (key id, fingerprint or e-mail address),
    /// checks that gpg can sign with it without asking anything, and exports its public
    /// key.
    pub(crate) fn new(id: &str) -> Result<GpgSigner> {
        let valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "@.<>_+- ".contains(c))
            && !id.starts_with('-');
        if !valid {
            bail!("--gpg-key {id:?}: not a key id, fingerprint or e-mail address");
        }
        let listed = gpg(&["--list-secret-keys", "--with-colons", "--", id], None)
            .with_context(|| format!("--gpg-key {id}: gpg has no secret key for it"))?;
        let keys = secret_keys(&String::from_utf8_lossy(&listed));
        let [listed] = keys.as_slice() else {
            bail!(
                "--gpg-key {id}: gpg has {} secret keys that match; give the fingerprint of \
                 one (gpg --list-secret-keys)",
                keys.len()
            );
        };
        let fingerprint = &listed.fingerprint;
        let public_binary = gpg(&["--export", "--", fingerprint], None)?;
        if public_binary.is_empty() {
            bail!("--gpg-key {id}: gpg exported no public key for {fingerprint}");
        }
        let signer = GpgSigner {
            fingerprint: fingerprint.clone(),
            created: listed.created,
            expires: listed.expires,
            algorithm: listed.algorithm,
            public_binary,
        };
        // A key that needs a passphrase, has expired or sits on a missing card fails here,
        // before the caller writes anything.
        signer
            .clearsign("debstage signing check\n", SystemTime::now())
            .with_context(|| {
                format!(
                    "--gpg-key {id}: gpg cannot sign with {fingerprint} without asking for \
                     anything; unlock the key in gpg-agent first, or use --key"
                )
            })?;
        Ok(signer)
    }

    /// The primary key's fingerprint, which the configuration records.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A signature by gpg over `bytes`: `--textmode` for a text signature.
    fn signature(&self, text_mode: bool, bytes: &[u8], time: SystemTime) -> Result<Signature> {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .context("the signature time is before 1970")?
            .as_secs()
            .max(self.created);
        let output = gpg(
            &[
                "--pinentry-mode",
                "error",
                "--local-user",
                &self.fingerprint,
                "--digest-algo",
                "SHA256",
                "--faked-system-time",
                &format!("{seconds}!"),
                if text_mode {
                    "--textmode"
                } else {
                    "--no-textmode"
                },
                "--detach-sign",
            ],
            Some(bytes),
        )
        .with_context(|| format!("gpg could not sign with the key {}", self.fingerprint))?;
        DetachedSignature::from_bytes(output.as_slice())
            .map(|detached| detached.signature)
            .map_err(|error| anyhow::anyhow!("gpg wrote a signature debstage cannot read: {error}"))
    }
}

/// A secret primary key as gpg's colon listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListedKey {
    fingerprint: String,
    created: u64,
    expires: Option<u64>,
    algorithm: u32,
}

/// Each secret primary key in gpg's colon listing: a `sec` record (field 4: algorithm,
/// 6: created, 7: expires, seconds since 1970) followed by its `fpr` record.
fn secret_keys(listing: &str) -> Vec<ListedKey> {
    let mut keys = Vec::new();
    let mut primary: Option<(u64, Option<u64>, u32)> = None;
    for line in listing.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let number = |index: usize| fields.get(index).and_then(|value| value.parse().ok());
        match fields.first() {
            Some(&"sec") => {
                primary = number(5).map(|created| {
                    (
                        created,
                        number(6),
                        number(3).map_or(0, |value: u64| value as u32),
                    )
                });
            }
            Some(&"fpr") => {
                if let (Some((created, expires, algorithm)), Some(fingerprint)) =
                    (primary.take(), fields.get(9))
                {
                    keys.push(ListedKey {
                        fingerprint: fingerprint.to_string(),
                        created,
                        expires,
                        algorithm,
                    });
                }
            }
            Some(&"ssb") => primary = None,
            _ => {}
        }
    }
    keys
}

impl ReleaseKey for GpgSigner {
    fn facts(&self) -> KeyFacts {
        let algorithm = match self.algorithm {
            22 => "ed25519".to_string(),
            1 | 3 => "rsa".to_string(),
            other => format!("algorithm {other}"),
        };
        KeyFacts {
            fingerprint: self.fingerprint.clone(),
            algorithm,
            created: self.created,
            expires: self.expires,
        }
    }

    fn text_signature(&self, text: &str, time: SystemTime) -> Result<Signature> {
        self.signature(true, text.as_bytes(), time)
    }

    fn binary_signature(&self, bytes: &[u8], time: SystemTime) -> Result<Signature> {
        self.signature(false, bytes, time)
    }

    fn public_key_binary(&self) -> Vec<u8> {
        self.public_binary.clone()
    }
}

/// Runs `gpg --batch --yes ARGUMENTS` with `input` on stdin; its stdout, or an error with
/// what gpg said.
fn gpg(arguments: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>> {
    let mut child = Command::new("gpg")
        .args(["--batch", "--yes", "--no-tty"])
        .args(arguments)
        .env("LC_ALL", "C")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run gpg (install the gnupg package)")?;
    // A gpg that exits early closes its input: its own message says why, so a failed
    // write is not reported by itself.
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(bytes);
    }
    let output = child.wait_with_output().context("gpg did not finish")?;
    if !output.status.success() {
        bail!(
            "gpg {} failed ({}): {}",
            arguments.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_colon_listing_gives_each_primary_key_with_its_creation_time() {
        let listing = "sec:u:255:22:AAAA:1700000000:::u:::scESC:::+:::ed25519:::0:\n\
                       fpr:::::::::1111222233334444555566667777888899990000:\n\
                       grp:::::::::ABCD:\n\
                       uid:u::::1700000000::HASH::Example <ex@example.org>::::::::::0:\n\
                       ssb:u:255:18:BBBB:1700000001::::::e:::+:::cv25519::\n\
                       fpr:::::::::SUBKEYFINGERPRINT:\n\
                       sec:u:255:22:CCCC:1600000000:::u:::scESC:::+:::ed25519:::0:\n\
                       fpr:::::::::FFFF:\n";
        assert_eq!(
            secret_keys(listing),
            vec![
                ListedKey {
                    fingerprint: "1111222233334444555566667777888899990000".to_string(),
                    created: 1_700_000_000,
                    expires: None,
                    algorithm: 22,
                },
                ListedKey {
                    fingerprint: "FFFF".to_string(),
                    created: 1_600_000_000,
                    expires: None,
                    algorithm: 22,
                },
            ]
        );
    }
}
