//! The remote client: one more backend under `Db` and `Transaction`, whose
//! statements, batches and transaction requests travel over a byte stream
//! to a [`RemoteServer`](super::RemoteServer).
//!
//! A request is a frame written when its call is made (so requests made
//! without awaiting each one are pipelined, and requests of one lane reach
//! the server in order) and a reply slot the future waits on; replies come
//! back in any order, matched by id. Rows arrive as values and are mapped
//! on the client by the plan's own fold, so the typed API is the same as
//! in-process. Dropping a request's future tells the server to cancel it.
//! If the connection is lost, requests in flight fail with
//! [`Error::OutcomeUnknown`] (never retried) and later ones with
//! [`Error::Closed`].

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};

use super::Token;
use super::wire::{
    self, BatchEntry, ClientMessage, Op, Outcome, PROTOCOL_VERSION, ReadError, ServerMessage,
    WireValue,
};
use crate::Pending;
use crate::backend::Lane;
use crate::backend::feed::Feed;
use crate::batch::Batch;
use crate::database::{Database, Db};
use crate::error::{Error, Result};
use crate::plan::{Collect, Cursor, Plan};
use crate::query::{Access, Statement};
use crate::row::{CellSource, Row};
use crate::sqlite::changes::ReadSet;
use crate::sqlite::{Execution, Level, TxKind};
use crate::types::ValueRef;

/// How a client connects to a served database.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    token: Option<Token>,
    client: String,
    max_frame: u32,
    reconnect: bool,
    #[cfg(feature = "tls")]
    tls: Option<super::TlsTrust>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            token: None,
            client: format!("driftwood {}", env!("CARGO_PKG_VERSION")),
            max_frame: wire::DEFAULT_MAX_FRAME,
            reconnect: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl RemoteOptions {
    /// No token, the default frame limit.
    pub fn new() -> Self {
        RemoteOptions::default()
    }

    /// The token the server requires.
    pub fn token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// A name the server logs for this client.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client = name.into();
        self
    }

    /// Reconnects when the connection ends (the server restarted, a
    /// network blip), for [`Db::connect_tcp`] and [`Db::connect_unix`] on
    /// Unix: requests made meanwhile wait for the new connection (up to 15
    /// seconds), watched queries run again on it and go on, requests in
    /// flight when it ended fail with [`Error::OutcomeUnknown`] (never
    /// retried), and a transaction begun before is over
    /// ([`Error::TransactionEnded`]). Off by default.
    pub fn reconnect(mut self, reconnect: bool) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Connects over TLS, trusting `trust` (the `tls` feature; TCP only).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, trust: super::TlsTrust) -> Self {
        self.tls = Some(trust);
        self
    }

    /// Over TLS when `tls` is set, else as it is.
    pub(crate) async fn connect_tcp_stream(
        &self,
        stream: tokio::net::TcpStream,
        version: u32,
    ) -> Result<Arc<Remote>> {
        let _ = stream.set_nodelay(true);
        #[cfg(feature = "tls")]
        if let Some(trust) = &self.tls {
            let stream = trust.connect(stream).await?;
            return Remote::connect_at_version(stream, self, version).await;
        }
        Remote::connect_at_version(stream, self, version).await
    }

    /// The largest reply frame accepted, in bytes (16 MiB by default).
    pub fn max_frame(mut self, bytes: u32) -> Self {
        self.max_frame = bytes.max(1024);
        self
    }
}

/// What the server said about itself in its welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Welcome {
    pub(crate) server: String,
    pub(crate) schema_version: i64,
    pub(crate) read_only: bool,
    /// The largest frame the server accepts: a longer request is refused
    /// here, before it is sent.
    pub(crate) max_frame: u32,
}

/// A connection to a served database: the backend of a remote `Db`.
pub(crate) struct Remote {
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    shared: Arc<Shared>,
    feed: Arc<Feed>,
    /// Whether the server was asked to push its changes.
    subscribed: AtomicBool,
    closed: AtomicBool,
    welcome: Welcome,
}

/// What the connection's reader task shares with the client.
struct Shared {
    next_id: AtomicU64,
    /// Requests waiting for their reply, by id; `None` once the connection
    /// is gone.
    waiting: Mutex<Option<HashMap<u64, oneshot::Sender<Result<Outcome>>>>>,
}

impl Remote {
    /// Runs the handshake on `io`, then starts the tasks that write
    /// requests and read replies (on the current tokio runtime).
    pub(crate) async fn connect<S>(io: S, options: &RemoteOptions) -> Result<Arc<Remote>>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut reader, writer) = tokio::io::split(io);
        let mut writer = BufWriter::new(writer);
        let handshake = Remote::handshake(&mut reader, &mut writer, options);
        let welcome = tokio::time::timeout(wire::HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| {
                wire::protocol(format!(
                    "the server did not complete the handshake within {:?}",
                    wire::HANDSHAKE_TIMEOUT
                ))
            })??;
        let shared = Arc::new(Shared {
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(Some(HashMap::new())),
        });
        let (outgoing, requests) = mpsc::unbounded_channel();
        let feed = Feed::new();
        tokio::spawn(write_requests(writer, requests));
        tokio::spawn(read_replies(
            reader,
            shared.clone(),
            feed.clone(),
            options.max_frame,
        ));
        Ok(Arc::new(Remote {
            outgoing,
            shared,
            feed,
            subscribed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            welcome,
        }))
    }

    /// Sends the preamble and hello, and reads the server's answer.
    async fn handshake(
        reader: &mut (impl AsyncRead + Unpin),
        writer: &mut (impl AsyncWrite + Unpin),
        options: &RemoteOptions,
    ) -> Result<Welcome> {
        let hello = ClientMessage::Hello {
            token: options.token.as_ref().map(|t| t.secret().to_owned()),
            client: options.client.clone(),
            max_frame: Some(options.max_frame),
        };
        let written = async {
            writer.write_all(&wire::preamble()).await?;
            writer.write_all(&wire::encode(&hello)).await?;
            writer.flush().await
        };
        let lost = |e: std::io::Error| wire::protocol(format!("the handshake failed: {e}"));
        written.await.map_err(lost)?;
        let version = wire::read_preamble(reader).await?;
        if version != PROTOCOL_VERSION {
            return Err(wire::protocol(format!(
                "the server speaks protocol version {version}; this client speaks version {PROTOCOL_VERSION}"
            )));
        }
        let first = match wire::read_frame(reader, options.max_frame).await {
            Ok(body) => wire::decode::<ServerMessage>(&body)?,
            Err(ReadError::Closed) => {
                return Err(wire::protocol(
                    "the server closed the connection during the handshake",
                ));
            }
            Err(ReadError::Broken(error)) => return Err(error),
        };
        match first {
            ServerMessage::Welcome {
                server,
                schema_version,
                read_only,
                max_frame,
            } => Ok(Welcome {
                server,
                schema_version,
                read_only,
                max_frame,
            }),
            ServerMessage::Refused { error } => Err(error),
            other => Err(wire::protocol(format!(
                "the server answered the hello with {other:?}"
            ))),
        }
    }

    /// [`Remote::connect`], refused unless the served database is at
    /// schema `version` (0: any): only the serving process migrates.
    pub(crate) async fn connect_at_version<S>(
        io: S,
        options: &RemoteOptions,
        version: u32,
    ) -> Result<Arc<Remote>>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let remote = Remote::connect(io, options).await?;
        let served = remote.welcome().schema_version;
        if version != 0 && served != i64::from(version) {
            drop(remote.close());
            return Err(Error::schema(format!(
                "the served database is at schema version {served} but this client's schema is version {version}: only the serving process migrates, so both must run the same version"
            )));
        }
        Ok(remote)
    }

    /// This client's own feed, which publishes the changes the server
    /// pushes; asking for it (to watch) subscribes to them, once.
    pub(crate) fn feed(&self) -> &Arc<Feed> {
        if !self.subscribed.swap(true, Ordering::AcqRel) {
            let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
            let op = Op::Subscribe {};
            let _ = self
                .outgoing
                .send(wire::encode(&ClientMessage::Request { id, op }));
        }
        &self.feed
    }

    /// Runs a watched query's statement on the server, which records what
    /// it reads; its rows are folded here. The commit it is known to
    /// include is `seen`, the watcher's feed's latest when it was sent:
    /// the server's changes reach that feed in order with the replies (or,
    /// relayed on, after them), so a commit the run did not see is
    /// published there after that number.
    pub(crate) fn run_watched<T: Send + 'static>(
        &self,
        statement: Statement,
        collect: Collect<T>,
        seen: u64,
    ) -> Pending<(Result<T>, ReadSet, u64, bool)> {
        let op = Op::Watch {
            sql: statement.sql.to_string(),
            args: wire::to_wire(statement.args.clone()),
            rows: matches!(collect, Collect::Rows(_)),
        };
        self.request(op, move |outcome| {
            let Outcome::Watched { outcome, reads } = outcome else {
                return Err(unexpected(outcome));
            };
            let result = match *outcome {
                Outcome::Failed { error } => Err(error),
                outcome => fold(
                    Plan {
                        statement,
                        collect,
                        restriction: None,
                        held: None,
                    },
                    outcome,
                ),
            };
            Ok((result, reads.0, seen, true))
        })
    }

    /// Sends `op`; the future resolves with its reply.
    fn send(&self, op: Op) -> Result<Awaiting> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, receiver) = oneshot::channel();
        {
            let mut waiting = self
                .shared
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(waiting) = waiting.as_mut() else {
                return Err(Error::Closed);
            };
            waiting.insert(id, reply);
        }
        let frame = wire::encode(&ClientMessage::Request { id, op });
        let limit = self.welcome.max_frame as usize;
        if frame.len() - 4 > limit {
            self.shared.forget(id);
            return Err(Error::LimitReached {
                message: format!(
                    "the request is {} bytes, over the server's frame limit of {limit} bytes; nothing was sent",
                    frame.len() - 4
                ),
            });
        }
        if self.outgoing.send(frame).is_err() {
            self.shared.forget(id);
            return Err(Error::Closed);
        }
        Ok(Awaiting {
            id,
            receiver,
            outgoing: self.outgoing.clone(),
            shared: self.shared.clone(),
            done: false,
        })
    }

    /// Sends `op` and maps its reply with `finish`.
    fn request<T: Send + 'static>(
        &self,
        op: Op,
        finish: impl FnOnce(Outcome) -> Result<T> + Send + 'static,
    ) -> Pending<T> {
        match self.send(op) {
            Ok(awaiting) => Pending::boxed(async move { finish(awaiting.await?) }),
            Err(error) => Pending::ready(Err(error)),
        }
    }

    /// Runs `plan` on the server; its rows are folded here.
    pub(crate) fn run<T: Send + 'static>(&self, lane: Lane, plan: Plan<T>) -> Pending<T> {
        let statement = &plan.statement;
        let op = Op::Run {
            lane: lane.id(),
            sql: statement.sql.to_string(),
            args: wire::to_wire(statement.args.clone()),
            read: statement.access == Access::Read,
            rows: matches!(plan.collect, Collect::Rows(_)),
        };
        self.request(op, move |outcome| fold(plan, outcome))
    }

    /// Runs `batch` on the server in one round trip.
    pub(crate) fn run_batch(&self, lane: Lane, batch: Batch) -> Pending<Execution> {
        let entries = batch
            .entries
            .into_iter()
            .map(|(sql, arg_sets)| BatchEntry {
                sql: sql.into_owned(),
                arg_sets: arg_sets.into_iter().map(wire::to_wire).collect(),
            })
            .collect();
        self.request(
            Op::Batch {
                lane: lane.id(),
                entries,
            },
            |outcome| match outcome {
                Outcome::Done {
                    rows_affected,
                    last_insert_id,
                } => Ok(Execution {
                    rows_affected,
                    last_insert_id,
                }),
                other => Err(unexpected(other)),
            },
        )
    }

    pub(crate) fn begin(
        &self,
        lane: Lane,
        level: Level,
        kind: TxKind,
        parent: Option<Lane>,
    ) -> Pending<()> {
        let op = Op::Begin {
            lane: lane.id(),
            level: level.id(),
            immediate: kind == TxKind::Immediate,
            parent: parent.map(Lane::id),
        };
        self.request(op, acknowledged)
    }

    pub(crate) fn commit(&self, lane: Lane, level: Level) -> Pending<()> {
        let op = Op::Commit {
            lane: lane.id(),
            level: level.id(),
        };
        self.request(op, acknowledged)
    }

    pub(crate) fn rollback(&self, lane: Lane, level: Level) -> Pending<()> {
        let op = Op::Rollback {
            lane: lane.id(),
            level: level.id(),
        };
        self.request(op, acknowledged)
    }

    /// Sent after the lane's earlier requests; nobody waits for the reply.
    pub(crate) fn rollback_detached(&self, lane: Lane, level: Level) {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let op = Op::Rollback {
            lane: lane.id(),
            level: level.id(),
        };
        // A connection that is gone rolled everything back already.
        let _ = self
            .outgoing
            .send(wire::encode(&ClientMessage::Request { id, op }));
    }

    /// Closes this client: later requests fail with [`Error::Closed`]; the
    /// server rolls back what it left open.
    pub(crate) fn close(&self) -> Pending<()> {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let _ = self.outgoing.send(wire::encode(&ClientMessage::Goodbye {}));
        }
        self.feed.close();
        Pending::ready(Ok(()))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.shared.is_gone()
    }

    pub(crate) fn welcome(&self) -> &Welcome {
        &self.welcome
    }
}

impl Shared {
    fn forget(&self, id: u64) {
        if let Some(waiting) = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            waiting.remove(&id);
        }
    }

    fn is_gone(&self) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// The connection ended: every request in flight learns it may or may
    /// not have run.
    fn gone(&self, why: &str) {
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        for (_, reply) in waiting.into_iter().flatten() {
            let _ = reply.send(Err(Error::OutcomeUnknown {
                message: why.to_owned(),
            }));
        }
    }
}

/// A request's reply on its way; dropped before it came, it tells the
/// server to cancel the request.
struct Awaiting {
    id: u64,
    receiver: oneshot::Receiver<Result<Outcome>>,
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    shared: Arc<Shared>,
    done: bool,
}

impl Future for Awaiting {
    type Output = Result<Outcome>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Outcome>> {
        let polled = Pin::new(&mut self.receiver).poll(cx);
        let Poll::Ready(reply) = polled else {
            return Poll::Pending;
        };
        self.done = true;
        Poll::Ready(reply.unwrap_or_else(|_| {
            Err(Error::OutcomeUnknown {
                message: "the connection's reader stopped".into(),
            })
        }))
    }
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.shared.forget(self.id);
        let _ = self
            .outgoing
            .send(wire::encode(&ClientMessage::Cancel { id: self.id }));
    }
}

/// Writes request frames as they come, flushing when none are waiting, so
/// pipelined requests share writes.
async fn write_requests(
    mut writer: BufWriter<impl AsyncWrite + Unpin>,
    mut requests: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(frame) = requests.recv().await {
        if writer.write_all(&frame).await.is_err() {
            return;
        }
        // Let the other tasks woken by the same replies queue their next
        // requests first, so they share this write.
        tokio::task::yield_now().await;
        while let Ok(frame) = requests.try_recv() {
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Reads replies and hands each to its request, until the connection ends.
/// The server's changes are published on `feed`; when the connection ends,
/// the feed closes, so watched queries end with [`Error::Closed`].
async fn read_replies(
    mut reader: impl AsyncRead + Unpin,
    shared: Arc<Shared>,
    feed: Arc<Feed>,
    max_frame: u32,
) {
    let mut closing = None;
    let mut frames = wire::FrameReader::new(max_frame);
    let why = loop {
        let body = match frames.next(&mut reader).await {
            Ok(body) => body,
            Err(ReadError::Closed) => {
                break closing.unwrap_or_else(|| "the server closed the connection".to_owned());
            }
            Err(ReadError::Broken(error)) => break error.to_string(),
        };
        match wire::decode::<ServerMessage>(&body) {
            Ok(ServerMessage::Reply { id, outcome }) => {
                let reply = shared
                    .waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                    .and_then(|waiting| waiting.remove(&id));
                let outcome = match outcome {
                    Outcome::Failed { error } => Err(error),
                    outcome => Ok(outcome),
                };
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
            Ok(ServerMessage::Changed { changes }) => {
                feed.publish(changes.0);
            }
            Ok(ServerMessage::Closing { reason }) => {
                tracing::info!(target: "driftwood::remote", %reason, "the server is closing the connection");
                closing = Some(format!("the server closed the connection: {reason}"));
            }
            Ok(other) => break format!("the server sent {other:?} after the handshake"),
            Err(error) => break error.to_string(),
        }
    };
    shared.gone(&why);
    feed.close();
}

/// A plan's value from its statement's reply.
fn fold<T>(plan: Plan<T>, outcome: Outcome) -> Result<T> {
    let sql = &*plan.statement.sql;
    match (plan.collect, outcome) {
        (
            Collect::Done(finish),
            Outcome::Done {
                rows_affected,
                last_insert_id,
            },
        ) => Ok(finish(Execution {
            rows_affected,
            last_insert_id,
        })),
        (Collect::Rows(fold), Outcome::Rows { columns, rows }) => {
            let mut cursor = WireRows {
                columns,
                rows: rows.into_iter(),
                sql,
            };
            fold(&mut cursor, sql)
        }
        (_, other) => Err(unexpected(other)),
    }
}

fn acknowledged(outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Ok {} => Ok(()),
        other => Err(unexpected(other)),
    }
}

fn unexpected(outcome: Outcome) -> Error {
    let kind = match outcome {
        Outcome::Rows { .. } => "rows",
        Outcome::Done { .. } => "an execution",
        Outcome::Watched { .. } => "a watched result",
        Outcome::Ok {} => "an acknowledgement",
        Outcome::Failed { .. } => "an error",
    };
    wire::protocol(format!(
        "the server answered with {kind}, which the request does not expect"
    ))
}

/// Rows that crossed the wire, handed to a plan's fold one at a time.
struct WireRows<'a> {
    columns: Vec<String>,
    rows: std::vec::IntoIter<Vec<WireValue>>,
    sql: &'a str,
}

impl Cursor for WireRows<'_> {
    fn next_row(&mut self, visit: &mut dyn FnMut(&Row<'_>) -> Result<()>) -> Result<bool> {
        let Some(values) = self.rows.next() else {
            return Ok(false);
        };
        let row = WireRow {
            columns: &self.columns,
            values: &values,
        };
        visit(&Row::new(&row, self.sql))?;
        Ok(true)
    }
}

/// One row's values beside the result's column names.
struct WireRow<'a> {
    columns: &'a [String],
    values: &'a [WireValue],
}

impl CellSource for WireRow<'_> {
    fn cell(&self, index: usize) -> Option<ValueRef<'_>> {
        self.values.get(index).map(|WireValue(v)| v.as_ref())
    }

    fn column_name(&self, index: usize) -> &str {
        self.columns.get(index).map_or("?", String::as_str)
    }

    fn column_count(&self) -> usize {
        self.values.len()
    }
}

impl<D: Database> Db<D> {
    /// Connects to a database served by a [`RemoteServer`](super::RemoteServer)
    /// over `io` (any byte stream; the connection's tasks run on the current
    /// tokio runtime). Statements, batches, transactions and their
    /// savepoints work as in-process; closure-based units of work
    /// (`write`, `read`) fail with [`Error::Unsupported`]. Fails if the
    /// served database's schema version is not `D`'s (only the serving
    /// process migrates).
    pub async fn connect_remote<S>(io: S, options: RemoteOptions) -> Result<Self>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let remote = Remote::connect_at_version(io, &options, D::SCHEMA_VERSION).await?;
        Ok(Db::from_backend(crate::backend::Backend::Remote(remote)))
    }

    /// [`Db::connect_remote`] over TCP.
    pub async fn connect_tcp(
        addr: impl tokio::net::ToSocketAddrs,
        options: RemoteOptions,
    ) -> Result<Self> {
        #[cfg(unix)]
        if options.reconnect {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(addr)
                .await
                .map_err(|e| wire::protocol(format!("cannot resolve the server's address: {e}")))?
                .collect();
            let address = crate::remote::shared::Address::Tcp(addrs);
            let failover = crate::remote::shared::Failover::connect::<D>(address, options).await?;
            return Ok(Db::from_backend(crate::backend::Backend::Shared(failover)));
        }
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| wire::protocol(format!("cannot connect over TCP: {e}")))?;
        let remote = options
            .connect_tcp_stream(stream, D::SCHEMA_VERSION)
            .await?;
        Ok(Db::from_backend(crate::backend::Backend::Remote(remote)))
    }

    /// [`Db::connect_remote`] over a Unix socket.
    #[cfg(unix)]
    pub async fn connect_unix(path: impl AsRef<Path>, options: RemoteOptions) -> Result<Self> {
        let path = path.as_ref();
        if options.reconnect {
            let address = crate::remote::shared::Address::Unix(path.to_path_buf());
            let failover = crate::remote::shared::Failover::connect::<D>(address, options).await?;
            return Ok(Db::from_backend(crate::backend::Backend::Shared(failover)));
        }
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| wire::protocol(format!("cannot connect to {}: {e}", path.display())))?;
        Db::connect_remote(stream, options).await
    }
}
