//! [`Transaction`]: an owned transaction handle usable across awaits.
//!
//! A transaction holds the writer for as long as it lives, so other users of
//! the same database wait for it (they never see its uncommitted writes and
//! never deadlock against it). In-thread it holds the connection's lock; on
//! a background server it owns a *lane* the server thread gives the writer
//! to. It commits only when told to: dropped without `commit()` — on an
//! error path, a panic, or a cancelled future — it rolls back. Nested
//! transactions are savepoints and borrow their parent mutably, so the
//! parent cannot be used until they end.

use std::future::{Future, ready};
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::Either;
use futures::lock::OwnedMutexGuard;

use crate::batch::Batch;
use crate::conn::Conn;
use crate::database::write_unit;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::query::Statement;
use crate::row::{FromRow, OwnedRow};
use crate::server::{Client, Lane};
use crate::sqlite::{Connection, Execution, TxKind};

/// Where a transaction's connection is.
enum Slot<'p> {
    /// In-thread, outermost: owns the lock on the connection.
    Root(OwnedMutexGuard<Option<Connection>>),
    /// In-thread savepoint: borrows the lock from its parent (a `&mut`
    /// borrow, so the parent cannot be used meanwhile, and the handle stays
    /// `Send`).
    Nested(&'p mut OwnedMutexGuard<Option<Connection>>),
    /// On a background server, in its own lane; `root` for the outermost.
    Server {
        client: Arc<Client>,
        lane: Lane,
        root: bool,
        parent: PhantomData<&'p mut ()>,
    },
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
        match &self.slot {
            Slot::Server { lane, root, .. } => f
                .debug_struct("Transaction")
                .field("lane", lane)
                .field("root", root)
                .finish(),
            _ => f
                .debug_struct("Transaction")
                .field("depth", &self.local().map(Connection::depth))
                .finish(),
        }
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

    /// Begins a write transaction on `client`'s server, in a new lane.
    pub(crate) async fn begin_on_server(client: &Arc<Client>) -> Result<Self> {
        if client.is_closed() {
            return Err(Error::Closed);
        }
        let lane = client.shared.new_lane();
        // If this future is dropped between sending `Begin` and receiving its
        // reply, the guard rolls the lane back, so a transaction nobody holds
        // can never keep the writer.
        let mut guard = AbandonGuard {
            client: client.clone(),
            lane,
            all: true,
            armed: true,
        };
        let begun = client.shared.begin(lane).await;
        guard.disarm();
        begun?;
        let slot = Slot::Server {
            client: client.clone(),
            lane,
            root: true,
            parent: PhantomData,
        };
        Ok(Transaction {
            slot,
            finished: false,
        })
    }
}

impl Transaction<'_> {
    /// The in-thread connection, or `None` on a server.
    fn local(&self) -> Option<&Connection> {
        match &self.slot {
            // Checked non-empty in `begin`; the slot cannot be emptied while
            // this guard holds the lock.
            Slot::Root(guard) => guard.as_ref(),
            Slot::Nested(guard) => guard.as_ref(),
            Slot::Server { .. } => None,
        }
    }

    /// Runs `work` with the transaction's connection, wherever it is.
    fn run_on<R, F>(&self, work: F) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        match &self.slot {
            Slot::Server { client, lane, .. } => Either::Right(client.shared.run(*lane, work)),
            _ => Either::Left(ready(match self.local() {
                Some(conn) => work(conn),
                None => Err(Error::Closed),
            })),
        }
    }

    /// Commits. For a savepoint, its changes become part of the parent.
    pub fn commit(mut self) -> impl Future<Output = Result<()>> + Send {
        self.finished = true;
        if let Slot::Server { client, lane, .. } = &self.slot {
            return Either::Right(client.shared.commit(*lane));
        }
        let result = self.local().ok_or(Error::Closed).and_then(|conn| {
            conn.commit().inspect_err(|_| {
                let _ = conn.rollback();
            })
        });
        Either::Left(ready(result))
    }

    /// Rolls back.
    pub fn rollback(mut self) -> impl Future<Output = Result<()>> + Send {
        self.finished = true;
        if let Slot::Server {
            client, lane, root, ..
        } = &self.slot
        {
            return Either::Right(client.shared.rollback(*lane, *root));
        }
        Either::Left(ready(
            self.local()
                .ok_or(Error::Closed)
                .and_then(Connection::rollback),
        ))
    }

    /// Begins a nested transaction (a savepoint).
    pub fn transaction(&mut self) -> impl Future<Output = Result<Transaction<'_>>> + Send {
        if let Slot::Server { client, lane, .. } = &self.slot {
            let (client, lane) = (client.clone(), *lane);
            let begun = client.shared.begin(lane);
            let mut guard = AbandonGuard {
                client: client.clone(),
                lane,
                all: false,
                armed: true,
            };
            return Either::Right(async move {
                let begun = begun.await;
                guard.disarm();
                begun?;
                let slot = Slot::Server {
                    client,
                    lane,
                    root: false,
                    parent: PhantomData,
                };
                Ok(Transaction {
                    slot,
                    finished: false,
                })
            });
        }
        let begun = self
            .local()
            .ok_or(Error::Closed)
            .and_then(|conn| conn.begin(TxKind::Immediate));
        let nested = match &mut self.slot {
            Slot::Root(guard) => Some(guard),
            Slot::Nested(guard) => Some(&mut **guard),
            Slot::Server { .. } => None,
        };
        Either::Left(ready(begun.and_then(|()| {
            let guard = nested.ok_or(Error::Closed)?;
            Ok(Transaction {
                slot: Slot::Nested(guard),
                finished: false,
            })
        })))
    }

    /// Runs a synchronous unit of work inside this transaction, in one call
    /// (on the server thread for a background database). An error or panic
    /// from `work` leaves the transaction open for the caller to roll back
    /// (the panic becomes [`Error::Panic`]).
    pub fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Conn<'_>) -> Result<R> + Send + 'static,
    ) -> impl Future<Output = Result<R>> + Send {
        self.run_on(move |conn| {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&Conn::new(conn))));
            outcome.unwrap_or_else(|panic| Err(Error::from_panic(panic)))
        })
    }

    /// Runs `work` in a savepoint: committed on `Ok`, rolled back on `Err`
    /// or panic.
    pub fn savepoint<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Conn<'_>) -> Result<R> + Send + 'static,
    ) -> impl Future<Output = Result<R>> + Send {
        self.run_on(move |conn| write_unit(conn, work))
    }
}

/// Rolls a lane back if dropped: armed while a `Begin` is in flight, and
/// forgotten once its reply arrived (then the `Transaction` takes over).
struct AbandonGuard {
    client: Arc<Client>,
    lane: Lane,
    /// Roll back every level (a root transaction) or the innermost one.
    all: bool,
    armed: bool,
}

impl AbandonGuard {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if self.armed {
            self.client.shared.rollback_detached(self.lane, self.all);
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Slot::Server {
            client, lane, root, ..
        } = &self.slot
        {
            // Queued behind this lane's earlier requests, so it runs after them.
            client.shared.rollback_detached(*lane, *root);
            return;
        }
        if let Some(Err(error)) = self.local().map(Connection::rollback) {
            tracing::warn!(target: "driftwood", %error, "rolling back a dropped transaction failed");
        }
    }
}

impl Executor for Transaction<'_> {
    fn execute(&self, statement: Statement) -> impl Future<Output = Result<Execution>> + Send {
        self.run_on(move |conn| conn.execute(&statement))
    }

    fn fetch<R: FromRow + Send + 'static>(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<R>>> + Send {
        self.run_on(move |conn| conn.fetch(&statement))
    }

    fn fetch_first<R: FromRow + Send + 'static>(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Option<R>>> + Send {
        self.run_on(move |conn| conn.fetch_first(&statement))
    }

    fn fetch_rows(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<OwnedRow>>> + Send {
        self.run_on(move |conn| conn.fetch_rows(&statement))
    }

    fn run_batch(&self, batch: Batch) -> impl Future<Output = Result<Execution>> + Send {
        self.run_on(move |conn| batch.run_on(conn))
    }
}
