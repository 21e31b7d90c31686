//! The naming contract between build, maintainer scripts and repository: every package
//! name, file name, path on the server, unit name and pin path comes from here, so the
//! three never drift apart. [`rules`] holds the checks every name and value must pass.
//!
//! For app `shop`, release `1.4.2-1` and stage `production`:
//! payload `shop-1.4.2` owning `/opt/shop/1.4.2`, stage package `shop-production`
//! switching `/opt/shop/production`, unit `shop-production.service`, pin
//! `/etc/apt/preferences.d/shop-production`, host state under `/var/lib/shop`.

pub(crate) mod build_manifest;
pub(crate) mod package_id;
// Used by `build --target` and the repository's distributions, which are being built on it.
#[allow(dead_code)]
pub(crate) mod distribution;
pub(crate) mod rules;

use serde::{Deserialize, Serialize};

pub(crate) use distribution::Distribution;

/// The names of one application that do not depend on a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppNames<'a> {
    app: &'a str,
}

impl<'a> AppNames<'a> {
    /// The names of `app` (already checked as a package name).
    pub(crate) fn new(app: &'a str) -> Self {
        AppNames { app }
    }

    /// The application's name, which is also the `Source` of all its packages.
    pub(crate) fn app(&self) -> &'a str {
        self.app
    }

    /// The stage package of `stage`: `<app>-<stage>`.
    pub(crate) fn stage_package(&self, stage: &str) -> String {
        format!("{}-{stage}", self.app)
    }

    /// The payload package of upstream version `upstream`: `<app>-<upstream>`, with `~`
    /// written as `-` because package names cannot hold it (`1.0~rc1` gives
    /// `shop-1.0-rc1`).
    pub(crate) fn payload_package(&self, upstream: &str) -> String {
        format!("{}-{}", self.app, upstream.replace('~', "-"))
    }

    /// The directory that holds the releases and the stage links: `/opt/<app>`.
    pub(crate) fn base_dir(&self) -> String {
        format!("/opt/{}", self.app)
    }

    /// The release directory of upstream version `upstream` on the server:
    /// `/opt/<app>/<upstream>`, the target of a stage link that points to it.
    pub(crate) fn release_dir(&self, upstream: &str) -> String {
        format!("/opt/{}/{upstream}", self.app)
    }

    /// The link a stage package switches: `/opt/<app>/<stage>`.
    pub(crate) fn stage_link(&self, stage: &str) -> String {
        format!("/opt/{}/{stage}", self.app)
    }

    /// Where the maintainer scripts keep the host's record of switches: `/var/lib/<app>`.
    pub(crate) fn state_dir(&self) -> String {
        format!("/var/lib/{}", self.app)
    }

    /// The apt configuration a stage package maintains so that the releases a stage
    /// pointed to before stay safe from `apt-get autoremove`.
    pub(crate) fn apt_keep_file(&self, stage: &str) -> String {
        format!(
            "/etc/apt/apt.conf.d/50debstage-{}",
            self.stage_package(stage)
        )
    }

    /// The node_exporter textfile a stage package writes on servers, in the directory
    /// Debian's `prometheus-node-exporter` reads:
    /// `/var/lib/prometheus/node-exporter/debstage_<app>_<stage>.prom`.
    pub(crate) fn metrics_file(&self, stage: &str) -> String {
        format!(
            "/var/lib/prometheus/node-exporter/debstage_{}_{stage}.prom",
            self.app
        )
    }

    /// The systemd unit of a stage: `<app>-<stage>.service`.
    pub(crate) fn unit_name(&self, stage: &str) -> String {
        format!("{}.service", self.stage_package(stage))
    }

    /// The unit file a stage package ships, relative to `/`.
    pub(crate) fn unit_path(&self, stage: &str) -> String {
        format!("lib/systemd/system/{}", self.unit_name(stage))
    }

    /// The apt pin a stage package ships, relative to `/`.
    pub(crate) fn pin_path(&self, stage: &str) -> String {
        format!("etc/apt/preferences.d/{}", self.stage_package(stage))
    }

    /// The layer package of layer key `key` (see `build::env::python_layer`):
    /// `<app>-layer-<key>`. Its version is always [`layer_version`]: the key in the name
    /// already says what it holds, and the same key must give the same bytes.
    pub(crate) fn layer_package(&self, key: &str) -> String {
        format!("{}{LAYER_INFIX}{key}", self.app)
    }

    /// Where a layer is installed on the server: `/opt/<app>/.layers/<key>`, a hidden
    /// directory beside the releases, so that no stage or version name can take it.
    pub(crate) fn layer_dir(&self, key: &str) -> String {
        format!("/opt/{}/{LAYERS_DIRECTORY}/{key}", self.app)
    }

    /// The layer's directory as a release directory (`/opt/<app>/<version>`) reaches it
    /// through a relative link: `../.layers/<key>`, the same for every release.
    pub(crate) fn layer_dir_from_release(&self, key: &str) -> String {
        format!("../{LAYERS_DIRECTORY}/{key}")
    }

    /// The layer key of a layer package of this application, or `None` when `package` is
    /// not one: the inverse of [`AppNames::layer_package`].
    pub(crate) fn layer_key<'p>(&self, package: &'p str) -> Option<&'p str> {
        let key = package.strip_prefix(self.app)?.strip_prefix(LAYER_INFIX)?;
        is_layer_key(key).then_some(key)
    }

    /// The names of one release of this application.
    pub(crate) fn release(&self, upstream: &'a str, revision: &'a str) -> ReleaseNames<'a> {
        ReleaseNames {
            app: *self,
            upstream,
            revision,
            distribution: None,
        }
    }

    /// What a package of this application is, from its name and the upstream part of its
    /// version: the inverse of [`ReleaseNames::payload_package`] and
    /// [`AppNames::stage_package`]. `None` when the name fits neither.
    /// Gives the role and, for a stage package, its stage.
    pub(crate) fn role_of(
        &self,
        package: &str,
        upstream: &str,
        stages: &[String],
    ) -> Option<(Role, Option<String>)> {
        if self.layer_key(package).is_some() {
            return Some((Role::Layer, None));
        }
        let payload = self.payload_package(upstream);
        if package == payload {
            return Some((Role::Payload, None));
        }
        if package.strip_prefix(payload.as_str()) == Some(DBGSYM_SUFFIX) {
            return Some((Role::Dbgsym, None));
        }
        let rest = package.strip_prefix(self.app)?.strip_prefix('-')?;
        stages
            .iter()
            .any(|stage| stage == rest)
            .then(|| (Role::Stage, Some(rest.to_string())))
    }
}

/// The names of one release (`upstream-revision`) of an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReleaseNames<'a> {
    app: AppNames<'a>,
    upstream: &'a str,
    revision: &'a str,
    distribution: Option<Distribution>,
}

#[allow(dead_code)] // for_distribution, release_version, dbgsym_package: see distribution
impl<'a> ReleaseNames<'a> {
    /// The same release built for `distribution` (`None`: on the build host, no suffix).
    pub(crate) fn for_distribution(self, distribution: Option<Distribution>) -> Self {
        ReleaseNames {
            distribution,
            ..self
        }
    }

    /// The distribution this build is for, if any.
    pub(crate) fn distribution(&self) -> Option<Distribution> {
        self.distribution
    }

    /// The names that do not depend on the release.
    pub(crate) fn app(&self) -> AppNames<'a> {
        self.app
    }

    /// The full Debian version of every package of the release: `upstream-revision`,
    /// with the distribution's suffix for a build for one (`1.0-1+deb12`).
    pub(crate) fn debian_version(&self) -> String {
        let suffix = self
            .distribution
            .map(|distribution| distribution.version_suffix())
            .unwrap_or_default();
        format!("{}-{}{suffix}", self.upstream, self.revision)
    }

    /// The release without a distribution: `upstream-revision`, what a user names in
    /// `repo promote` to mean the build of every distribution.
    pub(crate) fn release_version(&self) -> String {
        format!("{}-{}", self.upstream, self.revision)
    }

    /// The payload package (see [`AppNames::payload_package`]).
    pub(crate) fn payload_package(&self) -> String {
        self.app.payload_package(self.upstream)
    }

    /// The debug symbols of the payload: `<payload>-dbgsym`, as Debian names them.
    pub(crate) fn dbgsym_package(&self) -> String {
        self.payload_package() + DBGSYM_SUFFIX
    }

    /// The release directory on the server: `/opt/<app>/<upstream>`.
    pub(crate) fn release_dir(&self) -> String {
        self.app.release_dir(self.upstream)
    }

    /// The build manifest's file name: `<app>_<upstream>-<revision>.build.json`.
    pub(crate) fn build_manifest_file(&self) -> String {
        format!("{}_{}.build.json", self.app.app, self.debian_version())
    }

    /// The file a failed build keeps `tool`'s log in, beside the build manifest:
    /// `<app>_<upstream>-<revision>.<tool>.log`.
    pub(crate) fn build_log_file(&self, tool: &str) -> String {
        format!("{}_{}.{tool}.log", self.app.app, self.debian_version())
    }
}

/// What Debian appends to a package's name for the package of its debug symbols.
const DBGSYM_SUFFIX: &str = "-dbgsym";

/// What joins the application and the key in a layer package's name.
const LAYER_INFIX: &str = "-layer-";

/// The Version of every layer package (see [`AppNames::layer_package`]) built on the
/// build host.
pub(crate) const LAYER_VERSION: &str = "1";

/// The Version of every layer package built for `distribution`: [`LAYER_VERSION`] with
/// the distribution's suffix (`1+deb12`), so that the repository files it in that
/// distribution's suites as it does the releases.
pub(crate) fn layer_version(distribution: Option<Distribution>) -> String {
    let suffix = distribution
        .map(|distribution| distribution.version_suffix())
        .unwrap_or_default();
    format!("{LAYER_VERSION}{suffix}")
}

/// The directory beside the releases (`/opt/<app>/.layers`) that holds the layers.
const LAYERS_DIRECTORY: &str = ".layers";

/// How many hexadecimal digits of the layer's hash its key keeps (64 bits: a collision
/// between two dependency sets of one application is not a practical concern).
pub(crate) const LAYER_KEY_LENGTH: usize = 16;

/// Whether `key` has the form of a layer key: [`LAYER_KEY_LENGTH`] lowercase hexadecimal
/// digits.
pub(crate) fn is_layer_key(key: &str) -> bool {
    key.len() == LAYER_KEY_LENGTH
        && key
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// The keyring package of a repository whose Origin is `origin`:
/// `<origin>-archive-keyring`, lower-cased, with `-` for `_` (a Debian package name has
/// neither capitals nor `_`).
pub(crate) fn archive_keyring_package(origin: &str) -> Result<String, String> {
    let name = format!(
        "{}-archive-keyring",
        origin.to_ascii_lowercase().replace('_', "-")
    );
    crate::debian::names::check_package_name(&name)
        .map_err(|reason| format!("gives the keyring package {name:?}, which {reason}"))?;
    Ok(name)
}

/// The node_exporter textfile the keyring package's scripts write on servers, beside
/// the stage packages' (see [`AppNames::metrics_file`]):
/// `/var/lib/prometheus/node-exporter/debstage_<package>.prom`.
pub(crate) fn archive_keyring_metrics_file(package: &str) -> String {
    format!("/var/lib/prometheus/node-exporter/debstage_{package}.prom")
}

/// Where the keyring package installs the keys apt's `Signed-By` names.
pub(crate) fn archive_keyring_path(package: &str) -> String {
    format!("/usr/share/keyrings/{package}.gpg")
}

/// The file name Debian gives a package: `<package>_<version without epoch>_<arch>.deb`.
pub(crate) fn deb_file_name(package: &str, version: &str, architecture: &str) -> String {
    let version = version.split_once(':').map_or(version, |(_, rest)| rest);
    format!("{package}_{version}_{architecture}.deb")
}

/// What a package is to debstage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// The immutable release of an application version (`<app>-<upstream>`).
    Payload,
    /// The pointer package of one stage (`<app>-<stage>`).
    Stage,
    /// A package debstage did not build, listed like a payload.
    Plain,
    /// The debug symbols of a payload (`<payload>-dbgsym`), which travel with it.
    Dbgsym,
    /// The third-party dependencies of one or more payloads (`<app>-layer-<key>`), which
    /// travel with every payload that depends on it.
    Layer,
}

impl Role {
    /// The name stored in the database and written in JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Payload => "payload",
            Role::Stage => "stage",
            Role::Plain => "plain",
            Role::Dbgsym => "dbgsym",
            Role::Layer => "layer",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_a_release() {
        let names = AppNames::new("shop");
        let release = names.release("1.0~rc1", "2");
        assert_eq!(release.payload_package(), "shop-1.0-rc1");
        assert_eq!(release.debian_version(), "1.0~rc1-2");
        assert_eq!(release.release_dir(), "/opt/shop/1.0~rc1");
        assert_eq!(release.build_manifest_file(), "shop_1.0~rc1-2.build.json");
        assert_eq!(release.build_log_file("pip"), "shop_1.0~rc1-2.pip.log");
        assert_eq!(release.dbgsym_package(), "shop-1.0-rc1-dbgsym");
        let bookworm = Distribution::by_codename("bookworm").ok();
        let built = release.for_distribution(bookworm);
        assert_eq!(built.debian_version(), "1.0~rc1-2+deb12");
        assert_eq!(built.release_version(), "1.0~rc1-2");
        assert_eq!(built.payload_package(), "shop-1.0-rc1");
        assert_eq!(names.stage_link("production"), "/opt/shop/production");
        assert_eq!(
            names.unit_path("test"),
            "lib/systemd/system/shop-test.service"
        );
        assert_eq!(names.pin_path("test"), "etc/apt/preferences.d/shop-test");
        assert_eq!(
            deb_file_name("shop-1.0", "1:1.0-1", "all"),
            "shop-1.0_1.0-1_all.deb"
        );
    }

    #[test]
    fn roles_are_the_inverse_of_the_names() {
        let names = AppNames::new("shop");
        let stages = vec!["test".to_string(), "production".to_string()];
        let release = names.release("1.0~rc1", "1");
        assert_eq!(
            names.role_of(&release.payload_package(), "1.0~rc1", &stages),
            Some((Role::Payload, None))
        );
        assert_eq!(
            names.role_of(&names.stage_package("test"), "1.0~rc1", &stages),
            Some((Role::Stage, Some("test".into())))
        );
        assert_eq!(
            names.role_of(&release.dbgsym_package(), "1.0~rc1", &stages),
            Some((Role::Dbgsym, None))
        );
        assert_eq!(names.role_of("shop-staging", "1.0", &stages), None);
        let layer = names.layer_package("0123456789abcdef");
        assert_eq!(layer, "shop-layer-0123456789abcdef");
        assert_eq!(
            names.role_of(&layer, "1.0", &stages),
            Some((Role::Layer, None))
        );
        assert_eq!(names.layer_key(&layer), Some("0123456789abcdef"));
        assert_eq!(
            names.layer_dir("0123456789abcdef"),
            "/opt/shop/.layers/0123456789abcdef"
        );
        assert_eq!(names.layer_key("shop-layer-0123"), None);
        assert_eq!(names.layer_key("shop-layer-0123456789ABCDEF"), None);
        assert_eq!(names.role_of("shopx-test", "1.0", &stages), None);
        assert_eq!(names.role_of("other-1.0", "1.0", &stages), None);
    }
}
