//! Dates as Debian's changelog and copyright files give them.

/// A changelog trailer's date (RFC 2822, UTC) of Unix seconds.
pub(crate) fn changelog_date(epoch: u64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    time.format(&format).unwrap_or_default()
}

/// The year (UTC) of Unix seconds, as a copyright line gives it.
pub(crate) fn changelog_year(epoch: u64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    time.year().to_string()
}
