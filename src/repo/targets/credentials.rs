//! Credentials from the AWS profile files (`~/.aws/credentials`, or
//! `AWS_SHARED_CREDENTIALS_FILE`; the profile `AWS_PROFILE` or `default`), for a writer
//! whose environment has no `AWS_ACCESS_KEY_ID`.
//!
//! Written here because `object_store` 0.14 reads only the environment and the instance
//! metadata, and the AWS SDK's profile crate would bring a second HTTP stack; the file is
//! a plain INI file of three keys.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// The keys of one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProfileCredentials {
    /// `aws_access_key_id`.
    pub(crate) access_key_id: String,
    /// `aws_secret_access_key`.
    pub(crate) secret_access_key: String,
    /// `aws_session_token`, when present.
    pub(crate) session_token: Option<String>,
}

/// The credentials of the selected profile, `None` when there is no file or no such
/// profile (the store then answers with its own error).
pub(crate) fn from_profile_files() -> Result<Option<ProfileCredentials>> {
    let path = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(path) => PathBuf::from(path),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".aws/credentials"),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("{}: cannot be read", path.display()))
        }
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_string());
    Ok(parse(&text, &profile))
}

/// The credentials of `profile` in the text of a credentials file.
fn parse(text: &str, profile: &str) -> Option<ProfileCredentials> {
    let mut in_profile = false;
    let mut access_key_id = None;
    let mut secret_access_key = None;
    let mut session_token = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            in_profile = section.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim().to_string();
            match key.trim() {
                "aws_access_key_id" => access_key_id = Some(value),
                "aws_secret_access_key" => secret_access_key = Some(value),
                "aws_session_token" => session_token = Some(value),
                _ => {}
            }
        }
    }
    Some(ProfileCredentials {
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        session_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_profile() {
        let text = "# comment\n[default]\naws_access_key_id = A\naws_secret_access_key=B\n\n\
                    [ci]\naws_access_key_id = C\naws_secret_access_key = D\naws_session_token = E\n";
        let default = parse(text, "default").expect("default");
        assert_eq!(default.access_key_id, "A");
        assert_eq!(default.secret_access_key, "B");
        assert_eq!(default.session_token, None);
        let ci = parse(text, "ci").expect("ci");
        assert_eq!(ci.session_token.as_deref(), Some("E"));
        assert_eq!(parse(text, "absent"), None);
        assert_eq!(parse("[default]\naws_access_key_id = A\n", "default"), None);
    }
}
