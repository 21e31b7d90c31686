//! Rules for the names and values that reach package fields, paths and maintainer scripts.
//!
//! Everything a maintainer script or unit receives passes one of these checks at build
//! time, so no value can break out of its quotes on a server.

/// Checks a stage name: `[a-z][a-z0-9-]*`, at most 32 characters. Stage names become
/// suite names, unit names, link names and file names.
pub(crate) fn check_stage_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err("must match [a-z][a-z0-9-]* (at most 32 characters, not ending in '-')".to_string())
    }
}

/// Checks a list of stages in promotion order: at least one, each a valid stage name
/// ([`check_stage_name`]), none twice. The manifest and the repository use this one rule.
pub(crate) fn check_stage_list(stages: &[String]) -> Result<(), String> {
    if stages.is_empty() {
        return Err("must list at least one stage".to_string());
    }
    for (index, stage) in stages.iter().enumerate() {
        check_stage_name(stage).map_err(|message| format!("{stage:?}: {message}"))?;
        if stages[..index].contains(stage) {
            return Err(format!("{stage:?} is listed twice"));
        }
    }
    Ok(())
}

/// Checks a path relative to the release directory (a hook, a health check):
/// `[A-Za-z0-9._/+-]`, no `..` component, not absolute.
pub(crate) fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".to_string());
    }
    if path.starts_with('/') {
        return Err("must be relative to the release directory (no leading '/')".to_string());
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/+-".contains(c))
    {
        return Err("may contain only letters, digits and . _ / + -".to_string());
    }
    if path.split('/').any(|part| part == ".." || part.is_empty()) {
        return Err("must not contain '..' or empty components".to_string());
    }
    Ok(())
}

/// Checks an absolute path on the server (an extra file's destination):
/// `/[A-Za-z0-9._/+-]`, no `..` component.
pub(crate) fn check_absolute_path(path: &str) -> Result<(), String> {
    match path.strip_prefix('/') {
        Some(rest) => check_relative_path(rest),
        None => Err("must be an absolute path starting with '/'".to_string()),
    }
}

/// Checks a system user or group name: `[a-z_][a-z0-9_-]*`, at most 32 characters.
pub(crate) fn check_user_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    if valid {
        Ok(())
    } else {
        Err("must match [a-z_][a-z0-9_-]* (at most 32 characters)".to_string())
    }
}

/// Checks free text that ends up in a control field or a unit line: one line, no control
/// characters.
pub(crate) fn check_single_line(text: &str) -> Result<(), String> {
    if let Some(bad) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "must be one line without control characters (found {bad:?})"
        ));
    }
    Ok(())
}

/// Checks one word of a command line that a script or unit runs: printable, no quotes,
/// backslashes, `$`, backticks or `%` (which systemd would expand).
pub(crate) fn check_command_word(word: &str) -> Result<(), String> {
    check_single_line(word)?;
    let mut rest = word.to_string();
    for placeholder in PLACEHOLDERS {
        rest = rest.replace(placeholder, "");
    }
    if let Some(bad) = rest.chars().find(|c| "'\"\\$`%;&|<>(){}*?!#".contains(*c)) {
        return Err(format!(
            "has the character {bad:?}; command words may not contain quotes, backslashes or \
             shell operators (the placeholders {} are allowed)",
            PLACEHOLDERS.join(", ")
        ));
    }
    Ok(())
}

/// The placeholders a command word may hold (the service command, the health check, the
/// activation hook): each stage package replaces them with its stage, the release's
/// upstream version and its release directory, values that pass these rules themselves.
pub(crate) const PLACEHOLDERS: [&str; 3] = ["{stage}", "{version}", "{release_dir}"];

/// Replaces the [`PLACEHOLDERS`] in a command word.
pub(crate) fn expand_placeholders(
    word: &str,
    stage: &str,
    version: &str,
    release_dir: &str,
) -> String {
    word.replace("{stage}", stage)
        .replace("{version}", version)
        .replace("{release_dir}", release_dir)
}

/// Quotes a value for POSIX sh with single quotes.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names() {
        assert!(check_stage_name("production").is_ok());
        assert!(check_stage_name("qa-2").is_ok());
        for bad in ["Prod", "1st", "a_b", "a-", "a b", "", "a.b"] {
            assert!(check_stage_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert!(check_relative_path("hooks/activate").is_ok());
        for bad in ["/abs", "../x", "a/../b", "a b", "a;b", "a//b", "$(x)"] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
        assert!(check_absolute_path("/etc/x").is_ok());
        assert!(check_absolute_path("etc/x").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert!(check_command_word("--port=8080").is_ok());
        assert!(check_command_word("$(rm -rf /)").is_err());
        assert!(check_command_word("--config={release_dir}/etc/{stage}.toml").is_ok());
        assert!(check_command_word("{stage").is_err());
        assert!(check_command_word("{home}").is_err());
        assert_eq!(
            expand_placeholders(
                "--dir={release_dir}/{stage}-{version}",
                "test",
                "1.0",
                "/opt/a/1.0"
            ),
            "--dir=/opt/a/1.0/test-1.0"
        );
        assert!(check_command_word("a\nb").is_err());
    }
}
