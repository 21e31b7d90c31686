//! `repo publish --target NAME` and `repo verify --target NAME`.

use std::path::Path;

use anyhow::{bail, Result};

use crate::repo::session::{Repository, Session};
use crate::repo::targets::{self, config};
use crate::report::Reporter;

/// Copies the published tree (its pending suites published first, by the session) to
/// the target `name`, and prints what was written.
pub(crate) fn publish(session: &Session<'_>, name: &str) -> Result<()> {
    let repository = &session.repository;
    let target = config::find(&repository.config.publish, name)?;
    targets::record::begin(&session.connection, name)?;
    let outcome = targets::publish(
        &repository.root,
        &repository.config,
        &session.connection,
        target,
        session.reporter,
    )?;
    session.reporter.status(outcome.summary());
    let mut json = serde_json::to_value(&outcome)?;
    json["uploaded_total"] = outcome.uploaded_total().into();
    session.reporter.data("", &json)?;
    Ok(())
}

/// Checks the record of target `name` against the store; an error when they disagree.
pub(crate) fn verify(root: &Path, name: &str, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let target = config::find(&repository.config.publish, name)?;
    let connection = crate::repo::state::open(root)?;
    let verification = targets::verify(root, &repository.config, &connection, target)?;
    let mut text = format!(
        "publish target {}: {} object(s) recorded, {} listed\n",
        verification.target, verification.recorded, verification.listed
    );
    for problem in &verification.problems {
        text.push_str(&format!("  {problem}\n"));
    }
    let mut json = serde_json::to_value(&verification)?;
    json["ok"] = verification.problems.is_empty().into();
    reporter.data(text, &json)?;
    if !verification.problems.is_empty() {
        bail!(
            "publish target {}: {} problem(s) between the record and the store",
            verification.target,
            verification.problems.len()
        );
    }
    Ok(())
}
