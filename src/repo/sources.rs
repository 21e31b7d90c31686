//! `repo sources`: the deb822 `.sources` file and pin file a server of one stage needs.
//!
//! The sources file names the key by path (`Signed-By: /etc/apt/keyrings/<origin>.gpg`)
//! rather than carrying it inline: the key is then one file that configuration management
//! installs once and rotates in one place, every stage's sources file stays three short
//! lines, and `repo export-key` writes exactly the file the path names (binary, which
//! every apt since 1.1 reads whatever the file's extension).

/// Where a server keeps the repository key of `origin`: the path `Signed-By` names.
pub fn key_path_on_server(origin: &str) -> String {
    format!("/etc/apt/keyrings/{origin}.gpg")
}

/// The deb822 `.sources` text for suite `suite` of the repository at `url`, trusting
/// only the key at `key_path_on_server` (no `[trusted=yes]`).
pub fn sources_file(url: &str, suite: &str, key_path_on_server: &str) -> String {
    format!(
        "Types: deb\nURIs: {}\nSuites: {suite}\nComponents: main\nSigned-By: {key_path_on_server}\n",
        url.trim_end_matches('/')
    )
}

/// The apt preferences text that makes `package` follow suite `suite`, upgrades and
/// downgrades alike (a priority above 1000 allows downgrades).
pub fn pin_file(package: &str, suite: &str) -> String {
    format!("Package: {package}\nPin: release n={suite}\nPin-Priority: 1001\n")
}

/// One file a server of a stage needs: where it goes and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFile {
    /// The absolute path on the server.
    pub path: String,
    /// The text.
    pub text: String,
}

/// The files that make a server follow `stage`: the `.sources` file, then one pin file
/// per stage package (`<app>-<stage>`). The key itself goes to
/// [`key_path_on_server`] (`repo export-key`).
pub fn server_files(
    url: &str,
    stage: &str,
    origin: &str,
    stage_packages: &[String],
) -> Vec<ServerFile> {
    let mut files = vec![ServerFile {
        path: format!("/etc/apt/sources.list.d/{origin}-{stage}.sources"),
        text: sources_file(url, stage, &key_path_on_server(origin)),
    }];
    files.extend(stage_packages.iter().map(|package| ServerFile {
        path: format!("/etc/apt/preferences.d/{package}"),
        text: pin_file(package, stage),
    }));
    files
}

/// [`server_files`] as one text for a terminal: each file under a `# <path>` comment line,
/// separated by an empty line.
pub fn server_files_text(files: &[ServerFile]) -> String {
    files
        .iter()
        .map(|file| format!("# {}\n{}", file.path, file.text))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_have_the_deb822_form() {
        assert_eq!(
            sources_file("http://127.0.0.1:8080/", "production", &key_path_on_server("example")),
            "Types: deb\nURIs: http://127.0.0.1:8080\nSuites: production\nComponents: main\nSigned-By: /etc/apt/keyrings/example.gpg\n"
        );
        assert_eq!(
            pin_file("shop-production", "production"),
            "Package: shop-production\nPin: release n=production\nPin-Priority: 1001\n"
        );
        let files = server_files(
            "http://repo.example:8080",
            "staging",
            "example",
            &["shop-staging".into()],
        );
        assert_eq!(
            server_files_text(&files),
            "# /etc/apt/sources.list.d/example-staging.sources\nTypes: deb\nURIs: http://repo.example:8080\nSuites: staging\nComponents: main\nSigned-By: /etc/apt/keyrings/example.gpg\n\n# /etc/apt/preferences.d/shop-staging\nPackage: shop-staging\nPin: release n=staging\nPin-Priority: 1001\n"
        );
    }
}
