//! Named failure points for the crash tests: a debug build dies at the point that
//! `DEBSTAGE_FAIL_AT` names, by SIGKILL to itself: no unwinding, no destructors, no
//! buffered write flushed, as a killed process or a power cut leaves things. A release
//! build compiles the points away.

/// The environment variable that names the point to die at (read by debug builds only).
#[cfg(debug_assertions)]
const VARIABLE: &str = "DEBSTAGE_FAIL_AT";

/// Dies here when `DEBSTAGE_FAIL_AT` names `point` (debug builds only).
#[inline]
pub(crate) fn point(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os(VARIABLE).is_some_and(|named| named == point) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; should it fail to be sent, still die on the spot.
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
