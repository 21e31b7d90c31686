//! Writers on several machines meet at a lock object on the store, `lock` in the
//! target's private area (`.debstage/<prefix>/lock`, outside the published tree): created with `If-None-Match: *` (only one create wins),
//! holding who took it, when, and until when its lease runs. A holder renews the lease
//! between upload phases with `If-Match` on the ETag it got; a waiter takes over a
//! lease that ran out with the same compare-and-swap, so of two waiters one wins.
//!
//! Also here: the probe that tells a store honouring conditional writes from one that
//! ignores them (Garage 2.x accepts a second `If-None-Match: *` create of a key).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::repo::clock::{format_time, now};
use crate::repo::lock::LockError;
use crate::repo::targets::store::{Conditional, Store};
use crate::report::Reporter;

/// The lock object's key in the private area (or, for a shared state found in the old
/// place, in the legacy one: the key old writers take).
pub(crate) const LOCK_KEY: &str = "lock";

/// The key written to read the store's clock, in the private area (a small object whose
/// `Last-Modified` is the store's time now).
pub(crate) const CLOCK_KEY: &str = "clock";

/// What the lock object holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Lease {
    /// The holder's host name.
    pub(crate) host: String,
    /// The holder's process id.
    pub(crate) pid: u32,
    /// When it took the lock (Unix seconds).
    pub(crate) since: i64,
    /// When the lease runs out unless renewed (Unix seconds).
    pub(crate) expires: i64,
    /// A random number of this attempt: two attempts of one process in one second
    /// (a session's lock, then the copy's) never write the same object.
    #[serde(default)]
    pub(crate) token: u64,
}

impl Lease {
    /// Whether the holder ran on this host and its process is gone (killed, crashed):
    /// its lock need not wait for the lease.
    fn died_here(&self) -> bool {
        if self.host != crate::host::name() || self.pid == std::process::id() {
            return false;
        }
        let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        )
    }

    fn describe(&self) -> String {
        format!(
            "{} (pid {}) since {}, lease until {}",
            self.host,
            self.pid,
            format_time(self.since),
            format_time(self.expires)
        )
    }
}

/// The lock on a target, held until [`StoreLock::release`].
pub(crate) struct StoreLock {
    lease: Lease,
    e_tag: Option<String>,
    seconds: u64,
    /// Taken inside a session that holds it already (a shared state): renewing and
    /// releasing are the outer holder's.
    nested: bool,
}

fn encode(lease: &Lease) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(lease)?)
}

impl StoreLock {
    /// Takes the lock, waiting for a live holder at most `timeout` (its lease when
    /// `None`: a holder that outlives its lease is taken over).
    pub(crate) fn acquire(
        store: &Store,
        seconds: u64,
        timeout: Option<Duration>,
        reporter: &Reporter,
    ) -> Result<StoreLock> {
        let started = Instant::now();
        let mut told = false;
        loop {
            let since = now();
            let lease = Lease {
                host: crate::host::name(),
                pid: std::process::id(),
                since,
                expires: since + seconds as i64,
                token: rand::random(),
            };
            match store.create(LOCK_KEY, encode(&lease)?) {
                Ok(e_tag) => {
                    return Ok(StoreLock {
                        lease,
                        e_tag,
                        seconds,
                        nested: false,
                    })
                }
                Err(Conditional::Failed(error)) => return Err(error),
                Err(Conditional::Lost) => {}
            }
            let Some(held) = store.get(LOCK_KEY)? else {
                continue; // released in between
            };
            let holder: Option<Lease> = serde_json::from_slice(&held.bytes).ok();
            if holder.as_ref() == Some(&lease) {
                // Our create went through but its answer was lost, and the client's retry
                // found the key: the lock is ours.
                return Ok(StoreLock {
                    lease,
                    e_tag: held.e_tag,
                    seconds,
                    nested: false,
                });
            }
            if let Some(ours) = holder.as_ref().filter(|holder| {
                holder.host == crate::host::name() && holder.pid == std::process::id()
            }) {
                return Ok(StoreLock {
                    lease: ours.clone(),
                    e_tag: held.e_tag,
                    seconds,
                    nested: true,
                });
            }
            let expired = holder
                .as_ref()
                .is_none_or(|holder| holder.expires < now() || holder.died_here());
            if expired {
                match store.replace(LOCK_KEY, encode(&lease)?, held.e_tag.clone()) {
                    Ok(e_tag) => {
                        reporter.warn(format!(
                            "took over the lock on publish target {} from {}: its lease ran out \
                             or its process is gone",
                            store.description,
                            holder.map_or_else(
                                || "an unreadable lock object".to_string(),
                                |h| h.describe()
                            )
                        ));
                        return Ok(StoreLock {
                            lease,
                            e_tag,
                            seconds,
                            nested: false,
                        });
                    }
                    Err(Conditional::Lost) => continue, // another waiter won
                    Err(Conditional::Failed(error)) => return Err(error),
                }
            }
            let holder = holder.map_or_else(|| "another writer".to_string(), |h| h.describe());
            let waited = started.elapsed();
            if timeout.is_some_and(|limit| waited >= limit) {
                return Err(anyhow!(LockError::Timeout {
                    repo: format!("publish target {}", store.description).into(),
                    holder,
                    waited,
                }));
            }
            if !told {
                reporter.status(format!(
                    "waiting for the lock on publish target {} held by {holder}",
                    store.description
                ));
                told = true;
            }
            std::thread::sleep(Duration::from_millis(100 + u64::from(rand::random::<u8>())));
        }
    }

    /// Extends the lease (between phases of a long publication); fails when the lock
    /// was taken over, so that a writer that stalled past its lease stops.
    pub(crate) fn renew(&mut self, store: &Store) -> Result<()> {
        if self.nested {
            return Ok(());
        }
        let mut lease = self.lease.clone();
        lease.expires = now() + self.seconds as i64;
        match store.replace(LOCK_KEY, encode(&lease)?, self.e_tag.clone()) {
            Ok(e_tag) => {
                self.lease = lease;
                self.e_tag = e_tag;
                Ok(())
            }
            Err(Conditional::Lost) => {
                // The store may have taken a renewal whose answer was lost (the client
                // then retried with the old ETag): the object holds exactly our new lease.
                if let Some(held) = store.get(LOCK_KEY)? {
                    if serde_json::from_slice::<Lease>(&held.bytes)
                        .is_ok_and(|found| found == lease)
                    {
                        self.lease = lease;
                        self.e_tag = held.e_tag;
                        return Ok(());
                    }
                }
                bail!(
                    "publish target {}: the lock was taken over by another writer (our lease \
                     ran out at {}); stopped before writing more",
                    store.description,
                    format_time(self.lease.expires)
                )
            }
            Err(Conditional::Failed(error)) => Err(error),
        }
    }

    /// Releases the lock: deletes the lock object if it is still ours.
    pub(crate) fn release(&self, store: &Store) -> Result<()> {
        if self.nested {
            return Ok(());
        }
        let current = store.get(LOCK_KEY)?;
        let ours = current.is_some_and(|held| {
            serde_json::from_slice::<Lease>(&held.bytes).is_ok_and(|lease| lease == self.lease)
        });
        if ours {
            store
                .delete_all(&[LOCK_KEY.to_string()])
                .context("the lock object cannot be deleted")?;
        }
        Ok(())
    }
}

/// Whether the store refuses a second `If-None-Match: *` create of one key: two creates
/// of a fresh probe key, then the key is deleted.
pub(crate) fn supports_conditional_writes(store: &Store) -> Result<bool> {
    let key = format!(
        "probe-{}-{}-{}",
        crate::host::name(),
        std::process::id(),
        rand::random::<u64>()
    );
    let first = store.create(&key, b"probe 1\n".to_vec());
    let second = match first {
        Ok(_) => store.create(&key, b"probe 2\n".to_vec()),
        Err(Conditional::Lost) => bail!(
            "publish target {}: a fresh probe key {key} was reported as existing",
            store.description
        ),
        Err(Conditional::Failed(error)) => return Err(error),
    };
    let supported = match second {
        Ok(_) => false,
        Err(Conditional::Lost) => true,
        Err(Conditional::Failed(error)) => return Err(error),
    };
    store.delete_all(&[key])?;
    Ok(supported)
}
