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
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::handoff::{self, Next, Replier};
use super::{ReaderOpener, reader_name};
use crate::backend::Lane;
use crate::backend::feed::Feed;
use crate::backend::host::{Host, busy, warn_waiting};
use crate::error::{Error, Result, catch};
use crate::sqlite::clock::Peers;
use crate::sqlite::{Connection, Level, OpenOptions, TxKind};

/// Work sent to a server thread; it delivers its own reply.
pub(crate) trait Job: Send {
    /// Runs on the thread's connection.
    /// Runs it; a statement interrupted because the server is `stopping`
    /// answers [`Error::Closed`], as queued requests do.
    fn run(self: Box<Self>, host: &mut Host, stopping: &AtomicBool);
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
    fn run(self: Box<Self>, host: &mut Host, stopping: &AtomicBool) {
        let Task { work, reply, .. } = *self;
        let result = match work(host) {
            Err(Error::Interrupted { .. }) if stopping.load(Ordering::Acquire) => {
                Err(Error::Closed)
            }
            result => result,
        };
        reply.send(result);
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
    /// Replace the database with a backup (the writer): `job` runs at once,
    /// waiting for no lane — refused while a transaction is open — with
    /// every reader parked meanwhile.
    Restore { job: Box<dyn Job> },
    /// Close this reader's connection, releasing its lock on the file, and
    /// say so on `parked`; open it again once `resume` says so or its
    /// sender is gone (see `Worker::park`).
    Park {
        parked: Sender<()>,
        resume: Receiver<()>,
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
            Request::Commit { .. }
            | Request::Rollback { .. }
            | Request::Restore { .. }
            | Request::Park { .. }
            | Request::Shutdown => None,
        }
    }

    /// Whether the caller stopped waiting for this request.
    fn abandoned(&self) -> bool {
        match self {
            Request::Run { job, .. } | Request::Restore { job } => job.is_abandoned(),
            Request::Begin { reply, .. } => reply.is_abandoned(),
            _ => false,
        }
    }

    /// Answers with `error` without running.
    fn fail(self, error: Error) {
        match self {
            Request::Run { job, .. } | Request::Restore { job } => job.fail(error),
            Request::Begin { reply, .. } | Request::Commit { reply, .. } => reply.send(Err(error)),
            Request::Rollback { reply, .. } => {
                if let Some(reply) = reply {
                    reply.send(Err(error));
                }
            }
            Request::Park { .. } | Request::Shutdown => {}
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
    /// How often the writer runs `PRAGMA optimize` while idle (see
    /// `ServerBuilder::optimize_every`).
    pub(crate) optimize: Option<Duration>,
    /// The readers' clocks, for the writer's watchdog of long transactions
    /// (filled once they opened); `None` on a reader.
    pub(crate) peers: Option<Peers>,
    /// How a reader opens its connection again after a restore parked it.
    pub(crate) reopen: Option<Reopen>,
}

/// How a reader opens its connection: the user's opener, then read-only
/// and following the database's feed.
#[derive(Clone)]
pub(crate) struct Reopen {
    pub(crate) opener: ReaderOpener,
    pub(crate) feed: Arc<Feed>,
}

impl Reopen {
    pub(crate) fn open(&self) -> Result<Connection> {
        let conn = catch(|| (self.opener)())?;
        conn.set_query_only(true)?;
        conn.track_changes(self.feed.switch(), false);
        Ok(conn)
    }
}

/// A job the writer runs now and then between requests: the thread wakes
/// for it even when nothing else happens.
#[derive(Debug)]
struct Periodic {
    every: Duration,
    due: Instant,
}

/// How soon a periodic job that found the writer busy tries again.
const BUSY_RETRY: Duration = Duration::from_secs(1);

impl Periodic {
    /// Every `every` (at least a millisecond, at most a year: never a spin,
    /// never an overflow).
    fn new(every: Duration) -> Periodic {
        let every = every.clamp(
            Duration::from_millis(1),
            Duration::from_secs(365 * 24 * 3600),
        );
        Periodic {
            every,
            due: Instant::now() + every,
        }
    }

    /// Whether it is due at `now`.
    fn is_due(&self, now: Instant) -> bool {
        now >= self.due
    }

    /// Due again `after` from `now` (at most its period).
    fn again(&mut self, now: Instant, after: Duration) {
        self.due = now + after.min(self.every);
    }
}

/// A request waiting for another lane's transaction to end.
struct Waiting {
    request: Request,
    since: Instant,
    warned: bool,
}

/// How many SQLite virtual-machine steps run between cancellation checks.
const PROGRESS_STEPS: i32 = 1000;

pub(crate) struct Worker {
    host: Host,
    /// Requests of other lanes, waiting for the transaction to end.
    waiting: VecDeque<Waiting>,
    /// Set when the server shuts down: stops the loop and interrupts the
    /// statement running now.
    stop: Arc<AtomicBool>,
    flags: Flags,
    /// The reader the last handed-on read went to.
    next_reader: usize,
    busy_timeout: Duration,
    /// When to ask next whether another process committed.
    external_writes: Option<Periodic>,
    /// When to run `PRAGMA optimize` next, and whether it is the first run.
    optimize: Option<(Periodic, bool)>,
    /// When the writer looks next for transactions held too long (every
    /// half `long_read_warning`), its own and the readers'.
    watchdog: Option<Periodic>,
    /// Set once this thread must stop serving (a reader that could not
    /// open its connection again).
    done: bool,
}

impl Worker {
    /// Takes over `host` and installs driftwood's hooks on its connection
    /// (after the user's opener ran, so user setup cannot replace them).
    pub(crate) fn new(mut host: Host, stop: Arc<AtomicBool>, flags: Flags) -> Result<Self> {
        install_hooks(&mut host, &stop)?;
        host.report_private_state_to(flags.private.clone());
        let busy_timeout = host.conn().busy_timeout();
        let external_writes = flags.external_writes.map(|every| {
            host.notice_external_writes();
            Periodic::new(every)
        });
        let optimize = flags.optimize.map(|every| (Periodic::new(every), true));
        let watchdog = flags.peers.as_ref().map(|peers| {
            host.conn().watch_peers(peers.clone());
            // Never more often than every 10 ms, whatever the setting.
            Periodic::new((host.conn().long_read_warning() / 2).max(Duration::from_millis(10)))
        });
        Ok(Worker {
            host,
            waiting: VecDeque::new(),
            stop,
            flags,
            next_reader: 0,
            busy_timeout,
            external_writes,
            optimize,
            watchdog,
            done: false,
        })
    }

    /// Serves requests until a shutdown request, the stop flag, or until
    /// every sender is gone; then rolls back and drops what is left, so
    /// every waiting client gets [`Error::Closed`].
    pub(crate) fn serve(mut self, queue: Receiver<Request>) {
        while !self.stop.load(Ordering::Acquire) && !self.done {
            let idle = match handoff::next(&queue, self.next_deadline()) {
                Next::Message(Request::Shutdown) | Next::Gone => break,
                Next::Message(request) => {
                    self.accept(request);
                    false
                }
                // Nothing arrived until the deadline: the queue is empty.
                Next::Timeout => true,
            };
            self.expire_waiting();
            self.run_periodic(idle);
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
            Request::Run { job, .. } | Request::Restore { job } => job.start(),
            Request::Begin { reply, .. } => reply.start(),
            _ => true,
        };
        // Nobody waits for it any more: never start it.
        if !started {
            return;
        }
        match request {
            Request::Run { job, .. } => {
                self.host.interrupt().watch(job.cancel_flag());
                job.run(&mut self.host, &self.stop);
                self.host.interrupt().clear();
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
            Request::Restore { job } => self.restore(job),
            Request::Park { parked, resume } => self.park(parked, resume),
            Request::Shutdown => {}
        }
    }

    /// Runs a restore's `job` with every reader parked, so the writer can
    /// take the file to itself; refused at once while a transaction is
    /// open (it would wait for nothing else).
    fn restore(&mut self, job: Box<dyn Job>) {
        if let Err(error) = self.host.ensure_not_held() {
            return job.fail(error);
        }
        let resumes = match self.park_readers() {
            Ok(resumes) => resumes,
            Err(error) => return job.fail(error),
        };
        self.host.interrupt().watch(job.cancel_flag());
        job.run(&mut self.host, &self.stop);
        self.host.interrupt().clear();
        // Dropping the senders lets every parked reader open again.
        drop(resumes);
    }

    /// Asks every reader to close its connection (see [`Worker::park`])
    /// and waits until they did, at most the busy timeout: a reader still
    /// running a long read fails the restore. The senders returned let
    /// them open again when dropped.
    fn park_readers(&self) -> Result<Vec<Sender<()>>> {
        let mut resumes = Vec::new();
        let mut parking = Vec::new();
        for (n, queue) in self.flags.readers.get().into_iter().flatten().enumerate() {
            let (parked, parked_rx) = channel();
            let (resume, resume_rx) = channel();
            let request = Request::Park {
                parked,
                resume: resume_rx,
            };
            // A reader that is gone holds no connection.
            if queue.send(request).is_ok() {
                resumes.push(resume);
                parking.push((n, parked_rx));
            }
        }
        let deadline = Instant::now() + self.busy_timeout;
        for (n, parked) in parking {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(RecvTimeoutError::Timeout) = parked.recv_timeout(left) {
                return Err(Error::InUse {
                    message: format!(
                        "{} is still running a read (a read unit of work, a watched query or a \
                         backup) after {} ms (the busy timeout)",
                        reader_name(n),
                        self.busy_timeout.as_millis()
                    ),
                });
            }
        }
        Ok(resumes)
    }

    /// Closes this reader's connection (releasing its lock on the file),
    /// says so on `parked`, waits for `resume` (or its sender to go, or
    /// the server to stop), then opens the connection again the way it was
    /// first opened, keeping its clock. If it cannot, the thread ends and
    /// the reader is dead.
    fn park(&mut self, parked: Sender<()>, resume: Receiver<()>) {
        let Some(reopen) = self.flags.reopen.clone() else {
            return;
        };
        // A restore that already gave up: nothing to do.
        if !matches!(resume.try_recv(), Err(TryRecvError::Empty)) {
            return;
        }
        let placeholder = match Connection::open_in_memory(&OpenOptions::default()) {
            Ok(placeholder) => placeholder,
            Err(error) => {
                tracing::warn!(target: "driftwood", %error, "a reader could not close its connection for a restore");
                return;
            }
        };
        let clock = self.host.conn().clock().clone();
        drop(std::mem::replace(
            &mut self.host,
            Host::new(placeholder, None),
        ));
        let _ = parked.send(());
        while let Err(RecvTimeoutError::Timeout) = resume.recv_timeout(Duration::from_millis(50)) {
            if self.stop.load(Ordering::Acquire) {
                break;
            }
        }
        if self.stop.load(Ordering::Acquire) {
            // The server stops: nothing to open again for.
            self.done = true;
            return;
        }
        let reopened = reopen.open().and_then(|mut conn| {
            conn.set_clock(clock);
            let mut host = Host::new(conn, None);
            install_hooks(&mut host, &self.stop)?;
            Ok(host)
        });
        match reopened {
            Ok(host) => self.host = host,
            Err(error) => {
                tracing::error!(target: "driftwood", %error, "a reader could not open its connection again after a restore; it stops");
                self.done = true;
            }
        }
    }

    /// When the loop must wake up for a waiting request: to warn about it
    /// or to give up on it.
    fn next_deadline(&self) -> Option<Instant> {
        // Woken for external writes whether or not anyone watches yet: a
        // watcher that starts later sends the writer nothing.
        let periodic = [
            self.external_writes.as_ref(),
            self.optimize.as_ref().map(|(tick, _)| tick),
            self.watchdog.as_ref(),
        ];
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
            .chain(periodic.into_iter().flatten().map(|tick| tick.due))
            .min()
    }

    /// Runs the periodic jobs that are due; each is due again a period
    /// later whether it ran or had nothing to do (never at once: the loop
    /// would spin). `idle`: the queue was empty until the deadline.
    fn run_periodic(&mut self, idle: bool) {
        if self.external_writes.is_none() && self.watchdog.is_none() && self.optimize.is_none() {
            // A reader: no clock read per request.
            return;
        }
        let now = Instant::now();
        if let Some(tick) = self.external_writes.as_mut().filter(|t| t.is_due(now)) {
            if self.host.is_watched() {
                self.host.notice_external_writes();
            }
            tick.again(now, tick.every);
        }
        if let Some(tick) = self.watchdog.as_mut().filter(|t| t.is_due(now)) {
            self.host.watch_transactions(self.flags.peers.as_ref());
            tick.again(now, tick.every);
        }
        if let Some((tick, first)) = self.optimize.as_mut().filter(|(t, _)| t.is_due(now)) {
            let busy = !idle || !self.waiting.is_empty() || self.host.conn().in_transaction();
            if busy {
                tracing::debug!(target: "driftwood", db = self.host.conn().file().unwrap_or(":memory:"), "PRAGMA optimize waits: the writer is busy");
                tick.again(now, BUSY_RETRY);
            } else {
                self.host.optimize(*first);
                *first = false;
                tick.again(now, tick.every);
            }
        }
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
}

/// Installs driftwood's hooks on `host`'s connection, after the user's
/// opener ran (so user setup cannot replace them): the authorizer again,
/// and the progress handler that interrupts the statement running when
/// its request (the host's [`Interrupt`](crate::backend::host::Interrupt))
/// is cancelled or the server `stop`s.
fn install_hooks(host: &mut Host, stop: &Arc<AtomicBool>) -> Result<()> {
    let watched = host.interrupt().clone();
    let stopping = stop.clone();
    let conn = host.conn_mut();
    conn.reinstall_guard()?;
    conn.raw_mut()
        .progress_handler(
            PROGRESS_STEPS,
            Some(move || stopping.load(Ordering::Relaxed) || watched.is_set()),
        )
        .map_err(|e| Error::Sql {
            code: None,
            message: e.to_string(),
            sql: "progress handler".into(),
        })
}

/// Runs `work`, containing a panic to it: the thread lives on.
fn guarded(work: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(work)) {
        tracing::error!(target: "driftwood", error = %Error::from_panic(panic), "a server request panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: with `detect_external_writes` on and nobody watching, a
    // check that came due returned without scheduling the next one; the
    // deadline stayed in the past and the writer's loop spun (a core at
    // 100%) until someone watched. Every periodic job, due and skipped or
    // run, is due again a period later.
    #[test]
    fn a_periodic_job_with_nothing_to_do_is_due_again_later_not_at_once() {
        let conn = Connection::open_in_memory(&OpenOptions::default()).unwrap();
        let every = Duration::from_secs(60);
        let flags = Flags {
            external_writes: Some(every),
            optimize: Some(every),
            ..Flags::default()
        };
        let host = Host::new(conn, Some(Feed::new()));
        let mut worker = Worker::new(host, Arc::new(AtomicBool::new(false)), flags).unwrap();
        let before = Instant::now();
        worker.external_writes.as_mut().unwrap().due = before;
        worker.optimize.as_mut().unwrap().0.due = before;
        assert!(!worker.host.is_watched());
        worker.run_periodic(false);
        assert!(worker.next_deadline().unwrap() >= before + BUSY_RETRY.min(every));
        worker.run_periodic(true);
        assert!(worker.next_deadline().unwrap() >= before + BUSY_RETRY);
    }
}
