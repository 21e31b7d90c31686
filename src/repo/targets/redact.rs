//! Keeps secrets written into a target's URLs out of every message: the userinfo of a
//! URL (`https://KEY:SECRET@host`) and the values of its query (`?X-Amz-Signature=...`)
//! are replaced by `***`, in the target's description and in the store client's errors,
//! which echo the request URL.

/// What a secret is replaced by.
const HIDDEN: &str = "***";

/// `text` with the userinfo and query values of every URL in it replaced by `***`.
pub(crate) fn redact(text: &str) -> String {
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let (before, after) = rest.split_at(found + "://".len());
        redacted.push_str(before);
        let end = after.find(ends_url).unwrap_or(after.len());
        let (url, remainder) = after.split_at(end);
        redacted.push_str(&redact_url(url));
        rest = remainder;
    }
    redacted.push_str(rest);
    redacted
}

/// The characters that end a URL inside a message (quotes of `{:?}`, parentheses,
/// whitespace and control characters).
fn ends_url(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '(' | ')' | '<' | '>' | '`')
}

/// One URL without its scheme: `user:secret@host/path?key=value#fragment`.
fn redact_url(url: &str) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, path) = url.split_at(authority_end);
    let mut redacted = match authority.rfind('@') {
        Some(at) => format!("{HIDDEN}{}", &authority[at..]),
        None => authority.to_string(),
    };
    let (path, fragment) = match path.find('#') {
        Some(hash) => path.split_at(hash),
        None => (path, ""),
    };
    match path.split_once('?') {
        Some((path, query)) => {
            redacted.push_str(path);
            redacted.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) => format!("{name}={HIDDEN}"),
                    None if pair.is_empty() => String::new(),
                    None => HIDDEN.to_string(),
                })
                .collect();
            redacted.push_str(&pairs.join("&"));
        }
        None => redacted.push_str(path),
    }
    redacted.push_str(fragment);
    redacted
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_userinfo() {
        assert_eq!(
            redact("prod (s3://apt/repo at https://AKIA1:s3cr3t@store.example:9000)"),
            "prod (s3://apt/repo at https://***@store.example:9000)"
        );
        assert_eq!(
            redact("error sending request for url (http://KEY@127.0.0.1:9/apt/x)"),
            "error sending request for url (http://***@127.0.0.1:9/apt/x)"
        );
        // A password holding '@' hides up to the last one, which ends the userinfo.
        assert_eq!(redact("https://a:b@c@host/p"), "https://***@host/p");
    }

    #[test]
    fn hides_query_values_and_keeps_their_names() {
        assert_eq!(
            redact("url \"https://host/b/k?X-Amz-Credential=AKIA&X-Amz-Signature=abc123\" failed"),
            "url \"https://host/b/k?X-Amz-Credential=***&X-Amz-Signature=***\" failed"
        );
        assert_eq!(redact("https://host/?token#top"), "https://host/?***#top");
    }

    #[test]
    fn leaves_text_without_secrets_alone() {
        for text in [
            "",
            "no url here",
            "prod (s3://apt/repo at http://127.0.0.1:9000)",
            "publish target prod: dists/test/InRelease cannot be written: 503",
            "user@example.com wrote s3://bucket",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn hides_secrets_in_every_url_of_a_message() {
        // A URL ends at whitespace: the comma goes with the hidden value, not the secret.
        let text = "s3://K:S@bucket/p at https://K:S@h?sig=S, then http://h2/?a=S";
        let redacted = redact(text);
        assert!(!redacted.contains('S'), "{redacted}");
        assert_eq!(
            redacted,
            "s3://***@bucket/p at https://***@h?sig=*** then http://h2/?a=***"
        );
    }
}
