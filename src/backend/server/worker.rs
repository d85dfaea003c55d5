//! A server thread: the one place its connection is used, and the closed
//! set of requests it answers.
//!
//! Requests arrive on one queue, in order, each with the lane it belongs to
//! (see `backend`). The thread owns the transaction lifecycle through its
//! [`Host`]: while a lane holds the transaction, requests of other lanes
//! wait in `waiting` and run, in order, once it ends; one that waits longer
//! than the busy timeout fails with [`Error::Busy`] (a warning names it at
//! half that). A reader thread's host never holds a transaction, so nothing
//! waits there.
//!
//! Nothing a client sends can kill the thread: requests are processed —
//! and the ones skipped or dropped at shutdown are dropped — inside
//! `catch_unwind`, so a value whose `Drop` panics only costs its own
//! request.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::handoff::{self, Next, Replier};
use crate::backend::Lane;
use crate::backend::host::{Host, busy, warn_waiting};
use crate::error::{Error, Result};
use crate::sqlite::{Level, TxKind};

/// Work sent to a server thread; it delivers its own reply.
pub(crate) trait Job: Send {
    /// Runs on the thread's connection.
    fn run(self: Box<Self>, host: &mut Host);
    /// Answers with `error` instead of running.
    fn fail(self: Box<Self>, error: Error);
    /// The flag set when the caller stops waiting (its future dropped),
    /// which the progress handler watches while the job runs.
    fn cancel_flag(&self) -> &Arc<AtomicBool>;
    /// Marks the job as started; `false` if its caller gave up on it first.
    fn start(&self) -> bool;
    /// Whether its caller gave up on it before it started.
    fn is_abandoned(&self) -> bool;
}

/// A [`Job`] made of a closure over the host and the slot for its answer.
pub(crate) struct Task<R, F> {
    pub(crate) work: F,
    pub(crate) reply: Replier<Result<R>>,
    pub(crate) cancel: Arc<AtomicBool>,
}

impl<R: Send, F: FnOnce(&mut Host) -> Result<R> + Send> Job for Task<R, F> {
    fn run(self: Box<Self>, host: &mut Host) {
        let Task { work, reply, .. } = *self;
        reply.send(work(host));
    }

    fn fail(self: Box<Self>, error: Error) {
        self.reply.send(Err(error));
    }

    fn cancel_flag(&self) -> &Arc<AtomicBool> {
        &self.cancel
    }

    fn start(&self) -> bool {
        self.reply.start()
    }

    fn is_abandoned(&self) -> bool {
        self.reply.is_abandoned()
    }
}

/// Everything a client can ask of a server thread.
pub(crate) enum Request {
    /// Run `job` in `lane` (inside the lane's transaction if it holds one).
    /// Skipped if its caller already gave up; interrupted if it gives up
    /// while the job's statement runs.
    /// A `portable` job is a read any connection of the database may run:
    /// rather than make it wait for a transaction, the writer hands it to a
    /// reader.
    Run {
        lane: Lane,
        job: Box<dyn Job>,
        portable: bool,
    },
    /// Open `level` in `lane`: its transaction, or a savepoint of the
    /// `parent` lane's transaction (see `Host::begin`). Skipped if its
    /// caller gave up.
    Begin {
        lane: Lane,
        level: Level,
        kind: TxKind,
        parent: Option<Lane>,
        reply: Replier<Result<()>>,
    },
    /// Commit `lane`'s `level`.
    Commit {
        lane: Lane,
        level: Level,
        reply: Replier<Result<()>>,
    },
    /// Roll back `lane`'s `level` (a dropped handle sends this without a
    /// reply slot).
    Rollback {
        lane: Lane,
        level: Level,
        reply: Option<Replier<Result<()>>>,
    },
    /// Stop: roll back what is open, answer nothing more, close.
    Shutdown,
}

impl Request {
    /// The lane whose turn the request must wait for, if it waits at all:
    /// commits and rollbacks check ownership themselves and never wait.
    fn waits_in(&self) -> Option<Lane> {
        match self {
            Request::Run { lane, .. } => Some(*lane),
            Request::Begin { lane, parent, .. } => Some(parent.unwrap_or(*lane)),
            Request::Commit { .. } | Request::Rollback { .. } | Request::Shutdown => None,
        }
    }

    /// Whether the caller stopped waiting for this request.
    fn abandoned(&self) -> bool {
        match self {
            Request::Run { job, .. } => job.is_abandoned(),
            Request::Begin { reply, .. } => reply.is_abandoned(),
            _ => false,
        }
    }

    /// Answers with `error` without running.
    fn fail(self, error: Error) {
        match self {
            Request::Run { job, .. } => job.fail(error),
            Request::Begin { reply, .. } | Request::Commit { reply, .. } => reply.send(Err(error)),
            Request::Rollback { reply, .. } => {
                if let Some(reply) = reply {
                    reply.send(Err(error));
                }
            }
            Request::Shutdown => {}
        }
    }
}

/// What a server thread shares with its clients and siblings as it runs.
#[derive(Default)]
pub(crate) struct Flags {
    /// Set once its connection holds objects other connections cannot see.
    pub(crate) private: Arc<AtomicBool>,
    /// Set while a transaction holds its connection.
    pub(crate) held: Arc<AtomicBool>,
    /// The readers' queues (filled once they started): where the writer
    /// hands a portable read that would wait for a transaction.
    pub(crate) readers: Arc<OnceLock<Vec<Sender<Request>>>>,
    /// How often the writer asks whether another process committed, while
    /// anyone watches (see `ServerBuilder::detect_external_writes`).
    pub(crate) external_writes: Option<Duration>,
}

/// A request waiting for another lane's transaction to end.
struct Waiting {
    request: Request,
    since: Instant,
    warned: bool,
}

/// The cancel flag of the request running now, watched by SQLite's progress
/// handler so that only that request's statement is interrupted.
type CurrentCancel = Arc<Mutex<Arc<AtomicBool>>>;

/// How many SQLite virtual-machine steps run between cancellation checks.
const PROGRESS_STEPS: i32 = 1000;

pub(crate) struct Worker {
    host: Host,
    /// Requests of other lanes, waiting for the transaction to end.
    waiting: VecDeque<Waiting>,
    current: CurrentCancel,
    /// Set when the server shuts down: stops the loop and interrupts the
    /// statement running now.
    stop: Arc<AtomicBool>,
    flags: Flags,
    /// The reader the last handed-on read went to.
    next_reader: usize,
    busy_timeout: Duration,
    /// When to ask next whether another process committed.
    next_external_check: Option<Instant>,
}

impl Worker {
    /// Takes over `host` and installs driftwood's hooks on its connection
    /// (after the user's opener ran, so user setup cannot replace them).
    pub(crate) fn new(mut host: Host, stop: Arc<AtomicBool>, flags: Flags) -> Result<Self> {
        let current: CurrentCancel = Arc::new(Mutex::new(Arc::new(AtomicBool::new(false))));
        let watched = current.clone();
        let stopping = stop.clone();
        let conn = host.conn_mut();
        conn.reinstall_guard()?;
        conn.raw_mut()
            .progress_handler(
                PROGRESS_STEPS,
                Some(move || {
                    stopping.load(Ordering::Relaxed)
                        || watched
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
        host.report_private_state_to(flags.private.clone());
        let busy_timeout = host.conn().busy_timeout();
        let next_external_check = flags.external_writes.map(|every| {
            host.notice_external_writes();
            Instant::now() + every
        });
        Ok(Worker {
            host,
            waiting: VecDeque::new(),
            current,
            stop,
            flags,
            next_reader: 0,
            busy_timeout,
            next_external_check,
        })
    }

    /// Serves requests until a shutdown request, the stop flag, or until
    /// every sender is gone; then rolls back and drops what is left, so
    /// every waiting client gets [`Error::Closed`].
    pub(crate) fn serve(mut self, queue: Receiver<Request>) {
        while !self.stop.load(Ordering::Acquire) {
            match handoff::next(&queue, self.next_deadline()) {
                Next::Message(Request::Shutdown) | Next::Gone => break,
                Next::Message(request) => self.accept(request),
                Next::Timeout => {}
            }
            self.expire_waiting();
            self.check_external_writes();
        }
        self.host.rollback_everything();
        for waiting in std::mem::take(&mut self.waiting) {
            guarded(|| waiting.request.fail(Error::Closed));
        }
        while let Ok(request) = queue.try_recv() {
            guarded(|| request.fail(Error::Closed));
        }
    }

    fn accept(&mut self, request: Request) {
        if let Some(lane) = request.waits_in()
            && !self.host.admits(lane)
        {
            let request = match self.hand_on(request) {
                Ok(()) => return,
                Err(request) => request,
            };
            self.waiting.push_back(Waiting {
                request,
                since: Instant::now(),
                warned: false,
            });
            return;
        }
        guarded(|| self.process(request));
        self.run_waiting();
    }

    /// Hands a portable read to a reader instead of making it wait; gives
    /// back anything else (or everything, without readers, or once this
    /// connection holds objects a reader cannot see).
    fn hand_on(&mut self, request: Request) -> std::result::Result<(), Request> {
        if !matches!(request, Request::Run { portable: true, .. }) {
            return Err(request);
        }
        if self.host.conn().has_private_state() {
            return Err(request);
        }
        let Some(readers) = self.flags.readers.get().filter(|r| !r.is_empty()) else {
            return Err(request);
        };
        self.next_reader = (self.next_reader + 1) % readers.len();
        readers[self.next_reader].send(request).map_err(|e| e.0)
    }

    /// Runs waiting requests, in order, whose lane may run, until none can.
    fn run_waiting(&mut self) {
        let mut progressed = true;
        while progressed && !self.waiting.is_empty() {
            progressed = false;
            for waiting in std::mem::take(&mut self.waiting) {
                let admitted = waiting
                    .request
                    .waits_in()
                    .is_none_or(|lane| self.host.admits(lane));
                if admitted {
                    progressed = true;
                    guarded(|| self.process(waiting.request));
                } else {
                    self.waiting.push_back(waiting);
                }
            }
        }
    }

    fn process(&mut self, request: Request) {
        self.handle(request);
        self.flags
            .held
            .store(self.host.is_held(), Ordering::Release);
    }

    fn handle(&mut self, request: Request) {
        let started = match &request {
            Request::Run { job, .. } => job.start(),
            Request::Begin { reply, .. } => reply.start(),
            _ => true,
        };
        // Nobody waits for it any more: never start it.
        if !started {
            return;
        }
        match request {
            Request::Run { job, .. } => {
                self.set_current(job.cancel_flag().clone());
                job.run(&mut self.host);
                self.set_current(Arc::new(AtomicBool::new(false)));
            }
            Request::Begin {
                lane,
                level,
                kind,
                parent,
                reply,
            } => reply.send(self.host.begin(lane, level, kind, parent)),
            Request::Commit { lane, level, reply } => reply.send(self.host.commit(lane, level)),
            Request::Rollback { lane, level, reply } => {
                let result = self.host.rollback(lane, level);
                match reply {
                    Some(reply) => reply.send(result),
                    None => {
                        if let Err(error) = result {
                            tracing::warn!(target: "driftwood", %error, "rolling back a dropped transaction failed");
                        }
                    }
                }
            }
            Request::Shutdown => {}
        }
    }

    /// When the loop must wake up for a waiting request: to warn about it
    /// or to give up on it.
    fn next_deadline(&self) -> Option<Instant> {
        // Woken for it whether or not anyone watches yet: a watcher that
        // starts later sends the writer nothing.
        let external = self.next_external_check;
        self.waiting
            .iter()
            .map(|w| {
                let warn_after = if w.warned {
                    self.busy_timeout
                } else {
                    self.busy_timeout / 2
                };
                w.since + warn_after
            })
            .chain(external)
            .min()
    }

    /// Asks whether another process committed, when it is time to and
    /// anyone watches.
    fn check_external_writes(&mut self) {
        let (Some(due), Some(every)) = (self.next_external_check, self.flags.external_writes)
        else {
            return;
        };
        let now = Instant::now();
        if now < due || !self.host.is_watched() {
            return;
        }
        self.host.notice_external_writes();
        self.next_external_check = Some(now + every);
    }

    /// Fails the waiting requests that waited longer than the busy timeout,
    /// drops abandoned ones, and warns about those waiting long.
    fn expire_waiting(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let held = self.host.held_for();
        for waiting in std::mem::take(&mut self.waiting) {
            let waited = waiting.since.elapsed();
            if waiting.request.abandoned() {
                guarded(|| drop(waiting));
            } else if waited >= self.busy_timeout {
                guarded(|| waiting.request.fail(busy(waited, held)));
            } else {
                let mut waiting = waiting;
                if !waiting.warned && waited >= self.busy_timeout / 2 {
                    waiting.warned = true;
                    warn_waiting(waited, held);
                }
                self.waiting.push_back(waiting);
            }
        }
    }

    fn set_current(&self, flag: Arc<AtomicBool>) {
        if let Ok(mut current) = self.current.lock() {
            *current = flag;
        }
    }
}

/// Runs `work`, containing a panic to it: the thread lives on.
fn guarded(work: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(work)) {
        tracing::error!(target: "driftwood", error = %Error::from_panic(panic), "a server request panicked");
    }
}
