//! `repo sources`: what a server of one stage needs to follow it: the deb822 `.sources`
//! file and the repository key. It never prints a file a stage package ships: the apt pin
//! (`/etc/apt/preferences.d/<app>-<stage>`) comes with the stage package itself, and a
//! second copy written by hand would make dpkg ask about a changed conffile.
//!
//! The texts come from [`crate::repo::subscribe`], which the dashboard shows too.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::json;

use crate::naming::distribution::suite_of;
use crate::naming::{AppNames, Distribution};
use crate::repo::commands::export_key::PublicKey;
use crate::repo::session::Repository;
use crate::repo::state;
use crate::repo::subscribe::{
    server_text, sources_file, sources_name, sources_path, uri, Keyring, COMPONENT,
};
use crate::report::Reporter;

/// Prints what a server of `stage` needs: the key, the `.sources` file of the stage's
/// suite for its distribution (`bookworm-production`; the stage's own for host builds),
/// and which stage packages bring their pins (`<app>-<stage>`, or every stage package
/// the suite lists).
pub(crate) fn run(
    root: &Path,
    stage: &str,
    distribution: Option<Distribution>,
    url: &str,
    app: Option<&str>,
    reporter: &Reporter,
) -> Result<()> {
    let repository = Repository::open(root)?;
    repository.config.stage_index(stage)?;
    // The suite's name is its Suite and Codename in its Release files, which apt checks
    // against the Suites line, and the `n=` the stage packages' pins name.
    let suite = suite_of(distribution, stage);
    let connection = state::open(root)?;
    let stage_packages: Vec<String> = match app {
        Some(app) => {
            if state::packages_of_app(&connection, app)?.is_empty() {
                bail!("{app}: no such application in the repository");
            }
            vec![AppNames::new(app).stage_package(stage)]
        }
        None => state::listed_names(&connection, &suite, state::Role::Stage)?,
    };
    let origin = &repository.config.origin;
    let keyring = Keyring::of(&connection, origin, &suite)?;
    if !reporter.is_json() {
        reporter.data(
            server_text(url, &suite, origin, &keyring, &stage_packages),
            &json!({}),
        )?;
        return Ok(());
    }
    // The fields of Ansible's deb822_repository (name, types, uris, suites, components,
    // signed_by), what they make (path, text), the key and the packages that bring pins.
    let key = PublicKey::load(root, origin)?;
    let document = json!({
        "stage": stage,
        "distribution": distribution.map(|distribution| distribution.codename()),
        "name": sources_name(origin, &suite),
        "types": ["deb"],
        "uris": [uri(url)],
        "suites": [suite],
        "components": [COMPONENT],
        "signed_by": key.keyring_path_on_server,
        "path": sources_path(origin, &suite),
        "text": sources_file(url, &suite, &key.keyring_path_on_server),
        "key": key.to_json(),
        "stage_packages": stage_packages,
    });
    reporter.data("", &document)?;
    Ok(())
}
