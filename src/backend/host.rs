//! [`Host`]: a connection where it lives, with the lane that holds its
//! transaction — the rules for transactions that every backend owning a
//! SQLite connection shares (the in-thread database and each server thread).
//!
//! - One lane at a time holds the transaction; [`Host::admits`] says whether
//!   a request of a lane may run now. The backend makes the others wait.
//! - Every operation names its level. A level that never began (its begin
//!   was abandoned) or already ended is reported or, for a rollback,
//!   ignored; it never reaches its parent.
//! - A unit of work that leaves a transaction open that no lane owns (one
//!   begun through `Connection::raw`, or a level it began and forgot) is
//!   rolled back and fails with [`Error::UnownedTransaction`], so no later
//!   request joins it.
//! - User code runs inside [`catch`]: a panic is an error for its caller.

use std::time::{Duration, Instant};

use super::Lane;
use crate::error::{Error, Result, catch};
use crate::sqlite::{Connection, Level, TxKind};

/// A connection and who holds its transaction.
pub(crate) struct Host {
    conn: Connection,
    owner: Option<Owner>,
}

/// The lane holding the transaction, and since when.
#[derive(Debug, Clone, Copy)]
struct Owner {
    lane: Lane,
    since: Instant,
}

impl Host {
    pub(crate) fn new(conn: Connection) -> Self {
        Host { conn, owner: None }
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Whether a request of `lane` may run now.
    pub(crate) fn admits(&self, lane: Lane) -> bool {
        self.owner.is_none_or(|owner| owner.lane == lane)
    }

    /// How long the current transaction has been open, if one is.
    pub(crate) fn held_for(&self) -> Option<Duration> {
        self.owner.map(|owner| owner.since.elapsed())
    }

    /// Whether no lane holds the transaction.
    pub(crate) fn is_free(&self) -> bool {
        self.owner.is_none()
    }

    /// Runs `work` for `lane` (which [`Host::admits`]): a request of a
    /// transaction's lane runs only while that transaction is open — once
    /// it ended, a handle that outlived it must not write in autocommit.
    pub(crate) fn run_in<R>(
        &mut self,
        lane: Lane,
        work: impl FnOnce(&Connection) -> Result<R>,
    ) -> Result<R> {
        if lane != Lane::NONE && !self.owner.is_some_and(|owner| owner.lane == lane) {
            return Err(Error::ended(
                "its statements cannot run: it was already committed or rolled back",
            ));
        }
        self.run(work)
    }

    /// Runs `work` on the connection: a panic becomes [`Error::Panic`]; a
    /// transaction it leaves open that no lane owns is rolled back.
    fn run<R>(&mut self, work: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let result = catch(|| work(&self.conn));
        if self.owner.is_none() && self.conn.in_transaction() {
            if let Err(error) = self.conn.rollback_all() {
                tracing::warn!(target: "driftwood", %error, "rolling back an unowned transaction failed");
            }
            return Err(Error::UnownedTransaction);
        }
        result
    }

    /// Opens `level` for `lane` (which [`Host::admits`]): the lane's
    /// transaction, or with `nested` a savepoint inside its innermost level.
    pub(crate) fn begin(
        &mut self,
        lane: Lane,
        level: Level,
        kind: TxKind,
        nested: bool,
    ) -> Result<()> {
        let holds = self.owner.is_some_and(|owner| owner.lane == lane);
        if nested && !holds {
            return Err(Error::ended(
                "cannot open a savepoint: its parent transaction already ended",
            ));
        }
        self.conn.begin_level(level, kind)?;
        if !holds {
            self.owner = Some(Owner {
                lane,
                since: Instant::now(),
            });
        }
        Ok(())
    }

    /// Commits `lane`'s `level`.
    pub(crate) fn commit(&mut self, lane: Lane, level: Level) -> Result<()> {
        if !self.owner.is_some_and(|owner| owner.lane == lane) {
            return Err(Error::ended(
                "cannot commit: it was already committed or rolled back",
            ));
        }
        let result = self.conn.commit(level);
        self.release_if_done();
        result
    }

    /// Rolls back `lane`'s `level`; nothing to do if the lane holds nothing.
    pub(crate) fn rollback(&mut self, lane: Lane, level: Level) -> Result<()> {
        if !self.owner.is_some_and(|owner| owner.lane == lane) {
            return Ok(());
        }
        let result = self.conn.rollback(level);
        self.release_if_done();
        result
    }

    /// Rolls back whatever is open (shutdown, a closed database).
    pub(crate) fn rollback_everything(&mut self) {
        if let Err(error) = self.conn.rollback_all() {
            tracing::warn!(target: "driftwood", %error, "rolling back at shutdown failed");
        }
        self.owner = None;
    }

    /// The lane's transaction is over once its last level ended.
    fn release_if_done(&mut self) {
        if self.conn.depth() == 0 {
            self.owner = None;
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
