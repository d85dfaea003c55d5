//! Regression tests for the ways transactions and the server lost or leaked
//! writes and hung (issue 6): each test is named after its problem, states
//! the scenario, runs on both backends where it applies, checks the file
//! with a connection of its own, and runs under a time limit.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::*;
use driftwood::ConstraintKind;
use driftwood::prelude::*;
use driftwood::sqlite::{Connection, JournalMode};

/// A unique conflict under `OR ROLLBACK`: SQLite rolls the whole
/// transaction back and carries on in autocommit.
const ROLLBACK_CONFLICT: &str = "INSERT OR ROLLBACK INTO categories (description) VALUES ('Dup')";

async fn add_duplicate_target(db: &Db<TodoDb>) {
    db.custom_statement("INSERT INTO categories (description) VALUES ('Dup')", [])
        .await
        .unwrap();
}

fn is_rolled_back(error: &Error) -> bool {
    matches!(error, Error::RolledBack { cause } if cause.contains("UNIQUE constraint failed"))
}

/// Polls a future once, as a `select!` that another branch won would.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// The outcome of a request that must be known at once, without waiting
/// (and without nesting an executor inside the one running the test).
fn at_once<F: std::future::IntoFuture>(future: F) -> F::Output {
    let mut future = Box::pin(future.into_future());
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the request waited instead of failing at once"),
    }
}

// Scenario: inside a transaction an `INSERT OR ROLLBACK` conflict made SQLite
// roll everything back; the handle carried on in autocommit, so the next
// insert returned Ok and was durable, and `rollback()` "succeeded".
#[test]
fn writes_after_sqlites_own_rollback_never_reach_the_file() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                add_duplicate_target(&db).await;
                db.insert(todo("Before", "x", None)).await.unwrap();

                // An owned transaction: every later statement and the commit fail.
                let tx = db.begin().await.unwrap();
                tx.insert(todo("Lost 1", "x", None)).await.unwrap();
                let conflict = tx
                    .custom_statement(ROLLBACK_CONFLICT, [])
                    .await
                    .unwrap_err();
                assert_eq!(conflict.constraint_kind(), Some(ConstraintKind::Unique));
                let err = tx.insert(todo("Lost 2", "x", None)).await.unwrap_err();
                assert!(is_rolled_back(&err), "{err}");
                assert_eq!(
                    err.to_string(),
                    "the transaction was rolled back by SQLite (unique constraint failed on \
                     categories.description: UNIQUE constraint failed: categories.description \
                     (statement: INSERT OR ROLLBACK INTO categories (description) VALUES ('Dup'))); \
                     nothing more can run in it: roll it back or drop it"
                );
                let err = tx.select::<Todo>().count().await.unwrap_err();
                assert!(is_rolled_back(&err), "{err}");
                let err = tx.commit().await.unwrap_err();
                assert!(is_rolled_back(&err), "{err}");
                assert_eq!(titles_on_disk(&dir), ["Before"]);

                // Rolling back after SQLite did is fine, and nothing leaks either.
                let tx = db.begin().await.unwrap();
                tx.insert(todo("Lost 3", "x", None)).await.unwrap();
                tx.custom_statement(ROLLBACK_CONFLICT, [])
                    .await
                    .unwrap_err();
                tx.insert(todo("Lost 4", "x", None)).await.unwrap_err();
                tx.rollback().await.unwrap();

                // A unit of work that ignores the errors cannot commit either.
                let err = db
                    .write(|conn| {
                        conn.insert(todo("Lost 5", "x", None)).execute()?;
                        let _ = conn.custom_statement(ROLLBACK_CONFLICT, []);
                        let _ = conn.insert(todo("Lost 6", "x", None)).execute();
                        Ok(())
                    })
                    .await
                    .unwrap_err();
                assert!(is_rolled_back(&err), "{err}");

                // A savepoint's statement ends its parents too.
                let err = db
                    .write(|conn| {
                        let inner = conn.transaction(|c| {
                            c.insert(todo("Lost 7", "x", None)).execute()?;
                            c.custom_statement(ROLLBACK_CONFLICT, [])
                        });
                        assert!(inner.is_err());
                        conn.insert(todo("Lost 8", "x", None)).execute()
                    })
                    .await
                    .unwrap_err();
                assert!(is_rolled_back(&err), "{err}");
                let mut tx = db.begin().await.unwrap();
                tx.insert(todo("Lost 9", "x", None)).await.unwrap();
                {
                    let savepoint = tx.begin().await.unwrap();
                    savepoint
                        .custom_statement(ROLLBACK_CONFLICT, [])
                        .await
                        .unwrap_err();
                    let err = savepoint.commit().await.unwrap_err();
                    assert!(is_rolled_back(&err), "{err}");
                }
                let err = tx.insert(todo("Lost 10", "x", None)).await.unwrap_err();
                assert!(is_rolled_back(&err), "{err}");
                tx.rollback().await.unwrap();

                // The database works normally afterwards.
                db.insert(todo("After it", "x", None)).await.unwrap();
                assert_eq!(titles_on_disk(&dir), ["After it", "Before"]);
            })
        });
    }
}

// Scenario: raw `COMMIT`/`ROLLBACK`/`RELEASE` through the typed API ended a
// transaction behind its handle's back, and a raw `BEGIN` through one client
// pulled another client's later insert into it (erased by the raw ROLLBACK).
#[test]
fn raw_transaction_control_is_refused_so_no_client_joins_another() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                for sql in [
                    "BEGIN",
                    "BEGIN IMMEDIATE",
                    "COMMIT",
                    "END",
                    "ROLLBACK",
                    "SAVEPOINT mine",
                    "RELEASE mine",
                ] {
                    let err = db.custom_statement(sql, []).await.unwrap_err();
                    assert_eq!(err, Error::TransactionControl { sql: sql.into() });
                    let err = db.custom_select(sql, []).await.unwrap_err();
                    assert_eq!(err, Error::TransactionControl { sql: sql.into() });
                }
                let err = db.custom_statement("BEGIN", []).await.unwrap_err();
                assert_eq!(
                    err.to_string(),
                    "transaction control statements cannot run as raw SQL: use db.begin(), \
                     db.transaction(..), tx.begin() or conn.transaction(..) (statement: BEGIN)"
                );

                // Inside a transaction the refusal leaves it intact.
                let tx = db.begin().await.unwrap();
                tx.insert(todo("Inside", "x", None)).await.unwrap();
                tx.custom_statement("COMMIT", []).await.unwrap_err();
                tx.custom_statement("RELEASE dw_1", []).await.unwrap_err();
                tx.insert(todo("Inside 2", "x", None)).await.unwrap();
                tx.rollback().await.unwrap();
                let err = db
                    .write(|conn| conn.custom_statement("COMMIT", []))
                    .await
                    .unwrap_err();
                assert!(matches!(err, Error::TransactionControl { .. }), "{err}");

                // Another client's write is its own.
                let other = db.clone();
                db.custom_statement("BEGIN", []).await.unwrap_err();
                other.insert(todo("Other's", "x", None)).await.unwrap();
                db.custom_statement("ROLLBACK", []).await.unwrap_err();
                assert_eq!(titles_on_disk(&dir), ["Other's"]);
            })
        });
    }
}

/// A connection whose authorizer was removed and that has a raw
/// transaction open: what user code reaching past driftwood could leave.
fn connection_in_a_raw_transaction(path: &std::path::Path) -> Result<Connection> {
    let mut conn = Connection::open(path, &OpenOptions::default())?;
    let no_guard: Option<fn(rusqlite::hooks::AuthContext<'_>) -> rusqlite::hooks::Authorization> =
        None;
    conn.raw_mut().authorizer(no_guard).unwrap();
    conn.raw().execute_batch("BEGIN").unwrap();
    Ok(conn)
}

// Scenario: a transaction open on the connection that no handle owned made
// every later request part of it; nothing ever committed or rolled it back.
#[test]
fn a_transaction_nobody_owns_is_rolled_back_and_reported() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let local: Db =
            Db::from_connection(connection_in_a_raw_transaction(&dir.path().join("a.db")).unwrap())
                .unwrap();
        let server = block_on(Server::start({
            let path = dir.path().join("b.db");
            move || connection_in_a_raw_transaction(&path)
        }))
        .unwrap();
        let background: Db = block_on(server.connect()).unwrap();
        for db in [local, background] {
            // The first request to find it is refused, and it is rolled back.
            let err = block_on(db.custom_statement("CREATE TABLE t (x)", [])).unwrap_err();
            assert_eq!(err, Error::UnownedTransaction);
            assert_eq!(
                err.to_string(),
                "a unit of work left a transaction open that no transaction handle owns; it was \
                 rolled back (use db.begin() or db.transaction(..))"
            );
            // The table is not there, and the next request commits.
            block_on(db.custom_statement("CREATE TABLE t (x)", [])).unwrap();
            block_on(db.custom_statement("INSERT INTO t VALUES (1)", [])).unwrap();
        }
        for file in ["a.db", "b.db"] {
            let conn = rusqlite::Connection::open(dir.path().join(file)).unwrap();
            let n: i64 = conn
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 1, "{file}");
        }
    });
}

// Scenario: `tx.begin()` dropped before the server took it (a lost `select!`
// branch, a timeout) made the abandon guard roll back "the innermost level":
// the parent. Its earlier writes were lost, later ones committed in
// autocommit, and its commit failed.
#[test]
fn a_dropped_savepoint_future_leaves_its_parent_untouched() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                let mut expected = Vec::new();
                for round in 0..50 {
                    let mut tx = db.begin().await.unwrap();
                    let (first, second) = (format!("sp{round:02}-a"), format!("sp{round:02}-b"));
                    tx.insert(todo(&first, "x", None)).await.unwrap();
                    {
                        let mut child = Box::pin(tx.begin());
                        if round % 2 == 1 {
                            // Sent, maybe even begun, then given up on.
                            let _ = poll_once(&mut child);
                        }
                    }
                    tx.insert(todo(&second, "x", None)).await.unwrap();
                    tx.commit().await.unwrap();
                    expected.extend([first, second]);
                }
                expected.sort();
                assert_eq!(titles_on_disk(&dir), expected);
            })
        });
    }
}

// Scenario: a `mem::forget`-ed savepoint made the parent's `commit()` only
// release the savepoint and return Ok with nothing on disk. A leaked
// savepoint is part of its parent: committing the parent commits it.
#[test]
fn a_forgotten_savepoint_is_committed_with_its_parent() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                let mut tx = db.begin().await.unwrap();
                tx.insert(todo("Parent a", "x", None)).await.unwrap();
                let child = tx.begin().await.unwrap();
                child.insert(todo("Leaked", "x", None)).await.unwrap();
                std::mem::forget(child);
                tx.insert(todo("Parent b", "x", None)).await.unwrap();
                tx.commit().await.unwrap();
                assert_eq!(titles_on_disk(&dir), ["Leaked", "Parent a", "Parent b"]);
                db.insert(todo("Then free", "x", None)).await.unwrap();
            })
        });
    }
}

// Scenario: a handle that outlived its transaction (a savepoint returned out
// of `db.transaction`) wrote in autocommit after the transaction ended.
#[test]
fn a_savepoint_that_outlives_its_transaction_says_so() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                let escaped = db.transaction(|| async { db.begin().await }).await.unwrap();
                let err = escaped
                    .insert(todo("Too late", "x", None))
                    .await
                    .unwrap_err();
                assert_eq!(
                    err.to_string(),
                    "this transaction is no longer open: its statements cannot run: it was \
                     already committed or rolled back"
                );
                let err = escaped.commit().await.unwrap_err();
                assert!(matches!(err, Error::TransactionEnded { .. }), "{err}");
                assert!(titles_on_disk(&dir).is_empty());
            })
        });
    }
}

/// A value whose `Drop` panics, captured by a unit of work.
struct PanicsWhenDropped;

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        panic!("a captured value panicked in Drop");
    }
}

// Scenario: a job skipped because its future was dropped was dropped outside
// `catch_unwind`; a captured value panicking in `Drop` killed the writer
// (every call `Closed`, `is_running()` true) or a reader (whose load stayed 0,
// so every read went to the dead reader).
#[test]
fn a_panic_while_dropping_a_skipped_job_does_not_kill_a_server_thread() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(
            Server::builder()
                .readers(1)
                .open(dir.path().join("todos.db"), OpenOptions::default()),
        )
        .unwrap();
        let a = block_on(server.connect::<TodoDb>()).unwrap();
        let b = block_on(server.connect::<TodoDb>()).unwrap();

        // The writer: a unit of work waits behind A's transaction, is given up
        // on, and is dropped when its turn comes.
        let tx = block_on(a.begin()).unwrap();
        let bomb = PanicsWhenDropped;
        let mut waiting = b.write(move |_| {
            let _kept = &bomb;
            Ok(())
        });
        assert!(poll_once(&mut waiting).is_pending());
        drop(waiting);
        block_on(tx.commit()).unwrap();
        block_on(b.insert(todo("Writer ok", "x", None))).unwrap();

        // The reader: a read waits behind a long query, is given up on, and is
        // dropped when its turn comes.
        let mut long = b.custom_select(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
            [],
        );
        assert!(poll_once(&mut long).is_pending());
        let bomb = PanicsWhenDropped;
        let mut read = b.read(move |_| {
            let _kept = &bomb;
            Ok(())
        });
        assert!(poll_once(&mut read).is_pending());
        drop(read);
        drop(long);
        assert_eq!(block_on(b.select::<Todo>().count()).unwrap(), 1);
        assert!(server.is_running());
        assert_eq!(server.live_readers(), 1);
    });
}

/// Never ends unless interrupted.
const ENDLESS_READ: &str =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";

// Scenario: `shutdown_all()` (and `close()`, and dropping the last handle)
// joined the threads without interrupting the statement in flight: with an
// endless query running, it never returned.
#[test]
fn shutdown_interrupts_running_statements_and_returns() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(
            Server::builder()
                .readers(1)
                .open(dir.path().join("todos.db"), OpenOptions::default()),
        )
        .unwrap();
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let running: Vec<_> = [true, false]
            .into_iter()
            .map(|on_reader| {
                let (db, started) = (db.clone(), started.clone());
                std::thread::spawn(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    if on_reader {
                        block_on(db.custom_select(ENDLESS_READ, [])).map(|_| ())
                    } else {
                        block_on(db.write(|conn| conn.custom_select(ENDLESS_READ, []))).map(|_| ())
                    }
                })
            })
            .collect();
        while started.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(100));
        server.shutdown_all();
        assert!(!server.is_running());
        for thread in running {
            let err = thread.join().unwrap().unwrap_err();
            assert!(
                matches!(err, Error::Interrupted { .. } | Error::Closed),
                "{err}"
            );
        }
        assert_eq!(
            block_on(db.select::<Todo>().count()).unwrap_err(),
            Error::Closed
        );
    });
}

// Scenario: Rust code inside a unit of work cannot be interrupted; shutdown
// waited for it forever. Now it waits at most the shutdown timeout, then
// detaches the thread and marks the server dead.
#[test]
fn shutdown_gives_up_on_a_unit_of_work_that_does_not_end() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(
            Server::builder()
                .shutdown_timeout(Duration::from_millis(200))
                .open(dir.path().join("todos.db"), OpenOptions::default()),
        )
        .unwrap();
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        let (entered, in_work) = mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let slow = {
            let (db, finished) = (db.clone(), finished.clone());
            std::thread::spawn(move || {
                block_on(db.write(move |_| {
                    entered.send(()).unwrap();
                    std::thread::sleep(Duration::from_secs(2));
                    finished.store(true, Ordering::SeqCst);
                    Ok(())
                }))
            })
        };
        in_work.recv().unwrap();
        server.shutdown_all();
        assert!(
            !finished.load(Ordering::SeqCst),
            "shutdown returned while the unit of work still ran"
        );
        let err = block_on(db.insert(todo("Refused", "x", None))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the database thread `driftwood-writer` died: it did not stop within the shutdown timeout"
        );
        let _ = slow.join().unwrap();
    });
}

// Scenario: `shutdown_all` joined the threads inside async code, blocking
// the executor thread. `Server::shutdown().await` waits without blocking.
#[test]
fn async_shutdown_waits_without_blocking_its_thread() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(Server::open(dir.path().join("todos.db"))).unwrap();
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        let (entered, in_work) = mpsc::channel();
        let busy = std::thread::spawn(move || {
            block_on(db.write(move |_| {
                entered.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            }))
        });
        in_work.recv().unwrap();
        let mut pool = futures::executor::LocalPool::new();
        let done = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicUsize::new(0));
        use futures::task::LocalSpawnExt;
        pool.spawner()
            .spawn_local({
                let done = done.clone();
                async move {
                    server.shutdown().await;
                    done.store(true, Ordering::SeqCst);
                }
            })
            .unwrap();
        pool.spawner()
            .spawn_local({
                let (done, ticks) = (done.clone(), ticks.clone());
                async move {
                    while !done.load(Ordering::SeqCst) {
                        ticks.fetch_add(1, Ordering::SeqCst);
                        futures_timer::Delay::new(Duration::from_millis(1)).await;
                    }
                }
            })
            .unwrap();
        pool.run();
        assert!(
            ticks.load(Ordering::SeqCst) > 1,
            "the other task ran while shutdown waited"
        );
        busy.join().unwrap().unwrap();
    });
}

// Scenario: `db.write(move |_| block_on(db2.insert(..)))` — or a read calling
// back with one reader — waited for its own thread and deadlocked silently.
#[test]
fn calling_back_into_the_database_from_its_own_thread_fails_at_once() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                let inner = db.clone();
                let err = db
                    .write(move |_| at_once(inner.insert(todo("Inner one", "x", None))))
                    .await
                    .unwrap_err();
                assert_eq!(err, Error::Reentrant);
                assert_eq!(
                    err.to_string(),
                    "called from the database's own thread, which would wait for itself: inside a \
                     unit of work, use the `Conn` you were given"
                );
                let inner = db.clone();
                let err = db
                    .read(move |_| at_once(inner.select::<Todo>().count()))
                    .await
                    .unwrap_err();
                assert_eq!(err, Error::Reentrant);
                let inner = db.clone();
                let err = db
                    .write(move |_| at_once(inner.begin()).map(|_| ()))
                    .await
                    .unwrap_err();
                assert_eq!(err, Error::Reentrant);
                db.insert(todo("Outer ok", "x", None)).await.unwrap();
                assert_eq!(titles_on_disk(&dir), ["Outer ok"]);
            })
        });
    }
    // Another client of the same server is the same threads.
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(Server::open(dir.path().join("todos.db"))).unwrap();
        let a = block_on(server.connect::<TodoDb>()).unwrap();
        let b = block_on(server.connect::<TodoDb>()).unwrap();
        let err = block_on(a.write(move |_| at_once(b.insert(todo("Via client", "x", None)))))
            .unwrap_err();
        assert_eq!(err, Error::Reentrant);
    });
}

// Scenario: `":memory:"` in the background gave each reader its own empty
// database: the insert succeeded and the typed select (sent to a reader)
// failed with "no such table".
#[test]
fn a_background_database_without_shared_storage_gets_no_readers() {
    within(60, || {
        block_on(async {
            let db = Db::<TodoDb>::open_in_background(":memory:").await.unwrap();
            let id = db.insert(todo("In memory", "x", None)).await.unwrap();
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 1);
            assert!(db.find::<Todo>(id).await.unwrap().is_some());
            let rows = db
                .custom_select("SELECT count(*) FROM todos", [])
                .await
                .unwrap();
            assert_eq!(rows[0].get::<i64>(0).unwrap(), 1);
            let n = db.read(|conn| conn.select::<Todo>().count()).await.unwrap();
            assert_eq!(n, 1);

            let memory = Server::open_with(":memory:", OpenOptions::default(), 2)
                .await
                .unwrap();
            assert_eq!(memory.live_readers(), 0);
            let dir = tempfile::tempdir().unwrap();
            let rollback_journal = Server::open_with(
                dir.path().join("delete.db"),
                OpenOptions::default().journal_mode(JournalMode::Delete),
                2,
            )
            .await
            .unwrap();
            assert_eq!(rollback_journal.live_readers(), 0);
            let wal = Server::open_with(dir.path().join("wal.db"), OpenOptions::default(), 2)
                .await
                .unwrap();
            assert_eq!(wal.live_readers(), 2);
        })
    });
}

// Scenario: using the `Db` while the same task held its transaction waited
// for the writer forever (on both backends).
#[test]
fn using_the_db_while_its_task_holds_the_transaction_fails_with_busy() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let options = OpenOptions::default().busy_timeout(Duration::from_millis(300));
                let (dir, db) = open_with(backend, options).await;
                let tx = db.begin().await.unwrap();
                tx.insert(todo("Held one", "x", None)).await.unwrap();
                let err = db.insert(todo("Waiting", "x", None)).await.unwrap_err();
                let Error::Busy { waited_ms, message } = &err else {
                    panic!("expected Busy, got {err}");
                };
                assert!(*waited_ms >= 300, "{err}");
                assert!(
                    message.starts_with("a transaction has held it for "),
                    "{err}"
                );
                assert!(
                    err.to_string().contains("not through the database handle"),
                    "{err}"
                );
                let err = db.begin().await.unwrap_err();
                assert!(matches!(err, Error::Busy { .. }), "{err}");
                // The transaction itself was never disturbed.
                tx.insert(todo("Held two", "x", None)).await.unwrap();
                tx.commit().await.unwrap();
                db.insert(todo("Then ok", "x", None)).await.unwrap();
                assert_eq!(titles_on_disk(&dir), ["Held one", "Held two", "Then ok"]);
            })
        });
    }
}

// The wait is named in a warning before it fails.
#[test]
fn a_long_wait_for_the_writer_is_logged_before_it_fails() {
    within(60, || {
        let warnings = Warnings::default();
        let seen = warnings.0.clone();
        tracing::subscriber::with_default(warnings, || {
            block_on(async {
                let options = OpenOptions::default().busy_timeout(Duration::from_millis(200));
                let (_dir, db) = open_with(Backend::InThread, options).await;
                let tx = db.begin().await.unwrap();
                db.insert(todo("Waiting", "x", None)).await.unwrap_err();
                tx.rollback().await.unwrap();
            })
        });
        let seen = seen.lock().unwrap();
        assert!(
            seen.iter()
                .any(|m| m.contains("a request has waited long for the writer")),
            "{seen:?}"
        );
    });
}

async fn insert_through(executor: &impl Executor, title: &str) -> Result<i64> {
    executor.insert(todo(title, "x", None)).await
}

// Scenario: the shape drift users know, `transaction(() async { … })`, with
// calls through the database inside it — including helpers taking an
// `&impl Executor` — joining the transaction instead of waiting for it.
#[test]
fn db_transaction_routes_calls_through_the_db_into_the_transaction() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                db.transaction(|| async {
                    db.insert(todo("Scoped a", "x", None)).await?;
                    insert_through(&db, "Scoped b").await?;
                    assert_eq!(db.select::<Todo>().count().await?, 2);
                    let rows = db.custom_select("SELECT count(*) FROM todos", []).await?;
                    assert_eq!(rows[0].get::<i64>(0)?, 2);
                    let n = db.read(|conn| conn.select::<Todo>().count()).await?;
                    assert_eq!(n, 2, "a read unit sees the transaction's writes");
                    // Nested: a savepoint that rolls back alone.
                    let inner = db
                        .transaction(|| async {
                            db.insert(todo("Nested", "x", None)).await?;
                            Err::<(), _>(Error::invalid_argument("not this one"))
                        })
                        .await;
                    assert!(inner.is_err());
                    db.write(|conn| conn.insert(todo("Scoped c", "x", None)).execute())
                        .await?;
                    Ok(())
                })
                .await
                .unwrap();
                assert_eq!(titles_on_disk(&dir), ["Scoped a", "Scoped b", "Scoped c"]);

                let err = db
                    .transaction(|| async {
                        db.insert(todo("Undone", "x", None)).await?;
                        Err::<(), _>(Error::invalid_argument("changed my mind"))
                    })
                    .await
                    .unwrap_err();
                assert_eq!(err.to_string(), "invalid argument: changed my mind");

                let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    block_on(db.transaction(|| async {
                        db.insert(todo("Panicked", "x", None)).await?;
                        panic!("bug in a transaction body");
                        #[allow(unreachable_code)]
                        Ok::<(), Error>(())
                    }))
                }));
                assert!(panicked.is_err());
                db.insert(todo("After all", "x", None)).await.unwrap();
                assert_eq!(
                    titles_on_disk(&dir),
                    ["After all", "Scoped a", "Scoped b", "Scoped c"]
                );
            })
        });
    }
}

// Scenario: a delayed database whose connect panicked poisoned every later
// call with a panic ("inner future panicked during poll").
#[test]
fn a_delayed_database_whose_connect_panics_reports_an_error_every_time() {
    within(60, || {
        let db: Db<TodoDb> = Db::delayed(async { panic!("no database today") });
        let expected = Error::Panic {
            message: "no database today".into(),
        };
        for _ in 0..3 {
            assert_eq!(block_on(db.select::<Todo>().count()).unwrap_err(), expected);
        }
        assert_eq!(block_on(db.begin()).unwrap_err(), expected);
        assert_eq!(block_on(db.clone().close()).unwrap_err(), expected);
        assert!(db.is_closed());
    });
}

// Scenario: raw `custom_select("SELECT count(*) …")` from one client waited
// behind another client's open write transaction, because raw SQL always
// went to the writer. Raw SQL that is not a plain read still goes there.
#[test]
fn raw_reads_run_on_a_reader_while_a_transaction_holds_the_writer() {
    within(60, || {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let options = OpenOptions::default().busy_timeout(Duration::from_millis(300));
            let server = Server::open_with(dir.path().join("todos.db"), options, 2)
                .await
                .unwrap();
            let a = server.connect::<TodoDb>().await.unwrap();
            let b = server.connect::<TodoDb>().await.unwrap();
            a.insert(todo("Committed", "x", None)).await.unwrap();
            let tx = a.begin().await.unwrap();
            tx.insert(todo("Pending", "x", None)).await.unwrap();
            for _ in 0..3 {
                let rows = b
                    .custom_select("SELECT count(*) FROM todos", [])
                    .await
                    .unwrap();
                assert_eq!(rows[0].get::<i64>(0).unwrap(), 1);
            }
            let rows = b
                .custom_select(
                    "SELECT title FROM todos WHERE title = ?",
                    args!["Committed"],
                )
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
            // Writes and pragmas that return rows go to the writer, so they wait.
            for sql in [
                "INSERT INTO categories (description) VALUES ('New') RETURNING id",
                "PRAGMA user_version",
            ] {
                let err = b.custom_select(sql, []).await.unwrap_err();
                assert!(matches!(err, Error::Busy { .. }), "{sql}: {err}");
            }
            tx.commit().await.unwrap();
            let rows = b
                .custom_select(
                    "INSERT INTO categories (description) VALUES ('New') RETURNING id",
                    [],
                )
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
            let version = b.custom_select("PRAGMA user_version", []).await.unwrap();
            assert_eq!(version[0].get::<i64>(0).unwrap(), 1);
        })
    });
}

// Scenario: in-thread, `Db::read` ran on the writable connection outside a
// transaction, so a write inside it succeeded on one backend and failed on
// the other, and its queries could see different commits.
#[test]
fn a_read_unit_of_work_refuses_writes_on_every_backend() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                let err = db
                    .read(|conn| conn.insert(todo("Sneaky", "x", None)).execute())
                    .await
                    .unwrap_err();
                assert!(err.to_string().contains("readonly database"), "{err}");
                db.insert(todo("Allowed", "x", None)).await.unwrap();
                assert_eq!(titles_on_disk(&dir), ["Allowed"]);
            })
        });
    }
}

#[test]
fn a_read_unit_of_work_sees_one_snapshot() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(Server::open(dir.path().join("todos.db"))).unwrap();
        let reader = block_on(server.connect::<TodoDb>()).unwrap();
        let writer = block_on(server.connect::<TodoDb>()).unwrap();
        block_on(writer.insert(todo("First one", "x", None))).unwrap();
        let (counted, first_count) = mpsc::channel();
        let (wrote, write_done) = mpsc::channel::<()>();
        let reading = std::thread::spawn(move || {
            block_on(reader.read(move |conn| {
                let before = conn.select::<Todo>().count()?;
                counted.send(()).unwrap();
                write_done.recv().unwrap();
                let after = conn.select::<Todo>().count()?;
                Ok((before, after))
            }))
        });
        first_count.recv().unwrap();
        block_on(writer.insert(todo("Second one", "x", None))).unwrap();
        wrote.send(()).unwrap();
        assert_eq!(reading.join().unwrap().unwrap(), (1, 1));
        assert_eq!(block_on(writer.select::<Todo>().count()).unwrap(), 2);
    });
}

/// Yields once to the executor, so siblings in a `join!` interleave.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

// Scenario (found by a probe): a client closed while its transaction was
// open; `commit` answered `Closed` without sending anything, so nothing ever
// rolled the transaction back and every other client got `Busy` for good.
#[test]
fn committing_after_its_client_closed_never_keeps_the_writer() {
    within(60, || {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let options = OpenOptions::default().busy_timeout(Duration::from_millis(300));
            let server = Server::open_with(dir.path().join("todos.db"), options, 2)
                .await
                .unwrap();
            let a = server.connect::<TodoDb>().await.unwrap();
            let b = server.connect::<TodoDb>().await.unwrap();
            let tx = a.begin().await.unwrap();
            tx.insert(todo("Unfinished", "x", None)).await.unwrap();
            a.close().await.unwrap();
            assert_eq!(tx.commit().await.unwrap_err(), Error::Closed);
            b.insert(todo("Others go", "x", None)).await.unwrap();
            assert_eq!(titles_on_disk(&dir), ["Others go"]);
        })
    });
}

// Scenario (found by a probe): concurrent children of one scope (`join!`)
// opened their savepoints inside each other's, so one child's rollback
// undid a sibling's acknowledged savepoint and a sibling's plain insert.
// A savepoint begun through the `Db` now holds the turn alone while open.
#[test]
fn concurrent_savepoints_in_one_scope_never_undo_each_other() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                db.transaction(|| async {
                    let gives_up = db.transaction(|| async {
                        db.insert(todo("Sibling a", "x", None)).await?;
                        for _ in 0..4 {
                            YieldNow(false).await;
                        }
                        Err::<(), _>(Error::invalid_argument("a gives up"))
                    });
                    let commits = db.transaction(|| async {
                        YieldNow(false).await;
                        db.insert(todo("Sibling b", "x", None)).await?;
                        Ok(())
                    });
                    let plain = async {
                        YieldNow(false).await;
                        db.insert(todo("Sibling c", "x", None)).await
                    };
                    let (a, b, c) = futures::future::join3(gives_up, commits, plain).await;
                    assert!(a.is_err());
                    b.unwrap();
                    c.unwrap();
                    Ok(())
                })
                .await
                .unwrap();
                assert_eq!(titles_on_disk(&dir), ["Sibling b", "Sibling c"]);
            })
        });
    }
}

// Scenario (found by a probe): `VACUUM` and `VACUUM INTO` failed with
// "authorization denied": the guard refused the transaction VACUUM begins
// internally while it runs.
#[test]
fn vacuum_and_vacuum_into_run() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                db.insert(todo("Vacuumed", "x", None)).await.unwrap();
                db.custom_statement("VACUUM", []).await.unwrap();
                let copy = dir.path().join("copy.db");
                db.custom_statement(format!("VACUUM INTO '{}'", copy.display()), [])
                    .await
                    .unwrap();
                let copy = rusqlite::Connection::open(copy).unwrap();
                let n: i64 = copy
                    .query_row("SELECT count(*) FROM todos", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(n, 1);
                // Inside a transaction SQLite itself refuses it, and says so.
                let err = db
                    .transaction(|| async { db.custom_statement("VACUUM", []).await })
                    .await
                    .unwrap_err();
                assert!(
                    err.to_string()
                        .contains("cannot VACUUM from within a transaction"),
                    "{err}"
                );
            })
        });
    }
}

// Scenario (found by a probe): on the server, raw selects that depend on
// the connection's own state went to a reader: `last_insert_rowid()` and
// `changes()` answered 0, `TEMP` and attached tables "no such table".
#[test]
fn raw_selects_that_need_the_writers_own_state_run_on_the_writer() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                db.custom_statement(
                    "INSERT INTO categories (description) VALUES ('One'), ('Two')",
                    [],
                )
                .await
                .unwrap();
                let rows = db
                    .custom_select("SELECT last_insert_rowid(), changes()", [])
                    .await
                    .unwrap();
                assert_eq!(
                    (
                        rows[0].get::<i64>(0).unwrap(),
                        rows[0].get::<i64>(1).unwrap()
                    ),
                    (2, 2)
                );
                db.custom_statement("CREATE TEMP TABLE scratch (x)", [])
                    .await
                    .unwrap();
                db.custom_statement("INSERT INTO scratch VALUES (1)", [])
                    .await
                    .unwrap();
                let rows = db
                    .custom_select("SELECT count(*) FROM scratch", [])
                    .await
                    .unwrap();
                assert_eq!(rows[0].get::<i64>(0).unwrap(), 1);
                let other = dir.path().join("other.db");
                db.custom_statement(
                    format!("ATTACH DATABASE '{}' AS other", other.display()),
                    [],
                )
                .await
                .unwrap();
                db.custom_statement("CREATE TABLE other.t (x)", [])
                    .await
                    .unwrap();
                let rows = db
                    .custom_select("SELECT count(*) FROM other.t", [])
                    .await
                    .unwrap();
                assert_eq!(rows[0].get::<i64>(0).unwrap(), 0);
            })
        });
    }
}

// Scenario (found by a probe): a read unit that ran `PRAGMA query_only = 0`
// could write: in-thread the write "succeeded" and was silently discarded;
// inside a transaction scope it was committed.
#[test]
fn a_read_unit_cannot_write_even_by_turning_query_only_off() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                let sneaky = |conn: &Conn<'_>| {
                    conn.custom_statement("PRAGMA query_only = 0", [])?;
                    conn.insert(todo("Sneaked in", "x", None)).execute()
                };
                let outside = db.read(sneaky).await.unwrap_err();
                assert_eq!(outside, Error::WriteInRead);
                assert_eq!(
                    outside.to_string(),
                    "a read unit of work changed the database; its changes were rolled back \
                     (use db.write(..) to write)"
                );
                let inside = db
                    .transaction(|| async {
                        db.insert(todo("Kept one", "x", None)).await?;
                        assert_eq!(db.read(sneaky).await.unwrap_err(), Error::WriteInRead);
                        Ok(())
                    })
                    .await;
                inside.unwrap();
                // Writes are refused again afterwards: query_only is back on.
                let err = db
                    .read(|conn| conn.insert(todo("Refused", "x", None)).execute())
                    .await
                    .unwrap_err();
                assert!(err.to_string().contains("readonly database"), "{err}");
                db.insert(todo("Writable", "x", None)).await.unwrap();
                assert_eq!(titles_on_disk(&dir), ["Kept one", "Writable"]);
            })
        });
    }
}

// Scenario (found by a probe): a request queued behind a long-running job
// had no deadline (only waits for another transaction did): with a 300 ms
// busy timeout it waited for the whole job, forever behind an endless one.
#[test]
fn a_request_queued_behind_a_long_job_fails_with_busy() {
    for backend in BACKENDS {
        within(60, move || {
            let options = OpenOptions::default().busy_timeout(Duration::from_millis(300));
            let (dir, db) = block_on(open_with(backend, options));
            let (entered, in_job) = mpsc::channel();
            let finished = Arc::new(AtomicBool::new(false));
            let long = {
                let (db, finished) = (db.clone(), finished.clone());
                std::thread::spawn(move || {
                    block_on(db.write(move |_| {
                        entered.send(()).unwrap();
                        std::thread::sleep(Duration::from_secs(2));
                        finished.store(true, Ordering::SeqCst);
                        Ok(())
                    }))
                })
            };
            in_job.recv().unwrap();
            let err = block_on(db.insert(todo("Too late", "x", None))).unwrap_err();
            assert!(matches!(err, Error::Busy { .. }), "{backend:?}: {err}");
            assert!(
                !finished.load(Ordering::SeqCst),
                "{backend:?}: the request gave up while the job still ran"
            );
            long.join().unwrap().unwrap();
            assert!(
                titles_on_disk(&dir).is_empty(),
                "the abandoned insert never ran"
            );
            block_on(db.insert(todo("Now fine", "x", None))).unwrap();
        });
    }
}

// Scenario (found by a probe): `Server::connect` always ran the schema check
// as a job on the writer, so connecting failed with `Busy` while another
// client held a transaction, even with nothing to migrate.
#[test]
fn connecting_needs_no_writer_when_the_schema_is_current() {
    within(60, || {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let options = OpenOptions::default().busy_timeout(Duration::from_millis(300));
            let server = Server::open_with(dir.path().join("todos.db"), options, 2)
                .await
                .unwrap();
            let a = server.connect::<TodoDb>().await.unwrap();
            let tx = a.begin().await.unwrap();
            let b = server.connect::<TodoDb>().await.unwrap();
            server.connect::<NoSchema>().await.unwrap();
            assert_eq!(b.select::<Todo>().count().await.unwrap(), 0);
            tx.rollback().await.unwrap();
        })
    });
}

/// Starts a unit of work (a write unit on the writer, or a read unit on a
/// reader) that sleeps for `hold`, and returns once it is running.
fn hold_unit(db: &Db<TodoDb>, write: bool, hold: Duration) -> std::thread::JoinHandle<Result<()>> {
    let (entered, running) = mpsc::channel();
    let db = db.clone();
    let unit = move |_: &Conn<'_>| {
        entered.send(()).unwrap();
        std::thread::sleep(hold);
        Ok(())
    };
    let thread = std::thread::spawn(move || match write {
        true => block_on(db.write(unit)),
        false => block_on(db.read(unit)),
    });
    running.recv().unwrap();
    thread
}

// Scenario (found by a probe): a read statement went to the writer when it
// was no busier than the least busy reader, so with the one reader busy for
// a moment it queued behind a write unit of work that ran for seconds and
// failed with `Busy`, while the reader was free again almost at once.
#[test]
fn a_read_never_waits_behind_a_long_write_unit() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let options = OpenOptions::default().busy_timeout(Duration::from_secs(1));
        let server = block_on(Server::open_with(dir.path().join("todos.db"), options, 1)).unwrap();
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        block_on(db.insert(todo("Written", "x", None))).unwrap();
        let writing = hold_unit(&db, true, Duration::from_secs(3));
        let reading = hold_unit(&db, false, Duration::from_millis(50));
        // Writer and reader are both busy: the read waits for the reader.
        assert_eq!(block_on(db.select::<Todo>().count()).unwrap(), 1);
        reading.join().unwrap().unwrap();
        writing.join().unwrap().unwrap();
    });
}

// Scenario (found by a probe): once the writer held a `TEMP` table named
// like a `main` one, built selects still went to readers whenever the
// writer was busy, so the same query counted the `TEMP` rows one moment
// and the `main` rows the next.
#[test]
fn a_temp_table_on_the_writer_answers_every_read_the_same() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            block_on(db.insert(todo("Main one", "x", None))).unwrap();
            block_on(db.insert(todo("Main two", "x", None))).unwrap();
            block_on(db.custom_statement(
                "CREATE TEMP TABLE todos AS SELECT * FROM main.todos WHERE 0",
                [],
            ))
            .unwrap();
            block_on(db.custom_statement(
                "INSERT INTO temp.todos SELECT * FROM main.todos LIMIT 1",
                [],
            ))
            .unwrap();
            let idle = block_on(db.select::<Todo>().count()).unwrap();
            assert_eq!(idle, 1, "{backend:?}: the TEMP table shadows main's");
            let writing = hold_unit(&db, true, Duration::from_millis(200));
            let busy = block_on(db.select::<Todo>().count()).unwrap();
            let raw = block_on(db.custom_select("SELECT count(*) FROM todos", [])).unwrap();
            let in_unit = block_on(db.read(|conn| conn.select::<Todo>().count())).unwrap();
            writing.join().unwrap().unwrap();
            assert_eq!(
                (busy, raw[0].get::<i64>(0).unwrap(), in_unit),
                (idle, idle, idle),
                "{backend:?}: every read answers as the writer would"
            );
        });
    }
}
