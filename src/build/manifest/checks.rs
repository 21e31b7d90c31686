//! The checks of a decoded manifest, one per section: each error names the file and the
//! key, what was found and what is allowed.

use std::path::{Path, PathBuf};

use crate::debian::names;
use crate::debian::version::Version;
use crate::naming::distribution::{self, Distribution};
use crate::naming::rules;
use crate::naming::AppNames;

use super::error::{Fail, ManifestError};
use super::schema::*;

/// `[build]`: known distributions, each once; Debian package names.
pub(super) fn check_build(build: &BuildSection, fail: &Fail<'_>) -> Result<(), ManifestError> {
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

/// Resolves `path` (relative to the application directory, links followed) and checks
/// that it stays inside that directory: a manifest reads only its application's files.
pub(super) fn inside_application(directory: &Path, path: &Path) -> Result<PathBuf, String> {
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

/// The free-text and enumerated fields of `[package]`.
pub(super) fn check_package_fields(
    package: &PackageSection,
    fail: &Fail<'_>,
) -> Result<(), ManifestError> {
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
pub(super) fn check_files(
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
pub(super) fn check_depends(
    depends: &DependsSection,
    fail: &Fail<'_>,
) -> Result<(), ManifestError> {
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
pub(super) fn check_stages(
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
pub(super) fn parse_service(
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

pub(super) fn check_maintainer(maintainer: &str) -> Result<(), String> {
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

/// The longest word a command line may hold, in bytes: far above any real argument, far
/// below systemd's limit of 1 MiB for a whole unit line (`LONG_LINE_MAX`).
pub(super) const COMMAND_WORD_MAX: usize = 64 * 1024;

/// The longest command line, in bytes, so that `ExecStart=` with the release directory
/// stays under systemd's 1 MiB line limit.
pub(super) const COMMAND_LINE_MAX: usize = 512 * 1024;

/// How a long value is quoted in a message: its first 60 characters.
pub(super) fn shown(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{:?}...", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// Splits a command line on spaces and checks each word; the program is relative to the
/// release directory, or absolute when `allow_absolute`. Tabs, newlines and other control
/// characters are refused, not taken as separators: the unit and the scripts would split
/// them differently from what the manifest shows.
pub(super) fn parse_command_line(text: &str, allow_absolute: bool) -> Result<CommandLine, String> {
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
