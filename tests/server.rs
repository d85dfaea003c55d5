//! The background server: many clients on real threads, transactions that
//! wait their turn, dropped and cancelled work, panics, shutdown, single-
//! client disposal, the named registry and the migration gate. Every test
//! that could hang runs under a time limit that fails it instead.

mod common;

use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;
use driftwood::prelude::*;
use driftwood::server::registry;

async fn start(dir: &tempfile::TempDir) -> Server {
    Server::open(dir.path().join("todos.db")).await.unwrap()
}

/// A future that completes after `duration`, on a helper thread.
async fn sleep(duration: Duration) {
    let (done, wait) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        let _ = done.send(());
    });
    let _ = wait.await;
}

#[test]
fn sixteen_clients_lose_and_duplicate_nothing() {
    within(120, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        block_on(db.custom_statement(
            "CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)",
            [],
        ))
        .unwrap();
        block_on(db.custom_statement("INSERT INTO counter (id, value) VALUES (1, 0)", [])).unwrap();
        const CLIENTS: usize = 16;
        const ROUNDS: usize = 150;
        let threads: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let server = server.clone();
                std::thread::spawn(move || {
                    block_on(async move {
                        let db = server.connect::<TodoDb>().await.unwrap();
                        let mut inserted = 0;
                        let mut increments = 0;
                        for round in 0..ROUNDS {
                            match round % 3 {
                                0 => {
                                    db.insert(todo(
                                        &format!("c{client:02} r{round:03}"),
                                        "x",
                                        None,
                                    ))
                                    .await
                                    .unwrap();
                                    inserted += 1;
                                }
                                1 => {
                                    // Read-modify-write: lost updates would show in the total.
                                    let tx = db.begin().await.unwrap();
                                    let rows = tx
                                        .custom_select("SELECT value FROM counter WHERE id = 1", [])
                                        .await
                                        .unwrap();
                                    let value: i64 = rows[0].get(0).unwrap();
                                    tx.custom_statement(
                                        "UPDATE counter SET value = ? WHERE id = 1",
                                        args![value + 1],
                                    )
                                    .await
                                    .unwrap();
                                    tx.commit().await.unwrap();
                                    increments += 1;
                                }
                                _ => {
                                    let mine = db
                                        .select::<Todo>()
                                        .filter(Todo::TITLE.like(format!("c{client:02} %")))
                                        .count()
                                        .await
                                        .unwrap();
                                    assert_eq!(
                                        mine, inserted,
                                        "client {client} sees its own writes"
                                    );
                                }
                            }
                        }
                        (inserted, increments)
                    })
                })
            })
            .collect();
        let (mut inserted, mut increments) = (0, 0);
        for thread in threads {
            let (i, n) = thread.join().unwrap();
            inserted += i;
            increments += n;
        }
        assert_eq!(block_on(db.select::<Todo>().count()).unwrap(), inserted);
        let distinct =
            block_on(db.custom_select("SELECT count(DISTINCT title) FROM todos", [])).unwrap();
        assert_eq!(
            distinct[0].get::<i64>(0).unwrap(),
            inserted,
            "no duplicated writes"
        );
        let counter = block_on(db.custom_select("SELECT value FROM counter", [])).unwrap();
        assert_eq!(
            counter[0].get::<i64>(0).unwrap(),
            increments,
            "no lost updates"
        );
        server.shutdown_all();
    });
}

#[test]
fn other_clients_wait_for_an_open_transaction() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let a = block_on(server.connect::<TodoDb>()).unwrap();
        let b = block_on(server.connect::<TodoDb>()).unwrap();
        let tx = block_on(a.begin()).unwrap();
        block_on(tx.insert(todo("Not yet in", "x", None))).unwrap();
        let (sent, seen) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            sent.send(()).unwrap();
            block_on(async {
                b.insert(todo("From B", "x", None)).await.unwrap();
                b.select::<Todo>().count().await.unwrap()
            })
        });
        seen.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "B's write must wait for A's transaction"
        );
        block_on(tx.commit()).unwrap();
        assert_eq!(
            waiter.join().unwrap(),
            2,
            "B ran after A committed and sees both rows"
        );
    });
}

#[test]
fn a_dropped_transaction_rolls_back_and_frees_the_writer() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let a = block_on(server.connect::<TodoDb>()).unwrap();
        let b = block_on(server.connect::<TodoDb>()).unwrap();
        // A task holding a transaction is abandoned mid-way on another thread.
        let holder = std::thread::spawn(move || {
            block_on(async move {
                let tx = a.begin().await.unwrap();
                tx.insert(todo("Abandoned", "x", None)).await.unwrap();
                // dropped here without commit
            })
        });
        holder.join().unwrap();
        block_on(b.insert(todo("After drop", "x", None))).unwrap();
        let titles: Vec<String> = block_on(b.select::<Todo>().get())
            .unwrap()
            .into_iter()
            .map(|t| t.title)
            .collect();
        assert_eq!(titles, ["After drop"]);
    });
}

#[test]
fn cancelling_a_running_query_interrupts_only_it() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        block_on(db.insert(todo("Survives", "x", None))).unwrap();
        block_on(async {
            // Never ends unless interrupted.
            let endless = Box::pin(db.custom_select(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
                [],
            ));
            let timeout = Box::pin(sleep(Duration::from_millis(100)));
            match futures::future::select(endless, timeout).await {
                futures::future::Either::Left(_) => panic!("the endless query finished"),
                futures::future::Either::Right(((), endless)) => drop(endless),
            }
            // The next request runs normally: the interrupt hit only the cancelled one.
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 1);
        });
    });
}

#[test]
fn cancelling_a_write_rolls_its_transaction_back_and_says_so() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        block_on(async {
            let tx = db.begin().await.unwrap();
            tx.insert(todo("In the tx", "x", None)).await.unwrap();
            {
                let endless = tx.custom_statement(
                    "INSERT INTO todos (title, body) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                     SELECT 'Flooder', 'x' FROM n",
                    [],
                );
                let timeout = sleep(Duration::from_millis(100));
                futures::pin_mut!(endless, timeout);
                if let futures::future::Either::Left(_) =
                    futures::future::select(endless, timeout).await
                {
                    panic!("the endless insert finished");
                }
            }
            let err = tx.commit().await.unwrap_err();
            assert!(
                matches!(&err, Error::RolledBack { cause } if cause.contains("interrupted")),
                "{err}"
            );
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 0);
            db.insert(todo("Then works", "x", None)).await.unwrap();
        });
    });
}

#[test]
fn a_panic_in_a_unit_of_work_fails_only_its_caller() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        let other = block_on(server.connect::<TodoDb>()).unwrap();
        let err = block_on(db.write(|conn| -> Result<()> {
            conn.insert(todo("Half done", "x", None)).execute()?;
            panic!("bug in a unit of work")
        }))
        .unwrap_err();
        assert_eq!(err.to_string(), "user code panicked: bug in a unit of work");
        assert!(server.is_running());
        block_on(other.insert(todo("Still here", "x", None))).unwrap();
        assert_eq!(block_on(other.select::<Todo>().count()).unwrap(), 1);
    });
}

#[test]
fn openers_configure_the_connection_and_their_failures_are_reported() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.db");
        let server = block_on(Server::start(move || {
            let conn = driftwood::sqlite::Connection::open(&path, &Default::default())?;
            conn.raw()
                .create_scalar_function(
                    "twice",
                    1,
                    rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
                    |ctx| Ok(ctx.get::<i64>(0)? * 2),
                )
                .map_err(|e| Error::invalid_argument(e.to_string()))?;
            Ok(conn)
        }))
        .unwrap();
        let db = block_on(server.connect::<NoSchema>()).unwrap();
        let rows = block_on(db.custom_select("SELECT twice(21)", [])).unwrap();
        assert_eq!(rows[0].get::<i64>(0).unwrap(), 42);

        let err = block_on(Server::start(
            || -> Result<driftwood::sqlite::Connection> { panic!("opener exploded") },
        ))
        .unwrap_err();
        assert_eq!(err.to_string(), "user code panicked: opener exploded");
        let err = block_on(Server::open("/nonexistent-dir/x/y.db")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot open database /nonexistent-dir/x/y.db"),
            "{err}"
        );
    });
}

#[test]
fn shutdown_answers_every_call_in_flight_and_after() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let barrier = Arc::new(Barrier::new(9));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let server = server.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let db = block_on(server.connect::<TodoDb>()).unwrap();
                    barrier.wait();
                    let (mut ok, mut closed) = (0, 0);
                    for n in 0..10_000 {
                        match block_on(db.insert(todo(&format!("t{i} n{n:05}"), "x", None))) {
                            Ok(_) => ok += 1,
                            Err(Error::Closed) => closed += 1,
                            Err(other) => panic!("unexpected error: {other}"),
                        }
                        if closed > 3 {
                            break;
                        }
                    }
                    (ok, closed)
                })
            })
            .collect();
        barrier.wait();
        std::thread::sleep(Duration::from_millis(30));
        server.shutdown_all();
        assert!(!server.is_running());
        for thread in threads {
            let (_ok, closed) = thread.join().unwrap();
            assert!(closed > 0, "every client saw the shutdown as Closed");
        }
        let late = block_on(server.connect::<TodoDb>()).unwrap_err();
        assert_eq!(late, Error::Closed);
    });
}

#[test]
fn closing_one_client_keeps_the_server_and_a_single_client_disposes_it() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let a = block_on(server.connect::<TodoDb>()).unwrap();
        let b = block_on(server.connect::<TodoDb>()).unwrap();
        block_on(a.close()).unwrap();
        assert_eq!(
            block_on(a.select::<Todo>().count()).unwrap_err(),
            Error::Closed
        );
        assert!(server.is_running());
        assert_eq!(block_on(b.select::<Todo>().count()).unwrap(), 0);

        let single = block_on(Server::open(dir.path().join("single.db"))).unwrap();
        let only = block_on(single.connect_single_client::<TodoDb>()).unwrap();
        block_on(only.insert(todo("Only one", "x", None))).unwrap();
        block_on(only.close()).unwrap();
        assert!(
            !single.is_running(),
            "closing the single client stops its server"
        );
        assert_eq!(
            block_on(only.select::<Todo>().count()).unwrap_err(),
            Error::Closed
        );

        let background =
            block_on(Db::<TodoDb>::open_in_background(dir.path().join("bg.db"))).unwrap();
        let clone = background.clone();
        block_on(background.close()).unwrap();
        assert!(clone.is_closed());
        assert_eq!(
            block_on(clone.select::<Todo>().get()).unwrap_err(),
            Error::Closed
        );
    });
}

#[test]
fn the_registry_reports_stale_servers() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        registry::register("registry-test", &server).unwrap();
        let err = registry::register("registry-test", &server).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: a running server is already registered as `registry-test`"
        );
        let found = registry::lookup("registry-test")
            .unwrap()
            .expect("registered");
        let db = block_on(found.connect::<TodoDb>()).unwrap();
        block_on(db.insert(todo("Registry", "x", None))).unwrap();

        server.shutdown_all();
        let err = registry::lookup("registry-test").unwrap_err();
        assert_eq!(
            err,
            Error::StaleServer {
                name: "registry-test".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "the server registered as `registry-test` has shut down"
        );
        assert!(
            registry::lookup("registry-test").unwrap().is_none(),
            "the stale entry is gone"
        );
    });
}

#[test]
fn many_clients_connecting_at_once_migrate_exactly_once() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let barrier = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (server, barrier) = (server.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let db = block_on(server.connect::<TodoDb>()).unwrap();
                    block_on(db.select::<Todo>().count()).unwrap()
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), 0);
        }
        let db = block_on(server.connect::<NoSchema>()).unwrap();
        let version = block_on(db.custom_select("PRAGMA user_version", [])).unwrap();
        assert_eq!(version[0].get::<i64>(0).unwrap(), 1);
        let tables = block_on(db.custom_select(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            [],
        ))
        .unwrap();
        assert_eq!(tables[0].get::<i64>(0).unwrap(), 2);
    });
}

#[test]
fn readers_never_wait_for_an_open_write_and_refuse_writes() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let a = block_on(server.connect::<TodoDb>()).unwrap();
        let b = block_on(server.connect::<TodoDb>()).unwrap();
        let committed = block_on(a.insert(todo("Committed", "x", None))).unwrap();
        let tx = block_on(a.begin()).unwrap();
        block_on(tx.insert(todo("Pending", "x", None))).unwrap();

        // The writer is held by A; B's typed reads run on the reader pool at
        // once and see only what was committed.
        assert_eq!(block_on(b.select::<Todo>().count()).unwrap(), 1);
        assert_eq!(
            block_on(b.find::<Todo>(committed))
                .unwrap()
                .map(|t| t.title),
            Some("Committed".into())
        );
        let titles = block_on(b.read(|conn| conn.select::<Todo>().get())).unwrap();
        assert_eq!(titles.len(), 1);
        let err =
            block_on(b.read(|conn| conn.custom_statement("DELETE FROM todos", []))).unwrap_err();
        assert!(err.to_string().contains("readonly database"), "{err}");

        block_on(tx.commit()).unwrap();
        assert_eq!(block_on(b.select::<Todo>().count()).unwrap(), 2);
    });
}

#[test]
fn a_delayed_database_connects_on_first_use_and_reports_failures() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("delayed.db");
        let connects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connects.clone();
        // Built synchronously, e.g. inside a dependency-injection container.
        let db: Db<TodoDb> = Db::delayed(async move {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Db::open_in_background(path).await
        });
        let clone = db.clone();
        assert_eq!(
            connects.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "nothing connects before first use"
        );
        assert!(!db.is_closed());
        block_on(db.insert(todo("Delayed", "x", None))).unwrap();
        assert_eq!(block_on(clone.select::<Todo>().count()).unwrap(), 1);
        let tx = block_on(clone.begin()).unwrap();
        block_on(tx.commit()).unwrap();
        assert_eq!(
            connects.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "clones share one connection attempt"
        );

        let failing: Db<TodoDb> = Db::delayed(Db::open_in_background("/nonexistent-dir/x/y.db"));
        let err = block_on(failing.select::<Todo>().count()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot open database /nonexistent-dir/x/y.db"),
            "{err}"
        );
        assert!(failing.is_closed());
        assert_eq!(block_on(failing.begin()).unwrap_err(), err);
    });
}

#[test]
fn an_abandoned_begin_never_keeps_the_writer() {
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(start(&dir));
        let a = block_on(server.connect::<TodoDb>()).unwrap();
        let b = block_on(server.connect::<TodoDb>()).unwrap();
        let c = block_on(server.connect::<TodoDb>()).unwrap();
        let held = block_on(a.begin()).unwrap();
        {
            // B asks for the writer while A holds it, then gives up waiting.
            let mut waiting = Box::pin(b.begin());
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
        }
        block_on(held.commit()).unwrap();
        // B's abandoned request must not have taken the writer for good.
        block_on(c.insert(todo("After all", "x", None))).unwrap();
        assert_eq!(block_on(c.select::<Todo>().count()).unwrap(), 1);
    });
}
