//! The machine debstage runs on, as builds record it (provenance) and locks name their
//! holder.

/// The host name (`/proc/sys/kernel/hostname`), or `unknown-host` when it cannot be read.
pub(crate) fn name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}
