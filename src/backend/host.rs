//! [`Host`]: a connection where it lives, with the lanes that hold its
//! transaction — the rules for transactions that every backend owning a
//! SQLite connection shares (the in-thread database and each server thread).
//!
//! - One lane at a time holds the turn: the transaction's lane, or — while
//!   a savepoint opened in a lane of its own is open (one begun through a
//!   `Db` inside `Db::transaction`) — that savepoint's lane, so concurrent
//!   work in one scope never lands inside a sibling's savepoint.
//!   [`Host::admits`] says whether a request of a lane may run now; the
//!   backend makes the others wait.
//! - Every operation names its level. A level that never began (its begin
//!   was abandoned) or already ended is reported or, for a rollback,
//!   ignored; it never reaches its parent.
//! - A unit of work that leaves a transaction open that no lane owns (one
//!   begun through `Connection::raw`, or a level it began and forgot) is
//!   rolled back and fails with [`Error::UnownedTransaction`], so no later
//!   request joins it.
//! - User code runs inside [`catch`]: a panic is an error for its caller.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Lane;
use super::feed::Feed;
use crate::error::{Error, Result, catch};
use crate::plan::Plan;
use crate::sqlite::changes::Changes;
use crate::sqlite::clock::{Peers, warn_ended, warn_still_open};
use crate::sqlite::{Connection, Level, RestoreSteps, TxKind};

/// The cancel flag of the request running now on a host, which SQLite's
/// progress handler watches (on server threads) so that only that
/// request's statement is interrupted.
#[derive(Clone)]
pub(crate) struct Interrupt {
    current: Arc<Mutex<Arc<AtomicBool>>>,
    /// Watched between requests: never set.
    never: Arc<AtomicBool>,
}

impl Interrupt {
    fn new() -> Self {
        let never = Arc::new(AtomicBool::new(false));
        Interrupt {
            current: Arc::new(Mutex::new(never.clone())),
            never,
        }
    }

    /// Whether the request running now was cancelled.
    pub(crate) fn is_set(&self) -> bool {
        self.current
            .lock()
            .map(|flag| flag.load(Ordering::Relaxed))
            .unwrap_or(false)
    }

    /// From now on, `flag` (set: the request running now was cancelled).
    pub(crate) fn watch(&self, flag: &Arc<AtomicBool>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = flag.clone();
    }

    /// No request runs: nothing to interrupt.
    pub(crate) fn clear(&self) {
        self.watch(&self.never);
    }
}

/// A connection and the lanes that hold its transaction.
pub(crate) struct Host {
    conn: Connection,
    /// What interrupts the statement running now.
    interrupt: Interrupt,
    /// The lanes holding the transaction, outermost first, each with the
    /// level it opened first; the last one has the turn.
    holders: Vec<Holder>,
    /// Whether the connection's clock times the transaction the lanes
    /// hold (see `sqlite/clock.rs`).
    timing: bool,
    /// Where committed changes are published: the database's feed, on the
    /// connection that writes.
    feed: Option<Arc<Feed>>,
    /// `PRAGMA data_version` when last asked: it moves when another
    /// connection (another process) commits.
    data_version: Option<i64>,
    /// Set once the connection holds objects other connections cannot see
    /// (`TEMP` objects, attached databases) — before the request that
    /// made them is answered, so the next request is routed knowing it.
    private_state: Option<Arc<AtomicBool>>,
    /// Set while the connection may hold a transaction begun before
    /// driftwood had it (through `Connection::raw`): the next plan checks
    /// for it afterwards, like a unit of work does.
    adopted_open_transaction: bool,
}

#[derive(Debug, Clone, Copy)]
struct Holder {
    lane: Lane,
    level: Level,
}

impl Host {
    /// A host for `conn`; with a `feed`, it is the database's writer and
    /// publishes what every committed transaction changed there.
    pub(crate) fn new(conn: Connection, feed: Option<Arc<Feed>>) -> Self {
        if let Some(feed) = &feed {
            conn.track_changes(feed.switch(), true);
        }
        let conn_in_transaction = conn.in_transaction();
        Host {
            conn,
            interrupt: Interrupt::new(),
            holders: Vec::new(),
            timing: false,
            feed,
            data_version: None,
            private_state: None,
            adopted_open_transaction: conn_in_transaction,
        }
    }

    /// The flag of the request running now, for the progress handler.
    pub(crate) fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    /// Reports private state (see the field) to `flag`.
    pub(crate) fn report_private_state_to(&mut self, flag: Arc<AtomicBool>) {
        self.private_state = Some(flag);
    }

    /// Whether anyone watches this host's writes.
    pub(crate) fn is_watched(&self) -> bool {
        self.feed
            .as_ref()
            .is_some_and(|feed| feed.switch_ref().watching().is_on())
    }

    /// Publishes "anything may have changed" if another connection
    /// committed to the file since the last call.
    pub(crate) fn notice_external_writes(&mut self) {
        let Some(feed) = &self.feed else { return };
        let version = match self.conn.data_version() {
            Ok(version) => version,
            Err(error) => {
                tracing::warn!(target: "driftwood", %error, "reading PRAGMA data_version failed");
                return;
            }
        };
        if self
            .data_version
            .replace(version)
            .is_some_and(|old| old != version)
        {
            feed.publish(Changes::everything());
        }
    }

    /// Publishes what committed since the last time, if anything did —
    /// after `COMMIT` returned, so queries that learn of it see it.
    #[inline]
    fn publish(&self) {
        let Some(feed) = &self.feed else { return };
        if let Some(changes) = self.conn.take_committed_changes() {
            feed.publish(changes);
        }
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Whether a request of `lane` may run now.
    pub(crate) fn admits(&self, lane: Lane) -> bool {
        self.holders.last().is_none_or(|holder| holder.lane == lane)
    }

    /// How long the current transaction has been open, if one is.
    pub(crate) fn held_for(&self) -> Option<Duration> {
        let held = self.timing.then(|| self.conn.clock().open());
        held.flatten().map(|timed| timed.open)
    }

    /// Logs the transaction the lanes hold if it has been open longer than
    /// the connection's `long_read_warning` and was not reported yet:
    /// asked between requests, so it is noticed while still open.
    pub(crate) fn notice_long_transaction(&self, connection: &str) {
        let clock = self.conn.clock();
        if let Some(timed) = clock.overdue(self.conn.long_read_warning()) {
            warn_still_open(timed, connection, self.conn.file().unwrap_or(":memory:"));
        }
    }

    /// Fails with [`Error::InUse`] while a transaction is open.
    pub(crate) fn ensure_not_held(&self) -> Result<()> {
        if !self.is_held() {
            return Ok(());
        }
        Err(Error::InUse {
            message: "a transaction is open (a Transaction handle, or db.transaction(..)): \
                      commit or roll it back first"
                .into(),
        })
    }

    /// The writer's watchdog: logs, once each, the transaction it holds
    /// and the read transactions of its `peers` (the readers) that have
    /// been open longer than `long_read_warning`.
    pub(crate) fn watch_transactions(&self, peers: Option<&Peers>) {
        self.notice_long_transaction("driftwood-writer");
        let limit = self.conn.long_read_warning();
        let db = self.conn.file().unwrap_or(":memory:");
        for peer in peers.and_then(|peers| peers.get()).into_iter().flatten() {
            if let Some(timed) = peer.clock.overdue(limit) {
                warn_still_open(timed, &peer.name, db);
            }
        }
    }

    /// `PRAGMA optimize`, run now and then on a long-lived connection (see
    /// `Connection::optimize_periodically`): a failure is logged, never
    /// fatal.
    pub(crate) fn optimize(&self, first: bool) {
        let db = self.conn.file().unwrap_or(":memory:");
        match self.conn.optimize_periodically(first) {
            Ok(()) => tracing::debug!(target: "driftwood", db, first, "PRAGMA optimize ran"),
            Err(error) => {
                tracing::warn!(target: "driftwood", db, %error, "PRAGMA optimize failed; it runs again later")
            }
        }
    }

    /// Replaces the database with the backup at `source` (see
    /// `sqlite/restore.rs`), then tells every watcher that anything may
    /// have changed, the schema included (so no connection keeps a
    /// footprint found under the old one). Refused while a transaction is
    /// open.
    pub(crate) fn restore(&mut self, source: &Path, steps: RestoreSteps<'_>) -> Result<()> {
        self.ensure_not_held()?;
        let conn = &mut self.conn;
        catch(|| conn.restore_with(source, steps))?;
        if let Some(feed) = &self.feed {
            feed.publish(Changes::everything());
        }
        Ok(())
    }

    /// Whether a transaction is open (some lane holds the connection).
    pub(crate) fn is_held(&self) -> bool {
        !self.holders.is_empty()
    }

    fn holds(&self, lane: Lane) -> bool {
        self.holders.iter().any(|holder| holder.lane == lane)
    }

    /// Runs `work` for `lane` (which [`Host::admits`]): a request of a
    /// transaction's lane runs only while that transaction is open — once
    /// it ended, a handle that outlived it must not write in autocommit.
    #[inline]
    pub(crate) fn run_in<R>(
        &mut self,
        lane: Lane,
        work: impl FnOnce(&Connection) -> Result<R>,
    ) -> Result<R> {
        self.request(lane, |host| host.run(work))
    }

    /// Runs `plan` for `lane`, like [`Host::run_in`]; its one statement
    /// cannot leave a transaction open (the authorizer refuses transaction
    /// control), so nobody asks SQLite afterwards — unless the connection
    /// came with one open.
    #[inline]
    pub(crate) fn run_plan_in<T>(&mut self, lane: Lane, plan: &Plan<T>) -> Result<T> {
        if self.adopted_open_transaction {
            self.adopted_open_transaction = false;
            return self.run_in(lane, |conn| conn.run(plan));
        }
        self.request(lane, |host| catch(|| host.conn.run(plan)))
    }

    /// What every request of `lane` goes through around `run`.
    #[inline]
    fn request<R>(&mut self, lane: Lane, run: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        if lane != Lane::NONE && !self.holds(lane) {
            return Err(Error::ended(
                "its statements cannot run: it was already committed or rolled back",
            ));
        }
        self.collect_rowids_if_wanted();
        let result = run(self);
        self.publish();
        if let Some(flag) = &self.private_state
            && self.conn.has_private_state()
        {
            flag.store(true, Ordering::Release);
        }
        result
    }

    /// Collects changed rowids while some watcher reads rows by rowid.
    #[inline]
    fn collect_rowids_if_wanted(&mut self) {
        if let Some(feed) = &self.feed {
            let wanted = feed.switch_ref().rows_wanted();
            self.conn.collect_rowids(wanted);
        }
    }

    /// Runs `work` on the connection: a panic becomes [`Error::Panic`]; a
    /// transaction it leaves open that no lane owns is rolled back.
    #[inline]
    fn run<R>(&mut self, work: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let result = catch(|| work(&self.conn));
        if self.holders.is_empty() && self.conn.in_transaction() {
            if let Err(error) = self.conn.rollback_all() {
                tracing::warn!(target: "driftwood", %error, "rolling back an unowned transaction failed");
            }
            return Err(Error::UnownedTransaction);
        }
        result
    }

    /// Opens `level` in `lane`, whose turn it must be to wait for: without
    /// a `parent`, the lane's transaction; with one (whose turn it is), a
    /// savepoint inside the parent's innermost level — held by `lane` alone
    /// while it lasts if `lane` is not the parent's.
    pub(crate) fn begin(
        &mut self,
        lane: Lane,
        level: Level,
        kind: TxKind,
        parent: Option<Lane>,
    ) -> Result<()> {
        match parent {
            None if !self.holders.is_empty() => {
                return Err(Error::invalid_argument(
                    "a transaction cannot begin while another holds the connection",
                ));
            }
            Some(parent) if self.holders.last().map(|h| h.lane) != Some(parent) => {
                return Err(Error::ended(
                    "cannot open a savepoint: its parent transaction already ended",
                ));
            }
            _ => {}
        }
        self.conn.begin_level(level, kind)?;
        if parent != Some(lane) {
            self.holders.push(Holder { lane, level });
        }
        if parent.is_none() {
            self.timing = self.conn.clock().start(false);
        }
        Ok(())
    }

    /// Commits `lane`'s `level`.
    pub(crate) fn commit(&mut self, lane: Lane, level: Level) -> Result<()> {
        if !self.holds(lane) {
            return Err(Error::ended(
                "cannot commit: it was already committed or rolled back",
            ));
        }
        let result = self.conn.commit(level);
        self.settle();
        self.publish();
        result
    }

    /// Rolls back `lane`'s `level`; nothing to do if the lane holds nothing.
    pub(crate) fn rollback(&mut self, lane: Lane, level: Level) -> Result<()> {
        if !self.holds(lane) {
            return Ok(());
        }
        let result = self.conn.rollback(level);
        self.settle();
        result
    }

    /// Rolls back whatever is open (shutdown, a closed database).
    pub(crate) fn rollback_everything(&mut self) {
        if let Err(error) = self.conn.rollback_all() {
            tracing::warn!(target: "driftwood", %error, "rolling back at shutdown failed");
        }
        self.settle();
    }

    /// A lane holds the transaction only while the level it opened first
    /// is open; with no level left, nobody does.
    fn settle(&mut self) {
        while let Some(holder) = self.holders.last() {
            if self.conn.has_level(holder.level) {
                break;
            }
            self.holders.pop();
        }
        if self.holders.is_empty() && std::mem::take(&mut self.timing) {
            let ended = self.conn.clock().stop();
            if let Some(ended) = ended {
                let db = self.conn.file().unwrap_or(":memory:");
                warn_ended(ended, self.conn.long_read_warning(), db);
            }
        }
    }
}

/// The error of a request that gave up waiting for the writer after
/// `waited`, while a transaction held it for `held`.
pub(crate) fn busy(waited: Duration, held: Option<Duration>) -> Error {
    let holder = match held {
        Some(held) => format!("a transaction has held it for {} ms", held.as_millis()),
        None => "a transaction held it".to_owned(),
    };
    Error::Busy {
        waited_ms: waited.as_millis() as u64,
        message: format!(
            "{holder} (busy timeout); a task that holds a transaction must run its statements \
             through it, or inside db.transaction(..), not through the database handle"
        ),
    }
}

/// Logs a request that has waited long for the writer.
pub(crate) fn warn_waiting(waited: Duration, held: Option<Duration>) {
    tracing::warn!(
        target: "driftwood",
        waited_ms = waited.as_millis() as u64,
        held_ms = held.map(|h| h.as_millis() as u64),
        "a request has waited long for the writer, which a transaction holds; \
         a task holding a transaction must use it, not the database handle"
    );
}
