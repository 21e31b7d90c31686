//! The one grammar of durations and sizes, for every flag and every key of every file:
//! a whole number and a unit, `500ms`, `90s`, `30m`, `1h`, `2d` (a bare number is
//! seconds); `64KiB`, `512MiB`, `16GiB`, `1TiB` (a bare number is bytes). Callers
//! give the largest value they allow; messages say what is allowed, and the caller
//! names the key or flag.

use std::time::Duration;

/// The longest duration a key of a configuration file or a flag takes (366 days).
pub(crate) const LONGEST_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// The units of a duration and their length in milliseconds.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// The units of a size and their bytes.
const SIZE_UNITS: [(&str, u64); 4] = [
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// Splits `12ab` into `("12", "ab")`.
fn number_and_unit(text: &str) -> (&str, &str) {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(split)
}

/// How a duration is shown in messages (`366d`, `600s`, `250ms`).
pub(crate) fn show_duration(duration: Duration) -> String {
    let milliseconds = duration.as_millis() as u64;
    DURATION_UNITS
        .iter()
        .rev()
        .find(|(_, factor)| milliseconds.is_multiple_of(*factor) && milliseconds >= *factor)
        .map_or_else(
            || format!("{milliseconds}ms"),
            |(unit, factor)| format!("{}{unit}", milliseconds / factor),
        )
}

/// Reads a duration of at most `longest`: `500ms`, `90s`, `30m`, `1h`, `2d`, or a number
/// of seconds.
pub(crate) fn parse_duration(text: &str, longest: Duration) -> Result<Duration, String> {
    let allowed = format!(
        "must be a whole number with a unit, ms, s, m, h or d (for example 500ms, 90s, 30m, \
         1h, 2d; a bare number is seconds), at most {}",
        show_duration(longest)
    );
    let (number, unit) = number_and_unit(text.trim());
    let unit = if unit.is_empty() { "s" } else { unit };
    let factor = DURATION_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, factor)| *factor)
        .ok_or_else(|| allowed.clone())?;
    let number: u64 = number.parse().map_err(|_| allowed.clone())?;
    number
        .checked_mul(factor)
        .map(Duration::from_millis)
        .filter(|duration| *duration <= longest)
        .ok_or(allowed)
}

/// Reads a size of 1 byte to `largest` bytes: `64KiB`, `512MiB`, `16GiB`, `1TiB`, or a
/// number of bytes.
pub(crate) fn parse_size(text: &str, largest: u64) -> Result<u64, String> {
    let allowed = "must be a whole number of bytes, or one followed by KiB, MiB, GiB or TiB \
                   (for example 512MiB, 16GiB), more than 0";
    let (number, unit) = number_and_unit(text.trim());
    let factor = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, factor)| *factor)
            .ok_or_else(|| allowed.to_string())?
    };
    let number: u64 = number.parse().map_err(|_| allowed.to_string())?;
    number
        .checked_mul(factor)
        .filter(|bytes| (1..=largest).contains(bytes))
        .ok_or_else(|| format!("{allowed}, at most {largest} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: Duration = Duration::from_secs(366 * 86_400);

    #[test]
    fn durations_take_every_unit_and_a_bare_number_is_seconds() {
        let parse = |text| parse_duration(text, YEAR);
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("366d"), Ok(YEAR));
        for bad in [
            "",
            "s",
            "h",
            "1.5s",
            "-1s",
            "5 s",
            "5x",
            "1w",
            "367d",
            "99999999999999999999s",
        ] {
            let error = parse(bad).expect_err(bad);
            assert!(error.contains("at most 366d"), "{bad}: {error}");
        }
        assert_eq!(
            parse_duration("601s", Duration::from_secs(600)),
            Err(
                "must be a whole number with a unit, ms, s, m, h or d (for example 500ms, 90s, \
                 30m, 1h, 2d; a bare number is seconds), at most 10m"
                    .to_string()
            )
        );
    }

    #[test]
    fn sizes_take_binary_units_and_a_bare_number_is_bytes() {
        let parse = |text| parse_size(text, u64::MAX);
        assert_eq!(parse("512MiB"), Ok(512 << 20));
        assert_eq!(parse("16GiB"), Ok(16 << 30));
        assert_eq!(parse("1TiB"), Ok(1 << 40));
        assert_eq!(parse("64KiB"), Ok(64 << 10));
        assert_eq!(parse("4096"), Ok(4096));
        for bad in ["0", "", "1GB", "1.5GiB", "99999999TiB"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_size("2KiB", 1024).is_err());
    }

    #[test]
    fn durations_are_shown_in_their_largest_whole_unit() {
        assert_eq!(show_duration(YEAR), "366d");
        assert_eq!(show_duration(Duration::from_secs(600)), "10m");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show_duration(Duration::ZERO), "0ms");
    }
}
