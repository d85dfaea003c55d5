//! Transactions on one connection: the outermost transaction and its
//! savepoints as a stack of named [`Level`]s, and what happens when SQLite
//! ends a transaction on its own.
//!
//! Every operation names its level; none means "the innermost one". A
//! savepoint is called `dw_<level>`, so committing or rolling back a level
//! also ends every level opened inside it, as SQLite's `RELEASE` and
//! `ROLLBACK TO` do, and a level that never began (or already ended) is
//! reported instead of hitting its parent.
//!
//! SQLite can roll the whole transaction back by itself (an `OR ROLLBACK`
//! conflict, an interrupted write, some I/O errors) and then carries on in
//! autocommit. The connection asks `is_autocommit()` after every statement
//! that failed inside a transaction (a successful one cannot end it: the
//! guard refuses transaction control in user SQL) and before every
//! statement (for whatever reached past driftwood through
//! `Connection::raw`); once SQLite has left it, the levels are
//! *poisoned*: every statement, begin and commit fails with
//! [`Error::RolledBack`] until the owner rolls its levels back, so nothing
//! after the implicit rollback can reach the file.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Connection;
use super::error::from_rusqlite;
use crate::error::{Error, Result};

/// One transaction level (the outermost transaction or a savepoint) on a
/// connection, named by a process-wide unique number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Level(u64);

impl Level {
    /// A level name never used before in this process.
    pub(crate) fn fresh() -> Level {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Level(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Its number, as the wire protocol sends it.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn id(self) -> u64 {
        self.0
    }

    fn savepoint(self) -> String {
        format!("dw_{}", self.0)
    }
}

/// How a transaction takes its locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// `BEGIN DEFERRED`: locks on first use; for reads.
    Deferred,
    /// `BEGIN IMMEDIATE`: takes the write lock at once, so a write
    /// transaction never fails half-way with "database is locked".
    Immediate,
}

/// The open levels of a connection, outermost first.
#[derive(Debug, Default)]
pub(crate) struct Levels {
    stack: Vec<Level>,
    /// Why SQLite rolled the transaction back, once it did.
    poisoned: Option<String>,
}

impl Connection {
    /// Opens a transaction (a savepoint inside one) and names its level.
    pub fn begin(&self, kind: TxKind) -> Result<Level> {
        let level = Level::fresh();
        self.begin_level(level, kind)?;
        Ok(level)
    }

    /// Opens the level `level`: a transaction of `kind` when none is open,
    /// else a savepoint inside the innermost level.
    pub(crate) fn begin_level(&self, level: Level, kind: TxKind) -> Result<()> {
        self.ensure_not_poisoned()?;
        let outermost = self.levels.borrow().stack.is_empty();
        let sql = match (outermost, kind) {
            (true, TxKind::Deferred) => "BEGIN DEFERRED".to_owned(),
            (true, TxKind::Immediate) => "BEGIN IMMEDIATE".to_owned(),
            (false, _) => format!("SAVEPOINT {}", level.savepoint()),
        };
        self.control(&sql)?;
        self.push_level(level);
        Ok(())
    }

    /// Commits `level` and every level inside it (`COMMIT` for the
    /// outermost, `RELEASE` for a savepoint). If committing fails, the
    /// level is rolled back, so nothing stays open behind a consumed handle.
    pub fn commit(&self, level: Level) -> Result<()> {
        let position = self.position(level, "commit")?;
        if let Some(cause) = self.poison_cause() {
            self.close_levels(position, false);
            return Err(Error::RolledBack { cause });
        }
        let sql = match position {
            0 => "COMMIT".to_owned(),
            _ => format!("RELEASE {}", level.savepoint()),
        };
        match self.control(&sql) {
            Ok(()) => {
                self.close_levels(position, true);
                Ok(())
            }
            Err(error) => {
                // The failure matters more than how the cleanup went.
                let _ = self.rollback(level);
                Err(error)
            }
        }
    }

    /// Rolls back `level` and every level inside it. A level that already
    /// ended (or that SQLite rolled back) has nothing left to undo: `Ok`.
    pub fn rollback(&self, level: Level) -> Result<()> {
        let Some(position) = self.levels.borrow().stack.iter().position(|l| *l == level) else {
            return Ok(());
        };
        self.notice_implicit_rollback(outside_cause);
        if self.poison_cause().is_some() {
            self.close_levels(position, false);
            return Ok(());
        }
        let sql = match position {
            0 => "ROLLBACK".to_owned(),
            _ => {
                let name = level.savepoint();
                format!("ROLLBACK TO {name}; RELEASE {name}")
            }
        };
        self.close_levels(position, false);
        self.control(&sql)
    }

    /// Rolls back every open level, and a transaction SQLite has open that
    /// no level owns (one begun through [`Connection::raw`]).
    pub(crate) fn rollback_all(&self) -> Result<()> {
        self.close_levels(0, false);
        if self.raw.is_autocommit() {
            return Ok(());
        }
        self.control("ROLLBACK")
    }

    /// Whether a transaction is open on this connection, whether or not
    /// driftwood opened it.
    pub fn in_transaction(&self) -> bool {
        self.open_levels.get() > 0 || !self.raw.is_autocommit()
    }

    /// Whether `level` is open.
    pub(crate) fn has_level(&self, level: Level) -> bool {
        self.levels.borrow().stack.contains(&level)
    }

    /// How many levels are open: 0 outside a transaction.
    pub fn depth(&self) -> usize {
        self.open_levels.get()
    }

    /// Runs `work` inside the current transaction, or inside a new
    /// immediate one that commits on success and rolls back on error.
    pub fn in_transaction_or_new<R>(&self, work: impl FnOnce() -> Result<R>) -> Result<R> {
        if self.open_levels.get() > 0 {
            return work();
        }
        let level = self.begin(TxKind::Immediate)?;
        match work() {
            Ok(value) => self.commit(level).map(|()| value),
            Err(error) => {
                // The work's error matters more than a failed rollback's.
                let _ = self.rollback(level);
                Err(error)
            }
        }
    }

    /// Fails if SQLite rolled the open transaction back (noticing it now if
    /// something outside driftwood's view ended it).
    #[inline]
    pub(crate) fn ensure_not_poisoned(&self) -> Result<()> {
        self.notice_implicit_rollback(outside_cause);
        if !self.poisoned.get() {
            return Ok(());
        }
        let cause = self.poison_cause().unwrap_or_default();
        Err(Error::RolledBack { cause })
    }

    /// After (or before) a statement inside a transaction: if SQLite has
    /// left it, poison the levels with the reason `cause` gives.
    #[inline]
    pub(crate) fn notice_implicit_rollback(&self, cause: impl FnOnce() -> String) {
        if self.open_levels.get() == 0 || self.poisoned.get() || !self.raw.is_autocommit() {
            return;
        }
        self.levels.borrow_mut().poisoned = Some(cause());
        self.poisoned.set(true);
    }

    fn poison_cause(&self) -> Option<String> {
        if !self.poisoned.get() {
            return None;
        }
        self.levels.borrow().poisoned.clone()
    }

    fn position(&self, level: Level, operation: &str) -> Result<usize> {
        self.levels
            .borrow()
            .stack
            .iter()
            .position(|l| *l == level)
            .ok_or_else(|| {
                Error::ended(format!(
                    "cannot {operation}: it was already committed or rolled back"
                ))
            })
    }

    fn push_level(&self, level: Level) {
        let mut levels = self.levels.borrow_mut();
        levels.stack.push(level);
        self.open_levels.set(levels.stack.len());
        self.tracking.borrow_mut().opened_level();
    }

    /// Forgets the level at `position` and every level inside it, whose
    /// changes go to the parent if they were `committed` and are gone if
    /// not; with no level left, the poison goes too.
    fn close_levels(&self, position: usize, committed: bool) {
        self.tracking
            .borrow_mut()
            .closed_levels(position, committed);
        let mut levels = self.levels.borrow_mut();
        levels.stack.truncate(position);
        if levels.stack.is_empty() {
            levels.poisoned = None;
            self.poisoned.set(false);
        }
        self.open_levels.set(levels.stack.len());
    }

    /// Runs one of driftwood's own transaction-control statements (the
    /// guard judges only user SQL).
    fn control(&self, sql: &str) -> Result<()> {
        self.raw
            .execute_batch(sql)
            .map_err(|e| from_rusqlite(e, sql))
    }
}

/// Why a transaction ended when no statement driftwood ran ended it.
fn outside_cause() -> String {
    "something outside driftwood's transaction API ended it (a statement run through Connection::raw?)"
        .to_owned()
}
