//! `debstage-repo.toml`: origin, label, stages in order, architectures, signing key.

use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// How long published indexes and the pool files they name outlive their successors.
    #[serde(default)]
    pub(crate) retention: RetentionConfig,
    /// Limits on what `repo add` unpacks from a package.
    #[serde(default)]
    pub(crate) limits: LimitsConfig,
    /// `[[publish.targets]]`: object stores that get a copy of the published tree.
    #[serde(default, skip_serializing_if = "is_default_publish")]
    pub(crate) publish: crate::repo::targets::config::PublishConfig,
}

fn is_default_publish(publish: &crate::repo::targets::config::PublishConfig) -> bool {
    publish.targets.is_empty() && publish.dashboard && publish.valid_for.is_none()
}

/// `[retention]`: apt clients hold a cached `InRelease` and fetch the indexes it names by
/// hash, then the pool files those name; so an index generation stays served while it is
/// one of the last `generations` of its suite or was replaced less than `grace` ago, and
/// a pool file is deleted only once no generation still served names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetentionConfig {
    /// The number of by-hash generations kept per suite (the current one included), at
    /// least 3.
    #[serde(default = "default_generations")]
    pub(crate) generations: usize,
    /// How long a replaced generation stays served whatever its rank (`90s`, `30m`, `1h`,
    /// `2d`).
    #[serde(default = "default_grace")]
    pub(crate) grace: String,
}

fn default_generations() -> usize {
    3
}

fn default_grace() -> String {
    "1h".to_string()
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            generations: default_generations(),
            grace: default_grace(),
        }
    }
}

impl RetentionConfig {
    /// The grace period in seconds.
    pub(crate) fn grace_seconds(&self) -> Result<u64> {
        crate::units::parse_duration(&self.grace, crate::units::LONGEST_DURATION)
            .map(|grace| grace.as_secs())
            .map_err(|reason| anyhow::anyhow!("retention: grace {:?} {reason}", self.grace))
    }
}

/// `[limits]`: a package whose members unpack to more than this is refused by name (a
/// decompression bomb gets a clear error instead of minutes of work).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsConfig {
    /// The most bytes one member (`control.tar`, `data.tar`) may unpack to (`512MiB`,
    /// `16GiB`, or a number of bytes).
    #[serde(default = "default_unpacked_size")]
    pub(crate) unpacked_size: String,
    /// The most tar entries one member may hold.
    #[serde(default = "default_entries")]
    pub(crate) entries: u64,
}

fn default_unpacked_size() -> String {
    "16GiB".to_string()
}

fn default_entries() -> u64 {
    1_000_000
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            unpacked_size: default_unpacked_size(),
            entries: default_entries(),
        }
    }
}

impl LimitsConfig {
    /// The limits as numbers.
    pub(crate) fn unpack_limits(&self) -> Result<crate::deb::read::UnpackLimits> {
        let bytes = crate::units::parse_size(&self.unpacked_size, u64::MAX).map_err(|reason| {
            anyhow::anyhow!("limits: unpacked_size {:?} {reason}", self.unpacked_size)
        })?;
        if self.entries == 0 {
            bail!("limits: entries must be at least 1");
        }
        Ok(crate::deb::read::UnpackLimits {
            bytes,
            entries: self.entries,
        })
    }
}

/// Where the signing keys are: `[[signing.keys]]`, or (a repository made before keys
/// could change) one `key` or `gpg_key`, read as a set of one signing key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SigningConfig {
    /// The armored secret key, relative to the repository root or absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<PathBuf>,
    /// Or: the id of a key in the local gpg keyring, which gpg signs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gpg_key: Option<String>,
    /// The keyring package's version as versions before the state kept it wrote it
    /// here; read once to carry it into the state (`crate::repo::keyring::version`),
    /// never written again.
    #[serde(default, skip_serializing)]
    pub(crate) keyring_version: u64,
    /// Or: every key the repository has had, signing or retired, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) keys: Vec<KeyRecord>,
}

/// One key of `[[signing.keys]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyRecord {
    /// The primary key's fingerprint, upper-case hex.
    pub(crate) fingerprint: String,
    /// The armored secret key, relative to the repository root (under `private/`); absent
    /// for a key gpg holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<PathBuf>,
    /// `true`: gpg holds the key (its keyring or a token) and signs with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) gpg: bool,
    /// Whether the key signs.
    pub(crate) state: KeyState,
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyState {
    /// It signs every Release (unless it has expired), and clients are given it.
    Signing,
    /// It signs nothing, and clients are no longer given it.
    Retired,
}

impl KeyState {
    /// The word `repo key list` shows.
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyState::Signing => "signing",
            KeyState::Retired => "retired",
        }
    }
}

impl SigningConfig {
    /// The keyring package's version an older configuration recorded (1 when none).
    pub(crate) fn legacy_keyring_version(&self) -> u64 {
        self.keyring_version.max(1)
    }

    /// Checks that exactly one form is used and that every key record is whole.
    fn check(&self) -> Result<()> {
        let forms = usize::from(self.key.is_some())
            + usize::from(self.gpg_key.is_some())
            + usize::from(!self.keys.is_empty());
        if forms != 1 {
            bail!(
                "signing: give exactly one of key (a key file), gpg_key (a gpg key id) and \
                 [[signing.keys]]"
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, record) in self.keys.iter().enumerate() {
            let valid = record.fingerprint.len() == 40
                && record
                    .fingerprint
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c));
            if !valid {
                bail!(
                    "signing.keys[{index}]: fingerprint {:?} must be 40 upper-case hex digits",
                    record.fingerprint
                );
            }
            if !seen.insert(&record.fingerprint) {
                bail!(
                    "signing.keys[{index}]: fingerprint {} is listed twice",
                    record.fingerprint
                );
            }
            if record.file.is_some() == record.gpg {
                bail!(
                    "signing.keys[{index}]: give exactly one of file (a key file) and gpg = true"
                );
            }
        }
        Ok(())
    }
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
        Ok(fs_err::write(&path, text)?)
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
        self.valid_for()?;
        if self.retention.generations < 3 {
            bail!(
                "retention: generations {} must be at least 3 (apt clients hold a cached \
                 InRelease)",
                self.retention.generations
            );
        }
        self.retention.grace_seconds()?;
        self.limits.unpack_limits()?;
        crate::repo::targets::config::check_targets(&self.publish)?;
        self.signing.check()?;
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

    /// How long a Release stays valid after its Date (its `Valid-Until`): `[publish]
    /// valid_for`, or `valid_days` of older configurations; `None`: no Valid-Until.
    pub(crate) fn valid_for(&self) -> Result<Option<Duration>> {
        let Some(text) = &self.publish.valid_for else {
            return Ok(self
                .valid_days
                .map(|days| Duration::from_secs(days * 86_400)));
        };
        if self.valid_days.is_some() {
            bail!("publish: valid_for and valid_days both say how long a Release is valid: keep valid_for");
        }
        let valid_for = crate::units::parse_duration(text, crate::units::LONGEST_DURATION)
            .map_err(|reason| anyhow::anyhow!("publish: valid_for {text:?} {reason}"))?;
        if valid_for.as_secs() == 0 {
            bail!(
                "publish: valid_for {text:?} must be at least 1s (leave it out for a Release \
                 without Valid-Until)"
            );
        }
        Ok(Some(valid_for))
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
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid configuration signing with `private/signing-key.asc`.
    pub(crate) fn config() -> RepoConfig {
        RepoConfig {
            origin: "debstage".into(),
            label: "debstage".into(),
            stages: vec!["test".into(), "production".into()],
            architectures: vec!["amd64".into()],
            valid_days: None,
            signing: SigningConfig {
                key: Some("private/signing-key.asc".into()),
                ..Default::default()
            },
            retention: RetentionConfig::default(),
            limits: LimitsConfig::default(),
            publish: Default::default(),
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
        let mut bad = config();
        bad.retention.generations = 2;
        assert!(bad.check().is_err());
        let mut bad = config();
        bad.retention.grace = "1 hour".into();
        assert!(bad.check().is_err());
        let mut bad = config();
        bad.limits.unpacked_size = "12GB".into();
        assert!(bad.check().is_err());
    }

    #[test]
    fn valid_for_reads_the_duration_grammar() {
        let mut config = config();
        assert_eq!(config.valid_for().expect("none"), None);
        config.publish.valid_for = Some("7d".into());
        assert_eq!(
            config.valid_for().expect("7d"),
            Some(Duration::from_secs(7 * 86_400))
        );
        config.publish.valid_for = Some("36h".into());
        assert_eq!(
            config.valid_for().expect("36h"),
            Some(Duration::from_secs(36 * 3_600))
        );
        for bad in ["1w", "0", "400d", "seven days"] {
            config.publish.valid_for = Some(bad.into());
            let error = config.check().expect_err(bad).to_string();
            assert!(
                error.starts_with(&format!("publish: valid_for {bad:?}")),
                "{error}"
            );
        }
        config.publish.valid_for = Some("7d".into());
        config.valid_days = Some(7);
        assert!(config.check().is_err());
        config.publish.valid_for = None;
        assert_eq!(
            config.valid_for().expect("valid_days"),
            Some(Duration::from_secs(7 * 86_400))
        );
    }

    #[test]
    fn one_grammar_for_every_duration_key() {
        // The grace of [retention] and the lease of a target read the same words
        // (the lease once refused "1d" that the grace took).
        let mut config = config();
        config.retention.grace = "1d".into();
        assert_eq!(config.retention.grace_seconds().expect("grace"), 86_400);
        config.retention.grace = "1w".into();
        let error = config.retention.grace_seconds().expect_err("1w");
        assert!(error.to_string().contains("ms, s, m, h or d"), "{error}");
    }
}
