//! Remote connections over TLS (the `tls` feature), with the test
//! certificates in `tests/tls` (self-signed for `localhost` and
//! 127.0.0.1): what crosses the wire is encrypted (a recording proxy sees
//! the SQL text of a plain connection and not of a TLS one), and a client
//! that does not speak TLS, trusts another certificate or expects another
//! name is refused.
#![cfg(feature = "tls")]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::*;
use driftwood::remote::{RemoteOptions, RemoteServer, TlsIdentity, TlsTrust};
use driftwood::{Db, Error, Runner, Server};
use tokio::io::AsyncWriteExt;

fn certs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls")
}

fn identity() -> TlsIdentity {
    TlsIdentity::from_pem_files(certs().join("server.crt"), certs().join("server.key")).unwrap()
}

fn trust(file: &str, name: &str) -> TlsTrust {
    TlsTrust::from_pem_file(certs().join(file), name).unwrap()
}

/// A TCP proxy to `upstream` that keeps every byte a client sends.
async fn recording_proxy(
    upstream: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            let record = record.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buffer = vec![0; 16 * 1024];
                while let Ok(n) = from_client.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    record.lock().unwrap().extend_from_slice(&buffer[..n]);
                    if to_server.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = to_server.shutdown().await;
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
            });
        }
    });
    (addr, seen)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn what_crosses_the_wire_is_encrypted() {
    on_tokio(|| async {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::open(dir.path().join("todos.db")).await.unwrap();
        server.connect::<TodoDb>().await.unwrap();
        let secret = "SELECT 'the-secret-value-42'";
        for tls in [false, true] {
            let mut remote = RemoteServer::new(server.clone());
            if tls {
                remote = remote.tls(identity());
            }
            let listening = remote.listen_tcp("127.0.0.1:0").await.unwrap();
            let (proxy, seen) = recording_proxy(listening.local_addr().unwrap()).await;
            let mut options = RemoteOptions::new();
            if tls {
                options = options.tls(trust("server.crt", "localhost"));
            }
            let db = Db::<TodoDb>::connect_tcp(proxy, options).await.unwrap();
            let rows = db.custom_select(secret, []).await.unwrap();
            assert_eq!(rows[0].get::<String>(0).unwrap(), "the-secret-value-42");
            let sent = seen.lock().unwrap().clone();
            assert!(!sent.is_empty());
            assert_eq!(
                contains(&sent, secret.as_bytes()),
                !tls,
                "the SQL text is on the wire in clear exactly when TLS is off (tls: {tls})"
            );
            listening.shutdown().await;
        }
    });
}

#[test]
fn clients_that_cannot_trust_the_server_are_refused() {
    on_tokio(|| async {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::open(dir.path().join("todos.db")).await.unwrap();
        let remote = RemoteServer::new(server).tls(identity());
        let listening = remote.listen_tcp("127.0.0.1:0").await.unwrap();
        let addr = listening.local_addr().unwrap();

        let plain = Db::<TodoDb>::connect_tcp(addr, RemoteOptions::new())
            .await
            .unwrap_err();
        println!("a plain client: {plain}");
        assert!(matches!(plain, Error::Protocol { .. }), "{plain:?}");

        let other = Db::<TodoDb>::connect_tcp(
            addr,
            RemoteOptions::new().tls(trust("other.crt", "localhost")),
        )
        .await
        .unwrap_err();
        println!("trusting another certificate: {other}");
        assert!(other.to_string().contains("TLS handshake"), "{other}");

        let name = Db::<TodoDb>::connect_tcp(
            addr,
            RemoteOptions::new().tls(trust("server.crt", "example.com")),
        )
        .await
        .unwrap_err();
        println!("expecting another name: {name}");
        assert!(name.to_string().contains("TLS handshake"), "{name}");

        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while remote.stats().protocol_errors < 3 {
            assert!(std::time::Instant::now() < deadline, "{:?}", remote.stats());
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(remote.stats().connections, 0, "no refused client got in");

        let missing =
            TlsIdentity::from_pem_files(certs().join("missing.crt"), certs().join("server.key"))
                .unwrap_err();
        println!("{missing}");
        assert!(missing.to_string().contains("missing.crt"));
        listening.shutdown().await;
    });
}
