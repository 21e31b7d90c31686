//! `kind = "python"`: a virtualenv built with a Debian interpreter and made to work at
//! `/opt/<app>/<version>`.
//!
//! The steps: check the interpreter (a Debian one under /usr/bin, because `pyvenv.cfg` and
//! `bin/python` keep pointing at it on the servers); `python -m venv --without-pip`; the
//! interpreter's own pip (Debian's python3-pip) installs into the environment with
//! `--python`, so the release carries no pip of its own and nothing is byte-compiled with
//! timestamps; then the tree is moved, in its files, from the build directory to the
//! release directory (shebangs, activate scripts, `pyvenv.cfg`, RECORD hashes, symbolic
//! links), byte-compiled with hash-based `.pyc` whose embedded paths are the release
//! directory's, and searched for any remaining mention of the build directory.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use sha2::Digest;
use walkdir::WalkDir;

use super::command::{run_streamed, CommandFailed};
use super::kind_check::KindCheck;
use super::python_layer::{self, KeyInputs, LayerCache};
use super::staged::{StagedLayer, StagedTree};
use crate::build::manifest::{LoadedManifest, ManifestError, PythonEnvironment};
use crate::build::runner::Runner;
use crate::build::tree_copy::{copy_tree, Existing};
use crate::report::Reporter;

/// The longest shebang line the kernel reads (`BINPRM_BUF_SIZE` less `#!` and newline).
const SHEBANG_LIMIT: usize = 127;

/// Lintian tags a Python environment raises by design:
/// - `embedded-library`, `unstripped-binary-or-object`: wheels bundle their own shared
///   libraries (manylinux `*.libs/`), built and stripped or not by their authors;
/// - `package-installs-python-pycache-dir`: the environment is byte-compiled at build time,
///   reproducibly, so that servers never write into the release directory;
/// - `unusual-interpreter`: console scripts run the environment's own `bin/python`.
pub(crate) const LINTIAN_OVERRIDES: &[&str] = &[
    "embedded-library",
    "package-installs-python-pycache-dir",
    "unstripped-binary-or-object",
    "unusual-interpreter",
];

/// What a build root needs for a Python environment: the venv module and the
/// interpreter's pip (which installs into the environment from outside it).
pub(crate) const ROOT_PACKAGES: &[&str] = &["python3-venv", "python3-pip"];

/// A checked interpreter.
#[derive(Debug, Clone)]
pub(crate) struct Interpreter {
    /// The path as the manifest names it.
    pub(crate) path: PathBuf,
    /// `major.minor`, as `3.11`.
    pub(crate) version: String,
}

/// Builds the virtualenv into `scratch`.
pub(crate) fn stage(
    manifest: &LoadedManifest,
    options: &PythonEnvironment,
    runner: &Runner,
    scratch: &Path,
    out: &Path,
    reporter: &Reporter,
) -> Result<(StagedTree, Option<StagedLayer>)> {
    let interpreter = check_interpreter(manifest, runner, &options.interpreter)?;
    check_not_editable(manifest, options)?;
    // pip builds a local project in its own directory (setuptools writes egg-info and
    // build/ there), and a requirements file may name the project as `.`: pip works on a
    // copy, so the application directory is only read, on the host as in a build root.
    let copy = scratch.join("project");
    copy_project(&manifest.directory, out, &copy)?;
    let architecture = if manifest.layered() {
        build_architecture(runner)?
    } else {
        String::new()
    };
    let target = manifest
        .names()
        .distribution()
        .map(|distribution| distribution.codename().to_string());
    let inputs = KeyInputs {
        python: &interpreter.version,
        architecture: &architecture,
        target: target.as_deref(),
    };
    // The layer cache serves builds on the host, where the cached tree is visible to pip.
    let cache = if manifest.layered() && runner.system_root().is_host() {
        let locked = match &options.lock {
            Some(lock) => Some(super::python_lock::pinned_requirements(
                manifest,
                &manifest.resolve(lock),
                &manifest
                    .resolve(options.project.as_deref().unwrap_or(Path::new(".")))
                    .join("pyproject.toml"),
            )?),
            None => None,
        };
        LayerCache::of(manifest, options, &inputs, locked.as_deref())?
    } else {
        None
    };
    let context = Inputs {
        manifest,
        options,
        runner,
        interpreter: &interpreter,
        inputs: &inputs,
        copy: &copy,
        out,
        reporter,
        cache: cache.as_ref(),
    };
    if let Some((cache, key)) = cache
        .as_ref()
        .and_then(|cache| cache.key().map(|key| (cache, key)))
    {
        match environment(&context, &scratch.join("cached"), Some((cache, &key))) {
            Ok((tree, layer, _)) => return Ok((tree, layer)),
            Err(error) if error.downcast_ref::<LayerMismatch>().is_some() => {
                reporter.warn(format!("{error:#}; installing every dependency again"));
            }
            Err(error) => return Err(error),
        }
    }
    let (tree, layer, scripts) = environment(&context, &scratch.join("full"), None)?;
    if let (Some(cache), Some(layer)) = (&cache, &layer) {
        if let Err(error) = cache.store(
            &layer.key,
            &layer.root,
            &tree.root,
            &scripts,
            &manifest.names().release_dir(),
        ) {
            reporter.warn(format!(
                "the layer cache {} was not written: {error:#}",
                cache.directory.display()
            ));
        }
    }
    Ok((tree, layer))
}

/// What every way of building the environment reads.
struct Inputs<'a> {
    manifest: &'a LoadedManifest,
    options: &'a PythonEnvironment,
    runner: &'a Runner,
    interpreter: &'a Interpreter,
    inputs: &'a KeyInputs<'a>,
    copy: &'a Path,
    out: &'a Path,
    reporter: &'a Reporter,
    /// The layer cache's entry of this build, if its inputs have one.
    cache: Option<&'a LayerCache>,
}

/// The cached layer does not hold what the project needs (`pip check` failed with it).
#[derive(Debug, thiserror::Error)]
#[error("the cached layer {key} does not satisfy the project (pip check: {said})")]
struct LayerMismatch {
    key: String,
    said: String,
}

/// Builds the environment in `scratch`: everything with pip, or, with `cached` (a layer
/// cache entry and its key), the project alone on top of the cached layer. Gives the
/// tree, the layer and the console scripts of the layer's distributions.
fn environment(
    context: &Inputs<'_>,
    scratch: &Path,
    cached: Option<(&LayerCache, &str)>,
) -> Result<(StagedTree, Option<StagedLayer>, Vec<PathBuf>)> {
    let Inputs {
        manifest,
        options,
        runner,
        interpreter,
        inputs,
        copy,
        out,
        reporter,
        cache: _,
    } = *context;
    fs_err::create_dir_all(scratch)?;
    let root = scratch.join("venv");
    // The environment's path as the interpreter sees it, which is what the tools write
    // into its files (the same path on the host, another in a build root).
    let build = runner.inside(scratch)?.join("venv");
    let build_root = Build {
        runner,
        host: &root,
        inside: &build,
        out,
    };
    let release = manifest.names().release_dir();
    reporter.status(format!(
        "Creating a Python {} environment with {}",
        interpreter.version,
        interpreter.path.display()
    ));
    let output = clean_command(runner, &interpreter.path, Path::new("/"))
        .args(["-m", "venv", "--without-pip"])
        .arg(&build)
        .output()
        .with_context(|| format!("cannot run {}", interpreter.path.display()))?;
    if !output.status.success() {
        bail!(
            "{}: [environment] interpreter {}: `-m venv` failed: {}(on Debian, install python3-venv)",
            manifest.path.display(),
            interpreter.path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let site_packages = root
        .join("lib")
        .join(format!("python{}", interpreter.version))
        .join("site-packages");
    match cached {
        Some((cache, key)) => {
            reporter.status(format!(
                "Dependencies from the cached layer {key}: only the project is installed"
            ));
            // The cached layer joins the environment for pip, as it will on the servers.
            fs::write(
                site_packages.join(python_layer::LAYER_PTH),
                python_layer::pth_text(&cache.layer().join("site-packages").to_string_lossy()),
            )
            .with_context(|| format!("{}: cannot be written", site_packages.display()))?;
            pip_install(
                manifest,
                options,
                interpreter,
                &build_root,
                copy,
                Install::ProjectOnly,
                reporter,
            )?;
            if let Err(said) = pip_check(interpreter, &build_root, &runner.inside(copy)?)? {
                return Err(LayerMismatch {
                    key: key.to_string(),
                    said,
                }
                .into());
            }
            cache.restore_scripts(&root, &build)?;
        }
        None => pip_install(
            manifest,
            options,
            interpreter,
            &build_root,
            copy,
            Install::Everything,
            reporter,
        )?,
    }
    let projects = if manifest.layered() {
        python_layer::local_projects(&site_packages)?
    } else {
        BTreeSet::new()
    };
    let mut rewritten = check_installed(manifest, &site_packages, &root)?;
    if let Some(source) = &options.source {
        copy_source(manifest, &manifest.resolve(source), &root, out)?;
    }
    rewritten.extend(relocate(&root, &build, &release)?);
    unset_executable_on_libraries(&root)?;
    update_records(&site_packages, &rewritten)?;
    let python = build.join("bin/python");
    let mut depends = interpreter_depends(&interpreter.version);
    let context_cache = cached.map(|(cache, _)| cache).or(context.cache);
    let mut scripts = Vec::new();
    let layer = match cached {
        Some((cache, key)) => Some((key.to_string(), cache.layer(), false)),
        None if manifest.layered() => {
            let layer_host = scratch.join("layer");
            python_layer::split(
                manifest,
                options,
                &site_packages,
                &projects,
                &layer_host,
                inputs,
            )?
            .map(|split| {
                scripts = split.scripts;
                (split.key, layer_host, true)
            })
        }
        None => None,
    };
    let layer = match layer {
        Some((key, layer_host, fresh)) => {
            let names = manifest.names().app();
            let layer_dir = names.layer_dir(&key);
            let layer_inside = runner.inside(scratch)?.join("layer");
            fs::write(
                site_packages.join(python_layer::LAYER_PTH),
                python_layer::pth_text(&format!("{layer_dir}/site-packages")),
            )
            .with_context(|| format!("{}: cannot be written", site_packages.display()))?;
            reporter.status(format!(
                "Dependencies in layer {} ({layer_dir})",
                names.layer_package(&key)
            ));
            if fresh {
                let layer_build = Build {
                    runner,
                    host: &layer_host,
                    inside: &layer_inside,
                    out,
                };
                byte_compile(manifest, &layer_build, &python, &layer_dir, reporter)?;
                check_no_build_path(&manifest.path, &layer_dir, &layer_host, &layer_inside)?;
            }
            depends.push(format!(
                "{} (= {})",
                names.layer_package(&key),
                crate::naming::layer_version(manifest.names().distribution())
            ));
            Some(StagedLayer {
                key,
                root: layer_host,
                depends: interpreter_depends(&interpreter.version),
                cache: context_cache.map(|cache| cache.directory.clone()),
                prebuilt: None,
            })
        }
        None => None,
    };
    byte_compile(manifest, &build_root, &python, &release, reporter)?;
    check_no_build_path(&manifest.path, &release, &root, &build)?;
    Ok((StagedTree { root, depends }, layer, scripts))
}

/// The Debian architecture of the machine that builds (a layer's key holds it).
pub(crate) fn build_architecture(runner: &Runner) -> Result<String> {
    let output = runner
        .command("dpkg", Path::new("/"))
        .arg("--print-architecture")
        .output()
        .context("cannot run dpkg --print-architecture")?;
    let architecture = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || architecture.is_empty() {
        bail!(
            "dpkg --print-architecture failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(architecture)
}

/// The environment being built: the runner that builds it, its path on the host and as
/// the runner's programs see it, and the build's output directory (where the log of a
/// failed pip is kept).
struct Build<'a> {
    runner: &'a Runner,
    host: &'a Path,
    inside: &'a Path,
    out: &'a Path,
}

/// A command for the interpreter (run by `runner` in `workdir`) with the variables that
/// would send Python or pip somewhere else removed.
fn clean_command(runner: &Runner, program: &Path, workdir: &Path) -> Command {
    let mut command = runner.command(program, workdir);
    for variable in [
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",
        "VIRTUAL_ENV",
        "PIP_TARGET",
        "PIP_PREFIX",
        "PIP_USER",
        "PIP_REQUIRE_VIRTUALENV",
        "PIP_EDITABLE",
    ] {
        command.env_remove(variable);
    }
    command
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONNOUSERSITE", "1");
    command
}

/// Checks that the interpreter is a Debian one under /usr/bin and reads its version.
pub(crate) fn check_interpreter(
    manifest: &LoadedManifest,
    runner: &Runner,
    path: &Path,
) -> Result<Interpreter> {
    let system = runner.system_root();
    let machine = if system.is_host() {
        "the build machine".to_string()
    } else {
        format!(
            "the build root ({})",
            system.host_path(Path::new("/")).display()
        )
    };
    let key = "[environment] interpreter";
    let shown = path.display();
    let advice = "Servers run the environment with the interpreter it was built with \
                  (pyvenv.cfg and bin/python point at it), and they have Debian's: use \
                  /usr/bin/python3 or /usr/bin/python3.X from Debian's python3 packages";
    if !path.is_absolute() {
        return Err(manifest
            .error(
                key,
                format!("{shown:?}: must be an absolute path. {advice}"),
            )
            .into());
    }
    if path.parent() != Some(Path::new("/usr/bin")) {
        return Err(manifest
            .error(
                key,
                format!(
                    "{shown:?} is not under /usr/bin (an interpreter from pyenv, /usr/local \
                     or a version manager would leave the environment pointing at a path no \
                     server has). {advice}"
                ),
            )
            .into());
    }
    if !system.host_path(path).exists() {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(manifest
            .error(
                key,
                if system.is_host() {
                    format!(
                        "{shown:?} is not installed on {machine}: install it with \
                         `apt-get install {name} python3-venv`"
                    )
                } else {
                    format!(
                        "{shown:?} is not installed in {machine}: add {name:?} to \
                         [build] packages, if the target distribution has it"
                    )
                },
            )
            .into());
    }
    let real = system
        .canonicalize(path)
        .with_context(|| format!("{shown}: cannot be resolved on {machine}"))?;
    if !real.starts_with("/usr/bin") {
        return Err(manifest
            .error(
                key,
                format!(
                    "{shown:?} is a link to {}, which is not under /usr/bin. {advice}",
                    real.display()
                ),
            )
            .into());
    }
    let output = clean_command(runner, path, Path::new("/"))
        .args([
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.base_prefix)",
        ])
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let (Some(version), Some(prefix)) = (lines.next(), lines.next()) else {
        return Err(manifest
            .error(
                key,
                format!(
                    "{shown:?} did not run as a Python interpreter: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            )
            .into());
    };
    if !output.status.success() || !version.starts_with("3.") {
        return Err(manifest
            .error(key, format!("{shown:?} is not a Python 3 interpreter"))
            .into());
    }
    if prefix != "/usr" {
        return Err(manifest
            .error(
                key,
                format!("{shown:?} has its standard library under {prefix}, not /usr. {advice}"),
            )
            .into());
    }
    Ok(Interpreter {
        path: path.to_path_buf(),
        version: version.to_string(),
    })
}

/// Refuses editable installs before anything runs: in the requirements file and in
/// `pip-args`. (What slips through, such as a nested requirements file, is caught after the
/// install by [`check_installed`].)
fn check_not_editable(manifest: &LoadedManifest, options: &PythonEnvironment) -> Result<()> {
    let why = "an editable install points at the build machine's source tree, which no \
               server has: install the project itself (without -e)";
    for argument in &options.pip_args {
        if argument == "-e" || argument.starts_with("--editable") || argument.starts_with("-e") {
            return Err(manifest
                .error(
                    "[environment] pip-args",
                    format!("{argument:?} asks for an editable install; {why}"),
                )
                .into());
        }
    }
    if let Some(requirements) = &options.requirements {
        let path = manifest.resolve(requirements);
        let text = fs_err::read_to_string(&path)?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with("-e") || line.starts_with("--editable") {
                return Err(manifest
                    .error(
                        "[environment] requirements",
                        format!(
                            "{} line {}: {line:?} is an editable install; {why}",
                            path.display(),
                            number + 1
                        ),
                    )
                    .into());
            }
        }
    }
    Ok(())
}

/// What [`pip_install`] installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Install {
    /// The requirements, the lock and the project, with their dependencies.
    Everything,
    /// The project alone (`--no-deps`): its dependencies come from a cached layer.
    ProjectOnly,
}

fn pip_install(
    manifest: &LoadedManifest,
    options: &PythonEnvironment,
    interpreter: &Interpreter,
    build: &Build<'_>,
    copy: &Path,
    install: Install,
    reporter: &Reporter,
) -> Result<()> {
    let runner = build.runner;
    // A path of the application as pip sees it: in the copy when it is inside the
    // application directory.
    let application = absolute(&manifest.directory);
    let in_copy = |path: &Path| -> Result<PathBuf> {
        let path = absolute(&manifest.resolve(path));
        match path.strip_prefix(&application) {
            Ok(relative) => runner.inside(&copy.join(relative)),
            Err(_) => runner.inside(&path),
        }
    };
    let workdir = runner.inside(copy)?;
    let pip = || -> Command {
        let mut command = clean_command(runner, &interpreter.path, &workdir);
        command
            .args(["-m", "pip", "--python"])
            .arg(build.inside.join("bin/python"))
            .args([
                "install",
                "--no-compile",
                "--disable-pip-version-check",
                "--no-input",
                "--no-warn-script-location",
                "--progress-bar",
                "off",
                // A project without pyproject.toml (setup.py only) is built in an
                // isolated environment with setuptools too: the venv has none.
                "--use-pep517",
            ]);
        command
    };
    let wheels = match &options.wheels {
        Some(wheels) => Some(runner.inside(&absolute(&manifest.resolve(wheels)))?),
        None => None,
    };
    let with_wheels = |command: &mut Command| {
        if let Some(wheels) = &wheels {
            command.arg("--no-index").arg("--find-links").arg(wheels);
        }
    };
    // A lock becomes a hash-pinned requirements file beside the copy.
    let locked = match &options.lock {
        Some(lock) => {
            let project = options.project.as_deref().unwrap_or(Path::new("."));
            let text = super::python_lock::pinned_requirements(
                manifest,
                &manifest.resolve(lock),
                &manifest.resolve(project).join("pyproject.toml"),
            )?;
            let path = copy
                .parent()
                .unwrap_or(copy)
                .join("locked-requirements.txt");
            fs_err::write(&path, text)?;
            Some(runner.inside(&path)?)
        }
        None => None,
    };
    let hashed = match (&locked, &options.requirements) {
        (Some(_), _) => true,
        (None, Some(requirements)) => {
            requires_hashes(&manifest.resolve(requirements), &options.pip_args)?
        }
        (None, None) => false,
    };
    // The project alone, its dependencies already there.
    let project_step = || -> Result<Command> {
        let mut project = pip();
        with_wheels(&mut project);
        project.arg("--no-deps");
        project.arg(in_copy(
            options.project.as_deref().unwrap_or(Path::new(".")),
        )?);
        project.args(
            options
                .pip_args
                .iter()
                .filter(|argument| *argument != "--require-hashes"),
        );
        Ok(project)
    };
    let mut steps: Vec<(Command, &str)> = Vec::new();
    if install == Install::ProjectOnly {
        if options.project.is_some() {
            steps.push((project_step()?, "pip install --no-deps (the project)"));
        }
    } else if hashed && options.project.is_some() {
        // pip's hash-checking mode covers every requirement of the command, and a local
        // project has no hash: the pinned requirements are installed with their hashes
        // checked, then the project alone, its dependencies already there.
        let mut pinned = pip();
        with_wheels(&mut pinned);
        pinned.arg("--require-hashes").arg("-r");
        match &locked {
            // The lock is the whole set: nothing is resolved again.
            Some(path) => pinned.arg(path).arg("--no-deps"),
            None => pinned.arg(in_copy(
                options.requirements.as_deref().unwrap_or(Path::new("")),
            )?),
        };
        pinned.args(&options.pip_args);
        steps.push((pinned, "pip install --require-hashes -r"));
        if locked.is_some() {
            reporter.status(format!(
                "Installing exactly the versions of {}",
                options.lock.as_deref().unwrap_or(Path::new("")).display()
            ));
        }
        steps.push((project_step()?, "pip install --no-deps (the project)"));
    } else {
        let mut command = pip();
        with_wheels(&mut command);
        if let Some(requirements) = &options.requirements {
            command.arg("-r").arg(in_copy(requirements)?);
        }
        if let Some(project) = &options.project {
            // pip reads a bare name as a requirement; a path it reads as a project.
            command.arg(in_copy(project)?);
        }
        if let (Some(wheels), None, None) =
            (&options.wheels, &options.requirements, &options.project)
        {
            let directory = manifest.resolve(wheels);
            let mut found: Vec<PathBuf> = fs_err::read_dir(&directory)?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension() == Some(OsStr::new("whl")))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(manifest
                    .error(
                        "[environment] wheels",
                        format!("{}: holds no .whl file", directory.display()),
                    )
                    .into());
            }
            for wheel in found {
                command.arg(runner.inside(&absolute(&wheel))?);
            }
        }
        command.args(&options.pip_args);
        steps.push((command, "pip install"));
    }
    reporter.status(if hashed {
        "Installing with pip (hashes checked)"
    } else {
        "Installing with pip"
    });
    let log = build.out.join(manifest.names().build_log_file("pip"));
    for (mut command, what) in steps {
        run_pip(manifest, interpreter, &log, &mut command, what, reporter)?;
    }
    if hashed && options.project.is_some() && install == Install::Everything {
        check_dependencies(manifest, interpreter, build, &workdir)?;
    }
    Ok(())
}

/// Runs one pip command. A failure says pip's reason first, names what brings a missing
/// build tool (`[build] packages` in a build root), and keeps pip's whole output in `log`
/// (a file of the output directory, which outlives the build's scratch space and build
/// root); a missing pip gets the package that brings it.
///
/// pip's own `--log` is not used: with it pip writes a failed build step's output (the
/// compiler's error) to that file only and no longer to its output.
fn run_pip(
    manifest: &LoadedManifest,
    interpreter: &Interpreter,
    log: &Path,
    command: &mut Command,
    what: &str,
    reporter: &Reporter,
) -> Result<()> {
    let Err(error) = run_streamed(command, what, reporter) else {
        return Ok(());
    };
    let Some(failed) = error.downcast_ref::<CommandFailed>() else {
        return Err(error);
    };
    if failed.tail.contains("No module named pip") {
        bail!(
            "{}: [environment] interpreter {}: has no pip; install Debian's python3-pip on \
             the build machine (debstage uses the interpreter's pip and ships none)",
            manifest.path.display(),
            interpreter.path.display()
        );
    }
    let reasons = super::pip_failure::reasons(&failed.lines);
    let hint =
        super::pip_failure::missing_build_tool(&failed.lines).map(|tool| match manifest.target {
            Some(target) => format!(
                "\n{tool} is not in the build root of {}: name it in [build] packages (C \
                 extensions need \"gcc\" and \"python3-dev\", C++ ones \"g++\")",
                target.codename()
            ),
            None => format!(
                "\n{tool} is not on the build machine: install it (the Debian package of the \
                 same name), as pip needs it to build a C extension"
            ),
        });
    let kept = keep_output(&failed.lines, log)
        .map(|path| format!("\npip's output: {}", path.display()))
        .unwrap_or_default();
    let manifest_path = manifest.path.display();
    if reasons.is_empty() {
        return Err(error.context(format!(
            "{manifest_path}: [environment]: pip could not install the environment{}{kept}",
            hint.unwrap_or_default()
        )));
    }
    bail!(
        "{manifest_path}: [environment]: pip could not install the environment: {what} failed \
         with {}; pip says:\n  {}{}{kept}",
        failed.status,
        reasons.join("\n  "),
        hint.unwrap_or_default()
    )
}

/// Writes a failed command's output to `log`; gives its absolute path, `None` when it
/// cannot be written (the error is shown without it).
fn keep_output(lines: &[String], log: &Path) -> Option<PathBuf> {
    if let Some(parent) = log.parent() {
        fs::create_dir_all(parent).ok()?;
    }
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(log, text).ok()?;
    std::path::absolute(log).ok()
}

/// Whether a requirements file pins with hashes (pip-compile's `--generate-hashes`, or
/// `--require-hashes` in the file or in `pip-args`), which puts pip in hash-checking mode.
fn requires_hashes(requirements: &Path, pip_args: &[String]) -> Result<bool> {
    if pip_args
        .iter()
        .any(|argument| argument == "--require-hashes")
    {
        return Ok(true);
    }
    let text = fs_err::read_to_string(requirements)?;
    Ok(text.lines().any(|line| {
        let line = line.split(" #").next().unwrap_or("").trim();
        !line.starts_with('#') && (line.contains("--hash") || line.contains("--require-hashes"))
    }))
}

/// After the project was installed without its dependencies, checks with `pip check`
/// that the pinned requirements hold every one of them.
fn check_dependencies(
    manifest: &LoadedManifest,
    interpreter: &Interpreter,
    build: &Build<'_>,
    workdir: &Path,
) -> Result<()> {
    let Err(said) = pip_check(interpreter, build, workdir)? else {
        return Ok(());
    };
    Err(manifest
        .error(
            "[environment] requirements",
            format!(
                "the hash-pinned requirements do not hold every dependency of the project \
                 (installed with --no-deps); pip check says:\n{}regenerate the file (pip-compile \
                 --generate-hashes)",
                said
            ),
        )
        .into())
}

/// Runs `pip check` on the environment (run in `workdir`); gives what pip said when it
/// found a requirement not met.
fn pip_check(
    interpreter: &Interpreter,
    build: &Build<'_>,
    workdir: &Path,
) -> Result<std::result::Result<(), String>> {
    let output = clean_command(build.runner, &interpreter.path, workdir)
        .args(["-m", "pip", "--disable-pip-version-check", "--python"])
        .arg(build.inside.join("bin/python"))
        .arg("check")
        .output()
        .context("cannot run pip check")?;
    if output.status.success() {
        return Ok(Ok(()));
    }
    Ok(Err(String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// Copies the application directory to `destination` for pip to build from, without
/// what a build never reads: version control, virtualenvs, caches, `node_modules`, and
/// the `--out` directory.
fn copy_project(source: &Path, out: &Path, destination: &Path) -> Result<()> {
    const SKIPPED: &[&str] = &[
        ".git",
        ".hg",
        ".svn",
        ".venv",
        ".tox",
        ".nox",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "node_modules",
    ];
    let out = fs::canonicalize(out).ok();
    copy_tree(
        source,
        destination,
        |entry| {
            let name = entry.file_name().to_string_lossy();
            if entry.file_type().is_dir() {
                if SKIPPED.contains(&name.as_ref()) || name.starts_with(".debstage-build-") {
                    return false;
                }
                if out.is_some() && fs::canonicalize(entry.path()).ok() == out {
                    return false;
                }
            }
            true
        },
        Existing::Replace,
    )
}

/// An absolute form of a path (pip runs in the manifest's directory; relative paths given
/// to it would be taken from there twice).
fn absolute(path: &Path) -> PathBuf {
    fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Refuses editable installs and `.pth` files that point outside the tree, and removes
/// the `direct_url.json` of local projects (it names their path on the build machine).
/// Returns the RECORD-listed files it removed.
fn check_installed(
    manifest: &LoadedManifest,
    site_packages: &Path,
    root: &Path,
) -> Result<BTreeSet<PathBuf>> {
    let mut removed = BTreeSet::new();
    let entries = fs_err::read_dir(site_packages)?;
    let mut names: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    names.sort();
    for path in names {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".dist-info") {
            let direct_url = path.join("direct_url.json");
            let Ok(text) = fs::read_to_string(&direct_url) else {
                continue;
            };
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: is not JSON", direct_url.display()))?;
            if value["dir_info"]["editable"].as_bool() == Some(true) {
                bail!(
                    "{}: [environment]: {} was installed in editable mode (from {}); an \
                     editable install points at the build machine's source tree, which no \
                     server has: install it without -e",
                    manifest.path.display(),
                    name.trim_end_matches(".dist-info"),
                    value["url"].as_str().unwrap_or("?")
                );
            }
            if value["url"]
                .as_str()
                .is_some_and(|url| url.starts_with("file:"))
            {
                fs_err::remove_file(&direct_url)?;
                removed.insert(direct_url);
            }
        } else if name.ends_with(".pth") {
            let text = fs_err::read_to_string(&path)?;
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if line.starts_with("import ") || line.starts_with("import\t") {
                    if line.contains("__editable__") {
                        bail!(
                            "{}: [environment]: {name} comes from an editable install; install \
                             the project without -e",
                            manifest.path.display()
                        );
                    }
                    continue;
                }
                let target = site_packages.join(line);
                if Path::new(line).is_absolute() || !normalize(&target).starts_with(root) {
                    bail!(
                        "{}: [environment]: site-packages/{name} adds {line:?} to the module \
                         path, which is outside the environment (an editable or development \
                         install); install the package itself",
                        manifest.path.display()
                    );
                }
            }
        }
    }
    Ok(removed)
}

/// Copies the application's source into the release directory, beside the environment.
/// The `--out` directory, when inside the source, is not copied (each build would carry
/// the one before).
fn copy_source(manifest: &LoadedManifest, source: &Path, root: &Path, out: &Path) -> Result<()> {
    let out = fs::canonicalize(out).ok();
    let collision = |relative: &Path| {
        anyhow::anyhow!(
            "{}: [environment] source: {} would replace {} of the Python environment; \
             rename it or move it into a subdirectory",
            manifest.path.display(),
            source.join(relative).display(),
            relative.display()
        )
    };
    copy_tree(
        source,
        root,
        |entry| {
            let name = entry.file_name();
            if name == ".git" {
                return false;
            }
            if entry.file_type().is_dir() {
                return name != "__pycache__"
                    && !(out.is_some() && fs::canonicalize(entry.path()).ok() == out);
            }
            entry.path().extension() != Some(OsStr::new("pyc"))
        },
        Existing::Refuse(&collision),
    )
}

/// Rewrites what names the build directory (`build`, the path of `root` as the tools that
/// wrote it saw it): scripts and activate files in `bin/`, `pyvenv.cfg`, and symbolic
/// links. Returns the files whose content changed.
fn relocate(root: &Path, build: &Path, release: &str) -> Result<BTreeSet<PathBuf>> {
    let build_path = build;
    let build = build.to_string_lossy().into_owned();
    let mut rewritten = BTreeSet::new();
    let mut text_files = vec![root.join("pyvenv.cfg")];
    if let Ok(entries) = fs::read_dir(root.join("bin")) {
        let mut names: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        names.sort();
        text_files.extend(names);
    }
    for path in text_files {
        let Ok(metadata) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        let bytes = fs_err::read(&path)?;
        if let Some(new) = rewrite_text(&bytes, &build, release) {
            // Writing in place keeps the file's mode.
            fs_err::write(&path, new)?;
            rewritten.insert(path);
        }
    }
    for entry in WalkDir::new(root) {
        let entry = entry.with_context(|| format!("{}: cannot be read", root.display()))?;
        if !entry.path_is_symlink() {
            continue;
        }
        let target = fs_err::read_link(entry.path())?;
        if let Ok(rest) = target.strip_prefix(build_path) {
            let new_target = Path::new(release).join(rest);
            fs_err::remove_file(entry.path())?;
            std::os::unix::fs::symlink(&new_target, entry.path())
                .with_context(|| format!("{}: cannot be created", entry.path().display()))?;
        }
    }
    Ok(rewritten)
}

/// The text with the build directory replaced by the release directory, and pip's long
/// `'''exec'` shebang (used for paths too long for the kernel or holding spaces) turned
/// back into a plain one when the release directory allows; `None` if nothing changes.
pub(crate) fn rewrite_text(bytes: &[u8], build: &str, release: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text.contains(build) {
        return None;
    }
    let mut text = text.to_string();
    if let Some(rest) = text.strip_prefix("#!/bin/sh\n'''exec' ") {
        // pip writes: #!/bin/sh \n '''exec' '<python>' "$0" "$@" \n ' ''' \n
        let lines: Vec<&str> = rest.splitn(3, '\n').collect();
        if lines.len() == 3 && lines[1] == "' '''" {
            let python = lines[0]
                .split_once(" \"$0\"")
                .map(|(quoted, _)| quoted.trim_matches('\''))
                .unwrap_or("");
            if let Some(tail) = python.strip_prefix(build) {
                let new_python = format!("{release}{tail}");
                if new_python.len() <= SHEBANG_LIMIT && !new_python.contains(char::is_whitespace) {
                    text = format!("#!{new_python}\n{}", lines[2]);
                }
            }
        }
    }
    Some(text.replace(build, release).into_bytes())
}

/// Shared libraries need no execute bit (the loader maps them) and Debian ships them
/// 0644; wheels often carry them 0755.
fn unset_executable_on_libraries(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in WalkDir::new(root)
        .into_iter()
        .filter_map(|entry| entry.ok())
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if !(name.ends_with(".so") || name.contains(".so.")) {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let mode = metadata.permissions().mode();
        if mode & 0o111 != 0 {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode & !0o111))
                .with_context(|| format!("{}: cannot change its mode", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Puts the new hash and size of each rewritten file into the RECORD that lists it, and
/// drops the lines of removed files.
fn update_records(site_packages: &Path, changed: &BTreeSet<PathBuf>) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let Ok(entries) = fs::read_dir(site_packages) else {
        return Ok(());
    };
    let mut records: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("RECORD")))
        .filter(|path| path.is_file())
        .collect();
    records.sort();
    for record in records {
        let text = fs_err::read_to_string(&record)?;
        let mut out = String::with_capacity(text.len());
        let mut touched = false;
        for line in text.lines() {
            let mut fields = line.rsplitn(3, ',');
            let (Some(_size), Some(_hash), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                out.push_str(line);
                out.push('\n');
                continue;
            };
            let unquoted = name.trim_matches('"');
            let path = normalize(&site_packages.join(unquoted));
            if changed.contains(&path) {
                touched = true;
                if let Ok(bytes) = fs::read(&path) {
                    let digest = sha2::Sha256::digest(&bytes);
                    out.push_str(&format!(
                        "{name},sha256={},{}\n",
                        urlsafe_base64(&digest),
                        bytes.len()
                    ));
                }
                // A removed file loses its line.
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if touched {
            fs_err::write(&record, out)?;
        }
    }
    Ok(())
}

/// Unpadded URL-safe base64, the form of RECORD hashes (PEP 376 / PEP 627).
pub(crate) fn urlsafe_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A path with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Removes every `.pyc` the install left, then byte-compiles the whole tree with
/// `python` and hash-based `.pyc` files (no timestamps) whose embedded paths are those
/// of `release`, where the tree is installed.
fn byte_compile(
    manifest: &LoadedManifest,
    build: &Build<'_>,
    python: &Path,
    release: &str,
    reporter: &Reporter,
) -> Result<()> {
    let root = build.host;
    let mut caches = Vec::new();
    for entry in WalkDir::new(root)
        .into_iter()
        .filter_map(|entry| entry.ok())
    {
        if entry.file_type().is_dir() && entry.file_name() == "__pycache__" {
            caches.push(entry.path().to_path_buf());
        } else if entry.file_type().is_file() && entry.path().extension() == Some(OsStr::new("pyc"))
        {
            fs_err::remove_file(entry.path())?;
        }
    }
    for cache in caches {
        if cache.exists() {
            fs_err::remove_dir_all(&cache)?;
        }
    }
    reporter.status("Byte-compiling");
    let output = clean_command(build.runner, python, Path::new("/"))
        .args(["-m", "compileall", "-q", "-j", "0"])
        .args(["--invalidation-mode", "unchecked-hash"])
        .arg("-s")
        .arg(build.inside)
        .args(["-p", release])
        .arg(build.inside)
        .output()
        .context("cannot run compileall")?;
    if !output.status.success() {
        // pip does not fail an install on a file that does not compile (test data,
        // templates); neither do we, but we say which.
        reporter.warn(format!(
            "{}: some files did not byte-compile:\n{}{}",
            manifest.path.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// Fails when any file or link of the tree still names the build directory, by its path
/// on the host or as the build's programs saw it (`build`).
fn check_no_build_path(manifest: &Path, release: &str, root: &Path, build: &Path) -> Result<()> {
    let mut needles = vec![
        build.to_string_lossy().into_owned(),
        root.to_string_lossy().into_owned(),
    ];
    if let Ok(real) = fs::canonicalize(root) {
        needles.push(real.to_string_lossy().into_owned());
    }
    needles.sort();
    needles.dedup();
    let entries: Vec<PathBuf> = WalkDir::new(root)
        .into_iter()
        .filter_map(|entry| entry.ok())
        .filter(|entry| !entry.file_type().is_dir())
        .map(|entry| entry.into_path())
        .collect();
    let mut found: Vec<String> = entries
        .par_iter()
        .filter(|path| {
            let bytes = match fs::symlink_metadata(path) {
                Ok(metadata) if metadata.file_type().is_symlink() => fs::read_link(path)
                    .map(|target| target.to_string_lossy().into_owned().into_bytes())
                    .unwrap_or_default(),
                Ok(_) => fs::read(path).unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            needles
                .iter()
                .any(|needle| contains(&bytes, needle.as_bytes()))
        })
        .map(|path| {
            path.strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    found.sort();
    let count = found.len();
    found.truncate(20);
    bail!(
        "{}: [environment]: {count} file(s) of the Python environment still name the build \
         directory {} and would not work at {release}: {}",
        manifest.display(),
        needles[0],
        found.join(", ")
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack.len() >= needle.len()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// The packages the environment's interpreter comes from: `python3.X` for the exact
/// minor version, and `python3` within that minor version, because the venv's
/// `bin/python3` links to `/usr/bin/python3`, which only the `python3` package ships.
fn interpreter_depends(version: &str) -> Vec<String> {
    let mut depends = vec![format!("python{version}")];
    if let Some((major, minor)) = version.split_once('.') {
        if let Ok(minor) = minor.parse::<u32>() {
            depends.push(format!("python3 (>= {version}~)"));
            depends.push(format!("python3 (<< {major}.{}~)", minor + 1));
        }
    }
    depends
}

/// The keys of `kind = "python"`: where the dependencies come from (requirements, a
/// project, wheels, or a project with its lock), each present, and no lock beside
/// requirements.
pub(super) fn check(
    python: &PythonEnvironment,
    check: &KindCheck<'_>,
) -> Result<(), ManifestError> {
    if python.requirements.is_none() && python.project.is_none() && python.wheels.is_none() {
        return Err(check.fail(
            "[environment] requirements",
            "kind \"python\" needs requirements, project or wheels".into(),
        ));
    }
    if let Some(requirements) = &python.requirements {
        let full = check.root.join(requirements);
        if !full.is_file() {
            return Err(check.fail(
                "[environment] requirements",
                format!("{}: no such file", full.display()),
            ));
        }
    }
    if let Some(project) = &python.project {
        check.directory("[environment] project", project)?;
    }
    if let Some(lock) = &python.lock {
        let key = "[environment] lock";
        let full = check.root.join(lock);
        let name = lock.file_name().and_then(|name| name.to_str());
        if !matches!(name, Some("uv.lock" | "poetry.lock")) {
            return Err(check.fail(
                key,
                format!("{}: must be a uv.lock or a poetry.lock", lock.display()),
            ));
        }
        if !full.is_file() {
            return Err(check.fail(key, format!("{}: no such file", full.display())));
        }
        if python.requirements.is_some() {
            return Err(check.fail(
                key,
                "set either lock or requirements, not both (the lock pins every \
                 dependency)"
                    .into(),
            ));
        }
        let has_pyproject = python
            .project
            .as_ref()
            .is_some_and(|project| check.root.join(project).join("pyproject.toml").is_file());
        if !has_pyproject {
            return Err(check.fail(
                key,
                "needs project, a directory with the pyproject.toml the lock was \
                 made for"
                    .into(),
            ));
        }
    }
    if let Some(wheels) = &python.wheels {
        check.directory("[environment] wheels", wheels)?;
    }
    if let Some(source) = &python.source {
        check.directory("[environment] source", source)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_long_shebangs_are_rewritten() {
        let plain = b"#!/tmp/b/venv/bin/python\nimport sys\n";
        assert_eq!(
            rewrite_text(plain, "/tmp/b/venv", "/opt/app/1.0").as_deref(),
            Some(&b"#!/opt/app/1.0/bin/python\nimport sys\n"[..])
        );
        let long = b"#!/bin/sh\n'''exec' '/tmp/a b/venv/bin/python' \"$0\" \"$@\"\n' '''\n# -*- coding: utf-8 -*-\nimport re\n";
        assert_eq!(
            rewrite_text(long, "/tmp/a b/venv", "/opt/app/1.0").as_deref(),
            Some(&b"#!/opt/app/1.0/bin/python\n# -*- coding: utf-8 -*-\nimport re\n"[..])
        );
        // A release directory with a space keeps pip's long form, with the new path.
        let kept = rewrite_text(long, "/tmp/a b/venv", "/opt/a p/1").expect("rewritten");
        assert!(String::from_utf8_lossy(&kept)
            .starts_with("#!/bin/sh\n'''exec' '/opt/a p/1/bin/python'"));
        assert_eq!(
            rewrite_text(b"#!/usr/bin/python3\n", "/tmp/b", "/opt/x"),
            None
        );
        assert_eq!(rewrite_text(b"\xff\xfe/tmp/b", "/tmp/b", "/opt/x"), None);
    }

    #[test]
    fn record_hashes_use_unpadded_urlsafe_base64() {
        assert_eq!(urlsafe_base64(b""), "");
        assert_eq!(urlsafe_base64(b"f"), "Zg");
        assert_eq!(urlsafe_base64(b"fo"), "Zm8");
        assert_eq!(urlsafe_base64(b"foo"), "Zm9v");
        assert_eq!(urlsafe_base64(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn a_build_path_left_anywhere_fails_naming_the_files() {
        let temp = tempfile::tempdir().expect("temp dir");
        let root = temp.path().join("venv");
        fs::create_dir_all(root.join("lib/pkg")).expect("mkdir");
        fs::write(root.join("lib/pkg/clean.py"), "x = 1\n").expect("write");
        let manifest = Path::new("debstage.toml");
        assert!(check_no_build_path(manifest, "/opt/a/1", &root, &root).is_ok());
        let mut data = b"\x00\x01binary ".to_vec();
        data.extend_from_slice(root.to_string_lossy().as_bytes());
        fs::write(root.join("lib/pkg/data.bin"), data).expect("write");
        std::os::unix::fs::symlink(root.join("lib"), root.join("lib/pkg/link")).expect("link");
        let message = format!(
            "{:#}",
            check_no_build_path(manifest, "/opt/a/1", &root, &root).expect_err("path left")
        );
        assert!(message.contains("2 file(s)"), "{message}");
        assert!(message.contains("lib/pkg/data.bin"), "{message}");
        assert!(message.contains("lib/pkg/link"), "{message}");
        assert!(!message.contains("clean.py"), "{message}");
    }

    #[test]
    fn paths_normalize_lexically() {
        assert_eq!(
            normalize(Path::new(
                "/v/lib/python3.11/site-packages/../../../bin/app"
            )),
            PathBuf::from("/v/bin/app")
        );
    }
}
