//! [`Conn`]: the synchronous, typed handle to a connection that a unit of
//! work gets (`db.write(|conn| …)`, `db.read(|conn| …)`, migrations). The
//! closure runs where the connection lives — on the caller's thread for an
//! in-thread database, on a server thread for a background one — so a whole
//! unit of work costs one round trip, and each statement costs what it
//! costs in plain rusqlite. Its queries are the [`Runner`] API in the
//! [`Blocking`] mode: the same methods as on `Db`, giving results at once.

use crate::batch::Batch;
use crate::error::{Result, catch};
use crate::executor::{Blocking, Output, Runner};
use crate::plan::Plan;
use crate::sqlite::{Connection, Execution, TxKind};
use crate::table::Insertable;

/// A synchronous handle to a connection inside a unit of work.
#[derive(Debug, Clone, Copy)]
pub struct Conn<'c> {
    conn: &'c Connection,
}

impl<'c> Conn<'c> {
    /// Wraps a connection.
    pub fn new(conn: &'c Connection) -> Self {
        Conn { conn }
    }

    /// The connection, for what the typed API does not cover.
    pub fn connection(&self) -> &'c Connection {
        self.conn
    }

    /// Runs `work` in a nested transaction (a savepoint inside a
    /// transaction, a transaction otherwise): committed if it returns `Ok`,
    /// rolled back if it returns `Err` or panics (the panic becomes
    /// [`Error::Panic`](crate::Error::Panic)).
    pub fn transaction<R>(&self, work: impl FnOnce(&Conn<'c>) -> Result<R>) -> Result<R> {
        let level = self.conn.begin(TxKind::Immediate)?;
        match catch(|| work(self)) {
            // A failed commit rolls the level back itself.
            Ok(value) => self.conn.commit(level).map(|()| value),
            Err(error) => {
                // The work's error matters more than a failed rollback's.
                let _ = self.conn.rollback(level);
                Err(error)
            }
        }
    }
}

impl Runner for Conn<'_> {
    type Mode = Blocking;

    fn run_plan<T: Send + 'static>(&self, plan: Plan<T>) -> Result<T> {
        self.conn.run(&plan)
    }

    fn run_batch(&self, batch: Batch) -> Result<Execution> {
        batch.run_on(self.conn)
    }

    /// Binds each row's values in place with one prepared statement: the
    /// fastest way to load data.
    fn insert_all<I: Insertable>(
        &self,
        rows: impl IntoIterator<Item = I>,
    ) -> Output<Self, Execution> {
        self.conn.insert_many(rows)
    }
}

/// Runs a synchronous unit of work in a write transaction (a savepoint
/// inside one): what `Db::write` and `Transaction::savepoint` run where the
/// connection lives.
pub(crate) fn write_unit<R>(
    conn: &Connection,
    work: impl FnOnce(&Conn<'_>) -> Result<R>,
) -> Result<R> {
    Conn::new(conn).transaction(work)
}

/// Runs a synchronous unit of work that only reads: one read transaction
/// (a single snapshot for all its statements), with every write refused.
pub(crate) fn read_unit<R>(
    conn: &Connection,
    work: impl FnOnce(&Conn<'_>) -> Result<R>,
) -> Result<R> {
    conn.read_only(|| catch(|| work(&Conn::new(conn))))
}
