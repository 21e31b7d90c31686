//! Which package manager installs a node application, and that manager made ready for
//! the build: the lockfile decides (`package-lock.json` or `npm-shrinkwrap.json` → npm,
//! `pnpm-lock.yaml` → pnpm, `yarn.lock` → yarn, classic or berry by the lock's format),
//! `packageManager` in `package.json` gives the version (`pnpm@9.15.9+sha512...`), and
//! the install is frozen to the lock with the development dependencies left out.
//!
//! npm comes with Node.js. pnpm and yarn are installed with that npm from the npm
//! registry into a cache (`~/.cache/debstage/node-managers/<package>@<version>`, or
//! `/var/cache/debstage/node-managers` inside a build root) and put first on the
//! command's PATH. Corepack is not used: the corepack that Node 20 ships no longer
//! verifies the registry's current signatures, and its way out is to turn verification
//! off; npm checks the manager's tarball against the registry's integrity hash, as for
//! every other package.
//!
//! When an install fails, the manager's own reason (npm's `npm error` lines without its
//! usage text, pnpm's `ERR_PNPM_*` message, yarn's `error` lines) comes first.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::build::runner::Runner;

/// A node package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Manager {
    /// npm, which ships with Node.js.
    Npm,
    /// pnpm.
    Pnpm,
    /// Yarn 1 (classic).
    YarnClassic,
    /// Yarn 2 and later (berry).
    YarnBerry,
}

impl Manager {
    /// The name people know it by.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "pnpm",
            Manager::YarnClassic => "yarn (classic)",
            Manager::YarnBerry => "yarn (berry)",
        }
    }

    /// The frozen install of the production dependencies, run by `sh -c`.
    pub(crate) fn command(self) -> &'static str {
        match self {
            Manager::Npm => "npm ci --omit=dev",
            Manager::Pnpm => "pnpm install --frozen-lockfile --prod",
            Manager::YarnClassic => "yarn install --frozen-lockfile --production --non-interactive",
            // `focus --production` is berry's install without development dependencies;
            // YARN_ENABLE_IMMUTABLE_INSTALLS (set by `environment`) freezes it.
            Manager::YarnBerry => "yarn workspaces focus --all --production",
        }
    }

    /// The npm package that brings the manager, and its command's name; `None` for npm.
    fn package(self) -> Option<(&'static str, &'static str)> {
        match self {
            Manager::Npm => None,
            Manager::Pnpm => Some(("pnpm", "pnpm")),
            Manager::YarnClassic => Some(("yarn", "yarn")),
            Manager::YarnBerry => Some(("@yarnpkg/cli-dist", "yarn")),
        }
    }

    /// The version installed when `packageManager` names none: the release line that
    /// writes the lockfile's format.
    fn default_version(self, lockfile_text: &str) -> &'static str {
        match self {
            Manager::Npm => "",
            // pnpm 7 wrote lockfile 5.4, pnpm 8 wrote 6.0, pnpm 9 and 10 write 9.0.
            Manager::Pnpm if lockfile_text.starts_with("lockfileVersion: 5") => "7",
            Manager::Pnpm if lockfile_text.starts_with("lockfileVersion: '6") => "8",
            Manager::Pnpm => "9",
            Manager::YarnClassic => "1",
            Manager::YarnBerry => "4",
        }
    }

    /// The lines of a failed install's output that say why, in order.
    pub(crate) fn reasons(self, lines: &[String]) -> Vec<String> {
        const MOST: usize = 15;
        let mut reasons: Vec<String> = match self {
            Manager::Npm => {
                let mut reasons = Vec::new();
                let mut log_path_follows = false;
                for line in lines {
                    let Some(rest) = line
                        .strip_prefix("npm error")
                        .or_else(|| line.strip_prefix("npm ERR!"))
                    else {
                        continue;
                    };
                    let rest = rest.trim();
                    // npm 9 gives its log's path on the line after this one.
                    if std::mem::take(&mut log_path_follows) {
                        continue;
                    }
                    if rest == "A complete log of this run can be found in:" {
                        log_path_follows = true;
                        continue;
                    }
                    // The usage text npm prints after a usage error: the command's one-line
                    // summary (already taken), then "Usage:" and the options.
                    if rest == "Usage:" {
                        reasons.pop();
                        break;
                    }
                    if !rest.is_empty()
                        && !rest.starts_with("A complete log of this run")
                        && !gyp_noise(rest)
                    {
                        reasons.push(line.trim().to_string());
                    }
                }
                reasons
            }
            Manager::Pnpm => lines
                .iter()
                .skip_while(|line| !line.contains("ERR_PNPM_"))
                .map(|line| line.trim().to_string())
                .filter(|line| !line.is_empty())
                .collect(),
            Manager::YarnClassic => lines
                .iter()
                .filter(|line| line.starts_with("error "))
                .map(|line| line.trim().to_string())
                .collect(),
            Manager::YarnBerry => lines
                .iter()
                .filter(|line| {
                    line.contains("YN0028")
                        || line.contains("YN0001")
                        || line.contains("YN0009")
                        || line.contains("Usage Error")
                        || line.contains("Internal Error")
                })
                .map(|line| line.trim().to_string())
                .collect(),
        };
        reasons.truncate(MOST);
        reasons
    }
}

/// Lines of node-gyp's output (which npm repeats as errors when a native module's build
/// fails) that say nothing of why: its progress, its stack and the machine it ran on.
fn gyp_noise(line: &str) -> bool {
    let Some(rest) = line
        .strip_prefix("gyp info")
        .map(|_| "")
        .or_else(|| line.strip_prefix("gyp ERR! "))
    else {
        return line.starts_with("gyp verb") || line.starts_with("gyp http");
    };
    rest.is_empty()
        || rest.starts_with("stack     at ")
        || [
            "System ",
            "command ",
            "cwd ",
            "node -v ",
            "node-gyp -v ",
            "not ok",
        ]
        .iter()
        .any(|prefix| rest.starts_with(prefix))
}

/// The manager of an application directory, as its lockfile and `package.json` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Detected {
    /// The manager.
    pub(crate) manager: Manager,
    /// The lockfile it was chosen by.
    pub(crate) lockfile: &'static str,
    /// The version to install (`9.15.9`, or a release line such as `9`); empty for npm.
    pub(crate) version: String,
}

impl Detected {
    /// The manager with the version the build installs (`pnpm 9.15.9`, `npm`).
    pub(crate) fn label(&self) -> String {
        if self.version.is_empty() {
            self.manager.name().to_string()
        } else {
            format!("{} {}", self.manager.name(), self.version)
        }
    }
}

/// The lockfiles, in the order they are looked for.
pub(crate) const LOCKFILES: &[&str] = &[
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "yarn.lock",
];

/// Reads the lockfile and `packageManager` of the application in `source`; `None` when
/// it has no lockfile. `packageManager` naming another manager than the lockfile's is an
/// error that names both.
pub(crate) fn detect(source: &Path) -> Result<Option<Detected>> {
    let Some(lockfile) = LOCKFILES
        .iter()
        .copied()
        .find(|name| source.join(name).is_file())
    else {
        return Ok(None);
    };
    let lock_path = source.join(lockfile);
    let lock_text = fs_err::read_to_string(&lock_path)?;
    let manager = match lockfile {
        "pnpm-lock.yaml" => Manager::Pnpm,
        // Yarn 2 and later write a `__metadata` entry; Yarn 1 does not.
        "yarn.lock" if lock_text.contains("__metadata:") => Manager::YarnBerry,
        "yarn.lock" => Manager::YarnClassic,
        _ => Manager::Npm,
    };
    let package_json = source.join("package.json");
    let declared = match fs::read_to_string(&package_json) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
            .with_context(|| format!("{}: is not valid JSON", package_json.display()))?
            .get("packageManager")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
        Err(_) => None,
    };
    let mut version = manager.default_version(&lock_text).to_string();
    if let Some(declared) = declared {
        let (name, declared_version) = parse_package_manager(&declared).with_context(|| {
            format!(
                "{}: packageManager {declared:?}: must be <name>@<version> (pnpm@9.15.9, \
                 yarn@4.5.0, npm@10.8.2), with an optional +<hash>",
                package_json.display()
            )
        })?;
        let agrees = match name {
            "npm" => manager == Manager::Npm,
            "pnpm" => manager == Manager::Pnpm,
            "yarn" => matches!(manager, Manager::YarnClassic | Manager::YarnBerry),
            _ => false,
        };
        if !agrees {
            bail!(
                "{}: packageManager {declared:?} does not match the lockfile {lockfile}, which \
                 {} writes; keep the lockfile of the manager the project uses, or correct \
                 packageManager",
                package_json.display(),
                manager.name()
            );
        }
        if manager != Manager::Npm {
            version = declared_version.to_string();
        }
    }
    // A yarn.lock of the classic format with packageManager yarn@2 or later is berry's
    // to convert; a berry lock with yarn@1 cannot be read by it.
    let manager = match (manager, version.split('.').next()) {
        (Manager::YarnBerry, Some("1")) => bail!(
            "{}: packageManager names yarn 1, but yarn.lock was written by yarn 2 or later \
             (it has __metadata); name the yarn that wrote it",
            package_json.display()
        ),
        (Manager::YarnClassic, Some(major)) if major != "1" => Manager::YarnBerry,
        (manager, _) => manager,
    };
    if manager == Manager::YarnBerry && !berry_links_node_modules(source)? {
        bail!(
            "{}: yarn's Plug'n'Play (berry's default linker) keeps the packages in yarn's \
             cache, outside the release, and needs `node -r .pnp.cjs` to run; set \
             `nodeLinker: node-modules` (or `pnpm`) in .yarnrc.yml so that the release holds \
             a node_modules",
            source.join(".yarnrc.yml").display()
        );
    }
    Ok(Some(Detected {
        manager,
        lockfile,
        version,
    }))
}

/// Whether yarn berry installs a `node_modules` for the application in `source`:
/// `nodeLinker: node-modules` or `pnpm` in its `.yarnrc.yml` (or YARN_NODE_LINKER).
fn berry_links_node_modules(source: &Path) -> Result<bool> {
    let linked = |value: &str| {
        matches!(
            value.trim().trim_matches(['"', '\'']),
            "node-modules" | "pnpm"
        )
    };
    if std::env::var("YARN_NODE_LINKER").is_ok_and(|value| linked(&value)) {
        return Ok(true);
    }
    let path = source.join(".yarnrc.yml");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => {
            return Err(error).with_context(|| format!("{}: cannot be read", path.display()))
        }
    };
    // A top-level scalar key: one line of YAML, read without a YAML parser.
    Ok(text.lines().any(|line| {
        line.strip_prefix("nodeLinker:")
            .is_some_and(|value| linked(value.split('#').next().unwrap_or("")))
    }))
}

/// `pnpm@9.15.9+sha512.abc` → (`pnpm`, `9.15.9`).
fn parse_package_manager(text: &str) -> Option<(&str, &str)> {
    let (name, rest) = text.split_once('@')?;
    let version = rest.split('+').next()?;
    let valid = !name.is_empty()
        && !version.is_empty()
        && version
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || ".-".contains(character));
    valid.then_some((name, version))
}

/// Makes the manager ready for the build: installs pnpm or yarn (once per version, into
/// a cache) with the npm of `runner`, and gives the directory of its command as the
/// build sees it, to put first on PATH; `None` for npm.
pub(crate) fn provide(
    detected: &Detected,
    runner: &Runner,
    scratch: &Path,
    status: &dyn Fn(String),
) -> Result<Option<PathBuf>> {
    let Some((package, command)) = detected.manager.package() else {
        return Ok(None);
    };
    let spec = format!("{package}@{}", detected.version);
    let cache = cache_directory(runner)?.join(spec.replace('/', "+"));
    let bin = cache.join("node_modules/.bin");
    if !bin.join(command).exists() {
        status(format!(
            "Installing {spec} from the npm registry into {} (for {})",
            cache.display(),
            detected.lockfile
        ));
        fs::create_dir_all(cache.parent().unwrap_or(&cache))
            .with_context(|| format!("{}: cannot be created", cache.display()))?;
        // Into a directory of its own first, moved into place when complete, so that an
        // interrupted install or a concurrent build never sees half a manager.
        let partial = tempfile::Builder::new()
            .prefix(".partial-")
            .tempdir_in(cache.parent().unwrap_or(scratch))
            .with_context(|| format!("{}: cannot be written", cache.display()))?;
        let output = runner
            .command("npm", &runner.inside(partial.path())?)
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-package-lock",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(runner.inside(partial.path())?)
            .arg(&spec)
            .output()
            .with_context(|| format!("cannot run npm to install {spec}"))?;
        if !output.status.success() {
            let lines: Vec<String> = String::from_utf8_lossy(&output.stderr)
                .lines()
                .map(str::to_string)
                .collect();
            bail!(
                "npm could not install {spec}, the manager of {} ({}):\n{}",
                detected.lockfile,
                output.status,
                Manager::Npm.reasons(&lines).join("\n")
            );
        }
        let partial = partial.keep();
        if fs::rename(&partial, &cache).is_err() {
            // Another build put the same version in place first.
            let _ = fs::remove_dir_all(&partial);
        }
    }
    Ok(Some(runner.inside(&bin)?))
}

/// Where installed managers are kept: `$XDG_CACHE_HOME` or `~/.cache` on the host, the
/// root's `/var/cache` in a build root.
fn cache_directory(runner: &Runner) -> Result<PathBuf> {
    let system = runner.system_root();
    if !system.is_host() {
        return Ok(system.host_path(Path::new("/var/cache/debstage/node-managers")));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set: no cache for node package managers")?;
    Ok(base.join("debstage/node-managers"))
}

/// The environment the manager's install runs with: pnpm copies files out of its store
/// instead of hard-linking them (the build changes modes in the tree, which would change
/// the store), and berry's installs are frozen.
pub(crate) fn environment(manager: Manager) -> &'static [(&'static str, &'static str)] {
    match manager {
        Manager::Npm | Manager::YarnClassic => &[],
        Manager::Pnpm => &[("npm_config_package_import_method", "copy")],
        Manager::YarnBerry => &[
            ("YARN_ENABLE_IMMUTABLE_INSTALLS", "true"),
            ("YARN_ENABLE_TELEMETRY", "0"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn the_lockfile_decides_and_package_manager_gives_the_version() -> Result<()> {
        let temp = tempfile::tempdir()?;
        let directory = temp.path();
        assert_eq!(detect(directory)?, None);
        fs::write(directory.join("package.json"), "{}")?;
        fs::write(directory.join("yarn.lock"), "# yarn lockfile v1\n")?;
        assert_eq!(
            detect(directory)?,
            Some(Detected {
                manager: Manager::YarnClassic,
                lockfile: "yarn.lock",
                version: "1".into()
            })
        );
        fs::write(
            directory.join("package.json"),
            r#"{"packageManager": "yarn@4.5.0+sha224.abc"}"#,
        )?;
        fs::write(directory.join("yarn.lock"), "__metadata:\n  version: 8\n")?;
        let error = detect(directory).expect_err("Plug'n'Play");
        assert!(error.to_string().contains("nodeLinker"), "{error}");
        fs::write(
            directory.join(".yarnrc.yml"),
            "nodeLinker: \"node-modules\"\n",
        )?;
        let detected = detect(directory)?.expect("berry");
        assert_eq!(detected.manager, Manager::YarnBerry);
        assert_eq!(detected.version, "4.5.0");
        fs::write(directory.join("pnpm-lock.yaml"), "lockfileVersion: '6.0'\n")?;
        let error = detect(directory).expect_err("yarn named, pnpm's lock");
        assert!(error.to_string().contains("pnpm-lock.yaml"), "{error}");
        fs::write(directory.join("package.json"), "{}")?;
        assert_eq!(detect(directory)?.expect("pnpm").version, "8");
        fs::write(directory.join("package-lock.json"), "{}")?;
        assert_eq!(detect(directory)?.expect("npm").manager, Manager::Npm);
        fs::write(
            directory.join("package.json"),
            r#"{"packageManager": "pnpm"}"#,
        )?;
        let error = detect(directory).expect_err("no version");
        assert!(
            format!("{error:#}").contains("<name>@<version>"),
            "{error:#}"
        );
        Ok(())
    }

    #[test]
    fn reasons_are_the_managers_own_lines() {
        let npm = lines(
            "npm error code EUSAGE\nnpm error\nnpm error `npm ci` can only install packages \
             when in sync.\nnpm error\nnpm error Missing: is-odd@3.0.1 from lock file\n\
             npm error\nnpm error Clean install a project\nnpm error\nnpm error Usage:\n\
             npm error npm ci\nnpm error A complete log of this run can be found in: /x",
        );
        assert_eq!(
            Manager::Npm.reasons(&npm),
            [
                "npm error code EUSAGE",
                "npm error `npm ci` can only install packages when in sync.",
                "npm error Missing: is-odd@3.0.1 from lock file"
            ]
        );
        // npm 9 (bookworm's) gives the log's path on a line of its own.
        let npm9 = lines(
            "npm ERR! code 1\nnpm ERR! A complete log of this run can be found in:\n\
             npm ERR!     /var/cache/debstage/npm/_logs/1-debug-0.log",
        );
        assert_eq!(Manager::Npm.reasons(&npm9), ["npm ERR! code 1"]);
        let pnpm = lines(
            "Progress: resolved 2\n ERR_PNPM_OUTDATED_LOCKFILE  Cannot install\n\n    \
             Failure reason:\n    specifiers differ",
        );
        assert_eq!(
            Manager::Pnpm.reasons(&pnpm),
            [
                "ERR_PNPM_OUTDATED_LOCKFILE  Cannot install",
                "Failure reason:",
                "specifiers differ"
            ]
        );
        let gyp = lines(
            "npm error code 1\nnpm error command sh -c node-gyp rebuild\n\
             npm error gyp info using node-gyp@12.4.0\nnpm error gyp ERR! build error\n\
             npm error gyp ERR! stack Error: not found: make\n\
             npm error gyp ERR! stack     at getNotFoundError (which.js:16:17)\n\
             npm error gyp ERR! System Linux 6.1.0\nnpm error gyp ERR! not ok",
        );
        assert_eq!(
            Manager::Npm.reasons(&gyp),
            [
                "npm error code 1",
                "npm error command sh -c node-gyp rebuild",
                "npm error gyp ERR! build error",
                "npm error gyp ERR! stack Error: not found: make"
            ]
        );
        let yarn = lines(
            "[2/5] Resolving packages...\nerror Your lockfile needs to be updated\ninfo Visit",
        );
        assert_eq!(
            Manager::YarnClassic.reasons(&yarn),
            ["error Your lockfile needs to be updated"]
        );
    }
}
