//! `repo export-key`: the public key clients trust, armored or as a binary keyring.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::repo::session::Repository;
use crate::report::Reporter;

/// Prints the public key of the repository: armored, or the binary keyring that
/// `Signed-By: /etc/apt/keyrings/<origin>.gpg` names.
pub(crate) fn run(root: &Path, binary: bool, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let extension = if binary { "gpg" } else { "asc" };
    let path = root.join(format!("{}.{extension}", repository.config.origin));
    let bytes = fs::read(&path).with_context(|| format!("{}: cannot be read", path.display()))?;
    if binary {
        // Binary data bypasses the reporter, whose raw output is text.
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes).and_then(|()| out.flush())?;
    } else {
        reporter.raw(&String::from_utf8_lossy(&bytes))?;
    }
    Ok(())
}
