//! [`Transaction`]: an owned transaction handle usable across awaits.
//!
//! A transaction holds the connection for as long as it lives, so other
//! users of the same database wait for it (they never see its uncommitted
//! writes and never deadlock against it). It commits only when told to:
//! dropped without `commit()` — on an error path, a panic, or a cancelled
//! future — it rolls back. Nested transactions are savepoints and borrow
//! their parent mutably, so the parent cannot be used until they end.

use std::future::{Future, ready};

use futures::lock::OwnedMutexGuard;

use crate::batch::Batch;
use crate::conn::{Conn, finish};
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::query::Statement;
use crate::row::{FromRow, OwnedRow};
use crate::sqlite::{Connection, Execution, TxKind};

/// Where a transaction's connection comes from.
enum Slot<'p> {
    /// The outermost transaction owns the lock on the connection.
    Root(OwnedMutexGuard<Option<Connection>>),
    /// A savepoint borrows the lock from its parent (a `&mut` borrow, so the
    /// parent cannot be used meanwhile, and the handle stays `Send`).
    Nested(&'p mut OwnedMutexGuard<Option<Connection>>),
}

/// An open transaction (or savepoint). See the [module documentation](self).
#[must_use = "a transaction rolls back when dropped without commit()"]
pub struct Transaction<'p> {
    slot: Slot<'p>,
    /// Whether commit or rollback has run; if not, drop rolls back.
    finished: bool,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("depth", &self.conn().depth())
            .finish()
    }
}

impl Transaction<'static> {
    /// Begins a write transaction on the connection behind `guard`.
    pub(crate) fn begin(guard: OwnedMutexGuard<Option<Connection>>) -> Result<Self> {
        let conn = guard.as_ref().ok_or(Error::Closed)?;
        conn.begin(TxKind::Immediate)?;
        Ok(Transaction {
            slot: Slot::Root(guard),
            finished: false,
        })
    }
}

impl Transaction<'_> {
    fn conn(&self) -> &Connection {
        match &self.slot {
            // Checked non-empty in `begin`; the slot cannot be emptied while
            // this guard holds the lock.
            Slot::Root(guard) => guard.as_ref(),
            Slot::Nested(guard) => guard.as_ref(),
        }
        .expect("transaction connection present while locked")
    }

    /// Commits. For a savepoint, its changes become part of the parent.
    pub fn commit(mut self) -> impl Future<Output = Result<()>> + Send {
        self.finished = true;
        let conn = self.conn();
        let result = conn.commit().inspect_err(|_| {
            let _ = conn.rollback();
        });
        ready(result)
    }

    /// Rolls back.
    pub fn rollback(mut self) -> impl Future<Output = Result<()>> + Send {
        self.finished = true;
        ready(self.conn().rollback())
    }

    /// Begins a nested transaction (a savepoint).
    pub fn transaction(&mut self) -> impl Future<Output = Result<Transaction<'_>>> + Send {
        let begun = self.conn().begin(TxKind::Immediate);
        let guard = match &mut self.slot {
            Slot::Root(guard) => guard,
            Slot::Nested(guard) => &mut **guard,
        };
        ready(begun.map(|()| Transaction {
            slot: Slot::Nested(guard),
            finished: false,
        }))
    }

    /// Runs a synchronous unit of work inside this transaction, in one call.
    /// An error or panic from `work` leaves the transaction open for the
    /// caller to roll back (the panic becomes [`Error::Panic`]).
    pub fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Conn<'_>) -> Result<R> + Send + 'static,
    ) -> impl Future<Output = Result<R>> + Send {
        let conn = Conn::new(self.conn());
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&conn)));
        ready(outcome.unwrap_or_else(|panic| Err(Error::from_panic(panic))))
    }

    /// Runs `work` in a savepoint: committed on `Ok`, rolled back on `Err`
    /// or panic.
    pub fn savepoint<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Conn<'_>) -> Result<R> + Send + 'static,
    ) -> impl Future<Output = Result<R>> + Send {
        let conn = self.conn();
        let result = conn.begin(TxKind::Immediate).and_then(|()| {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&Conn::new(conn))));
            finish(conn, outcome)
        });
        ready(result)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Err(error) = self.conn().rollback() {
            tracing::warn!(target: "driftwood", %error, "rolling back a dropped transaction failed");
        }
    }
}

impl Executor for Transaction<'_> {
    fn execute(&self, statement: Statement) -> impl Future<Output = Result<Execution>> + Send {
        ready(self.conn().execute(&statement))
    }

    fn fetch<R: FromRow + Send + 'static>(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<R>>> + Send {
        ready(self.conn().fetch(&statement))
    }

    fn fetch_first<R: FromRow + Send + 'static>(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Option<R>>> + Send {
        ready(self.conn().fetch_first(&statement))
    }

    fn fetch_rows(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<OwnedRow>>> + Send {
        ready(self.conn().fetch_rows(&statement))
    }

    fn run_batch(&self, batch: Batch) -> impl Future<Output = Result<Execution>> + Send {
        ready(batch.run_on(self.conn()))
    }
}
