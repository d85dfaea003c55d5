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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{JoinHandle, ThreadId};

use crate::database::{Database, Db};
use crate::error::{Error, Result};
use crate::sqlite::Connection;
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
    /// The server thread's request queue. `Sender` is `Sync`; sending after
    /// the thread stopped fails, which clients report as `Closed`.
    queue: Sender<Request>,
    /// The server thread, joined by `shutdown_all` or by the last handle.
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The server thread's id, so it never joins itself.
    thread_id: OnceLock<ThreadId>,
    /// False once shutdown was requested or the thread ended.
    running: Arc<AtomicBool>,
    /// Source of lane numbers (see `worker`).
    next_lane: AtomicU64,
}

impl Shared {
    pub(crate) fn new_lane(&self) -> Lane {
        self.next_lane.fetch_add(1, Ordering::Relaxed)
    }

    fn send(&self, request: Request) -> Result<()> {
        if !self.running.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.queue.send(request).map_err(|_| Error::Closed)
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
        let (replier, reply) = handoff::reply();
        let cancel = replier.cancel_flag();
        let job: Job = Box::new(move |conn| {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)));
            replier.send(outcome.unwrap_or_else(|panic| Err(Error::from_panic(panic))));
        });
        let sent = self.send(Request::Run { lane, job, cancel });
        async move {
            sent?;
            reply.await
        }
    }

    /// Begins (or nests) a transaction for `lane`.
    pub(crate) fn begin(&self, lane: Lane) -> impl Future<Output = Result<()>> + Send + use<> {
        let (reply, answer) = handoff::reply();
        let sent = self.send(Request::Begin { lane, reply });
        async move {
            sent?;
            answer.await
        }
    }

    /// Commits `lane`'s innermost level.
    pub(crate) fn commit(&self, lane: Lane) -> impl Future<Output = Result<()>> + Send + use<> {
        let (reply, answer) = handoff::reply();
        let sent = self.send(Request::Commit { lane, reply });
        async move {
            sent?;
            answer.await
        }
    }

    /// Rolls back `lane`'s innermost level, or all of them.
    pub(crate) fn rollback(
        &self,
        lane: Lane,
        all: bool,
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        let (reply, answer) = handoff::reply();
        let sent = self.send(Request::Rollback {
            lane,
            all,
            reply: Some(reply),
        });
        async move {
            sent?;
            answer.await
        }
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
            let _ = self.queue.send(Request::Shutdown);
        }
        if self.thread_id.get() == Some(&std::thread::current().id()) {
            return;
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
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

impl Server {
    /// Starts a server thread and runs `opener` on it to open and configure
    /// the connection (pragmas, custom functions, extensions; values it
    /// captures were computed by the caller). Resolves once the connection is
    /// open; an error or panic in `opener` is returned here and the thread ends.
    pub fn start(
        opener: impl FnOnce() -> Result<Connection> + Send + 'static,
    ) -> impl Future<Output = Result<Server>> + Send {
        let (ready, opened) = handoff::reply::<Result<()>>();
        let (queue, requests) = channel::<Request>();
        let running = Arc::new(AtomicBool::new(true));
        let thread_running = running.clone();
        let spawned = std::thread::Builder::new()
            .name("driftwood-server".into())
            .spawn(move || {
                let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(opener))
                    .unwrap_or_else(|panic| Err(Error::from_panic(panic)));
                let worker = match opened.and_then(Worker::new) {
                    Ok(worker) => worker,
                    Err(error) => {
                        thread_running.store(false, Ordering::Release);
                        return ready.send(Err(error));
                    }
                };
                ready.send(Ok(()));
                worker.serve(requests);
                thread_running.store(false, Ordering::Release);
            });
        async move {
            let thread = spawned.map_err(|e| Error::Open {
                path: "server thread".into(),
                message: e.to_string(),
            })?;
            let thread_id = OnceLock::new();
            let _ = thread_id.set(thread.thread().id());
            let shared = Arc::new(Shared {
                queue,
                thread: Mutex::new(Some(thread)),
                thread_id,
                running,
                next_lane: AtomicU64::new(1),
            });
            opened.await?;
            Ok(Server { shared })
        }
    }

    /// Starts a server on the database file at `path` with default options.
    pub fn open(path: impl AsRef<std::path::Path>) -> impl Future<Output = Result<Server>> + Send {
        let path = path.as_ref().to_owned();
        Server::start(move || Connection::open(&path, &Default::default()))
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
    /// Runs `work` on the server in this client's lane.
    pub(crate) fn run<R, F>(&self, work: F) -> impl Future<Output = Result<R>> + Send + use<R, F>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let closed = self.closed.load(Ordering::Acquire);
        let run = (!closed).then(|| self.shared.run(self.lane, work));
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
