//! `driftwood serve` and `driftwood query` as real processes on a real
//! file over real sockets: rows printed as text and JSON, writes landing in
//! the file, the token and the policy refusing, `--to` migrating first, a
//! non-loopback address refused without a token, and Ctrl-C stopping the
//! server cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{driftwood, text};
use driftwood::sqlite::{Connection, OpenOptions};

/// `app.db` with two notes, a token file, and `v2.sql` (one more column).
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let conn = Connection::open(&db, &OpenOptions::default()).unwrap();
    conn.raw()
        .execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, score REAL);
             INSERT INTO notes (title, score) VALUES ('a', 1.5), ('b', NULL);",
        )
        .unwrap();
    drop(conn);
    std::fs::write(dir.path().join("token"), "correct horse\n").unwrap();
    std::fs::write(
        dir.path().join("v2.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, score REAL, tag TEXT);",
    )
    .unwrap();
    (dir, db)
}

/// A running `driftwood serve`, killed if the test ends without stopping
/// it.
struct Serving {
    child: Child,
    address: String,
}

impl Serving {
    fn start(args: &[&str]) -> Serving {
        let mut child = Command::new(env!("CARGO_BIN_EXE_driftwood"))
            .arg("serve")
            .args(args)
            .env_remove("DRIFTWOOD_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start driftwood serve");
        let stdout = child.stdout.take().unwrap();
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("listening on ") {
                    let _ = found.send(address.to_owned());
                }
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(60))
            .expect("the server said where it listens");
        Serving { child, address }
    }

    /// Sends Ctrl-C's signal and waits for the process to end.
    fn interrupt(mut self) -> Output {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "serve did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The notes' titles in the file, read by a connection of the test's own.
fn titles(db: &Path) -> Vec<String> {
    use driftwood::Runner;
    let conn = Connection::open(db, &OpenOptions::default().read_only(true)).unwrap();
    driftwood::Conn::new(&conn)
        .custom_select("SELECT title FROM notes ORDER BY id", [])
        .unwrap()
        .iter()
        .map(|row| row.get::<String>(0).unwrap())
        .collect()
}

#[test]
fn serve_answers_queries_and_stops_on_ctrl_c() {
    let (dir, db) = fixture();
    let token = dir.path().join("token").display().to_string();
    let served = Serving::start(&[
        db.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        &token,
    ]);
    let address = served.address.clone();

    let rows = driftwood(&[
        "query",
        "--remote",
        &address,
        "--token-file",
        &token,
        "SELECT title, score FROM notes WHERE id >= ? ORDER BY id",
        "1",
    ]);
    assert!(rows.status.success(), "{}", text(&rows.stderr));
    assert_eq!(text(&rows.stdout), "title\tscore\na\t1.5\nb\tNULL\n");

    let json = driftwood(&[
        "query",
        "--remote",
        &address,
        "--token-file",
        &token,
        "--json",
        "SELECT id, title, score FROM notes ORDER BY id",
    ]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!([{"id": 1, "title": "a", "score": 1.5}, {"id": 2, "title": "b", "score": null}])
    );

    let insert = driftwood(&[
        "query",
        "--remote",
        &address,
        "--token-file",
        &token,
        "INSERT INTO notes (title, score) VALUES (?, ?)",
        "c",
        "2.25",
    ]);
    assert!(insert.status.success(), "{}", text(&insert.stderr));
    assert_eq!(text(&insert.stdout), "(no rows)\n");

    let no_token = driftwood(&["query", "--remote", &address, "SELECT 1"]);
    assert_eq!(no_token.status.code(), Some(1));
    println!("{}", text(&no_token.stderr));
    assert!(
        text(&no_token.stderr).contains("not authorized"),
        "{}",
        text(&no_token.stderr)
    );

    let attach = driftwood(&[
        "query",
        "--remote",
        &address,
        "--token-file",
        &token,
        "ATTACH DATABASE ':memory:' AS other",
    ]);
    assert_eq!(attach.status.code(), Some(1));
    println!("{}", text(&attach.stderr));
    assert!(
        text(&attach.stderr).contains("not permitted"),
        "{}",
        text(&attach.stderr)
    );

    let stopped = served.interrupt();
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    assert!(
        text(&stopped.stderr).contains("stopped"),
        "{}",
        text(&stopped.stderr)
    );
    assert_eq!(titles(&db), ["a", "b", "c"]);
}

#[test]
fn serve_to_migrates_first_and_a_unix_socket_serves_the_same() {
    let (dir, db) = fixture();
    let socket = dir.path().join("app.sock");
    let listen = format!("unix:{}", socket.display());
    let served = Serving::start(&[
        db.to_str().unwrap(),
        "--listen",
        &listen,
        "--to",
        dir.path().join("v2.sql").to_str().unwrap(),
    ]);
    assert_eq!(served.address, listen);
    let columns = driftwood(&[
        "query",
        "--remote",
        &listen,
        "SELECT name FROM pragma_table_info('notes') ORDER BY cid",
    ]);
    assert!(columns.status.success(), "{}", text(&columns.stderr));
    assert_eq!(text(&columns.stdout), "name\nid\ntitle\nscore\ntag\n");
    let stopped = served.interrupt();
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    assert!(!socket.exists(), "the socket file is removed on stop");
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let (_dir, db) = fixture();
    let refused = driftwood(&["serve", db.to_str().unwrap(), "--listen", "0.0.0.0:0"]);
    assert_eq!(refused.status.code(), Some(1));
    println!("{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("without a token"),
        "{}",
        text(&refused.stderr)
    );
}
