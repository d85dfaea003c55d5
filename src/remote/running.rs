//! The requests one connection has in flight: each a future its loop
//! polls, found by id to cancel it, and answered in the order they finish.
//!
//! Plain reads outside a transaction that arrive together — pipelined,
//! read from the stream in one go — run together: up to [`GROUP_LIMIT`]
//! of them go to one server connection in one handoff and come back in one
//! reply (see `Client::run_reads`), so a burst of small reads costs one
//! thread hop and one write instead of one each. Each keeps its own cancel
//! flag: a cancelled read that has not started is skipped, and one that is
//! running is interrupted, as a request on its own is. No reply follows a
//! cancelled request, grouped or not.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::{AbortHandle, BoxFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};

use super::budget::Share;
use super::wire::{self, Outcome, ServerMessage};
use crate::Pending;
use crate::backend::server::{Client, without_spinning};
use crate::error::{Error, Result};
use crate::plan::Plan;

/// The most reads sent to a server connection in one handoff: enough to
/// share the hop, few enough that a burst spreads over the writer and the
/// readers rather than queueing on one of them.
pub(super) const GROUP_LIMIT: usize = 16;

/// How a request in flight is cancelled.
enum Cancel {
    /// Dropping its future cancels it.
    Abort(AbortHandle),
    /// It runs in a group: its flag skips or interrupts it there.
    Flag(Arc<AtomicBool>),
}

impl Cancel {
    fn cancel(&self) {
        match self {
            Cancel::Abort(abort) => abort.abort(),
            Cancel::Flag(flag) => flag.store(true, Ordering::Release),
        }
    }
}

/// What a future of [`Running`] yields: one request's outcome (none if it
/// was cancelled), or a group's.
pub(super) enum Finished {
    One(u64, Option<Outcome>),
    Group(Vec<(u64, Result<Outcome>)>),
}

/// The requests of one connection in flight.
pub(super) struct Running {
    futures: FuturesUnordered<BoxFuture<'static, Finished>>,
    /// Every request in flight by id, to cancel it; only these get replies.
    cancels: HashMap<u64, Cancel>,
    /// Reads gathered to run together, not sent yet, with their ids and
    /// their shares of the memory budget.
    gathered: Vec<(Plan<Outcome>, Arc<AtomicBool>)>,
    gathered_ids: Vec<u64>,
    gathered_shares: Vec<Share>,
    /// The largest reply the client accepts.
    client_max_frame: u32,
}

impl Running {
    /// Nothing in flight yet, for a client that accepts replies of up to
    /// `client_max_frame` bytes.
    pub(super) fn new(client_max_frame: u32) -> Self {
        Running {
            futures: FuturesUnordered::new(),
            cancels: HashMap::new(),
            gathered: Vec::new(),
            gathered_ids: Vec::new(),
            gathered_shares: Vec::new(),
            client_max_frame,
        }
    }

    /// How many requests are in flight (gathered ones included).
    pub(super) fn len(&self) -> usize {
        self.cancels.len()
    }

    /// Whether nothing runs (nothing is gathered between bursts).
    pub(super) fn is_empty(&self) -> bool {
        self.futures.is_empty()
    }

    /// Starts request `id` — sent to the backend by `pending` — after
    /// every read gathered before it; its `share` of the memory budget
    /// comes back when it finishes.
    pub(super) fn start(
        &mut self,
        client: &Client,
        id: u64,
        share: Share,
        pending: impl FnOnce() -> Pending<Outcome>,
    ) {
        self.send_gathered(client);
        let pending = without_spinning(pending);
        let (pending, abort) = futures::future::abortable(Unspun(pending));
        self.cancels.insert(id, Cancel::Abort(abort));
        self.futures.push(
            async move {
                let outcome = pending
                    .await
                    .ok()
                    .map(|result| result.unwrap_or_else(|error| Outcome::Failed { error }));
                drop(share);
                Finished::One(id, outcome)
            }
            .boxed(),
        );
    }

    /// Gathers read `id` to run with the reads that come with it; sends
    /// them once [`GROUP_LIMIT`] are gathered.
    pub(super) fn gather(&mut self, client: &Client, id: u64, plan: Plan<Outcome>, share: Share) {
        let flag = Arc::new(AtomicBool::new(false));
        self.cancels.insert(id, Cancel::Flag(flag.clone()));
        self.gathered.push((plan, flag));
        self.gathered_ids.push(id);
        self.gathered_shares.push(share);
        if self.gathered.len() >= GROUP_LIMIT {
            self.send_gathered(client);
        }
    }

    /// Sends the reads gathered so far: one on its own, several together.
    pub(super) fn send_gathered(&mut self, client: &Client) {
        let ids = std::mem::take(&mut self.gathered_ids);
        let mut reads = std::mem::take(&mut self.gathered);
        let mut shares = std::mem::take(&mut self.gathered_shares);
        if reads.len() <= 1 {
            let (Some((plan, _)), Some(&id), Some(share)) =
                (reads.pop(), ids.first(), shares.pop())
            else {
                return;
            };
            self.cancels.remove(&id);
            self.start(client, id, share, || {
                client.run(crate::backend::Lane::NONE, plan)
            });
            return;
        }
        let pending = Unspun(without_spinning(|| client.run_reads(reads)));
        self.futures.push(
            async move {
                let results = match pending.await {
                    Ok(results) => results,
                    Err(error) => vec![Err(error); ids.len()],
                };
                drop(shares);
                Finished::Group(ids.into_iter().zip(results).collect())
            }
            .boxed(),
        );
    }

    /// Answers request `id` with `error` at once: it never ran.
    pub(super) fn refuse(&self, id: u64, error: Error, out: &mut Vec<u8>) {
        self.reply(id, Outcome::Failed { error }, out);
    }

    /// Cancels request `id`; whether it was in flight.
    pub(super) fn cancel(&mut self, id: u64) -> bool {
        match self.cancels.remove(&id) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// The next requests to finish.
    pub(super) async fn next(&mut self) -> Option<Finished> {
        self.futures.next().await
    }

    /// Requests finished: the reply of each not cancelled goes into `out`.
    pub(super) fn finished(&mut self, finished: Finished, out: &mut Vec<u8>) {
        match finished {
            Finished::One(id, outcome) => {
                if self.cancels.remove(&id).is_some()
                    && let Some(outcome) = outcome
                {
                    self.reply(id, outcome, out);
                }
            }
            Finished::Group(results) => {
                for (id, result) in results {
                    if self.cancels.remove(&id).is_some() {
                        let outcome = result.unwrap_or_else(|error| Outcome::Failed { error });
                        self.reply(id, outcome, out);
                    }
                }
            }
        }
    }

    /// Request `id`'s reply into `out`, or an error for it if the reply is
    /// longer than the client accepts.
    fn reply(&self, id: u64, outcome: Outcome, out: &mut Vec<u8>) {
        let frame = wire::encode(&ServerMessage::Reply { id, outcome });
        let limit = self.client_max_frame as usize;
        if frame.len() - 4 <= limit {
            out.extend(frame);
            return;
        }
        // Too long for the client to read: this request fails, the
        // connection goes on.
        let error = Error::LimitReached {
            message: format!(
                "the reply is {} bytes, over the client's frame limit of {limit} bytes",
                frame.len() - 4
            ),
        };
        let outcome = Outcome::Failed { error };
        out.extend(wire::encode(&ServerMessage::Reply { id, outcome }));
    }
}

impl Drop for Running {
    /// The connection ended: every request still in flight is cancelled
    /// (a grouped read's future is not its own, so its flag is set).
    fn drop(&mut self) {
        for cancel in self.cancels.values() {
            cancel.cancel();
        }
    }
}

/// A request's future polled without spinning for its reply: the loop that
/// polls it has other requests to read and answer meanwhile.
struct Unspun<T>(Pending<T>);

impl<T> Future for Unspun<T> {
    type Output = Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<T>> {
        let pending = &mut self.0;
        without_spinning(|| std::pin::Pin::new(pending).poll(cx))
    }
}
