//! Serving a database to remote clients: [`RemoteServer`] answers the wire
//! protocol on any byte stream, and listens on TCP or a Unix socket.
//!
//! Each connection is one client of the background [`Server`]: its
//! requests become the same backend calls an in-process client makes, so
//! transactions, lanes, routing to readers, cancellation and errors behave
//! the same. A connection is one task whose loop reads requests, polls the
//! ones running and queues their replies as they finish, which its
//! outbox writes while the loop goes on: a client that stops reading
//! stalls only itself, because once its unwritten replies pass a limit the
//! loop reads none of its requests. Every statement runs under the remote
//! [`Restriction`], and a broken frame, a failed handshake or a limit
//! closes only that connection, with a logged reason and a counter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::FutureExt;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::Token;
use super::budget::{Budget, Share, amount, decoded_size};
use super::outbox::Outbox;
use super::running::Running;
use super::wire::{
    self, BatchEntry, ChangeSet, ClientMessage, FrameReader, Op, Outcome, PROTOCOL_VERSION,
    ReadError, Reads, ServerMessage, WireValue,
};
use crate::Pending;
use crate::backend::server::Client;
use crate::backend::{Lane, Route};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::plan::{Cursor, Plan};
use crate::query::{Access, Statement};
use crate::server::Server;
use crate::sqlite::changes::{Changes, ReadSet};
use crate::sqlite::policy::Restriction;
use crate::sqlite::{Level, TxKind};

/// How long a new connection has to send its preamble and hello.
use wire::HANDSHAKE_TIMEOUT;

/// What requests in flight may take decoded, across every connection of
/// a [`RemoteServer`], unless [`RemoteServer::max_request_memory`] says
/// otherwise: 256 MiB.
pub const DEFAULT_REQUEST_MEMORY: usize = 256 << 20;

/// How long a request waits for the memory budget before it fails with
/// [`Error::LimitReached`]: memory held by other requests must not stall a
/// connection for ever.
const MEMORY_PATIENCE: Duration = Duration::from_secs(5);

/// One established connection, counted while it lives.
struct Active<'a>(u64, &'a Counters);

impl<'a> Active<'a> {
    fn enter(counters: &'a Counters) -> Self {
        let now = counters.active_connections.fetch_add(1, Ordering::Relaxed) + 1;
        Active(now, counters)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.1.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves a background [`Server`] to remote clients. Cheap to clone; every
/// clone shares the configuration, the counters and the shutdown.
#[derive(Clone)]
pub struct RemoteServer {
    inner: Arc<Inner>,
}

struct Inner {
    server: Server,
    token: Option<Token>,
    read_only: bool,
    max_frame: u32,
    max_in_flight: usize,
    max_connections: usize,
    idle_timeout: Option<Duration>,
    /// What every connection's requests in flight may take decoded.
    budget: Budget,
    /// TLS on TCP connections.
    #[cfg(feature = "tls")]
    tls: Option<super::TlsIdentity>,
    counters: Counters,
    /// Becomes `true` once the server shuts down.
    stopping: watch::Sender<bool>,
}

impl std::fmt::Debug for RemoteServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteServer")
            .field("token", &self.inner.token)
            .field("read_only", &self.inner.read_only)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What a [`RemoteServer`] has done so far: read them with
/// [`RemoteServer::stats`]; `driftwood serve` logs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeStats {
    /// Connections that completed the handshake.
    pub connections: u64,
    /// Connections open right now.
    pub active_connections: u64,
    /// Connections refused for a wrong or missing token or peer.
    pub unauthorized: u64,
    /// Connections refused because `max_connections` were open.
    pub over_connection_limit: u64,
    /// Connections closed for breaking the protocol (bad magic value,
    /// incompatible version, malformed or oversized frames).
    pub protocol_errors: u64,
    /// Connections closed for being idle longer than the idle timeout.
    pub idle_timeouts: u64,
    /// Requests received.
    pub requests: u64,
    /// Times a connection had `max_in_flight` requests running and the
    /// server stopped reading from it until one finished.
    pub in_flight_waits: u64,
    /// Requests the client cancelled.
    pub cancelled: u64,
    /// Times a connection's next request would have taken the requests in
    /// flight past `max_request_memory` and the server stopped reading
    /// from it until others finished.
    pub memory_waits: u64,
    /// Requests refused because, decoded, they alone would take more than
    /// `max_request_memory`.
    pub over_memory_limit: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    active_connections: AtomicU64,
    unauthorized: AtomicU64,
    over_connection_limit: AtomicU64,
    protocol_errors: AtomicU64,
    idle_timeouts: AtomicU64,
    requests: AtomicU64,
    in_flight_waits: AtomicU64,
    cancelled: AtomicU64,
    memory_waits: AtomicU64,
    over_memory_limit: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl RemoteServer {
    /// Serves `server`: no token, writes accepted, 16 MiB frames, 256
    /// requests in flight per connection, 64 connections, connections idle
    /// for 15 minutes closed.
    pub fn new(server: Server) -> Self {
        RemoteServer {
            inner: Arc::new(Inner {
                server,
                token: None,
                read_only: false,
                max_frame: wire::DEFAULT_MAX_FRAME,
                max_in_flight: 256,
                max_connections: 64,
                idle_timeout: Some(Duration::from_secs(15 * 60)),
                budget: Budget::new(DEFAULT_REQUEST_MEMORY),
                #[cfg(feature = "tls")]
                tls: None,
                counters: Counters::default(),
                stopping: watch::channel(false).0,
            }),
        }
    }

    fn configure(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => change(inner),
            None => {
                tracing::warn!(target: "driftwood::remote", "a remote server is configured after it was cloned; the change applies to this handle only");
                let inner = &*self.inner;
                let mut copy = Inner {
                    server: inner.server.clone(),
                    token: inner.token.clone(),
                    read_only: inner.read_only,
                    max_frame: inner.max_frame,
                    max_in_flight: inner.max_in_flight,
                    max_connections: inner.max_connections,
                    idle_timeout: inner.idle_timeout,
                    budget: inner.budget.clone(),
                    #[cfg(feature = "tls")]
                    tls: inner.tls.clone(),
                    counters: Counters::default(),
                    stopping: watch::channel(false).0,
                };
                change(&mut copy);
                self.inner = Arc::new(copy);
            }
        }
        self
    }

    /// Requires clients to present `token` (compared in constant time).
    /// Required for TCP on any address but loopback.
    pub fn token(self, token: Token) -> Self {
        self.configure(|inner| inner.token = Some(token))
    }

    /// Serves TCP connections over TLS with `identity` (the `tls` feature):
    /// clients must connect with a matching [`super::TlsTrust`]. A
    /// handshake that fails closes the connection and counts as a protocol
    /// error.
    #[cfg(feature = "tls")]
    pub fn tls(self, identity: super::TlsIdentity) -> Self {
        self.configure(|inner| inner.tls = Some(identity))
    }

    /// Refuses every write, whatever the client sends.
    pub fn read_only(self, read_only: bool) -> Self {
        self.configure(|inner| inner.read_only = read_only)
    }

    /// The largest frame accepted, in bytes; a longer one closes the
    /// connection.
    pub fn max_frame(self, bytes: u32) -> Self {
        self.configure(|inner| inner.max_frame = bytes.max(1024))
    }

    /// Requests one connection may have running at once; past it, the
    /// server reads nothing more from that connection until one finishes.
    pub fn max_in_flight(self, requests: usize) -> Self {
        self.configure(|inner| inner.max_in_flight = requests.max(1))
    }

    /// The memory requests in flight may take once decoded, across every
    /// connection ([`DEFAULT_REQUEST_MEMORY`] unless set): past it, a
    /// connection's next request waits (the server reads no more from it)
    /// until others finish, and a request that alone would take more fails
    /// with [`Error::LimitReached`] before it is decoded. A frame's size
    /// says little about this: one byte of MessagePack may decode into a
    /// 32-byte value.
    pub fn max_request_memory(self, bytes: usize) -> Self {
        self.configure(|inner| inner.budget = Budget::new(bytes))
    }

    /// Connections open at once; one more is refused with
    /// [`Error::LimitReached`].
    pub fn max_connections(self, connections: usize) -> Self {
        self.configure(|inner| inner.max_connections = connections)
    }

    /// Closes a connection that sent nothing and had nothing running for
    /// this long (`None`: never).
    pub fn idle_timeout(self, timeout: Option<Duration>) -> Self {
        self.configure(|inner| inner.idle_timeout = timeout)
    }

    /// The counters so far.
    pub fn stats(&self) -> ServeStats {
        let c = &self.inner.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ServeStats {
            connections: load(&c.connections),
            active_connections: load(&c.active_connections),
            unauthorized: load(&c.unauthorized),
            over_connection_limit: load(&c.over_connection_limit),
            protocol_errors: load(&c.protocol_errors),
            idle_timeouts: load(&c.idle_timeouts),
            requests: load(&c.requests),
            in_flight_waits: load(&c.in_flight_waits),
            cancelled: load(&c.cancelled),
            memory_waits: load(&c.memory_waits),
            over_memory_limit: load(&c.over_memory_limit),
        }
    }

    /// Tells every connection the server is closing (their clients get
    /// [`Error::Closed`]), rolls back their transactions and stops the
    /// listeners. The background server itself keeps running.
    pub fn shutdown(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Serves one client on `io` until it leaves, breaks the protocol or
    /// the server shuts down. `peer` names it in logs.
    pub async fn serve_connection<S>(&self, io: S, peer: &str)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let ended = Connection::run(self.inner.clone(), io, peer).await;
        match ended {
            Ok(reason) => {
                tracing::info!(target: "driftwood::remote", peer, "connection closed: {reason}");
            }
            Err(error) => {
                tracing::warn!(target: "driftwood::remote", peer, %error, "connection closed");
            }
        }
    }

    /// Listens on TCP at `addr` (`127.0.0.1:0` picks a free port).
    /// Refuses an address other than loopback unless a token is set.
    pub async fn listen_tcp(&self, addr: impl tokio::net::ToSocketAddrs) -> Result<Listening> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::invalid_argument(format!("cannot listen on TCP: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::invalid_argument(format!("cannot listen on TCP: {e}")))?;
        if !local.ip().is_loopback() && self.inner.token.is_none() {
            return Err(Error::invalid_argument(format!(
                "refusing to serve on {local} without a token: anyone who can reach it could read and write the database (set RemoteServer::token, or listen on 127.0.0.1)"
            )));
        }
        let server = self.clone();
        let listener = Arc::new(listener);
        let task = tokio::spawn(server.accept_loop(move || {
            let listener = listener.clone();
            async move {
                let (stream, peer) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((stream, peer.to_string()))
            }
        }));
        tracing::info!(target: "driftwood::remote", %local, "serving on TCP");
        Ok(Listening {
            endpoint: Endpoint::Tcp(local),
            task,
            server: self.clone(),
        })
    }

    /// Listens on a Unix socket at `path`, readable and writable by this
    /// user only; only peers running as this user are served. A socket
    /// left by a process that died is replaced; one a live server answers
    /// on is an error.
    #[cfg(unix)]
    pub async fn listen_unix(&self, path: impl AsRef<Path>) -> Result<Listening> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let path = path.as_ref().to_path_buf();
        let failed = |e: std::io::Error| {
            Error::invalid_argument(format!("cannot listen on {}: {e}", path.display()))
        };
        if path.exists() {
            if tokio::net::UnixStream::connect(&path).await.is_ok() {
                return Err(Error::invalid_argument(format!(
                    "{} is already served by a live process",
                    path.display()
                )));
            }
            std::fs::remove_file(&path).map_err(failed)?;
        }
        let listener = tokio::net::UnixListener::bind(&path).map_err(failed)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
        let owner = std::fs::metadata(&path).map_err(failed)?.uid();
        let server = self.clone();
        let listener = Arc::new(listener);
        let task = tokio::spawn(server.accept_loop(move || {
            let listener = listener.clone();
            async move {
                loop {
                    let (stream, _) = listener.accept().await?;
                    match stream.peer_cred() {
                        Ok(cred) if cred.uid() == owner => {
                            let peer = format!("unix peer pid {:?} uid {}", cred.pid(), cred.uid());
                            return Ok((stream, peer));
                        }
                        other => {
                            tracing::warn!(target: "driftwood::remote", peer = ?other.map(|c| c.uid()), "refused a Unix socket peer running as another user");
                        }
                    }
                }
            }
        }));
        tracing::info!(target: "driftwood::remote", path = %path.display(), "serving on a Unix socket");
        Ok(Listening {
            endpoint: Endpoint::Unix(path),
            task,
            server: self.clone(),
        })
    }

    /// Accepts connections with `accept` until the server shuts down,
    /// serving each on a task of its own.
    async fn accept_loop<S, F, Fut>(self, accept: F)
    where
        S: Accepted,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::io::Result<(S, String)>> + Send,
    {
        let mut stopping = self.inner.stopping.subscribe();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = stopping.wait_for(|stop| *stop) => return,
                accepted = accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(stream.serve(self.clone(), peer));
                }
                Err(error) => {
                    tracing::warn!(target: "driftwood::remote", %error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// A stream a listener accepted, and how it is served.
trait Accepted: Send + 'static {
    fn serve(self, server: RemoteServer, peer: String) -> impl Future<Output = ()> + Send;
}

impl Accepted for tokio::net::TcpStream {
    /// Over TLS when the server has an identity (the handshake on the
    /// connection's own task, so a slow one holds up nobody).
    async fn serve(self, server: RemoteServer, peer: String) {
        #[cfg(feature = "tls")]
        if let Some(identity) = &server.inner.tls {
            let handshake = identity.acceptor().accept(self);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(tls)) => return server.serve_connection(tls, &peer).await,
                Ok(Err(error)) => {
                    tracing::warn!(target: "driftwood::remote", peer, %error, "the TLS handshake failed");
                }
                Err(_) => {
                    tracing::warn!(target: "driftwood::remote", peer, "no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
                }
            }
            bump(&server.inner.counters.protocol_errors);
            return;
        }
        server.serve_connection(self, &peer).await
    }
}

#[cfg(unix)]
impl Accepted for tokio::net::UnixStream {
    async fn serve(self, server: RemoteServer, peer: String) {
        server.serve_connection(self, &peer).await
    }
}

/// Where a [`Listening`] server can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket's path.
    Unix(PathBuf),
}

/// A listener serving connections; it stops on [`Listening::shutdown`] or
/// [`RemoteServer::shutdown`] (dropping it leaves it running).
#[derive(Debug)]
pub struct Listening {
    endpoint: Endpoint,
    task: JoinHandle<()>,
    server: RemoteServer,
}

impl Listening {
    /// Where clients connect.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The TCP address, for a TCP listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.endpoint {
            Endpoint::Tcp(addr) => Some(*addr),
            Endpoint::Unix(_) => None,
        }
    }

    /// Shuts the server down (see [`RemoteServer::shutdown`]) and waits for
    /// the listener to stop; a Unix socket's file is removed.
    pub async fn shutdown(self) {
        self.server.shutdown();
        let _ = self.task.await;
        if let Endpoint::Unix(path) = &self.endpoint {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The transactions one connection has open: its wire lanes and levels,
/// mapped to this process's.
#[derive(Default)]
struct Lanes {
    lanes: HashMap<u64, Lane>,
    /// Each open level: its lane and whether it is the lane's outermost.
    levels: HashMap<u64, (Lane, Level, bool)>,
}

/// One client connection being served.
struct Connection {
    inner: Arc<Inner>,
    /// The connection's client of the background server.
    client: Arc<Client>,
    restriction: Restriction,
    lanes: Arc<Mutex<Lanes>>,
    /// Frames the server sends unasked (changes), on their way to the
    /// connection's loop.
    pushes: mpsc::Sender<Vec<u8>>,
    /// The relay of the server's changes to this client, once it
    /// subscribed: its id on the feed and the task that sends them.
    relay: Mutex<Option<(u64, AbortOnDrop)>>,
}

impl Connection {
    /// Runs the handshake, then serves requests; says why it ended.
    async fn run<S>(inner: Arc<Inner>, io: S, peer: &str) -> std::result::Result<String, Error>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(io);
        let counters = &inner.counters;
        let handshake = async {
            wire::write_frame(&mut writer, &wire::preamble())
                .await
                .map_err(|e| wire::protocol(format!("writing the preamble failed: {e}")))?;
            let version = wire::read_preamble(&mut reader).await?;
            if version != PROTOCOL_VERSION {
                let error = wire::protocol(format!(
                    "the client speaks protocol version {version}; this server speaks version {PROTOCOL_VERSION}"
                ));
                return Err(refuse(&mut writer, error).await);
            }
            let hello = match wire::read_frame(&mut reader, inner.max_frame).await {
                Ok(body) => wire::decode::<ClientMessage>(&body)?,
                Err(ReadError::Closed) => {
                    return Err(wire::protocol("the client left before its hello"));
                }
                Err(ReadError::Broken(error)) => return Err(error),
            };
            let ClientMessage::Hello {
                token,
                client,
                max_frame,
            } = hello
            else {
                return Err(wire::protocol("the first frame was not a hello"));
            };
            Ok((token, client, max_frame.unwrap_or(wire::DEFAULT_MAX_FRAME)))
        };
        let (token, client, client_max_frame) =
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(hello)) => hello,
                Ok(Err(error)) => {
                    bump(&counters.protocol_errors);
                    return Err(error);
                }
                Err(_) => {
                    bump(&counters.protocol_errors);
                    return Err(wire::protocol(format!(
                        "no handshake within {HANDSHAKE_TIMEOUT:?}"
                    )));
                }
            };
        if let Err(error) = check_token(inner.token.as_ref(), token.as_deref()) {
            bump(&counters.unauthorized);
            return Err(refuse(&mut writer, error).await);
        }
        // Counted once past the handshake: sockets that never say hello
        // cannot take real clients' places (the handshake timeout ends
        // them).
        let active = Active::enter(counters);
        if active.0 > inner.max_connections as u64 {
            bump(&counters.over_connection_limit);
            let error = Error::LimitReached {
                message: format!(
                    "the server has {} connections open, its limit",
                    inner.max_connections
                ),
            };
            return Err(refuse(&mut writer, error).await);
        }
        let server_client = inner.server.client(false);
        let schema_version = match user_version(&server_client).await {
            Ok(version) => version,
            Err(error) => return Err(refuse(&mut writer, error).await),
        };
        // A connection accepted as the server began to stop is refused, not
        // welcomed and then closed: a reconnecting client would otherwise
        // send requests into a closing connection and learn nothing of them.
        if *inner.stopping.borrow() {
            return Err(refuse(&mut writer, Error::Closed).await);
        }
        let welcome = ServerMessage::Welcome {
            server: format!("driftwood {}", env!("CARGO_PKG_VERSION")),
            schema_version,
            read_only: inner.read_only,
            max_frame: inner.max_frame,
        };
        wire::write_frame(&mut writer, &wire::encode(&welcome))
            .await
            .map_err(|e| wire::protocol(format!("writing the welcome failed: {e}")))?;
        bump(&counters.connections);
        tracing::info!(target: "driftwood::remote", peer, client, "client connected");

        let (pushes, pushed) = mpsc::channel(1);
        let connection = Arc::new(Connection {
            restriction: if inner.read_only {
                Restriction::RemoteReadOnly
            } else {
                Restriction::Remote
            },
            inner: inner.clone(),
            client: server_client,
            lanes: Arc::default(),
            pushes,
            relay: Mutex::default(),
        });
        let mut running = Running::new(client_max_frame);
        let ended = connection.serve(reader, writer, pushed, &mut running).await;
        connection.finish(&ended, running);
        ended
    }

    /// Reads requests and writes replies until the connection ends; says
    /// why it ended. Requests run as futures of this one loop, so a reply
    /// is queued as soon as its request finished, without a task between,
    /// and written by the [`Outbox`] while the loop goes on. With
    /// `max_in_flight` requests running, or a full outbox (a client that
    /// does not read), the loop stops reading until that changes: a client
    /// that does not read stalls only its own connection.
    async fn serve<W: AsyncWrite + Send + Unpin + 'static>(
        &self,
        mut reader: impl AsyncRead + Send + Unpin,
        writer: W,
        mut pushed: mpsc::Receiver<Vec<u8>>,
        running: &mut Running,
    ) -> std::result::Result<String, Error> {
        let inner = self.inner.clone();
        let counters = &inner.counters;
        let mut stopping = inner.stopping.subscribe();
        let mut frames = FrameReader::new(inner.max_frame);
        let mut outbox = Outbox::new(
            writer,
            inner.idle_timeout.unwrap_or(Duration::from_secs(60)),
        );
        let mut stalled = false;
        // A frame read but not decoded yet, waiting for its share of the
        // memory budget until a deadline.
        let mut waiting: Option<Waiting> = None;
        // Once the client stopped sending (end of stream or goodbye): why,
        // and until when the requests it sent may still finish.
        let mut ending: Option<(&str, tokio::time::Instant)> = None;
        loop {
            if let Some((why, _)) = ending
                && running.is_empty()
                && !outbox.is_writing()
            {
                return Ok(why.into());
            }
            let below_limit = running.len() < inner.max_in_flight;
            if !below_limit && !stalled {
                bump(&counters.in_flight_waits);
            }
            stalled = !below_limit;
            let can_read =
                below_limit && !outbox.is_full() && ending.is_none() && waiting.is_none();
            let farewell = async {
                match ending {
                    Some((why, until)) => {
                        tokio::time::sleep_until(until).await;
                        why
                    }
                    None => std::future::pending().await,
                }
            };
            let idle = async {
                match inner.idle_timeout {
                    Some(timeout) => tokio::time::sleep(timeout).await,
                    None => std::future::pending().await,
                }
            };
            let writing = outbox.is_writing();
            tokio::select! {
                biased;
                () = stopping.wait_for(|stop| *stop).map(drop) => {
                    return Ok(closing(outbox, "the server is shutting down").await);
                }
                written = outbox.written(), if writing => written?,
                Some(finished) = running.next(), if !running.is_empty() => {
                    running.finished(finished, outbox.queue());
                    // Let the server threads finish what they are running,
                    // then every reply ready by now goes out in one write.
                    tokio::task::yield_now().await;
                    while let Some(Some(finished)) = running.next().now_or_never() {
                        running.finished(finished, outbox.queue());
                    }
                    outbox.start();
                }
                // While a write runs, changes wait in the relay, which
                // merges them: a subscriber that does not read gets one
                // merged set later, not a backlog.
                Some(frame) = pushed.recv(), if !writing => {
                    outbox.queue().extend(frame);
                    outbox.start();
                }
                // The frame read, then every whole frame already buffered
                // behind it (a pipelined burst), while below the limits.
                frame = frames.next(&mut reader), if can_read => {
                    let body = match frame {
                        Ok(body) => body,
                        Err(ReadError::Closed) => {
                            ending = Some(("the client disconnected", farewell_deadline()));
                            continue;
                        }
                        Err(ReadError::Broken(error)) => return Err(self.broken(outbox, error).await),
                    };
                    let mut burst = Burst { frames: &mut frames, running, ending: &mut ending, waiting: &mut waiting };
                    if let Err(error) = self.take_burst(body, None, &mut burst, outbox.queue()) {
                        return Err(self.broken(outbox, error).await);
                    }
                    outbox.start();
                }
                why = farewell => return Ok(why.into()),
                // The request that waited for memory has it now, or waited
                // too long.
                taken = wait_for_memory(waiting.as_mut()), if waiting.is_some() => {
                    let Some(Waiting { body, .. }) = waiting.take() else { continue };
                    let given = taken.map_err(|_| format!(
                        "the server's memory for requests in flight stayed in use for {MEMORY_PATIENCE:?}; nothing ran"
                    ));
                    let mut burst = Burst { frames: &mut frames, running, ending: &mut ending, waiting: &mut waiting };
                    if let Err(error) = self.take_burst(body, Some(given), &mut burst, outbox.queue()) {
                        return Err(self.broken(outbox, error).await);
                    }
                    outbox.start();
                }
                _ = idle, if running.is_empty() && waiting.is_none() && !writing && ending.is_none() => {
                    bump(&counters.idle_timeouts);
                    let timeout = inner.idle_timeout.unwrap_or_default();
                    let reason = format!("idle for {timeout:?}, the server's limit");
                    return Ok(closing(outbox, &reason).await);
                }
            }
        }
    }

    /// Takes `body` and the frames buffered behind it while below the
    /// limits: each decoded once its decoded size fits the memory budget
    /// (`given`: the share for `body` was taken already, or refused), and
    /// received. A frame that does not fit yet waits in `burst.waiting`
    /// (at most [`MEMORY_PATIENCE`]), and nothing more is read meanwhile;
    /// one that alone is larger than the whole budget fails on its own. An
    /// error breaks the protocol.
    fn take_burst(
        &self,
        mut body: Vec<u8>,
        mut given: Option<std::result::Result<Share, String>>,
        burst: &mut Burst<'_, '_>,
        replies: &mut Vec<u8>,
    ) -> Result<()> {
        let inner = &self.inner;
        loop {
            let size = decoded_size(&body);
            let share = match given.take() {
                Some(given) => given,
                None if size > inner.budget.bytes() => Err(format!(
                    "the request would take about {} decoded, over the server's limit of {} for requests in flight; nothing ran",
                    amount(size),
                    amount(inner.budget.bytes())
                )),
                None => match inner.budget.try_take(size) {
                    Some(share) => Ok(share),
                    None => {
                        bump(&inner.counters.memory_waits);
                        *burst.waiting = Some(Waiting {
                            share: inner.budget.take(size),
                            until: tokio::time::Instant::now() + MEMORY_PATIENCE,
                            body,
                        });
                        break;
                    }
                },
            };
            self.take_frame(&body, share, burst, replies)?;
            if burst.ending.is_some() || burst.running.len() >= inner.max_in_flight {
                break;
            }
            match burst.frames.buffered().map_err(ReadError::into_error)? {
                Some(next) => body = next,
                None => break,
            }
        }
        burst.running.send_gathered(&self.client);
        Ok(())
    }

    /// Decodes and receives one frame with its share of the memory budget;
    /// without one (`refused`: why), a request is answered with
    /// [`Error::LimitReached`] undecoded, and anything else — small once
    /// decoded, since unknown fields are skipped — is received as usual.
    fn take_frame(
        &self,
        body: &[u8],
        share: std::result::Result<Share, String>,
        burst: &mut Burst<'_, '_>,
        replies: &mut Vec<u8>,
    ) -> Result<()> {
        let share = match share {
            Ok(share) => share,
            Err(refused) => match wire::request_id(body)? {
                Some(id) => {
                    bump(&self.inner.counters.over_memory_limit);
                    let error = Error::LimitReached { message: refused };
                    burst.running.refuse(id, error, replies);
                    return Ok(());
                }
                None => self.inner.budget.nothing(),
            },
        };
        let message = wire::decode::<ClientMessage>(body)?;
        self.receive(message, share, burst.running, burst.ending, replies)
    }

    /// Takes one message of the client's: a plain read outside a
    /// transaction is gathered to run with the reads that came with it,
    /// any other request starts after them. An error breaks the protocol.
    fn receive(
        &self,
        message: ClientMessage,
        share: Share,
        running: &mut Running,
        ending: &mut Option<(&str, tokio::time::Instant)>,
        replies: &mut Vec<u8>,
    ) -> Result<()> {
        match message {
            ClientMessage::Request {
                id,
                op:
                    Op::Run {
                        lane: 0,
                        sql,
                        args,
                        read: true,
                        rows,
                    },
            } => {
                bump(&self.inner.counters.requests);
                let plan = self.plan(sql, args, Access::Read, rows, share);
                running.gather(&self.client, id, plan, replies);
            }
            ClientMessage::Request { id, op } => {
                bump(&self.inner.counters.requests);
                running.start(&self.client, id, || self.dispatch(op, share), replies);
            }
            ClientMessage::Cancel { id } => {
                if running.cancel(id) {
                    bump(&self.inner.counters.cancelled);
                }
            }
            ClientMessage::Goodbye {} => {
                running.send_gathered(&self.client);
                *ending = Some(("the client said goodbye", farewell_deadline()));
            }
            ClientMessage::Hello { .. } => return Err(wire::protocol("a second hello")),
        }
        Ok(())
    }

    /// The client broke the protocol: counted, told, and the connection
    /// closes.
    async fn broken<W: AsyncWrite + Send + Unpin + 'static>(
        &self,
        outbox: Outbox<W>,
        error: Error,
    ) -> Error {
        bump(&self.inner.counters.protocol_errors);
        closing(outbox, &error.to_string()).await;
        error
    }

    /// The connection ended: requests still running are cancelled (a
    /// commit runs anyway), and every transaction still open is rolled
    /// back, behind its lane's earlier requests.
    fn finish(&self, ended: &std::result::Result<String, Error>, running: Running) {
        drop(running);
        let lanes = std::mem::take(&mut *self.lanes.lock().unwrap_or_else(PoisonError::into_inner));
        let open = lanes
            .levels
            .values()
            .filter(|(_, _, outermost)| *outermost)
            .count();
        for (lane, level, outermost) in lanes.levels.into_values() {
            if outermost {
                self.client.rollback_detached(lane, level);
            }
        }
        if let Some((id, task)) = self
            .relay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            self.client.feed().unlisten(id);
            drop(task);
        }
        if open > 0 {
            tracing::info!(target: "driftwood::remote", open, ended = ?ended.as_ref().map_err(ToString::to_string), "rolled back the transactions a closed connection left open");
        }
        drop(self.client.close());
    }

    /// Starts `op` on the backend: sent now, so requests run in the order
    /// they arrived.
    /// `share`, its part of the memory budget, lives as long as the job
    /// that holds its decoded statements.
    fn dispatch(&self, op: Op, share: Share) -> Pending<Outcome> {
        match self.start(op, share) {
            Ok(pending) => pending,
            Err(error) => Pending::ready(Err(error)),
        }
    }

    fn start(&self, op: Op, share: Share) -> Result<Pending<Outcome>> {
        let client = &self.client;
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(match op {
            Op::Run {
                lane,
                sql,
                args,
                read,
                rows,
            } => {
                let lane = lanes.lane(lane)?;
                let access = match (read, rows) {
                    (true, _) => Access::Read,
                    (false, true) => Access::Unknown,
                    (false, false) => Access::Write,
                };
                client.run(lane, self.plan(sql, args, access, rows, share))
            }
            Op::Subscribe {} => {
                self.subscribe();
                Pending::ready(Ok(Outcome::Ok {}))
            }
            Op::Watch { sql, args, rows } => {
                let plan = self.plan(sql, args, Access::Read, rows, share);
                client.run_work(Lane::NONE, Route::Reader, move |conn| {
                    let (result, reads) = conn.recording_reads(|| {
                        conn.ensure_reads_only(&plan.statement.sql)?;
                        conn.run(&plan)
                    });
                    // What a failed run would have read is unknown.
                    let reads = if result.is_ok() {
                        reads
                    } else {
                        ReadSet::anything()
                    };
                    let outcome = result.unwrap_or_else(|error| Outcome::Failed { error });
                    Ok(Outcome::Watched {
                        outcome: Box::new(outcome),
                        reads: Reads(reads),
                    })
                })
            }
            Op::Batch { lane, entries } => {
                let lane = lanes.lane(lane)?;
                let batch = batch_of(entries);
                let restriction = self.restriction;
                let pending = client.run_work(lane, Route::Writer, move |conn| {
                    let _share = share;
                    conn.restricted(restriction, || batch.run_on(conn))
                });
                Pending::boxed(async move { pending.await.map(Outcome::from) })
            }
            Op::Begin {
                lane,
                level,
                immediate,
                parent,
            } => {
                if immediate && self.inner.read_only {
                    return Err(Error::NotPermitted {
                        message: "this server is read-only: a write transaction cannot begin"
                            .into(),
                        sql: "BEGIN IMMEDIATE".into(),
                    });
                }
                let parent = parent.map(|parent| lanes.lane(parent)).transpose()?;
                if lane == 0 {
                    return Err(Error::invalid_argument("lane 0 is no transaction's"));
                }
                if lanes.levels.contains_key(&level) {
                    return Err(Error::invalid_argument(format!(
                        "level {level} is already open on this connection"
                    )));
                }
                if parent.is_none() && lanes.lanes.contains_key(&lane) {
                    return Err(Error::invalid_argument(format!(
                        "lane {lane} already has a transaction open: begin a savepoint with it as the parent"
                    )));
                }
                let local_lane = *lanes.lanes.entry(lane).or_insert_with(Lane::fresh);
                let local_level = Level::fresh();
                let outermost = parent.is_none();
                lanes
                    .levels
                    .insert(level, (local_lane, local_level, outermost));
                let kind = if immediate {
                    TxKind::Immediate
                } else {
                    TxKind::Deferred
                };
                let begun = client.begin(local_lane, local_level, kind, parent);
                // A level that did not begin is forgotten, so nothing later
                // (or the end of the connection) takes it for an open one.
                let lanes = self.lanes.clone();
                Pending::boxed(async move {
                    match begun.await {
                        Ok(()) => Ok(Outcome::Ok {}),
                        Err(error) => {
                            locked(&lanes).end(level);
                            Err(error)
                        }
                    }
                })
            }
            Op::Commit { lane, level } => {
                let Some((local_lane, local_level)) = lanes.end_in(lane, level) else {
                    return Err(Error::ended(
                        "cannot commit: it was already committed or rolled back",
                    ));
                };
                ok(client.commit(local_lane, local_level))
            }
            Op::Rollback { lane, level } => match lanes.end_in(lane, level) {
                Some((local_lane, local_level)) => ok(client.rollback(local_lane, local_level)),
                // A level that never began, or already ended: nothing to do.
                None => Pending::ready(Ok(Outcome::Ok {})),
            },
        })
    }
}

impl Connection {
    /// The plan of a remote statement: its rows or what it did, under the
    /// connection's restriction.
    fn plan(
        &self,
        sql: String,
        args: Vec<WireValue>,
        access: Access,
        rows: bool,
        share: Share,
    ) -> Plan<Outcome> {
        let statement = Statement {
            sql: sql.into(),
            args: wire::from_wire(args),
            access,
        };
        let mut plan = if rows {
            Plan::rows(statement, rows_for_the_wire)
        } else {
            Plan::done(statement, Outcome::from)
        };
        plan.restriction = Some(match (access, self.restriction) {
            (Access::Read, Restriction::Remote) => Restriction::RemoteRead,
            (_, restriction) => restriction,
        });
        plan.held = Some(Box::new(share));
        plan
    }

    /// Starts relaying every commit's changes to the client (once).
    fn subscribe(&self) {
        let mut relay = self.relay.lock().unwrap_or_else(PoisonError::into_inner);
        if relay.is_some() {
            return;
        }
        let (id, changes) = self.client.feed().relay(Arc::as_ptr(&self.client) as usize);
        let task = tokio::spawn(relay_changes(changes, self.pushes.clone()));
        *relay = Some((id, AbortOnDrop(task)));
    }
}

/// Sends the client every commit's changes; while it does not take them,
/// later commits merge into one message, so a slow client costs one
/// merged change set, not a queue.
async fn relay_changes(
    mut changes: futures::channel::mpsc::UnboundedReceiver<Arc<Changes>>,
    replies: mpsc::Sender<Vec<u8>>,
) {
    use futures::StreamExt;
    let mut merged: Option<Changes> = None;
    loop {
        tokio::select! {
            next = changes.next() => match next {
                Some(change) => match &mut merged {
                    Some(merged) => merged.merge((*change).clone()),
                    None => merged = Some((*change).clone()),
                },
                None => return,
            },
            permit = replies.reserve(), if merged.is_some() => {
                let Ok(permit) = permit else { return };
                let changes = ChangeSet(merged.take().unwrap_or_default());
                permit.send(wire::encode(&ServerMessage::Changed { changes }));
            }
        }
    }
}

impl Lanes {
    /// This process's lane for wire lane `lane` (0: none).
    fn lane(&self, lane: u64) -> Result<Lane> {
        if lane == 0 {
            return Ok(Lane::NONE);
        }
        self.lanes
            .get(&lane)
            .copied()
            .ok_or_else(|| Error::ended("its transaction was already committed or rolled back"))
    }

    /// [`Lanes::end`] for `level` of wire lane `lane`; `None` if the level
    /// is not open in that lane.
    fn end_in(&mut self, lane: u64, level: u64) -> Option<(Lane, Level)> {
        let local_lane = self.lanes.get(&lane)?;
        if self
            .levels
            .get(&level)
            .is_none_or(|(of, _, _)| of != local_lane)
        {
            return None;
        }
        self.end(level)
    }

    /// Forgets `level` (committed or rolled back), and with its outermost
    /// level its lane and the levels inside.
    fn end(&mut self, level: u64) -> Option<(Lane, Level)> {
        let (local_lane, local_level, outermost) = self.levels.remove(&level)?;
        if outermost {
            self.lanes.retain(|_, lane| *lane != local_lane);
            self.levels.retain(|_, (other, _, _)| *other != local_lane);
        }
        Some((local_lane, local_level))
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one burst of frames works on: the connection loop's state.
struct Burst<'a, 'e> {
    frames: &'a mut FrameReader,
    running: &'a mut Running,
    ending: &'a mut Option<(&'e str, tokio::time::Instant)>,
    waiting: &'a mut Option<Waiting>,
}

/// A frame waiting for its share of the memory budget.
struct Waiting {
    body: Vec<u8>,
    /// Kept from one turn of the loop to the next: its place in the queue.
    share: futures::future::BoxFuture<'static, Share>,
    until: tokio::time::Instant,
}

/// The share of the budget the frame `waiting` needs, or `Err` once its
/// deadline passed.
async fn wait_for_memory(
    waiting: Option<&mut Waiting>,
) -> std::result::Result<Share, tokio::time::error::Elapsed> {
    match waiting {
        Some(waiting) => tokio::time::timeout_at(waiting.until, &mut waiting.share).await,
        None => std::future::pending().await,
    }
}

/// How long a connection whose client stopped sending goes on finishing
/// the requests it had sent and writing their replies (a client that only
/// closed its sending half still reads them).
const FAREWELL: Duration = Duration::from_secs(5);

fn farewell_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + FAREWELL
}

/// Tells the client the connection is closing, and why, after the replies
/// already queued (if it still takes frames within a second).
async fn closing<W: AsyncWrite + Send + Unpin + 'static>(
    outbox: Outbox<W>,
    reason: &str,
) -> String {
    let patience = Duration::from_secs(1);
    let Some((mut writer, mut frames)) = outbox.into_parts(patience).await else {
        return reason.to_owned();
    };
    frames.extend(wire::encode(&ServerMessage::Closing {
        reason: reason.to_owned(),
    }));
    let _ = tokio::time::timeout(patience, wire::write_frame(&mut writer, &frames)).await;
    let _ = tokio::time::timeout(patience, writer.shutdown()).await;
    reason.to_owned()
}

fn ok(pending: Pending<()>) -> Pending<Outcome> {
    Pending::boxed(async move { pending.await.map(|()| Outcome::Ok {}) })
}

/// A batch from its wire entries.
fn batch_of(entries: Vec<BatchEntry>) -> Batch {
    Batch {
        entries: entries
            .into_iter()
            .map(|entry| {
                let arg_sets = entry.arg_sets.into_iter().map(wire::from_wire).collect();
                (entry.sql.into(), arg_sets)
            })
            .collect(),
    }
}

/// Every row with its column names, ready to send.
fn rows_for_the_wire(rows: &mut dyn Cursor, _sql: &str) -> Result<Outcome> {
    let mut columns = Vec::new();
    let mut out = Vec::new();
    while rows.next_row(&mut |row| {
        if columns.is_empty() {
            columns = (0..row.len())
                .map(|i| row.column_name(i).to_owned())
                .collect();
        }
        let values = (0..row.len())
            .map(|i| row.get_ref(i).map(|v| WireValue(v.to_owned())))
            .collect::<Result<_>>()?;
        out.push(values);
        Ok(())
    })? {}
    Ok(Outcome::Rows { columns, rows: out })
}

/// The database's `user_version`, for the welcome.
async fn user_version(client: &Client) -> Result<i64> {
    let statement = Statement {
        sql: "PRAGMA user_version".into(),
        args: Vec::new(),
        // A reader answers while a transaction holds the writer.
        access: Access::Read,
    };
    client
        .run(Lane::NONE, Plan::rows(statement, crate::plan::count))
        .await
}

/// Checks the client's token against the server's, in constant time.
fn check_token(expected: Option<&Token>, given: Option<&str>) -> Result<()> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let Some(given) = given else {
        return Err(Error::Unauthorized {
            message: "this server requires a token and the client sent none".into(),
        });
    };
    if bool::from(expected.secret().as_bytes().ct_eq(given.as_bytes())) {
        return Ok(());
    }
    Err(Error::Unauthorized {
        message: "the token is wrong".into(),
    })
}

/// Sends the client a refusal and gives back its error.
async fn refuse(writer: &mut (impl AsyncWrite + Unpin), error: Error) -> Error {
    let frame = wire::encode(&ServerMessage::Refused {
        error: error.clone(),
    });
    let _ = wire::write_frame(writer, &frame).await;
    error
}

/// Reads a token from a file (its first line, trimmed): the way to give
/// `driftwood serve` one without putting it on the command line.
pub(crate) fn token_from_file(path: &Path) -> Result<Token> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid_argument(format!(
            "cannot read the token file {}: {e}",
            path.display()
        ))
    })?;
    let first = text
        .trim_start_matches('\u{feff}')
        .lines()
        .next()
        .unwrap_or("");
    Token::new(first.trim()).map_err(|_| {
        Error::invalid_argument(format!(
            "the token file {} is empty (its first line holds the token)",
            path.display()
        ))
    })
}
