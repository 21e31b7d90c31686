//! `kind = "node"`: a Node.js application with its dependencies installed by npm
//! (`npm ci --omit=dev` unless the manifest gives another command) inside the release
//! tree, so that `node_modules` is built where it will live.
//!
//! The payload depends on `nodejs`; native modules (`*.node`) bound it to the Node.js
//! releases that can load them ([`node_abi`](super::node_abi)).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use walkdir::WalkDir;

use super::command::{run_streamed, CommandFailed};
use super::kind_check::KindCheck;
use super::node_abi;
use super::node_engines;
use super::node_layer;
use super::node_manager;
use super::staged::{StagedLayer, StagedTree};
use crate::build::manifest::{LoadedManifest, ManifestError, NodeEnvironment};
use crate::build::runner::Runner;
use crate::build::tree_copy::{copy_tree, Existing};
use crate::report::Reporter;

/// The Debian packages a build root needs for this kind: Node.js and npm. Native modules
/// need more (`node-gyp`, `libnode-dev`, `g++`, `make`): name them in `[build] packages`.
pub(crate) const ROOT_PACKAGES: &[&str] = &["nodejs", "npm"];

/// Lintian tags the node kind raises by design: a native module resolves Node's symbols
/// from the process that loads it, so it need not name any library (node-gyp links none).
pub(crate) const LINTIAN_OVERRIDES: &[&str] = &["shared-library-lacks-prerequisites"];

/// Where the build machine's Node.js headers are, when its nodejs package ships them:
/// node-gyp then builds native modules against them instead of downloading headers.
const SYSTEM_NODE_DIR: &str = "/usr";

/// Copies the application into the release tree and runs the install command there; for
/// a layered build, `node_modules` then moves into the layer ([`node_layer`]), or the
/// layer's `.deb` from `out` or the layer cache stands for it and nothing is installed.
pub(crate) fn stage(
    manifest: &LoadedManifest,
    options: &NodeEnvironment,
    runner: &Runner,
    scratch: &Path,
    out: &Path,
    reporter: &Reporter,
) -> Result<(StagedTree, Option<StagedLayer>)> {
    let root = scratch.join("release");
    fs_err::create_dir_all(&root)?;
    let source = manifest.resolve(&options.source);
    let in_manifest = |error: anyhow::Error| {
        error.context(format!(
            "{}: [environment] kind \"node\"",
            manifest.path.display()
        ))
    };
    let detected = node_manager::detect(&source).map_err(in_manifest)?;
    let command = match (&options.command, &detected) {
        (Some(command), _) => command.clone(),
        (None, Some(detected)) => detected.manager.command().to_string(),
        (None, None) => bail!(
            "{}: [environment] source {:?}: no lockfile in {} ({}); an install that is not \
             frozen to one ships whatever versions the registry has on the day of the build. \
             Make one with the project's manager (`npm install --package-lock-only`, `pnpm \
             install --lockfile-only`, `yarn install`) and commit it, or set [environment] \
             command",
            manifest.path.display(),
            options.source.display().to_string(),
            source.components().collect::<PathBuf>().display(),
            node_manager::LOCKFILES.join(", ")
        ),
    };
    copy_application(&source, &root)?;
    let layer = if manifest.layered() {
        Some(plan_layer(
            manifest,
            runner,
            &root,
            &source,
            detected.as_ref(),
            &command,
            out,
        )?)
    } else {
        None
    };
    if let Some(layer) = layer.as_ref().filter(|layer| {
        layer.prebuilt.is_some() && node_layer::may_skip_install(&source, options.command.is_some())
    }) {
        reporter.status(format!(
            "Dependencies from the built layer {}: nothing is installed",
            manifest.names().app().layer_package(&layer.key)
        ));
        node_layer::link_release(&root, &layer.link)?;
        return finish(manifest, runner, &root, scratch, layer.clone(), reporter);
    }
    let manager_bin = match &detected {
        Some(detected) => node_manager::provide(detected, runner, scratch, &|message| {
            reporter.status(message)
        })
        .map_err(in_manifest)?,
        None => None,
    };
    match &detected {
        Some(detected) if options.command.is_none() => reporter.status(format!(
            "Installing with {} (from {}): {command}",
            detected.label(),
            detected.lockfile
        )),
        _ => reporter.status(format!("Running the install command: {command}")),
    }
    let mut install = build_command(manifest, runner, &command, &root)?;
    if let Some(bin) = &manager_bin {
        install.env("PATH", runner.path_with_first(bin));
    }
    if let Some(detected) = &detected {
        install.envs(node_manager::environment(detected.manager).iter().copied());
    }
    let what = format!(
        "{}: [environment] command {command:?}",
        manifest.path.display()
    );
    if let Err(error) = run_streamed(&mut install, &what, reporter) {
        let Some(failed) = error.downcast_ref::<CommandFailed>() else {
            return Err(error);
        };
        let reasons = detected
            .as_ref()
            .map(|detected| detected.manager.reasons(&failed.lines))
            .unwrap_or_default();
        let hint = missing_build_tool(&failed.lines).map(|tool| match manifest.target {
            Some(target) => format!(
                "\n{tool} is not in the build root of {}: name the Debian package that has it \
                 in [build] packages (native modules need \"node-gyp\", \"libnode-dev\", \
                 \"g++\", \"make\", \"python3\")",
                target.codename()
            ),
            None => format!(
                "\n{tool} is not on the build machine: install it (the Debian package of the \
                 same name), as node-gyp needs it to build native modules"
            ),
        });
        match &detected {
            Some(detected) if !reasons.is_empty() => bail!(
                "{what} failed with {}; {} says:\n  {}{}{}",
                failed.status,
                detected.manager.name(),
                reasons.join("\n  "),
                hint.unwrap_or_default(),
                npm_log(runner, &failed.lines)
            ),
            _ => match hint {
                Some(hint) => return Err(error.context(hint.trim_start().to_string())),
                None => return Err(error),
            },
        }
    }
    clear_stray_execute_bits(&root.join("node_modules"))?;
    if let Some(layer) = layer {
        if node_layer::split(manifest, &root, &scratch.join("layer"), &layer.link)? {
            return finish(manifest, runner, &root, scratch, layer, reporter);
        }
        reporter.status("No layer: node_modules is empty or links to the application's own code");
    }
    let depends = depends_of(manifest, runner, &root, reporter)?;
    Ok((StagedTree { root, depends }, None))
}

/// The layer a layered build uses, known before the install.
#[derive(Clone)]
struct PlannedLayer {
    key: String,
    /// The layer's directory as the release reaches it.
    link: String,
    /// Its `.deb` from a previous build, in `out` or the layer cache.
    prebuilt: Option<PathBuf>,
    /// The layer cache's directory for the key.
    cache: Option<PathBuf>,
}

/// Computes the layer's key and looks for its `.deb` in `out` and the layer cache.
fn plan_layer(
    manifest: &LoadedManifest,
    runner: &Runner,
    root: &Path,
    source: &Path,
    detected: Option<&node_manager::Detected>,
    command: &str,
    out: &Path,
) -> Result<PlannedLayer> {
    let abi = ask_node(manifest, runner, root, "process.versions.modules")?;
    let architecture = super::python::build_architecture(runner)?;
    let target = manifest
        .names()
        .distribution()
        .map(|distribution| distribution.codename().to_string());
    let inputs = node_layer::KeyInputs {
        detected,
        command,
        abi: &abi,
        architecture: &architecture,
        target: target.as_deref(),
    };
    let key = node_layer::key(manifest, source, &inputs)?;
    let names = manifest.names().app();
    let cache = node_layer::cache_directory(&key);
    let mut places = vec![out];
    places.extend(cache.as_deref());
    let prebuilt = node_layer::built_package(
        &names.layer_package(&key),
        &crate::naming::layer_version(manifest.names().distribution()),
        &architecture,
        &places,
    );
    Ok(PlannedLayer {
        link: names.layer_dir_from_release(&key),
        key,
        prebuilt,
        cache,
    })
}

/// The release tree at `root` with its `node_modules` a link into `layer`, and the layer
/// (its tree in `scratch/layer`, or its built `.deb`).
fn finish(
    manifest: &LoadedManifest,
    runner: &Runner,
    root: &Path,
    scratch: &Path,
    layer: PlannedLayer,
    reporter: &Reporter,
) -> Result<(StagedTree, Option<StagedLayer>)> {
    let names = manifest.names().app();
    let layer_root = scratch.join("layer");
    let layer_depends = if layer.prebuilt.is_some() {
        Vec::new()
    } else {
        depends_of(manifest, runner, &layer_root, reporter)?
    };
    let mut depends = depends_of(manifest, runner, root, reporter)?;
    depends.push(format!(
        "{} (= {})",
        names.layer_package(&layer.key),
        crate::naming::layer_version(manifest.names().distribution())
    ));
    reporter.status(format!(
        "Dependencies in layer {} ({})",
        names.layer_package(&layer.key),
        names.layer_dir(&layer.key)
    ));
    Ok((
        StagedTree {
            root: root.to_path_buf(),
            depends,
        },
        Some(StagedLayer {
            key: layer.key,
            root: layer_root,
            depends: layer_depends,
            cache: layer.cache,
            prebuilt: layer.prebuilt,
        }),
    ))
}

/// The `nodejs` relations of the tree at `root`: those of its native modules (whose
/// execute bits are cleared here) and of the `engines.node` of its `package.json` and
/// its `node_modules`, checked against the build's Node.js.
fn depends_of(
    manifest: &LoadedManifest,
    runner: &Runner,
    root: &Path,
    reporter: &Reporter,
) -> Result<Vec<String>> {
    let modules = node_abi::native_modules(root)?;
    // Node loads a module with dlopen, which needs no execute bit; node-gyp sets it, and
    // Debian ships shared objects without it (lintian: shared-library-is-executable).
    for module in &modules {
        let path = root.join(&module.path);
        fs_err::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    }
    let build_abi = if modules
        .iter()
        .any(|module| module.needs == node_abi::Needs::BuildAbi)
    {
        Some(build_abi(manifest, runner, root)?)
    } else {
        None
    };
    let mut depends = node_abi::nodejs_depends(&modules, build_abi).map_err(|message| {
        anyhow::anyhow!(
            "{}: [environment] kind \"node\": {message}",
            manifest.path.display()
        )
    })?;
    if let Some(minimum) = check_engines(manifest, runner, root, reporter)? {
        depends.retain(|relation| relation != "nodejs");
        depends.push(format!("nodejs (>= {minimum})"));
    }
    Ok(depends)
}

/// Clears the execute bits of files in `node_modules` that are neither ELF files nor
/// scripts (`#!`): npm packages often ship data and modules with mode 0755, which no one
/// executes (Node reads them), and lintian flags each (executable-not-elf-or-script).
fn clear_stray_execute_bits(node_modules: &Path) -> Result<()> {
    if !node_modules.is_dir() {
        return Ok(());
    }
    for entry in WalkDir::new(node_modules) {
        let entry = entry.with_context(|| format!("{}: cannot be read", node_modules.display()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let cannot_read = || format!("{}: cannot be read", path.display());
        let mode = entry
            .metadata()
            .with_context(cannot_read)?
            .permissions()
            .mode();
        if mode & 0o111 == 0 {
            continue;
        }
        let mut start = [0u8; 4];
        let mut file = fs::File::open(path).with_context(cannot_read)?;
        let read = std::io::Read::read(&mut file, &mut start).with_context(cannot_read)?;
        let start = &start[..read];
        if start.starts_with(b"#!") || start.starts_with(b"\x7fELF") {
            continue;
        }
        fs_err::set_permissions(path, fs::Permissions::from_mode(mode & !0o111))?;
    }
    Ok(())
}

/// The program node-gyp did not find, from its output (`gyp ERR! ... not found: make`),
/// named as its Debian package.
fn missing_build_tool(lines: &[String]) -> Option<&'static str> {
    lines.iter().find_map(|line| {
        if !line.contains("gyp") {
            return None;
        }
        [
            ("not found: make", "make"),
            ("not found: g++", "g++"),
            ("not found: c++", "g++"),
        ]
        .iter()
        .find(|(text, _)| line.contains(text))
        .map(|(_, tool)| *tool)
        .or_else(|| line.contains("find any Python").then_some("python3"))
    })
}

/// What the Node.js of the build says for `expression` (`process.versions.node`).
fn ask_node(
    manifest: &LoadedManifest,
    runner: &Runner,
    root: &Path,
    expression: &str,
) -> Result<String> {
    let script = format!("node -p {expression}");
    let output = build_command(manifest, runner, &script, root)?
        .output()
        .with_context(|| format!("cannot run {script:?}"))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || text.is_empty() {
        bail!(
            "{script:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(text)
}

/// Where the host finds the complete log npm names in `lines` (a path inside a build root
/// means nothing on the host), as a line to add to the error; empty without one.
fn npm_log(runner: &Runner, lines: &[String]) -> String {
    const SAID: &str = "A complete log of this run can be found in:";
    // npm 10 says it on one line; npm 9 (bookworm's) puts the path on the next one.
    let Some(path) = lines.iter().enumerate().find_map(|(index, line)| {
        let (_, rest) = line.split_once(SAID)?;
        let rest = rest.trim();
        if !rest.is_empty() {
            return Some(rest);
        }
        let next = lines.get(index + 1)?;
        Some(next.trim_start_matches("npm ERR!").trim())
    }) else {
        return String::new();
    };
    match runner.host_path_after(Path::new(path)) {
        Some(host) => format!("\nnpm's complete log: {}", host.display()),
        None => String::new(),
    }
}

/// The NODE_MODULE_VERSION of the Node.js that ran the install (`process.versions.modules`).
fn build_abi(manifest: &LoadedManifest, runner: &Runner, root: &Path) -> Result<u32> {
    let text = ask_node(manifest, runner, root, "process.versions.modules")?;
    text.parse().with_context(|| {
        format!("the Node.js that built the native modules gave {text:?} as its ABI")
    })
}

/// Checks `engines.node` of the application and its packages against the build's
/// Node.js, and gives the lowest Node.js release they all accept, for Depends.
fn check_engines(
    manifest: &LoadedManifest,
    runner: &Runner,
    root: &Path,
    reporter: &Reporter,
) -> Result<Option<String>> {
    let requirements = node_engines::requirements(root, &|reason| reporter.warn(reason))?;
    if requirements.is_empty() {
        return Ok(None);
    }
    let node_version = ask_node(manifest, runner, root, "process.versions.node")?;
    let unmet = node_engines::unmet(&requirements, &node_version)?;
    if !unmet.is_empty() {
        let (whose, how) = match manifest.target {
            Some(target) => (
                format!(
                    "{}'s nodejs package, which its servers run",
                    target.codename()
                ),
                "build with --target for a distribution whose nodejs is in them",
            ),
            None => (
                "node on the build machine's PATH".to_string(),
                "install one on the build machine, or build with --target for a distribution \
                 whose nodejs is in them",
            ),
        };
        bail!(
            "{}: [environment] kind \"node\": Node.js {node_version} ({whose}) does not \
             satisfy engines.node of:\n{}\nallowed: a Node.js in every range above: {how}; \
             or versions of these packages that support Node.js {node_version}",
            manifest.path.display(),
            unmet
                .iter()
                .map(|requirement| format!(
                    "  {} ({}): {}",
                    requirement.package,
                    requirement.path.display(),
                    requirement.text
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(node_engines::lower_bound(&requirements).map(|(version, _)| version))
}

/// The one place a node build's command is made: `sh -c SCRIPT` in `directory` with the
/// application's name and version, and node-gyp pointed at the system's Node.js headers
/// when the build machine has them (no download; set `npm_config_nodedir` to choose
/// others). `runner` runs it on the host or in a build root, where `directory` is seen
/// at its path inside and the headers are the root's.
fn build_command(
    manifest: &LoadedManifest,
    runner: &Runner,
    script: &str,
    directory: &Path,
) -> Result<Command> {
    let mut command = runner.command("sh", &runner.inside(directory)?);
    command
        .arg("-c")
        .arg(script)
        .env("APP_NAME", manifest.app())
        .env("APP_VERSION", &manifest.version)
        .env("APP_RELEASE_DIR", manifest.names().release_dir());
    let has_headers = runner
        .system_root()
        .host_path(&Path::new(SYSTEM_NODE_DIR).join("include/node/common.gypi"))
        .is_file();
    if has_headers && std::env::var_os("npm_config_nodedir").is_none() {
        command.env("npm_config_nodedir", SYSTEM_NODE_DIR);
    }
    Ok(command)
}

/// Copies the application's files into `root`, without `node_modules` (the install
/// command makes it) and `.git`.
fn copy_application(source: &Path, root: &Path) -> Result<()> {
    copy_tree(
        source,
        root,
        |entry| {
            !(entry.depth() == 1 && entry.file_name() == "node_modules")
                && entry.file_name() != ".git"
        },
        Existing::Replace,
    )
}

/// The keys of `kind = "node"`: a source directory with the `package.json` the install
/// reads, and a build command that is not empty.
pub(super) fn check(node: &NodeEnvironment, check: &KindCheck<'_>) -> Result<(), ManifestError> {
    check.directory("[environment] source", &node.source)?;
    let source: PathBuf = node
        .source
        .components()
        .filter(|component| *component != std::path::Component::CurDir)
        .collect();
    let package_json = check.root.join(source).join("package.json");
    if !package_json.is_file() {
        return Err(check.fail(
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
        return Err(check.fail("[environment] command", "must not be empty".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_gyp_names_the_tool_it_did_not_find() {
        let lines = |text: &str| text.lines().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            missing_build_tool(&lines(
                "npm error gyp info spawn args\nnpm error gyp ERR! stack Error: not found: make"
            )),
            Some("make")
        );
        assert_eq!(
            missing_build_tool(&lines(
                "gyp ERR! find Python Could not find any Python installation to use"
            )),
            Some("python3")
        );
        assert_eq!(
            missing_build_tool(&lines("npm error not found: make")),
            None
        );
    }
}
