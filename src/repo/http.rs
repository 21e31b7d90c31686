//! The few pieces of HTTP/1.1 that `repo serve` speaks: reading a request head, the
//! `Range` header (one range of bytes), HTTP dates (`Last-Modified`,
//! `If-Modified-Since`), and the `Content-Type` of a published file, which publish
//! targets give their objects too. Pure functions over bytes and numbers; the sockets,
//! files and the policy of what is served live in [`serve`](super::serve).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The `Content-Type` of a published file, from its path (`/`-separated, relative to
/// the repository) and its first bytes: a by-hash file's name says nothing of its
/// content, which is an index, plain, gzip or xz.
pub(crate) fn content_type(path: &str, start: &[u8]) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let by_hash = path.contains("/by-hash/");
    if [".deb", ".udeb", ".ddeb"]
        .iter()
        .any(|extension| name.ends_with(extension))
    {
        "application/vnd.debian.binary-package"
    } else if name.ends_with(".gz") || (by_hash && start.starts_with(b"\x1f\x8b")) {
        "application/gzip"
    } else if name.ends_with(".xz") || (by_hash && start.starts_with(b"\xfd7zXZ\x00")) {
        "application/x-xz"
    } else if name == "Release.gpg" {
        "application/pgp-signature"
    } else if name.ends_with(".asc") || name.ends_with(".gpg") {
        "application/pgp-keys"
    } else if by_hash || matches!(name, "Release" | "InRelease" | "Packages") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

/// The largest request head accepted: apt's requests are a few hundred bytes.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// The most header fields one request may carry.
const MAX_FIELDS: usize = 64;

/// One parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// `GET`, `HEAD`, ... as sent.
    pub(crate) method: String,
    /// The request target as sent (`/dists/test/InRelease`), still percent-encoded.
    pub(crate) target: String,
    /// `HTTP/1.0` keeps no connection alive unless asked; `HTTP/1.1` does unless told not to.
    pub(crate) keep_alive: bool,
    /// Bytes of body that follow the head (`Content-Length`), or `None` for a chunked one.
    pub(crate) body: Option<u64>,
    fields: Vec<(String, String)>,
}

impl Request {
    /// The value of the first field named `name` (case-insensitive), trimmed.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why a request head cannot be answered normally; each maps to one status.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Malformed (400).
    Bad,
    /// An HTTP version other than 1.0 and 1.1 (505).
    Version,
    /// Too large or too many fields (431).
    TooLarge,
}

/// The length of the head at the start of `buffer` (through its empty line), if it is
/// complete.
pub(crate) fn head_end(buffer: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buffer).find_map(|at| match buffer.get(at + 1..) {
        Some([b'\n', ..]) => Some(at + 2),
        Some([b'\r', b'\n', ..]) => Some(at + 3),
        _ => None,
    })
}

/// Parses a complete head (as found by [`head_end`]). Lines may end in CRLF or LF, as
/// RFC 9112 allows a recipient to accept.
pub(crate) fn parse_head(head: &[u8]) -> Result<Request, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Bad)?;
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let request_line = lines.next().ok_or(HeadError::Bad)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Bad);
    };
    if method.is_empty()
        || !method.bytes().all(|byte| byte.is_ascii_uppercase())
        || target.is_empty()
    {
        return Err(HeadError::Bad);
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ if version.starts_with("HTTP/") => return Err(HeadError::Version),
        _ => return Err(HeadError::Bad),
    };
    let mut fields = Vec::new();
    for line in lines.take_while(|line| !line.is_empty()) {
        // A line starting with white space continues the previous one (obs-fold), which
        // RFC 9112 lets a server reject.
        if line.starts_with([' ', '\t']) {
            return Err(HeadError::Bad);
        }
        let (name, value) = line.split_once(':').ok_or(HeadError::Bad)?;
        if name.is_empty() || name.bytes().any(|byte| !byte.is_ascii_graphic()) {
            return Err(HeadError::Bad);
        }
        if fields.len() == MAX_FIELDS {
            return Err(HeadError::TooLarge);
        }
        fields.push((
            name.to_string(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    let mut request = Request {
        method: method.to_string(),
        target: target.to_string(),
        keep_alive,
        body: Some(0),
        fields,
    };
    if let Some(connection) = request.field("Connection") {
        for option in connection.split(',').map(str::trim) {
            if option.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if option.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        }
    }
    request.keep_alive = keep_alive;
    let lengths: Vec<&str> = request
        .fields
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Content-Length"))
        .map(|(_, value)| value.as_str())
        .collect();
    if request.field("Transfer-Encoding").is_some() {
        // Both framings at once is how requests are smuggled: refuse it.
        if !lengths.is_empty() {
            return Err(HeadError::Bad);
        }
        request.body = None;
    } else if let Some(first) = lengths.first() {
        if lengths.iter().any(|length| length != first)
            || !first.bytes().all(|byte| byte.is_ascii_digit())
        {
            return Err(HeadError::Bad);
        }
        request.body = Some(first.parse().map_err(|_| HeadError::Bad)?);
    }
    Ok(request)
}

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable single range: answer with the whole file (200). Several ranges land
    /// here too, which RFC 9110 allows (a server may ignore `Range`).
    Whole,
    /// Bytes `start..end` (end exclusive) of the file (206).
    Part { start: u64, end: u64 },
    /// A well-formed range that lies beyond the end of the file (416).
    Unsatisfiable,
}

/// Reads a `Range` header value (`bytes=0-99`, `bytes=100-`, `bytes=-100`) against a
/// file of `length` bytes.
pub(crate) fn parse_range(value: &str, length: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        // A number too large for u64 is still a valid (huge) position.
        Some(text.parse().unwrap_or(u64::MAX))
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => RangeRequest::Whole,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if length == 0 => RangeRequest::Unsatisfiable,
            Some(suffix) => RangeRequest::Part {
                start: length.saturating_sub(suffix),
                end: length,
            },
        },
        (first, last) => {
            let Some(start) = number(first) else {
                return RangeRequest::Whole;
            };
            let end = if last.is_empty() {
                length
            } else {
                match number(last) {
                    Some(last) if last >= start => last.saturating_add(1).min(length),
                    // last < first is invalid syntax: ignore the header.
                    _ => return RangeRequest::Whole,
                }
            };
            if start >= length {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part { start, end }
            }
        }
    }
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Whole seconds since the epoch (HTTP dates have no finer resolution); times before
/// the epoch count as the epoch.
pub(crate) fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}

/// Formats a time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form
/// RFC 9110 requires a sender to use.
pub(crate) fn format_date(seconds: u64) -> String {
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
    let time = OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[usize::from(time.weekday().number_days_from_monday())],
        time.day(),
        MONTHS[usize::from(u8::from(time.month())) - 1],
        time.year(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// Reads an HTTP date in any of the three forms a recipient must accept (IMF-fixdate,
/// RFC 850, asctime) as seconds since the epoch; `None` when it is none of them, and
/// then the header it came from is ignored.
pub(crate) fn parse_date(text: &str) -> Option<u64> {
    let cleaned: String = text
        .chars()
        .map(|character| {
            if character == ',' || character == '-' {
                ' '
            } else {
                character
            }
        })
        .collect();
    let tokens: Vec<&str> = cleaned.split_whitespace().collect();
    let month = |name: &str| MONTHS.iter().position(|month| *month == name);
    let (day, month, year, clock) = match tokens.as_slice() {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        [_, day, month_name, year, clock, "GMT"] if year.len() == 4 => {
            (*day, month(month_name)?, year.parse::<i32>().ok()?, *clock)
        }
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (a two-digit year is taken as the
        // nearest past century, which is enough for file times).
        [_, day, month_name, year, clock, "GMT"] if year.len() == 2 => {
            let short = year.parse::<i32>().ok()?;
            let year = if short < 70 {
                2000 + short
            } else {
                1900 + short
            };
            (*day, month(month_name)?, year, *clock)
        }
        // asctime: Sun Nov  6 08:49:37 1994
        [_, month_name, day, clock, year] => {
            (*day, month(month_name)?, year.parse::<i32>().ok()?, *clock)
        }
        _ => return None,
    };
    let day: u8 = day.parse().ok()?;
    let month = Month::try_from(u8::try_from(month + 1).ok()?).ok()?;
    let mut clock = clock.split(':').map(|part| part.parse::<u8>().ok());
    let (Some(Some(hour)), Some(Some(minute)), Some(Some(second)), None) =
        (clock.next(), clock.next(), clock.next(), clock.next())
    else {
        return None;
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    let stamp = PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp();
    u64::try_from(stamp).ok()
}

/// The time left until `deadline`, or `None` once it has passed.
pub(crate) fn remaining(deadline: std::time::Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(std::time::Instant::now())
        .filter(|left| !left.is_zero())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn heads_are_parsed_with_their_framing() {
        let head = b"GET /dists/test/InRelease HTTP/1.1\r\nHost: x\r\nIf-Modified-Since:  Sun, 06 Nov 1994 08:49:37 GMT \r\n\r\n";
        assert_eq!(head_end(head), Some(head.len()));
        let request = parse_head(head).unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.target, "/dists/test/InRelease");
        assert!(request.keep_alive);
        assert_eq!(request.body, Some(0));
        assert_eq!(
            request.field("if-modified-since"),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        let request = parse_head(b"GET / HTTP/1.0\n\n").unwrap();
        assert!(!request.keep_alive);
        let request = parse_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!request.keep_alive);
        let request = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(request.body, Some(12));
        let request = parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(request.body, None);
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(
                parse_head(bad),
                Err(HeadError::Bad),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_head(b"GET / HTTP/2.0\r\n\r\n"),
            Err(HeadError::Version)
        );
        let many: String = (0..100).map(|index| format!("X-{index}: y\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse_head(many.as_bytes()), Err(HeadError::TooLarge));
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeRequest::{Part, Unsatisfiable, Whole};
        let part = |start, end| Part { start, end };
        assert_eq!(parse_range("bytes=0-99", 1000), part(0, 100));
        assert_eq!(parse_range("bytes=900-", 1000), part(900, 1000));
        assert_eq!(parse_range("bytes=900-5000", 1000), part(900, 1000));
        assert_eq!(parse_range("bytes=-100", 1000), part(900, 1000));
        assert_eq!(parse_range("bytes=-5000", 1000), part(0, 1000));
        assert_eq!(parse_range("bytes=999-999", 1000), part(999, 1000));
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999999-", 1000),
            Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-4", 1000), Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Whole);
        assert_eq!(parse_range("items=0-1", 1000), Whole);
        assert_eq!(parse_range("bytes=a-b", 1000), Whole);
        assert_eq!(parse_range("bytes=-", 1000), Whole);
    }

    #[test]
    fn dates_round_trip_in_every_form() {
        assert_eq!(format_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(format_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_date(form), Some(784_111_777), "{form}");
        }
        let now = seconds(SystemTime::now());
        assert_eq!(parse_date(&format_date(now)), Some(now));
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
