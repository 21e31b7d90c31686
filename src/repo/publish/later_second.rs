//! Every replaced file of a suite carries a later second than the file it replaces.
//!
//! apt asks again for `InRelease` (and, on a fallback, `Release`, `Release.gpg` and the
//! plain-name indexes) with `If-Modified-Since` set to the `Last-Modified` it was given.
//! HTTP dates have one-second resolution: nginx takes them from the file's mtime, S3
//! stores from the second the object was written. Two publications of one suite within
//! one second then carry the same date, the server answers `304 Not Modified` to the
//! second one, and the host stays on the older publication until the next one, silently.
//!
//! So a publication first learns the newest second of what it replaces (the files' mtimes
//! locally, the objects' `Last-Modified` on a store), waits until the clock that will date
//! its own files (the system clock, or the store's) reads a later second, and dates its
//! files from then on. The wait is at most one second and only happens when two
//! publications of a suite come within the same second.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// How far ahead of the clock a replaced file's date may be before the publication
/// stops waiting for it (a clock that was set back): it then dates its files one second
/// after the old ones instead.
const LONGEST_WAIT: Duration = Duration::from_secs(3);

/// What waiting for a later second gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Later {
    /// The clock already read a later second.
    Already(i64),
    /// The clock reads a later second after waiting this long.
    Waited(i64, Duration),
    /// The replaced files are dated too far ahead of the clock to wait for (the clock was
    /// set back, or another host with a clock ahead wrote them); the second the clock
    /// reads now is given.
    ClockBehind(i64),
}

impl Later {
    /// The second the clock read last.
    pub(crate) fn second(self) -> i64 {
        match self {
            Later::Already(second) | Later::Waited(second, _) | Later::ClockBehind(second) => {
                second
            }
        }
    }
}

/// Waits until `clock` (which reads a whole Unix second) reads a second later than
/// `replaced`.
pub(crate) fn wait_for_later_second(
    replaced: i64,
    mut clock: impl FnMut() -> Result<i64>,
) -> Result<Later> {
    let started = std::time::Instant::now();
    let mut second = clock()?;
    if second > replaced {
        return Ok(Later::Already(second));
    }
    if replaced - second >= LONGEST_WAIT.as_secs() as i64 {
        return Ok(Later::ClockBehind(second));
    }
    // To the local clock's next second first; a store's clock may be a fraction of a
    // second off the local one, so after that it is read again in short steps.
    let mut pause = until_next_second();
    while second <= replaced {
        if started.elapsed() > LONGEST_WAIT {
            return Ok(Later::ClockBehind(second));
        }
        std::thread::sleep(pause);
        pause = Duration::from_millis(100);
        second = clock()?;
    }
    Ok(Later::Waited(second, started.elapsed()))
}

/// The time from now to just past the next second boundary of the system clock. The
/// margin covers the kernel's coarse file clock, which runs a few milliseconds behind.
fn until_next_second() -> Duration {
    let into_second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    Duration::from_nanos(u64::from(1_000_000_000 - into_second)) + Duration::from_millis(20)
}

/// The system clock's current Unix second.
pub(crate) fn system_second() -> Result<i64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs() as i64)
}

/// The newest mtime (whole seconds) of the files among `paths` that exist.
pub(crate) fn newest_mtime<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<Option<i64>> {
    use std::os::unix::fs::MetadataExt;
    let mut newest = None;
    for path in paths {
        match std::fs::metadata(path) {
            Ok(metadata) => newest = newest.max(Some(metadata.mtime())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("{}: cannot be read", path.display()))
            }
        }
    }
    Ok(newest)
}

/// The time a local publication dates its files with: now, once the system clock reads
/// a later second than `replaced` (the newest mtime of the files it replaces); when the
/// old files are dated ahead of a clock that was set back, one second after them.
pub(crate) fn local_stamp(replaced: Option<i64>) -> Result<(SystemTime, Later)> {
    let Some(replaced) = replaced else {
        let second = system_second()?;
        return Ok((SystemTime::now(), Later::Already(second)));
    };
    let later = wait_for_later_second(replaced, system_second)?;
    let stamp = match later {
        Later::ClockBehind(_) => UNIX_EPOCH + Duration::from_secs((replaced + 1).max(0) as u64),
        Later::Already(_) | Later::Waited(..) => SystemTime::now(),
    };
    Ok((stamp, later))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_later_clock_needs_no_wait() {
        let later = wait_for_later_second(100, || Ok(101)).expect("wait");
        assert_eq!(later, Later::Already(101));
    }

    #[test]
    fn the_same_second_waits_for_the_next_one() {
        let readings = Cell::new(0);
        let started = std::time::Instant::now();
        let later = wait_for_later_second(100, || {
            readings.set(readings.get() + 1);
            Ok(if readings.get() < 3 { 100 } else { 101 })
        })
        .expect("wait");
        assert_eq!(later.second(), 101);
        assert!(matches!(later, Later::Waited(101, _)), "{later:?}");
        assert_eq!(readings.get(), 3);
        // A sleep to the next second boundary (at least the margin), then a short step.
        assert!(started.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn a_clock_far_behind_is_not_waited_for() {
        let later = wait_for_later_second(100, || Ok(90)).expect("wait");
        assert_eq!(later, Later::ClockBehind(90));
    }

    #[test]
    fn local_files_get_a_later_second_than_the_ones_they_replace() {
        let now = system_second().expect("clock");
        let (stamp, later) = local_stamp(Some(now)).expect("stamp");
        let stamped = stamp
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        assert!(stamped > now, "{stamped} is not after {now}");
        assert!(matches!(later, Later::Waited(..) | Later::Already(_)));
        // Dated ahead of a clock set back: one second after them, without waiting long.
        let ahead = now + 100;
        let started = std::time::Instant::now();
        let (stamp, later) = local_stamp(Some(ahead)).expect("stamp");
        assert!(matches!(later, Later::ClockBehind(_)), "{later:?}");
        assert_eq!(stamp, UNIX_EPOCH + Duration::from_secs((ahead + 1) as u64));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn newest_mtime_skips_missing_files() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let old = directory.path().join("old");
        let new = directory.path().join("new");
        std::fs::write(&old, b"a").expect("write");
        std::fs::write(&new, b"b").expect("write");
        let set = |path: &Path, second: u64| {
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|file| file.set_modified(UNIX_EPOCH + Duration::from_secs(second)))
                .expect("set mtime");
        };
        set(&old, 1_000);
        set(&new, 2_000);
        let missing = directory.path().join("missing");
        let paths = [old.as_path(), new.as_path(), missing.as_path()];
        assert_eq!(newest_mtime(paths).expect("mtimes"), Some(2_000));
        assert_eq!(newest_mtime([missing.as_path()]).expect("mtimes"), None);
    }
}
