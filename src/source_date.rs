//! `SOURCE_DATE_EPOCH` (reproducible-builds.org): the time that builds and publications
//! stamp instead of the clock, so the same input gives the same bytes.

use anyhow::{Context, Result};

/// SOURCE_DATE_EPOCH when set: seconds since 1970. A value that is not a number is an
/// error rather than ignored, because ignoring it silently breaks reproducibility.
pub(crate) fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.is_empty() => text.trim().parse().map(Some).with_context(|| {
            format!("SOURCE_DATE_EPOCH {text:?}: must be a number of seconds since 1970")
        }),
        _ => Ok(None),
    }
}
