//! `debstage init`: reads the project in an application directory ([`project`]) and writes
//! a commented `debstage.toml` for it and an example activation hook under `.debstage/`,
//! from `debian-skel/` (compiled into the binary).

mod project;

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use handlebars::Handlebars;
use serde::Serialize;

use crate::build::manifest::check_upstream_version;
use crate::build::request::InitRequest;
use crate::debian::names;
use crate::report::Reporter;

use project::{Environment, Project, Version};

const MANIFEST: &str = include_str!("../../../debian-skel/debstage.toml");
const HOOK: &str = include_str!("../../../debian-skel/.debstage/activate");
const ENVIRONMENTS: &[(&str, &str)] = &[
    (
        "dir",
        include_str!("../../../debian-skel/environment/dir.toml"),
    ),
    (
        "python",
        include_str!("../../../debian-skel/environment/python.toml"),
    ),
    (
        "node",
        include_str!("../../../debian-skel/environment/node.toml"),
    ),
    (
        "command",
        include_str!("../../../debian-skel/environment/command.toml"),
    ),
];

/// Where the activation hook goes, relative to the application directory: a dot-directory,
/// which setuptools, hatchling, flit, poetry and npm all leave out of what they package.
const HOOK_PATH: &str = ".debstage/activate";

/// What the skeleton is rendered with.
#[derive(Debug, Serialize)]
struct Skeleton {
    /// Lines of the header that say what was read.
    found: Vec<String>,
    name: String,
    version: Option<String>,
    version_note: Vec<String>,
    description: String,
    homepage: Option<String>,
    license: String,
    service_command: String,
    // The environment section's values (only the kind's own are set).
    requirements: Option<String>,
    project: Option<String>,
    source: Option<String>,
    lock: Option<String>,
    backend: String,
    lockfile: Option<String>,
    manager: String,
    command: String,
    command_note: String,
}

/// Writes the manifest and the hook into the application directory.
pub(crate) fn run(options: &InitRequest, reporter: &Reporter) -> Result<()> {
    let directory = &options.directory;
    if !directory.is_dir() {
        bail!("{}: no such directory", directory.display());
    }
    let manifest = directory.join("debstage.toml");
    if manifest.exists() && !options.force {
        bail!(
            "{}: already exists (use --force to replace it)",
            manifest.display()
        );
    }
    let project = project::detect(directory)?;
    let (text, name, kind) = render(directory, &project, options.name.as_deref())?;
    write_file(&manifest, &text, 0o644)?;
    let hook = directory.join(HOOK_PATH);
    if hook.exists() {
        reporter.status(format!("kept {}", hook.display()));
    } else {
        let parent = directory.join(".debstage");
        fs_err::create_dir_all(&parent)?;
        write_file(&hook, HOOK, 0o755)?;
    }
    let read_from = if project.read_from.is_empty() {
        String::new()
    } else {
        format!(" from {}", project.read_from.join(", "))
    };
    reporter.status(format!(
        "wrote {} for {name} (kind {kind}{read_from}); next: debstage build --manifest {}",
        manifest.display(),
        manifest.display()
    ));
    Ok(())
}

/// The manifest's text, the application name and the environment kind.
fn render(
    directory: &Path,
    project: &Project,
    name_option: Option<&str>,
) -> Result<(String, String, &'static str)> {
    let directory_name = || {
        directory
            .canonicalize()
            .ok()
            .and_then(|path| {
                path.file_name()
                    .map(|name| project::normalise_name(&name.to_string_lossy()))
            })
            .unwrap_or_default()
    };
    let mut found = Vec::new();
    let name = match (name_option, &project.name) {
        (Some(name), _) => name.to_string(),
        (None, Some(declared)) => {
            let normalised = project::normalise_name(declared);
            if names::check_package_name(&normalised).is_ok() {
                normalised
            } else {
                found.push(format!(
                    "The project's name {declared:?} is not a Debian package name; the \
                     directory's name is used."
                ));
                directory_name()
            }
        }
        (None, None) => directory_name(),
    };
    names::check_package_name(&name).map_err(|message| {
        anyhow::anyhow!("application name {name:?} {message}; choose one with --name")
    })?;
    if !project.read_from.is_empty() {
        found.insert(
            0,
            format!(
                "Written by `debstage init` from {}.",
                project.read_from.join(", ")
            ),
        );
    }
    let (version, version_note) = match &project.version {
        Version::Static(declared) => {
            let version = project::debian_version(declared);
            match check_upstream_version(&version) {
                Ok(()) => (Some(version), Vec::new()),
                Err(message) => (
                    None,
                    vec![
                        format!("The project's version {declared:?} is not a Debian version:"),
                        format!("{message}."),
                    ],
                ),
            }
        }
        Version::Dynamic(why) => (
            None,
            vec![
                "The project's version is dynamic, so init cannot read it:".to_string(),
                format!("{why}."),
            ],
        ),
        Version::Unknown if project.read_from.is_empty() => (Some("0.1.0".into()), Vec::new()),
        Version::Unknown => (None, vec!["The project does not state its version.".into()]),
    };
    let description = description(project.description.as_deref(), &name);
    let mut context = Skeleton {
        found,
        name: name.clone(),
        version,
        version_note,
        description,
        homepage: project.homepage.clone(),
        license: project
            .license
            .clone()
            .unwrap_or_else(|| "proprietary".into()),
        service_command: project
            .service_command
            .clone()
            .unwrap_or_else(|| format!("bin/{name} --port 8080")),
        requirements: None,
        project: None,
        source: None,
        lock: None,
        backend: String::new(),
        lockfile: None,
        manager: String::new(),
        command: String::new(),
        command_note: String::new(),
    };
    let kind = match &project.environment {
        Environment::Dir => "dir",
        Environment::Python(python) => {
            // A lock pins every dependency; a requirements file beside it is not read.
            context.lock = python.lock.clone().filter(|_| python.project);
            context.requirements = python
                .requirements
                .clone()
                .filter(|_| context.lock.is_none());
            context.backend = python.backend.clone();
            if python.project {
                context.project = Some(".".into());
            } else {
                context.source = Some(".".into());
            }
            "python"
        }
        Environment::Node(node) => {
            context.lockfile = node.lockfile.clone();
            context.manager = node.manager.clone();
            context.command = node.command.clone();
            "node"
        }
        Environment::Command(command) => {
            context.command = command.command.clone();
            context.command_note = command.note.clone();
            "command"
        }
    };
    let text = registry(kind)?
        .render("manifest", &context)
        .context("rendering debian-skel/debstage.toml")?;
    Ok((text, name, kind))
}

/// The manifest's description: the project's as the synopsis when it fits one line of 80
/// characters, otherwise as the long description below a generic synopsis.
fn description(declared: Option<&str>, name: &str) -> String {
    let generic = format!("{name} application");
    let Some(declared) = declared else {
        return format!("{generic}\nDescribe here what {name} does, in a few sentences.");
    };
    let flat = declared
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('"', "'")
        .replace('\\', "/");
    if flat.chars().count() <= 80 {
        flat
    } else {
        format!("{generic}\n{flat}")
    }
}

/// The skeleton's templates, strict (a missing value is an error, never an empty
/// string), with the environment section of `kind` as the partial `environment` and the
/// helper `toml` that writes a TOML string.
fn registry(kind: &str) -> Result<Handlebars<'static>> {
    let mut registry = Handlebars::new();
    registry.register_escape_fn(handlebars::no_escape);
    registry.set_strict_mode(true);
    registry.register_helper(
        "toml",
        Box::new(
            |helper: &handlebars::Helper<'_>,
             _: &Handlebars<'_>,
             _: &handlebars::Context,
             _: &mut handlebars::RenderContext<'_, '_>,
             out: &mut dyn handlebars::Output|
             -> handlebars::HelperResult {
                let value = helper
                    .param(0)
                    .and_then(|param| param.value().as_str())
                    .ok_or_else(|| {
                        handlebars::RenderErrorReason::ParamNotFoundForIndex("toml", 0)
                    })?;
                out.write(&toml::Value::String(value.to_string()).to_string())?;
                Ok(())
            },
        ),
    );
    registry
        .register_template_string("manifest", MANIFEST)
        .context("debian-skel/debstage.toml does not parse")?;
    let environment = ENVIRONMENTS
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, text)| *text)
        .context("no environment skeleton")?;
    registry
        .register_partial("environment", environment)
        .with_context(|| format!("debian-skel/environment/{kind}.toml does not parse"))?;
    Ok(registry)
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("{}: cannot be written", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("{}: cannot be written", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind's skeleton renders into a manifest that parses as TOML.
    #[test]
    fn every_kind_renders_valid_toml() {
        let temp = tempfile::tempdir().expect("temp dir");
        for (kind, _) in ENVIRONMENTS {
            let mut project = Project {
                name: Some("shape".into()),
                version: Version::Static("1.0".into()),
                description: Some("A \"quoted\" description".into()),
                ..Project::default()
            };
            project.environment = match *kind {
                "python" => Environment::Python(project::Python {
                    project: true,
                    requirements: Some("requirements.txt".into()),
                    lock: None,
                    backend: "hatchling.build".into(),
                }),
                "node" => Environment::Node(project::Node {
                    lockfile: None,
                    manager: "npm".into(),
                    command: "npm ci --omit=dev".into(),
                }),
                "command" => Environment::Command(project::Command {
                    command: "make install DESTDIR=\"$DESTDIR\"".into(),
                    note: "make".into(),
                }),
                _ => Environment::Dir,
            };
            let (text, name, rendered_kind) = render(temp.path(), &project, None).expect(kind);
            assert_eq!(name, "shape");
            assert_eq!(rendered_kind, *kind);
            let table: toml::Table = text.parse().unwrap_or_else(|error| {
                panic!("{kind}: {error}\n{text}");
            });
            assert_eq!(table["environment"]["kind"].as_str(), Some(*kind), "{text}");
            assert!(!text.contains("{{"), "{text}");
        }
    }
}
