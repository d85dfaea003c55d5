//! [`Pending`]: the one future type every async request returns, whichever
//! backend runs it.
//!
//! An in-thread request that could run at once is already done when the
//! call returns, so its future is ready and borrows nothing; a request sent
//! to a server thread waits for its reply slot (dropping the future cancels
//! the request, see `server::handoff`); anything that must wait its turn
//! first (a delayed connection, a writer held by another transaction) is a
//! boxed future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use super::server::Reply;
use crate::error::{Error, Result};

/// The future of a request to a database: resolves once its statement (or
/// unit of work) ran, with its result or error. Dropping it before it
/// resolves cancels the request if it has not run yet, and interrupts its
/// statement if it is running on a server thread.
///
/// A request is sent when the call that returns its `Pending` is made, not
/// when the future is first polled. So statements queued without awaiting
/// each one — build many `Pending`s, then await them — are pipelined to a
/// background server, run in the order they were made, and each still
/// resolves with its own result:
///
/// ```
/// # use driftwood::prelude::*;
/// # driftwood::block_on(async {
/// let db: Db = Db::open_in_background(":memory:").await?;
/// db.custom_statement("CREATE TABLE t (x INTEGER)", []).await?;
/// let tx = db.begin().await?;
/// let queued: Vec<_> = (0..100)
///     .map(|x| tx.custom_statement("INSERT INTO t VALUES (?)", args![x]))
///     .collect();
/// for pending in queued {
///     pending.await?;
/// }
/// tx.commit().await?;
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[must_use = "a request's result is only known once its future is awaited"]
pub struct Pending<T> {
    state: State<T>,
}

enum State<T> {
    /// Done; `None` once taken.
    Ready(Option<Result<T>>),
    /// Sent to a server thread.
    Reply(Reply<Result<T>>),
    /// Waiting for something else first.
    Boxed(BoxFuture<'static, Result<T>>),
}

impl<T> Pending<T> {
    /// A request that already finished.
    pub(crate) fn ready(result: Result<T>) -> Self {
        Pending {
            state: State::Ready(Some(result)),
        }
    }

    /// A request waiting for a server thread's reply.
    pub(crate) fn reply(reply: Reply<Result<T>>) -> Self {
        Pending {
            state: State::Reply(reply),
        }
    }

    /// A request that waits for `future`.
    pub(crate) fn boxed(future: impl Future<Output = Result<T>> + Send + 'static) -> Self {
        Pending {
            state: State::Boxed(Box::pin(future)),
        }
    }
}

impl<T> Unpin for Pending<T> {}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        match &mut this.state {
            State::Ready(result) => Poll::Ready(result.take().unwrap_or_else(|| {
                Err(Error::invalid_argument(
                    "a request's future was polled after it completed",
                ))
            })),
            State::Reply(reply) => Pin::new(reply).poll(cx),
            State::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Ready(_) => "ready",
            State::Reply(_) => "sent to a server thread",
            State::Boxed(_) => "waiting",
        };
        f.debug_struct("Pending").field("state", &state).finish()
    }
}
