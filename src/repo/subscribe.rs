//! How a server subscribes to a stage: the deb822 `.sources` text of a suite and the
//! path of the repository key it names. `repo sources` prints it; the dashboard shows it.
//!
//! The sources file names the key by path (`Signed-By: /etc/apt/keyrings/<origin>.gpg`)
//! rather than carrying it inline: the key is then one file that configuration management
//! installs once and rotates in one place, and `repo export-key --binary` writes exactly
//! the file the path names (binary, which every apt since 1.1 reads whatever the file's
//! extension).

/// Where a server keeps the repository key of `origin`: the path `Signed-By` names.
pub(crate) fn key_path_on_server(origin: &str) -> String {
    format!("/etc/apt/keyrings/{origin}.gpg")
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
    stage_packages: &[String],
) -> String {
    let key = key_path_on_server(origin);
    let mut text = format!(
        "# {key}: the repository key, written on the server with\n\
         #   install -d -m 0755 /etc/apt/keyrings\n\
         #   debstage repo export-key --binary > {key}\n\
         # (or copy {origin}.gpg from the repository's root)\n\
         \n\
         # {}\n{}",
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
        assert_eq!(
            sources_file("http://127.0.0.1:8080/", "production", &key_path_on_server("example")),
            "Types: deb\nURIs: http://127.0.0.1:8080\nSuites: production\nComponents: main\nSigned-By: /etc/apt/keyrings/example.gpg\n"
        );
        let text = server_text(
            "http://repo.example:8080",
            "staging",
            "example",
            &["shop-staging".into()],
        );
        assert!(text.contains("# /etc/apt/sources.list.d/example-staging.sources\nTypes: deb\nURIs: http://repo.example:8080\nSuites: staging\nComponents: main\nSigned-By: /etc/apt/keyrings/example.gpg\n"), "{text}");
        assert!(text.contains("debstage repo export-key --binary > /etc/apt/keyrings/example.gpg"));
        assert!(text.contains("apt-get install --allow-downgrades shop-staging"));
        assert!(!text.contains("Pin-Priority"), "{text}");
    }
}
