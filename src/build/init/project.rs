//! What `debstage init` reads from the project it is run in: the kind of environment the
//! project needs and the metadata it declares (name, version, description, homepage,
//! license) where the files hold them statically.
//!
//! The first match wins, in this order: a Python project (`pyproject.toml` with PEP 621
//! `[project]` or Poetry's `[tool.poetry]`, `setup.cfg`, `setup.py`, or only
//! `requirements.txt`), a Node.js application (`package.json`), a Rust crate
//! (`Cargo.toml`), a Go module (`go.mod`); nothing recognised is a `dir`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::build::env::node_manager;

/// The metadata and environment `init` found.
#[derive(Debug, Default)]
pub(crate) struct Project {
    /// The environment kind and its options.
    pub(crate) environment: Environment,
    /// The name as the project spells it (normalised later).
    pub(crate) name: Option<String>,
    /// The version, when the project states it.
    pub(crate) version: Version,
    /// A one-paragraph description.
    pub(crate) description: Option<String>,
    /// An http(s) home page.
    pub(crate) homepage: Option<String>,
    /// A one-line license (SPDX expression or name).
    pub(crate) license: Option<String>,
    /// Which files the metadata was read from, for the manifest's header.
    pub(crate) read_from: Vec<String>,
    /// A program the release is likely run with (`bin/<console script>`).
    pub(crate) service_command: Option<String>,
}

/// The version a project declares.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) enum Version {
    /// Stated in the file.
    Static(String),
    /// Computed when the project is built (setuptools-scm, `attr:`, a workspace's
    /// version): the text says where.
    Dynamic(String),
    /// Not stated.
    #[default]
    Unknown,
}

/// The environment kind `init` writes, with what its section needs.
#[derive(Debug, Default)]
pub(crate) enum Environment {
    /// Ship the directory as it is.
    #[default]
    Dir,
    /// A Python virtualenv.
    Python(Python),
    /// A Node.js application.
    Node(Node),
    /// A build command into `$DESTDIR`.
    Command(Command),
}

/// What a Python project installs.
#[derive(Debug, Default)]
pub(crate) struct Python {
    /// `project = "."`: the directory holds an installable project.
    pub(crate) project: bool,
    /// The requirements file, when there is one.
    pub(crate) requirements: Option<String>,
    /// A lock file (`uv.lock`, `poetry.lock`).
    pub(crate) lock: Option<String>,
    /// The build backend, for the manifest's comment.
    pub(crate) backend: String,
}

/// What a Node.js application is installed with.
#[derive(Debug)]
pub(crate) struct Node {
    /// The lockfile found, if any.
    pub(crate) lockfile: Option<String>,
    /// npm, pnpm or yarn, with the version installed for the build.
    pub(crate) manager: String,
    /// The frozen install command the build runs by default; empty without a lockfile.
    pub(crate) command: String,
}

/// A build command.
#[derive(Debug)]
pub(crate) struct Command {
    /// The command line.
    pub(crate) command: String,
    /// One line on what it does.
    pub(crate) note: String,
}

/// Reads the project in `directory`.
pub(crate) fn detect(directory: &Path) -> Result<Project> {
    if let Some(project) = python(directory)? {
        return Ok(project);
    }
    if directory.join("package.json").is_file() {
        return node(directory);
    }
    if directory.join("Cargo.toml").is_file() {
        return cargo(directory);
    }
    if directory.join("go.mod").is_file() {
        return go(directory);
    }
    Ok(Project::default())
}

fn read(path: &Path) -> Result<String> {
    Ok(fs_err::read_to_string(path)?)
}

fn read_toml(path: &Path) -> Result<toml::Table> {
    let text = read(path)?;
    text.parse::<toml::Table>()
        .with_context(|| format!("{}: is not valid TOML", path.display()))
}

fn string(table: &toml::Table, key: &str) -> Option<String> {
    table
        .get(key)
        .and_then(toml::Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

fn table<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Table> {
    table.get(key).and_then(toml::Value::as_table)
}

/// A URL that may become the homepage.
fn http_url(url: Option<String>) -> Option<String> {
    url.filter(|url| url.starts_with("https://") || url.starts_with("http://"))
        .filter(|url| !url.contains(char::is_whitespace))
}

/// A license that fits the one-line field (not a whole license text).
fn one_line(license: Option<String>) -> Option<String> {
    license.filter(|text| !text.contains('\n') && text.len() <= 80)
}

fn python(directory: &Path) -> Result<Option<Project>> {
    let pyproject_path = directory.join("pyproject.toml");
    let setup_cfg = directory.join("setup.cfg");
    let setup_py = directory.join("setup.py");
    let requirements = ["requirements.txt", "requirements.lock"]
        .into_iter()
        .find(|name| directory.join(name).is_file())
        .map(str::to_string);
    let lock = ["uv.lock", "poetry.lock"]
        .into_iter()
        .find(|name| directory.join(name).is_file())
        .map(str::to_string);
    let pyproject = if pyproject_path.is_file() {
        Some(read_toml(&pyproject_path)?)
    } else {
        None
    };
    let installable = pyproject.is_some() || setup_py.is_file() || setup_cfg.is_file();
    if !installable && requirements.is_none() {
        return Ok(None);
    }
    let mut project = Project::default();
    let backend = pyproject
        .as_ref()
        .and_then(|pyproject| table(pyproject, "build-system"))
        .and_then(|build| string(build, "build-backend"))
        .unwrap_or_else(|| "setuptools".to_string());
    let tool_poetry = pyproject
        .as_ref()
        .and_then(|pyproject| table(pyproject, "tool"))
        .and_then(|tool| table(tool, "poetry"));
    if let Some(table) = pyproject
        .as_ref()
        .and_then(|pyproject| table(pyproject, "project"))
    {
        pep621(table, &mut project);
        project.read_from.push("pyproject.toml [project]".into());
        // Poetry 2 projects keep some fields in [tool.poetry] beside [project].
        if let Some(poetry) = tool_poetry {
            if project.version == Version::Unknown {
                poetry_fields(poetry, &mut project);
            }
        }
    } else if let Some(poetry) = tool_poetry {
        poetry_fields(poetry, &mut project);
        project
            .read_from
            .push("pyproject.toml [tool.poetry]".into());
    } else if setup_cfg.is_file() && setup_cfg_fields(&read(&setup_cfg)?, &mut project) {
        project.read_from.push("setup.cfg [metadata]".into());
    } else if setup_py.is_file() {
        setup_py_fields(&read(&setup_py)?, &mut project);
        project.read_from.push("setup.py".into());
    }
    if !installable {
        project
            .read_from
            .push("requirements.txt (the files beside it are the application)".into());
    }
    project.environment = Environment::Python(Python {
        project: installable,
        requirements,
        lock,
        backend,
    });
    Ok(Some(project))
}

/// PEP 621 `[project]`.
fn pep621(table: &toml::Table, project: &mut Project) {
    project.name = string(table, "name");
    let dynamic: Vec<&str> = table
        .get("dynamic")
        .and_then(toml::Value::as_array)
        .map(|list| list.iter().filter_map(toml::Value::as_str).collect())
        .unwrap_or_default();
    project.version = match string(table, "version") {
        Some(version) => Version::Static(version),
        None if dynamic.contains(&"version") => {
            Version::Dynamic("pyproject.toml lists it in [project] dynamic".into())
        }
        None => Version::Unknown,
    };
    project.description = string(table, "description");
    // PEP 639 gives a string; PEP 621 a table with text or file.
    project.license = one_line(match table.get("license") {
        Some(toml::Value::String(text)) => Some(text.trim().to_string()),
        Some(toml::Value::Table(license)) => string(license, "text"),
        _ => None,
    });
    if let Some(urls) = table.get("urls").and_then(toml::Value::as_table) {
        // Keys are free text; PyPI shows these as the home page.
        let preferred = [
            "homepage",
            "home",
            "home-page",
            "documentation",
            "repository",
            "source",
        ];
        let mut found: Vec<(usize, String)> = urls
            .iter()
            .filter_map(|(key, value)| {
                let normalised = key.to_lowercase().replace([' ', '_'], "-");
                let rank = preferred.iter().position(|name| *name == normalised)?;
                Some((rank, value.as_str()?.to_string()))
            })
            .collect();
        found.sort();
        project.homepage = found.into_iter().find_map(|(_, url)| http_url(Some(url)));
    }
    if let Some(scripts) = table.get("scripts").and_then(toml::Value::as_table) {
        project.service_command = scripts.keys().next().map(|name| format!("bin/{name}"));
    }
}

/// Poetry's `[tool.poetry]`.
fn poetry_fields(table: &toml::Table, project: &mut Project) {
    if project.name.is_none() {
        project.name = string(table, "name");
    }
    if let Some(version) = string(table, "version") {
        project.version = Version::Static(version);
    }
    if project.description.is_none() {
        project.description = string(table, "description");
    }
    if project.homepage.is_none() {
        project.homepage = http_url(string(table, "homepage").or(string(table, "repository")));
    }
    if project.license.is_none() {
        project.license = one_line(string(table, "license"));
    }
    if project.service_command.is_none() {
        if let Some(scripts) = table.get("scripts").and_then(toml::Value::as_table) {
            project.service_command = scripts.keys().next().map(|name| format!("bin/{name}"));
        }
    }
}

/// `setup.cfg`'s `[metadata]` (setuptools' declarative configuration); false when it has
/// none.
fn setup_cfg_fields(text: &str, project: &mut Project) -> bool {
    let mut section = String::new();
    let mut found = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            section = name.trim().to_string();
            continue;
        }
        // Continuation lines (indented) and comments carry no single value.
        if section != "metadata" || line.starts_with([' ', '\t']) || trimmed.starts_with(['#', ';'])
        {
            continue;
        }
        let Some((key, value)) = trimmed.split_once(['=', ':']) else {
            continue;
        };
        let key = key.trim().replace('-', "_");
        let value = value.trim().to_string();
        found = true;
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "name" => project.name = Some(value),
            "version" => {
                project.version = if value.starts_with("attr:") || value.starts_with("file:") {
                    Version::Dynamic(format!("setup.cfg reads it with {value:?}"))
                } else {
                    Version::Static(value)
                }
            }
            "description" | "summary" => project.description = Some(value),
            "url" | "home_page" => project.homepage = http_url(Some(value)),
            "license" => project.license = one_line(Some(value)),
            _ => {}
        }
    }
    found
}

/// The keyword arguments of `setup(...)` in `setup.py` that are plain string literals.
/// Anything computed (a function call, a variable) is not read: a computed version is
/// reported as dynamic.
fn setup_py_fields(text: &str, project: &mut Project) {
    let literal = |key: &str| -> Option<Option<String>> {
        let mut rest = text;
        while let Some(position) = rest.find(key) {
            let before = rest[..position].chars().last();
            let after = &rest[position + key.len()..];
            rest = after;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let after = after.trim_start();
            let Some(value) = after.strip_prefix('=') else {
                continue;
            };
            if value.starts_with('=') {
                continue;
            }
            let value = value.trim_start();
            let quote = match value.chars().next() {
                Some(quote @ ('"' | '\'')) => quote,
                _ => return Some(None),
            };
            let body = &value[1..];
            let end = body.find(quote)?;
            let text = &body[..end];
            // A literal followed by anything but a separator is an expression.
            let follows = body[end + 1..].trim_start().chars().next();
            if text.contains('\\') || !matches!(follows, Some(',' | ')') | None) {
                return Some(None);
            }
            return Some(Some(text.to_string()));
        }
        None
    };
    project.name = literal("name").flatten();
    project.version = match literal("version") {
        Some(Some(version)) => Version::Static(version),
        Some(None) => Version::Dynamic("setup.py computes it".into()),
        None => Version::Unknown,
    };
    project.description = literal("description").flatten();
    project.homepage = http_url(literal("url").flatten());
    project.license = one_line(literal("license").flatten());
}

fn node(directory: &Path) -> Result<Project> {
    let path = directory.join("package.json");
    let value: serde_json::Value = serde_json::from_str(&read(&path)?)
        .with_context(|| format!("{}: is not valid JSON", path.display()))?;
    let text = |key: &str| {
        value[key]
            .as_str()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    // The build chooses the manager and its frozen install the same way.
    let node = match node_manager::detect(directory)? {
        Some(detected) => Node {
            lockfile: Some(detected.lockfile.to_string()),
            manager: detected.label(),
            command: detected.manager.command().to_string(),
        },
        None => Node {
            lockfile: None,
            manager: String::new(),
            command: String::new(),
        },
    };
    let name = text("name").map(|name| {
        // A scoped name (@acme/web) becomes acme-web.
        name.trim_start_matches('@').replace('/', "-")
    });
    let version = match text("version") {
        Some(version) => Version::Static(version),
        None => Version::Unknown,
    };
    let license = match &value["license"] {
        serde_json::Value::String(license) => Some(license.clone()),
        serde_json::Value::Object(license) => license
            .get("type")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    let service_command = text("main").map(|main| format!("/usr/bin/node {main}"));
    Ok(Project {
        environment: Environment::Node(node),
        name,
        version,
        description: text("description"),
        homepage: http_url(text("homepage")),
        license: one_line(license),
        read_from: vec!["package.json".into()],
        service_command,
    })
}

fn cargo(directory: &Path) -> Result<Project> {
    let manifest = read_toml(&directory.join("Cargo.toml"))?;
    let mut project = Project {
        environment: Environment::Command(Command {
            command: "cargo install --locked --root \"$DESTDIR\" --path .".into(),
            note: "cargo builds the crate's binaries, pinned by Cargo.lock, into $DESTDIR/bin"
                .into(),
        }),
        read_from: vec!["Cargo.toml [package]".into()],
        ..Project::default()
    };
    let Some(package) = table(&manifest, "package") else {
        project.read_from = vec!["Cargo.toml (a workspace: name the member with --path)".into()];
        return Ok(project);
    };
    project.name = string(package, "name");
    project.version = match package.get("version") {
        Some(toml::Value::String(version)) => Version::Static(version.clone()),
        Some(_) => Version::Dynamic("Cargo.toml takes it from the workspace".into()),
        // Cargo's default when the key is absent.
        None => Version::Static("0.0.0".into()),
    };
    project.description = string(package, "description");
    project.homepage = http_url(string(package, "homepage").or(string(package, "repository")));
    project.license = one_line(string(package, "license"));
    if let Some(name) = &project.name {
        project.service_command = Some(format!("bin/{name}"));
    }
    Ok(project)
}

fn go(directory: &Path) -> Result<Project> {
    let text = read(&directory.join("go.mod"))?;
    let module = text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("module")?;
        let module = rest.split("//").next()?.trim().trim_matches('"');
        (!module.is_empty()).then(|| module.to_string())
    });
    // The program's name is the module path's last element, without a major version
    // suffix (example.com/tool/v2 builds `tool`).
    let name = module.as_deref().and_then(|module| {
        let mut parts = module.rsplit('/');
        let last = parts.next()?;
        let is_major = last.len() > 1
            && last.starts_with('v')
            && last[1..].chars().all(|c| c.is_ascii_digit());
        Some(if is_major { parts.next()? } else { last }.to_string())
    });
    let binary = name
        .as_deref()
        .map(normalise_name)
        .filter(|name| crate::debian::names::check_package_name(name).is_ok())
        .unwrap_or_else(|| "app".to_string());
    Ok(Project {
        environment: Environment::Command(Command {
            command: format!("go build -trimpath -o \"$DESTDIR/bin/{binary}\" ."),
            note: "go builds this directory's main package into $DESTDIR/bin; -trimpath keeps \
                   build paths out"
                .into(),
        }),
        name,
        read_from: vec!["go.mod".into()],
        service_command: Some(format!("bin/{binary}")),
        ..Project::default()
    })
}

/// A project's name as a Debian package name: lowercase, `_` and spaces as `-`.
pub(crate) fn normalise_name(name: &str) -> String {
    name.trim()
        .to_lowercase()
        .replace(['_', ' '], "-")
        .trim_matches('-')
        .to_string()
}

/// A project's version in Debian's ordering: pre-releases (PEP 440 `1.0rc1`, `1.0.dev3`,
/// SemVer `1.0.0-beta.1`) get a `~` so that they sort before the release.
pub(crate) fn debian_version(version: &str) -> String {
    let version = version.trim().trim_start_matches('v');
    let bytes = version.as_bytes();
    for (index, _) in version.char_indices() {
        if index == 0 {
            continue;
        }
        let rest = &version[index..];
        let previous = bytes[index - 1];
        let marker = ["alpha", "beta", "rc", "dev", "pre", "a", "b", "c"]
            .into_iter()
            .find(|marker| {
                rest.strip_prefix(marker).is_some_and(|after| {
                    after.is_empty() || after.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                })
            });
        let Some(_) = marker else { continue };
        if previous.is_ascii_digit() {
            return format!("{}~{}", &version[..index], rest);
        }
        if matches!(previous, b'.' | b'-' | b'_') && index >= 2 && bytes[index - 2].is_ascii_digit()
        {
            return format!("{}~{}", &version[..index - 1], rest);
        }
    }
    version.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_releases_sort_before_their_release() {
        assert_eq!(debian_version("1.0.0"), "1.0.0");
        assert_eq!(debian_version("1.0rc1"), "1.0~rc1");
        assert_eq!(debian_version("2.1.0.dev3"), "2.1.0~dev3");
        assert_eq!(debian_version("1.0.0-beta.1"), "1.0.0~beta.1");
        assert_eq!(debian_version("0.4b2"), "0.4~b2");
        assert_eq!(debian_version("1.0.post1"), "1.0.post1");
        assert_eq!(debian_version("v1.2.3"), "1.2.3");
    }

    #[test]
    fn setup_py_literals_are_read_and_computed_values_are_not() {
        let mut project = Project::default();
        setup_py_fields(
            "from setuptools import setup\nsetup(\n    name='shape-app',\n    \
             version=read_version(),\n    description=\"A shape\",\n    url='https://x.example/a',\n)\n",
            &mut project,
        );
        assert_eq!(project.name.as_deref(), Some("shape-app"));
        assert!(matches!(project.version, Version::Dynamic(_)));
        assert_eq!(project.description.as_deref(), Some("A shape"));
        assert_eq!(project.homepage.as_deref(), Some("https://x.example/a"));
        let mut project = Project::default();
        setup_py_fields("setup(name=\"a\" + SUFFIX, version = '1.2')", &mut project);
        assert_eq!(project.name, None);
        assert_eq!(project.version, Version::Static("1.2".into()));
    }

    #[test]
    fn setup_cfg_metadata_with_attr_version_is_dynamic() {
        let mut project = Project::default();
        let found = setup_cfg_fields(
            "[metadata]\nname = flatapp\nversion = attr: flatapp.__version__\nlicense = MIT\n\
             classifiers =\n    Programming Language :: Python\n[options]\npackages = find:\n",
            &mut project,
        );
        assert!(found);
        assert_eq!(project.name.as_deref(), Some("flatapp"));
        assert!(matches!(project.version, Version::Dynamic(_)));
        assert_eq!(project.license.as_deref(), Some("MIT"));
    }
}
