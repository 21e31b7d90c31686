//! `[[publish.targets]]` of `debstage-repo.toml`: where a copy of the published tree goes.
//! Nothing secret lives here: credentials come from the `AWS_*` variables or the profile
//! files (see [`crate::repo::targets::credentials`]).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::repo::targets::redact::redact;

/// `[publish]`: the targets the published tree is copied to, and the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishConfig {
    /// The targets, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) targets: Vec<TargetConfig>,
    /// Whether every publication writes the dashboard (`index.html`, `status.json`) at
    /// the tree's root; `false` for a repository whose history is nobody's business.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub(crate) dashboard: bool,
    /// How long each Release stays valid after its Date (`Valid-Until`), in the one
    /// duration grammar (`7d`); absent: no Valid-Until.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) valid_for: Option<String>,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            targets: Vec::new(),
            dashboard: true,
            valid_for: None,
        }
    }
}

fn is_true(value: &bool) -> bool {
    *value
}

/// One `[[publish.targets]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetConfig {
    /// The name `repo publish --target` and `repo verify --target` take.
    pub(crate) name: String,
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub(crate) url: String,
    /// The store's endpoint (`http://127.0.0.1:3900`, `https://<account>.r2.cloudflarestorage.com`);
    /// AWS itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) endpoint: Option<String>,
    /// The region the requests are signed for.
    #[serde(default = "default_region")]
    pub(crate) region: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual hosts.
    #[serde(default)]
    pub(crate) path_style: bool,
    /// Published to by every command that changes a suite, after the local tree.
    #[serde(default)]
    pub(crate) automatic: bool,
    /// Cache-Control max-age (seconds) of Release, InRelease and plain-name indexes.
    #[serde(default = "default_index_max_age")]
    pub(crate) index_max_age: u64,
    /// Whether the store must honour conditional writes (`If-None-Match: *`), which the
    /// lock object and create-only pool objects rely on. `false` is the opt-out for a
    /// store without them (Garage): then one writer at a time is up to the user.
    #[serde(default = "default_true")]
    pub(crate) conditional_writes: bool,
    /// How long the lock object's lease lasts (`90s`, `10m`): a writer that died is
    /// taken over after it.
    #[serde(default = "default_lease")]
    pub(crate) lease: String,
    /// Keep the state database on this target too, so that writers on several machines
    /// (without a shared disk) work on one repository; at most one target.
    #[serde(default)]
    pub(crate) share_state: bool,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

fn default_index_max_age() -> u64 {
    60
}

fn default_true() -> bool {
    true
}

fn default_lease() -> String {
    "10m".to_string()
}

/// The name of the private area's top folder (see [`TargetUrl::private_area`]).
pub(crate) const PRIVATE_AREA: &str = ".debstage";

/// A parsed `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetUrl {
    /// The bucket.
    pub(crate) bucket: String,
    /// The prefix without slashes at either end; empty for the bucket's root.
    pub(crate) prefix: String,
}

impl TargetUrl {
    /// Parses `s3://bucket[/prefix]`.
    pub(crate) fn parse(text: &str) -> Result<TargetUrl, String> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or("must start with s3:// (s3://bucket or s3://bucket/prefix)")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // Checked before the bucket and prefix are quoted, so that a secret is never shown.
        if bucket.contains('@') {
            return Err(
                "must not hold credentials (s3://KEY:SECRET@bucket): give them as \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or in a profile file"
                    .to_string(),
            );
        }
        if rest.contains(['?', '#']) {
            return Err("must not hold a query or a fragment (?... or #...)".to_string());
        }
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'));
        if !bucket_ok {
            return Err(format!(
                "bucket {bucket:?} must be 3 to 63 characters of a-z, 0-9, '.' and '-'"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|segment| {
            segment == "." || segment == ".." || (segment.is_empty() && !prefix.is_empty())
        }) {
            return Err(format!(
                "prefix {prefix:?} must not hold empty, . or .. segments"
            ));
        }
        if prefix.split('/').next() == Some(PRIVATE_AREA) {
            return Err(format!(
                "prefix {prefix:?} must not start with {PRIVATE_AREA}/: that is where debstage \
                 keeps its own objects (lock, shared state), outside the published tree"
            ));
        }
        Ok(TargetUrl {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The full key of `relative` (a path of the published tree).
    pub(crate) fn key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    /// Where debstage keeps its own objects for this target (the lock, the shared
    /// state, the clock and conditional-write probes): `.debstage/<prefix>` at the
    /// bucket's root, outside the published tree, so that a policy granting readers
    /// `<prefix>/*` never grants them. A target at the bucket's root has no outside: its
    /// private area is `.debstage` inside the published tree, which the README's policy
    /// (dists/, pool/ and the root files only) keeps from readers.
    pub(crate) fn private_area(&self) -> TargetUrl {
        TargetUrl {
            bucket: self.bucket.clone(),
            prefix: if self.prefix.is_empty() {
                PRIVATE_AREA.to_string()
            } else {
                format!("{PRIVATE_AREA}/{}", self.prefix)
            },
        }
    }

    /// Where debstage before the private area kept its objects: `<prefix>/.debstage`,
    /// inside the published tree (read once, to move a shared state out of it).
    pub(crate) fn legacy_area(&self) -> TargetUrl {
        TargetUrl {
            bucket: self.bucket.clone(),
            prefix: self.key(PRIVATE_AREA),
        }
    }

    /// `s3://bucket/prefix`, as messages show it.
    pub(crate) fn display(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// The prefix as an object path, `None` for the bucket's root.
    pub(crate) fn prefix_path(&self) -> Option<object_store::path::Path> {
        (!self.prefix.is_empty()).then(|| object_store::path::Path::from(self.prefix.as_str()))
    }

    /// The key relative to the prefix, `None` when outside it.
    pub(crate) fn relative(&self, key: &str) -> Option<String> {
        if self.prefix.is_empty() {
            return Some(key.to_string());
        }
        key.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .map(str::to_string)
    }
}

impl TargetConfig {
    /// The parsed URL (checked by [`check_targets`] when the configuration is loaded).
    pub(crate) fn parsed_url(&self) -> Result<TargetUrl> {
        TargetUrl::parse(&self.url).map_err(|reason| {
            anyhow::anyhow!(
                "[[publish.targets]] {:?}: url {:?} {reason}",
                self.name,
                redact(&self.url)
            )
        })
    }

    /// The lease in seconds.
    pub(crate) fn lease_seconds(&self) -> Result<u64> {
        crate::units::parse_duration(&self.lease, crate::units::LONGEST_DURATION)
            .map(|duration| duration.as_secs())
            .map_err(|reason| {
                anyhow::anyhow!("[[publish.targets]] {:?}: lease {reason}", self.name)
            })
    }
}

/// Checks the targets of a configuration: unique names of the allowed form, URLs,
/// endpoints and leases.
pub(crate) fn check_targets(publish: &PublishConfig) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for target in &publish.targets {
        let name = &target.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!("[[publish.targets]] name {name:?}: must match [A-Za-z0-9._-]+");
        }
        if !seen.insert(name.clone()) {
            bail!("[[publish.targets]] name {name:?}: appears twice; names must be unique");
        }
        target.parsed_url()?;
        if let Some(endpoint) = &target.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                bail!(
                    "[[publish.targets]] {name:?}: endpoint {:?} must start with \
                     http:// or https://",
                    redact(endpoint)
                );
            }
            if endpoint.contains(['?', '#']) {
                bail!(
                    "[[publish.targets]] {name:?}: endpoint {:?} must not hold a query or a \
                     fragment (?... or #...): the client adds the bucket and key after it",
                    redact(endpoint)
                );
            }
        }
        if target.share_state && !target.conditional_writes {
            bail!(
                "[[publish.targets]] {name:?}: share_state needs conditional_writes = true \
                 (the shared state is written back with If-Match)"
            );
        }
        if target.lease_seconds()? < 10 {
            bail!(
                "[[publish.targets]] {name:?}: lease {:?} must be at least 10s",
                target.lease
            );
        }
    }
    if publish
        .targets
        .iter()
        .filter(|target| target.share_state)
        .count()
        > 1
    {
        bail!("[[publish.targets]]: share_state may be set on one target only");
    }
    Ok(())
}

/// The target called `name`, or an error listing the configured ones.
pub(crate) fn find<'a>(publish: &'a PublishConfig, name: &str) -> Result<&'a TargetConfig> {
    publish
        .targets
        .iter()
        .find(|target| target.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = publish.targets.iter().map(|t| t.name.as_str()).collect();
            anyhow::anyhow!(
                "publish target {name:?}: not in [[publish.targets]] of debstage-repo.toml \
                 (configured: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = TargetUrl::parse("s3://apt-bucket/debstage/prod/").expect("valid");
        assert_eq!(url.bucket, "apt-bucket");
        assert_eq!(url.prefix, "debstage/prod");
        assert_eq!(
            url.key("dists/test/InRelease"),
            "debstage/prod/dists/test/InRelease"
        );
        assert_eq!(
            url.relative("debstage/prod/pool/a.deb").as_deref(),
            Some("pool/a.deb")
        );
        assert_eq!(url.relative("debstage/production/x"), None);
        let root = TargetUrl::parse("s3://apt").expect("valid");
        assert_eq!(root.key("pool/a.deb"), "pool/a.deb");
        assert_eq!(
            url.private_area().key("lock"),
            ".debstage/debstage/prod/lock"
        );
        assert_eq!(
            url.legacy_area().key("state.db"),
            "debstage/prod/.debstage/state.db"
        );
        assert_eq!(root.private_area().key("lock"), ".debstage/lock");
        assert_eq!(root.private_area(), root.legacy_area());
        assert!(TargetUrl::parse("https://apt/x").is_err());
        assert!(TargetUrl::parse("s3://Apt_Bucket").is_err());
        assert!(TargetUrl::parse("s3://apt/a/../b").is_err());
        assert!(TargetUrl::parse("s3://apt/a//b").is_err());
        assert!(TargetUrl::parse("s3://apt/.debstage/a").is_err());
    }

    #[test]
    fn target_table() {
        let publish: PublishConfig = toml::from_str(
            "[[targets]]\nname = \"garage\"\nurl = \"s3://apt/repo\"\n\
             endpoint = \"http://127.0.0.1:3900\"\nregion = \"garage\"\npath_style = true\n",
        )
        .expect("parses");
        check_targets(&publish).expect("valid");
        let target = find(&publish, "garage").expect("found");
        assert_eq!(target.index_max_age, 60);
        assert!(target.conditional_writes);
        assert!(!target.automatic);
        assert_eq!(target.lease_seconds().expect("lease"), 600);
        let error = find(&publish, "r2").expect_err("absent").to_string();
        assert!(error.contains("configured: garage"), "{error}");
        let twice: PublishConfig = toml::from_str(
            "[[targets]]\nname = \"a\"\nurl = \"s3://apt\"\n[[targets]]\nname = \"a\"\nurl = \"s3://apt\"\n",
        )
        .expect("parses");
        assert!(check_targets(&twice).is_err());
    }

    #[test]
    fn secrets_in_url_or_endpoint_are_refused_or_hidden_never_shown() {
        for (url, endpoint, expected) in [
            (
                "s3://AKIA1:TOPSECRET@apt/repo",
                "http://127.0.0.1:3900",
                "url \"s3://***@apt/repo\" must not hold credentials",
            ),
            (
                "s3://apt/repo?X-Amz-Signature=TOPSECRET",
                "http://127.0.0.1:3900",
                "url \"s3://apt/repo?X-Amz-Signature=***\" must not hold a query",
            ),
            (
                "s3://apt/repo",
                "https://store.example/?X-Amz-Signature=TOPSECRET",
                "endpoint \"https://store.example/?X-Amz-Signature=***\" must not hold a query",
            ),
            (
                "s3://apt/repo",
                "ftp://AKIA1:TOPSECRET@store",
                "endpoint \"ftp://***@store\" must start with http:// or https://",
            ),
        ] {
            let publish: PublishConfig = toml::from_str(&format!(
                "[[targets]]\nname = \"r2\"\nurl = \"{url}\"\nendpoint = \"{endpoint}\"\n"
            ))
            .expect("parses");
            let error = format!("{:#}", check_targets(&publish).expect_err("refused"));
            assert!(!error.contains("TOPSECRET"), "{error}");
            assert!(error.contains(expected), "{error}");
        }
    }
}
