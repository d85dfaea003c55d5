//! The server thread: the one place a background database's writer
//! connection is used, and the closed set of requests it answers.
//!
//! Requests arrive on one queue, in order. Each carries the *lane* it
//! belongs to: a database handle's plain requests use the handle's lane, a
//! transaction gets a lane of its own. While a lane holds the write
//! transaction, requests from other lanes wait in `deferred` and run, in
//! order, once it commits, rolls back or is dropped; so nobody sees or joins
//! another's uncommitted work and nothing deadlocks.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use super::handoff::{self, Replier};
use crate::error::{Error, Result};
use crate::sqlite::{Connection, TxKind};

/// Identifies who a request comes from, for transaction ownership.
pub(crate) type Lane = u64;

/// Work to run on the writer connection; it delivers its own reply.
pub(crate) type Job = Box<dyn FnOnce(&Connection) + Send>;

/// Everything a client can ask of the server thread.
pub(crate) enum Request {
    /// Run `job`, inside `lane`'s transaction if it holds one. Skipped if
    /// `cancel` is already set; interrupted if it is set while running.
    Run {
        lane: Lane,
        job: Job,
        cancel: Arc<AtomicBool>,
    },
    /// Begin a write transaction for `lane` (a savepoint if it holds one).
    Begin {
        lane: Lane,
        reply: Replier<Result<()>>,
    },
    /// Commit `lane`'s innermost transaction level.
    Commit {
        lane: Lane,
        reply: Replier<Result<()>>,
    },
    /// Roll back `lane`'s innermost level, or every level with `all` (a
    /// dropped transaction handle sends this without waiting for a reply).
    Rollback {
        lane: Lane,
        all: bool,
        reply: Option<Replier<Result<()>>>,
    },
    /// Stop: roll back what is open, answer nothing more, close.
    Shutdown,
}

impl Request {
    fn lane(&self) -> Option<Lane> {
        match self {
            Request::Run { lane, .. }
            | Request::Begin { lane, .. }
            | Request::Commit { lane, .. }
            | Request::Rollback { lane, .. } => Some(*lane),
            Request::Shutdown => None,
        }
    }
}

/// The cancel flag of the request running now, watched by SQLite's progress
/// handler so that only that request's statement is interrupted.
pub(crate) type CurrentCancel = Arc<Mutex<Arc<AtomicBool>>>;

/// How many SQLite virtual-machine steps run between cancellation checks.
const PROGRESS_STEPS: i32 = 1000;

pub(crate) struct Worker {
    conn: Connection,
    /// The lane holding the write transaction, if any.
    owner: Option<Lane>,
    /// Requests from other lanes, waiting for `owner` to finish.
    deferred: VecDeque<Request>,
    current: CurrentCancel,
}

impl Worker {
    /// Takes over `conn` and installs driftwood's hooks on it (after the
    /// user's opener ran, so user setup cannot replace them).
    pub(crate) fn new(mut conn: Connection) -> Result<Self> {
        let current: CurrentCancel = Arc::new(Mutex::new(Arc::new(AtomicBool::new(false))));
        let watched = current.clone();
        conn.raw_mut()
            .progress_handler(
                PROGRESS_STEPS,
                Some(move || {
                    watched
                        .lock()
                        .map(|flag| flag.load(Ordering::Relaxed))
                        .unwrap_or(false)
                }),
            )
            .map_err(|e| Error::Sql {
                code: None,
                message: e.to_string(),
                sql: "progress handler".into(),
            })?;
        Ok(Worker {
            conn,
            owner: None,
            deferred: VecDeque::new(),
            current,
        })
    }

    /// Serves requests until a shutdown request or until every sender is gone.
    pub(crate) fn serve(mut self, queue: Receiver<Request>) {
        while let Some(request) = handoff::next(&queue) {
            if matches!(request, Request::Shutdown) {
                break;
            }
            self.accept(request);
        }
        if let Err(error) = self.conn.rollback_all() {
            tracing::warn!(target: "driftwood", %error, "rolling back at shutdown failed");
        }
        // Requests still queued or deferred are dropped here with their
        // repliers, so every waiting client gets `Error::Closed`.
        drop(queue);
    }

    fn accept(&mut self, request: Request) {
        if self.owner.is_some() && request.lane() != self.owner {
            self.deferred.push_back(request);
            return;
        }
        self.process(request);
        self.run_deferred();
    }

    /// Runs deferred requests, in order, while no other lane holds the writer.
    fn run_deferred(&mut self) {
        while self.owner.is_none() && !self.deferred.is_empty() {
            let waiting = std::mem::take(&mut self.deferred);
            for request in waiting {
                if self.owner.is_some() && request.lane() != self.owner {
                    self.deferred.push_back(request);
                } else {
                    self.process(request);
                }
            }
        }
    }

    fn process(&mut self, request: Request) {
        match request {
            Request::Run { job, cancel, .. } => {
                if cancel.load(Ordering::Acquire) {
                    return;
                }
                self.set_current(cancel);
                // Jobs catch their own panics; this guards the thread itself.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| job(&self.conn))) {
                    tracing::error!(target: "driftwood", error = %Error::from_panic(panic), "a server job panicked");
                }
                self.set_current(Arc::new(AtomicBool::new(false)));
            }
            Request::Begin { lane, reply } => {
                // Nobody waits for this transaction any more: never start it.
                if reply.is_cancelled() {
                    return;
                }
                let begun = self.conn.begin(TxKind::Immediate);
                if begun.is_ok() {
                    self.owner = Some(lane);
                }
                reply.send(begun);
            }
            Request::Commit { lane, reply } => {
                let result = if self.owner == Some(lane) {
                    self.commit()
                } else {
                    Err(no_transaction())
                };
                reply.send(result);
            }
            Request::Rollback { lane, all, reply } => {
                let result = if self.owner != Some(lane) {
                    Err(no_transaction())
                } else if all {
                    self.conn.rollback_all()
                } else {
                    self.conn.rollback()
                };
                self.release_if_done();
                if let Some(reply) = reply {
                    reply.send(result);
                }
            }
            Request::Shutdown => {}
        }
    }

    fn commit(&mut self) -> Result<()> {
        let result = self.conn.commit().inspect_err(|_| {
            let _ = self.conn.rollback();
        });
        self.release_if_done();
        result
    }

    fn release_if_done(&mut self) {
        if self.conn.depth() == 0 {
            self.owner = None;
        }
    }

    fn set_current(&self, flag: Arc<AtomicBool>) {
        if let Ok(mut current) = self.current.lock() {
            *current = flag;
        }
    }
}

fn no_transaction() -> Error {
    Error::invalid_argument("this transaction is no longer open")
}
