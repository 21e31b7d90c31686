//! Renders the maintainer scripts, the systemd unit, the apt pin file and the package
//! documents from `templates/`, which are compiled into the binary.
//!
//! Each template gets a small typed context. Every value that reaches a shell script is
//! checked when the manifest is loaded ([`crate::naming::rules`]) and single-quoted here as well.

use std::sync::OnceLock;

use anyhow::{Context, Result};
use handlebars::Handlebars;
use serde::Serialize;

use crate::build::manifest::{CommandLine, LoadedManifest};
use crate::naming::rules::{expand_placeholders, shell_quote};

const TEMPLATES: &[(&str, &str)] = &[
    (
        "stage-postinst",
        include_str!("../../templates/stage-postinst.hbs"),
    ),
    (
        "environment-file-reader",
        include_str!("../../templates/environment-file-reader.hbs"),
    ),
    (
        "stage-prerm",
        include_str!("../../templates/stage-prerm.hbs"),
    ),
    (
        "stage-postrm",
        include_str!("../../templates/stage-postrm.hbs"),
    ),
    (
        "payload-postinst",
        include_str!("../../templates/payload-postinst.hbs"),
    ),
    (
        "payload-postrm",
        include_str!("../../templates/payload-postrm.hbs"),
    ),
    ("unit", include_str!("../../templates/unit.service.hbs")),
    ("pin", include_str!("../../templates/pin.hbs")),
    ("copyright", include_str!("../../templates/copyright.hbs")),
    ("changelog", include_str!("../../templates/changelog.hbs")),
    (
        "lintian-overrides",
        include_str!("../../templates/lintian-overrides.hbs"),
    ),
];

fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = Handlebars::new();
        // Scripts are not HTML, and a missing value must be an error, never an empty string.
        registry.register_escape_fn(handlebars::no_escape);
        registry.set_strict_mode(true);
        for (name, text) in TEMPLATES {
            if let Err(error) = registry.register_template_string(name, *text) {
                // The templates are compiled in; a broken one is caught by the unit tests.
                panic!("template {name} does not parse: {error}");
            }
        }
        registry
    })
}

/// Renders one template with a context.
pub(crate) fn render(template: &str, context: &impl Serialize) -> Result<String> {
    registry()
        .render(template, context)
        .with_context(|| format!("rendering template {template}"))
}

/// Quotes each word of a command line for sh.
fn quote_command(command: &CommandLine, expand: &dyn Fn(&str) -> String) -> String {
    std::iter::once(command.program.clone())
        .chain(command.arguments.iter().map(|word| expand(word)))
        .map(|word| shell_quote(&word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the stage package's scripts and unit need to know.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StageContext {
    /// The stage package (`shop-production`).
    pub(crate) package: String,
    /// The payload package it depends on (`shop-1.4.2`).
    pub(crate) payload: String,
    /// The application.
    pub(crate) app: String,
    /// The stage.
    pub(crate) stage: String,
    /// The stage's suite for the build's distribution (`bookworm-production`), the
    /// stage's own name for a build on the host: the Codename the apt pin names.
    pub(crate) suite: String,
    /// The upstream version (the release directory's name).
    pub(crate) version: String,
    /// `/opt/<app>/<stage>`.
    pub(crate) link: String,
    /// The unit's Description.
    pub(crate) description: String,
    /// The service user, if any.
    pub(crate) user: Option<String>,
    /// The unit's ExecStart line.
    pub(crate) exec_start: String,
    /// The activation hook, quoted for sh, relative to the release directory ("" if none).
    pub(crate) hook: String,
    /// The health check, quoted for sh ("" if none).
    pub(crate) health: String,
    /// Seconds the health check may take.
    pub(crate) health_timeout: u32,
    /// Milliseconds the unit must stay up after a restart before the health check.
    pub(crate) settle_milliseconds: u64,
    /// How many releases the stage pointed to before stay safe from autoremove.
    pub(crate) keep: u32,
    q_app: String,
    q_package_version: String,
    q_apt_keep_file: String,
    q_stage: String,
    q_version: String,
    q_base_dir: String,
    q_state_dir: String,
    q_metrics_file: String,
    q_unit: String,
}

impl StageContext {
    /// The context for one stage of a manifest.
    pub(crate) fn new(manifest: &LoadedManifest, stage: &str) -> Self {
        let release = manifest.names();
        let names = release.app();
        let app = names.app().to_string();
        let link = names.stage_link(stage);
        let service = manifest.manifest.service.as_ref();
        let unit = service.map(|_| names.unit_name(stage)).unwrap_or_default();
        let release_dir = release.release_dir();
        let expand = |word: &str| expand_placeholders(word, stage, &manifest.version, &release_dir);
        let exec_start = manifest
            .service_command
            .as_ref()
            .map(|command| {
                let program = if command.program.starts_with('/') {
                    command.program.clone()
                } else {
                    format!("{link}/{}", command.program)
                };
                std::iter::once(program)
                    .chain(command.arguments.iter().map(|word| expand(word)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let synopsis = manifest
            .manifest
            .package
            .description
            .lines()
            .next()
            .unwrap_or("")
            .trim();
        StageContext {
            package: names.stage_package(stage),
            payload: release.payload_package(),
            stage: stage.to_string(),
            suite: crate::naming::distribution::suite_of(release.distribution(), stage),
            version: manifest.version.clone(),
            description: format!("{} ({stage})", synopsis.replace('%', "%%")),
            user: service.and_then(|service| service.user.clone()),
            exec_start,
            hook: manifest
                .activate_hook
                .as_ref()
                .map(|command| quote_command(command, &expand))
                .unwrap_or_default(),
            health: manifest
                .health_command
                .as_ref()
                .map(|command| quote_command(command, &expand))
                .unwrap_or_default(),
            health_timeout: service
                .and_then(|service| service.health.as_ref())
                .map_or(30, |health| health.timeout),
            settle_milliseconds: service.map_or(0, |service| service.settle_milliseconds()),
            keep: manifest.manifest.stages.keep,
            q_app: shell_quote(&app),
            q_package_version: shell_quote(&release.debian_version()),
            // apt reads every file here; the name sorts after Debian's 01autoremove.
            q_apt_keep_file: shell_quote(&names.apt_keep_file(stage)),
            q_stage: shell_quote(stage),
            q_version: shell_quote(&manifest.version),
            q_base_dir: shell_quote(&names.base_dir()),
            q_state_dir: shell_quote(&names.state_dir()),
            q_metrics_file: shell_quote(&names.metrics_file(stage)),
            q_unit: shell_quote(&unit),
            link,
            app,
        }
    }
}

/// What the payload's scripts need to know.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PayloadContext {
    /// The payload package.
    pub(crate) package: String,
    q_release_dir: String,
    q_base_dir: String,
    q_user: String,
}

impl PayloadContext {
    /// The context for a manifest's payload.
    pub(crate) fn new(manifest: &LoadedManifest) -> Self {
        let user = manifest
            .manifest
            .service
            .as_ref()
            .and_then(|service| service.user.clone());
        let release = manifest.names();
        PayloadContext {
            package: release.payload_package(),
            q_release_dir: shell_quote(&release.release_dir()),
            q_base_dir: shell_quote(&release.app().base_dir()),
            q_user: shell_quote(user.as_deref().unwrap_or("")),
        }
    }
}

/// What the copyright and changelog files say.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DocumentContext {
    /// The package the documents belong to.
    pub(crate) package: String,
    /// The application.
    pub(crate) app: String,
    /// The upstream version.
    pub(crate) version: String,
    /// The package version.
    pub(crate) debian_version: String,
    /// The changelog's distribution field.
    pub(crate) distribution: String,
    /// The Maintainer field.
    pub(crate) maintainer: String,
    /// The license.
    pub(crate) license: String,
    /// The home page, if any.
    pub(crate) homepage: Option<String>,
    /// The changelog date (RFC 2822).
    pub(crate) date: String,
    /// The copyright year.
    pub(crate) year: String,
}

/// The lintian overrides file of a package.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OverridesContext {
    /// The package.
    pub(crate) package: String,
    /// Tags raised by design.
    pub(crate) tags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        assert_eq!(registry().get_templates().len(), TEMPLATES.len());
    }

    /// Reads `content` as an environment file with the stage scripts' reader (run by the
    /// host's `sh` and `awk`, as on a server), and sets the variables in a clean `sh`:
    /// the variables and their values, or the error the reader printed.
    fn read_environment(content: &[u8]) -> Result<Vec<(String, String)>, String> {
        let directory = tempfile::tempdir().expect("temporary directory");
        let reader = directory.path().join("reader.sh");
        let text = render("environment-file-reader", &serde_json::json!({})).expect("renders");
        std::fs::write(&reader, text).expect("write the reader");
        let file = directory.path().join("stage.env");
        std::fs::write(&file, content).expect("write the environment file");
        let driver = "log() { printf '%s\\n' \"$*\" >&2; }\n\
                      . \"$1\"\n\
                      text=$(read_environment_file \"$2\") || exit 3\n\
                      eval \"$text\"\n\
                      exec env -0\n";
        let output = std::process::Command::new("env")
            .args(["-i", "PATH=/usr/bin:/bin", "sh", "-c", driver, "sh"])
            .arg(&reader)
            .arg(&file)
            .output()
            .expect("run sh");
        let errors = String::from_utf8_lossy(&output.stderr)
            .replace(&file.display().to_string(), "stage.env");
        if !output.status.success() {
            return Err(errors.trim_end().to_string());
        }
        assert!(errors.is_empty(), "{errors}");
        Ok(output
            .stdout
            .split(|byte| *byte == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let entry = String::from_utf8_lossy(entry);
                let (name, value) = entry.split_once('=').expect("NAME=value");
                (name.to_string(), value.to_string())
            })
            .filter(|(name, _)| name != "PATH" && name != "PWD")
            .collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| ((*name).to_string(), (*value).to_string()))
            .collect()
    }

    #[test]
    fn environment_files_are_read_with_the_rules_of_systemd() {
        // Each case with the value systemd 252 gives (src/basic/env-file.c); the end-to-end
        // test compares a file of such lines with what a real unit gets.
        let content = concat!(
            "# a comment\n",
            "  ; another comment\n",
            "PLAIN=hello world   \n",
            "SPACED = spaced value\n",
            "SINGLE='single $HOME `date` \"x\" \\n'\n",
            "DOUBLE=\"double \\\"q\\\" \\\\ \\$HOME \\` \\n \\a\"\n",
            "MIXED=\"a\"'b'c d\n",
            "ESCAPED=a\\ b\\$c\\\\d\\#e\n",
            "HASH=value # not a comment\n",
            "JOINED=one\\\ntwo\n",
            "LINES=\"line1\nline2\"\n",
            "EMPTY=\n",
            "COMMAND=$(id -u)\n",
            "BACKTICK=`id -u`\n",
            "QUOTE='it'\"'\"'s'\n",
            "CRLF=dos\r\n",
            "PLAIN=again, the last one wins\n",
            "LAST=no newline at the end",
        );
        let mut found = read_environment(content.as_bytes()).expect("a valid file");
        found.sort();
        let mut expected = pairs(&[
            ("PLAIN", "again, the last one wins"),
            ("SPACED", "spaced value"),
            ("SINGLE", "single $HOME `date` \"x\" \\n"),
            ("DOUBLE", "double \"q\" \\ $HOME ` \\n \\a"),
            ("MIXED", "abc d"),
            ("ESCAPED", "a b$c\\d#e"),
            ("HASH", "value # not a comment"),
            ("JOINED", "onetwo"),
            ("LINES", "line1\nline2"),
            ("EMPTY", ""),
            ("COMMAND", "$(id -u)"),
            ("BACKTICK", "`id -u`"),
            ("QUOTE", "it's"),
            ("CRLF", "dos"),
            ("LAST", "no newline at the end"),
        ]);
        expected.sort();
        assert_eq!(found, expected);
        assert_eq!(read_environment(b""), Ok(Vec::new()));
        assert_eq!(read_environment(b"# only a comment\n\n"), Ok(Vec::new()));
    }

    #[test]
    fn environment_file_lines_systemd_would_not_take_are_errors_naming_the_line() {
        let cases: &[&[u8]] = &[
            b"GOOD=1\nexport BAD=1\n",
            b"A-B=1\n",
            b"1A=1\n",
            b"GOOD=1\n\nJUST A WORD\n",
            b"GOOD=1\nOPEN=\"never closed\nNEXT=2\n",
            b"# a comment that ends with \\\nHIDDEN=1\n",
            b"GOOD=1\nLATIN1=caf\xe9\n",
        ];
        let report = cases
            .iter()
            .map(|content| {
                let shown = String::from_utf8_lossy(content).replace('\n', "\\n");
                match read_environment(content) {
                    Ok(found) => format!("{shown}\n  accepted: {found:?}"),
                    Err(error) => format!("{shown}\n  {error}"),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        insta::assert_snapshot!(report);
    }

    #[test]
    fn a_missing_value_is_an_error() {
        assert!(render("pin", &serde_json::json!({ "package": "x" })).is_err());
        let text = render(
            "pin",
            &serde_json::json!({ "package": "shop-production", "suite": "production" }),
        )
        .expect("renders");
        assert!(text.contains("Pin: release n=production\nPin-Priority: 1001\n"));
    }
}
