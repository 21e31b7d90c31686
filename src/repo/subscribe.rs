//! How a server subscribes to a stage: the deb822 `.sources` text of a suite and the
//! path of the repository key it names. `repo sources` prints it; the dashboard shows it.
//!
//! The sources file names the keys by path (`Signed-By:
//! /usr/share/keyrings/<origin>-archive-keyring.gpg`) rather than carrying them inline:
//! the file is the one the keyring package installs, so a new key reaches every server
//! through apt, every stage's sources file stays short, and
//! `repo export-key --binary` writes exactly the file the path names (binary, which
//! every apt since 1.1 reads whatever the file's extension).

use anyhow::Result;
use rusqlite::Connection;

use crate::repo::state;

/// Where a server keeps the repository keys of `origin`, the path `Signed-By` names: the
/// file the keyring package (`<origin>-archive-keyring`) installs and keeps current.
pub(crate) fn key_path_on_server(origin: &str) -> Result<String> {
    let package = crate::naming::archive_keyring_package(origin)
        .map_err(|reason| anyhow::anyhow!("origin: {origin:?} {reason}"))?;
    Ok(crate::naming::archive_keyring_path(&package))
}

/// The keyring package of the repository, and whether a suite lists it.
pub(crate) struct Keyring {
    /// `<origin>-archive-keyring`.
    pub(crate) package: String,
    /// Whether the suite lists it (every change of the keys puts it into each suite).
    pub(crate) listed: bool,
}

impl Keyring {
    /// The keyring package of `origin`, as `suite` stands.
    pub(crate) fn of(connection: &Connection, origin: &str, suite: &str) -> Result<Keyring> {
        let package = crate::naming::archive_keyring_package(origin)
            .map_err(|reason| anyhow::anyhow!("origin: {origin:?} {reason}"))?;
        let listed = state::lists_name(connection, suite, &package)?;
        Ok(Keyring { package, listed })
    }
}

/// The one component every suite has.
pub(crate) const COMPONENT: &str = "main";

/// The URI a `.sources` file names: the repository's URL without a trailing `/`.
pub(crate) fn uri(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// The deb822 `.sources` text for suite `suite` of the repository at `url`, trusting
/// only the key at `key_path_on_server` (no `[trusted=yes]`).
pub(crate) fn sources_file(url: &str, suite: &str, key_path_on_server: &str) -> String {
    format!(
        "Types: deb\nURIs: {}\nSuites: {suite}\nComponents: {COMPONENT}\nSigned-By: {key_path_on_server}\n",
        uri(url)
    )
}

/// The name of a suite's `.sources` file without its directory and extension (what
/// Ansible's `deb822_repository` calls `name`): `<origin>-<suite>`.
pub(crate) fn sources_name(origin: &str, suite: &str) -> String {
    format!("{origin}-{suite}")
}

/// Where the `.sources` file of a suite goes on a server.
pub(crate) fn sources_path(origin: &str, suite: &str) -> String {
    format!(
        "/etc/apt/sources.list.d/{}.sources",
        sources_name(origin, suite)
    )
}

/// The text for a terminal: how to install the key, the `.sources` file under a
/// `# <path>` line, and where the pins come from.
pub(crate) fn server_text(
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
            "# The suite does not carry {package} yet (a repository made before every\n\
             # suite carried it gets it at its next publication: debstage repo publish);\n\
             # until then a new key reaches servers only as this file.\n"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_have_the_deb822_form_and_no_pin() {
        let key = key_path_on_server("Example_Apps").expect("a valid origin");
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
