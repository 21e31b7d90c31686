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

/// Where a store client's credentials came from, for messages: the source and the
/// access key ID, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID` (and `AWS_SECRET_ACCESS_KEY`) in the environment.
    Environment {
        /// The access key ID.
        access_key_id: String,
    },
    /// A profile of a credentials file.
    Profile {
        /// The file read.
        file: PathBuf,
        /// The profile's name.
        profile: String,
        /// The access key ID it holds.
        access_key_id: String,
    },
    /// Neither: the client goes on to the instance metadata, or sends no signature.
    None {
        /// The credentials file looked at, if any.
        file: Option<PathBuf>,
        /// The profile looked for.
        profile: String,
    },
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Environment { access_key_id } => write!(
                formatter,
                "AWS_ACCESS_KEY_ID {access_key_id} and AWS_SECRET_ACCESS_KEY from the environment"
            ),
            CredentialSource::Profile {
                file,
                profile,
                access_key_id,
            } => write!(
                formatter,
                "profile [{profile}] of {} (aws_access_key_id {access_key_id})",
                file.display()
            ),
            CredentialSource::None { file, profile } => {
                write!(
                    formatter,
                    "none (no AWS_ACCESS_KEY_ID in the environment, no profile [{profile}] "
                )?;
                match file {
                    Some(file) => write!(formatter, "in {})", file.display()),
                    None => write!(formatter, "file: HOME is not set)"),
                }
            }
        }
    }
}

/// The credentials a writer uses: the environment's when it has `AWS_ACCESS_KEY_ID`
/// (read by the client itself), else the selected profile's, with where they came from.
pub(crate) fn select() -> Result<(Option<ProfileCredentials>, CredentialSource)> {
    if let Some(access_key_id) = std::env::var_os("AWS_ACCESS_KEY_ID") {
        let source = CredentialSource::Environment {
            access_key_id: access_key_id.to_string_lossy().into_owned(),
        };
        return Ok((None, source));
    }
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_string());
    let file = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(path) => Some(PathBuf::from(path)),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".aws/credentials")),
    };
    let Some(file) = file else {
        return Ok((None, CredentialSource::None { file, profile }));
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let source = CredentialSource::None {
                file: Some(file),
                profile,
            };
            return Ok((None, source));
        }
        Err(error) => {
            return Err(error).with_context(|| format!("{}: cannot be read", file.display()))
        }
    };
    match parse(&text, &profile) {
        Some(found) => {
            let source = CredentialSource::Profile {
                file,
                profile,
                access_key_id: found.access_key_id.clone(),
            };
            Ok((Some(found), source))
        }
        None => Ok((
            None,
            CredentialSource::None {
                file: Some(file),
                profile,
            },
        )),
    }
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

    #[test]
    fn a_source_names_where_the_key_came_from_never_the_secret() {
        let file = PathBuf::from("/home/ci/.aws/credentials");
        assert_eq!(
            CredentialSource::Environment {
                access_key_id: "AKIA1".into()
            }
            .to_string(),
            "AWS_ACCESS_KEY_ID AKIA1 and AWS_SECRET_ACCESS_KEY from the environment"
        );
        assert_eq!(
            CredentialSource::Profile {
                file: file.clone(),
                profile: "ci".into(),
                access_key_id: "AKIA2".into()
            }
            .to_string(),
            "profile [ci] of /home/ci/.aws/credentials (aws_access_key_id AKIA2)"
        );
        assert_eq!(
            CredentialSource::None {
                file: Some(file),
                profile: "default".into()
            }
            .to_string(),
            "none (no AWS_ACCESS_KEY_ID in the environment, no profile [default] in \
             /home/ci/.aws/credentials)"
        );
    }
}
