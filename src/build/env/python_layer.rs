//! Layered Python releases: the third-party dependencies of a `python` environment go
//! into a package of their own, which every release with the same dependencies shares.
//!
//! Design:
//! - The **layer key** is a hash of what decides the layer's bytes: every installed
//!   distribution that is not the application's own (name, version and its RECORD, which
//!   holds the hash of each of its files, so a rebuilt wheel or another architecture's
//!   binaries give another key), the interpreter's `major.minor` (the `.pyc` format), the
//!   build machine's architecture, the target distribution (the detected `Depends`), the
//!   `pip-args`, and the control fields the layer takes from the manifest (maintainer,
//!   license, homepage, section, priority; its description names only the application,
//!   and it is always compressed with xz at the default level). The project's own version is not part of it: a code-only release
//!   keeps its key. [`crate::naming::LAYER_KEY_LENGTH`] hex digits of SHA-256.
//! - The **layer package** `<app>-layer-<key>` (version [`crate::naming::layer_version`],
//!   `1`, or `1+deb12` for a `--target` build)
//!   owns `/opt/<app>/.layers/<key>/site-packages`, both from the naming contract. It is
//!   reproducible on its own: its time is [`LAYER_EPOCH`], the same for every key, and
//!   nothing of the release (version, time) reaches it, so the same key gives the same
//!   bytes and the repository stores it once.
//! - The **release** keeps its virtualenv (`bin/python`, `pyvenv.cfg`), the project's
//!   distributions and the console scripts of every distribution (in `bin/`, with the
//!   release's interpreter in their shebang). A `.pth` file in its site-packages calls
//!   `site.addsitedir()` on the layer's directory, so the layer's own `.pth` files run too,
//!   and `pip check` sees one environment. The release `Depends:` on its layer, exactly.
//! - The split is made after pip installed the whole environment once, by the RECORD of
//!   each distribution: what lies under site-packages moves to the layer; RECORD lines of
//!   files outside it (console scripts) are dropped from the layer's copy, since those
//!   files stay with the release and carry its path.
//! - `[layers] enabled = false` keeps one payload; layers are on by default for `python`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::Digest;
use walkdir::WalkDir;

use super::python_lock::normalise;
use crate::build::manifest::{LoadedManifest, PythonEnvironment};
use crate::naming::LAYER_KEY_LENGTH;

/// The time of every layer package (2020-01-01 00:00:00 UTC): fixed, so that a layer's
/// bytes depend on its key alone, never on the release that first built it.
pub(crate) const LAYER_EPOCH: u64 = 1_577_836_800;

/// The `.pth` file that makes a release's environment reach its layer.
pub(crate) const LAYER_PTH: &str = "debstage-layer.pth";

/// One installed distribution of the environment.
#[derive(Debug)]
struct Distribution {
    /// The normalised name (PEP 503).
    name: String,
    /// The version from the `.dist-info` directory's name.
    version: String,
    /// The `.dist-info` directory.
    dist_info: PathBuf,
}

/// The names (normalised) of the distributions pip installed from a local directory: the
/// application's own projects. Read before `direct_url.json` is removed.
pub(crate) fn local_projects(site_packages: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for distribution in distributions(site_packages)? {
        let direct_url = distribution.dist_info.join("direct_url.json");
        let Ok(text) = fs::read_to_string(&direct_url) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: is not JSON", direct_url.display()))?;
        if value.get("dir_info").is_some() {
            names.insert(distribution.name);
        }
    }
    Ok(names)
}

/// What the layer's key is computed from besides the distributions.
pub(crate) struct KeyInputs<'a> {
    /// The interpreter's `major.minor`.
    pub(crate) python: &'a str,
    /// The build machine's Debian architecture.
    pub(crate) architecture: &'a str,
    /// The target distribution's codename; `None` on the build host.
    pub(crate) target: Option<&'a str>,
}

/// What [`split`] made of an environment.
#[derive(Debug)]
pub(crate) struct Split {
    /// The layer key.
    pub(crate) key: String,
    /// The console scripts of the layer's distributions, relative to the environment
    /// (`bin/gunicorn`): they stay in the release, and a cached layer brings them back.
    pub(crate) scripts: Vec<PathBuf>,
}

/// Moves every file of the distributions that are not `projects` from `site_packages`
/// into `layer/site-packages`, and gives the layer's key. `None` when there is no such
/// distribution (the environment is the application alone): no layer then.
pub(crate) fn split(
    manifest: &LoadedManifest,
    options: &PythonEnvironment,
    site_packages: &Path,
    projects: &BTreeSet<String>,
    layer: &Path,
    inputs: &KeyInputs<'_>,
) -> Result<Option<Split>> {
    let layer_site = layer.join("site-packages");
    let mut described = BTreeMap::new();
    let mut scripts = BTreeSet::new();
    for distribution in distributions(site_packages)? {
        if projects.contains(&distribution.name) {
            continue;
        }
        let record_path = distribution.dist_info.join("RECORD");
        let record = fs_err::read_to_string(&record_path)?;
        let mut kept = String::with_capacity(record.len());
        let mut moved = Vec::new();
        for line in record.lines() {
            let name = record_file(line);
            let relative = normalize(Path::new(name));
            // RECORD names files relative to site-packages; what climbs out of it
            // (console scripts, data files) stays with the release.
            if relative.starts_with("..") || relative.is_absolute() {
                // site-packages is lib/pythonX.Y/site-packages: three levels down.
                if let Ok(script) = relative.strip_prefix("../../../bin") {
                    scripts.insert(Path::new("bin").join(script));
                }
                continue;
            }
            kept.push_str(line);
            kept.push('\n');
            moved.push(relative);
        }
        for relative in moved {
            let from = site_packages.join(&relative);
            if !from.exists() && fs::symlink_metadata(&from).is_err() {
                // RECORD lists `.pyc` files that --no-compile did not write.
                continue;
            }
            let to = layer_site.join(&relative);
            if let Some(parent) = to.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::rename(&from, &to)?;
        }
        let moved_record = layer_site.join(
            record_path
                .strip_prefix(site_packages)
                .unwrap_or(Path::new("RECORD")),
        );
        if let Some(parent) = moved_record.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::write(&moved_record, &kept)?;
        if record_path.exists() {
            fs_err::remove_file(&record_path)?;
        }
        let digest = hex::encode(sha2::Sha256::digest(kept.as_bytes()));
        described.insert(
            distribution.name.clone(),
            format!("{} {} {digest}", distribution.name, distribution.version),
        );
    }
    remove_empty_directories(site_packages)?;
    if described.is_empty() {
        return Ok(None);
    }
    let mut text = String::from("debstage python layer 1\n");
    text.push_str(&common_inputs(manifest, options, inputs));
    for line in described.values() {
        text.push_str(line);
        text.push('\n');
    }
    let key = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    Ok(Some(Split {
        key: key[..LAYER_KEY_LENGTH].to_string(),
        scripts: scripts.into_iter().collect(),
    }))
}

/// The common inputs of a layer's key and of a recipe, one per line.
fn common_inputs(
    manifest: &LoadedManifest,
    options: &PythonEnvironment,
    inputs: &KeyInputs<'_>,
) -> String {
    let mut text = format!("python {}\n", inputs.python);
    text.push_str(&format!("architecture {}\n", inputs.architecture));
    text.push_str(&format!("target {}\n", inputs.target.unwrap_or("host")));
    text.push_str(&format!("pip-args {:?}\n", options.pip_args));
    text.push_str(&control_inputs(manifest));
    text
}

/// The control fields a layer package takes from the manifest, one per line, for the
/// key of a layer of any kind.
pub(crate) fn control_inputs(manifest: &LoadedManifest) -> String {
    let package = &manifest.manifest.package;
    let mut text = format!("maintainer {}\n", package.maintainer);
    text.push_str(&format!("license {:?}\n", package.license));
    text.push_str(&format!("homepage {:?}\n", package.homepage));
    text.push_str(&format!(
        "section {} priority {}\n",
        package.section, package.priority
    ));
    text
}

/// The cache of layers already built: `$XDG_CACHE_HOME/debstage/layers/<recipe>/`, each
/// holding `key` (the layer key), `layer/` (the layer's tree, byte-compiled for its
/// directory on the servers) and `scripts/` (the console scripts of its distributions,
/// the environment's path written as [`VENV_PLACEHOLDER`]).
///
/// A **recipe** hashes what pip reads to choose the dependencies: the requirements file
/// or the lock's pinned requirements, the project's declared dependencies, the wheels
/// directory's listing, and the inputs of the key. Only inputs that pin every requirement
/// to one version (a lock, or requirements that are all `name==version`) have a recipe:
/// others resolve differently as the index changes. Where pip finds the pinned versions
/// (`PIP_INDEX_URL`, `PIP_FIND_LINKS`) is not part of it: a version is one release. A
/// build whose recipe is cached installs only the project (`--no-deps`), and `pip check`
/// must then pass with the cached layer, or the build installs everything.
pub(crate) struct LayerCache {
    /// `$XDG_CACHE_HOME/debstage/layers/<recipe>`.
    pub(crate) directory: PathBuf,
}

/// What stands for the environment's path in cached console scripts.
pub(crate) const VENV_PLACEHOLDER: &str = "@DEBSTAGE_VENV@";

impl LayerCache {
    /// The cache entry of this build's recipe; `None` when the inputs have no recipe
    /// (not every requirement pinned) or no cache directory is known.
    pub(crate) fn of(
        manifest: &LoadedManifest,
        options: &PythonEnvironment,
        inputs: &KeyInputs<'_>,
        locked: Option<&str>,
    ) -> Result<Option<LayerCache>> {
        let mut text = String::from("debstage python layer recipe 1\n");
        text.push_str(&common_inputs(manifest, options, inputs));
        match (locked, &options.requirements) {
            (Some(locked), _) => text.push_str(&format!("lock\n{locked}\n")),
            (None, Some(requirements)) => {
                let path = manifest.resolve(requirements);
                let requirements = fs_err::read_to_string(&path)?;
                if !all_pinned(&requirements) {
                    return Ok(None);
                }
                text.push_str(&format!("requirements\n{requirements}\n"));
            }
            (None, None) => return Ok(None),
        }
        if let Some(project) = &options.project {
            let pyproject = manifest.resolve(project).join("pyproject.toml");
            let declared = fs::read_to_string(&pyproject)
                .ok()
                .and_then(|text| text.parse::<toml::Table>().ok())
                .and_then(|table| table.get("project").cloned())
                .map(|project| {
                    format!(
                        "{:?} {:?}",
                        project.get("dependencies"),
                        project.get("optional-dependencies")
                    )
                })
                .unwrap_or_default();
            text.push_str(&format!("project dependencies {declared}\n"));
        }
        if let Some(wheels) = &options.wheels {
            let directory = manifest.resolve(wheels);
            let mut names: Vec<String> = fs_err::read_dir(&directory)?
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            text.push_str(&format!("wheels {names:?}\n"));
        }
        let Some(base) = cache_base() else {
            return Ok(None);
        };
        let recipe = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        Ok(Some(LayerCache {
            directory: base.join("debstage/layers").join(&recipe[..32]),
        }))
    }

    /// The cached layer's key, when the entry is complete.
    pub(crate) fn key(&self) -> Option<String> {
        let key = fs::read_to_string(self.directory.join("key")).ok()?;
        let key = key.trim();
        (crate::naming::is_layer_key(key) && self.layer().is_dir()).then(|| key.to_string())
    }

    /// The cached layer's tree.
    pub(crate) fn layer(&self) -> PathBuf {
        self.directory.join("layer")
    }

    /// Stores a layer just built (its tree `layer`, byte-compiled) with the console
    /// scripts `scripts` of the environment at `root`, whose path is `release` in them.
    /// A cache that cannot be written costs the next build time, never this one: errors
    /// are returned for a warning.
    pub(crate) fn store(
        &self,
        key: &str,
        layer: &Path,
        root: &Path,
        scripts: &[PathBuf],
        release: &str,
    ) -> Result<()> {
        let parent = self.directory.parent().unwrap_or(Path::new("/"));
        fs_err::create_dir_all(parent)?;
        let work = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempdir_in(parent)
            .with_context(|| format!("{}: cannot be written", parent.display()))?;
        crate::build::tree_copy::copy_tree(
            layer,
            &work.path().join("layer"),
            |_| true,
            crate::build::tree_copy::Existing::Replace,
        )?;
        let scripts_directory = work.path().join("scripts");
        fs_err::create_dir_all(&scripts_directory)?;
        for script in scripts {
            let Ok(text) = fs::read_to_string(root.join(script)) else {
                continue;
            };
            let name = script.file_name().unwrap_or_default();
            fs::write(
                scripts_directory.join(name),
                text.replace(release, VENV_PLACEHOLDER),
            )
            .with_context(|| format!("{}: cannot be written", scripts_directory.display()))?;
        }
        fs::write(work.path().join("key"), format!("{key}\n"))
            .with_context(|| format!("{}: cannot be written", work.path().display()))?;
        if self.directory.exists() {
            fs_err::remove_dir_all(&self.directory)?;
        }
        let kept = work.keep();
        fs::rename(&kept, &self.directory)
            .with_context(|| format!("{}: cannot be written", self.directory.display()))?;
        Ok(())
    }

    /// Writes the cached console scripts into `root/bin`, the environment's path in them
    /// being `venv` (as the build's programs see it; relocation then writes the release's).
    pub(crate) fn restore_scripts(&self, root: &Path, venv: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let directory = self.directory.join("scripts");
        let Ok(entries) = fs::read_dir(&directory) else {
            return Ok(());
        };
        for entry in entries {
            let entry =
                entry.with_context(|| format!("{}: cannot be read", directory.display()))?;
            let text = fs_err::read_to_string(entry.path())?;
            let target = root.join("bin").join(entry.file_name());
            fs_err::write(
                &target,
                text.replace(VENV_PLACEHOLDER, &venv.to_string_lossy()),
            )?;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("{}: cannot change its mode", target.display()))?;
        }
        Ok(())
    }
}

/// `$XDG_CACHE_HOME`, or `$HOME/.cache` (the XDG base directory rule; no crate).
pub(crate) fn cache_base() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|value| !value.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })
}

/// Whether every requirement of a requirements file pins one version (`name==version`,
/// with hashes, markers or extras allowed); options (`--hash`, `--index-url`) are read
/// as they are. A local path, a URL or a range is not pinned.
pub(crate) fn all_pinned(requirements: &str) -> bool {
    let joined = requirements.replace("\\\n", " ");
    joined.lines().all(|line| {
        let line = line.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
            return true;
        }
        let requirement = line.split(';').next().unwrap_or("").trim();
        let requirement = requirement.split(" --").next().unwrap_or("").trim();
        match requirement.split_once("==") {
            Some((name, version)) => {
                !name.is_empty()
                    && !name.contains(['/', ':', '<', '>', '!', '~', '@'])
                    && !version.trim().is_empty()
                    && !version.contains(['*', ',', '<', '>'])
            }
            None => false,
        }
    })
}

/// The `.pth` line that adds the layer's site-packages (`/opt/<app>/.layers/<key>/
/// site-packages`) with `site.addsitedir()`, which also runs the layer's own `.pth` files.
pub(crate) fn pth_text(layer_site_packages: &str) -> String {
    format!("import site; site.addsitedir({layer_site_packages:?})\n")
}

/// The distributions installed in `site_packages`, sorted by name.
fn distributions(site_packages: &Path) -> Result<Vec<Distribution>> {
    let entries = fs_err::read_dir(site_packages)?;
    let mut found = Vec::new();
    for entry in entries {
        let entry =
            entry.with_context(|| format!("{}: cannot be read", site_packages.display()))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file_name.strip_suffix(".dist-info") else {
            continue;
        };
        // `<name>-<version>.dist-info`: names have their `-` written as `_` there.
        let (name, version) = stem.split_once('-').unwrap_or((stem, ""));
        found.push(Distribution {
            name: normalise(name),
            version: version.to_string(),
            dist_info: entry.path(),
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The file a RECORD line names (its first CSV field, without quotes).
fn record_file(line: &str) -> &str {
    let mut fields = line.rsplitn(3, ',');
    let _size = fields.next();
    let _hash = fields.next();
    fields.next().unwrap_or(line).trim_matches('"')
}

/// A relative path with `.` and `..` resolved lexically, keeping leading `..`.
fn normalize(path: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else {
                    parts.push("..".as_ref());
                }
            }
            std::path::Component::CurDir => {}
            other => parts.push(other.as_os_str()),
        }
    }
    parts.iter().collect()
}

/// Removes the directories under `root` that the move left empty (deepest first).
fn remove_empty_directories(root: &Path) -> Result<()> {
    let directories: Vec<PathBuf> = WalkDir::new(root)
        .min_depth(1)
        .contents_first(true)
        .into_iter()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_dir())
        .map(|entry| entry.into_path())
        .collect();
    for directory in directories {
        let empty = fs::read_dir(&directory)
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false);
        if empty {
            fs_err::remove_dir(&directory)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_paths_outside_site_packages_are_recognised() {
        assert_eq!(
            record_file("../../../bin/flask,sha256=x,12"),
            "../../../bin/flask"
        );
        assert_eq!(record_file("\"a,b.py\",sha256=x,1"), "a,b.py");
        assert_eq!(record_file("pkg/__init__.py,,"), "pkg/__init__.py");
        assert!(normalize(Path::new("../../../bin/x")).starts_with(".."));
        assert_eq!(
            normalize(Path::new("pkg/./a/../b.py")),
            PathBuf::from("pkg/b.py")
        );
    }

    #[test]
    fn only_requirements_that_pin_one_version_have_a_recipe() {
        assert!(all_pinned(
            "tabulate==0.9.0\n# comment\n\nsix==1.17.0 ; python_version > '3'\n"
        ));
        assert!(all_pinned(
            "--index-url https://example.org/simple\nsix==1.17.0 \\\n    --hash=sha256:abc\n"
        ));
        assert!(!all_pinned("tabulate>=0.9\n"));
        assert!(!all_pinned("tabulate\n"));
        assert!(!all_pinned(".\n"));
        assert!(!all_pinned("tabulate==0.9.*\n"));
        assert!(!all_pinned("pkg @ https://example.org/pkg.whl\n"));
    }

    #[test]
    fn the_pth_line_calls_addsitedir() {
        assert_eq!(
            pth_text("/opt/shop/.layers/0123456789abcdef/site-packages"),
            "import site; site.addsitedir(\"/opt/shop/.layers/0123456789abcdef/site-packages\")\n"
        );
    }
}
