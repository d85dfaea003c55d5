//! Independent processes sharing one live file (`Db::open_shared`), with
//! real processes: this test binary starts copies of itself in child roles
//! (`DRIFTWOOD_SHARED_ROLE`). One child serves, this process and other
//! children connect; the serving child is `SIGKILL`ed with a transaction
//! open; a remaining process takes over, this process's watch goes on,
//! later children write through the new server, then the other remaining
//! process is killed too, and a child of another schema version is
//! refused. Runs
//! without the test harness (`harness = false`): `main` is the test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use driftwood::prelude::*;
use futures::StreamExt;

#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "notes")]
struct Note {
    #[column(primary_key, auto_increment)]
    id: i64,
    text: String,
}

struct Notes;

impl Database for Notes {
    const SCHEMA_VERSION: u32 = 1;
    fn schema() -> Schema {
        schema![Note]
    }
}

/// The same schema a version later: refused by a server at version 1.
struct NotesV2;

impl Database for NotesV2 {
    const SCHEMA_VERSION: u32 = 2;
    fn schema() -> Schema {
        schema![Note]
    }
}

const ROLE: &str = "DRIFTWOOD_SHARED_ROLE";

fn note(text: String) -> NoteCompanion {
    NoteCompanion {
        text: set(text),
        ..absent()
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match std::env::var(ROLE) {
        Ok(role) => runtime.block_on(child(&role)),
        Err(_) => {
            // A hang is a failure, never a stuck test run.
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(180));
                eprintln!("shared_processes did not finish within 180 s");
                std::process::exit(2);
            });
            runtime.block_on(parent());
            println!("test shared_processes ... ok");
        }
    }
}

/// What a child process does, by role: `hold PATH` (serve or connect,
/// write one note, say ready, wait to be killed), `write PATH N` (write N
/// notes and exit), `v2 PATH` (open with schema version 2).
async fn child(role: &str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = Path::new(&args[0]);
    match role {
        "hold" => {
            let db = Db::<Notes>::open_shared(path).await.unwrap();
            db.insert(note(format!("held by {}", std::process::id())))
                .await
                .unwrap();
            println!("ready");
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        "write" => {
            let db = Db::<Notes>::open_shared(path).await.unwrap();
            let count: usize = args[1].parse().unwrap();
            for i in 0..count {
                db.insert(note(format!("written {i} by {}", std::process::id())))
                    .await
                    .unwrap();
            }
            db.close().await.unwrap();
            println!("done");
        }
        "v2" => match Db::<NotesV2>::open_shared(path).await {
            Ok(_) => println!("opened"),
            Err(error) => {
                eprintln!("{error}");
                std::process::exit(1);
            }
        },
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, args: &[&str]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(args)
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` to print `line`.
fn wait_for(child: &mut Child, line: &str) {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(got)) if got == line => return,
            Some(Ok(_)) => {}
            _ => panic!("the child ended before printing {line:?}"),
        }
    }
}

fn lock_is_held(path: &Path) -> bool {
    let lock = std::fs::File::options()
        .write(true)
        .open(path.with_extension("db.lock"))
        .unwrap();
    matches!(lock.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// The next value of `watch` that satisfies `wanted`, within ten seconds.
async fn until<T: driftwood::watch::Watched + std::fmt::Debug>(
    watch: &mut Watch<T>,
    wanted: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(Ok(value))) if wanted(&value) => return value,
            Ok(Some(Ok(value))) => last = Some(value),
            Ok(Some(Err(error))) => eprintln!("watch: {error}"),
            Ok(None) => panic!("the watch ended (last value {last:?})"),
            Err(_) => panic!("no wanted value within ten seconds (last value {last:?})"),
        }
    }
}

async fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let file = path.to_str().unwrap();

    // A child serves; this process connects to it.
    let mut holder = spawn("hold", &[file]);
    wait_for(&mut holder, "ready");
    assert!(lock_is_held(&path), "the first process holds the lock");
    let db = Db::<Notes>::open_shared(&path).await.unwrap();
    let mut count = db.select::<Note>().watch_count();
    until(&mut count, |n| *n == 1).await;
    // A second long-lived process connects too.
    let mut bystander = spawn("hold", &[file]);
    wait_for(&mut bystander, "ready");
    until(&mut count, |n| *n == 2).await;

    // Another child writes through the server; this process's watch sees it.
    let mut writer = spawn("write", &[file, "20"]);
    assert!(writer.wait().unwrap().success());
    until(&mut count, |n| *n == 22).await;

    // A child of another schema version is refused, naming both.
    let v2 = spawn("v2", &[file]).wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&v2.stderr);
    println!("a process of schema version 2: {said}");
    assert_eq!(v2.status.code(), Some(1));
    assert!(
        said.contains("schema version 1 but this client's schema is version 2"),
        "{said}"
    );

    // The serving process dies with this process's transaction open.
    let tx = db.begin().await.unwrap();
    tx.insert(note("never committed".into())).await.unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    let commit = tx.commit().await.unwrap_err();
    println!("commit across the serving process's death: {commit}");
    assert!(
        matches!(
            commit,
            Error::OutcomeUnknown { .. } | Error::TransactionEnded { .. }
        ),
        "{commit:?}"
    );

    // This process or the bystander takes over: the data is all there,
    // the watch goes on.
    assert_eq!(db.select::<Note>().count().await.unwrap(), 22);
    let texts: Vec<String> = db
        .select::<Note>()
        .get()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.text)
        .collect();
    assert!(!texts.contains(&"never committed".to_owned()));
    let mut later = spawn("write", &[file, "5"]);
    assert!(
        later.wait().unwrap().success(),
        "a later process writes through the new server"
    );
    until(&mut count, |n| *n == 27).await;

    // The bystander goes too (killed, whether it served or not): this
    // process is the last, and serves.
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    let mut last = spawn("write", &[file, "3"]);
    assert!(last.wait().unwrap().success());
    until(&mut count, |n| *n == 30).await;
    assert!(lock_is_held(&path), "a live process holds the lock");

    db.close().await.unwrap();
    drop(count);
    drop(db);
    // What is on disk, read by a connection of the test's own.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 30);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
