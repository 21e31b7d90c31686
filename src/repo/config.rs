//! `debstage-repo.toml`: origin, label, stages in order, architectures, signing key.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::naming::rules;

/// Where a generated signing key is kept: never under `pool/` or `dists/`.
pub(crate) const GENERATED_KEY: &str = "private/signing-key.asc";

/// The name of the configuration file at the repository's root.
pub(crate) const FILE_NAME: &str = "debstage-repo.toml";

/// The repository's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepoConfig {
    /// Origin field of every Release file; also the name of the exported public key.
    pub(crate) origin: String,
    /// Label field of every Release file.
    pub(crate) label: String,
    /// The stages in promotion order; each is a suite.
    pub(crate) stages: Vec<String>,
    /// The architectures the suites serve (`all` packages are listed under each).
    pub(crate) architectures: Vec<String>,
    /// How many days a Release file stays valid (Valid-Until); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) valid_days: Option<u64>,
    /// The signing key.
    pub(crate) signing: SigningConfig,
}

/// Where the signing key is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SigningConfig {
    /// The armored secret key, relative to the repository root or absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<PathBuf>,
    /// Or: the id of a key in the local gpg keyring, which gpg signs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gpg_key: Option<String>,
}

impl RepoConfig {
    /// Reads and checks the configuration of the repository at `root`.
    pub(crate) fn load(root: &Path) -> Result<RepoConfig> {
        let path = root.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: cannot be read; is {} a repository? (create one with `debstage repo init`)",
                path.display(),
                root.display()
            )
        })?;
        let config: RepoConfig =
            toml::from_str(&text).with_context(|| format!("{}: invalid", path.display()))?;
        config
            .check()
            .with_context(|| format!("{}: invalid", path.display()))?;
        Ok(config)
    }

    /// Writes the configuration to `root/debstage-repo.toml`.
    pub(crate) fn save(&self, root: &Path) -> Result<()> {
        let path = root.join(FILE_NAME);
        let body = toml::to_string_pretty(self).context("the configuration cannot be encoded")?;
        let text =
            format!("# debstage apt repository: one suite per stage, in promotion order.\n{body}");
        std::fs::write(&path, text)
            .with_context(|| format!("{}: cannot be written", path.display()))
    }

    /// Checks every value against what is allowed.
    pub(crate) fn check(&self) -> Result<()> {
        rules::check_stage_list(&self.stages)
            .map_err(|reason| anyhow::anyhow!("stages: {reason}"))?;
        if self.architectures.is_empty() {
            bail!("architectures: at least one architecture is needed (for example amd64)");
        }
        for architecture in &self.architectures {
            if !crate::debian::names::is_served_architecture(architecture) {
                bail!(
                    "architectures: {architecture:?} must be a Debian architecture such as \
                     amd64 or arm64 (`all` packages are listed under each)"
                );
            }
        }
        if let Some(days) = self.valid_days {
            if !(1..=3660).contains(&days) {
                bail!(
                    "valid_days: {days} must be 1 to 3660 (Valid-Until that many days after Date)"
                );
            }
        }
        if self.signing.key.is_some() == self.signing.gpg_key.is_some() {
            bail!("signing: give exactly one of key (a key file) and gpg_key (a gpg key id)");
        }
        for (key, value) in [("origin", &self.origin), ("label", &self.label)] {
            let valid = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
            if !valid {
                bail!("{key}: {value:?} must be letters, digits and . _ + - (it names files)");
            }
        }
        Ok(())
    }

    /// The position of `stage` in promotion order, or an error that lists the stages.
    pub(crate) fn stage_index(&self, stage: &str) -> Result<usize> {
        self.stages
            .iter()
            .position(|known| known == stage)
            .with_context(|| {
                format!(
                    "stage {stage:?} is not a stage of this repository; the stages are {}",
                    self.stages.join(", ")
                )
            })
    }

    /// The signing key's path, when the key is a file.
    pub(crate) fn key_path(&self, root: &Path) -> Option<PathBuf> {
        self.signing.key.as_ref().map(|key| root.join(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RepoConfig {
        RepoConfig {
            origin: "debstage".into(),
            label: "debstage".into(),
            stages: vec!["test".into(), "production".into()],
            architectures: vec!["amd64".into()],
            valid_days: None,
            signing: SigningConfig {
                key: Some("private/signing-key.asc".into()),
                gpg_key: None,
            },
        }
    }

    #[test]
    fn checks_values() {
        assert!(config().check().is_ok());
        let mut bad = config();
        bad.stages.push("test".into());
        assert!(bad.check().is_err());
        let mut bad = config();
        bad.architectures = vec!["all".into()];
        assert!(bad.check().is_err());
        let mut bad = config();
        bad.origin = "a/b".into();
        assert!(bad.check().is_err());
        assert_eq!(config().stage_index("production").ok(), Some(1));
        assert!(config().stage_index("prod").is_err());
    }
}
