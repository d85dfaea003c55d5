//! Transactions: owned handles across awaits and tasks, rollback on drop,
//! savepoints, closure forms, panics in units of work, and other users
//! waiting their turn.

mod common;

use common::*;
use driftwood::prelude::*;

#[test]
fn dropped_transaction_rolls_back_and_commit_persists() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db) = open(backend).await;
            {
                let tx = db.begin().await.unwrap();
                tx.insert(todo("Dropped", "x", None)).await.unwrap();
                assert_eq!(tx.select::<Todo>().count().await.unwrap(), 1);
            }
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 0);

            let tx = db.begin().await.unwrap();
            tx.insert(todo("Committed", "x", None)).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 1);

            let tx = db.begin().await.unwrap();
            tx.delete::<Todo>().await.unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 1);
        });
    }
}

#[test]
fn savepoints_commit_into_and_roll_back_within_the_parent() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db) = open(backend).await;
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
                // dropped: only this savepoint rolls back
            }
            let err = tx
                .savepoint(|conn| {
                    conn.insert(todo("Inner C", "x", None)).execute()?;
                    conn.insert(todo("bad", "x", None)).execute()
                })
                .await
                .unwrap_err();
            assert_eq!(
                err.constraint_kind(),
                Some(driftwood::ConstraintKind::Check)
            );
            tx.commit().await.unwrap();
            let mut titles: Vec<String> = db
                .select::<Todo>()
                .get()
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.title)
                .collect();
            titles.sort();
            assert_eq!(titles, ["Inner A", "Outer tx"]);
        });
    }
}

#[test]
fn a_transaction_moves_across_threads_while_others_wait() {
    let (_dir, db) = block_on(open_file());
    let tx = block_on(db.begin()).unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let reader = {
        let db = db.clone();
        std::thread::spawn(move || {
            started_tx.send(()).unwrap();
            // Waits for the transaction to end: it sees the committed row,
            // never a half-done state.
            block_on(db.select::<Todo>().count()).unwrap()
        })
    };
    started_rx.recv().unwrap();
    let writer = std::thread::spawn(move || {
        block_on(async move {
            tx.insert(todo("Threaded", "x", None)).await.unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            tx.commit().await.unwrap();
        })
    });
    writer.join().unwrap();
    assert_eq!(reader.join().unwrap(), 1);
}

#[test]
fn units_of_work_roll_back_on_error_and_panic() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db) = open(backend).await;
            let err = db
                .write(|conn| {
                    conn.insert(todo("Kept? no", "x", None)).execute()?;
                    Err::<(), _>(Error::invalid_argument("changed my mind"))
                })
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "invalid argument: changed my mind");

            let err = db
                .write(|conn| -> Result<()> {
                    conn.insert(todo("Kept? no", "x", None)).execute()?;
                    panic!("bug in user code");
                })
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "user code panicked: bug in user code");
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 0);

            // The database still works after the panic.
            let id = db
                .write(|conn| conn.insert(todo("Survivor", "x", None)).id())
                .await
                .unwrap();
            let nested = db
                .write(move |conn| {
                    let inner = conn.transaction(|c| c.insert(todo("Nested", "x", None)).id());
                    let failed = conn.transaction(|c| {
                        c.insert(todo("Rolled", "x", None)).execute()?;
                        Err::<(), _>(Error::invalid_argument("no"))
                    });
                    assert!(failed.is_err());
                    inner
                })
                .await
                .unwrap();
            assert!(nested > id);
            let count = db.select::<Todo>().count().await.unwrap();
            assert_eq!(count, 2);
        });
    }
}

#[test]
fn closed_database_reports_closed() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db) = open(backend).await;
            let other = db.clone();
            db.close().await.unwrap();
            let err = other.select::<Todo>().get().await.unwrap_err();
            assert_eq!(err, Error::Closed);
            assert_eq!(err.to_string(), "database is closed");
            assert_eq!(other.begin().await.unwrap_err(), Error::Closed);
        });
    }
}

// Requests are sent when the call is made, so statements queued without
// awaiting each one run in order, pipelined, and each future still resolves
// with its own result.
#[test]
fn queued_statements_run_in_order_with_their_own_results() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db) = open(backend).await;
            let tx = db.begin().await.unwrap();
            let queued: Vec<_> = (0..200)
                .map(|i| {
                    // The 100th is too short for the length check: it alone fails.
                    let title = if i == 100 {
                        "short".to_owned()
                    } else {
                        format!("row {i:05}")
                    };
                    tx.insert(todo(&title, "x", None)).id()
                })
                .collect();
            let mut ids = Vec::new();
            for (i, pending) in queued.into_iter().enumerate() {
                match pending.await {
                    Ok(id) => ids.push(id),
                    Err(err) => {
                        assert_eq!(i, 100);
                        assert_eq!(
                            err.constraint_kind(),
                            Some(driftwood::ConstraintKind::Check)
                        );
                    }
                }
            }
            assert_eq!(ids.len(), 199);
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "in the order they were queued"
            );
            tx.commit().await.unwrap();
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 199);
        });
    }
}
