//! `repo sources`: what a server of one stage needs to follow it: the deb822 `.sources`
//! file and the repository key. It never prints a file a stage package ships: the apt pin
//! (`/etc/apt/preferences.d/<app>-<stage>`) comes with the stage package itself, and a
//! second copy written by hand would make dpkg ask about a changed conffile.
//!
//! The sources file names the keys by path (`Signed-By:
//! /usr/share/keyrings/<origin>-archive-keyring.gpg`) rather than carrying them inline:
//! the file is the one the keyring package installs, so a new key reaches every server
//! through apt, every stage's sources file stays short, and
//! `repo export-key --binary` writes exactly the file the path names (binary, which
//! every apt since 1.1 reads whatever the file's extension).

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::json;

use crate::naming::distribution::suite_of;
use crate::naming::{AppNames, Distribution};
use crate::repo::commands::export_key::PublicKey;
use crate::repo::session::Repository;
use crate::repo::state;
use crate::report::Reporter;

/// The one component every suite has.
const COMPONENT: &str = "main";

/// The URI a `.sources` file names: the repository's URL without a trailing `/`.
fn uri(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// The deb822 `.sources` text for suite `suite` of the repository at `url`, trusting
/// only the key at `key_path_on_server` (no `[trusted=yes]`).
fn sources_file(url: &str, suite: &str, key_path_on_server: &str) -> String {
    format!(
        "Types: deb\nURIs: {}\nSuites: {suite}\nComponents: {COMPONENT}\nSigned-By: {key_path_on_server}\n",
        uri(url)
    )
}

/// The name of a suite's `.sources` file without its directory and extension (what
/// Ansible's `deb822_repository` calls `name`): `<origin>-<suite>`.
fn sources_name(origin: &str, suite: &str) -> String {
    format!("{origin}-{suite}")
}

/// Where the `.sources` file of a suite goes on a server.
fn sources_path(origin: &str, suite: &str) -> String {
    format!(
        "/etc/apt/sources.list.d/{}.sources",
        sources_name(origin, suite)
    )
}

/// The text for a terminal: how to install the key, the `.sources` file under a
/// `# <path>` line, and where the pins come from.
fn server_text(
    url: &str,
    suite: &str,
    origin: &str,
    keyring: &Keyring,
    stage_packages: &[String],
) -> String {
    let package = &keyring.package;
    let key = crate::naming::archive_keyring_path(package);
    let install = if keyring.listed {
        format!(
            "#   write the .sources file below, then: apt-get update && apt-get install {package}\n\
             # {package} owns that file from then on and brings every new key before it\n\
             # signs alone.\n"
        )
    } else {
        format!(
            "# The suite does not carry {package} yet (every change of the keys puts it\n\
             # into each suite); until then a new key reaches servers only as this file.\n"
        )
    };
    let mut text = format!(
        "# {key}: the repository keys, written on a new server with\n\
         #   curl -fsSL {}/{origin}.gpg -o {key}\n\
         #   (or: debstage repo export-key --binary > {key})\n\
         {install}\
         \n\
         # {}\n{}",
        uri(url),
        sources_path(origin, suite),
        sources_file(url, suite, &key)
    );
    if !stage_packages.is_empty() {
        text.push_str(&format!(
            "\n# The apt pin that makes {} follow the {suite} suite comes with the package \
             itself; do not write it by hand.\n\
             # After a rollback the host follows with: apt-get install --allow-downgrades {}\n",
            stage_packages.join(", "),
            stage_packages.join(" ")
        ));
    }
    text
}

/// The keyring package of the repository, and whether the suite lists it.
struct Keyring {
    package: String,
    listed: bool,
}

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
        None => {
            let mut names: Vec<String> = state::suite_packages(&connection, &suite)?
                .into_iter()
                .filter(|package| package.role == state::Role::Stage)
                .map(|package| package.package)
                .collect();
            names.dedup();
            names
        }
    };
    let origin = &repository.config.origin;
    let package = crate::naming::archive_keyring_package(origin)
        .map_err(|reason| anyhow::anyhow!("origin: {origin:?} {reason}"))?;
    let keyring = Keyring {
        listed: state::suite_packages(&connection, &suite)?
            .iter()
            .any(|listed| listed.package == package),
        package,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_have_the_deb822_form_and_no_pin() {
        let key = crate::repo::commands::export_key::key_path_on_server("Example_Apps")
            .expect("a valid origin");
        assert_eq!(key, "/usr/share/keyrings/example-apps-archive-keyring.gpg");
        assert_eq!(
            sources_file("http://127.0.0.1:8080/", "production", &key),
            "Types: deb\nURIs: http://127.0.0.1:8080\nSuites: production\nComponents: main\nSigned-By: /usr/share/keyrings/example-apps-archive-keyring.gpg\n"
        );
        let text = server_text(
            "http://repo.example:8080",
            "staging",
            "example",
            &Keyring {
                package: "example-archive-keyring".into(),
                listed: true,
            },
            &["shop-staging".into()],
        );
        assert!(text.contains("# /etc/apt/sources.list.d/example-staging.sources\nTypes: deb\nURIs: http://repo.example:8080\nSuites: staging\nComponents: main\nSigned-By: /usr/share/keyrings/example-archive-keyring.gpg\n"), "{text}");
        assert!(text.contains(
            "curl -fsSL http://repo.example:8080/example.gpg -o /usr/share/keyrings/example-archive-keyring.gpg"
        ));
        assert!(text.contains("apt-get install example-archive-keyring"));
        assert!(text.contains("apt-get install --allow-downgrades shop-staging"));
        assert!(!text.contains("Pin-Priority"), "{text}");
    }
}
