//! Independent processes sharing one live database file (the seed's
//! "independent isolates", done with an OS lock instead of a name server):
//! [`Db::open_shared`].
//!
//! Every process that opens the file this way tries to take an exclusive
//! lock on a lock file beside it. The one that gets it opens the file on a
//! background server (running its schema's open sequence: only the serving
//! process migrates) and serves it on a Unix socket; the others connect to
//! that socket. The lock is the truth about who serves: the OS frees it
//! when its holder exits, even killed, so a socket file left behind is
//! recognised as stale and replaced. When the serving process goes, each
//! remaining one notices its connection end and takes a role again — one
//! of them serves — and its watched queries run again on the new server,
//! as a change of everything. Requests in flight at that moment fail with
//! [`Error::OutcomeUnknown`] and are never retried; a transaction begun
//! before the switch is over (`TransactionEnded`), so none of its
//! statements can land outside it on the new server.
//!
//! The backend here delegates to the role it has now — the server's
//! in-process client, or a remote client — and keeps one change feed of its
//! own, fed from the role's, so `watch()` streams outlive a switch. The
//! same machinery, without the lock, is a remote client that reconnects
//! (`RemoteOptions::reconnect`): its only role is a connection to one
//! address, taken again when the connection ends.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};

use super::RemoteServer;
use super::client::{Remote, RemoteOptions};
use crate::Pending;
use crate::backend::feed::Feed;
use crate::backend::{Backend, Lane, Route, WatchedRun, Work};
use crate::batch::Batch;
use crate::database::{Database, Db};
use crate::error::{Error, Result};
use crate::plan::{Collect, Plan};
use crate::query::Statement;
use crate::server::Server;
use crate::sqlite::changes::Changes;
use crate::sqlite::{Execution, Level, TxKind};

/// How long a process keeps trying to serve the file or reach its server
/// before its requests fail.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(15);

/// Socket paths longer than this (in bytes) do not fit `sun_path` on every
/// Unix; the socket then goes to the runtime directory.
const MAX_SOCKET_PATH: usize = 100;

/// A database reached through a role that can change: one process's share
/// of a file served by whichever process holds its lock, or a remote
/// client that reconnects.
pub(crate) struct Failover {
    strategy: Strategy,
    /// The schema version every role must serve.
    version: u32,
    feed: Arc<Feed>,
    state: Mutex<State>,
    /// Each open transaction's lane: the role it began on and its
    /// outermost level.
    lanes: Mutex<HashMap<Lane, (u64, Level)>>,
    runtime: tokio::runtime::Handle,
}

/// How a role is taken.
enum Strategy {
    /// Serve the file, holding its lock, or connect to whoever does.
    File {
        path: PathBuf,
        lock_path: PathBuf,
        socket: PathBuf,
        /// `D`'s open sequence on a new server: the backend of its client.
        serve: fn(Server) -> BoxFuture<'static, Result<Backend>>,
    },
    /// Connect to a served database.
    Address {
        address: Address,
        options: RemoteOptions,
    },
}

/// Where a served database listens.
#[derive(Debug, Clone)]
pub(crate) enum Address {
    Tcp(Vec<std::net::SocketAddr>),
    Unix(PathBuf),
}

struct State {
    /// Counts roles taken: a transaction belongs to one.
    epoch: u64,
    role: Role,
    closed: bool,
}

enum Role {
    Serving(Serving),
    Client(Arc<Remote>),
    /// Taking a role; every request waits for it.
    Switching(Shared<BoxFuture<'static, Result<(), Error>>>),
    /// The last attempt failed (or there was none yet); the next request
    /// tries again.
    Failed,
}

/// What the serving process holds.
struct Serving {
    backend: Backend,
    server: Server,
    remote: RemoteServer,
    socket: PathBuf,
    /// Dropped last: the next process may serve only once this one stopped.
    _lock: File,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.remote.shutdown();
        let _ = std::fs::remove_file(&self.socket);
        drop(self.backend.close());
        self.server.shutdown_all();
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The backend to use now, or the switch to wait for.
enum Now {
    Ready(Backend, u64),
    Wait(Shared<BoxFuture<'static, Result<(), Error>>>),
}

impl Failover {
    fn new(strategy: Strategy, version: u32) -> Result<Arc<Failover>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::invalid_argument("a shared or reconnecting database needs a tokio runtime (its connection runs on one)")
        })?;
        Ok(Arc::new(Failover {
            strategy,
            version,
            feed: Feed::new(),
            state: Mutex::new(State {
                epoch: 0,
                role: Role::Failed,
                closed: false,
            }),
            lanes: Mutex::default(),
            runtime,
        }))
    }

    /// A share of the file at `path`, serving it or connecting to it.
    async fn open_file<D: Database>(path: &Path) -> Result<Arc<Failover>> {
        let path = absolute(path)?;
        let strategy = Strategy::File {
            lock_path: with_suffix(&path, ".lock"),
            socket: socket_path(&path),
            serve: |server| Box::pin(async move { server.connect::<D>().await?.backend().await }),
            path,
        };
        let failover = Failover::new(strategy, D::SCHEMA_VERSION)?;
        let role = take_a_role(&failover).await?;
        failover.adopt(role, false);
        Ok(failover)
    }

    /// A client of the database served at `address` that reconnects; the
    /// first connection fails at once if it cannot be made.
    pub(crate) async fn connect<D: Database>(
        address: Address,
        options: RemoteOptions,
    ) -> Result<Arc<Failover>> {
        let failover = Failover::new(Strategy::Address { address, options }, D::SCHEMA_VERSION)?;
        let remote = failover.connect_once().await?;
        failover.adopt(Role::Client(remote), false);
        Ok(failover)
    }

    /// One attempt to connect to whoever serves the database.
    async fn connect_once(&self) -> Result<Arc<Remote>> {
        match &self.strategy {
            Strategy::File { socket, .. } => {
                let stream = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(|e| connect_failed(&self.describe(), e))?;
                let options = RemoteOptions::new()
                    .client_name(format!("driftwood process {}", std::process::id()));
                Remote::connect_at_version(stream, &options, self.version).await
            }
            Strategy::Address {
                address: Address::Tcp(addrs),
                options,
            } => {
                let stream = tokio::net::TcpStream::connect(&addrs[..])
                    .await
                    .map_err(|e| connect_failed(&self.describe(), e))?;
                options.connect_tcp_stream(stream, self.version).await
            }
            Strategy::Address {
                address: Address::Unix(path),
                options,
            } => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| connect_failed(&self.describe(), e))?;
                Remote::connect_at_version(stream, options, self.version).await
            }
        }
    }

    /// What this database is, for messages.
    fn describe(&self) -> String {
        match &self.strategy {
            Strategy::File { path, socket, .. } => {
                format!("{} (served on {})", path.display(), socket.display())
            }
            Strategy::Address {
                address: Address::Tcp(addrs),
                ..
            } => format!("the database served at {addrs:?}"),
            Strategy::Address {
                address: Address::Unix(path),
                ..
            } => format!("the database served on {}", path.display()),
        }
    }

    /// Makes `role` the current one: a new epoch, its changes relayed to
    /// this process's feed, and — after a switch — every watcher told that
    /// anything may have changed.
    fn adopt(self: &Arc<Self>, role: Role, switched: bool) {
        let (inner_feed, owner) = match &role {
            Role::Serving(serving) => (serving.backend.feed().clone(), serving.backend.handle_id()),
            Role::Client(remote) => (remote.feed().clone(), Arc::as_ptr(remote) as usize),
            Role::Switching(_) | Role::Failed => return,
        };
        let epoch = {
            let mut state = locked(&self.state);
            state.epoch += 1;
            state.role = role;
            state.epoch
        };
        let (relay, changes) = inner_feed.relay(owner);
        let this = Arc::downgrade(self);
        let outer = self.feed.clone();
        self.runtime.spawn(async move {
            let mut changes = changes;
            while let Some(change) = changes.next().await {
                outer.publish((*change).clone());
            }
            inner_feed.unlisten(relay);
            if let Some(this) = Weak::upgrade(&this) {
                this.switch_from(epoch);
            }
        });
        if switched {
            self.feed.publish(Changes::everything());
        }
    }

    /// The role of `epoch` is gone: takes another (once).
    fn switch_from(self: &Arc<Self>, epoch: u64) {
        let mut state = locked(&self.state);
        if state.epoch != epoch || state.closed || matches!(state.role, Role::Switching(_)) {
            return;
        }
        tracing::info!(target: "driftwood::remote", database = %self.describe(), "the connection to the serving process ended; taking a role again");
        let this = self.clone();
        let switching = async move {
            let role = take_a_role(&this).await;
            match role {
                Ok(role) => {
                    this.adopt(role, true);
                    Ok(())
                }
                Err(error) => {
                    tracing::warn!(target: "driftwood::remote", %error, "could not serve the file or reach its server");
                    locked(&this.state).role = Role::Failed;
                    Err(error)
                }
            }
        }
        .boxed()
        .shared();
        state.role = Role::Switching(switching.clone());
        self.runtime.spawn(switching);
    }

    fn now(self: &Arc<Self>) -> Result<Now> {
        let state = locked(&self.state);
        if state.closed {
            return Err(Error::Closed);
        }
        let epoch = state.epoch;
        match &state.role {
            Role::Serving(serving) => Ok(Now::Ready(serving.backend.clone(), epoch)),
            Role::Client(remote) if !remote.is_closed() => {
                Ok(Now::Ready(Backend::Remote(remote.clone()), epoch))
            }
            // The connection is gone, or the last attempt failed: take a
            // role (again).
            Role::Client(_) | Role::Failed => {
                drop(state);
                self.switch_from(epoch);
                self.now()
            }
            Role::Switching(switching) => Ok(Now::Wait(switching.clone())),
        }
    }

    /// Runs `request` on the current role's backend — at once if there is
    /// one, so requests are sent in the order they were made — or after
    /// the switch under way.
    fn dispatch<T: Send + 'static>(
        self: &Arc<Self>,
        request: impl FnOnce(&Backend, u64) -> Pending<T> + Send + 'static,
    ) -> Pending<T> {
        match self.now() {
            Err(error) => Pending::ready(Err(error)),
            Ok(Now::Ready(backend, epoch)) => request(&backend, epoch),
            Ok(Now::Wait(switching)) => {
                let this = self.clone();
                Pending::boxed(async move {
                    switching.await?;
                    match this.now()? {
                        Now::Ready(backend, epoch) => request(&backend, epoch).await,
                        Now::Wait(_) => Err(Error::Closed),
                    }
                })
            }
        }
    }

    /// [`Failover::dispatch`], sending the request again on the next role
    /// if the current one refused it as closed: it was never sent (the
    /// connection was ending), so it cannot have run.
    fn resend<T: Send + 'static>(
        self: &Arc<Self>,
        request: impl Fn(&Backend, u64) -> Pending<T> + Send + Sync + 'static,
    ) -> Pending<T> {
        let request = Arc::new(request);
        let again = request.clone();
        let first = self.dispatch(move |backend, epoch| request(backend, epoch));
        let this = self.clone();
        Pending::boxed(async move {
            match first.await {
                Err(Error::Closed) if !this.is_closed() => {
                    this.dispatch(move |backend, epoch| again(backend, epoch))
                        .await
                }
                other => other,
            }
        })
    }

    /// Fails unless `lane` (not `NONE`) began on the role of `epoch`.
    fn check_lane(&self, lane: Lane, epoch: u64) -> Result<()> {
        if lane == Lane::NONE {
            return Ok(());
        }
        match locked(&self.lanes).get(&lane) {
            Some((began, _)) if *began == epoch => Ok(()),
            _ => Err(Error::ended(
                "the process serving the database changed while it was open; it was rolled back",
            )),
        }
    }

    pub(crate) fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    pub(crate) fn run<T: Send + 'static>(
        self: &Arc<Self>,
        lane: Lane,
        plan: Plan<T>,
    ) -> Pending<T> {
        let this = self.clone();
        self.resend(move |backend, epoch| match this.check_lane(lane, epoch) {
            Ok(()) => backend.run(lane, plan.clone()),
            Err(error) => Pending::ready(Err(error)),
        })
    }

    pub(crate) fn run_batch(self: &Arc<Self>, lane: Lane, batch: Batch) -> Pending<Execution> {
        let this = self.clone();
        self.resend(move |backend, epoch| match this.check_lane(lane, epoch) {
            Ok(()) => backend.run_batch(lane, batch.clone()),
            Err(error) => Pending::ready(Err(error)),
        })
    }

    pub(crate) fn run_work<R: Send + 'static>(
        self: &Arc<Self>,
        lane: Lane,
        route: Route,
        work: impl Work<R>,
    ) -> Pending<R> {
        let this = self.clone();
        self.dispatch(move |backend, epoch| match this.check_lane(lane, epoch) {
            Ok(()) => backend.run_work(lane, route, work),
            Err(error) => Pending::ready(Err(error)),
        })
    }

    pub(crate) fn run_watched<T: Send + 'static>(
        self: &Arc<Self>,
        plan: Option<(Statement, Collect<T>)>,
        seen: u64,
        work: impl Work<WatchedRun<T>>,
    ) -> Pending<WatchedRun<T>> {
        self.dispatch(move |backend, _| backend.run_watched(plan, seen, work))
    }

    pub(crate) fn begin(
        self: &Arc<Self>,
        lane: Lane,
        level: Level,
        kind: TxKind,
        parent: Option<Lane>,
    ) -> Pending<()> {
        let this = self.clone();
        self.resend(move |backend, epoch| {
            match parent {
                None => {
                    locked(&this.lanes).insert(lane, (epoch, level));
                }
                Some(parent) => {
                    if let Err(error) = this.check_lane(parent, epoch) {
                        return Pending::ready(Err(error));
                    }
                    if parent != lane {
                        locked(&this.lanes).insert(lane, (epoch, level));
                    }
                }
            }
            backend.begin(lane, level, kind, parent)
        })
    }

    /// Forgets `lane` when `level` is its outermost.
    fn ended(&self, lane: Lane, level: Level) {
        let mut lanes = locked(&self.lanes);
        if lanes
            .get(&lane)
            .is_some_and(|(_, outermost)| *outermost == level)
        {
            lanes.remove(&lane);
        }
    }

    pub(crate) fn commit(self: &Arc<Self>, lane: Lane, level: Level) -> Pending<()> {
        let this = self.clone();
        self.resend(move |backend, epoch| {
            let checked = this.check_lane(lane, epoch);
            this.ended(lane, level);
            match checked {
                Ok(()) => backend.commit(lane, level),
                Err(error) => Pending::ready(Err(error)),
            }
        })
    }

    pub(crate) fn rollback(self: &Arc<Self>, lane: Lane, level: Level) -> Pending<()> {
        let this = self.clone();
        self.resend(move |backend, epoch| {
            let checked = this.check_lane(lane, epoch);
            this.ended(lane, level);
            match checked {
                Ok(()) => backend.rollback(lane, level),
                // Rolled back with the role it began on.
                Err(_) => Pending::ready(Ok(())),
            }
        })
    }

    pub(crate) fn rollback_detached(self: &Arc<Self>, lane: Lane, level: Level) {
        let checked = match self.now() {
            Ok(Now::Ready(backend, epoch)) => self.check_lane(lane, epoch).map(|()| backend),
            _ => Err(Error::Closed),
        };
        self.ended(lane, level);
        if let Ok(backend) = checked {
            backend.rollback_detached(lane, level);
        }
    }

    pub(crate) fn close(self: &Arc<Self>) -> Pending<()> {
        let role = {
            let mut state = locked(&self.state);
            state.closed = true;
            std::mem::replace(&mut state.role, Role::Failed)
        };
        self.feed.close();
        match role {
            Role::Client(remote) => remote.close(),
            // Serving stops as it drops.
            _ => Pending::ready(Ok(())),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        locked(&self.state).closed
    }
}

/// Takes the lock and serves the file, or connects to whoever serves it;
/// keeps trying (a server may be starting or stopping) up to
/// [`TAKEOVER_TIMEOUT`]. A wrong schema version or token is final.
async fn take_a_role(failover: &Arc<Failover>) -> Result<Role> {
    let deadline = Instant::now() + TAKEOVER_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Strategy::File { lock_path, .. } = &failover.strategy
            && let Some(lock) = try_lock(lock_path)?
        {
            return serve(failover, lock).await.map(Role::Serving);
        }
        let last = match failover.connect_once().await {
            Ok(remote) => return Ok(Role::Client(remote)),
            Err(error @ (Error::Schema { .. } | Error::Unauthorized { .. })) => return Err(error),
            Err(error) => error,
        };
        if Instant::now() >= deadline {
            return Err(Error::Protocol {
                message: format!(
                    "for {TAKEOVER_TIMEOUT:?} this process could neither serve nor reach {} ({last})",
                    failover.describe()
                ),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

fn connect_failed(what: &str, error: std::io::Error) -> Error {
    Error::Protocol {
        message: format!("cannot connect to {what}: {error}"),
    }
}

/// Opens the file on a background server (migrating it) and serves it on
/// the socket, replacing a stale socket file.
async fn serve(failover: &Arc<Failover>, lock: File) -> Result<Serving> {
    let Strategy::File {
        path,
        socket,
        serve,
        ..
    } = &failover.strategy
    else {
        return Err(Error::invalid_argument("only a shared file is served"));
    };
    let server = Server::open(path).await?;
    let backend = serve(server.clone()).await?;
    let remote = RemoteServer::new(server.clone()).idle_timeout(None);
    if socket.exists() {
        // The lock is ours, so whoever made it is gone.
        let _ = std::fs::remove_file(socket);
    }
    remote.listen_unix(socket).await?;
    tracing::info!(target: "driftwood::remote", path = %path.display(), socket = %socket.display(), "serving the file to other processes");
    Ok(Serving {
        backend,
        server,
        remote,
        socket: socket.clone(),
        _lock: lock,
    })
}

/// The lock file's exclusive lock, if no other process holds it.
fn try_lock(path: &Path) -> Result<Option<File>> {
    let failed = |e: std::io::Error| {
        Error::invalid_argument(format!("cannot use the lock file {}: {e}", path.display()))
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(failed(e)),
    }
}

/// `path` made absolute (the file need not exist yet), so every process
/// names it alike.
fn absolute(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path)
        .map_err(|e| Error::invalid_argument(format!("{}: {e}", path.display())))?;
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        return Ok(absolute);
    };
    Ok(parent
        .canonicalize()
        .map(|parent| parent.join(name))
        .unwrap_or(absolute))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Beside the database when the path fits a socket address; otherwise a
/// short name in the runtime directory keyed by the database's path.
fn socket_path(db: &Path) -> PathBuf {
    let beside = with_suffix(db, ".sock");
    if beside.as_os_str().len() <= MAX_SOCKET_PATH {
        return beside;
    }
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!(
        "driftwood-{:016x}.sock",
        fnv1a(db.as_os_str().as_encoded_bytes())
    ))
}

/// A hash every build computes alike (the standard library's may change
/// between Rust versions, and processes of one file may differ).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl<D: Database> Db<D> {
    /// Opens a database file that any number of processes open the same
    /// way and share live: the first to take the lock beside the file
    /// (`<file>.lock`) serves it on a Unix socket (`<file>.sock`, or a
    /// short name in the runtime directory when that path is too long),
    /// the others connect to it. When the serving process exits — or is
    /// killed — a remaining one takes over and every process's watched
    /// queries go on. Requests in flight at that moment fail with
    /// [`Error::OutcomeUnknown`]; transactions open then are over. Every
    /// process must run `D`'s schema version (only the serving one
    /// migrates). Needs a tokio runtime; Unix only.
    pub async fn open_shared(path: impl AsRef<Path>) -> Result<Self> {
        let failover = Failover::open_file::<D>(path.as_ref()).await?;
        Ok(Db::from_backend(Backend::Shared(failover)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_get_a_short_socket_in_the_runtime_directory() {
        let short = Path::new("/tmp/app.db");
        assert_eq!(socket_path(short), Path::new("/tmp/app.db.sock"));
        let long = PathBuf::from(format!("/tmp/{}/app.db", "d".repeat(120)));
        let socket = socket_path(&long);
        assert!(socket.as_os_str().len() <= MAX_SOCKET_PATH, "{socket:?}");
        assert_eq!(socket, socket_path(&long), "every process names it alike");
        assert_ne!(socket, socket_path(&long.with_file_name("other.db")));
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a, stable");
    }
}
