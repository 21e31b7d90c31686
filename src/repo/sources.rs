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
    }
}
