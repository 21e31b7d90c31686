//! `debstage.toml`: the types, their defaults, and validation whose errors name the file,
//! the key, what was found and what is allowed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::debian::names;
use crate::debian::version::Version;
use crate::naming::distribution::{self, Distribution};
use crate::naming::rules;
use crate::naming::{AppNames, ReleaseNames};

/// A manifest value that is not allowed, located by file and key.
#[derive(Debug, thiserror::Error)]
pub(crate) struct ManifestError {
    /// The manifest file.
    pub(crate) file: PathBuf,
    /// The section and key, as `[package] name`.
    pub(crate) key: String,
    /// What is wrong and what is allowed.
    pub(crate) message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}: {}: {}",
            self.file.display(),
            self.key,
            self.message
        )
    }
}

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
const DEFAULT_SETTLE_MILLISECONDS: u64 = 5_000;

/// The longest settle period allowed, in milliseconds (10 minutes).
const MAX_SETTLE_MILLISECONDS: u64 = 600_000;

/// Reads a settle period (the grammar of every duration) into milliseconds.
fn parse_milliseconds(text: &str) -> Result<u64, String> {
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

fn default_revision() -> String {
    "1".to_string()
}
fn default_license() -> String {
    "proprietary".to_string()
}
fn default_section() -> String {
    "misc".to_string()
}
fn default_priority() -> String {
    "optional".to_string()
}
fn default_python() -> PathBuf {
    PathBuf::from("/usr/bin/python3")
}
fn default_node_source() -> PathBuf {
    PathBuf::from(".")
}
fn default_include() -> Vec<String> {
    vec!["**".to_string()]
}
fn default_health_timeout() -> u32 {
    30
}
fn default_keep() -> u32 {
    1
}
fn default_stages() -> Vec<String> {
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

/// A manifest that has been read and checked, with the values the build needs resolved.
#[derive(Debug, Clone)]
pub(crate) struct LoadedManifest {
    /// The manifest as written.
    pub(crate) manifest: Manifest,
    /// The manifest file.
    pub(crate) path: PathBuf,
    /// The directory relative paths are resolved against.
    pub(crate) directory: PathBuf,
    /// The upstream version (from the manifest, the version file or `--version`).
    pub(crate) version: String,
    /// The Debian revision.
    pub(crate) revision: String,
    /// The service command, split and checked.
    pub(crate) service_command: Option<CommandLine>,
    /// The health check, split and checked.
    pub(crate) health_command: Option<CommandLine>,
    /// The activation hook, split and checked.
    pub(crate) activate_hook: Option<CommandLine>,
    /// The distribution this build is for (`--target`); `None` builds on the host.
    pub(crate) target: Option<Distribution>,
}

impl LoadedManifest {
    /// The application name.
    pub(crate) fn app(&self) -> &str {
        &self.manifest.package.name
    }

    /// The names of this release (packages, paths, units), from the naming contract.
    pub(crate) fn names(&self) -> ReleaseNames<'_> {
        AppNames::new(self.app())
            .release(&self.version, &self.revision)
            .for_distribution(self.target)
    }

    /// The same manifest, built for `target`.
    pub(crate) fn for_target(&self, target: Option<Distribution>) -> LoadedManifest {
        LoadedManifest {
            target,
            ..self.clone()
        }
    }

    /// What `--target` asks of this manifest: `None` (no `--target`) builds once on the
    /// host; a codename builds for that distribution; `all` builds for each of
    /// `[build] targets`, in their order.
    pub(crate) fn targets(
        &self,
        requested: Option<&str>,
    ) -> Result<Vec<Option<Distribution>>, ManifestError> {
        match requested {
            None => Ok(vec![None]),
            Some(ALL_TARGETS) => {
                if self.manifest.build.targets.is_empty() {
                    return Err(self.error(
                        "[build] targets",
                        "is empty: `--target all` builds for each distribution it lists \
                         (for example targets = [\"bookworm\", \"trixie\"])",
                    ));
                }
                // Checked when the manifest was loaded.
                Ok(self
                    .manifest
                    .build
                    .targets
                    .iter()
                    .filter_map(|codename| Distribution::by_codename(codename).ok())
                    .map(Some)
                    .collect())
            }
            Some(codename) => Distribution::by_codename(codename)
                .map(|target| vec![Some(target)])
                .map_err(|_| {
                    self.error(
                        "--target",
                        format!(
                            "{codename:?} is not a distribution debstage knows; known: {}, \
                             or `all` for each of [build] targets",
                            distribution::known_codenames().join(", ")
                        ),
                    )
                }),
        }
    }

    /// Resolves a manifest-relative path.
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        self.directory.join(path)
    }

    /// Whether the build strips the release's ELF files (`[build] strip`, else the
    /// environment kind's default).
    pub(crate) fn strip(&self) -> bool {
        self.manifest
            .build
            .strip
            .unwrap_or_else(|| self.manifest.environment.strips_by_default())
    }

    /// Whether the build writes the dependencies into a layer package (`[layers] enabled`,
    /// else the environment kind's default).
    pub(crate) fn layered(&self) -> bool {
        self.manifest.layers.enabled.unwrap_or(matches!(
            self.manifest.environment,
            Environment::Python(_) | Environment::Node(_)
        ))
    }

    /// An error about `key` of this manifest.
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.path.clone(),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Reads and checks a manifest; `version` and `revision` override the file's values.
pub(crate) fn load(
    path: &Path,
    version: Option<&str>,
    revision: Option<&str>,
) -> Result<LoadedManifest, ManifestError> {
    let fail = |key: &str, message: String| ManifestError {
        file: path.to_path_buf(),
        key: key.to_string(),
        message,
    };
    let manifest = parse(path, &fail)?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let package = &manifest.package;
    names::check_package_name(&package.name)
        .map_err(|message| fail("[package] name", format!("{:?}: {message}", package.name)))?;
    let version = match version {
        Some(version) => {
            check_upstream_version(version).map_err(|message| {
                fail(
                    "--version",
                    format!(
                        "{version:?}: {message} (the value came from --version, not the manifest)"
                    ),
                )
            })?;
            version.to_string()
        }
        None => manifest_version(package, &directory, &fail)?,
    };
    let revision = revision.unwrap_or(&package.revision).to_string();
    check_revision(&revision)
        .map_err(|message| fail("[package] revision", format!("{revision:?}: {message}")))?;
    let payload = AppNames::new(&package.name)
        .release(&version, &revision)
        .payload_package();
    names::check_package_name(&payload).map_err(|message| {
        fail(
            "[package] version",
            format!("payload package name {payload:?} {message}"),
        )
    })?;
    check_package_fields(package, &fail)?;
    check_environment(&manifest.environment, &directory, &fail)?;
    check_files(&manifest.files, &directory, &fail)?;
    check_depends(&manifest.depends, &fail)?;
    check_stages(&manifest.stages, &package.name, &payload, &fail)?;
    check_build(&manifest.build, &fail)?;
    let (service_command, health_command) = parse_service(manifest.service.as_ref(), &fail)?;
    let activate_hook = match &manifest.hooks.activate {
        Some(hook) => Some(
            parse_command_line(hook, false).map_err(|message| fail("[hooks] activate", message))?,
        ),
        None => None,
    };
    Ok(LoadedManifest {
        manifest,
        path: path.to_path_buf(),
        directory,
        version,
        revision,
        service_command,
        health_command,
        activate_hook,
        target: None,
    })
}

/// The `--target` value that builds for each distribution of `[build] targets`.
pub(crate) const ALL_TARGETS: &str = "all";

/// `[build]`: known distributions, each once; Debian package names.
fn check_build(build: &BuildSection, fail: &Fail<'_>) -> Result<(), ManifestError> {
    for (index, codename) in build.targets.iter().enumerate() {
        let key = format!("[build] targets[{index}]");
        if Distribution::by_codename(codename).is_err() {
            return Err(fail(
                &key,
                format!(
                    "{codename:?} is not a distribution debstage knows; known: {}",
                    distribution::known_codenames().join(", ")
                ),
            ));
        }
        if build.targets[..index].contains(codename) {
            return Err(fail(&key, format!("{codename:?} is listed twice")));
        }
    }
    for (index, package) in build.packages.iter().enumerate() {
        names::check_package_name(package).map_err(|message| {
            fail(
                &format!("[build] packages[{index}]"),
                format!("{package:?}: {message} (a Debian package name, without a version)"),
            )
        })?;
    }
    Ok(())
}

/// The error maker every check of one manifest file shares.
type Fail<'a> = dyn Fn(&str, String) -> ManifestError + 'a;

/// Reads and decodes the file; a syntax error names its line.
fn parse(path: &Path, fail: &Fail<'_>) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        let hint = if error.kind() == std::io::ErrorKind::NotFound {
            "; run `debstage init DIR` to write one, or give its path with --manifest"
        } else {
            ""
        };
        fail("file", format!("cannot be read: {error}{hint}"))
    })?;
    toml::from_str(&text).map_err(|error| {
        let key = error
            .span()
            .map(|span| format!("line {}", text[..span.start].lines().count().max(1)))
            .unwrap_or_else(|| "syntax".to_string());
        fail(&key, error.message().trim_end().to_string())
    })
}

/// Resolves `path` (relative to the application directory, links followed) and checks
/// that it stays inside that directory: a manifest reads only its application's files.
fn inside_application(directory: &Path, path: &Path) -> Result<PathBuf, String> {
    let full = directory.join(path);
    let resolved = std::fs::canonicalize(&full)
        .map_err(|error| format!("{}: cannot be read: {error}", full.display()))?;
    let root = std::fs::canonicalize(directory)
        .map_err(|error| format!("{}: cannot be read: {error}", directory.display()))?;
    if !resolved.starts_with(&root) {
        return Err(format!(
            "{}: leads outside the application directory {} (a manifest may read only its \
             application's files)",
            full.display(),
            root.display()
        ));
    }
    Ok(resolved)
}

/// The upstream version the manifest gives: `version`, or the first line of
/// `version-file`. An error about the file's line never shows its text.
fn manifest_version(
    package: &PackageSection,
    directory: &Path,
    fail: &Fail<'_>,
) -> Result<String, ManifestError> {
    let version = match (&package.version, &package.version_file) {
        (Some(_), Some(_)) => {
            return Err(fail(
                "[package] version",
                "set either version or version-file, not both".into(),
            ))
        }
        (Some(version), None) => version.clone(),
        (None, Some(file)) => {
            let key = "[package] version-file";
            let full = inside_application(directory, file).map_err(|message| fail(key, message))?;
            let text = std::fs::read_to_string(&full).map_err(|error| {
                fail(key, format!("{}: cannot be read: {error}", full.display()))
            })?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            return check_upstream_version(&line)
                .map(|()| line)
                .map_err(|message| {
                    fail(
                        key,
                        format!(
                            "{}: its first line is not a version: {message}",
                            full.display()
                        ),
                    )
                });
        }
        (None, None) => {
            return Err(fail(
                "[package] version",
                "missing: set version or version-file".into(),
            ))
        }
    };
    check_upstream_version(&version)
        .map_err(|message| fail("[package] version", format!("{version:?}: {message}")))?;
    Ok(version)
}

/// The free-text and enumerated fields of `[package]`.
fn check_package_fields(package: &PackageSection, fail: &Fail<'_>) -> Result<(), ManifestError> {
    check_maintainer(&package.maintainer).map_err(|message| {
        fail(
            "[package] maintainer",
            format!("{:?}: {message}", package.maintainer),
        )
    })?;
    let synopsis = package.description.lines().next().unwrap_or("").trim();
    if synopsis.is_empty() || synopsis.len() > 80 {
        return Err(fail(
            "[package] description",
            "the first line (the synopsis) must hold 1 to 80 characters".into(),
        ));
    }
    if let Some(bad) = package
        .description
        .chars()
        .find(|c| c.is_control() && *c != '\n')
    {
        return Err(fail(
            "[package] description",
            format!("has the control character {bad:?}"),
        ));
    }
    for (key, value) in [
        ("[package] homepage", package.homepage.as_deref()),
        ("[package] license", Some(package.license.as_str())),
        ("[package] section", Some(package.section.as_str())),
    ] {
        if let Some(value) = value {
            rules::check_single_line(value).map_err(|message| fail(key, message))?;
        }
    }
    if let Some(homepage) = &package.homepage {
        if !(homepage.starts_with("https://") || homepage.starts_with("http://")) {
            return Err(fail(
                "[package] homepage",
                format!("{homepage:?}: must be an http(s) URL"),
            ));
        }
    }
    if !["required", "important", "standard", "optional", "extra"]
        .contains(&package.priority.as_str())
    {
        return Err(fail(
            "[package] priority",
            format!(
                "{:?}: must be one of required, important, standard, optional",
                package.priority
            ),
        ));
    }
    if let Some(architecture) = &package.architecture {
        names::check_architecture(architecture).map_err(|message| {
            fail(
                "[package] architecture",
                format!("{architecture:?}: {message}"),
            )
        })?;
    }
    Ok(())
}

/// `[files]`: the globs compile; each extra file has an allowed destination and a source
/// inside the application directory.
fn check_files(
    files: &FilesSection,
    directory: &Path,
    fail: &Fail<'_>,
) -> Result<(), ManifestError> {
    for (index, pattern) in files.include.iter().chain(&files.exclude).enumerate() {
        globset::Glob::new(pattern).map_err(|error| {
            let key = if index < files.include.len() {
                "include"
            } else {
                "exclude"
            };
            fail(&format!("[files] {key}"), format!("{pattern:?}: {error}"))
        })?;
    }
    for name in &files.keep {
        if !KeptGroup::ALL.iter().any(|group| group.name() == name) {
            return Err(fail(
                "[files] keep",
                format!(
                    "{name:?}: must be one of {}",
                    KeptGroup::ALL.map(KeptGroup::name).join(", ")
                ),
            ));
        }
    }
    for extra in &files.extra {
        let key = "[[files.extra]] dest";
        rules::check_absolute_path(&extra.dest.replace("{stage}", "stage"))
            .map_err(|message| fail(key, format!("{:?}: {message}", extra.dest)))?;
        if !extra.dest.contains("{stage}") {
            return Err(fail(
                key,
                format!("{:?}: must contain {{stage}}, because each stage package ships its own copy and stages can share a host", extra.dest),
            ));
        }
        if extra.dest.starts_with("/opt/") {
            return Err(fail(
                key,
                format!(
                    "{:?}: files under /opt belong in the environment",
                    extra.dest
                ),
            ));
        }
        let source = inside_application(directory, &extra.source)
            .map_err(|message| fail("[[files.extra]] source", message))?;
        if !source.is_file() {
            return Err(fail(
                "[[files.extra]] source",
                format!("{}: not a regular file", source.display()),
            ));
        }
        if let Some(mode) = &extra.mode {
            parse_mode(mode)
                .map_err(|message| fail("[[files.extra]] mode", format!("{mode:?}: {message}")))?;
        }
    }
    Ok(())
}

/// `[depends]`: every relation has Debian's syntax.
fn check_depends(depends: &DependsSection, fail: &Fail<'_>) -> Result<(), ManifestError> {
    for (index, relation) in depends.packages.iter().enumerate() {
        crate::debian::control::check_relation(relation).map_err(|message| {
            fail(
                &format!("[depends] packages[{index}]"),
                format!("{relation:?}: {message}"),
            )
        })?;
    }
    for (soname, relation) in &depends.sonames {
        crate::debian::control::check_relation(relation).map_err(|message| {
            fail(
                &format!("[depends.sonames] {soname:?}"),
                format!("{relation:?}: {message}"),
            )
        })?;
    }
    Ok(())
}

/// `[stages]`: the one stage-list rule, and no stage package named like the payload.
fn check_stages(
    stages: &StagesSection,
    app: &str,
    payload: &str,
    fail: &Fail<'_>,
) -> Result<(), ManifestError> {
    rules::check_stage_list(&stages.names).map_err(|message| fail("[stages] names", message))?;
    if stages.keep > 100 {
        return Err(fail(
            "[stages] keep",
            format!("{}: must be 0 to 100", stages.keep),
        ));
    }
    for stage in &stages.names {
        let stage_package = AppNames::new(app).stage_package(stage);
        if stage_package == payload {
            return Err(fail(
                "[stages] names",
                format!("{stage:?}: stage package {stage_package:?} would have the payload's name"),
            ));
        }
    }
    Ok(())
}

/// `[service]`: the user, the command and the health check, split and checked.
fn parse_service(
    service: Option<&ServiceSection>,
    fail: &Fail<'_>,
) -> Result<(Option<CommandLine>, Option<CommandLine>), ManifestError> {
    let Some(service) = service else {
        return Ok((None, None));
    };
    if let Some(settle) = &service.settle {
        parse_milliseconds(settle)
            .map_err(|message| fail("[service] settle", format!("{settle:?}: {message}")))?;
    }
    if let Some(user) = &service.user {
        rules::check_user_name(user)
            .map_err(|message| fail("[service] user", format!("{user:?}: {message}")))?;
    }
    let command = parse_command_line(&service.command, true)
        .map_err(|message| fail("[service] command", message))?;
    let health = match &service.health {
        Some(health) => {
            if health.timeout == 0 || health.timeout > 3600 {
                return Err(fail(
                    "[service.health] timeout",
                    format!("{}: must be 1 to 3600 seconds", health.timeout),
                ));
            }
            Some(
                parse_command_line(&health.command, false)
                    .map_err(|message| fail("[service.health] command", message))?,
            )
        }
        None => None,
    };
    Ok((Some(command), health))
}

/// Checks an upstream version that becomes a directory and part of a package name.
pub(crate) fn check_upstream_version(version: &str) -> Result<(), String> {
    if version.contains(':') {
        return Err("epochs are not supported: the version names the release directory and the payload package".into());
    }
    if version.contains('-') {
        return Err("must not contain '-': write a pre-release with '~' (1.0~rc1, which sorts before 1.0), and the Debian revision in [package] revision".into());
    }
    if version.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(
            "must be lowercase, because it becomes part of the payload's package name".into(),
        );
    }
    Version::parse(version)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Checks a Debian revision.
pub(crate) fn check_revision(revision: &str) -> Result<(), String> {
    if revision.is_empty() {
        return Err("must not be empty".into());
    }
    Version::parse(&format!("0-{revision}"))
        .map(|_| ())
        .map_err(|error| error.to_string())
}

fn check_maintainer(maintainer: &str) -> Result<(), String> {
    rules::check_single_line(maintainer)?;
    let valid = maintainer.split_once('<').is_some_and(|(name, rest)| {
        !name.trim().is_empty() && rest.ends_with('>') && rest.contains('@')
    });
    if valid {
        Ok(())
    } else {
        Err("must have the form 'Full Name <address@example.com>'".into())
    }
}

fn check_environment(
    environment: &Environment,
    directory: &Path,
    fail: &Fail<'_>,
) -> Result<(), ManifestError> {
    let must_be_directory = |key: &str, path: &Path| {
        let full = directory.join(path);
        if full.is_dir() {
            Ok(())
        } else {
            Err(fail(key, format!("{}: no such directory", full.display())))
        }
    };
    match environment {
        Environment::Dir(dir) => must_be_directory("[environment] source", &dir.source),
        Environment::Python(python) => {
            if python.requirements.is_none() && python.project.is_none() && python.wheels.is_none()
            {
                return Err(fail(
                    "[environment] requirements",
                    "kind \"python\" needs requirements, project or wheels".into(),
                ));
            }
            if let Some(requirements) = &python.requirements {
                let full = directory.join(requirements);
                if !full.is_file() {
                    return Err(fail(
                        "[environment] requirements",
                        format!("{}: no such file", full.display()),
                    ));
                }
            }
            if let Some(project) = &python.project {
                must_be_directory("[environment] project", project)?;
            }
            if let Some(lock) = &python.lock {
                let key = "[environment] lock";
                let full = directory.join(lock);
                let name = lock.file_name().and_then(|name| name.to_str());
                if !matches!(name, Some("uv.lock" | "poetry.lock")) {
                    return Err(fail(
                        key,
                        format!("{}: must be a uv.lock or a poetry.lock", lock.display()),
                    ));
                }
                if !full.is_file() {
                    return Err(fail(key, format!("{}: no such file", full.display())));
                }
                if python.requirements.is_some() {
                    return Err(fail(
                        key,
                        "set either lock or requirements, not both (the lock pins every \
                         dependency)"
                            .into(),
                    ));
                }
                let has_pyproject = python.project.as_ref().is_some_and(|project| {
                    directory.join(project).join("pyproject.toml").is_file()
                });
                if !has_pyproject {
                    return Err(fail(
                        key,
                        "needs project, a directory with the pyproject.toml the lock was \
                         made for"
                            .into(),
                    ));
                }
            }
            if let Some(wheels) = &python.wheels {
                must_be_directory("[environment] wheels", wheels)?;
            }
            if let Some(source) = &python.source {
                must_be_directory("[environment] source", source)?;
            }
            Ok(())
        }
        Environment::Command(command) => {
            if command.command.trim().is_empty() {
                return Err(fail("[environment] command", "must not be empty".into()));
            }
            if let Some(workdir) = &command.workdir {
                must_be_directory("[environment] workdir", workdir)?;
            }
            Ok(())
        }
        Environment::Node(node) => {
            must_be_directory("[environment] source", &node.source)?;
            let source: PathBuf = node
                .source
                .components()
                .filter(|component| *component != std::path::Component::CurDir)
                .collect();
            let package_json = directory.join(source).join("package.json");
            if !package_json.is_file() {
                return Err(fail(
                    "[environment] source",
                    format!(
                        "{}: no such file; kind \"node\" installs the application that \
                         package.json describes",
                        package_json.display()
                    ),
                ));
            }
            if node
                .command
                .as_ref()
                .is_some_and(|command| command.trim().is_empty())
            {
                return Err(fail("[environment] command", "must not be empty".into()));
            }
            Ok(())
        }
    }
}

/// The longest word a command line may hold, in bytes: far above any real argument, far
/// below systemd's limit of 1 MiB for a whole unit line (`LONG_LINE_MAX`).
const COMMAND_WORD_MAX: usize = 64 * 1024;

/// The longest command line, in bytes, so that `ExecStart=` with the release directory
/// stays under systemd's 1 MiB line limit.
const COMMAND_LINE_MAX: usize = 512 * 1024;

/// How a long value is quoted in a message: its first 60 characters.
fn shown(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{:?}...", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// Splits a command line on spaces and checks each word; the program is relative to the
/// release directory, or absolute when `allow_absolute`. Tabs, newlines and other control
/// characters are refused, not taken as separators: the unit and the scripts would split
/// them differently from what the manifest shows.
fn parse_command_line(text: &str, allow_absolute: bool) -> Result<CommandLine, String> {
    if let Some((index, bad)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "{}: has the control character {bad:?} at byte {index}; a command line is one \
             line of words separated by spaces, without tabs, newlines or other control \
             characters",
            shown(text)
        ));
    }
    if text.len() > COMMAND_LINE_MAX {
        return Err(format!(
            "{}: is {} bytes long; a command line may hold at most {COMMAND_LINE_MAX} bytes",
            shown(text),
            text.len()
        ));
    }
    if let Some(long) = text.split(' ').find(|word| word.len() > COMMAND_WORD_MAX) {
        return Err(format!(
            "{}: has a word of {} bytes ({}); a word may hold at most {COMMAND_WORD_MAX} bytes",
            shown(text),
            long.len(),
            shown(long)
        ));
    }
    let checked = |message: String| format!("{}: {message}", shown(text));
    let mut words = text.split(' ').filter(|word| !word.is_empty());
    let program = words
        .next()
        .ok_or_else(|| checked("must not be empty".into()))?
        .to_string();
    if program.starts_with('/') {
        if !allow_absolute {
            return Err(checked(
                "the program must be relative to the release directory".into(),
            ));
        }
        rules::check_absolute_path(&program).map_err(checked)?;
    } else {
        rules::check_relative_path(&program).map_err(checked)?;
    }
    let arguments: Vec<String> = words.map(str::to_string).collect();
    for word in &arguments {
        rules::check_command_word(word).map_err(checked)?;
    }
    Ok(CommandLine { program, arguments })
}

/// Parses an octal file mode such as "0644" or "755".
pub(crate) fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| "must be an octal mode such as 0644".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_reads_seconds_and_milliseconds() {
        assert_eq!(parse_milliseconds("5s"), Ok(5_000));
        assert_eq!(parse_milliseconds("0s"), Ok(0));
        assert_eq!(parse_milliseconds("250ms"), Ok(250));
        assert_eq!(parse_milliseconds("600s"), Ok(600_000));
        // A bare number is seconds, as in every duration.
        assert_eq!(parse_milliseconds("5"), Ok(5_000));
        assert_eq!(parse_milliseconds("10m"), Ok(600_000));
        for bad in [
            "",
            "s",
            "1.5s",
            "-1s",
            "5 s",
            "601s",
            "99999999999999999999s",
        ] {
            assert!(parse_milliseconds(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn command_lines_split_on_spaces_only_and_refuse_control_characters() {
        let line = parse_command_line("bin/hello  --greeting Hello", false).expect("valid");
        assert_eq!(line.program, "bin/hello");
        assert_eq!(line.arguments, ["--greeting", "Hello"]);
        for (text, character) in [
            ("bin/hello\t--greeting", "'\\t'"),
            ("bin/hello --greeting\nHello", "'\\n'"),
            ("bin/hello\r", "'\\r'"),
            ("bin/hello \u{1b}[31m", "'\\u{1b}'"),
            ("bin/hello x\u{7f}", "'\\u{7f}'"),
            ("bin/hello \u{85}", "'\\u{85}'"),
        ] {
            let message = parse_command_line(text, true).expect_err(text);
            assert!(
                message.contains(&format!("has the control character {character}"))
                    && message.contains("words separated by spaces"),
                "{text:?}: {message}"
            );
        }
    }

    #[test]
    fn command_words_and_lines_are_bounded() {
        let word = "a".repeat(COMMAND_WORD_MAX);
        parse_command_line(&format!("bin/hello {word}"), false).expect("a word at the limit");
        let long = format!("bin/hello {word}b");
        let message = parse_command_line(&long, false).expect_err("a word over the limit");
        assert!(
            message.contains("has a word of 65537 bytes")
                && message.contains("at most 65536 bytes"),
            "{message}"
        );
        // The value is quoted shortened, not whole.
        assert!(message.len() < 400, "{message}");
        let many = format!("bin/hello{}", format!(" {}", "a".repeat(1000)).repeat(600));
        let message = parse_command_line(&many, false).expect_err("a line over the limit");
        assert!(
            message.contains("is 600609 bytes long; a command line may hold at most 524288 bytes"),
            "{message}"
        );
    }
}
