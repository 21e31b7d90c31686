//! Layers in the repository: a payload names its layer in its `Depends`
//! (`<app>-layer-<key> (= 1)`), and the repository keeps the two together.
//!
//! - A suite that lists a payload lists its layer ([`list_layers_of`], called by `repo add`,
//!   `repo promote` and `repo rollback`); a payload whose layer the pool lacks is refused.
//! - A suite lists a layer only while it lists a payload that needs it, and the pool keeps
//!   a layer only while a payload row needs it ([`settle`], called by `repo remove` and
//!   `repo gc` after they unlisted or deleted payloads).
//! - `repo verify` checks both rules ([`check`]).
//!
//! The link is read from the stored control paragraph, through the naming contract, so
//! the repository never keeps a second record of it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use anyhow::{bail, Result};
use rusqlite::Connection;

use crate::debian::control::Paragraph;
use crate::naming::AppNames;
use crate::repo::state::{self, PackageRecord, Role};

/// The layer packages and versions that `depends` (a Depends field of a package of `app`)
/// names: `(package, version)`.
pub(crate) fn named_layers(app: &str, depends: &str) -> Vec<(String, String)> {
    let names = AppNames::new(app);
    let mut layers = Vec::new();
    for relation in depends.split(',') {
        // A layer is never an alternative: only the first one of a relation counts.
        let first = relation.split('|').next().unwrap_or("").trim();
        let name = first
            .split(|character: char| character.is_whitespace() || character == '(')
            .next()
            .unwrap_or("");
        if names.layer_key(name).is_none() {
            continue;
        }
        let version = first
            .split_once("(=")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(version, _)| version.trim().to_string())
            .unwrap_or_default();
        layers.push((name.to_string(), version));
    }
    layers
}

/// The layers a stored payload names (none for other roles).
pub(crate) fn needed_by(package: &PackageRecord) -> Vec<(String, String)> {
    if package.role != Role::Payload {
        return Vec::new();
    }
    let depends = Paragraph::parse(&package.control)
        .ok()
        .and_then(|paragraph| paragraph.get("Depends").map(str::to_string))
        .unwrap_or_default();
    named_layers(&package.app, &depends)
}

/// The pool's rows of one layer (one per architecture).
fn rows_of(
    connection: &Connection,
    app: &str,
    package: &str,
    version: &str,
) -> Result<Vec<PackageRecord>> {
    Ok(state::packages_of_version(connection, app, version)?
        .into_iter()
        .filter(|row| row.role == Role::Layer && row.identity.package == package)
        .collect())
}

/// Lists in `suite` the layers `payload` needs; fails, naming the layer, when the pool
/// does not hold one. Gives whether the listing changed.
pub(crate) fn list_layers_of(
    connection: &Connection,
    suite: &str,
    payload: &PackageRecord,
) -> Result<bool> {
    let mut changed = false;
    for (layer, version) in needed_by(payload) {
        let rows = rows_of(connection, &payload.app, &layer, &version)?;
        if rows.is_empty() {
            bail!(
                "{} {} depends on its layer {layer} (= {version}), which the repository \
                 does not hold: add the build's manifest, which names the layer, or the \
                 layer's .deb with the release (`debstage repo add STAGE --manifest FILE`)",
                payload.identity.package,
                payload.identity.version
            );
        }
        for row in rows {
            changed |= state::list(connection, suite, row.id)?;
        }
    }
    Ok(changed)
}

/// Unlists from each suite the layers no payload it lists needs, then deletes the layer
/// rows that no payload row needs and no suite lists. Gives the suites changed and the
/// layer packages deleted.
pub(crate) fn settle(connection: &Connection) -> Result<(BTreeSet<String>, Vec<String>)> {
    let mut changed = BTreeSet::new();
    let mut by_suite: BTreeMap<String, Vec<PackageRecord>> = BTreeMap::new();
    let all = state::all_packages(connection)?;
    let by_id: BTreeMap<i64, &PackageRecord> = all.iter().map(|row| (row.id, row)).collect();
    for (suite, id) in state::listings(connection)? {
        if let Some(row) = by_id.get(&id) {
            by_suite.entry(suite).or_default().push((*row).clone());
        }
    }
    for (suite, rows) in &by_suite {
        let needed: HashSet<(String, String)> = rows.iter().flat_map(needed_by).collect();
        for row in rows.iter().filter(|row| row.role == Role::Layer) {
            if !needed.contains(&(row.identity.package.clone(), row.identity.version.clone())) {
                state::unlist(connection, suite, row.id)?;
                changed.insert(suite.clone());
            }
        }
    }
    let needed: HashSet<(String, String)> = all.iter().flat_map(needed_by).collect();
    let mut deleted = Vec::new();
    for row in all.iter().filter(|row| row.role == Role::Layer) {
        if needed.contains(&(row.identity.package.clone(), row.identity.version.clone())) {
            continue;
        }
        if !state::suites_of(connection, row.id)?.is_empty() {
            continue;
        }
        state::delete_package(connection, row.id)?;
        deleted.push(row.identity.package.clone());
    }
    Ok((changed, deleted))
}

/// What `repo verify` says about layers, one sentence each: problems (a suite that lists
/// a payload without its layer) and warnings (a layer no payload in the pool needs, which
/// the next `repo gc` deletes).
pub(crate) fn check(connection: &Connection) -> Result<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    let all = state::all_packages(connection)?;
    let by_id: BTreeMap<i64, &PackageRecord> = all.iter().map(|row| (row.id, row)).collect();
    let mut by_suite: BTreeMap<String, Vec<&PackageRecord>> = BTreeMap::new();
    for (suite, id) in state::listings(connection)? {
        if let Some(row) = by_id.get(&id) {
            by_suite.entry(suite).or_default().push(row);
        }
    }
    for (suite, rows) in &by_suite {
        let listed: HashSet<(&str, &str)> = rows
            .iter()
            .filter(|row| row.role == Role::Layer)
            .map(|row| (row.identity.package.as_str(), row.identity.version.as_str()))
            .collect();
        for row in rows {
            for (layer, version) in needed_by(row) {
                if !listed.contains(&(layer.as_str(), version.as_str())) {
                    found.push(format!(
                        "{suite}: lists {} {} without its layer {layer} (= {version})",
                        row.identity.package, row.identity.version
                    ));
                }
            }
        }
    }
    let needed: HashSet<(String, String)> = all.iter().flat_map(needed_by).collect();
    for row in all.iter().filter(|row| row.role == Role::Layer) {
        if !needed.contains(&(row.identity.package.clone(), row.identity.version.clone())) {
            warnings.push(format!(
                "{} {}: a layer that no payload in the repository depends on (`debstage repo \
                 gc` removes it)",
                row.identity.package, row.identity.version
            ));
        }
    }
    Ok((found, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_read_from_depends() {
        assert_eq!(
            named_layers(
                "shop",
                "shop-layer-0123456789abcdef (= 1), python3.11, libc6 (>= 2.34) | libc7"
            ),
            vec![("shop-layer-0123456789abcdef".to_string(), "1".to_string())]
        );
        assert_eq!(
            named_layers("shop", "shop-layer-0123456789abcdef (= 1+deb12)"),
            vec![(
                "shop-layer-0123456789abcdef".to_string(),
                "1+deb12".to_string()
            )]
        );
        // Another application's layer, or a name that only looks like one, is not ours.
        assert!(named_layers("shop", "other-layer-0123456789abcdef (= 1)").is_empty());
        assert!(named_layers("shop", "shop-layer-tools (= 1)").is_empty());
    }
}
