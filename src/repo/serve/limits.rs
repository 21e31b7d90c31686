//! The connections of `repo serve` and their limits: what each connection is doing and
//! since when (so that a stalled or idle one ends after the timeout), how many are open
//! in all and per client address, and which one gives way when a limit is reached: an
//! idle connection of the address that holds the most, so that one client holding
//! sockets cannot starve the others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Bytes of a response that must reach the client within the timeout, again and again:
/// a client that takes a byte now and then is dropped as well as one that takes none.
pub(super) const PROGRESS: u64 = 64 * 1024;

/// How many connections may be open, in all and from one client address.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Connections open at once, from every address.
    pub(super) total: usize,
    /// Connections open at once from one address.
    pub(super) per_client: usize,
}

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for a request, with no byte of it received: may be closed to make room.
    Idle = 0,
    /// Receiving a request head (its first bytes came).
    Head = 1,
    /// Answering a request, until the response's last byte is handed to the socket.
    Busy = 2,
}

/// One open connection, shared by its task, its socket wrapper, its responses and the
/// table.
#[derive(Debug)]
pub(super) struct Tracker {
    id: u64,
    address: IpAddr,
    epoch: Instant,
    phase: AtomicU8,
    /// Milliseconds after `epoch` at which the phase began.
    since: AtomicU64,
    /// Milliseconds after `epoch` of the response's last progress (its start, or
    /// [`PROGRESS`] more bytes taken by the client).
    progress: AtomicU64,
    /// Bytes written since the last progress.
    written: AtomicU64,
    /// The response's body has ended (its last bytes may still wait to be written).
    ended: AtomicBool,
    /// Signalled when the table closes this connection to make room.
    closing: Notify,
}

impl Tracker {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, milliseconds: u64) -> Instant {
        self.epoch + Duration::from_millis(milliseconds)
    }

    /// What the connection is doing now.
    pub(super) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Idle,
            1 => Phase::Head,
            _ => Phase::Busy,
        }
    }

    fn enter(&self, phase: Phase) {
        self.since.store(self.now(), Ordering::SeqCst);
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    /// Bytes came from the client: an idle connection starts a request head.
    pub(super) fn received(&self) {
        if self.phase() == Phase::Idle {
            self.enter(Phase::Head);
        }
    }

    /// A whole request head came: the response begins.
    pub(super) fn request(&self) {
        self.progress.store(self.now(), Ordering::SeqCst);
        self.written.store(0, Ordering::SeqCst);
        self.ended.store(false, Ordering::SeqCst);
        self.enter(Phase::Busy);
    }

    /// Bytes of a response were handed to the socket.
    pub(super) fn sent(&self, bytes: usize) {
        let written = self.written.fetch_add(bytes as u64, Ordering::SeqCst) + bytes as u64;
        if written >= PROGRESS {
            self.written.store(0, Ordering::SeqCst);
            self.progress.store(self.now(), Ordering::SeqCst);
        }
    }

    /// The response's body has ended or was dropped.
    pub(super) fn response_ended(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }

    /// Everything written so far was handed to the socket: once the response has ended
    /// too, the connection is idle again.
    pub(super) fn flushed(&self) {
        if self.phase() == Phase::Busy && self.ended.swap(false, Ordering::SeqCst) {
            self.enter(Phase::Idle);
        }
    }

    /// When the connection must end unless it changes phase or makes progress first:
    /// an idle one `idle` after it became idle, a head `timeout` after its first byte,
    /// a response `timeout` after its last progress.
    pub(super) fn deadline(&self, timeout: Duration, idle: Duration) -> Instant {
        match self.phase() {
            Phase::Idle => self.at(self.since.load(Ordering::SeqCst)) + idle,
            Phase::Head => self.at(self.since.load(Ordering::SeqCst)) + timeout,
            Phase::Busy => self.at(self.progress.load(Ordering::SeqCst)) + timeout,
        }
    }

    /// Waits until the table closes this connection to make room.
    pub(super) async fn closed(&self) {
        self.closing.notified().await;
    }
}

/// Every open connection, by client address.
#[derive(Debug)]
pub(super) struct Table {
    limits: Limits,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    open: usize,
    by_address: HashMap<IpAddr, Vec<Arc<Tracker>>>,
}

impl Table {
    /// An empty table that keeps `limits`.
    pub(super) fn new(limits: Limits) -> Table {
        Table {
            limits,
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.lock().open
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The table stays consistent between statements, so a panic elsewhere while it
        // was held leaves nothing half done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a new connection from `address` in, closing an idle one first when a limit
    /// is reached: one of the same address when that address is at its limit, else one
    /// of the address that holds the most. `None` when nothing can give way: every
    /// connection that would have to is busy, and the new one is refused.
    pub(super) fn admit(&self, address: IpAddr) -> Option<Arc<Tracker>> {
        let address = canonical(address);
        let mut inner = self.lock();
        let held = inner.by_address.get(&address).map_or(0, Vec::len);
        if held >= self.limits.per_client {
            close_idle(&mut inner, address)?;
        } else if inner.open >= self.limits.total {
            let fullest = inner
                .by_address
                .iter()
                .filter(|(_, trackers)| trackers.iter().any(|t| t.phase() == Phase::Idle))
                .max_by_key(|(_, trackers)| trackers.len())
                .map(|(address, _)| *address)?;
            close_idle(&mut inner, fullest)?;
        }
        inner.next_id += 1;
        let tracker = Arc::new(Tracker {
            id: inner.next_id,
            address,
            epoch: self.epoch,
            phase: AtomicU8::new(Phase::Idle as u8),
            since: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            written: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            closing: Notify::new(),
        });
        tracker.enter(Phase::Idle);
        inner
            .by_address
            .entry(address)
            .or_default()
            .push(Arc::clone(&tracker));
        inner.open += 1;
        Some(tracker)
    }

    /// Takes a connection out once it has ended (no effect when the table closed it).
    pub(super) fn leave(&self, tracker: &Tracker) {
        let mut inner = self.lock();
        if take_out(&mut inner, tracker.address, tracker.id).is_some() {
            inner.open -= 1;
        }
    }
}

/// Closes the connection of `address` that has been idle longest; `None` if it has none.
fn close_idle(inner: &mut Inner, address: IpAddr) -> Option<()> {
    let oldest = inner
        .by_address
        .get(&address)?
        .iter()
        .filter(|tracker| tracker.phase() == Phase::Idle)
        .min_by_key(|tracker| tracker.since.load(Ordering::SeqCst))
        .map(|tracker| tracker.id)?;
    let tracker = take_out(inner, address, oldest)?;
    inner.open -= 1;
    // A permit is stored if the task is not waiting yet, so the signal is not lost.
    tracker.closing.notify_one();
    Some(())
}

fn take_out(inner: &mut Inner, address: IpAddr, id: u64) -> Option<Arc<Tracker>> {
    let trackers = inner.by_address.get_mut(&address)?;
    let index = trackers.iter().position(|tracker| tracker.id == id)?;
    let tracker = trackers.swap_remove(index);
    if trackers.is_empty() {
        inner.by_address.remove(&address);
    }
    Some(tracker)
}

/// The client an address stands for. An IPv4 client reaching an IPv6 socket
/// (`::ffff:a.b.c.d`) is the same client as over IPv4; an IPv6 host is given a whole /64
/// and may take any address in it, so the /64 is the client.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
        IpAddr::V4(_) => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_at_its_limit_gives_way_with_its_oldest_idle_connection() {
        let table = Table::new(Limits {
            total: 10,
            per_client: 3,
        });
        let hog: IpAddr = [127, 0, 0, 2].into();
        let other: IpAddr = [127, 0, 0, 1].into();
        let first = table.admit(hog).expect("admitted");
        let second = table.admit(hog).expect("admitted");
        let third = table.admit(hog).expect("admitted");
        second.received();
        third.request();
        // At its limit: the idle one goes, the head and the response stay.
        let fourth = table.admit(hog).expect("admitted in place of the idle one");
        assert_eq!(table.open(), 3);
        fourth.received();
        assert!(table.admit(hog).is_none(), "nothing idle left to give way");
        assert!(
            table.admit(other).is_some(),
            "another address is not limited"
        );
        table.leave(&first);
        assert_eq!(table.open(), 4, "a closed connection is not counted twice");
        table.leave(&second);
        assert_eq!(table.open(), 3);
    }

    #[test]
    fn at_the_total_the_fullest_address_gives_way() {
        let table = Table::new(Limits {
            total: 4,
            per_client: 4,
        });
        let few: IpAddr = [127, 0, 0, 3].into();
        let many: IpAddr = [127, 0, 0, 2].into();
        let kept = table.admit(few).expect("admitted");
        let trackers: Vec<_> = (0..3)
            .map(|_| table.admit(many).expect("admitted"))
            .collect();
        let newcomer = table.admit([127, 0, 0, 1].into()).expect("admitted");
        assert_eq!(
            table.open(),
            4,
            "one idle connection of the fullest address gave way"
        );
        table.leave(&kept);
        assert_eq!(table.open(), 3, "the address with one connection kept it");
        for tracker in trackers.iter().chain([&newcomer]) {
            tracker.request();
        }
        let last = table.admit([127, 0, 0, 4].into()).expect("below the total");
        last.request();
        assert!(
            table.admit([127, 0, 0, 5].into()).is_none(),
            "all busy: refused"
        );
    }

    #[test]
    fn mapped_ipv4_and_one_ipv6_64_are_one_client() {
        let table = Table::new(Limits {
            total: 10,
            per_client: 1,
        });
        let first = table.admit([127, 0, 0, 2].into()).expect("admitted");
        first.request();
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().expect("address");
        assert!(table.admit(mapped).is_none());
        let host: IpAddr = "2001:db8:1:2::1".parse().expect("address");
        table.admit(host).expect("admitted").request();
        let same_host: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("address");
        assert!(table.admit(same_host).is_none(), "the same /64");
        let other_host: IpAddr = "2001:db8:1:3::1".parse().expect("address");
        assert!(table.admit(other_host).is_some(), "another /64");
    }
}
