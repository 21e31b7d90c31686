//! The sections and keys of `debstage.toml` as serde reads them, with their defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole manifest, as written in `debstage.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Manifest {
    /// `[package]`: name, version and the control fields.
    pub(crate) package: PackageSection,
    /// `[environment]`: what becomes `/opt/<app>/<version>`.
    pub(crate) environment: Environment,
    /// `[files]`: include and exclude globs, extra files outside `/opt`.
    #[serde(default)]
    pub(crate) files: FilesSection,
    /// `[depends]`: declared system packages and soname rules.
    #[serde(default)]
    pub(crate) depends: DependsSection,
    /// `[service]`: the long-running process of each stage.
    pub(crate) service: Option<ServiceSection>,
    /// `[hooks]`: commands run by the stage packages.
    #[serde(default)]
    pub(crate) hooks: HooksSection,
    /// `[stages]`: the stage names in promotion order.
    #[serde(default)]
    pub(crate) stages: StagesSection,
    /// `[build]`: the distributions built for, what their build roots need, and how
    /// the staged tree is treated (stripping).
    #[serde(default)]
    pub(crate) build: BuildSection,
    /// `[layers]`: whether the third-party dependencies go into a layer package of their
    /// own.
    #[serde(default)]
    pub(crate) layers: LayersSection,
}

/// `[layers]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct LayersSection {
    /// Split the third-party dependencies into a layer package (`<app>-layer-<key>`) that
    /// the release depends on. Unset: on for the `python` and `node` kinds, off for the
    /// others.
    pub(crate) enabled: Option<bool>,
}

/// `[build]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct BuildSection {
    /// The distributions (codenames) `debstage build --target all` builds for, each in a
    /// root of its own.
    #[serde(default)]
    pub(crate) targets: Vec<String>,
    /// Debian packages installed into the build root of a target before the environment
    /// is built there (`python3-venv`, `libpq-dev`).
    #[serde(default)]
    pub(crate) packages: Vec<String>,
    /// Strip the ELF files of the release and put their debug information into the
    /// `<payload>-dbgsym` package. Unset: on for the `command` and `node` kinds, off for
    /// `python` (wheels ship their libraries stripped as their authors chose) and `dir`.
    pub(crate) strip: Option<bool>,
}

/// `[package]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct PackageSection {
    /// The application name; also the prefix of every package name.
    pub(crate) name: String,
    /// The upstream version; or see `version-file`.
    pub(crate) version: Option<String>,
    /// A file (relative to the manifest) whose first line is the version.
    pub(crate) version_file: Option<PathBuf>,
    /// The Debian revision (default "1").
    #[serde(default = "default_revision")]
    pub(crate) revision: String,
    /// `Name <email>` of whoever answers for the packages.
    pub(crate) maintainer: String,
    /// First line: the synopsis; further lines: the extended description.
    pub(crate) description: String,
    /// The project's home page.
    pub(crate) homepage: Option<String>,
    /// The license (SPDX expression), written into the copyright file.
    #[serde(default = "default_license")]
    pub(crate) license: String,
    /// The Debian section (default "misc").
    #[serde(default = "default_section")]
    pub(crate) section: String,
    /// The Debian priority (default "optional").
    #[serde(default = "default_priority")]
    pub(crate) priority: String,
    /// Forces the payload's architecture instead of detecting it from ELF files.
    pub(crate) architecture: Option<String>,
}

/// `[environment]`: one of the environment kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Environment {
    /// A directory tree, taken as it is.
    Dir(DirEnvironment),
    /// A Python virtualenv built from requirements, a project or wheels.
    Python(PythonEnvironment),
    /// The output of a build command run with `DESTDIR`.
    Command(CommandEnvironment),
    /// A Node.js application with its `node_modules`, installed by npm.
    Node(NodeEnvironment),
}

impl Environment {
    /// The kind's name as written in the manifest.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Environment::Dir(_) => "dir",
            Environment::Python(_) => "python",
            Environment::Command(_) => "command",
            Environment::Node(_) => "node",
        }
    }

    /// Whether the build strips ELF files when `[build] strip` is unset.
    pub(crate) fn strips_by_default(&self) -> bool {
        matches!(self, Environment::Command(_) | Environment::Node(_))
    }
}

/// `kind = "dir"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DirEnvironment {
    /// The directory (relative to the manifest) that becomes the release directory.
    pub(crate) source: PathBuf,
}

/// `kind = "python"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct PythonEnvironment {
    /// The interpreter that builds the environment; a Debian one under /usr/bin.
    #[serde(default = "default_python")]
    pub(crate) interpreter: PathBuf,
    /// A requirements file to install.
    pub(crate) requirements: Option<PathBuf>,
    /// A directory holding a pyproject.toml project to install.
    pub(crate) project: Option<PathBuf>,
    /// A directory of wheels to install from, without an index.
    pub(crate) wheels: Option<PathBuf>,
    /// A `uv.lock` or `poetry.lock` of the project: exactly its versions are installed,
    /// hashes checked.
    pub(crate) lock: Option<PathBuf>,
    /// Application files copied into the release directory beside the environment.
    pub(crate) source: Option<PathBuf>,
    /// Extra arguments for `pip install`.
    #[serde(default)]
    pub(crate) pip_args: Vec<String>,
}

/// `kind = "command"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct CommandEnvironment {
    /// The build command, run by `sh -c` with `DESTDIR`, `APP_NAME`, `APP_VERSION` set.
    pub(crate) command: String,
    /// The working directory (relative to the manifest; default: the manifest's directory).
    pub(crate) workdir: Option<PathBuf>,
}

/// `kind = "node"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct NodeEnvironment {
    /// The application (its `package.json` and `package-lock.json`), relative to the
    /// manifest; copied into the release directory without `node_modules` and `.git`.
    #[serde(default = "default_node_source")]
    pub(crate) source: PathBuf,
    /// The install command, run by `sh -c` in the release tree; by default the frozen
    /// install of the lockfile's package manager (`npm ci --omit=dev`, ...).
    pub(crate) command: Option<String>,
}

/// `[files]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FilesSection {
    /// Globs (relative to the release directory) of what to ship.
    #[serde(default = "default_include")]
    pub(crate) include: Vec<String>,
    /// Globs of what not to ship, applied after `include`.
    #[serde(default)]
    pub(crate) exclude: Vec<String>,
    /// Files installed outside `/opt`, shipped by each stage package.
    #[serde(default)]
    pub(crate) extra: Vec<ExtraFile>,
    /// Groups of files that the build leaves out by default and that should be kept
    /// (names of [`KeptGroup`], checked when the manifest is loaded).
    #[serde(default)]
    pub(crate) keep: Vec<String>,
}

impl Default for FilesSection {
    fn default() -> Self {
        FilesSection {
            include: default_include(),
            exclude: Vec::new(),
            extra: Vec::new(),
            keep: Vec::new(),
        }
    }
}

/// A group of files left out of the release by default (`[files] keep` names the ones
/// to ship anyway); see `crate::build::exclusions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeptGroup {
    /// Bookkeeping of installers: `.crates.toml` and `.crates2.json` of `cargo install`.
    InstallerFiles,
    /// What node-gyp leaves in a native module's `build/` beside its `.node` files.
    NodeGypBuild,
    /// Dotfiles of npm packages in `node_modules` (`.npmignore`, `.eslintrc`, ...).
    NodeDotfiles,
    /// Prebuilt native modules for other platforms, architectures or libcs.
    NodePrebuilds,
    /// What package managers keep about an install in `node_modules` (`.modules.yaml`,
    /// `.yarn-integrity`, `.cache/`).
    NodeBuildState,
    /// What only building or testing a package needs: native modules' C and C++
    /// sources, and the test folders of packages.
    NodeBuildOnly,
}

impl KeptGroup {
    /// Every group, in the order the documentation gives them.
    pub(crate) const ALL: [KeptGroup; 6] = [
        KeptGroup::InstallerFiles,
        KeptGroup::NodeGypBuild,
        KeptGroup::NodeDotfiles,
        KeptGroup::NodePrebuilds,
        KeptGroup::NodeBuildState,
        KeptGroup::NodeBuildOnly,
    ];

    /// The name written in `[files] keep`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeptGroup::InstallerFiles => "installer-files",
            KeptGroup::NodeGypBuild => "node-gyp-build",
            KeptGroup::NodeDotfiles => "node-dotfiles",
            KeptGroup::NodePrebuilds => "node-prebuilds",
            KeptGroup::NodeBuildState => "node-build-state",
            KeptGroup::NodeBuildOnly => "node-build-only",
        }
    }
}

/// One `[[files.extra]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ExtraFile {
    /// The file, relative to the manifest.
    pub(crate) source: PathBuf,
    /// The absolute destination; must contain `{stage}` so that stages can share a host.
    pub(crate) dest: String,
    /// The file mode in octal (default "0644").
    pub(crate) mode: Option<String>,
}

/// `[depends]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DependsSection {
    /// Declared system packages, in Depends syntax (`libpq5 (>= 15)`, `a | b`).
    #[serde(default)]
    pub(crate) packages: Vec<String>,
    /// Sonames that the tree needs but that no package should be found for.
    #[serde(default)]
    pub(crate) ignore_sonames: Vec<String>,
    /// Sonames mapped to a package by hand (`"libfoo.so.1" = "libfoo1 (>= 1.2)"`).
    #[serde(default)]
    pub(crate) sonames: BTreeMap<String, String>,
}

/// `[service]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ServiceSection {
    /// The command line; a relative program is taken from the stage's release directory.
    pub(crate) command: String,
    /// The system user the service runs as; created by the payload (default: root).
    pub(crate) user: Option<String>,
    /// The health check run after each restart.
    pub(crate) health: Option<HealthSection>,
    /// How long the unit must stay up after a restart (no restart, same main process)
    /// before the health check runs: `"5s"` (the default), `"500ms"`, `"0s"`.
    pub(crate) settle: Option<String>,
}

impl ServiceSection {
    /// The settle period in milliseconds (the default when unset or unreadable; a
    /// loaded manifest has had it checked).
    pub(crate) fn settle_milliseconds(&self) -> u64 {
        self.settle
            .as_deref()
            .map_or(Ok(DEFAULT_SETTLE_MILLISECONDS), parse_milliseconds)
            .unwrap_or(DEFAULT_SETTLE_MILLISECONDS)
    }
}

/// `[service] settle` when unset: long enough for a process that dies at start (a
/// missing module, a bad config) to be seen, short enough for every apt run.
pub(super) const DEFAULT_SETTLE_MILLISECONDS: u64 = 5_000;

/// The longest settle period allowed, in milliseconds (10 minutes).
pub(super) const MAX_SETTLE_MILLISECONDS: u64 = 600_000;

/// Reads a settle period (the grammar of every duration) into milliseconds.
pub(super) fn parse_milliseconds(text: &str) -> Result<u64, String> {
    crate::units::parse_duration(
        text,
        std::time::Duration::from_millis(MAX_SETTLE_MILLISECONDS),
    )
    .map(|duration| duration.as_millis() as u64)
}

/// `[service.health]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct HealthSection {
    /// The check's command line, relative to the release directory; exit 0 means healthy.
    pub(crate) command: String,
    /// How long to keep trying, in seconds (default 30).
    #[serde(default = "default_health_timeout")]
    pub(crate) timeout: u32,
}

/// `[hooks]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct HooksSection {
    /// Run against the new release before the stage link switches (migrations);
    /// relative to the release directory.
    pub(crate) activate: Option<String>,
}

/// `[stages]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct StagesSection {
    /// Stage names in promotion order.
    #[serde(default = "default_stages")]
    pub(crate) names: Vec<String>,
    /// How many releases a stage pointed to before stay safe from `apt-get autoremove`
    /// on a host (rollback without a download); 0 keeps none.
    #[serde(default = "default_keep")]
    pub(crate) keep: u32,
}

impl Default for StagesSection {
    fn default() -> Self {
        StagesSection {
            names: default_stages(),
            keep: default_keep(),
        }
    }
}

pub(super) fn default_revision() -> String {
    "1".to_string()
}

pub(super) fn default_license() -> String {
    "proprietary".to_string()
}

pub(super) fn default_section() -> String {
    "misc".to_string()
}

pub(super) fn default_priority() -> String {
    "optional".to_string()
}

pub(super) fn default_python() -> PathBuf {
    PathBuf::from("/usr/bin/python3")
}

pub(super) fn default_node_source() -> PathBuf {
    PathBuf::from(".")
}

pub(super) fn default_include() -> Vec<String> {
    vec!["**".to_string()]
}

pub(super) fn default_health_timeout() -> u32 {
    30
}

pub(super) fn default_keep() -> u32 {
    1
}

pub(super) fn default_stages() -> Vec<String> {
    vec![
        "test".to_string(),
        "staging".to_string(),
        "production".to_string(),
    ]
}

/// A command line from the manifest, split into checked words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandLine {
    /// The program: relative to the release directory, or absolute.
    pub(crate) program: String,
    /// The arguments.
    pub(crate) arguments: Vec<String>,
}
