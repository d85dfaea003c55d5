//! The background database server: the database on its own thread, shared
//! by any number of async clients (drift's isolates, in threads).
//!
//! [`Server::start`] runs an opener closure on a new thread; the connection
//! it returns lives and dies there. A [`Server`] handle is cheap to clone and
//! `Send + Sync`; [`Server::connect`] makes a client — a [`Db`] whose
//! queries, transactions and units of work all run on the server thread, with
//! the same API as an in-thread `Db`. Closing one client leaves the server
//! running; [`Server::shutdown_all`] stops it and every client; a
//! single-client server ([`Db::open_in_background`]) stops with its client.
//! After shutdown every call returns [`Error::Closed`] at once.
//!
//! Requests cross threads through [`handoff`], which spins briefly before
//! sleeping on both sides; results cross in bulk (a whole `Vec` per query).

mod handoff;
pub mod registry;
mod worker;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};

use futures::future::Either;

use crate::database::{Database, Db};
use crate::error::{Error, Result};
use crate::sqlite::{Connection, OpenOptions};
use handoff::Replier;
pub(crate) use worker::Lane;
use worker::{Job, Request, Worker};

/// A handle to a running (or stopped) background server. Clone it freely and
/// send it anywhere; every clone talks to the same server thread.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("running", &self.is_running())
            .finish()
    }
}

/// What every handle and client of one server share.
pub(crate) struct Shared {
    /// The writer thread's request queue. `Sender` is `Sync`; sending after
    /// the thread stopped fails, which clients report as `Closed`.
    queue: Sender<Request>,
    /// The reader threads' queues (empty without a reader pool), each with
    /// its count of requests sent and not yet finished.
    readers: Vec<(Sender<Request>, Arc<AtomicUsize>)>,
    /// Every thread of the server (writer first), joined by whoever stops it.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The server's thread ids, so a server thread never joins itself.
    thread_ids: Vec<ThreadId>,
    /// False once shutdown was requested or the writer thread ended.
    running: Arc<AtomicBool>,
    /// Source of lane numbers (see `worker`).
    next_lane: AtomicU64,
}

/// Counts a request as finished when dropped, whether it ran or was skipped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    pub(crate) fn new_lane(&self) -> Lane {
        self.next_lane.fetch_add(1, Ordering::Relaxed)
    }

    fn send(&self, request: Request) -> Result<()> {
        self.send_to(&self.queue, request)
    }

    fn send_to(&self, queue: &Sender<Request>, request: Request) -> Result<()> {
        if !self.running.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        queue.send(request).map_err(|_| Error::Closed)
    }

    /// Runs `work` on the writer connection in `lane`; a panic in it becomes
    /// [`Error::Panic`] for this caller only.
    pub(crate) fn run<R, F>(
        &self,
        lane: Lane,
        work: F,
    ) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.run_on(&self.queue, lane, work)
    }

    /// Runs `work`, which only reads, on the next reader connection (on the
    /// writer when there is no reader pool). It sees the latest commit and
    /// never waits for an open write transaction.
    pub(crate) fn run_read<R, F>(
        &self,
        lane: Lane,
        work: F,
    ) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        // The least busy reader, the first on a tie: under light load one
        // reader serves (and spins) alone instead of all taking turns.
        let reader = self
            .readers
            .iter()
            .min_by_key(|(_, load)| load.load(Ordering::Relaxed));
        let Some((queue, load)) = reader else {
            return Either::Left(self.run(lane, work));
        };
        load.fetch_add(1, Ordering::Relaxed);
        let done = InFlight(load.clone());
        Either::Right(self.run_on(queue, lane, move |conn| {
            let _done = done;
            work(conn)
        }))
    }

    fn run_on<R, F>(
        &self,
        queue: &Sender<Request>,
        lane: Lane,
        work: F,
    ) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let (replier, reply) = handoff::reply();
        let cancel = replier.cancel_flag();
        let job: Job = Box::new(move |conn| {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)));
            replier.send(outcome.unwrap_or_else(|panic| Err(Error::from_panic(panic))));
        });
        let sent = self.send_to(queue, Request::Run { lane, job, cancel });
        async move {
            sent?;
            reply.await
        }
    }

    /// Sends the request `make` builds around a reply slot; resolves to the reply.
    fn ask<M>(&self, make: M) -> impl Future<Output = Result<()>> + Send + use<M>
    where
        M: FnOnce(Replier<Result<()>>) -> Request,
    {
        let (reply, answer) = handoff::reply();
        let sent = self.send(make(reply));
        async move {
            sent?;
            answer.await
        }
    }

    /// Begins (or nests) a transaction for `lane`.
    pub(crate) fn begin(&self, lane: Lane) -> impl Future<Output = Result<()>> + Send + use<> {
        self.ask(move |reply| Request::Begin { lane, reply })
    }

    /// Commits `lane`'s innermost level.
    pub(crate) fn commit(&self, lane: Lane) -> impl Future<Output = Result<()>> + Send + use<> {
        self.ask(move |reply| Request::Commit { lane, reply })
    }

    /// Rolls back `lane`'s innermost level, or all of them.
    pub(crate) fn rollback(
        &self,
        lane: Lane,
        all: bool,
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        self.ask(move |reply| Request::Rollback {
            lane,
            all,
            reply: Some(reply),
        })
    }

    /// Rolls back without waiting (a dropped transaction handle).
    pub(crate) fn rollback_detached(&self, lane: Lane, all: bool) {
        let _ = self.send(Request::Rollback {
            lane,
            all,
            reply: None,
        });
    }

    fn shutdown(&self) {
        if self.running.swap(false, Ordering::AcqRel) {
            for queue in
                std::iter::once(&self.queue).chain(self.readers.iter().map(|(queue, _)| queue))
            {
                let _ = queue.send(Request::Shutdown);
            }
        }
        if self.thread_ids.contains(&std::thread::current().id()) {
            return;
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

impl Drop for Shared {
    /// The last handle or client gone: nobody can reach the server again, so
    /// stop it and wait for it (no thread outlives its owners).
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Which connection an opener is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The one connection that writes.
    Writer,
    /// A connection of the reader pool: it must open the same database, and
    /// should open it read-only.
    Reader,
}

/// How many reader connections [`Server::open`] starts.
pub const DEFAULT_READERS: usize = 2;

/// One server thread, started: its queue, its handle, and the reply that
/// says whether its opener succeeded.
struct Started {
    queue: Sender<Request>,
    thread: JoinHandle<()>,
    opened: handoff::Reply<Result<()>>,
}

/// Starts one server thread that runs `opener`, then serves its queue.
/// The writer's thread (`running` given) marks the server stopped when it ends.
fn start_thread(
    name: &str,
    opener: impl FnOnce() -> Result<Connection> + Send + 'static,
    running: Option<Arc<AtomicBool>>,
) -> Result<Started> {
    let (ready, opened) = handoff::reply::<Result<()>>();
    let (queue, requests) = channel::<Request>();
    let stopped = move || {
        if let Some(running) = &running {
            running.store(false, Ordering::Release);
        }
    };
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(opener))
                .unwrap_or_else(|panic| Err(Error::from_panic(panic)));
            let worker = match opened.and_then(Worker::new) {
                Ok(worker) => worker,
                Err(error) => {
                    stopped();
                    return ready.send(Err(error));
                }
            };
            ready.send(Ok(()));
            worker.serve(requests);
            stopped();
        })
        .map_err(|e| Error::Open {
            path: format!("{name} thread"),
            message: e.to_string(),
        })?;
    Ok(Started {
        queue,
        thread,
        opened,
    })
}

impl Server {
    /// Starts a server thread and runs `opener` on it to open and configure
    /// the connection (pragmas, custom functions, extensions; values it
    /// captures were computed by the caller). Resolves once the connection is
    /// open; an error or panic in `opener` is returned here and the thread ends.
    /// Reads and writes all run on this one connection.
    pub fn start(
        opener: impl FnOnce() -> Result<Connection> + Send + 'static,
    ) -> impl Future<Output = Result<Server>> + Send {
        Server::launch(opener, Vec::new())
    }

    /// Starts a server with a writer and `readers` reader connections, each
    /// on its own thread, each opened by `opener` on that thread. In WAL
    /// mode, typed reads (selects, `find`, `Db::read`) of clients outside a
    /// transaction run on the readers, in parallel, and never wait for a
    /// long write; reads inside a transaction run on the writer.
    pub fn start_with_readers(
        readers: usize,
        opener: impl Fn(Role) -> Result<Connection> + Send + Sync + 'static,
    ) -> impl Future<Output = Result<Server>> + Send {
        let opener = Arc::new(opener);
        let reader_openers = (0..readers)
            .map(|_| {
                let opener = opener.clone();
                Box::new(move || opener(Role::Reader))
                    as Box<dyn FnOnce() -> Result<Connection> + Send>
            })
            .collect();
        Server::launch(move || opener(Role::Writer), reader_openers)
    }

    fn launch(
        writer: impl FnOnce() -> Result<Connection> + Send + 'static,
        readers: Vec<Box<dyn FnOnce() -> Result<Connection> + Send>>,
    ) -> impl Future<Output = Result<Server>> + Send {
        let running = Arc::new(AtomicBool::new(true));
        let started = start_thread("driftwood-writer", writer, Some(running.clone()));
        async move {
            let writer = started?;
            let mut threads = vec![writer.thread];
            let shared = |threads: Vec<JoinHandle<()>>, reader_queues: Vec<Sender<Request>>| {
                let thread_ids = threads.iter().map(|t| t.thread().id()).collect();
                Arc::new(Shared {
                    queue: writer.queue.clone(),
                    readers: reader_queues
                        .into_iter()
                        .map(|queue| (queue, Arc::new(AtomicUsize::new(0))))
                        .collect(),
                    threads: Mutex::new(threads),
                    thread_ids,
                    running: running.clone(),
                    next_lane: AtomicU64::new(1),
                })
            };
            // The writer opens first: it sets the journal mode readers rely on.
            if let Err(error) = writer.opened.await {
                shared(threads, Vec::new()).shutdown();
                return Err(error);
            }
            let mut reader_queues = Vec::new();
            let mut pending = Vec::new();
            for (n, opener) in readers.into_iter().enumerate() {
                match start_thread(&format!("driftwood-reader-{n}"), opener, None) {
                    Ok(reader) => {
                        threads.push(reader.thread);
                        reader_queues.push(reader.queue);
                        pending.push(reader.opened);
                    }
                    Err(error) => {
                        shared(threads, reader_queues).shutdown();
                        return Err(error);
                    }
                }
            }
            let shared = shared(threads, reader_queues);
            for opened in pending {
                if let Err(error) = opened.await {
                    shared.shutdown();
                    return Err(error);
                }
            }
            Ok(Server { shared })
        }
    }

    /// Starts a server on the database file at `path` with default options
    /// and [`DEFAULT_READERS`] read-only reader connections.
    pub fn open(path: impl AsRef<std::path::Path>) -> impl Future<Output = Result<Server>> + Send {
        Server::open_with(path, OpenOptions::default(), DEFAULT_READERS)
    }

    /// Starts a server on the file at `path` with these options and this
    /// many reader connections (0 for none).
    pub fn open_with(
        path: impl AsRef<std::path::Path>,
        options: OpenOptions,
        readers: usize,
    ) -> impl Future<Output = Result<Server>> + Send {
        let path = path.as_ref().to_owned();
        Server::start_with_readers(readers, move |role| {
            let options = options.clone().read_only(role == Role::Reader);
            Connection::open(&path, &options)
        })
    }

    /// Connects a new client. The first client of a database definition to
    /// reach the server thread creates or upgrades the schema there; clients
    /// connecting meanwhile wait for it, and if it gives up (its future is
    /// dropped) the next one does the work.
    pub fn connect<D: Database>(&self) -> impl Future<Output = Result<Db<D>>> + Send + use<D> {
        self.connect_with::<D>(false)
    }

    /// Connects the one client of this server: closing or dropping it shuts
    /// the server down (drift's `singleClientMode`).
    pub fn connect_single_client<D: Database>(
        &self,
    ) -> impl Future<Output = Result<Db<D>>> + Send + use<D> {
        self.connect_with::<D>(true)
    }

    fn connect_with<D: Database>(
        &self,
        single_client: bool,
    ) -> impl Future<Output = Result<Db<D>>> + Send + use<D> {
        let shared = self.shared.clone();
        async move {
            let lane = shared.new_lane();
            shared
                .run(lane, |conn| crate::database::prepare_schema::<D>(conn))
                .await?;
            Ok(Db::from_client(Arc::new(Client {
                shared,
                lane,
                closed: AtomicBool::new(false),
                single_client,
            })))
        }
    }

    /// Stops the server: requests already queued get their answer or
    /// [`Error::Closed`], every later call on any client returns
    /// [`Error::Closed`], an open transaction is rolled back. Waits for the
    /// thread to end (unless called from a job running on it).
    pub fn shutdown_all(&self) {
        self.shared.shutdown();
    }

    /// Whether the server still accepts requests.
    pub fn is_running(&self) -> bool {
        self.shared.is_running()
    }
}

/// One client's state: its lane and whether it was closed.
pub(crate) struct Client {
    pub(crate) shared: Arc<Shared>,
    pub(crate) lane: Lane,
    closed: AtomicBool,
    single_client: bool,
}

impl Client {
    /// Runs `work` on the server in this client's lane: on a reader
    /// connection if `read` (and there is a pool), else on the writer.
    pub(crate) fn run<R, F>(
        &self,
        read: bool,
        work: F,
    ) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let open = !self.closed.load(Ordering::Acquire);
        let run = open.then(|| match read {
            true => Either::Left(self.shared.run_read(self.lane, work)),
            false => Either::Right(self.shared.run(self.lane, work)),
        });
        async move {
            match run {
                Some(run) => run.await,
                None => Err(Error::Closed),
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || !self.shared.is_running()
    }

    /// Closes this client; a single client also stops its server.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if self.single_client {
            self.shared.shutdown();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.single_client {
            self.shared.shutdown();
        }
    }
}
