//! A database served over TCP, Unix sockets and in-memory streams: the
//! same API as in-process, the handshake's refusals, the policy, faults
//! (garbage, oversized and truncated frames, a client that stops reading,
//! a disconnect mid-transaction, shutdown with requests in flight) — each
//! with a well-behaved client served throughout.
#![cfg(feature = "remote")]

mod common;

use std::time::Duration;

use common::*;
use driftwood::prelude::*;
use driftwood::remote::wire::{self, ClientMessage, Op, ServerMessage};
use driftwood::remote::{RemoteOptions, RemoteServer, Token};
use driftwood::{ConstraintKind, Error, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a test client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    Duplex,
    Tcp,
    Unix,
}

const TRANSPORTS: [Transport; 3] = [Transport::Duplex, Transport::Tcp, Transport::Unix];

/// A served database file: the background server, an in-process client
/// of it, and the remote server listening on TCP and a Unix socket.
struct Served {
    dir: tempfile::TempDir,
    local: Db<TodoDb>,
    remote: RemoteServer,
    tcp: std::net::SocketAddr,
    unix: std::path::PathBuf,
}

async fn serve(configure: impl FnOnce(RemoteServer) -> RemoteServer) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::open(dir.path().join("todos.db")).await.unwrap();
    let local = server.connect::<TodoDb>().await.unwrap();
    let remote = configure(RemoteServer::new(server));
    let tcp = remote.listen_tcp("127.0.0.1:0").await.unwrap();
    let unix = dir.path().join("todos.sock");
    remote.listen_unix(&unix).await.unwrap();
    Served {
        tcp: tcp.local_addr().unwrap(),
        dir,
        local,
        remote,
        unix,
    }
}

impl Served {
    async fn connect(&self, transport: Transport, options: RemoteOptions) -> Result<Db<TodoDb>> {
        match transport {
            Transport::Tcp => Db::connect_tcp(self.tcp, options).await,
            Transport::Unix => Db::connect_unix(&self.unix, options).await,
            Transport::Duplex => {
                let (client, server) = tokio::io::duplex(64 * 1024);
                let remote = self.remote.clone();
                tokio::spawn(async move { remote.serve_connection(server, "duplex").await });
                Db::connect_remote(client, options).await
            }
        }
    }

    async fn client(&self, transport: Transport) -> Db<TodoDb> {
        self.connect(transport, RemoteOptions::new()).await.unwrap()
    }

    /// A raw TCP connection that has sent its preamble and hello.
    async fn raw(&self, token: Option<&str>) -> tokio::net::TcpStream {
        let mut stream = tokio::net::TcpStream::connect(self.tcp).await.unwrap();
        handshake(&mut stream, token).await;
        stream
    }

    /// A raw in-memory connection with `buffer` bytes of room each way
    /// that has sent its preamble and hello.
    async fn raw_duplex(&self, buffer: usize) -> tokio::io::DuplexStream {
        let (mut client, server) = tokio::io::duplex(buffer);
        let remote = self.remote.clone();
        tokio::spawn(async move { remote.serve_connection(server, "raw duplex").await });
        handshake(&mut client, None).await;
        client
    }

    /// The well-behaved client still gets answers.
    async fn still_serves(&self) {
        let db = self.client(Transport::Tcp).await;
        let count = db.select::<Todo>().count().await.unwrap();
        assert_eq!(count, self.local.select::<Todo>().count().await.unwrap());
    }
}

/// Runs `test` on a tokio runtime, failing if it takes over a minute.
/// Sends the preamble and a hello, and reads the server's welcome.
async fn handshake(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    token: Option<&str>,
) {
    stream.write_all(&wire::preamble()).await.unwrap();
    let hello = ClientMessage::Hello {
        token: token.map(str::to_owned),
        client: "raw".into(),
        max_frame: None,
    };
    stream.write_all(&wire::encode(&hello)).await.unwrap();
    let version = wire::read_preamble(stream).await.unwrap();
    assert_eq!(version, wire::PROTOCOL_VERSION);
    let welcome = wire::read_frame(stream, wire::DEFAULT_MAX_FRAME)
        .await
        .unwrap();
    assert!(matches!(
        wire::decode::<ServerMessage>(&welcome).unwrap(),
        ServerMessage::Welcome { .. }
    ));
}

#[test]
fn queries_batches_and_transactions_work_over_every_transport() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        for transport in TRANSPORTS {
            let db = served.client(transport).await;
            db.delete::<Todo>().await.unwrap();
            let id = db
                .insert(todo("Remote one", "x", None))
                .execute()
                .await
                .unwrap()
                .last_insert_id;
            let found = db.find::<Todo>(id).await.unwrap().unwrap();
            assert_eq!(found.title, "Remote one", "over {transport:?}");

            // Owned transaction with a savepoint rolled back inside it.
            let mut tx = db.begin().await.unwrap();
            tx.insert(todo("Outer tx", "x", None)).await.unwrap();
            {
                let inner = tx.begin().await.unwrap();
                inner.insert(todo("Inner A", "x", None)).await.unwrap();
                inner.commit().await.unwrap();
            }
            {
                let inner = tx.begin().await.unwrap();
                inner.insert(todo("Inner B", "x", None)).await.unwrap();
            }
            assert_eq!(tx.select::<Todo>().count().await.unwrap(), 3);
            assert_eq!(
                served.local.select::<Todo>().count().await.unwrap(),
                1,
                "uncommitted work is invisible to other clients"
            );
            tx.commit().await.unwrap();

            // A scoped transaction whose body fails rolls back.
            let failed: Result<()> = db
                .transaction(|| async {
                    db.insert(todo("Scoped", "x", None)).await?;
                    db.insert(todo("bad", "x", None)).await?;
                    Ok(())
                })
                .await;
            assert_eq!(
                failed.unwrap_err().constraint_kind(),
                Some(ConstraintKind::Check),
                "the error kind crosses the wire"
            );

            let mut batch = Batch::new();
            batch.insert(todo("Batched 1", "x", None));
            batch.insert(todo("Batched 2", "x", None));
            assert_eq!(db.run_batch(batch).await.unwrap().rows_affected, 2);

            let mut titles: Vec<String> = db
                .select::<Todo>()
                .get()
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.title)
                .collect();
            titles.sort();
            assert_eq!(
                titles,
                [
                    "Batched 1",
                    "Batched 2",
                    "Inner A",
                    "Outer tx",
                    "Remote one"
                ],
                "over {transport:?}"
            );
            // What the remote client wrote is what the file holds.
            assert_eq!(titles_on_disk(&served.dir), titles);

            let unique = db
                .custom_statement(
                    "INSERT INTO categories (description) VALUES (?), (?)",
                    args!["same", "same"],
                )
                .await
                .unwrap_err();
            println!("a constraint over the wire: {unique}");
            assert_eq!(unique.constraint_kind(), Some(ConstraintKind::Unique));
            let bad = db.custom_select("SELEC 1", []).await.unwrap_err();
            assert!(matches!(bad, Error::Sql { .. }), "{bad:?}");

            let units = db.write(|_| Ok(())).await.unwrap_err();
            println!("a unit of work over the wire: {units}");
            assert!(matches!(units, Error::Unsupported { .. }));
            let restore = db
                .restore_from(served.dir.path().join("backup.db"), |_| {})
                .await
                .unwrap_err();
            println!("a restore over the wire: {restore}");
            assert!(matches!(restore, Error::Unsupported { .. }), "{restore:?}");
        }
    });
}

#[test]
fn values_cross_the_wire_exactly() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let db = served.client(Transport::Tcp).await;
        let rows = db
            .custom_select(
                "SELECT ?, ?, ?, ?, ?, ?, 1.0, 9223372036854775807",
                args![
                    i64::MIN,
                    1.0_f64,
                    "text\u{0}with nul",
                    vec![0_u8, 255, 7],
                    Option::<i64>::None,
                    -0.5_f64
                ],
            )
            .await
            .unwrap();
        let values: Vec<SqlValue> = (0..8)
            .map(|i| rows[0].get::<SqlValue>(i).unwrap())
            .collect();
        assert_eq!(
            values,
            [
                SqlValue::Integer(i64::MIN),
                SqlValue::Real(1.0),
                SqlValue::Text("text\u{0}with nul".into()),
                SqlValue::Blob(vec![0, 255, 7]),
                SqlValue::Null,
                SqlValue::Real(-0.5),
                SqlValue::Real(1.0),
                SqlValue::Integer(i64::MAX),
            ]
        );
    });
}

#[test]
fn pipelined_requests_each_resolve_with_their_own_result() {
    on_tokio(|| async {
        let served = serve(|remote| remote.max_in_flight(8)).await;
        let db = served.client(Transport::Unix).await;
        let tx = db.begin().await.unwrap();
        let queued: Vec<_> = (0..500)
            .map(|i| {
                let title = if i == 250 {
                    "bad".to_owned()
                } else {
                    format!("Todo {i:04}")
                };
                tx.insert(todo(&title, "x", None)).execute()
            })
            .collect();
        let mut failures = 0;
        for (i, pending) in queued.into_iter().enumerate() {
            match pending.await {
                Ok(done) => assert_eq!(done.rows_affected, 1),
                Err(error) => {
                    assert_eq!(i, 250, "only the bad row fails");
                    assert_eq!(error.constraint_kind(), Some(ConstraintKind::Check));
                    failures += 1;
                }
            }
        }
        assert_eq!(failures, 1);
        tx.commit().await.unwrap();
        assert_eq!(served.local.select::<Todo>().count().await.unwrap(), 499);
        assert!(
            served.remote.stats().in_flight_waits > 0,
            "500 pipelined requests ran into the limit of 8 in flight and waited: {:?}",
            served.remote.stats()
        );
    });
}

#[test]
fn a_wrong_or_missing_token_is_refused() {
    on_tokio(|| async {
        let served = serve(|remote| remote.token(Token::new("s3cret").unwrap())).await;
        let missing = served
            .connect(Transport::Tcp, RemoteOptions::new())
            .await
            .unwrap_err();
        println!("no token: {missing}");
        assert!(matches!(missing, Error::Unauthorized { .. }), "{missing:?}");
        let wrong = served
            .connect(
                Transport::Unix,
                RemoteOptions::new().token(Token::new("s3cres").unwrap()),
            )
            .await
            .unwrap_err();
        println!("wrong token: {wrong}");
        assert_eq!(wrong.to_string(), "not authorized: the token is wrong");
        assert_eq!(served.remote.stats().unauthorized, 2);

        let db = served
            .connect(
                Transport::Duplex,
                RemoteOptions::new().token(Token::new("s3cret").unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(db.select::<Todo>().count().await.unwrap(), 0);
        assert_eq!(
            format!("{:?}", Token::new("s3cret").unwrap()),
            "Token(<redacted>)"
        );
    });
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused() {
    on_tokio(|| async {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::open(dir.path().join("x.db")).await.unwrap();
        let error = RemoteServer::new(server)
            .listen_tcp("0.0.0.0:0")
            .await
            .unwrap_err();
        println!("{error}");
        assert!(error.to_string().contains("without a token"), "{error}");
    });
}

#[test]
fn incompatible_versions_fail_the_handshake_naming_both() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        // A client of a later version.
        let mut stream = tokio::net::TcpStream::connect(served.tcp).await.unwrap();
        let mut preamble = wire::preamble();
        preamble[6..].copy_from_slice(&99_u16.to_be_bytes());
        stream.write_all(&preamble).await.unwrap();
        assert_eq!(
            wire::read_preamble(&mut stream).await.unwrap(),
            wire::PROTOCOL_VERSION
        );
        let refused = wire::read_frame(&mut stream, wire::DEFAULT_MAX_FRAME)
            .await
            .unwrap();
        let ServerMessage::Refused { error } = wire::decode(&refused).unwrap() else {
            panic!("a refusal expected");
        };
        println!("server side: {error}");
        assert!(
            error
                .to_string()
                .contains("the client speaks protocol version 99; this server speaks version 1")
        );

        // A server of a later version, seen by this client.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            let mut preamble = wire::preamble();
            preamble[6..].copy_from_slice(&2_u16.to_be_bytes());
            peer.write_all(&preamble).await.unwrap();
            let mut sink = Vec::new();
            let _ = peer.read_to_end(&mut sink).await;
        });
        let error = Db::<TodoDb>::connect_tcp(addr, RemoteOptions::new())
            .await
            .unwrap_err();
        println!("client side: {error}");
        assert!(
            error
                .to_string()
                .contains("the server speaks protocol version 2; this client speaks version 1")
        );

        // Something that is not driftwood at all.
        let mut http = tokio::net::TcpStream::connect(served.tcp).await.unwrap();
        http.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut rest = Vec::new();
        let _ = http.read_to_end(&mut rest).await;
        assert_eq!(
            &rest[..8],
            &wire::preamble(),
            "only the server's preamble, then closed"
        );
        served.still_serves().await;
    });
}

#[test]
fn garbage_oversized_and_truncated_frames_close_only_that_connection() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let keeper = served.client(Transport::Unix).await;
        keeper.insert(todo("Survivor", "x", None)).await.unwrap();

        let hostile: [&[u8]; 4] = [
            // A 4 GiB length prefix.
            &[0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            // A frame that is not MessagePack of any message.
            &[0, 0, 0, 3, 0xc1, 0xc1, 0xc1],
            // A frame cut short: 100 bytes announced, 2 sent.
            &[0, 0, 0, 100, 0x81, 0xa1],
            // Valid MessagePack, not a message.
            &[0, 0, 0, 1, 0x2a],
        ];
        for bytes in hostile {
            let before = served.remote.stats().protocol_errors;
            let mut stream = served.raw(None).await;
            stream.write_all(bytes).await.unwrap();
            stream.shutdown().await.unwrap();
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
            if !rest.is_empty() {
                let closing = wire::decode::<ServerMessage>(&rest[4..]).unwrap();
                println!("hostile {:?}: {closing:?}", &bytes[..4]);
                assert!(matches!(closing, ServerMessage::Closing { .. }));
            }
            assert_eq!(
                served.remote.stats().protocol_errors,
                before + 1,
                "{bytes:?}"
            );
            assert_eq!(keeper.select::<Todo>().count().await.unwrap(), 1);
        }
        served.still_serves().await;
    });
}

#[test]
fn a_client_that_stops_reading_does_not_stall_others() {
    on_tokio(|| async {
        let served = serve(|remote| remote.max_in_flight(4)).await;
        let mut rows = Batch::new();
        for i in 0..2000 {
            rows.insert(todo(&format!("Row {i:05}"), &"y".repeat(500), None));
        }
        served.local.run_batch(rows).await.unwrap();
        // Asks for a megabyte of rows again and again, reading nothing.
        let mut stuck = served.raw(None).await;
        for id in 1..=200 {
            let request = ClientMessage::Request {
                id,
                op: Op::Run {
                    lane: 0,
                    sql: "SELECT * FROM todos".into(),
                    args: vec![],
                    read: true,
                    rows: true,
                },
            };
            let sent = tokio::time::timeout(
                Duration::from_secs(2),
                stuck.write_all(&wire::encode(&request)),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                break; // The server stopped reading from it: backpressure.
            }
        }
        for _ in 0..20 {
            served.still_serves().await;
        }
        let writer = served.client(Transport::Duplex).await;
        writer.insert(todo("Written", "x", None)).await.unwrap();
        assert_eq!(served.local.select::<Todo>().count().await.unwrap(), 2001);
        assert!(served.remote.stats().in_flight_waits > 0);
        drop(stuck);
    });
}

#[test]
fn a_disconnect_mid_transaction_rolls_it_back() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let mut stream = served.raw(None).await;
        let requests = [
            Op::Begin {
                lane: 7,
                level: 70,
                immediate: true,
                parent: None,
            },
            Op::Run {
                lane: 7,
                sql: "INSERT INTO todos (title, body) VALUES ('Vanished', 'x')".into(),
                args: vec![],
                read: false,
                rows: false,
            },
        ];
        for (id, op) in requests.into_iter().enumerate() {
            let frame = wire::encode(&ClientMessage::Request { id: id as u64, op });
            stream.write_all(&frame).await.unwrap();
        }
        for _ in 0..2 {
            let reply = wire::read_frame(&mut stream, wire::DEFAULT_MAX_FRAME)
                .await
                .unwrap();
            let ServerMessage::Reply { outcome, .. } = wire::decode(&reply).unwrap() else {
                panic!("a reply expected");
            };
            assert!(
                !matches!(outcome, wire::Outcome::Failed { .. }),
                "{outcome:?}"
            );
        }
        drop(stream);
        // The writer is free again (a write would wait for the lane and
        // fail with Busy otherwise) and the row never landed.
        served
            .local
            .insert(todo("After it", "x", None))
            .await
            .unwrap();
        assert_eq!(titles_on_disk(&served.dir), ["After it"]);
    });
}

#[test]
fn shutdown_with_requests_in_flight_ends_them_without_a_hang() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let db = served.client(Transport::Tcp).await;
        let slow = db.custom_select(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
            [],
        );
        let slow = tokio::spawn(slow);
        tokio::time::sleep(Duration::from_millis(200)).await;
        served.remote.shutdown();
        let error = slow.await.unwrap().unwrap_err();
        println!("in flight at shutdown: {error}");
        assert!(matches!(error, Error::OutcomeUnknown { .. }), "{error:?}");
        let after = db.select::<Todo>().count().await.unwrap_err();
        assert!(
            matches!(after, Error::Closed | Error::OutcomeUnknown { .. }),
            "{after:?}"
        );
        // The database itself is fine.
        assert_eq!(served.local.select::<Todo>().count().await.unwrap(), 0);
    });
}

#[test]
fn dropping_a_remote_request_interrupts_it_on_the_server() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let db = served.client(Transport::Unix).await;
        let slow = db.custom_select(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
            [],
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(300), slow)
                .await
                .is_err()
        );
        // The reader that ran it is free again: these are answered.
        for _ in 0..5 {
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 0);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while served.remote.stats().cancelled == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the cancel never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

#[test]
fn the_policy_refuses_what_reaches_beyond_rows_and_schema() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let db = served.client(Transport::Tcp).await;
        let attach_sql = "ATTACH DATABASE ':memory:' AS other";
        let refused = [
            attach_sql.to_owned(),
            "DETACH DATABASE other".to_owned(),
            "PRAGMA query_only = 0".to_owned(),
            "PRAGMA wal_checkpoint".to_owned(),
            format!(
                "VACUUM INTO '{}'",
                served.dir.path().join("copy.db").display()
            ),
            "SELECT load_extension('x')".to_owned(),
        ];
        for sql in &refused {
            let error = db.custom_statement(sql.clone(), []).await.unwrap_err();
            println!("{error}");
            assert!(
                matches!(error, Error::NotPermitted { .. }),
                "{sql}: {error:?}"
            );
        }
        assert!(!served.dir.path().join("copy.db").exists());
        // A statement an in-process client prepared (and the server cached)
        // is judged again when a remote client runs it.
        served.local.custom_statement(attach_sql, []).await.unwrap();
        let cached = db.custom_statement(attach_sql, []).await.unwrap_err();
        assert!(matches!(cached, Error::NotPermitted { .. }), "{cached:?}");
        // A key pragma is refused as in-process, and its text (a key) is
        // in neither the error nor its message.
        let key = db
            .custom_statement("PRAGMA rekey = 'hunter2-secret'", [])
            .await
            .unwrap_err();
        println!("{key}");
        assert!(matches!(key, Error::KeyPragma { .. }), "{key:?}");
        assert!(!format!("{key:?}").contains("hunter2"));
        // Reporting pragmas are fine.
        let info = db
            .custom_select("PRAGMA table_info(todos)", [])
            .await
            .unwrap();
        assert!(info.len() >= 5);
        assert_eq!(
            db.custom_select("PRAGMA user_version", []).await.unwrap()[0]
                .get::<i64>(0)
                .unwrap(),
            1
        );
    });
}

#[test]
fn a_read_only_server_refuses_every_write() {
    on_tokio(|| async {
        let served = serve(|remote| remote.read_only(true)).await;
        served
            .local
            .insert(todo("Existing", "x", None))
            .await
            .unwrap();
        let db = served.client(Transport::Duplex).await;
        assert_eq!(db.select::<Todo>().count().await.unwrap(), 1);
        let insert = db.insert(todo("Refused", "x", None)).await.unwrap_err();
        println!("{insert}");
        assert!(matches!(insert, Error::NotPermitted { .. }), "{insert:?}");
        let begin = db.begin().await.unwrap_err();
        assert!(matches!(begin, Error::NotPermitted { .. }), "{begin:?}");
        let batch = {
            let mut batch = Batch::new();
            batch.insert(todo("Refused", "x", None));
            db.run_batch(batch).await.unwrap_err()
        };
        assert!(matches!(batch, Error::NotPermitted { .. }), "{batch:?}");
        let off = db
            .custom_statement("PRAGMA query_only = OFF", [])
            .await
            .unwrap_err();
        assert!(matches!(off, Error::NotPermitted { .. }), "{off:?}");
        assert_eq!(titles_on_disk(&served.dir), ["Existing"]);
    });
}

#[test]
fn limits_refuse_extra_connections_and_close_idle_ones() {
    on_tokio(|| async {
        let served = serve(|remote| {
            remote
                .max_connections(1)
                .idle_timeout(Some(Duration::from_millis(300)))
        })
        .await;
        let first = served.client(Transport::Tcp).await;
        assert_eq!(first.select::<Todo>().count().await.unwrap(), 0);
        let second = served
            .connect(Transport::Unix, RemoteOptions::new())
            .await
            .unwrap_err();
        println!("{second}");
        assert!(matches!(second, Error::LimitReached { .. }), "{second:?}");
        assert_eq!(served.remote.stats().over_connection_limit, 1);

        tokio::time::sleep(Duration::from_millis(800)).await;
        let idle = first.select::<Todo>().count().await.unwrap_err();
        println!("{idle}");
        assert!(
            matches!(idle, Error::Closed | Error::OutcomeUnknown { .. }),
            "{idle:?}"
        );
        assert_eq!(served.remote.stats().idle_timeouts, 1);
        // The slot is free again.
        let third = served.client(Transport::Unix).await;
        assert_eq!(third.select::<Todo>().count().await.unwrap(), 0);
    });
}

#[test]
fn a_client_of_another_schema_version_is_refused() {
    struct Later;
    impl Database for Later {
        const SCHEMA_VERSION: u32 = 2;
        fn schema() -> Schema {
            TodoDb::schema()
        }
    }
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let error = Db::<Later>::connect_tcp(served.tcp, RemoteOptions::new())
            .await
            .unwrap_err();
        println!("{error}");
        assert!(
            error
                .to_string()
                .contains("schema version 1 but this client's schema is version 2")
        );
    });
}

/// The next item of `stream`, failing after ten seconds.
async fn next_of<S: futures::Stream + Unpin>(stream: &mut S) -> S::Item {
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an item within ten seconds")
        .expect("the stream goes on")
}

#[test]
fn watched_queries_update_over_the_wire() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        for transport in TRANSPORTS {
            let watcher = served.client(transport).await;
            let writer = served.client(Transport::Tcp).await;
            watcher.delete::<Todo>().await.unwrap();
            let mut todos = watcher.select::<Todo>().order_by(Todo::TITLE.asc()).watch();
            let mut updates = watcher.table_updates(UpdateFilter::all().on("todos"));
            assert_eq!(
                next_of(&mut todos).await.unwrap(),
                vec![],
                "over {transport:?}"
            );

            // A commit by an in-process client, then one by another remote
            // client: each reaches the remote watcher.
            served
                .local
                .insert(todo("From local", "x", None))
                .await
                .unwrap();
            let titles = |todos: Vec<Todo>| todos.into_iter().map(|t| t.title).collect::<Vec<_>>();
            let mut seen = titles(next_of(&mut todos).await.unwrap());
            while seen != ["From local"] {
                seen = titles(next_of(&mut todos).await.unwrap());
            }
            let tx = writer.begin().await.unwrap();
            tx.insert(todo("By remote", "x", None)).await.unwrap();
            tx.commit().await.unwrap();
            while seen != ["By remote", "From local"] {
                seen = titles(next_of(&mut todos).await.unwrap());
            }
            // A rolled-back transaction tells nobody; a commit does.
            let tx = writer.begin().await.unwrap();
            tx.insert(todo("Undone", "x", None)).await.unwrap();
            tx.rollback().await.unwrap();
            writer.insert(todo("Last one", "x", None)).await.unwrap();
            while seen.len() < 3 {
                seen = titles(next_of(&mut todos).await.unwrap());
                assert!(!seen.contains(&"Undone".to_owned()));
            }
            assert_eq!(seen, ["By remote", "From local", "Last one"]);

            let update = next_of(&mut updates).await;
            assert!(
                update.updates.iter().all(|u| u.table == "todos"),
                "{update:?}"
            );
        }
    });
}

#[test]
fn a_watch_that_writes_or_runs_a_closure_fails_over_the_wire() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let db = served.client(Transport::Unix).await;
        let mut closure = db.watch_read(|conn| conn.select::<Todo>().count());
        let error = next_of(&mut closure).await.unwrap_err();
        println!("{error}");
        assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
        let mut writes = db.watch_custom_select(
            "INSERT INTO todos (title, body) VALUES ('Sneaky', 'x') RETURNING id",
            [],
        );
        let error = next_of(&mut writes).await.unwrap_err();
        println!("{error}");
        assert!(error.to_string().contains("must only read"), "{error}");
        assert_eq!(served.local.select::<Todo>().count().await.unwrap(), 0);
    });
}

#[test]
fn watches_end_when_the_server_shuts_down() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let db = served.client(Transport::Tcp).await;
        let mut todos = db.select::<Todo>().watch();
        assert_eq!(next_of(&mut todos).await.unwrap(), vec![]);
        served.remote.shutdown();
        use futures::StreamExt;
        let ended = tokio::time::timeout(Duration::from_secs(10), todos.next())
            .await
            .expect("the stream ends, it does not hang");
        match ended {
            None => {}
            Some(Err(Error::Closed)) => {}
            other => panic!("expected the end or Closed, got {other:?}"),
        }
    });
}

#[test]
fn a_reconnecting_client_goes_on_after_the_server_restarts() {
    on_tokio(|| async {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::open(dir.path().join("todos.db")).await.unwrap();
        let local = server.connect::<TodoDb>().await.unwrap();
        let socket = dir.path().join("todos.sock");
        let first = RemoteServer::new(server.clone());
        let listening = first.listen_unix(&socket).await.unwrap();
        let db = Db::<TodoDb>::connect_unix(&socket, RemoteOptions::new().reconnect(true))
            .await
            .unwrap();
        let mut count = db.select::<Todo>().watch_count();
        assert_eq!(next_of(&mut count).await.unwrap(), 0);
        let tx = db.begin().await.unwrap();
        tx.insert(todo("Lost tx", "x", None)).await.unwrap();

        // The serving side stops, then comes back on the same socket.
        listening.shutdown().await;
        let again = RemoteServer::new(server.clone());
        again.listen_unix(&socket).await.unwrap();

        let commit = tx.commit().await.unwrap_err();
        println!("a transaction across the reconnection: {commit}");
        assert!(
            matches!(
                commit,
                Error::OutcomeUnknown { .. } | Error::TransactionEnded { .. }
            ),
            "{commit:?}"
        );
        db.insert(todo("After it", "x", None)).await.unwrap();
        local.insert(todo("Local one", "x", None)).await.unwrap();
        loop {
            if next_of(&mut count).await.unwrap() == 2 {
                break;
            }
        }
        assert_eq!(titles_on_disk(&dir), ["After it", "Local one"]);
        assert_eq!(again.stats().connections, 1, "the client came back");
    });
}

// Regressions found by a hostile probe of the remote server.

/// Sends `ops` as requests on a raw connection and reads one reply each.
async fn raw_requests(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    ops: Vec<Op>,
) -> Vec<wire::Outcome> {
    for (id, op) in ops.iter().cloned().enumerate() {
        let frame = wire::encode(&ClientMessage::Request { id: id as u64, op });
        stream.write_all(&frame).await.unwrap();
    }
    let mut outcomes = Vec::new();
    for _ in 0..ops.len() {
        let reply = wire::read_frame(stream, wire::DEFAULT_MAX_FRAME)
            .await
            .unwrap();
        let ServerMessage::Reply { outcome, .. } = wire::decode(&reply).unwrap() else {
            panic!("a reply expected");
        };
        outcomes.push(outcome);
    }
    outcomes
}

#[test]
fn a_second_begin_on_a_lane_or_a_reused_level_never_leaks_the_writer() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let mut stream = served.raw(None).await;
        let begin = |level, parent| Op::Begin {
            lane: 1,
            level,
            immediate: true,
            parent,
        };
        let outcomes = raw_requests(
            &mut stream,
            vec![
                begin(10, None),
                begin(10, Some(1)),
                begin(11, None),
                Op::Rollback { lane: 1, level: 11 },
                Op::Commit { lane: 2, level: 10 },
            ],
        )
        .await;
        assert!(matches!(outcomes[0], wire::Outcome::Ok {}), "{outcomes:?}");
        assert!(
            matches!(outcomes[1], wire::Outcome::Failed { .. }),
            "a reused level: {outcomes:?}"
        );
        assert!(
            matches!(outcomes[2], wire::Outcome::Failed { .. }),
            "a second outermost begin: {outcomes:?}"
        );
        assert!(
            matches!(outcomes[4], wire::Outcome::Failed { .. }),
            "another lane's level: {outcomes:?}"
        );
        stream
            .write_all(&wire::encode(&ClientMessage::Goodbye {}))
            .await
            .unwrap();
        drop(stream);
        // The real transaction (level 10) was rolled back with the
        // connection: the writer is free well before the busy timeout.
        let insert = served.local.insert(todo("Afterward", "x", None));
        tokio::time::timeout(Duration::from_secs(3), insert)
            .await
            .expect("the writer is free")
            .unwrap();
    });
}

#[test]
fn remote_clients_may_not_create_temp_objects() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let db = served.client(Transport::Tcp).await;
        for sql in [
            "CREATE TEMP TABLE todos (id INTEGER PRIMARY KEY, title TEXT)",
            "CREATE TEMP VIEW v AS SELECT 1",
            "CREATE TEMP TRIGGER t AFTER INSERT ON main.todos BEGIN SELECT 1; END",
        ] {
            let error = db.custom_statement(sql, []).await.unwrap_err();
            println!("{error}");
            assert!(
                matches!(error, Error::NotPermitted { .. }),
                "{sql}: {error:?}"
            );
        }
        db.insert(todo("Real one", "x", None)).await.unwrap();
        assert_eq!(titles_on_disk(&served.dir), ["Real one"]);
    });
}

#[test]
fn frames_over_either_sides_limit_fail_only_their_request() {
    on_tokio(|| async {
        let served = serve(|remote| remote.max_frame(1 << 20)).await;
        let db = Db::<TodoDb>::connect_tcp(served.tcp, RemoteOptions::new().max_frame(1 << 20))
            .await
            .unwrap();
        let reply = db
            .custom_select("SELECT zeroblob(2000000)", [])
            .await
            .unwrap_err();
        println!("{reply}");
        assert!(matches!(reply, Error::LimitReached { .. }), "{reply:?}");
        let big = "y".repeat(2_000_000);
        let request = db
            .custom_statement(
                "INSERT INTO todos (title, body) VALUES ('Too big', ?)",
                args![big],
            )
            .await
            .unwrap_err();
        println!("{request}");
        assert!(
            request.to_string().contains("nothing was sent"),
            "{request}"
        );
        assert_eq!(
            db.select::<Todo>().count().await.unwrap(),
            0,
            "the connection goes on"
        );
    });
}

#[test]
fn a_client_connects_while_a_transaction_holds_the_writer() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let tx = served.local.begin().await.unwrap();
        tx.insert(todo("Held open", "x", None)).await.unwrap();
        let connected =
            tokio::time::timeout(Duration::from_secs(3), served.client(Transport::Unix))
                .await
                .expect("the handshake does not wait for the writer");
        assert_eq!(connected.select::<Todo>().count().await.unwrap(), 0);
        tx.rollback().await.unwrap();
    });
}

#[test]
fn connecting_to_a_server_that_never_answers_times_out() {
    on_tokio(|| async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut silent = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                silent.push(stream);
            }
        });
        let error = Db::<TodoDb>::connect_tcp(addr, RemoteOptions::new())
            .await
            .unwrap_err();
        println!("{error}");
        assert!(
            error.to_string().contains("did not complete the handshake"),
            "{error}"
        );
    });
}

#[test]
fn silent_sockets_do_not_take_real_clients_places() {
    on_tokio(|| async {
        let served = serve(|remote| remote.max_connections(2)).await;
        let mut silent = Vec::new();
        for _ in 0..3 {
            silent.push(tokio::net::TcpStream::connect(served.tcp).await.unwrap());
        }
        let db = served.client(Transport::Tcp).await;
        assert_eq!(db.select::<Todo>().count().await.unwrap(), 0);
        drop(silent);
    });
}

#[test]
fn refusals_inside_a_batch_say_why() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let db = served.client(Transport::Unix).await;
        for sql in [
            "PRAGMA query_only = 1",
            "ATTACH DATABASE ':memory:' AS other",
        ] {
            let mut batch = Batch::new();
            batch.custom_statement(sql, vec![]);
            let error = db.run_batch(batch).await.unwrap_err();
            println!("{error}");
            assert!(
                matches!(error, Error::NotPermitted { .. }),
                "{sql}: {error:?}"
            );
        }
    });
}

#[test]
fn a_deeply_nested_frame_is_refused_and_others_are_served() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let mut stream = served.raw(None).await;
        let string = |text: &str| {
            let mut bytes = vec![0xa0 | text.len() as u8];
            bytes.extend(text.as_bytes());
            bytes
        };
        // {"request": {"id": 1, "op": {"subscribe": {}}, "junk": [[[… nil]]]}}
        let mut body = vec![0x81];
        body.extend(string("request"));
        body.push(0x83);
        body.extend(string("id"));
        body.push(1);
        body.extend(string("op"));
        body.push(0x81);
        body.extend(string("subscribe"));
        body.push(0x80);
        body.extend(string("junk"));
        body.extend(std::iter::repeat_n(0x91, 700));
        body.push(0xc0);
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend(body);
        stream.write_all(&frame).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        let closing = wire::decode::<ServerMessage>(&rest[4..]).unwrap();
        println!("{closing:?}");
        assert!(matches!(closing, ServerMessage::Closing { .. }));
        served.still_serves().await;
    });
}

#[test]
fn tokens_from_files_and_the_environment_are_read_carefully() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "\u{feff}s3cret \r\nnext line").unwrap();
    assert!(
        Token::from_file(&file).unwrap() == Token::new("s3cret").unwrap(),
        "BOM and CRLF dropped"
    );
    std::fs::write(&file, "\n").unwrap();
    let empty = Token::from_file(&file).unwrap_err();
    assert!(
        empty.to_string().contains(&file.display().to_string()),
        "{empty}"
    );
}

fn select_all_todos() -> Op {
    Op::Run {
        lane: 0,
        sql: "SELECT * FROM todos".into(),
        args: vec![],
        read: true,
        rows: true,
    }
}

#[test]
fn changes_pushed_to_a_subscriber_that_does_not_read_are_merged_not_a_backlog() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let mut subscriber = served.raw_duplex(1024).await;
        let subscribe = ClientMessage::Request {
            id: 1,
            op: Op::Subscribe {},
        };
        subscriber
            .write_all(&wire::encode(&subscribe))
            .await
            .unwrap();
        let reply = wire::read_frame(&mut subscriber, wire::DEFAULT_MAX_FRAME)
            .await
            .unwrap();
        assert!(matches!(
            wire::decode::<ServerMessage>(&reply).unwrap(),
            ServerMessage::Reply { id: 1, .. }
        ));
        // The subscriber reads nothing while 3,000 commits happen.
        for i in 0..3000 {
            let title = format!("Row {i:05}");
            served.local.insert(todo(&title, "x", None)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut frames = 0;
        while let Ok(Ok(_)) = tokio::time::timeout(
            Duration::from_millis(300),
            wire::read_frame(&mut subscriber, wire::DEFAULT_MAX_FRAME),
        )
        .await
        {
            frames += 1;
        }
        assert!(frames > 0, "the subscriber was told of the commits");
        assert!(
            frames < 100,
            "{frames} frames were queued for a subscriber that did not read: a backlog, not merged changes"
        );
    });
}

#[test]
fn a_client_that_half_closes_gets_every_reply_whole() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let big = "b".repeat(64 * 1024);
        served
            .local
            .insert(todo("Big row", &big, None))
            .await
            .unwrap();
        let mut stream = served.raw(None).await;
        let mut requests = Vec::new();
        for id in 1..=100 {
            requests.extend(wire::encode(&ClientMessage::Request {
                id,
                op: select_all_todos(),
            }));
        }
        stream.write_all(&requests).await.unwrap();
        // Sends nothing more, and reads everything that comes.
        stream.shutdown().await.unwrap();
        let mut received = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut received))
            .await
            .expect("the server closes the connection once its replies are written")
            .unwrap();
        let mut replies = 0;
        let mut rest = &received[..];
        while !rest.is_empty() {
            assert!(rest.len() >= 4, "a length prefix was cut short");
            let length = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            assert!(
                rest.len() >= 4 + length,
                "the last frame was cut short after {replies} replies"
            );
            if let ServerMessage::Reply { outcome, .. } =
                wire::decode(&rest[4..4 + length]).unwrap()
            {
                assert!(matches!(outcome, wire::Outcome::Rows { .. }), "{outcome:?}");
                replies += 1;
            }
            rest = &rest[4 + length..];
        }
        assert_eq!(
            replies, 100,
            "every request sent before the half-close is answered"
        );
    });
}

#[test]
fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
    on_tokio(|| async {
        let served = serve(|remote| remote.idle_timeout(Some(Duration::from_secs(2)))).await;
        let mut rows = Batch::new();
        for i in 0..10 {
            rows.insert(todo(&format!("Row {i:05}"), &"s".repeat(512 * 1024), None));
        }
        served.local.run_batch(rows).await.unwrap();
        let mut stream = served.raw_duplex(16 * 1024).await;
        let request = ClientMessage::Request {
            id: 1,
            op: select_all_todos(),
        };
        stream.write_all(&wire::encode(&request)).await.unwrap();
        // About 1.3 MB/s: the 5 MiB reply takes about 4 s, twice the
        // server's idle timeout, with no pause longer than 50 ms.
        let mut received = Vec::new();
        let mut chunk = vec![0; 64 * 1024];
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("the server went silent");
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
            if received.len() >= 4 {
                let length = u32::from_be_bytes(received[..4].try_into().unwrap()) as usize;
                if received.len() >= 4 + length {
                    break;
                }
            }
        }
        assert!(received.len() >= 4, "no reply at all");
        let length = u32::from_be_bytes(received[..4].try_into().unwrap()) as usize;
        assert!(
            received.len() >= 4 + length,
            "cut off after {} of {} bytes while reading steadily",
            received.len(),
            length + 4
        );
        let ServerMessage::Reply { outcome, .. } = wire::decode(&received[4..4 + length]).unwrap()
        else {
            panic!("a reply expected");
        };
        let wire::Outcome::Rows { rows, .. } = outcome else {
            panic!("rows expected, got {outcome:?}");
        };
        assert_eq!(rows.len(), 10);
    });
}

#[test]
fn a_connection_made_while_the_server_stops_is_refused_not_welcomed() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        served.remote.shutdown();
        let (client, server) = tokio::io::duplex(64 * 1024);
        let remote = served.remote.clone();
        tokio::spawn(async move { remote.serve_connection(server, "late").await });
        let refused = Db::<TodoDb>::connect_remote(client, RemoteOptions::new()).await;
        assert!(
            matches!(refused, Err(Error::Closed)),
            "a stopping server welcomed a client it would close at once: {:?}",
            refused.map(|_| "welcomed")
        );
    });
}

/// A plain read of `sql` outside any transaction, for its rows.
fn read_op(sql: &str) -> Op {
    Op::Run {
        lane: 0,
        sql: sql.into(),
        args: vec![],
        read: true,
        rows: true,
    }
}

/// Reads replies until `count` came (at most 20 s), by id.
async fn replies_by_id(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    count: usize,
) -> std::collections::BTreeMap<u64, wire::Outcome> {
    let mut replies = std::collections::BTreeMap::new();
    while replies.len() < count {
        let frame = tokio::time::timeout(
            Duration::from_secs(20),
            wire::read_frame(stream, wire::DEFAULT_MAX_FRAME),
        )
        .await
        .unwrap_or_else(|_| panic!("only {} of {count} replies came", replies.len()))
        .unwrap();
        if let ServerMessage::Reply { id, outcome } = wire::decode(&frame).unwrap() {
            assert!(
                replies.insert(id, outcome).is_none(),
                "request {id} got two replies"
            );
        }
    }
    replies
}

/// The single value of a one-row, one-column result.
fn single_value(outcome: &wire::Outcome) -> &SqlValue {
    match outcome {
        wire::Outcome::Rows { rows, .. } => match rows.as_slice() {
            [row] => match row.as_slice() {
                [wire::WireValue(value)] => value,
                other => panic!("one value expected, got {other:?}"),
            },
            other => panic!("one row expected, got {other:?}"),
        },
        other => panic!("rows expected, got {other:?}"),
    }
}

/// The single integer of a one-row, one-column result.
fn single_integer(outcome: &wire::Outcome) -> i64 {
    match single_value(outcome) {
        SqlValue::Integer(n) => *n,
        other => panic!("an integer expected, got {other:?}"),
    }
}

// Reads pipelined in one burst run together on one server connection;
// each must still be answered on its own, fail on its own, and be
// cancellable on its own — a cancelled read that is running is
// interrupted, or every read grouped behind it would wait for it forever.
#[test]
fn reads_pipelined_in_one_burst_are_answered_failed_and_cancelled_each_on_its_own() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        for title in ["Todo one", "Todo two", "Todo three"] {
            served.local.insert(todo(title, "x", None)).await.unwrap();
        }
        let mut stream = served.raw_duplex(1 << 20).await;
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
        let mut burst = wire::encode(&ClientMessage::Request {
            id: 1,
            op: read_op(endless),
        });
        for id in 2..=40 {
            let op = read_op("SELECT count(*) FROM todos");
            burst.extend(wire::encode(&ClientMessage::Request { id, op }));
        }
        let op = read_op("SELECT * FROM nowhere");
        burst.extend(wire::encode(&ClientMessage::Request { id: 41, op }));
        stream.write_all(&burst).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream
            .write_all(&wire::encode(&ClientMessage::Cancel { id: 1 }))
            .await
            .unwrap();

        let replies = replies_by_id(&mut stream, 40).await;
        assert_eq!(
            replies.keys().copied().collect::<Vec<_>>(),
            (2..=41).collect::<Vec<_>>()
        );
        for id in 2..=40 {
            assert_eq!(single_integer(&replies[&id]), 3, "request {id}");
        }
        let wire::Outcome::Failed { error } = &replies[&41] else {
            panic!("the bad read fails: {:?}", replies[&41]);
        };
        assert!(error.to_string().contains("nowhere"), "{error}");
        assert_eq!(served.remote.stats().cancelled, 1);

        // Nothing more comes for the cancelled read, and the connection
        // goes on.
        let op = read_op("SELECT count(*) FROM todos");
        stream
            .write_all(&wire::encode(&ClientMessage::Request { id: 42, op }))
            .await
            .unwrap();
        let replies = replies_by_id(&mut stream, 1).await;
        assert_eq!(replies.keys().copied().collect::<Vec<_>>(), [42]);
    });
}

#[test]
fn a_burst_of_reads_past_the_in_flight_limit_waits_and_is_answered_whole() {
    on_tokio(|| async {
        let served = serve(|remote| remote.max_in_flight(4)).await;
        served
            .local
            .insert(todo("Todo one", "x", None))
            .await
            .unwrap();
        let mut stream = served.raw_duplex(1 << 20).await;
        let mut burst = Vec::new();
        for id in 1..=200 {
            let op = read_op("SELECT count(*) FROM todos");
            burst.extend(wire::encode(&ClientMessage::Request { id, op }));
        }
        stream.write_all(&burst).await.unwrap();
        let replies = replies_by_id(&mut stream, 200).await;
        assert!(replies.values().all(|outcome| single_integer(outcome) == 1));
        assert!(
            served.remote.stats().in_flight_waits > 0,
            "200 reads in one burst ran into the limit of 4: {:?}",
            served.remote.stats()
        );
    });
}

// A grouped read's future is not its own: when its connection ends, the
// read must still be interrupted, or it holds its server connection — here
// the only one, the writer — for ever.
#[test]
fn a_connection_that_ends_interrupts_the_reads_it_sent_together() {
    on_tokio(|| async {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::builder()
            .readers(0)
            .open(dir.path().join("todos.db"), OpenOptions::default())
            .await
            .unwrap();
        let local = server.connect::<TodoDb>().await.unwrap();
        let remote = RemoteServer::new(server.clone());
        let (mut client, stream) = tokio::io::duplex(1 << 20);
        let serving = tokio::spawn({
            let remote = remote.clone();
            async move { remote.serve_connection(stream, "raw duplex").await }
        });
        handshake(&mut client, None).await;
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
        let mut burst = Vec::new();
        for id in 1..=4 {
            let sql = if id == 1 { endless } else { "SELECT 1" };
            burst.extend(wire::encode(&ClientMessage::Request {
                id,
                op: read_op(sql),
            }));
        }
        client.write_all(&burst).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("the connection ends")
            .unwrap();
        local
            .insert(todo("Todo one", "x", None))
            .await
            .expect("the writer is free: the endless read was interrupted");
        server.shutdown().await;
    });
}

// A request sent as a read may be answered by a reader or, pipelined, from
// one snapshot with others; one that writes is refused wherever it runs,
// alone or in a burst, and writes nothing.
#[test]
fn a_request_sent_as_a_read_that_writes_is_refused_alone_or_in_a_burst() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let mut stream = served.raw_duplex(1 << 20).await;
        let insert = "INSERT INTO todos (title, body) VALUES ('Sneaky one', 'x') RETURNING id";
        let alone = raw_requests(&mut stream, vec![read_op(insert)]).await;
        let mut burst = Vec::new();
        for id in 10..=12 {
            let sql = if id == 11 {
                insert
            } else {
                "SELECT count(*) FROM todos"
            };
            burst.extend(wire::encode(&ClientMessage::Request {
                id,
                op: read_op(sql),
            }));
        }
        stream.write_all(&burst).await.unwrap();
        let in_burst = replies_by_id(&mut stream, 3).await;
        for outcome in [&alone[0], &in_burst[&11]] {
            let wire::Outcome::Failed { error } = outcome else {
                panic!("a write sent as a read is refused: {outcome:?}");
            };
            assert!(matches!(error, Error::NotPermitted { .. }), "{error:?}");
            assert!(error.to_string().contains("sent as a read"), "{error}");
        }
        assert_eq!(single_integer(&in_burst[&10]), 0);
        assert_eq!(single_integer(&in_burst[&12]), 0);
        assert_eq!(served.local.select::<Todo>().count().await.unwrap(), 0);
    });
}

// A frame's length says little about its decoded size: a byte of
// MessagePack may become a 32-byte value, so a client could make a 16 MiB
// frame half a gigabyte, hundreds of times over. What requests in flight
// take decoded is budgeted across the server: one that alone is over the
// budget fails before it is decoded, and the connection goes on.
#[test]
fn a_request_that_would_decode_past_the_memory_limit_fails_alone() {
    on_tokio(|| async {
        let served = serve(|remote| remote.max_request_memory(4 << 20)).await;
        let db = served.client(Transport::Tcp).await;
        let mut batch = Batch::new();
        for i in 0..100_000 {
            batch.insert(todo(&format!("Todo {:05}", i % 100_000), "x", None));
        }
        let error = db.run_batch(batch).await.unwrap_err();
        assert!(matches!(error, Error::LimitReached { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("MiB decoded") && message.contains("nothing ran"),
            "{message}"
        );
        assert_eq!(served.remote.stats().over_memory_limit, 1);
        assert_eq!(
            db.select::<Todo>().count().await.unwrap(),
            0,
            "nothing was written"
        );
        served.still_serves().await;
    });
}

#[test]
fn requests_past_the_memory_budget_wait_their_turn_and_are_all_answered() {
    on_tokio(|| async {
        let served = serve(|remote| remote.max_request_memory(1 << 20)).await;
        // The writer is held: the requests stay in flight, holding their
        // share of the budget, until it is free.
        let held = served.local.begin().await.unwrap();
        let mut stream = served.raw_duplex(8 << 20).await;
        let text = "t".repeat(100_000);
        let mut burst = Vec::new();
        for id in 1..=40 {
            let op = Op::Run {
                lane: 0,
                sql: "SELECT length(?)".into(),
                args: vec![wire::WireValue(SqlValue::Text(text.clone()))],
                read: false,
                rows: false,
            };
            burst.extend(wire::encode(&ClientMessage::Request { id, op }));
        }
        stream.write_all(&burst).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stats = served.remote.stats();
        assert!(
            stats.memory_waits > 0,
            "4 MiB of requests in a 1 MiB budget waited: {stats:?}"
        );
        held.commit().await.unwrap();
        let replies = replies_by_id(&mut stream, 40).await;
        for (id, outcome) in &replies {
            assert!(
                matches!(outcome, wire::Outcome::Done { .. }),
                "{id}: {outcome:?}"
            );
        }
        assert_eq!(served.remote.stats().over_memory_limit, 0);
    });
}

// Regressions found by a hostile probe of grouped reads and the memory
// budget.

/// A read that runs until interrupted.
const ENDLESS: &str =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";

/// A statement of `sql` for its effect (not grouped: it goes to the writer).
fn write_op(sql: &str) -> Op {
    Op::Run {
        lane: 0,
        sql: sql.into(),
        args: vec![],
        read: false,
        rows: false,
    }
}

fn request_frame(id: u64, op: Op) -> Vec<u8> {
    wire::encode(&ClientMessage::Request { id, op })
}

fn cancel_frame(id: u64) -> Vec<u8> {
    wire::encode(&ClientMessage::Cancel { id })
}

/// Reads whatever replies come within `quiet` of each other.
async fn replies_within(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    quiet: Duration,
) -> Vec<(u64, wire::Outcome)> {
    let mut replies = Vec::new();
    while let Ok(frame) =
        tokio::time::timeout(quiet, wire::read_frame(stream, wire::DEFAULT_MAX_FRAME)).await
    {
        if let ServerMessage::Reply { id, outcome } = wire::decode(&frame.unwrap()).unwrap() {
            replies.push((id, outcome));
        }
    }
    replies
}

fn text_of(outcome: &wire::Outcome) -> String {
    match single_value(outcome) {
        SqlValue::Text(text) => text.clone(),
        other => panic!("a text expected, got {other:?}"),
    }
}

// A read alone in its burst with its cancel was sent on its own without
// looking at the flag the cancel had set: it ran to the end and was
// answered.
#[test]
fn a_read_cancelled_in_its_own_burst_is_never_answered() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let mut stream = served.raw_duplex(1 << 20).await;
        let burst = [request_frame(1, read_op(ENDLESS)), cancel_frame(1)].concat();
        stream.write_all(&burst).await.unwrap();
        stream
            .write_all(&request_frame(2, write_op("SELECT 2")))
            .await
            .unwrap();
        let replies = replies_within(&mut stream, Duration::from_secs(2)).await;
        let ids: Vec<u64> = replies.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            ids,
            [2],
            "only the request not cancelled is answered: {replies:?}"
        );
    });
}

// Replies were matched by the client's id alone: a request reusing the id
// of one cancelled but still winding down got the old one's reply, or its
// own was swallowed by the old one's end. A duplicate id in flight is now
// refused instead of silently sharing one reply.
#[test]
fn an_id_reused_after_a_cancel_gets_its_own_reply_and_a_duplicate_is_refused() {
    on_tokio(|| async {
        let served = serve(|remote| remote).await;
        let mut stream = served.raw_duplex(1 << 20).await;
        // Not grouped: on the writer.
        stream
            .write_all(&request_frame(1, write_op(ENDLESS)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let burst = [cancel_frame(1), request_frame(1, read_op("SELECT 'new'"))].concat();
        stream.write_all(&burst).await.unwrap();
        let replies = replies_within(&mut stream, Duration::from_secs(2)).await;
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert_eq!((replies[0].0, text_of(&replies[0].1).as_str()), (1, "new"));

        // Grouped: the cancelled read's group winds down after the reuse.
        let burst = [
            request_frame(3, read_op(ENDLESS)),
            request_frame(4, read_op("SELECT 'four'")),
        ]
        .concat();
        stream.write_all(&burst).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.write_all(&cancel_frame(3)).await.unwrap();
        stream
            .write_all(&request_frame(3, read_op("SELECT 'three'")))
            .await
            .unwrap();
        let mut replies = replies_within(&mut stream, Duration::from_secs(2)).await;
        replies.sort_by_key(|(id, _)| *id);
        let texts: Vec<(u64, String)> = replies.iter().map(|(id, o)| (*id, text_of(o))).collect();
        assert_eq!(texts, [(3, "three".to_owned()), (4, "four".to_owned())]);

        // Two requests of one id in flight: the second is refused at once.
        let burst = [
            request_frame(5, write_op(ENDLESS)),
            request_frame(5, write_op("SELECT 1")),
        ]
        .concat();
        stream.write_all(&burst).await.unwrap();
        let replies = replies_within(&mut stream, Duration::from_millis(500)).await;
        let [(5, wire::Outcome::Failed { error })] = replies.as_slice() else {
            panic!("the duplicate is refused: {replies:?}");
        };
        assert!(error.to_string().contains("already in flight"), "{error}");
        stream.write_all(&cancel_frame(5)).await.unwrap();
    });
}

// Over the memory budget, anything that was not a request closed the
// connection (only a request's id was looked for), though a cancel with an
// unknown field padded past the budget is still a cancel.
#[test]
fn a_cancel_padded_past_the_memory_budget_is_still_a_cancel() {
    on_tokio(|| async {
        let served = serve(|remote| remote.max_request_memory(4096)).await;
        let mut stream = served.raw_duplex(1 << 20).await;
        stream
            .write_all(&request_frame(1, write_op(ENDLESS)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // {"cancel": {"id": 1, "pad": <8,000 bytes>}}, by hand.
        let mut body = vec![0x81, 0xa6];
        body.extend(b"cancel");
        body.extend([0x82, 0xa2, b'i', b'd', 0x01, 0xa3, b'p', b'a', b'd', 0xda]);
        body.extend(8000u16.to_be_bytes());
        body.extend([b'x'; 8000]);
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend(body);
        stream.write_all(&frame).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while served.remote.stats().cancelled == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                served.remote.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(served.remote.stats().protocol_errors, 0);
        let replies = raw_requests(&mut stream, vec![read_op("SELECT 'still here'")]).await;
        assert_eq!(text_of(&replies[0]), "still here");
    });
}

// A request waiting for memory held elsewhere waited for ever (and its
// connection with it); it now fails after a while, saying why.
#[test]
fn a_request_waiting_for_memory_held_elsewhere_fails_after_a_while() {
    on_tokio(|| async {
        let served = serve(|remote| remote.max_request_memory(1 << 20)).await;
        let big = |id, sql: &str, bytes| {
            let op = Op::Run {
                lane: 0,
                sql: sql.into(),
                args: vec![wire::WireValue(SqlValue::Text("t".repeat(bytes)))],
                read: true,
                rows: true,
            };
            request_frame(id, op)
        };
        // Runs until cancelled, holding most of the budget.
        let mut hog = served.raw_duplex(4 << 20).await;
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*), length(?) FROM n";
        hog.write_all(&big(1, endless, 900_000)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut victim = served.raw_duplex(4 << 20).await;
        let started = std::time::Instant::now();
        victim
            .write_all(&big(7, "SELECT length(?)", 200_000))
            .await
            .unwrap();
        let replies = replies_by_id(&mut victim, 1).await;
        let wire::Outcome::Failed { error } = &replies[&7] else {
            panic!("{:?}", replies[&7]);
        };
        assert!(matches!(error, Error::LimitReached { .. }), "{error:?}");
        assert!(error.to_string().contains("stayed in use"), "{error}");
        assert!(
            started.elapsed() >= Duration::from_secs(4),
            "it waited first"
        );
        assert_eq!(served.remote.stats().memory_waits, 1);
        // Once the memory is free, the same request goes through.
        hog.write_all(&cancel_frame(1)).await.unwrap();
        victim
            .write_all(&big(8, "SELECT length(?)", 200_000))
            .await
            .unwrap();
        let replies = replies_by_id(&mut victim, 1).await;
        assert_eq!(single_integer(&replies[&8]), 200_000);
    });
}

/// MessagePack written by hand, for frames driftwood's encoder would
/// never make.
mod msgpack {
    pub fn map(n: u8) -> Vec<u8> {
        vec![0x80 | n]
    }
    pub fn array(n: u16) -> Vec<u8> {
        let mut out = vec![0xdc];
        out.extend(n.to_be_bytes());
        out
    }
    pub fn text(s: &str) -> Vec<u8> {
        let mut out = vec![0xd9, s.len() as u8];
        out.extend(s.as_bytes());
        out
    }
    pub fn uint(n: u8) -> Vec<u8> {
        vec![0xcc, n]
    }
    pub fn boolean(b: bool) -> Vec<u8> {
        vec![if b { 0xc3 } else { 0xc2 }]
    }
    pub fn frame(parts: &[Vec<u8>]) -> Vec<u8> {
        let body = parts.concat();
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }
}

// Asked for an array, the decoder also takes binary, one value per byte:
// a byte of frame became a 32-byte value the memory budget had counted as
// one byte. Arguments are arrays only.
#[test]
fn arguments_sent_as_binary_are_refused_not_decoded_one_value_per_byte() {
    on_tokio(|| async {
        use msgpack::*;
        let served = serve(|remote| remote).await;
        let mut stream = served.raw_duplex(1 << 20).await;
        let mut blob = vec![0xc6];
        blob.extend(100_000u32.to_be_bytes());
        blob.extend([7u8; 100_000]);
        let frame = frame(&[
            map(1),
            text("request"),
            map(2),
            text("id"),
            uint(1),
            text("op"),
            map(1),
            text("run"),
            map(5),
            text("lane"),
            uint(0),
            text("sql"),
            text("SELECT 1"),
            text("args"),
            blob,
            text("read"),
            boolean(true),
            text("rows"),
            boolean(true),
        ]);
        stream.write_all(&frame).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("the connection is closed")
            .unwrap();
        assert_eq!(served.remote.stats().protocol_errors, 1);
        served.still_serves().await;
    });
}

// Over the memory budget, a request was looked for in one form only (its
// fields as a map): sent as an array, it was taken for some other message
// and decoded and run without any budget.
#[test]
fn a_request_over_the_budget_is_refused_whatever_form_it_takes() {
    on_tokio(|| async {
        use msgpack::*;
        let served = serve(|remote| remote.max_request_memory(4096)).await;
        let mut stream = served.raw_duplex(1 << 20).await;
        // {"request": [9, {"batch": [0, [["INSERT …", [[], [], …]]]]}]}
        let mut sets = array(5000);
        sets.extend([0x90; 5000]);
        let insert = "INSERT INTO todos (title, body) VALUES ('Todo sneak', 'x')";
        let frame = frame(&[
            map(1),
            text("request"),
            array(2),
            uint(9),
            map(1),
            text("batch"),
            array(2),
            uint(0),
            array(1),
            array(2),
            text(insert),
            sets,
        ]);
        stream.write_all(&frame).await.unwrap();
        let replies = replies_by_id(&mut stream, 1).await;
        let wire::Outcome::Failed { error } = &replies[&9] else {
            panic!("refused: {:?}", replies[&9]);
        };
        assert!(matches!(error, Error::LimitReached { .. }), "{error:?}");
        assert_eq!(
            served.local.select::<Todo>().count().await.unwrap(),
            0,
            "nothing ran"
        );
    });
}
