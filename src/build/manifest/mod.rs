//! `debstage.toml`: loading it into a [`LoadedManifest`]. The keys and their defaults are
//! in [`schema`], the checks whose errors name the file, the key, what was found and
//! what is allowed in [`checks`].

use std::path::{Path, PathBuf};

use crate::debian::names;
use crate::naming::distribution::{self, Distribution};
use crate::naming::{AppNames, ReleaseNames};

mod checks;
mod error;
mod schema;

use checks::*;
pub(crate) use checks::{check_revision, check_upstream_version, parse_mode};
use error::Fail;
pub(crate) use error::ManifestError;
pub(crate) use schema::*;

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
