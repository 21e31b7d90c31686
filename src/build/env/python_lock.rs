//! `[environment] lock`: a `uv.lock` or `poetry.lock` read into hash-pinned requirements
//! (`name==version --hash=sha256:...`), which pip installs with hashes required and without
//! resolving again, so the environment holds exactly the versions the lock names.
//!
//! Only what the application needs at run time is taken: the lock's packages reachable
//! from the project's own dependencies (not its dev groups), each edge keeping its
//! environment marker. A lock that no longer matches `pyproject.toml` is refused with the
//! command that refreshes it:
//! - poetry: the lock's `content-hash` against the hash poetry computes over the
//!   dependency tables of `pyproject.toml` (JSON with sorted keys, SHA-256);
//! - uv: the project's `requires-dist` recorded in the lock against `[project]
//!   dependencies`, as `uv lock --check` compares them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::Digest;

use crate::build::manifest::LoadedManifest;

/// The key errors name.
const KEY: &str = "[environment] lock";

/// The requirements text for the lock at `lock` of the project whose `pyproject.toml` is
/// at `pyproject`.
pub(crate) fn pinned_requirements(
    manifest: &LoadedManifest,
    lock: &Path,
    pyproject: &Path,
) -> Result<String> {
    let lock_table = read_toml(lock)?;
    let project = read_toml(pyproject)?;
    let name = lock
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.as_str() {
        "poetry.lock" => poetry(manifest, lock, &lock_table, &project),
        "uv.lock" => uv(manifest, lock, &lock_table, &project),
        _ => Err(manifest
            .error(
                KEY,
                format!("{}: must be a uv.lock or a poetry.lock", lock.display()),
            )
            .into()),
    }
}

fn read_toml(path: &Path) -> Result<toml::Table> {
    let text = fs_err::read_to_string(path)?;
    text.parse()
        .with_context(|| format!("{}: is not valid TOML", path.display()))
}

/// The `[[package]]` tables of a lock (uv.lock and poetry.lock both list them so),
/// each with its normalised name; an entry that is not a table is skipped.
fn locked_packages(table: &toml::Table) -> impl Iterator<Item = (String, &toml::Table)> {
    table
        .get("package")
        .and_then(toml::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(toml::Value::as_table)
        .map(|entry| {
            let name = entry
                .get("name")
                .and_then(toml::Value::as_str)
                .unwrap_or("");
            (normalise(name), entry)
        })
}

/// A distribution name as PEP 503 compares them.
pub(crate) fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// One locked package: its version, hashes, and what it needs (name, extras, marker).
#[derive(Debug, Default)]
struct Locked {
    version: String,
    hashes: Vec<String>,
    dependencies: Vec<Edge>,
    /// The dependencies of each extra.
    extras: BTreeMap<String, Vec<Edge>>,
}

/// A dependency: the package, the extras asked for, and the marker it holds under.
#[derive(Debug, Clone)]
struct Edge {
    name: String,
    extras: Vec<String>,
    marker: Option<String>,
}

/// Walks the graph from `roots` and writes the requirements: each package once, with the
/// markers of the edges that reach it (none when any edge reaches it unconditionally).
fn requirements(
    manifest: &LoadedManifest,
    lock: &Path,
    packages: &BTreeMap<String, Locked>,
    roots: Vec<Edge>,
) -> Result<String> {
    let mut markers: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut seen_extras: BTreeSet<(String, String)> = BTreeSet::new();
    let mut queue = roots;
    while let Some(edge) = queue.pop() {
        let name = normalise(&edge.name);
        let Some(package) = packages.get(&name) else {
            return Err(manifest
                .error(
                    KEY,
                    format!(
                        "{}: needs {name}, which the lock does not hold; refresh the lock",
                        lock.display()
                    ),
                )
                .into());
        };
        let first = !markers.contains_key(&name);
        let entry = markers
            .entry(name.clone())
            .or_insert_with(|| Some(BTreeSet::new()));
        match (&edge.marker, entry.as_mut()) {
            (None, _) => *entry = None,
            (Some(marker), Some(set)) => {
                set.insert(marker.clone());
            }
            (Some(_), None) => {}
        }
        if first {
            queue.extend(package.dependencies.iter().cloned());
        }
        for extra in &edge.extras {
            if seen_extras.insert((name.clone(), extra.clone())) {
                queue.extend(package.extras.get(extra).cloned().unwrap_or_default());
            }
        }
    }
    let mut text = String::new();
    for (name, condition) in &markers {
        let package = &packages[name];
        if package.hashes.is_empty() {
            return Err(manifest
                .error(
                    KEY,
                    format!(
                        "{}: {name} {} has no file hashes (a git, path or URL source); \
                         only packages from an index can be installed with their hashes \
                         checked",
                        lock.display(),
                        package.version
                    ),
                )
                .into());
        }
        let _ = write!(text, "{name}=={}", package.version);
        if let Some(set) = condition {
            if !set.is_empty() {
                let joined: Vec<String> = set.iter().map(|marker| format!("({marker})")).collect();
                let _ = write!(text, " ; {}", joined.join(" or "));
            }
        }
        for hash in &package.hashes {
            let _ = write!(text, " \\\n    --hash={hash}");
        }
        text.push('\n');
    }
    Ok(text)
}

fn string_list(value: Option<&toml::Value>) -> Vec<String> {
    value
        .and_then(toml::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(toml::Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn uv(
    manifest: &LoadedManifest,
    lock: &Path,
    table: &toml::Table,
    project: &toml::Table,
) -> Result<String> {
    let refresh = "run `uv lock` and commit the new uv.lock";
    let stale = |what: String| -> anyhow::Error {
        manifest
            .error(
                KEY,
                format!(
                    "{}: does not match pyproject.toml ({what}); {refresh}",
                    lock.display()
                ),
            )
            .into()
    };
    let declared = project
        .get("project")
        .and_then(toml::Value::as_table)
        .context("pyproject.toml: no [project] table (uv locks PEP 621 projects)")?;
    let project_name = normalise(
        declared
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or(""),
    );
    let mut packages = BTreeMap::new();
    let mut root = None;
    for (name, entry) in locked_packages(table) {
        let edges = |value: Option<&toml::Value>| -> Vec<Edge> {
            value
                .and_then(toml::Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(toml::Value::as_table)
                        .map(|dependency| Edge {
                            name: dependency
                                .get("name")
                                .and_then(toml::Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            extras: string_list(dependency.get("extra")),
                            marker: dependency
                                .get("marker")
                                .and_then(toml::Value::as_str)
                                .map(str::to_string),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut hashes = Vec::new();
        if let Some(hash) = entry
            .get("sdist")
            .and_then(|sdist| sdist.get("hash"))
            .and_then(toml::Value::as_str)
        {
            hashes.push(hash.to_string());
        }
        for wheel in entry
            .get("wheels")
            .and_then(toml::Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(hash) = wheel.get("hash").and_then(toml::Value::as_str) {
                hashes.push(hash.to_string());
            }
        }
        let extras = entry
            .get("optional-dependencies")
            .and_then(toml::Value::as_table)
            .map(|extras| {
                extras
                    .iter()
                    .map(|(extra, list)| (extra.clone(), edges(Some(list))))
                    .collect()
            })
            .unwrap_or_default();
        let locked = Locked {
            version: entry
                .get("version")
                .and_then(toml::Value::as_str)
                .unwrap_or("")
                .to_string(),
            hashes,
            dependencies: edges(entry.get("dependencies")),
            extras,
        };
        let source = entry.get("source").and_then(toml::Value::as_table);
        let is_root = name == project_name
            && source.is_some_and(|source| {
                source.contains_key("editable") || source.contains_key("virtual")
            });
        if is_root {
            root = Some((locked, entry.clone()));
        } else {
            packages.insert(name, locked);
        }
    }
    let Some((root, root_entry)) = root else {
        return Err(stale(format!("it locks no project named {project_name:?}")));
    };
    // What uv recorded of the project's requirements, against what it declares now.
    let recorded: BTreeSet<String> = root_entry
        .get("metadata")
        .and_then(|metadata| metadata.get("requires-dist"))
        .and_then(toml::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(toml::Value::as_table)
                // Optional dependencies carry an `extra == ...` marker: not compared.
                .filter(|requirement| {
                    !requirement
                        .get("marker")
                        .and_then(toml::Value::as_str)
                        .is_some_and(|marker| marker.contains("extra"))
                })
                .map(|requirement| {
                    let text = |key: &str| {
                        requirement
                            .get(key)
                            .and_then(toml::Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    format!(
                        "{}{}{}",
                        normalise(&text("name")),
                        compact(&text("specifier")),
                        text("marker")
                            .is_empty()
                            .then(String::new)
                            .unwrap_or_else(|| format!(";{}", compact(&text("marker"))))
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let wanted: BTreeSet<String> = string_list(declared.get("dependencies"))
        .iter()
        .map(|requirement| pep508_key(requirement))
        .collect();
    if recorded != wanted {
        let missing: Vec<&String> = wanted.difference(&recorded).collect();
        let extra: Vec<&String> = recorded.difference(&wanted).collect();
        return Err(stale(format!(
            "[project] dependencies has {missing:?} where the lock recorded {extra:?}"
        )));
    }
    requirements(manifest, lock, &packages, root.dependencies)
}

/// Whitespace removed, as requirement texts are compared.
fn compact(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace('\'', "\"")
}

/// A PEP 508 requirement as `name[specifier][;marker]` with the name normalised, the
/// extras dropped, whitespace removed and the specifiers sorted, comparable with what uv
/// records.
fn pep508_key(requirement: &str) -> String {
    let (body, marker) = match requirement.split_once(';') {
        Some((body, marker)) => (body, Some(compact(marker))),
        None => (requirement, None),
    };
    let body = compact(body);
    let split = body
        .find(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(body.len());
    let (name, rest) = body.split_at(split);
    let rest = match rest.strip_prefix('[') {
        Some(after) => after.split_once(']').map(|(_, rest)| rest).unwrap_or(""),
        None => rest,
    };
    let rest = rest.trim_start_matches('(').trim_end_matches(')');
    let mut specifiers: Vec<&str> = rest.split(',').filter(|part| !part.is_empty()).collect();
    specifiers.sort();
    let mut key = format!("{}{}", normalise(name), specifiers.join(","));
    if let Some(marker) = marker {
        key.push(';');
        key.push_str(&marker);
    }
    key
}

fn poetry(
    manifest: &LoadedManifest,
    lock: &Path,
    table: &toml::Table,
    project: &toml::Table,
) -> Result<String> {
    let recorded = table
        .get("metadata")
        .and_then(|metadata| metadata.get("content-hash"))
        .and_then(toml::Value::as_str)
        .unwrap_or("");
    let computed = poetry_content_hash(project);
    if recorded != computed {
        return Err(manifest
            .error(
                KEY,
                format!(
                    "{}: does not match pyproject.toml (its content-hash is {recorded:?}, the \
                     dependencies of pyproject.toml give {computed:?}); run `poetry lock` \
                     (`poetry lock --no-update` with poetry 1) and commit the new poetry.lock",
                    lock.display()
                ),
            )
            .into());
    }
    let mut packages = BTreeMap::new();
    for (name, entry) in locked_packages(table) {
        let source_kind = entry
            .get("source")
            .and_then(|source| source.get("type"))
            .and_then(toml::Value::as_str);
        let hashes = if matches!(source_kind, None | Some("legacy")) {
            entry
                .get("files")
                .and_then(toml::Value::as_array)
                .map(|files| {
                    files
                        .iter()
                        .filter_map(|file| file.get("hash").and_then(toml::Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let dependencies = entry
            .get("dependencies")
            .and_then(toml::Value::as_table)
            .map(poetry_edges)
            .unwrap_or_default();
        let extras = entry
            .get("extras")
            .and_then(toml::Value::as_table)
            .map(|extras| {
                extras
                    .iter()
                    .map(|(extra, list)| {
                        let edges = string_list(Some(list))
                            .iter()
                            .map(|requirement| Edge {
                                name: requirement
                                    .split(|c: char| {
                                        !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
                                    })
                                    .next()
                                    .unwrap_or("")
                                    .to_string(),
                                extras: Vec::new(),
                                marker: None,
                            })
                            .collect();
                        (extra.clone(), edges)
                    })
                    .collect()
            })
            .unwrap_or_default();
        packages.insert(
            name,
            Locked {
                version: entry
                    .get("version")
                    .and_then(toml::Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                hashes,
                dependencies,
                extras,
            },
        );
    }
    // The roots: [project] dependencies (poetry 2), else [tool.poetry.dependencies].
    let roots = match project
        .get("project")
        .and_then(|project| project.get("dependencies"))
    {
        Some(list) => string_list(Some(list))
            .iter()
            .map(|requirement| {
                let key = pep508_key(requirement);
                let (body, marker) = match key.split_once(';') {
                    Some((body, marker)) => (body.to_string(), Some(marker.to_string())),
                    None => (key.clone(), None),
                };
                let name = body
                    .split(|c: char| !(c.is_alphanumeric() || c == '-'))
                    .next()
                    .unwrap_or("")
                    .to_string();
                let extras = requirement
                    .split_once('[')
                    .and_then(|(_, rest)| rest.split_once(']'))
                    .map(|(extras, _)| extras.split(',').map(|e| e.trim().to_string()).collect())
                    .unwrap_or_default();
                Edge {
                    name,
                    extras,
                    marker,
                }
            })
            .collect(),
        None => project
            .get("tool")
            .and_then(|tool| tool.get("poetry"))
            .and_then(|poetry| poetry.get("dependencies"))
            .and_then(toml::Value::as_table)
            .map(poetry_edges)
            .unwrap_or_default(),
    };
    let roots = roots
        .into_iter()
        .filter(|edge| edge.name != "python")
        .collect();
    requirements(manifest, lock, &packages, roots)
}

/// Poetry's dependency tables: `name = "constraint"` or a table with `markers`, `extras`,
/// `optional` (an optional one is needed only through an extra).
fn poetry_edges(table: &toml::Table) -> Vec<Edge> {
    table
        .iter()
        .filter_map(|(name, value)| {
            let (marker, extras) = match value {
                toml::Value::Table(details) => {
                    if details.get("optional").and_then(toml::Value::as_bool) == Some(true) {
                        return None;
                    }
                    (
                        details
                            .get("markers")
                            .and_then(toml::Value::as_str)
                            .map(str::to_string),
                        string_list(details.get("extras")),
                    )
                }
                _ => (None, Vec::new()),
            };
            Some(Edge {
                name: name.clone(),
                extras,
                marker,
            })
        })
        .collect()
}

/// The `content-hash` poetry writes into `poetry.lock`: SHA-256 of the JSON (Python's
/// `json.dumps(..., sort_keys=True)`) of the dependency tables of `pyproject.toml`.
fn poetry_content_hash(pyproject: &toml::Table) -> String {
    const LEGACY: &[&str] = &["dependencies", "source", "extras", "dev-dependencies"];
    const RELEVANT: &[&str] = &[
        "dependencies",
        "source",
        "extras",
        "dev-dependencies",
        "group",
    ];
    const PROJECT: &[&str] = &["requires-python", "dependencies", "optional-dependencies"];
    let empty = toml::Table::new();
    let project = pyproject
        .get("project")
        .and_then(toml::Value::as_table)
        .unwrap_or(&empty);
    let poetry = pyproject
        .get("tool")
        .and_then(|tool| tool.get("poetry"))
        .and_then(toml::Value::as_table)
        .unwrap_or(&empty);
    let mut relevant_project = toml::Table::new();
    for key in PROJECT {
        if let Some(value) = project.get(*key) {
            relevant_project.insert(key.to_string(), value.clone());
        }
    }
    let groups = pyproject
        .get("dependency-groups")
        .and_then(toml::Value::as_table)
        .filter(|groups| !groups.is_empty());
    // Absent legacy keys count as null, unless [project] or [dependency-groups] hold
    // the dependencies.
    let mut relevant_poetry: BTreeMap<String, Option<toml::Value>> = BTreeMap::new();
    for key in RELEVANT {
        match poetry.get(*key) {
            Some(value) => {
                relevant_poetry.insert(key.to_string(), Some(value.clone()));
            }
            None if LEGACY.contains(key) && relevant_project.is_empty() && groups.is_none() => {
                relevant_poetry.insert(key.to_string(), None);
            }
            None => {}
        }
    }
    let poetry_json = python_json_object(
        relevant_poetry
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_ref())),
    );
    let json = if relevant_project.is_empty() && groups.is_none() {
        poetry_json
    } else {
        // Keys in sorted order: dependency-groups, project, tool.
        let mut parts = Vec::new();
        if let Some(groups) = groups {
            parts.push(format!(
                "\"dependency-groups\": {}",
                python_json(&toml::Value::Table(groups.clone()))
            ));
        }
        if !relevant_project.is_empty() {
            parts.push(format!(
                "\"project\": {}",
                python_json(&toml::Value::Table(relevant_project))
            ));
        }
        parts.push(format!("\"tool\": {{\"poetry\": {poetry_json}}}"));
        format!("{{{}}}", parts.join(", "))
    };
    hex::encode(sha2::Sha256::digest(json.as_bytes()))
}

/// Python's `json.dumps(value, sort_keys=True)` of an object given as pairs.
fn python_json_object<'a>(
    pairs: impl Iterator<Item = (&'a str, Option<&'a toml::Value>)>,
) -> String {
    let mut items: Vec<(&str, String)> = pairs
        .map(|(key, value)| (key, value.map(python_json).unwrap_or_else(|| "null".into())))
        .collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    let inner: Vec<String> = items
        .into_iter()
        .map(|(key, value)| format!("{}: {value}", python_string(key)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Python's `json.dumps(value, sort_keys=True)`: `", "` and `": "` separators, non-ASCII
/// escaped.
fn python_json(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => python_string(text),
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Float(number) => format!("{number:?}"),
        toml::Value::Boolean(flag) => flag.to_string(),
        toml::Value::Datetime(datetime) => python_string(&datetime.to_string()),
        toml::Value::Array(list) => {
            let items: Vec<String> = list.iter().map(python_json).collect();
            format!("[{}]", items.join(", "))
        }
        toml::Value::Table(table) => {
            python_json_object(table.iter().map(|(key, value)| (key.as_str(), Some(value))))
        }
    }
}

fn python_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut buffer = [0u16; 2];
                for unit in c.encode_utf16(&mut buffer) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_requirements_normalise() {
        assert_eq!(normalise("Foo_Bar.baz"), "foo-bar-baz");
        assert_eq!(pep508_key("Six >= 1.15"), "six>=1.15");
        assert_eq!(
            pep508_key("requests[socks] <3, >=2 ; python_version < '3.12'"),
            "requests<3,>=2;python_version<\"3.12\""
        );
    }

    #[test]
    fn python_json_matches_json_dumps_with_sorted_keys() {
        let table: toml::Table = "b = [1, \"x\"]\na = { z = true, y = \"é\" }\n"
            .parse()
            .expect("toml");
        assert_eq!(
            python_json(&toml::Value::Table(table)),
            "{\"a\": {\"y\": \"\\u00e9\", \"z\": true}, \"b\": [1, \"x\"]}"
        );
    }
}
