//! The one output channel: data goes to stdout, everything else to stderr, shaped by
//! `--quiet`, `--format` and whether stderr is a terminal (progress bars only then).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};

/// How results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables and sentences for people.
    Text,
    /// One JSON document, for scripts and configuration management.
    Json,
}

/// A defect in debstage itself rather than in the user's input or environment (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("internal error (a bug in debstage, please report it): {0}")]
pub struct InternalError(pub String);

/// Prints results, messages and progress for one command.
///
/// With `--format json` stderr carries exactly one JSON object or nothing: progress
/// messages are left out (the document on stdout says what was done), and warnings are
/// kept to go into that object (the error object, or `{"warnings": [...]}` after a
/// success, see [`Reporter::finish`]).
#[derive(Debug, Clone)]
pub struct Reporter {
    quiet: bool,
    format: Format,
    terminal: bool,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl Reporter {
    /// A reporter for the given `--quiet` and `--format` flags.
    pub fn new(quiet: bool, format: Format) -> Self {
        Reporter {
            quiet,
            format,
            terminal: std::io::stderr().is_terminal(),
            warnings: Arc::default(),
        }
    }

    /// A reporter that prints nothing but errors, for library callers and tests.
    pub fn silent() -> Self {
        Reporter {
            quiet: true,
            format: Format::Text,
            terminal: false,
            warnings: Arc::default(),
        }
    }

    /// A progress message on stderr ("Building shop 1.4.2"), unless quiet.
    pub fn status(&self, message: impl AsRef<str>) {
        if !self.quiet && self.format == Format::Text {
            eprintln!("{}", message.as_ref());
        }
    }

    /// A warning on stderr; shown even when quiet. With `--format json` it is kept for
    /// the one object stderr gets at the end.
    pub fn warn(&self, message: impl AsRef<str>) {
        if self.format == Format::Json {
            if let Ok(mut warnings) = self.warnings.lock() {
                warnings.push(message.as_ref().to_string());
            }
            return;
        }
        eprintln!("warning: {}", message.as_ref());
    }

    /// The warnings kept so far (`--format json`).
    fn kept_warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .map(|warnings| warnings.clone())
            .unwrap_or_default()
    }

    /// After a command that succeeded: with `--format json`, the warnings it gave as one
    /// object on stderr (`{"schema_version": 1, "warnings": [...]}`), if there were any.
    pub fn finish(&self) {
        let warnings = self.kept_warnings();
        if self.format == Format::Json && !warnings.is_empty() {
            eprintln!(
                "{}",
                serde_json::json!({"schema_version": SCHEMA_VERSION, "warnings": warnings})
            );
        }
    }

    /// The final error of a command on stderr: a line with its chain of causes, or with
    /// `--format json` one JSON object (`kind`, `message`, `causes`, and `file` and `key`
    /// when the error points at a value of a file).
    pub fn error(
        &self,
        error: &anyhow::Error,
        failure: Failure,
        location: Option<(String, String)>,
    ) {
        if self.format == Format::Json {
            let causes: Vec<String> = error.chain().skip(1).map(ToString::to_string).collect();
            let mut object = serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "error": {"kind": failure, "message": error.to_string(), "causes": causes},
            });
            if let Some((file, key)) = location {
                object["error"]["file"] = file.into();
                object["error"]["key"] = key.into();
            }
            let warnings = self.kept_warnings();
            if !warnings.is_empty() {
                object["warnings"] = warnings.into();
            }
            eprintln!("{object}");
            return;
        }
        let mut text = format!("error: {error}");
        for cause in error.chain().skip(1) {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
        eprintln!("{text}");
    }

    /// A command line that was refused, as the error object (`kind` `input`): its
    /// first line is the message, the usage and hint lines that follow are the causes.
    pub fn usage_error(&self, rendered: &str) {
        let mut lines = rendered
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty());
        let message = lines
            .next()
            .map(|line| line.trim_start_matches("error:").trim().to_string())
            .unwrap_or_else(|| "the command line is not valid".to_string());
        let causes: Vec<String> = lines.map(ToString::to_string).collect();
        eprintln!(
            "{}",
            serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "error": {"kind": Failure::Input, "message": message, "causes": causes},
            })
        );
    }

    /// Whether results are printed as JSON (`--format json`), for the few commands whose
    /// text output is a file's bytes rather than a text block.
    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Data for stdout: a text block or a JSON document, as `--format` says. The document
    /// is one JSON object (lists go under a named key); it gets `"schema_version"` here,
    /// so every command's output carries it (docs/json.md).
    pub fn data(&self, text: impl AsRef<str>, json: &serde_json::Value) -> std::io::Result<()> {
        let json = versioned(json)?;
        let json = &json;
        let mut out = std::io::stdout().lock();
        match self.format {
            Format::Text => {
                let text = text.as_ref();
                out.write_all(text.as_bytes())?;
                if !text.is_empty() && !text.ends_with('\n') {
                    out.write_all(b"\n")?;
                }
            }
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, json)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    }

    /// Raw text for stdout whatever the format (a key, a sources file).
    pub fn raw(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// A progress bar over `total` bytes, drawn only when stderr is a terminal and the
    /// command is not quiet.
    pub fn progress_bytes(&self, total: u64, message: &str) -> ProgressBar {
        if self.quiet || !self.terminal || self.format == Format::Json {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        bar
    }

    /// A progress bar over `total` steps, drawn only when stderr is a terminal.
    pub fn progress(&self, total: u64, message: &str) -> ProgressBar {
        if self.quiet || !self.terminal || self.format == Format::Json {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        bar
    }
}

/// The version of the JSON contract (docs/json.md) that every JSON document on stdout and
/// every error object on stderr carries as `"schema_version"`.
pub const SCHEMA_VERSION: u64 = 1;

/// `document` with `"schema_version"` added; anything but an object is a bug in debstage.
fn versioned(document: &serde_json::Value) -> std::io::Result<serde_json::Value> {
    let serde_json::Value::Object(fields) = document else {
        return Err(std::io::Error::other(InternalError(format!(
            "a JSON output must be one object, not {document}"
        ))));
    };
    let mut fields = fields.clone();
    fields.insert("schema_version".to_string(), SCHEMA_VERSION.into());
    Ok(serde_json::Value::Object(fields))
}

/// True when the error is a closed stdout (`debstage repo list | head`), which is success.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// What kind of failure ended a command; each has its own exit code, so that scripts and
/// configuration management can act on it without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The user's input or environment (exit code 1).
    Input,
    /// A bug in debstage (exit code 2).
    Bug,
    /// Another writer held the repository's lock past `--lock-timeout` (exit code 3).
    LockHeld,
    /// A package is already in the repository with other bytes (exit code 4).
    Conflict,
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Failure::Input => 1,
            Failure::Bug => 2,
            Failure::LockHeld => 3,
            Failure::Conflict => 4,
        }
    }
}

/// Whether the error is a bug in debstage (also when an I/O error carries it, as
/// [`Reporter::data`]'s do).
pub fn is_bug(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<InternalError>().is_some()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| inner.is::<InternalError>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_the_schema_version_and_must_be_objects() {
        let document = versioned(&serde_json::json!({"packages": []})).expect("object");
        assert_eq!(
            document,
            serde_json::json!({"schema_version": 1, "packages": []})
        );
        let error = versioned(&serde_json::json!([1])).expect_err("an array is refused");
        assert!(is_bug(&anyhow::Error::new(error)));
    }
}
