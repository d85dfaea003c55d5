//! [`TxClock`]: when a connection's held transaction began, published for
//! other threads, so a transaction held too long is noticed while it is
//! still open (a read transaction stops checkpoints from finishing, and
//! the WAL grows) — not only when it ends.
//!
//! A connection starts its clock for a read unit of work (`read_only`) and
//! for a transaction a handle holds (`Host::begin`), the two kinds of
//! transaction that stay open for as long as user code likes; a write unit
//! or a migration is the user's own work and is not timed. Whoever looks
//! (a server's writer between requests, an in-thread database at each
//! request) reports each transaction once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::Connection;

/// When a connection's held transaction began; shared with whoever
/// watches for long ones. All atomics: read from other threads without a
/// lock, one store at each start and end.
#[derive(Debug, Default)]
pub(crate) struct TxClock {
    /// When the transaction began (nanoseconds since [`epoch`], plus one);
    /// 0 while none is open.
    since: AtomicU64,
    /// Whether it is a read transaction (a read unit of work).
    read: AtomicBool,
    /// The `since` of the transaction already reported: each is logged once.
    reported: AtomicU64,
}

/// A transaction a clock timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timed {
    /// How long it has been (or was) open.
    pub(crate) open: Duration,
    /// Whether it is a read transaction.
    pub(crate) read: bool,
    /// Whether it was already reported as open too long.
    pub(crate) reported: bool,
}

/// The instant clocks count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now() -> u64 {
    epoch().elapsed().as_nanos() as u64 + 1
}

impl TxClock {
    /// Starts timing a transaction unless one is timed already (a read unit
    /// inside a held transaction belongs to it); `true` if it started.
    pub(crate) fn start(&self, read: bool) -> bool {
        if self.since.load(Ordering::Acquire) != 0 {
            return false;
        }
        self.read.store(read, Ordering::Relaxed);
        self.since.store(now(), Ordering::Release);
        true
    }

    /// Stops timing: what was open, if anything was.
    pub(crate) fn stop(&self) -> Option<Timed> {
        let timed = self.open();
        self.since.store(0, Ordering::Release);
        timed
    }

    /// The transaction open now, if one is.
    pub(crate) fn open(&self) -> Option<Timed> {
        self.timed(self.since.load(Ordering::Acquire))
    }

    /// The transaction open now if it has been open `limit` or longer and
    /// was not reported yet; it counts as reported from now on.
    pub(crate) fn overdue(&self, limit: Duration) -> Option<Timed> {
        let since = self.since.load(Ordering::Acquire);
        let timed = self
            .timed(since)
            .filter(|t| t.open >= limit && !t.reported)?;
        self.reported.store(since, Ordering::Relaxed);
        Some(timed)
    }

    fn timed(&self, since: u64) -> Option<Timed> {
        if since == 0 {
            return None;
        }
        Some(Timed {
            open: Duration::from_nanos(now().saturating_sub(since)),
            read: self.read.load(Ordering::Relaxed),
            reported: self.reported.load(Ordering::Relaxed) == since,
        })
    }
}

/// Another connection of the same database (a server's reader), by name.
#[derive(Debug)]
pub(crate) struct Peer {
    /// Its thread's name.
    pub(crate) name: String,
    pub(crate) clock: Arc<TxClock>,
}

/// The other connections of a database, filled in once they all opened.
pub(crate) type Peers = Arc<OnceLock<Vec<Peer>>>;

impl Connection {
    /// When its held transaction began (see the module documentation).
    pub(crate) fn clock(&self) -> &Arc<TxClock> {
        &self.clock
    }

    /// Publishes its transactions on `clock` from now on: a reopened
    /// server reader keeps the clock the writer watches.
    pub(crate) fn set_clock(&mut self, clock: Arc<TxClock>) {
        self.clock = clock;
    }

    /// How long a transaction may stay open before it is logged
    /// (`OpenOptions::long_read_warning`).
    pub(crate) fn long_read_warning(&self) -> Duration {
        self.long_read_warning
    }

    /// Knows the other connections of its database from now on.
    pub(crate) fn watch_peers(&self, peers: Peers) {
        let _ = self.peers.set(peers);
    }

    /// The other connection whose read transaction has been open longest,
    /// if one has one open: the likely reason a checkpoint cannot finish.
    pub(crate) fn longest_peer_read(&self) -> Option<(&str, Duration)> {
        self.peers
            .get()?
            .get()?
            .iter()
            .filter_map(|peer| Some((peer.name.as_str(), peer.clock.open()?.open)))
            .max_by_key(|(_, open)| *open)
    }
}

/// Logs a transaction of the database `db` that ended after `timed.open`,
/// if that is `limit` or longer: as a warning, unless it was reported
/// while open.
pub(crate) fn warn_ended(timed: Timed, limit: Duration, db: &str) {
    let open = timed.open;
    if open < limit {
        return;
    }
    let open_ms = open.as_millis() as u64;
    if timed.reported {
        tracing::info!(target: "driftwood", open_ms, db, "the long transaction reported earlier ended after {open:.1?}");
    } else if timed.read {
        tracing::warn!(
            target: "driftwood",
            open_ms, db,
            "a read transaction was open for {open:.1?}: while one is, checkpoints cannot finish and the WAL grows"
        );
    } else {
        tracing::warn!(
            target: "driftwood",
            open_ms, db,
            "a transaction was open for {open:.1?}: while it was, other writers waited"
        );
    }
}

/// Logs a transaction still open after `timed.open`, on `connection` of
/// the database `db`.
pub(crate) fn warn_still_open(timed: Timed, connection: &str, db: &str) {
    let open_ms = timed.open.as_millis() as u64;
    let open = timed.open;
    if timed.read {
        tracing::warn!(
            target: "driftwood",
            open_ms, connection, db,
            "a read transaction has been open for {open:.1?} on {connection} and is still open: while it is, checkpoints cannot finish and the WAL grows"
        );
    } else {
        tracing::warn!(
            target: "driftwood",
            open_ms, connection, db,
            "a transaction has been open for {open:.1?} on {connection} and is still open: while it is, other writers wait"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_is_timed_once_and_reported_once() {
        let clock = TxClock::default();
        assert!(clock.start(true));
        assert!(!clock.start(false), "a nested one belongs to it");
        assert!(clock.overdue(Duration::from_secs(3600)).is_none());
        let first = clock.overdue(Duration::ZERO).unwrap();
        assert!(first.read && !first.reported);
        assert!(clock.overdue(Duration::ZERO).is_none(), "reported once");
        assert!(clock.stop().unwrap().reported);
        assert!(clock.open().is_none());
        assert!(clock.start(false));
        assert!(
            clock.overdue(Duration::ZERO).is_some(),
            "the next transaction is a new one"
        );
    }
}
