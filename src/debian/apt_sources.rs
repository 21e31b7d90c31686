//! The machine's apt sources (`/etc/apt/sources.list`, `sources.list.d/*.list` and
//! `*.sources`), read for the mirror a build root is made from: debstage never names a
//! mirror host itself, it uses the one the machine's apt already trusts.
//!
//! Written by hand: only the URI and the suites of `deb` entries are needed, from two
//! small line formats; the e2e harness reads the mirror for its roots the same way.

use std::path::{Path, PathBuf};

/// One `deb` entry: a URI and the suites it serves from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    /// The archive's URI, without a trailing `/`.
    pub(crate) uri: String,
    /// The suites (`bookworm`, `bookworm-updates`).
    pub(crate) suites: Vec<String>,
}

/// The files apt reads its sources from, in apt's order, that exist.
pub(crate) fn source_files(etc_apt: &Path) -> Vec<PathBuf> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(entries) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                matches!(
                    path.extension().and_then(|extension| extension.to_str()),
                    Some("list" | "sources")
                )
            })
            .collect();
        paths.sort();
        files.extend(paths);
    }
    files.retain(|path| path.is_file());
    files
}

/// Every http(s) `deb` entry of the machine's apt configuration under `etc_apt`.
pub(crate) fn read(etc_apt: &Path) -> Vec<Source> {
    let mut sources = Vec::new();
    for path in source_files(etc_apt) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if path
            .extension()
            .is_some_and(|extension| extension == "sources")
        {
            sources.extend(parse_deb822(&text));
        } else {
            sources.extend(parse_one_line(&text));
        }
    }
    sources
}

fn is_http(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://")
}

/// `deb [options] URI suite components...` lines.
pub(crate) fn parse_one_line(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = words.collect();
        if rest.first().is_some_and(|word| word.starts_with('[')) {
            let Some(end) = rest.iter().position(|word| word.ends_with(']')) else {
                continue;
            };
            rest.drain(..=end);
        }
        if let [uri, suite, ..] = rest.as_slice() {
            if is_http(uri) {
                sources.push(Source {
                    uri: uri.trim_end_matches('/').to_string(),
                    suites: vec![(*suite).to_string()],
                });
            }
        }
    }
    sources
}

/// deb822 paragraphs (`Types: deb`, `URIs`, `Suites`, optional `Enabled: no`).
pub(crate) fn parse_deb822(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for paragraph in text.split("\n\n") {
        let field = |name: &str| {
            paragraph
                .lines()
                .filter(|line| !line.starts_with('#'))
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| value.trim().to_string())
                })
        };
        let enabled = field("Enabled").is_none_or(|value| value != "no");
        let types = field("Types").unwrap_or_default();
        if !enabled || !types.split_whitespace().any(|word| word == "deb") {
            continue;
        }
        let suites: Vec<String> = field("Suites")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for uri in field("URIs").unwrap_or_default().split_whitespace() {
            if is_http(uri) {
                sources.push(Source {
                    uri: uri.trim_end_matches('/').to_string(),
                    suites: suites.clone(),
                });
            }
        }
    }
    sources
}

/// The URI of the first source that serves one of `codenames` as a suite of its own (a
/// mirror of that vendor's main archive, not its security or updates suites).
pub(crate) fn mirror_of(sources: &[Source], codenames: &[&str]) -> Option<String> {
    sources
        .iter()
        .find(|source| {
            source
                .suites
                .iter()
                .any(|suite| codenames.contains(&suite.as_str()))
        })
        .map(|source| source.uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_give_the_main_archive() {
        let list = parse_one_line(
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n\
             deb http://m.example/debian-security bookworm-security main\n\
             deb-src http://m.example/debian bookworm main\n",
        );
        assert_eq!(
            list,
            vec![
                Source {
                    uri: "http://m.example/debian".into(),
                    suites: vec!["bookworm".into()]
                },
                Source {
                    uri: "http://m.example/debian-security".into(),
                    suites: vec!["bookworm-security".into()]
                },
            ]
        );
        let deb822 = parse_deb822(
            "Types: deb\nURIs: http://s.example/debian-security\nSuites: bookworm-security\n\n\
             Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: trixie\n\n\
             Types: deb deb-src\nURIs: https://m.example/debian\nSuites: bookworm bookworm-updates\n",
        );
        let debian = ["bookworm", "trixie"];
        assert_eq!(
            mirror_of(&deb822, &debian).as_deref(),
            Some("https://m.example/debian")
        );
        assert_eq!(mirror_of(&list, &["noble", "jammy"]), None);
    }
}
