//! `engines.node` of the application and of every package installed in its
//! `node_modules`: the Node.js releases they say they run on. The build's Node.js (the
//! build machine's, or the target distribution's `nodejs` with `--target`, the one its
//! servers run) must be in every range; the lowest release in all of them bounds the
//! payload's `nodejs` from below, so apt refuses a server whose Node.js is older.
//!
//! Ranges are npm's (`>=18`, `^20.9 || >=22`, `18.x`), read with `nodejs-semver`, the
//! crate that follows node-semver's grammar (Rust's `semver` reads Cargo's).

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use nodejs_semver::{Range, Version};
use walkdir::WalkDir;

/// One package's `engines.node`.
#[derive(Debug, Clone)]
pub(crate) struct Requirement {
    /// `name@version` of the package (the application's own for the top `package.json`).
    pub(crate) package: String,
    /// Its `package.json`, relative to the release tree.
    pub(crate) path: PathBuf,
    /// The range as written.
    pub(crate) text: String,
    range: Range,
}

/// The `engines.node` of the application (`package.json` at `root`) and of each package
/// under its `node_modules`. A range npm's grammar cannot read is passed to `skip` with
/// the reason, and not checked.
pub(crate) fn requirements(root: &Path, skip: &dyn Fn(String)) -> Result<Vec<Requirement>> {
    let mut found = Vec::new();
    read_requirement(root, Path::new("package.json"), skip, &mut found)?;
    let node_modules = root.join("node_modules");
    if !node_modules.is_dir() {
        return Ok(found);
    }
    for entry in WalkDir::new(&node_modules).sort_by_file_name() {
        let entry = entry.with_context(|| format!("{}: cannot be read", node_modules.display()))?;
        if !(entry.file_type().is_file() && entry.file_name() == "package.json") {
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if is_package_manifest(relative) {
            read_requirement(root, relative, skip, &mut found)?;
        }
    }
    Ok(found)
}

/// Whether `relative` is the `package.json` of an installed package:
/// `node_modules/<name>/package.json` or `node_modules/@scope/<name>/package.json`, at any
/// depth (not a `package.json` somewhere inside a package's files).
fn is_package_manifest(relative: &Path) -> bool {
    let components: Vec<Component<'_>> = relative.components().collect();
    let node_modules = Component::Normal("node_modules".as_ref());
    match components.as_slice() {
        [.., parent, _, _] if *parent == node_modules => true,
        [.., parent, scope, _, _] if *parent == node_modules => scope
            .as_os_str()
            .to_str()
            .is_some_and(|scope| scope.starts_with('@')),
        _ => false,
    }
}

fn read_requirement(
    root: &Path,
    relative: &Path,
    skip: &dyn Fn(String),
    found: &mut Vec<Requirement>,
) -> Result<()> {
    let path = root.join(relative);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    // A package.json that is not JSON is no concern of this check; npm read it.
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(());
    };
    let Some(range_text) = value
        .get("engines")
        .and_then(|engines| engines.get("node"))
        .and_then(serde_json::Value::as_str)
    else {
        return Ok(());
    };
    let package = format!(
        "{}@{}",
        value["name"].as_str().unwrap_or("(unnamed)"),
        value["version"].as_str().unwrap_or("(no version)")
    );
    match Range::parse(range_text) {
        Ok(range) => found.push(Requirement {
            package,
            path: relative.to_path_buf(),
            text: range_text.to_string(),
            range,
        }),
        Err(error) => skip(format!(
            "{}: engines.node {range_text:?} of {package} is not a range npm's grammar \
             reads ({error}); not checked",
            relative.display()
        )),
    }
    Ok(())
}

/// The requirements that the Node.js of version `node_version` does not meet.
pub(crate) fn unmet<'a>(
    requirements: &'a [Requirement],
    node_version: &str,
) -> Result<Vec<&'a Requirement>> {
    let version = Version::parse(node_version.trim().trim_start_matches('v'))
        .with_context(|| format!("Node.js gave its version as {node_version:?}"))?;
    Ok(requirements
        .iter()
        .filter(|requirement| !requirement.range.satisfies(&version))
        .collect())
}

/// The lowest Node.js release that meets every requirement whose range has a lower
/// bound above 0, with the requirement that sets it: `nodejs (>= <version>)`.
pub(crate) fn lower_bound(requirements: &[Requirement]) -> Option<(String, &Requirement)> {
    requirements
        .iter()
        .filter_map(|requirement| {
            let minimum = requirement.range.min_version()?;
            let above_zero = (minimum.major(), minimum.minor(), minimum.patch()) != (0, 0, 0);
            above_zero.then_some((minimum, requirement))
        })
        .max_by(|(left, _), (right, _)| left.cmp(right))
        .map(|(minimum, requirement)| {
            let version = format!(
                "{}.{}.{}",
                minimum.major(),
                minimum.minor(),
                minimum.patch()
            );
            (version, requirement)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn every_installed_package_counts_and_the_highest_minimum_bounds() -> Result<()> {
        let temp = tempfile::tempdir()?;
        let root = temp.path();
        write(
            root,
            "package.json",
            r#"{"name": "app", "version": "1.0.0", "engines": {"node": ">=18"}}"#,
        );
        write(
            root,
            "node_modules/native/package.json",
            r#"{"name": "native", "version": "12.0.0", "engines": {"node": "20.x || 22.x || >=23"}}"#,
        );
        write(
            root,
            "node_modules/@scope/tool/package.json",
            r#"{"name": "@scope/tool", "version": "2.0.0", "engines": {"node": "^22.12.0"}}"#,
        );
        // Inside a package: not a package of its own.
        write(
            root,
            "node_modules/native/lib/package.json",
            r#"{"type": "module", "engines": {"node": ">=99"}}"#,
        );
        write(
            root,
            "node_modules/odd/package.json",
            r#"{"name": "odd", "version": "1.0.0", "engines": {"node": "not a range !"}}"#,
        );
        let skipped = std::cell::RefCell::new(Vec::new());
        let found = requirements(root, &|reason| skipped.borrow_mut().push(reason))?;
        let packages: Vec<&str> = found.iter().map(|found| found.package.as_str()).collect();
        assert_eq!(
            packages,
            ["app@1.0.0", "@scope/tool@2.0.0", "native@12.0.0"]
        );
        assert_eq!(skipped.borrow().len(), 1, "{:?}", skipped.borrow());

        let unmet_by_20: Vec<&str> = unmet(&found, "v20.20.2")?
            .iter()
            .map(|requirement| requirement.package.as_str())
            .collect();
        assert_eq!(unmet_by_20, ["@scope/tool@2.0.0"]);
        assert!(unmet(&found, "22.12.0")?.is_empty());
        let (version, requirement) = lower_bound(&found).expect("a bound");
        assert_eq!(version, "22.12.0");
        assert_eq!(requirement.package, "@scope/tool@2.0.0");
        Ok(())
    }
}
