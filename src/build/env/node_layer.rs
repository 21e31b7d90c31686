//! Layered Node.js releases: `node_modules` goes into a package of its own,
//! `<app>-layer-<key>` at `/opt/<app>/.layers/<key>/node_modules`, which every release with
//! the same dependencies shares.
//!
//! Design:
//! - The **layer key** is known before anything is installed: a hash of the lockfile's
//!   dependency set (npm's without the application's own version, which npm writes twice;
//!   pnpm and yarn locks do not hold it), the install's configuration files beside it
//!   (`.npmrc`, `.yarnrc`, `.yarnrc.yml`, `.pnpmfile.cjs`, `pnpm-workspace.yaml`), the
//!   manager and its version, the install command, the Node ABI of the build's Node.js
//!   (`process.versions.modules`: the machine's, or the target's `nodejs` in its build
//!   root), the build machine's architecture, the target distribution, the `[files] keep`
//!   groups, the `[files] exclude` globs (when there are any: they may reach into
//!   `node_modules`), and the control fields the layer takes from the manifest.
//! - The **release** ships `node_modules` as a relative link,
//!   `node_modules -> ../.layers/<key>/node_modules`: Node resolves `require` and `import`
//!   through it (ESM ignores `NODE_PATH`), and the packages then resolve their own
//!   dependencies from their real path in the layer. The release `Depends:` on its layer,
//!   exactly; the layer carries the `nodejs` relation of its native modules and of its
//!   packages' `engines.node`, the release that of the application's own `engines.node`.
//! - The layer holds what the release would have held: the kind's exclusions
//!   (node-gyp intermediates, dotfiles, build state) and the `[files] exclude` globs
//!   (matched, as for the release's own files, against `node_modules/...` relative to the
//!   release directory) are applied before the split, and
//!   npm's hidden lockfile (`node_modules/.package-lock.json`, which names the
//!   application's version and which npm rebuilds when it is missing) is left out, so the
//!   layer's bytes depend on its key alone (its time is
//!   [`LAYER_EPOCH`](super::python_layer::LAYER_EPOCH)).
//! - A **code-only release** finds the layer's `.deb` in `--out` or in the layer cache
//!   (`$XDG_CACHE_HOME/debstage/layers/node/<key>/`) and runs no install at all, unless
//!   the manifest gives its own install command or the application's `package.json` has
//!   install scripts (`preinstall`, `install`, `postinstall`, `prepare`), whose effects
//!   outside `node_modules` the release needs: those builds install again and still take
//!   the layer's `.deb` as it was.
//! - No layer when `node_modules` is empty or links out of itself (workspaces, `link:`
//!   dependencies: those point at the application's own code): the release keeps
//!   `node_modules` then.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::Digest;
use walkdir::WalkDir;

use super::node_manager::Detected;
use super::python_layer::{cache_base, control_inputs};
use crate::build::exclusions::Exclusions;
use crate::build::manifest::LoadedManifest;
use crate::build::tree::glob_set;
use crate::naming::LAYER_KEY_LENGTH;

/// Files beside the lockfile that change what the manager installs.
const CONFIGURATION_FILES: &[&str] = &[
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pnpmfile.cjs",
    "pnpm-workspace.yaml",
];

/// The root package's scripts that an install runs (npm, pnpm and yarn run them all).
const INSTALL_SCRIPTS: &[&str] = &["preinstall", "install", "postinstall", "prepare"];

/// npm's hidden lockfile in `node_modules`.
const HIDDEN_LOCKFILE: &str = ".package-lock.json";

/// What the layer's key is computed from besides the application's files.
pub(crate) struct KeyInputs<'a> {
    /// The manager the lockfile chose, when there is a lockfile.
    pub(crate) detected: Option<&'a Detected>,
    /// The install command run by `sh -c`.
    pub(crate) command: &'a str,
    /// `process.versions.modules` of the build's Node.js.
    pub(crate) abi: &'a str,
    /// The build machine's Debian architecture.
    pub(crate) architecture: &'a str,
    /// The target distribution's codename; `None` on the build host.
    pub(crate) target: Option<&'a str>,
}

/// The layer key of the application in `source`.
pub(crate) fn key(
    manifest: &LoadedManifest,
    source: &Path,
    inputs: &KeyInputs<'_>,
) -> Result<String> {
    let mut text = String::from("debstage node layer 1\n");
    let manager = inputs
        .detected
        .map(Detected::label)
        .unwrap_or_else(|| "none".to_string());
    text.push_str(&format!("manager {manager}\n"));
    text.push_str(&format!("command {:?}\n", inputs.command));
    text.push_str(&format!("abi {}\n", inputs.abi));
    text.push_str(&format!("architecture {}\n", inputs.architecture));
    text.push_str(&format!("target {}\n", inputs.target.unwrap_or("host")));
    text.push_str(&format!("keep {:?}\n", manifest.manifest.files.keep));
    // Only when set, so that the layers of manifests without them keep their keys.
    let exclude = &manifest.manifest.files.exclude;
    if !exclude.is_empty() {
        text.push_str(&format!("exclude {exclude:?}\n"));
    }
    text.push_str(&control_inputs(manifest));
    if let Some(detected) = inputs.detected {
        let path = source.join(detected.lockfile);
        let lock = fs_err::read_to_string(&path)?;
        let lock = normalised_lock(detected.lockfile, &lock)
            .with_context(|| format!("{}: is not valid JSON", path.display()))?;
        text.push_str(&format!("lockfile {}\n{lock}\n", detected.lockfile));
    }
    for name in CONFIGURATION_FILES {
        if let Ok(content) = fs::read_to_string(source.join(name)) {
            text.push_str(&format!("file {name}\n{content}\n"));
        }
    }
    let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    Ok(digest[..LAYER_KEY_LENGTH].to_string())
}

/// The lockfile's text without what changes with the application's own version: npm's
/// lockfiles name it at the top and in `packages[""]`; the others do not hold it.
pub(crate) fn normalised_lock(lockfile: &str, text: &str) -> Result<String> {
    if !matches!(lockfile, "package-lock.json" | "npm-shrinkwrap.json") {
        return Ok(text.to_string());
    }
    let mut value: serde_json::Value = serde_json::from_str(text)?;
    if let Some(top) = value.as_object_mut() {
        top.remove("version");
    }
    if let Some(root) = value
        .get_mut("packages")
        .and_then(|packages| packages.get_mut(""))
        .and_then(serde_json::Value::as_object_mut)
    {
        root.remove("version");
    }
    Ok(serde_json::to_string(&value)?)
}

/// Whether a build may take the layer's `.deb` and run no install: the manager's own
/// command, and no install scripts in the application's `package.json`.
pub(crate) fn may_skip_install(source: &Path, custom_command: bool) -> bool {
    if custom_command {
        return false;
    }
    let Ok(text) = fs::read_to_string(source.join("package.json")) else {
        return false;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let scripts = value.get("scripts");
    !INSTALL_SCRIPTS
        .iter()
        .any(|name| scripts.and_then(|scripts| scripts.get(name)).is_some())
}

/// The layer cache's directory for `key`: `$XDG_CACHE_HOME/debstage/layers/node/<key>`.
pub(crate) fn cache_directory(key: &str) -> Option<PathBuf> {
    cache_base().map(|base| base.join("debstage/layers/node").join(key))
}

/// The `.deb` of this layer that a previous build left in `out` or in `cache`, for the
/// build machine's architecture or `all` (a layer without native modules).
pub(crate) fn built_package(
    package: &str,
    version: &str,
    architecture: &str,
    places: &[&Path],
) -> Option<PathBuf> {
    places.iter().find_map(|place| {
        [architecture, "all"].iter().find_map(|architecture| {
            let path = place.join(crate::naming::deb_file_name(package, version, architecture));
            path.is_file().then_some(path)
        })
    })
}

/// Moves `root/node_modules` to `layer/node_modules` after leaving out what the release
/// would have left out (the default groups and `[files] exclude`), and links `root/node_modules` to `link`. `false` (and nothing
/// moved) when there is no `node_modules`, it is empty, or a link in it leads out of it.
pub(crate) fn split(
    manifest: &LoadedManifest,
    root: &Path,
    layer: &Path,
    link: &str,
) -> Result<bool> {
    let node_modules = root.join("node_modules");
    if !fs::symlink_metadata(&node_modules).is_ok_and(|metadata| metadata.is_dir()) {
        return Ok(false);
    }
    let exclusions = Exclusions::of(manifest);
    let exclude = glob_set(&manifest.manifest.files.exclude)?;
    let mut excluded = Vec::new();
    let mut walk = WalkDir::new(&node_modules).min_depth(1).into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.with_context(|| format!("{}: cannot be read", node_modules.display()))?;
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let is_dir = entry.file_type().is_dir();
        if exclude.is_match(relative) || exclusions.group_of(root, relative, is_dir).is_some() {
            excluded.push((entry.path().to_path_buf(), is_dir));
            if is_dir {
                walk.skip_current_dir();
            }
        }
    }
    for (path, is_dir) in excluded {
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.with_context(|| format!("{}: cannot be removed", path.display()))?;
    }
    // After the exclusions: node-gyp's `build/node_gyp_bins` links to the build
    // machine's python, and is left out.
    if links_out(&node_modules)? {
        return Ok(false);
    }
    let hidden = node_modules.join(HIDDEN_LOCKFILE);
    if hidden.exists() {
        fs_err::remove_file(&hidden)?;
    }
    if fs_err::read_dir(&node_modules)?.next().is_none() {
        return Ok(false);
    }
    fs_err::create_dir_all(layer)?;
    let moved = layer.join("node_modules");
    fs_err::rename(&node_modules, &moved)?;
    link_release(root, link)?;
    Ok(true)
}

/// Makes `root/node_modules` the link to the layer's `node_modules` (`link`, the layer's
/// directory as the release reaches it).
pub(crate) fn link_release(root: &Path, link: &str) -> Result<()> {
    let path = root.join("node_modules");
    std::os::unix::fs::symlink(format!("{link}/node_modules"), &path)
        .with_context(|| format!("{}: cannot be created", path.display()))
}

/// Whether a symbolic link in `node_modules` leads out of it (or nowhere).
fn links_out(node_modules: &Path) -> Result<bool> {
    for entry in WalkDir::new(node_modules).min_depth(1) {
        let entry = entry.with_context(|| format!("{}: cannot be read", node_modules.display()))?;
        if !entry.path_is_symlink() {
            continue;
        }
        let target = fs_err::read_link(entry.path())?;
        if target.is_absolute() {
            return Ok(true);
        }
        let parent = entry.path().parent().unwrap_or(node_modules);
        let relative = parent
            .strip_prefix(node_modules)
            .unwrap_or(Path::new(""))
            .join(&target);
        let mut depth: i64 = 0;
        for component in relative.components() {
            match component {
                std::path::Component::ParentDir => depth -= 1,
                std::path::Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_npm_lock_is_the_same_for_two_versions_of_the_application() {
        let lock = |version: &str| {
            format!(
                r#"{{"name": "app", "version": "{version}", "lockfileVersion": 3,
                "packages": {{"": {{"name": "app", "version": "{version}",
                "dependencies": {{"ms": "^2.1.3"}}}},
                "node_modules/ms": {{"version": "2.1.3"}}}}}}"#
            )
        };
        let one = normalised_lock("package-lock.json", &lock("1.0.0")).expect("JSON");
        let two = normalised_lock("package-lock.json", &lock("1.1.0")).expect("JSON");
        assert_eq!(one, two);
        assert!(one.contains("2.1.3"));
        assert_eq!(
            normalised_lock("yarn.lock", "ms@^2.1.3:\n").expect("text"),
            "ms@^2.1.3:\n"
        );
    }

    #[test]
    fn links_that_leave_node_modules_are_found() {
        let temp = tempfile::tempdir().expect("temp dir");
        let node_modules = temp.path().join("node_modules");
        fs::create_dir_all(node_modules.join(".pnpm/ms@2.1.3/node_modules/ms")).expect("mkdir");
        std::os::unix::fs::symlink(".pnpm/ms@2.1.3/node_modules/ms", node_modules.join("ms"))
            .expect("link");
        assert!(!links_out(&node_modules).expect("walk"));
        std::os::unix::fs::symlink("../packages/own", node_modules.join("own")).expect("link");
        assert!(links_out(&node_modules).expect("walk"));
    }
}
