//! Signing through the local gpg (`repo init --gpg-key ID`), for keys that live in a
//! keyring or on a smartcard and are never exported.
//!
//! gpg is run with `--batch`, so it never prompts: the key must be usable without a
//! passphrase prompt (unprotected, or unlocked in gpg-agent). `GNUPGHOME` is honoured.
//! The signature time is given with `--faked-system-time`, as rPGP is given it, so that a
//! publication with SOURCE_DATE_EPOCH is dated like one signed by the generated key.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::repo::sign::SignRelease;

/// A signing key in gpg's keyring.
#[derive(Debug, Clone)]
pub struct GpgSigner {
    id: String,
    public_armored: String,
    public_binary: Vec<u8>,
}

impl GpgSigner {
    /// Checks that gpg holds the secret key `id` and exports its public key.
    pub fn new(id: &str) -> Result<GpgSigner> {
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
        let secret_keys = String::from_utf8_lossy(&listed)
            .lines()
            .filter(|line| line.starts_with("sec:"))
            .count();
        if secret_keys != 1 {
            bail!(
                "--gpg-key {id}: gpg has {secret_keys} secret keys that match; give the \
                 fingerprint of one (gpg --list-secret-keys)"
            );
        }
        let public_binary = gpg(&["--export", "--", id], None)?;
        let public_armored = String::from_utf8(gpg(&["--export", "--armor", "--", id], None)?)
            .context("gpg exported a public key that is not text")?;
        if public_binary.is_empty() {
            bail!("--gpg-key {id}: gpg exported no public key");
        }
        Ok(GpgSigner {
            id: id.to_string(),
            public_armored,
            public_binary,
        })
    }

    fn sign(&self, mode: &str, text: &str, time: SystemTime) -> Result<String> {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .context("the signature time is before 1970")?
            .as_secs();
        let output = gpg(
            &[
                "--local-user",
                &self.id,
                "--digest-algo",
                "SHA256",
                "--faked-system-time",
                &format!("{seconds}!"),
                "--armor",
                mode,
            ],
            Some(text.as_bytes()),
        )
        .with_context(|| format!("gpg could not sign with the key {}", self.id))?;
        String::from_utf8(output).context("gpg wrote a signature that is not text")
    }
}

impl SignRelease for GpgSigner {
    fn clearsign(&self, text: &str, time: SystemTime) -> Result<String> {
        self.sign("--clearsign", text, time)
    }

    fn detached_armored(&self, text: &str, time: SystemTime) -> Result<String> {
        self.sign("--detach-sign", text, time)
    }

    fn public_key_armored(&self) -> String {
        self.public_armored.clone()
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
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(bytes).context("cannot write to gpg")?;
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
