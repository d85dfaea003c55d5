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

use futures::future::{AbortHandle, AbortRegistration, Abortable, BoxFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};

use super::wire::{self, Outcome, ServerMessage};
use crate::Pending;
use crate::backend::Lane;
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

/// A request the client still waits for.
struct Entry {
    serial: u64,
    cancel: Cancel,
}

/// Which request: the client's id and the server's serial number.
#[derive(Clone, Copy)]
pub(super) struct Ticket {
    id: u64,
    serial: u64,
}

/// What a future of [`Running`] yields: one request's outcome (none if it
/// was cancelled), or a group's.
pub(super) enum Finished {
    One(Ticket, Option<Outcome>),
    Group(Vec<(Ticket, Result<Outcome>)>),
}

/// The requests of one connection in flight.
pub(super) struct Running {
    futures: FuturesUnordered<BoxFuture<'static, Finished>>,
    /// The requests the client waits for, by id, to cancel them; only
    /// these get replies.
    waited: HashMap<u64, Entry>,
    next_serial: u64,
    /// Requests started and not finished (cancelled ones too, until their
    /// futures end): what `max_in_flight` limits.
    in_flight: usize,
    /// Reads gathered to run together, not sent yet, with their cancel
    /// flags. (Each plan holds its share of the memory budget, given back
    /// when the server connection is done with it.)
    gathered: Vec<(Ticket, Plan<Outcome>, Arc<AtomicBool>)>,
    /// The largest reply the client accepts.
    client_max_frame: u32,
}

impl Running {
    /// Nothing in flight yet, for a client that accepts replies of up to
    /// `client_max_frame` bytes.
    pub(super) fn new(client_max_frame: u32) -> Self {
        Running {
            futures: FuturesUnordered::new(),
            waited: HashMap::new(),
            next_serial: 0,
            in_flight: 0,
            gathered: Vec::new(),
            client_max_frame,
        }
    }

    /// How many requests are in flight (gathered ones included).
    pub(super) fn len(&self) -> usize {
        self.in_flight
    }

    /// Whether nothing runs (nothing is gathered between bursts).
    pub(super) fn is_empty(&self) -> bool {
        self.futures.is_empty()
    }

    /// A ticket for request `id`, waited for from now on with `cancel`; or
    /// `None`, with an error reply in `out`, if a request of that id is in
    /// flight already.
    fn admit(&mut self, id: u64, cancel: Cancel, out: &mut Vec<u8>) -> Option<Ticket> {
        if self.waited.contains_key(&id) {
            let error = Error::invalid_argument(format!(
                "request id {id} is already in flight: ids must be unique among requests in flight"
            ));
            self.refuse(id, error, out);
            return None;
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        self.waited.insert(id, Entry { serial, cancel });
        self.in_flight += 1;
        Some(Ticket { id, serial })
    }

    /// Starts request `id` — sent to the backend by `pending` — after
    /// every read gathered before it.
    pub(super) fn start(
        &mut self,
        client: &Client,
        id: u64,
        pending: impl FnOnce() -> Pending<Outcome>,
        out: &mut Vec<u8>,
    ) {
        self.send_gathered(client);
        let (abort, registration) = AbortHandle::new_pair();
        let Some(ticket) = self.admit(id, Cancel::Abort(abort), out) else {
            return;
        };
        self.run(ticket, pending, registration);
    }

    fn run(
        &mut self,
        ticket: Ticket,
        pending: impl FnOnce() -> Pending<Outcome>,
        registration: AbortRegistration,
    ) {
        let pending = Abortable::new(Unspun(without_spinning(pending)), registration);
        self.futures.push(
            async move {
                let outcome = pending
                    .await
                    .ok()
                    .map(|result| result.unwrap_or_else(|error| Outcome::Failed { error }));
                Finished::One(ticket, outcome)
            }
            .boxed(),
        );
    }

    /// Gathers read `id` to run with the reads that come with it; sends
    /// them once [`GROUP_LIMIT`] are gathered.
    pub(super) fn gather(
        &mut self,
        client: &Client,
        id: u64,
        plan: Plan<Outcome>,
        out: &mut Vec<u8>,
    ) {
        let flag = Arc::new(AtomicBool::new(false));
        let Some(ticket) = self.admit(id, Cancel::Flag(flag.clone()), out) else {
            return;
        };
        self.gathered.push((ticket, plan, flag));
        if self.gathered.len() >= GROUP_LIMIT {
            self.send_gathered(client);
        }
    }

    /// Whether the client still waits for `ticket`'s request.
    fn is_waited(&self, ticket: Ticket) -> bool {
        self.waited
            .get(&ticket.id)
            .is_some_and(|entry| entry.serial == ticket.serial)
    }

    /// Sends the reads gathered so far: one on its own, several together.
    pub(super) fn send_gathered(&mut self, client: &Client) {
        let mut gathered = std::mem::take(&mut self.gathered);
        if gathered.len() <= 1 {
            let Some((ticket, plan, _)) = gathered.pop() else {
                return;
            };
            // Cancelled in its own burst: it never starts.
            if !self.is_waited(ticket) {
                self.in_flight -= 1;
                return;
            }
            let (abort, registration) = AbortHandle::new_pair();
            if let Some(entry) = self.waited.get_mut(&ticket.id) {
                entry.cancel = Cancel::Abort(abort);
            }
            self.run(ticket, || client.run(Lane::NONE, plan), registration);
            return;
        }
        // Whatever ends the group's future — it finished, or the
        // connection ended — ends every read in it.
        let (tickets, reads): (Vec<Ticket>, Vec<_>) = gathered
            .into_iter()
            .map(|(ticket, plan, flag)| (ticket, (plan, flag)))
            .unzip();
        let flags = FlagsOnDrop(reads.iter().map(|(_, flag)| flag.clone()).collect());
        let pending = Unspun(without_spinning(|| client.run_reads(reads)));
        self.futures.push(
            async move {
                let results = match pending.await {
                    Ok(results) => results,
                    Err(error) => vec![Err(error); tickets.len()],
                };
                drop(flags);
                Finished::Group(tickets.into_iter().zip(results).collect())
            }
            .boxed(),
        );
    }

    /// Cancels request `id`; whether it was in flight.
    pub(super) fn cancel(&mut self, id: u64) -> bool {
        match self.waited.remove(&id) {
            Some(entry) => {
                entry.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// The next requests to finish.
    pub(super) async fn next(&mut self) -> Option<Finished> {
        self.futures.next().await
    }

    /// Requests finished: the reply of each the client still waits for
    /// goes into `out`.
    pub(super) fn finished(&mut self, finished: Finished, out: &mut Vec<u8>) {
        match finished {
            Finished::One(ticket, outcome) => {
                self.in_flight -= 1;
                if self.take_waited(ticket)
                    && let Some(outcome) = outcome
                {
                    self.reply(ticket.id, outcome, out);
                }
            }
            Finished::Group(results) => {
                self.in_flight -= results.len();
                for (ticket, result) in results {
                    if self.take_waited(ticket) {
                        let outcome = result.unwrap_or_else(|error| Outcome::Failed { error });
                        self.reply(ticket.id, outcome, out);
                    }
                }
            }
        }
    }

    /// Stops waiting for `ticket`'s request; whether the client waited.
    fn take_waited(&mut self, ticket: Ticket) -> bool {
        if !self.is_waited(ticket) {
            return false;
        }
        self.waited.remove(&ticket.id);
        true
    }

    /// Answers request `id` with `error` at once: it never ran.
    pub(super) fn refuse(&self, id: u64, error: Error, out: &mut Vec<u8>) {
        self.reply(id, Outcome::Failed { error }, out);
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

/// Sets every flag when dropped: the reads of a group whose future ended.
struct FlagsOnDrop(Vec<Arc<AtomicBool>>);

impl Drop for FlagsOnDrop {
    fn drop(&mut self) {
        for flag in &self.0 {
            flag.store(true, Ordering::Release);
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
