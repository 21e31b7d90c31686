//! The pieces of HTTP that are ours rather than hyper's: the `Range` header (one range
//! of bytes), HTTP dates (`Last-Modified`, `If-Modified-Since`), and the `Content-Type`
//! of a published file, which publish targets give their objects too. Pure functions
//! over bytes and numbers; the server and the policy of what is served live in
//! [`serve`](super::serve).

use std::time::{SystemTime, UNIX_EPOCH};

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
    } else if !path.contains('/') && name.ends_with(".html") {
        "text/html; charset=utf-8"
    } else if !path.contains('/') && name.ends_with(".json") {
        "application/json"
    } else if by_hash || matches!(name, "Release" | "InRelease" | "Packages") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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
