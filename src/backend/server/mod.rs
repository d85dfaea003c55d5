//! The background database server: the database on its own thread, shared
//! by any number of async clients (drift's isolates, in threads).
//!
//! [`Server::start`] runs an opener closure on a new thread; the connection
//! it returns lives and dies there. A [`Server`] handle is cheap to clone and
//! `Send + Sync`; `Server::connect` makes a client — a `Db` whose queries,
//! transactions and units of work all run on the server's threads, with the
//! same API as an in-thread one. Closing one client leaves the server
//! running; [`Server::shutdown_all`] (or [`Server::shutdown`] from async
//! code) stops it and every client; a single-client server stops with its
//! client. After shutdown every call returns [`Error::Closed`] at once.
//!
//! A pool of reader threads ([`Server::open`], [`ServerBuilder::readers`])
//! runs reads outside transactions beside each other, so they never wait
//! for a long write. Readers exist only where they see the writer's data: a
//! file database in WAL mode. An in-memory database, or another journal
//! mode, gets no readers and every request runs on the writer.
//!
//! Requests cross threads through `handoff`, which spins briefly before
//! sleeping on both sides; results cross in bulk (a whole `Vec` per query).
//!
//! **Stopping never hangs.** Shutdown interrupts the statement running on
//! every thread and waits for the threads at most the shutdown timeout
//! (default [`DEFAULT_SHUTDOWN_TIMEOUT`]); Rust code inside a unit of work
//! cannot be interrupted, so a thread that does not stop in time is logged,
//! detached and the server marked dead. A thread that dies (a panic that
//! escaped driftwood's own handling) marks the server — or, for a reader,
//! that reader — dead: it is never sent work again.

mod alarm;
mod handoff;
pub mod registry;
mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};
use futures::future::{Either, select};

use handoff::Replier;
pub(crate) use handoff::Reply;
#[cfg(feature = "remote")]
pub(crate) use handoff::without_spinning;
use worker::{Reopen, Request, Task, Worker};

use super::feed::Feed;
use super::host::Host;
use super::{Inside, Lane, Pending, Route, Work, ensure_outside, is_inside};
use crate::error::{Error, Result, catch};
use crate::plan::Plan;
use crate::query::Access;
use crate::sqlite::clock::{Peer, Peers, TxClock};
use crate::sqlite::{BackupProgress, Connection, Level, OpenOptions, RestoreSteps, TxKind};

/// How many reader connections [`Server::open`] starts.
pub const DEFAULT_READERS: usize = 2;

/// How long stopping a server waits for its threads by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a server's writer runs `PRAGMA optimize` by default (see
/// [`ServerBuilder::optimize_every`]).
pub const DEFAULT_OPTIMIZE_EVERY: Duration = Duration::from_secs(60 * 60);

/// Raw SQL texts whose read/write classification is remembered per server;
/// past this many the memory starts over.
const MAX_REMEMBERED_ROUTES: usize = 4096;

/// A handle to a running (or stopped) background server. Clone it freely and
/// send it anywhere; every clone talks to the same server threads.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("running", &self.is_running())
            .field("readers", &self.shared.readers.len())
            .finish()
    }
}

/// Which connection an opener is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The one connection that writes.
    Writer,
    /// A connection of the reader pool: it must open the same database, and
    /// should open it read-only (driftwood also turns `query_only` on).
    Reader,
}

/// Settings of a server beyond its connections: how many readers, how long
/// stopping may take. [`Server::builder`] makes one.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    readers: usize,
    shutdown_timeout: Duration,
    external_writes: Option<Duration>,
    optimize_every: Option<Duration>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            readers: DEFAULT_READERS,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            external_writes: None,
            optimize_every: Some(DEFAULT_OPTIMIZE_EVERY),
        }
    }
}

impl ServerBuilder {
    /// How many reader connections to start (0 for none). Ignored where
    /// readers could not see the writer's data (in-memory, non-WAL).
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// How long stopping the server waits for its threads before it
    /// detaches them and marks the server dead.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Notices writes that other processes commit to the same file: the
    /// writer thread wakes every `poll` and, while anyone watches a query,
    /// asks SQLite (`PRAGMA data_version`) whether another connection
    /// committed; if one did, every watcher runs again (driftwood cannot
    /// know what such a write touched) and `table_updates` listeners get
    /// an item with no updates. Off by default: only this process writes.
    pub fn detect_external_writes(mut self, poll: Duration) -> Self {
        self.external_writes = Some(poll);
        self
    }

    /// How often the writer runs `PRAGMA optimize`, which refreshes the
    /// query planner's statistics where they are stale — what SQLite
    /// recommends for long-lived connections: the first run checks every
    /// table (`PRAGMA optimize = 0x10002`), later ones the tables used
    /// since. Every [`DEFAULT_OPTIMIZE_EVERY`] (an hour) by default; `None`
    /// turns it off. It runs only while the writer is idle — no
    /// transaction open, nothing queued — and otherwise waits for the next
    /// idle moment; it waits for no lock another process holds, and a
    /// failure is logged, never fatal.
    pub fn optimize_every(mut self, every: impl Into<Option<Duration>>) -> Self {
        self.optimize_every = every.into();
        self
    }

    /// Starts the server on the database file at `path` with these
    /// connection options (readers open it read-only).
    pub fn open(
        self,
        path: impl AsRef<Path>,
        options: OpenOptions,
    ) -> impl Future<Output = Result<Server>> + Send {
        let path = path.as_ref().to_owned();
        self.start(move |role| {
            let options = options.clone().read_only(role == Role::Reader);
            Connection::open(&path, &options)
        })
    }

    /// Starts the server, running `opener` on each of its threads to open
    /// and configure that thread's connection (pragmas, custom functions,
    /// extensions). Resolves once every connection is open; an error or
    /// panic in an opener is returned here and the server stops.
    pub fn start(
        self,
        opener: impl Fn(Role) -> Result<Connection> + Send + Sync + 'static,
    ) -> impl Future<Output = Result<Server>> + Send {
        let opener = Arc::new(opener);
        let reader_openers = (0..self.readers)
            .map(|_| {
                let opener = opener.clone();
                Arc::new(move || opener(Role::Reader)) as ReaderOpener
            })
            .collect();
        launch(
            Box::new(move || opener(Role::Writer)),
            reader_openers,
            self.shutdown_timeout,
            Periodic {
                external_writes: self.external_writes,
                optimize: self.optimize_every,
            },
        )
    }
}

/// Opens one thread's connection.
type Opener = Box<dyn FnOnce() -> Result<Connection> + Send>;

/// Opens a reader's connection, again after a restore closed it.
pub(crate) type ReaderOpener = Arc<dyn Fn() -> Result<Connection> + Send + Sync>;

/// What the writer does now and then between requests.
struct Periodic {
    /// See `ServerBuilder::detect_external_writes`.
    external_writes: Option<Duration>,
    /// See `ServerBuilder::optimize_every`.
    optimize: Option<Duration>,
}

impl Server {
    /// Settings for a new server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Starts a server thread and runs `opener` on it to open and configure
    /// the connection (pragmas, custom functions, extensions; values it
    /// captures were computed by the caller). Resolves once the connection is
    /// open; an error or panic in `opener` is returned here and the thread
    /// ends. Reads and writes all run on this one connection.
    pub fn start(
        opener: impl FnOnce() -> Result<Connection> + Send + 'static,
    ) -> impl Future<Output = Result<Server>> + Send {
        let periodic = Periodic {
            external_writes: None,
            optimize: Some(DEFAULT_OPTIMIZE_EVERY),
        };
        launch(
            Box::new(opener),
            Vec::new(),
            DEFAULT_SHUTDOWN_TIMEOUT,
            periodic,
        )
    }

    /// Starts a server with a writer and `readers` reader connections, each
    /// on its own thread, each opened by `opener` on that thread (see
    /// [`ServerBuilder::start`]).
    pub fn start_with_readers(
        readers: usize,
        opener: impl Fn(Role) -> Result<Connection> + Send + Sync + 'static,
    ) -> impl Future<Output = Result<Server>> + Send {
        Server::builder().readers(readers).start(opener)
    }

    /// Starts a server on the database file at `path` with default options
    /// and [`DEFAULT_READERS`] read-only reader connections.
    pub fn open(path: impl AsRef<Path>) -> impl Future<Output = Result<Server>> + Send {
        Server::builder().open(path, OpenOptions::default())
    }

    /// Starts a server on the file at `path` with these options and this
    /// many reader connections (0 for none).
    pub fn open_with(
        path: impl AsRef<Path>,
        options: OpenOptions,
        readers: usize,
    ) -> impl Future<Output = Result<Server>> + Send {
        Server::builder().readers(readers).open(path, options)
    }

    /// The database definitions (by type) whose open sequence already ran
    /// on this server's writer.
    pub(crate) fn opened(&self) -> Arc<Mutex<Vec<std::any::TypeId>>> {
        self.shared.opened.clone()
    }

    /// A new client of this server; closing or dropping a `single_client`
    /// stops the server.
    pub(crate) fn client(&self, single_client: bool) -> Arc<Client> {
        self.shared.clients.fetch_add(1, Ordering::AcqRel);
        Arc::new(Client {
            shared: self.shared.clone(),
            closed: AtomicBool::new(false),
            single_client,
        })
    }

    /// Stops the server: the statement running on each thread is
    /// interrupted, an open transaction is rolled back, every queued
    /// request and every later call on any client gets [`Error::Closed`].
    /// Blocks until the threads ended, at most the shutdown timeout (never
    /// when called from one of the server's own threads). From async code,
    /// prefer [`Server::shutdown`], which waits without blocking.
    pub fn shutdown_all(&self) {
        self.shared.shutdown_blocking();
    }

    /// [`Server::shutdown_all`] without blocking the calling thread: the
    /// future resolves once the threads ended (at most the shutdown timeout).
    pub fn shutdown(&self) -> impl Future<Output = ()> + Send + use<> {
        self.shared.clone().shutdown_async()
    }

    /// Whether the server still accepts requests.
    pub fn is_running(&self) -> bool {
        self.shared.state.running.load(Ordering::Acquire)
    }

    /// How many reader threads are alive.
    pub fn live_readers(&self) -> usize {
        self.shared
            .readers
            .iter()
            .filter(|r| r.alive.load(Ordering::Acquire))
            .count()
    }
}

/// What a server's threads share with its handles.
struct State {
    /// False once shutdown was requested or the writer thread ended.
    running: AtomicBool,
    /// Set to stop: every thread's loop checks it, and its progress handler
    /// interrupts the statement running.
    stop: Arc<AtomicBool>,
    /// Why the server died, if one of its threads did.
    died: OnceLock<Error>,
    /// Threads started and not yet ended.
    live: AtomicUsize,
    /// Notified whenever a thread ends.
    exited: Event,
}

impl State {
    fn new() -> Self {
        State {
            running: AtomicBool::new(true),
            stop: Arc::new(AtomicBool::new(false)),
            died: OnceLock::new(),
            live: AtomicUsize::new(0),
            exited: Event::new(),
        }
    }

    /// The error for a request the server cannot take.
    fn refusal(&self) -> Error {
        self.died.get().cloned().unwrap_or(Error::Closed)
    }
}

/// A reader thread's queue, load and health.
struct Reader {
    queue: Sender<Request>,
    /// Requests sent and not yet finished.
    load: Arc<AtomicUsize>,
    /// False once the thread ended.
    alive: Arc<AtomicBool>,
}

/// What every handle and client of one server share. The last one gone
/// stops the server: nobody could reach it again.
pub(crate) struct Shared {
    writer: Sender<Request>,
    /// The writer's load, counted like a reader's: a read statement
    /// outside a transaction goes there while it is idle (nothing in
    /// flight, no transaction holding it), since its page cache is the one
    /// a write never invalidates.
    writer_load: Arc<AtomicUsize>,
    /// Set while a transaction holds the writer.
    writer_held: Arc<AtomicBool>,
    readers: Vec<Reader>,
    /// Every thread of the server with its "ended" flag, joined by
    /// whoever stops it.
    threads: Mutex<Vec<(JoinHandle<()>, Arc<AtomicBool>)>>,
    state: Arc<State>,
    /// Whether a raw SQL text is a plain read, as a reader found out.
    routes: Mutex<HashMap<String, bool>>,
    /// Set once the writer holds objects readers cannot see (`TEMP`
    /// objects, attached databases): from then on everything runs there,
    /// so every query answers as that one connection would.
    writer_private: Arc<AtomicBool>,
    /// How long a request may wait (the writer connection's busy timeout).
    busy_timeout: Duration,
    shutdown_timeout: Duration,
    /// The change feed of the database: the writer publishes, clients'
    /// watched queries follow it.
    feed: Arc<Feed>,
    /// The database definitions (by type) whose open sequence ran on the
    /// writer: it runs once per server, not once per client.
    opened: Arc<Mutex<Vec<std::any::TypeId>>>,
    /// Clients connected and not closed: a restore needs the only one.
    clients: Arc<AtomicUsize>,
}

/// Counts a reader request as finished when dropped, run or skipped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a raw query sent to a reader came back as.
enum Routed<T> {
    /// It was a plain read: its value.
    Ran(T),
    /// It is not (or the reader could not tell: `false`): the writer must
    /// run it.
    NotARead(Plan<T>, bool),
}

impl Shared {
    fn id(&self) -> usize {
        Arc::as_ptr(&self.state) as usize
    }

    fn send(&self, queue: &Sender<Request>, request: Request) -> Result<()> {
        if !self.state.running.load(Ordering::Acquire) {
            return Err(self.state.refusal());
        }
        ensure_outside(self.id())?;
        queue.send(request).map_err(|_| self.state.refusal())
    }

    /// Sends `work` over the host to `queue` in `lane`.
    fn job<R, F>(&self, queue: &Sender<Request>, lane: Lane, portable: bool, work: F) -> Pending<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Host) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = handoff::reply_with(Some(self.busy_timeout));
        let cancel = reply.cancel_flag();
        let job = Box::new(Task {
            work,
            reply,
            cancel,
        });
        match self.send(
            queue,
            Request::Run {
                lane,
                job,
                portable,
            },
        ) {
            Ok(()) => Pending::reply(answer),
            Err(error) => Pending::ready(Err(error)),
        }
    }

    /// The least busy live reader, the first on a tie: under light load
    /// one reader serves (and spins) alone instead of all taking turns.
    /// None once the writer holds objects the readers cannot see (`TEMP`
    /// objects, attached databases): from then on everything runs on the
    /// writer, so every query answers as that one connection would.
    fn pick_reader(&self) -> Option<&Reader> {
        if self.writer_private.load(Ordering::Acquire) {
            return None;
        }
        self.readers
            .iter()
            .filter(|r| r.alive.load(Ordering::Acquire))
            .min_by_key(|r| r.load.load(Ordering::Relaxed))
    }

    /// Where one read statement outside a transaction goes: the writer
    /// while it is idle (nothing in flight there, no transaction holding
    /// it) — its page cache is the one no other connection's commit
    /// invalidates (a reader's is, after every write) — else the least busy
    /// reader. `None` means the writer. A read is never queued behind work
    /// the writer is already doing: a unit of work may run as long as its
    /// closure likes. (Units of work, arbitrary user code, always go to a
    /// reader, so a long one never delays a write.)
    fn pick_for_read(&self) -> Option<&Reader> {
        let reader = self.pick_reader()?;
        let writer_idle = !self.writer_held.load(Ordering::Acquire)
            && self.writer_load.load(Ordering::Relaxed) == 0;
        if writer_idle {
            return None;
        }
        Some(reader)
    }

    /// Sends `work` to `reader`.
    fn reader_job<R, F>(&self, reader: &Reader, work: F) -> Pending<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Host) -> Result<R> + Send + 'static,
    {
        self.counted_job(&reader.queue, &reader.load, Lane::NONE, false, work)
    }

    /// Sends `work` to the writer in `lane`; a `portable` read the writer
    /// would make wait for a transaction goes on to a reader instead.
    fn writer_job<R, F>(&self, lane: Lane, portable: bool, work: F) -> Pending<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Host) -> Result<R> + Send + 'static,
    {
        let portable = portable && lane == Lane::NONE && self.pick_reader().is_some();
        self.counted_job(&self.writer, &self.writer_load, lane, portable, work)
    }

    /// Sends `work` to `queue`, counted in `load` until it ran or was dropped.
    fn counted_job<R, F>(
        &self,
        queue: &Sender<Request>,
        load: &Arc<AtomicUsize>,
        lane: Lane,
        portable: bool,
        work: F,
    ) -> Pending<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Host) -> Result<R> + Send + 'static,
    {
        load.fetch_add(1, Ordering::Relaxed);
        let done = InFlight(load.clone());
        self.job(queue, lane, portable, move |host| {
            let _done = done;
            work(host)
        })
    }

    /// Sends a request built around a reply slot to the writer; one that
    /// `waits` for its turn fails with [`Error::Busy`] if still queued after
    /// the busy timeout (a commit or rollback never gives up).
    fn ask(&self, waits: bool, make: impl FnOnce(Replier<Result<()>>) -> Request) -> Pending<()> {
        let (reply, answer) = handoff::reply_with(waits.then_some(self.busy_timeout));
        match self.send(&self.writer, make(reply)) {
            Ok(()) => Pending::reply(answer),
            Err(error) => Pending::ready(Err(error)),
        }
    }

    /// Whether a raw SQL text is known to be a plain read (or not).
    fn known_route(&self, sql: &str) -> Option<bool> {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sql)
            .copied()
    }

    fn remember_route(&self, sql: &str, read: bool) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if routes.len() >= MAX_REMEMBERED_ROUTES {
            routes.clear();
        }
        routes.insert(sql.to_owned(), read);
    }

    /// Asks the threads to stop: interrupts what they run and wakes them.
    fn stop(&self) {
        self.feed.close();
        if !self.state.stop.swap(true, Ordering::AcqRel) {
            self.state.running.store(false, Ordering::Release);
            for queue in std::iter::once(&self.writer).chain(self.readers.iter().map(|r| &r.queue))
            {
                let _ = queue.send(Request::Shutdown);
            }
        }
    }

    fn shutdown_blocking(&self) {
        self.stop();
        // A server thread cannot wait for itself; its loop ends after the
        // job that asked, and the thread is reaped by the next caller.
        if is_inside(self.id()) {
            return;
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        while self.state.live.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            let exited = self.state.exited.listen();
            if self.state.live.load(Ordering::Acquire) == 0 {
                break;
            }
            exited.wait_deadline(deadline);
        }
        self.reap();
    }

    async fn shutdown_async(self: Arc<Self>) {
        self.stop();
        if is_inside(self.id()) {
            return;
        }
        let started = Instant::now();
        while self.state.live.load(Ordering::Acquire) > 0 {
            let remaining = self.shutdown_timeout.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            let exited = self.state.exited.listen();
            if self.state.live.load(Ordering::Acquire) == 0 {
                break;
            }
            if let Either::Right(_) = select(exited, futures_timer::Delay::new(remaining)).await {
                break;
            }
        }
        self.reap();
    }

    /// Joins the threads that ended; detaches (and reports) those that did
    /// not stop in time, marking the server dead.
    fn reap(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for (thread, ended) in threads {
            if ended.load(Ordering::Acquire) {
                let _ = thread.join();
                continue;
            }
            let name = thread.thread().name().unwrap_or("driftwood").to_owned();
            tracing::error!(
                target: "driftwood",
                thread = %name,
                timeout_ms = self.shutdown_timeout.as_millis() as u64,
                "a server thread did not stop in time (Rust code in a unit of work cannot be interrupted); it is detached"
            );
            let _ = self.state.died.set(Error::ThreadDied {
                thread: name,
                message: "it did not stop within the shutdown timeout".into(),
            });
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.shutdown_blocking();
    }
}

/// One server thread, started: its queue, its handle, and the reply that
/// says whether its connection opened (and, for the writer, whether readers
/// can share its database).
struct Started {
    queue: Sender<Request>,
    thread: (JoinHandle<()>, Arc<AtomicBool>),
    opened: Reply<Result<Opened>>,
}

/// What a server thread tells clients as it runs (see `worker::Flags`).
pub(crate) use worker::Flags;

/// What a server thread reports once its connection is open.
struct Opened {
    /// Whether other connections see its data (a file in WAL mode).
    shareable: bool,
    busy_timeout: Duration,
    /// When its held transaction began, for the writer's watchdog.
    clock: Arc<TxClock>,
}

/// Marks the end of a server thread, however it ends.
struct ThreadExit {
    state: Arc<State>,
    name: String,
    /// The writer's end stops the server; a reader's marks it dead.
    reader: Option<Arc<AtomicBool>>,
    /// Set last: the thread has nothing left to run.
    ended: Arc<AtomicBool>,
}

impl Drop for ThreadExit {
    fn drop(&mut self) {
        match &self.reader {
            Some(alive) => alive.store(false, Ordering::Release),
            None => self.state.running.store(false, Ordering::Release),
        }
        if std::thread::panicking() {
            tracing::error!(target: "driftwood", thread = %self.name, "a server thread died");
            if self.reader.is_none() {
                let _ = self.state.died.set(Error::ThreadDied {
                    thread: self.name.clone(),
                    message: "it panicked".into(),
                });
            }
        }
        self.ended.store(true, Ordering::Release);
        self.state.live.fetch_sub(1, Ordering::AcqRel);
        self.state.exited.notify(usize::MAX);
    }
}

/// Starts one server thread that runs `opener`, then serves its queue.
fn start_thread(
    name: String,
    opener: Opener,
    state: &Arc<State>,
    reader: Option<Arc<AtomicBool>>,
    flags: Flags,
    feed: Arc<Feed>,
) -> Result<Started> {
    let (ready, opened) = handoff::reply::<Result<Opened>>();
    let (queue, requests) = channel::<Request>();
    state.live.fetch_add(1, Ordering::AcqRel);
    let ended = Arc::new(AtomicBool::new(false));
    let exit = ThreadExit {
        state: state.clone(),
        name: name.clone(),
        reader,
        ended: ended.clone(),
    };
    let server_id = Arc::as_ptr(state) as usize;
    let is_reader = exit.reader.is_some();
    let stop = state.stop.clone();
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let _exit = exit;
            let _inside = Inside::enter(server_id);
            let worker = catch(opener).and_then(|conn| {
                let publishes = (!is_reader).then_some(feed);
                let opened = Opened {
                    shareable: conn.file().is_some() && conn.journal_mode()? == "wal",
                    busy_timeout: conn.busy_timeout(),
                    clock: conn.clock().clone(),
                };
                Ok((
                    Worker::new(Host::new(conn, publishes), stop, flags)?,
                    opened,
                ))
            });
            match worker {
                Ok((worker, opened)) => {
                    ready.send(Ok(opened));
                    worker.serve(requests);
                }
                Err(error) => ready.send(Err(error)),
            }
        });
    let thread = match thread {
        Ok(thread) => thread,
        Err(error) => {
            state.live.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Open {
                path: format!("{name} thread"),
                message: error.to_string(),
            });
        }
    };
    Ok(Started {
        queue,
        thread: (thread, ended),
        opened,
    })
}

fn launch(
    writer: Opener,
    readers: Vec<ReaderOpener>,
    shutdown_timeout: Duration,
    periodic: Periodic,
) -> impl Future<Output = Result<Server>> + Send {
    let state = Arc::new(State::new());
    let feed = Feed::new();
    let writer_private = Arc::new(AtomicBool::new(false));
    let writer_held = Arc::new(AtomicBool::new(false));
    let reader_queues = Arc::new(OnceLock::new());
    let reader_clocks: Peers = Arc::new(OnceLock::new());
    let started = start_thread(
        "driftwood-writer".into(),
        writer,
        &state,
        None,
        Flags {
            private: writer_private.clone(),
            held: writer_held.clone(),
            readers: reader_queues.clone(),
            external_writes: periodic.external_writes,
            optimize: periodic.optimize,
            peers: Some(reader_clocks.clone()),
            reopen: None,
        },
        feed.clone(),
    );
    async move {
        let writer = started?;
        let mut shared = Shared {
            writer: writer.queue,
            writer_load: Arc::new(AtomicUsize::new(0)),
            writer_held,
            readers: Vec::new(),
            threads: Mutex::new(vec![writer.thread]),
            state,
            routes: Mutex::new(HashMap::new()),
            writer_private,
            busy_timeout: crate::sqlite::OpenOptions::default().busy_timeout,
            shutdown_timeout,
            feed,
            opened: Arc::default(),
            clients: Arc::default(),
        };
        // The writer opens first: it sets the journal mode readers rely on.
        // (Returning early drops `shared`, which stops what was started.)
        let opened = writer.opened.await?;
        shared.busy_timeout = opened.busy_timeout;
        let shareable = opened.shareable;
        if !shareable && !readers.is_empty() {
            tracing::debug!(target: "driftwood", "no reader threads: they could not see the writer's data (in-memory or non-WAL database)");
        }
        let readers = if shareable { readers } else { Vec::new() };
        let mut pending = Vec::new();
        for (n, opener) in readers.into_iter().enumerate() {
            let alive = Arc::new(AtomicBool::new(true));
            let reopen = Reopen {
                opener,
                feed: shared.feed.clone(),
            };
            let first = reopen.clone();
            let reader = start_thread(
                reader_name(n),
                Box::new(move || first.open()),
                &shared.state,
                Some(alive.clone()),
                Flags {
                    reopen: Some(reopen),
                    ..Flags::default()
                },
                shared.feed.clone(),
            )?;
            shared
                .threads
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .push(reader.thread);
            shared.readers.push(Reader {
                queue: reader.queue,
                load: Arc::new(AtomicUsize::new(0)),
                alive,
            });
            pending.push(reader.opened);
        }
        let mut clocks = Vec::new();
        for (n, opened) in pending.into_iter().enumerate() {
            clocks.push(Peer {
                name: reader_name(n),
                clock: opened.await?.clock,
            });
        }
        let _ = reader_clocks.set(clocks);
        let _ = reader_queues.set(shared.readers.iter().map(|r| r.queue.clone()).collect());
        Ok(Server {
            shared: Arc::new(shared),
        })
    }
}

/// The name of reader thread `n`.
pub(crate) fn reader_name(n: usize) -> String {
    format!("driftwood-reader-{n}")
}

/// One client of a server: the backend of a `Db` connected to it.
pub(crate) struct Client {
    shared: Arc<Shared>,
    closed: AtomicBool,
    /// Closing or dropping it stops the server.
    single_client: bool,
}

impl Client {
    pub(crate) fn server_id(&self) -> usize {
        self.shared.id()
    }

    pub(crate) fn feed(&self) -> &Arc<Feed> {
        &self.shared.feed
    }

    fn refused(&self) -> Option<Error> {
        self.closed.load(Ordering::Acquire).then_some(Error::Closed)
    }

    /// Runs `plan`: a read outside a transaction on a reader, the rest on
    /// the writer; raw SQL that returns rows goes to a reader once a reader
    /// found it to be a plain read.
    pub(crate) fn run<T: Send + 'static>(&self, lane: Lane, plan: Plan<T>) -> Pending<T> {
        if let Some(error) = self.refused() {
            return Pending::ready(Err(error));
        }
        let shared = &self.shared;
        // Whether any connection may run it, and the reader picked for it.
        let (portable, reader) = match (lane, plan.statement.access) {
            (Lane::NONE, Access::Read) => (true, shared.pick_for_read()),
            (Lane::NONE, Access::Unknown) if shared.writer_private.load(Ordering::Acquire) => {
                (false, None)
            }
            (Lane::NONE, Access::Unknown) => match shared.known_route(&plan.statement.sql) {
                Some(true) => (true, shared.pick_for_read()),
                Some(false) => (false, None),
                None => match shared.pick_reader() {
                    Some(reader) => return self.classify_on(reader, plan),
                    None => (false, None),
                },
            },
            _ => (false, None),
        };
        let run = move |host: &mut Host| host.run_plan_in(lane, &plan);
        match reader {
            Some(reader) => shared.reader_job(reader, run),
            None => shared.writer_job(lane, portable, run),
        }
    }

    /// Runs `reads` — plain reads outside any transaction — one after
    /// another on one connection, sent in one handoff, answered in one
    /// reply and read from one snapshot (one read transaction's locks
    /// instead of one per read): many small pipelined reads cost one thread
    /// hop instead of one each. Each read's flag, once set, skips it or
    /// interrupts its statement, as dropping its own future would.
    pub(crate) fn run_reads<T: Send + 'static>(
        &self,
        reads: Vec<(Plan<T>, Arc<AtomicBool>)>,
    ) -> Pending<Vec<Result<T>>> {
        if let Some(error) = self.refused() {
            return Pending::ready(Err(error));
        }
        debug_assert!(
            reads
                .iter()
                .all(|(plan, _)| plan.statement.access == Access::Read)
        );
        let run = move |host: &mut Host| {
            let interrupt = host.interrupt().clone();
            host.run_in(Lane::NONE, |conn| {
                let mut snapshot = conn.begin(TxKind::Deferred).ok();
                let results = reads.into_iter().map(|(plan, cancelled)| {
                    if cancelled.load(Ordering::Acquire) {
                        return Err(Error::Interrupted {
                            sql: plan.statement.sql.to_string(),
                        });
                    }
                    // SQLite may end the snapshot on an error: the reads
                    // after it run on their own.
                    forget_if_ended(conn, &mut snapshot);
                    interrupt.watch(&cancelled);
                    let result = conn.run(&plan);
                    interrupt.clear();
                    result
                });
                let results: Vec<Result<T>> = results.collect();
                // If the last read ended it, there is nothing to commit
                // and the answers stand.
                forget_if_ended(conn, &mut snapshot);
                let Some(level) = snapshot else {
                    return Ok(results);
                };
                // A read commits nothing; but if the snapshot cannot end,
                // nothing in it is claimed to have worked.
                match conn.commit(level) {
                    Ok(()) => Ok(results),
                    Err(error) => {
                        let _ = conn.rollback_all();
                        Ok(results.into_iter().map(|_| Err(error.clone())).collect())
                    }
                }
            })
        };
        match self.shared.pick_for_read() {
            Some(reader) => self.shared.reader_job(reader, run),
            None => self.shared.writer_job(Lane::NONE, true, run),
        }
    }

    /// Sends raw SQL to `reader`, which asks SQLite whether it only reads:
    /// runs it there if so, else hands it to the writer; remembers which.
    fn classify_on<T: Send + 'static>(&self, reader: &Reader, plan: Plan<T>) -> Pending<T> {
        let shared = self.shared.clone();
        let sql = plan.statement.sql.to_string();
        let classified = self.shared.reader_job(reader, move |host| {
            // What a reader cannot even prepare (a `TEMP` or attached table
            // of the writer's) is the writer's to answer, or to refuse.
            match host.conn().is_plain_read(&plan.statement.sql) {
                Ok(true) => host.run_plan_in(Lane::NONE, &plan).map(Routed::Ran),
                Ok(false) => Ok(Routed::NotARead(plan, true)),
                Err(_) => Ok(Routed::NotARead(plan, false)),
            }
        });
        Pending::boxed(async move {
            match classified.await? {
                Routed::Ran(value) => {
                    shared.remember_route(&sql, true);
                    Ok(value)
                }
                Routed::NotARead(plan, certain) => {
                    if certain {
                        shared.remember_route(&sql, false);
                    }
                    let run = move |host: &mut Host| host.run_plan_in(Lane::NONE, &plan);
                    shared.writer_job(Lane::NONE, false, run).await
                }
            }
        })
    }

    /// Runs `work` on a reader (for [`Route::Reader`], outside a
    /// transaction, when there is one) or on the writer.
    pub(crate) fn run_work<R: Send + 'static>(
        &self,
        lane: Lane,
        route: Route,
        work: impl Work<R>,
    ) -> Pending<R> {
        if let Some(error) = self.refused() {
            return Pending::ready(Err(error));
        }
        let run = move |host: &mut Host| host.run_in(lane, work);
        if route == Route::Reader
            && lane == Lane::NONE
            && let Some(reader) = self.shared.pick_reader()
        {
            return self.shared.reader_job(reader, run);
        }
        self.shared.writer_job(lane, route == Route::Reader, run)
    }

    pub(crate) fn begin(
        &self,
        lane: Lane,
        level: Level,
        kind: TxKind,
        parent: Option<Lane>,
    ) -> Pending<()> {
        if let Some(error) = self.refused() {
            return Pending::ready(Err(error));
        }
        self.shared.ask(true, |reply| Request::Begin {
            lane,
            level,
            kind,
            parent,
            reply,
        })
    }

    /// After this client closed, nothing commits: the transaction is rolled
    /// back (so it never keeps the writer) and the commit fails.
    pub(crate) fn commit(&self, lane: Lane, level: Level) -> Pending<()> {
        if let Some(error) = self.refused() {
            self.rollback_detached(lane, level);
            return Pending::ready(Err(error));
        }
        self.shared
            .ask(false, |reply| Request::Commit { lane, level, reply })
    }

    pub(crate) fn rollback(&self, lane: Lane, level: Level) -> Pending<()> {
        self.shared.ask(false, |reply| Request::Rollback {
            lane,
            level,
            reply: Some(reply),
        })
    }

    /// Queued behind the lane's earlier requests, so it runs after them.
    pub(crate) fn rollback_detached(&self, lane: Lane, level: Level) {
        let request = Request::Rollback {
            lane,
            level,
            reply: None,
        };
        // A server that is gone rolled everything back already.
        let _ = self.shared.writer.send(request);
    }

    /// Closes this client; a single client also stops its server (waiting
    /// for its threads without blocking).
    pub(crate) fn close(&self) -> Pending<()> {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.shared.clients.fetch_sub(1, Ordering::AcqRel);
        }
        // This client's watched queries and update listeners end.
        self.shared
            .feed
            .handle_closed(self as *const Client as usize);
        if !self.single_client {
            return Pending::ready(Ok(()));
        }
        let shutdown = self.shared.clone().shutdown_async();
        Pending::boxed(async move {
            shutdown.await;
            Ok(())
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || !self.shared.state.running.load(Ordering::Acquire)
    }

    /// Replaces the database with the backup at `source` on the writer
    /// (see `Host::restore`), with the readers closed meanwhile (see
    /// `Worker::park_readers`). Refused while another client is connected,
    /// checked here and again on the writer.
    pub(crate) fn restore(
        &self,
        source: std::path::PathBuf,
        mut progress: Box<dyn FnMut(BackupProgress) + Send>,
        prepare: fn(&Connection) -> Result<()>,
    ) -> Pending<()> {
        if let Some(error) = self.refused() {
            return Pending::ready(Err(error));
        }
        let clients = self.shared.clients.clone();
        let refusal = move || {
            let others = clients.load(Ordering::Acquire).saturating_sub(1);
            (others > 0).then(|| Error::InUse {
                message: format!(
                    "{others} other client(s) of its server are connected: close them first"
                ),
            })
        };
        if let Some(error) = refusal() {
            return Pending::ready(Err(error));
        }
        let (reply, answer) = handoff::reply();
        let cancel = reply.cancel_flag();
        let (gave_up, stop) = (cancel.clone(), self.shared.state.stop.clone());
        let opened = self.shared.opened.clone();
        let work = move |host: &mut Host| {
            if let Some(error) = refusal() {
                return Err(error);
            }
            let interrupted = || gave_up.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed);
            let steps = RestoreSteps {
                progress: &mut *progress,
                prepare: &prepare,
                interrupted: &interrupted,
            };
            host.restore(&source, steps)?;
            // The restored file may hold other definitions' tables at
            // other versions: their open sequences run again.
            opened.lock().unwrap_or_else(|e| e.into_inner()).clear();
            Ok(())
        };
        let job = Box::new(Task {
            work,
            reply,
            cancel,
        });
        match self
            .shared
            .send(&self.shared.writer, Request::Restore { job })
        {
            Ok(()) => Pending::reply(answer),
            Err(error) => Pending::ready(Err(error)),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if !*self.closed.get_mut() {
            self.shared.clients.fetch_sub(1, Ordering::AcqRel);
        }
        if self.single_client {
            self.shared.shutdown_blocking();
        }
    }
}

/// Rolls back and forgets `snapshot` if SQLite ended its transaction on its
/// own (an error that rolls back).
fn forget_if_ended(conn: &Connection, snapshot: &mut Option<Level>) {
    if let Some(level) = *snapshot
        && conn.ensure_not_poisoned().is_err()
    {
        let _ = conn.rollback(level);
        *snapshot = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ends a thread the way an escaped panic would, holding `exit`.
    fn die_with(exit: ThreadExit) {
        let thread = std::thread::spawn(move || {
            let _exit = exit;
            panic!("a panic escaped the worker");
        });
        assert!(thread.join().is_err());
    }

    #[test]
    fn a_dead_thread_marks_its_reader_or_the_server_dead() {
        let state = Arc::new(State::new());
        state.live.store(2, Ordering::Release);
        let alive = Arc::new(AtomicBool::new(true));
        die_with(ThreadExit {
            state: state.clone(),
            name: "driftwood-reader-0".into(),
            reader: Some(alive.clone()),
            ended: Arc::new(AtomicBool::new(false)),
        });
        assert!(
            !alive.load(Ordering::Acquire),
            "the reader is never chosen again"
        );
        assert!(
            state.running.load(Ordering::Acquire),
            "a reader's death leaves the server up"
        );
        assert_eq!(state.refusal(), Error::Closed);

        let ended = Arc::new(AtomicBool::new(false));
        die_with(ThreadExit {
            state: state.clone(),
            name: "driftwood-writer".into(),
            reader: None,
            ended: ended.clone(),
        });
        assert!(!state.running.load(Ordering::Acquire));
        assert!(ended.load(Ordering::Acquire));
        assert_eq!(state.live.load(Ordering::Acquire), 0);
        assert_eq!(
            state.refusal().to_string(),
            "the database thread `driftwood-writer` died: it panicked"
        );
    }
}
