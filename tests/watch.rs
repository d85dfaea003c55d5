//! Auto-updating queries: `watch()` streams and `table_updates`, on both
//! backends, driven by real writes on real files. Every test runs under a
//! time limit: a stream that misses a change hangs, and the limit fails it.

mod common;

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::*;
use driftwood::prelude::*;
use driftwood::watch::{TableUpdate, TableUpdates, Watched};
use futures::{Stream, StreamExt};

/// The stream's next value; fails on an error or its end.
fn next<T: Watched + std::fmt::Debug>(watch: &mut Watch<T>) -> T {
    match block_on(watch.next()) {
        Some(Ok(value)) => value,
        other => panic!("expected a value, got {other:?}"),
    }
}

/// The stream's next item, or `None` if none comes within `wait`.
fn next_within<S: Stream + Unpin>(stream: &mut S, wait: Duration) -> Option<S::Item> {
    block_on(async {
        let timer = futures_timer::Delay::new(wait);
        match futures::future::select(stream.next(), timer).await {
            futures::future::Either::Left((item, _)) => item,
            futures::future::Either::Right(_) => None,
        }
    })
}

/// Polls once, as an executor would after a wake-up: a stream marked by a
/// change starts a run (counted) and, in-thread, yields at once.
fn poll_once<S: Stream + Unpin>(stream: &mut S) -> Poll<Option<S::Item>> {
    std::pin::Pin::new(stream).poll_next(&mut Context::from_waker(Waker::noop()))
}

/// Nothing marked the stream: polling it neither runs the query nor
/// yields. (Publishing happens before the write returns, so this is
/// decided by the time it is called.)
fn assert_quiet<T: Watched + std::fmt::Debug>(watch: &mut Watch<T>, after: &str) {
    let runs = watch.runs();
    let polled = poll_once(watch);
    assert!(
        polled.is_pending(),
        "{after}: the stream yielded {polled:?}"
    );
    assert_eq!(watch.runs(), runs, "{after}: the query ran again");
}

fn titles(todos: &[Todo]) -> Vec<&str> {
    todos.iter().map(|t| t.title.as_str()).collect()
}

fn count_of(rows: &[driftwood::row::OwnedRow]) -> i64 {
    rows[0].get::<i64>(0).unwrap()
}

#[test]
fn a_watch_yields_the_current_rows_then_after_every_commit() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            let mut todos = db.select::<Todo>().order_by(Todo::TITLE.asc()).watch();
            assert!(next(&mut todos).is_empty());
            let first_commit = todos.last_commit().unwrap();
            block_on(db.insert(todo("Alpha one", "x", None))).unwrap();
            assert_eq!(titles(&next(&mut todos)), ["Alpha one"], "{backend:?}");
            assert!(todos.last_commit().unwrap() > first_commit);
            block_on(
                db.update::<Todo>()
                    .set(&TodoCompanion {
                        title: set("Alpha two"),
                        ..absent()
                    })
                    .filter(Todo::TITLE.eq("Alpha one"))
                    .execute(),
            )
            .unwrap();
            assert_eq!(titles(&next(&mut todos)), ["Alpha two"]);
            block_on(db.delete::<Todo>().execute()).unwrap();
            assert!(next(&mut todos).is_empty());
            let mut single = db.select::<Todo>().watch_optional();
            assert_eq!(next(&mut single), None);
            let mut count = db.select::<Todo>().watch_count();
            assert_eq!(next(&mut count), 0);
            block_on(db.insert(todo("Beta one", "x", None))).unwrap();
            assert_eq!(next(&mut single).unwrap().title, "Beta one");
            assert_eq!(next(&mut count), 1);
        });
    }
}

// A rolled-back transaction, a rolled-back savepoint, a failed unit of work
// and a transaction SQLite rolled back on its own change nothing, so they
// must wake nobody (drift notifies even after a rollback).
#[test]
fn a_rollback_of_any_kind_yields_nothing() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            let mut todos = db.select::<Todo>().watch();
            let mut updates = db.table_updates(UpdateFilter::all());
            assert!(next(&mut todos).is_empty());
            block_on(async {
                let tx = db.begin().await.unwrap();
                tx.insert(todo("Roll 01", "x", None)).await.unwrap();
                tx.rollback().await.unwrap();
            });
            assert_quiet(&mut todos, "a rolled-back transaction");
            block_on(async {
                let mut tx = db.begin().await.unwrap();
                let savepoint = tx.begin().await.unwrap();
                savepoint.insert(todo("Roll 02", "x", None)).await.unwrap();
                savepoint.rollback().await.unwrap();
                tx.commit().await.unwrap();
            });
            assert_quiet(&mut todos, "a rolled-back savepoint");
            let failed = block_on(db.write(|conn| {
                conn.insert(todo("Roll 03", "x", None)).execute()?;
                Err::<(), _>(Error::invalid_argument("changed my mind"))
            }));
            assert!(failed.is_err());
            assert_quiet(&mut todos, "a failed unit of work");
            block_on(
                db.custom_statement("INSERT INTO categories (description) VALUES ('Dup')", []),
            )
            .unwrap();
            block_on(async {
                let tx = db.begin().await.unwrap();
                tx.insert(todo("Roll 04", "x", None)).await.unwrap();
                let conflict = tx
                    .custom_statement(
                        "INSERT OR ROLLBACK INTO categories (description) VALUES ('Dup')",
                        [],
                    )
                    .await;
                assert!(conflict.is_err());
                assert!(tx.commit().await.is_err(), "SQLite rolled it back");
            });
            assert_quiet(&mut todos, "a transaction SQLite rolled back");
            let commits: Vec<TableUpdates> = std::iter::from_fn(|| match poll_once(&mut updates) {
                Poll::Ready(Some(update)) => Some(update),
                _ => None,
            })
            .collect();
            assert_eq!(
                commits.len(),
                1,
                "only the category insert committed: {commits:?}"
            );
            assert_eq!(
                commits[0].updates,
                [TableUpdate {
                    table: "categories".into(),
                    kind: UpdateKind::Insert
                }]
            );
        });
    }
}

#[test]
fn trigger_and_cascade_writes_yield() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            block_on(db.custom_statement("CREATE TABLE log (what TEXT)", [])).unwrap();
            block_on(db.custom_statement(
                "CREATE TRIGGER log_categories AFTER INSERT ON categories \
                 BEGIN INSERT INTO log VALUES (new.description); END",
                [],
            ))
            .unwrap();
            let mut log = db.watch_custom_select("SELECT count(*) FROM log", []);
            assert_eq!(count_of(&next(&mut log)), 0);
            let home = block_on(db.custom_select(
                "INSERT INTO categories (description) VALUES ('Home') RETURNING id",
                [],
            ))
            .unwrap()[0]
                .get::<i64>(0)
                .unwrap();
            assert_eq!(
                count_of(&next(&mut log)),
                1,
                "{backend:?}: the trigger's insert"
            );
            block_on(db.insert(todo("Cascaded", "x", Some(home)))).unwrap();
            let mut todos = db.select::<Todo>().watch_count();
            assert_eq!(next(&mut todos), 1);
            block_on(db.custom_statement("DELETE FROM categories WHERE id = ?", args![home]))
                .unwrap();
            assert_eq!(next(&mut todos), 0, "{backend:?}: the cascade's delete");
        });
    }
}

// `update_hook` misses all three; footprints from the authorizer do not.
#[test]
fn without_rowid_delete_all_and_replace_conflicts_yield() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            block_on(db.custom_statement(
                "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID",
                [],
            ))
            .unwrap();
            let mut kv = db.watch_custom_select("SELECT k, v FROM kv ORDER BY k", []);
            assert!(next(&mut kv).is_empty());
            block_on(db.custom_statement("INSERT INTO kv VALUES ('a', '1')", [])).unwrap();
            assert_eq!(next(&mut kv).len(), 1, "{backend:?}: WITHOUT ROWID insert");
            block_on(db.insert(todo("Truncated", "x", None))).unwrap();
            let mut todos = db.select::<Todo>().watch_count();
            assert_eq!(next(&mut todos), 1);
            block_on(db.custom_statement("DELETE FROM todos", [])).unwrap();
            assert_eq!(next(&mut todos), 0, "{backend:?}: DELETE without WHERE");
            block_on(db.custom_statement(
                "CREATE TABLE codes (id INTEGER PRIMARY KEY, code TEXT UNIQUE ON CONFLICT REPLACE)",
                [],
            ))
            .unwrap();
            block_on(db.custom_statement("INSERT INTO codes VALUES (1, 'a'), (2, 'b')", []))
                .unwrap();
            // Reads only `id`; the update sets only `code`, yet deletes row 1.
            let mut ids = db.watch_custom_select("SELECT id FROM codes ORDER BY id", []);
            assert_eq!(next(&mut ids).len(), 2);
            block_on(db.custom_statement("UPDATE codes SET code = 'a' WHERE id = 2", [])).unwrap();
            let left = next(&mut ids);
            assert_eq!(left.len(), 1, "{backend:?}: the REPLACE conflict's delete");
            assert_eq!(left[0].get::<i64>(0).unwrap(), 2);
        });
    }
}

#[test]
fn raw_writes_wake_builder_watchers_and_builder_writes_wake_raw_ones() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            let mut built = db.select::<Todo>().watch();
            let mut raw = db.watch_custom_select("SELECT title FROM todos", []);
            assert!(next(&mut built).is_empty());
            assert!(next(&mut raw).is_empty());
            block_on(db.custom_statement(
                "INSERT INTO todos (title, body) VALUES ('Raw write', 'x')",
                [],
            ))
            .unwrap();
            assert_eq!(titles(&next(&mut built)), ["Raw write"]);
            assert_eq!(next(&mut raw).len(), 1);
            block_on(db.insert(todo("Built one", "x", None))).unwrap();
            assert_eq!(next(&mut raw).len(), 2);
            assert_eq!(next(&mut built).len(), 2);
        });
    }
}

#[test]
fn a_write_to_another_table_or_column_reruns_nothing() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            let mut categories = db.watch_custom_select("SELECT description FROM categories", []);
            let mut titles = db.watch_custom_select("SELECT title FROM todos", []);
            assert!(next(&mut categories).is_empty());
            assert!(next(&mut titles).is_empty());
            block_on(db.insert(todo("Elsewhere", "x", None))).unwrap();
            assert_quiet(&mut categories, "an insert into todos");
            assert_eq!(next(&mut titles).len(), 1);
            block_on(db.custom_statement("UPDATE todos SET body = 'y'", [])).unwrap();
            assert_quiet(&mut titles, "an update of a column it does not read");
            block_on(db.custom_statement("UPDATE todos SET title = 'Retitled'", [])).unwrap();
            assert_eq!(next(&mut titles)[0].get::<String>(0).unwrap(), "Retitled");
        });
    }
}

#[test]
fn other_clients_writes_wake_watchers() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(Server::open(dir.path().join("todos.db"))).unwrap();
        let watcher = block_on(server.connect::<TodoDb>()).unwrap();
        let writer = block_on(server.connect::<TodoDb>()).unwrap();
        let mut todos = watcher.select::<Todo>().watch();
        assert!(next(&mut todos).is_empty());
        let thread = std::thread::spawn(move || {
            block_on(writer.insert(todo("From afar", "x", None))).unwrap();
        });
        assert_eq!(titles(&next(&mut todos)), ["From afar"]);
        thread.join().unwrap();
    });
}

// A burst of commits while nobody polls, or one transaction of 10,000 rows,
// costs one re-run, and the subscriber gets the latest result.
#[test]
fn a_burst_of_commits_costs_one_rerun_and_yields_the_latest() {
    for backend in BACKENDS {
        within(120, move || {
            let (_dir, db) = block_on(open(backend));
            let mut count = db.select::<Todo>().watch_count();
            assert_eq!(next(&mut count), 0);
            assert_eq!(count.runs(), 1);
            for n in 0..50 {
                block_on(db.insert(todo(&format!("Burst {n:03}"), "x", None))).unwrap();
            }
            assert_eq!(
                next(&mut count),
                50,
                "{backend:?}: the latest, not a backlog"
            );
            assert_eq!(count.runs(), 2, "{backend:?}: one re-run for 50 commits");
            block_on(db.write(|conn| {
                conn.insert_all((0..10_000).map(|n| todo(&format!("Bulk {n:05}"), "x", None)))?;
                Ok(())
            }))
            .unwrap();
            assert_eq!(next(&mut count), 10_050);
            assert_eq!(count.runs(), 3, "{backend:?}: one re-run for 10,000 rows");
            assert_quiet(&mut count, "after the bulk insert");
        });
    }
}

#[test]
fn distinct_skips_results_equal_to_the_last() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            let mut count = db.select::<Todo>().watch_count().distinct();
            assert_eq!(next(&mut count), 0);
            block_on(db.insert(todo("Distinct", "x", None))).unwrap();
            assert_eq!(next(&mut count), 1);
            block_on(db.custom_statement("UPDATE todos SET body = 'y'", [])).unwrap();
            block_on(db.insert(todo("Distinct 2", "x", None))).unwrap();
            assert_eq!(
                next(&mut count),
                2,
                "{backend:?}: the unchanged count was skipped"
            );
        });
    }
}

#[test]
fn identical_queries_share_one_run() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            let mut watches: Vec<_> = (0..3).map(|_| db.select::<Todo>().watch()).collect();
            for watch in &mut watches {
                assert!(next(watch).is_empty());
            }
            assert_eq!(
                watches[0].runs(),
                1,
                "{backend:?}: three streams, one first run"
            );
            block_on(db.insert(todo("Shared one", "x", None))).unwrap();
            for watch in &mut watches {
                assert_eq!(titles(&next(watch)), ["Shared one"]);
            }
            assert_eq!(
                watches[2].runs(),
                2,
                "{backend:?}: one re-run for three streams"
            );
            let mut other = db
                .select::<Todo>()
                .filter(Todo::TITLE.eq("Shared one"))
                .watch();
            assert_eq!(next(&mut other).len(), 1);
            assert_eq!(other.runs(), 1, "different arguments, different query");
        });
    }
}

#[test]
fn a_stream_dropped_while_its_query_runs_leaves_the_others_working() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            for round in 0..20 {
                let mut dropped = db.select::<Todo>().watch();
                let _ = poll_once(&mut dropped);
                let mut kept = db.select::<Todo>().watch();
                drop(dropped);
                assert_eq!(next(&mut kept).len(), round);
                block_on(db.insert(todo(&format!("Round {round:03}"), "x", None))).unwrap();
                assert_eq!(next(&mut kept).len(), round + 1);
            }
        });
    }
}

#[test]
fn a_thousand_watchers_of_another_table_stay_quiet() {
    for backend in BACKENDS {
        within(120, move || {
            let (_dir, db) = block_on(open(backend));
            let mut watchers: Vec<_> = (0..1000)
                .map(|n| {
                    db.watch_custom_select(
                        "SELECT description FROM categories WHERE id = ?",
                        args![n as i64],
                    )
                })
                .collect();
            for watcher in &mut watchers {
                assert!(next(watcher).is_empty());
            }
            block_on(db.insert(todo("Elsewhere", "x", None))).unwrap();
            for watcher in &mut watchers {
                assert_quiet(watcher, "an insert into another table");
            }
            block_on(db.custom_statement(
                "INSERT INTO categories (id, description) VALUES (7, 'Seven')",
                [],
            ))
            .unwrap();
            assert_eq!(next(&mut watchers[7]).len(), 1);
        });
    }
}

// Random transactions move random numbers of rows between two tables (and
// some roll back half-way): a watched read unit must never see a total
// other than the constant one, whichever connection runs it, and must end
// at the model's final counts. `DRIFTWOOD_MODEL_SEED` replays a run.
#[test]
fn a_watched_read_unit_never_sees_half_a_transaction() {
    for backend in BACKENDS {
        let seed = seed();
        within(120, move || {
            let (_dir, db) = block_on(open(backend));
            block_on(db.custom_statement("CREATE TABLE left_side (n INTEGER)", [])).unwrap();
            block_on(db.custom_statement("CREATE TABLE right_side (n INTEGER)", [])).unwrap();
            const TOTAL: i64 = 100;
            const COMMITS: usize = 2000;
            block_on(db.custom_statement(
                "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 100) \
                 INSERT INTO left_side SELECT n FROM k",
                [],
            ))
            .unwrap();
            let mut pairs = db.watch_read(|conn| {
                let left = conn.custom_select("SELECT count(*) FROM left_side", [])?;
                let right = conn.custom_select("SELECT count(*) FROM right_side", [])?;
                Ok((left[0].get::<i64>(0)?, right[0].get::<i64>(0)?))
            });
            let writer = {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng(seed);
                    let mut left = TOTAL;
                    for _ in 0..COMMITS {
                        let leftwards = rng.below(2) == 0;
                        let available = if leftwards { TOTAL - left } else { left };
                        let moved = (rng.below(5) as i64 + 1).min(available);
                        if moved == 0 {
                            continue;
                        }
                        let (from, to) = match leftwards {
                            true => ("right_side", "left_side"),
                            false => ("left_side", "right_side"),
                        };
                        let fails = rng.below(10) == 0;
                        let outcome = block_on(db.write(move |conn| {
                            conn.custom_statement(
                                format!("DELETE FROM {from} WHERE rowid IN (SELECT rowid FROM {from} LIMIT ?)"),
                                args![moved],
                            )?;
                            if fails {
                                return Err(Error::invalid_argument("rolled back half-way"));
                            }
                            conn.custom_statement(
                                format!("WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < ?) INSERT INTO {to} SELECT n FROM k"),
                                args![moved],
                            )?;
                            Ok(())
                        }));
                        assert_eq!(outcome.is_err(), fails);
                        if !fails {
                            left += if leftwards { moved } else { -moved };
                        }
                    }
                    left
                })
            };
            let mut last = (TOTAL, 0);
            let mut yielded = 0;
            while !writer.is_finished() {
                if let Some(pair) = next_within(&mut pairs, Duration::from_millis(200)) {
                    let (left, right) = pair.unwrap();
                    assert_eq!(
                        left + right,
                        TOTAL,
                        "{backend:?} seed {seed}: half a transaction"
                    );
                    last = (left, right);
                    yielded += 1;
                }
            }
            let left = writer.join().unwrap();
            while last.0 != left {
                let (l, r) = next_within(&mut pairs, Duration::from_secs(10))
                    .unwrap_or_else(|| panic!("{backend:?} seed {seed}: stuck at {last:?}"))
                    .unwrap();
                assert_eq!(l + r, TOTAL, "{backend:?} seed {seed}: half a transaction");
                last = (l, r);
                yielded += 1;
            }
            assert!(yielded > 1, "{backend:?}: the watch followed the commits");
        });
    }
}

#[test]
fn a_schema_change_reruns_the_query_and_says_what_broke() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            block_on(db.custom_statement("CREATE TABLE notes (body TEXT)", [])).unwrap();
            block_on(db.custom_statement("INSERT INTO notes VALUES ('one')", [])).unwrap();
            let mut notes = db.watch_custom_select("SELECT * FROM notes", []);
            assert_eq!(next(&mut notes)[0].columns().len(), 1);
            block_on(db.custom_statement("ALTER TABLE notes ADD COLUMN extra TEXT", [])).unwrap();
            assert_eq!(
                next(&mut notes)[0].columns().len(),
                2,
                "{backend:?}: the new column shows"
            );
            block_on(db.custom_statement("DROP TABLE notes", [])).unwrap();
            let error = block_on(notes.next()).unwrap().unwrap_err();
            assert_eq!(
                error.to_string(),
                "sql error: no such table: notes (statement: SELECT * FROM notes)"
            );
            block_on(db.custom_statement("CREATE TABLE notes (body TEXT)", [])).unwrap();
            assert!(next(&mut notes).is_empty(), "{backend:?}: watching went on");
        });
    }
}

#[test]
fn closing_ends_every_stream_with_closed() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(Server::open(dir.path().join("todos.db"))).unwrap();
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        let mut todos = db.select::<Todo>().watch();
        let mut count = db.select::<Todo>().watch_count();
        let mut updates = db.table_updates(UpdateFilter::all());
        assert!(next(&mut todos).is_empty());
        server.shutdown_all();
        assert_eq!(block_on(todos.next()), Some(Err(Error::Closed)));
        assert_eq!(block_on(todos.next()), None);
        assert_eq!(block_on(count.next()), Some(Err(Error::Closed)));
        assert_eq!(block_on(updates.next()), None);
    });
    // Closing one client of a shared server ends its streams, not others'.
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let server = block_on(Server::open(dir.path().join("todos.db"))).unwrap();
        let closing = block_on(server.connect::<TodoDb>()).unwrap();
        let staying = block_on(server.connect::<TodoDb>()).unwrap();
        let mut closing_todos = closing.select::<Todo>().watch_count();
        let mut staying_todos = staying.select::<Todo>().watch_count();
        assert_eq!(next(&mut closing_todos), 0);
        assert_eq!(next(&mut staying_todos), 0);
        let waiting = std::thread::spawn(move || block_on(closing_todos.next()));
        std::thread::sleep(Duration::from_millis(50));
        let mut closing_updates = closing.table_updates(UpdateFilter::all());
        block_on(closing.close()).unwrap();
        assert_eq!(waiting.join().unwrap(), Some(Err(Error::Closed)));
        assert_eq!(
            block_on(closing_updates.next()),
            None,
            "its listener ends too"
        );
        block_on(staying.insert(todo("Stayed", "x", None))).unwrap();
        assert_eq!(next(&mut staying_todos), 1);
    });
    within(60, || {
        let (_dir, db) = block_on(open(Backend::InThread));
        let mut todos = db.select::<Todo>().watch();
        assert!(next(&mut todos).is_empty());
        block_on(db.close()).unwrap();
        assert_eq!(block_on(todos.next()), Some(Err(Error::Closed)));
        assert_eq!(block_on(todos.next()), None);
    });
}

// A writer commits while streams start: every stream must end up at the
// final count, so no commit between its start and its first run is lost.
#[test]
fn a_change_committed_while_a_stream_starts_is_never_missed() {
    for backend in BACKENDS {
        within(120, move || {
            let (_dir, db) = block_on(open(backend));
            const INSERTS: usize = 200;
            let writer = {
                let db = db.clone();
                std::thread::spawn(move || {
                    for n in 0..INSERTS {
                        block_on(db.insert(todo(&format!("Race {n:04}"), "x", None))).unwrap();
                    }
                })
            };
            let mut streams = Vec::new();
            while !writer.is_finished() {
                let mut stream = db.select::<Todo>().watch_count();
                let first = next_within(&mut stream, Duration::from_millis(50));
                let first = first.map(|value| value.unwrap());
                streams.push((stream, first));
            }
            writer.join().unwrap();
            assert!(!streams.is_empty());
            for (n, (stream, mut value)) in streams.into_iter().enumerate() {
                let mut stream = stream;
                while value != Some(INSERTS as i64) {
                    let next = next_within(&mut stream, Duration::from_secs(10));
                    assert!(
                        next.is_some(),
                        "{backend:?}: stream {n} missed a change: it stays at {value:?}"
                    );
                    value = next.map(|value| value.unwrap());
                }
            }
        });
    }
}

#[test]
fn table_updates_give_one_item_per_commit_with_what_changed() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            let mut all = db.table_updates(UpdateFilter::all());
            let mut deletes =
                db.table_updates(UpdateFilter::all().on("todos").of_kind(UpdateKind::Delete));
            block_on(db.write(|conn| {
                conn.insert(todo("Updated", "x", None)).execute()?;
                conn.custom_statement("UPDATE todos SET done = 1", [])?;
                conn.custom_statement("DELETE FROM todos", [])?;
                Ok(())
            }))
            .unwrap();
            block_on(db.custom_statement("INSERT INTO categories (description) VALUES ('C')", []))
                .unwrap();
            let first = next_within(&mut all, Duration::from_secs(5)).unwrap();
            let kinds: Vec<UpdateKind> = first.updates.iter().map(|u| u.kind).collect();
            assert_eq!(
                kinds,
                [UpdateKind::Insert, UpdateKind::Update, UpdateKind::Delete]
            );
            assert!(first.updates.iter().all(|u| u.table == "todos"));
            let second = next_within(&mut all, Duration::from_secs(5)).unwrap();
            assert_eq!(second.seq, first.seq + 1);
            assert_eq!(second.updates[0].table, "categories");
            let only = next_within(&mut deletes, Duration::from_secs(5)).unwrap();
            assert_eq!(only.seq, first.seq, "{backend:?}");
            assert_eq!(only.updates.len(), 1);
            assert!(
                poll_once(&mut deletes).is_pending(),
                "the category insert is filtered out"
            );
        });
    }
}

#[test]
fn notify_updates_reruns_the_watchers_of_those_tables() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            let mut todos = db.select::<Todo>().watch_count();
            assert_eq!(next(&mut todos), 0);
            block_on(db.notify_updates(&["categories"])).unwrap();
            assert_quiet(&mut todos, "a notification about another table");
            block_on(db.notify_updates(&["TODOS"])).unwrap();
            assert_eq!(next(&mut todos), 0);
            assert_eq!(todos.runs(), 2, "{backend:?}: the notification re-ran it");
        });
    }
}

#[test]
fn a_delayed_database_can_be_watched_before_it_connects() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("todos.db");
        let db: Db<TodoDb> = Db::delayed(Db::open_in_background(path));
        let mut todos = db.select::<Todo>().watch_count();
        assert_eq!(next(&mut todos), 0);
        block_on(db.insert(todo("Delayed", "x", None))).unwrap();
        assert_eq!(next(&mut todos), 1);
    });
}

/// Set in the environment of the second process of
/// `a_write_by_another_process_is_seen_when_detection_is_on`: the file it
/// writes to.
const OTHER_PROCESS_WRITES: &str = "DRIFTWOOD_TEST_OTHER_PROCESS_WRITES";

// A second process (this test binary again) commits to the file with a
// plain rusqlite connection: a server that detects external writes re-runs
// its watchers (drift and GRDB never notice such writes).
#[test]
fn a_write_by_another_process_is_seen_when_detection_is_on() {
    if let Ok(path) = std::env::var(OTHER_PROCESS_WRITES) {
        let conn = rusqlite::Connection::open(path).expect("open from the other process");
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let inserted = conn
            .execute(
                "INSERT INTO todos (title, body) VALUES ('External', 'x')",
                [],
            )
            .expect("write from the other process");
        assert_eq!(inserted, 1);
        return;
    }
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("todos.db");
        let server = block_on(
            Server::builder()
                .detect_external_writes(Duration::from_millis(20))
                .open(&path, OpenOptions::default()),
        )
        .unwrap();
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        let mut todos = db.select::<Todo>().watch();
        let mut updates = db.table_updates(UpdateFilter::all());
        assert!(next(&mut todos).is_empty());
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_write_by_another_process_is_seen_when_detection_is_on",
                "--test-threads=1",
            ])
            .env(OTHER_PROCESS_WRITES, &path)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run the other process");
        assert!(status.success(), "the other process failed: {status}");
        assert_eq!(titles(&next(&mut todos)), ["External"]);
        let unknown = next_within(&mut updates, Duration::from_secs(10)).unwrap();
        assert!(
            unknown.updates.is_empty(),
            "what another process changed is unknown"
        );
    });
}

// The authorizer is what refuses raw transaction control and what tells
// watchers what statements touch: replacing it through `raw_mut()` must not
// switch either off, and a user's own authorizer is chained, not lost.
#[test]
fn driftwoods_authorizer_survives_raw_access_and_chains_the_users() {
    use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("todos.db");
        let mut conn = driftwood::sqlite::Connection::open(&path, &OpenOptions::default()).unwrap();
        let none: Option<fn(AuthContext<'_>) -> Authorization> = None;
        conn.raw_mut().authorizer(none).unwrap();
        conn.set_authorizer(Some(|context: AuthContext<'_>| match context.action {
            AuthAction::Read {
                table_name: "secrets",
                ..
            } => Authorization::Deny,
            _ => Authorization::Allow,
        }));
        let db = Db::<TodoDb>::from_connection(conn).unwrap();
        block_on(db.custom_statement("CREATE TABLE secrets (s TEXT)", [])).unwrap();
        let denied = block_on(db.custom_select("SELECT s FROM secrets", [])).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "sql error: access to secrets.s is prohibited (statement: SELECT s FROM secrets)"
        );
        let control = block_on(db.custom_statement("BEGIN", [])).unwrap_err();
        assert!(
            matches!(control, Error::TransactionControl { .. }),
            "{control}"
        );
        let mut todos = db.select::<Todo>().watch_count();
        assert_eq!(next(&mut todos), 0);
        block_on(db.insert(todo("Still seen", "x", None))).unwrap();
        assert_eq!(next(&mut todos), 1);
    });
}

// Watchers filtered on the rowid (an INTEGER primary key) re-run only for
// changes of their rows — unless a statement's rowids cannot be trusted
// (it may change a rowid, or delete rows through REPLACE) or were not
// reported (`DELETE FROM t`), which re-run them all.
#[test]
fn a_watcher_of_some_rows_reruns_only_for_changes_of_those_rows() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            for n in 1..=4 {
                block_on(db.insert(todo(&format!("Row {n:03}"), "x", None))).unwrap();
            }
            let mut one = db.select::<Todo>().filter(Todo::ID.eq(1)).watch_optional();
            let mut two = db
                .select::<Todo>()
                .filter(Todo::ID.eq(2).and(Todo::DONE.eq(false)))
                .watch_optional();
            let mut three_or_four = db
                .select::<Todo>()
                .filter(Todo::ID.eq(3).or(Todo::ID.is_in([4])))
                .watch_count();
            assert!(next(&mut one).is_some());
            assert!(next(&mut two).is_some());
            assert_eq!(next(&mut three_or_four), 2);
            block_on(db.custom_statement("UPDATE todos SET body = 'y' WHERE id = 2", [])).unwrap();
            assert_quiet(&mut one, "an update of row 2");
            assert_quiet(&mut three_or_four, "an update of row 2");
            assert_eq!(next(&mut two).unwrap().content, "y", "{backend:?}");
            block_on(db.insert(todo("Row 005", "x", None))).unwrap();
            assert_quiet(&mut one, "an insert of row 5");
            assert_quiet(&mut two, "an insert of row 5");
            block_on(db.custom_statement("DELETE FROM todos WHERE id = 4", [])).unwrap();
            assert_quiet(&mut one, "a delete of row 4");
            assert_eq!(next(&mut three_or_four), 1);
            block_on(db.custom_statement("UPDATE todos SET id = 10 WHERE id = 1", [])).unwrap();
            assert_eq!(
                next(&mut one),
                None,
                "{backend:?}: a rowid change reaches the old row"
            );
            block_on(db.custom_statement("DELETE FROM todos", [])).unwrap();
            assert_eq!(next(&mut two), None, "{backend:?}: DELETE without WHERE");
            assert_eq!(next(&mut three_or_four), 0);
        });
    }
}

/// A raw statement, run and unwrapped.
fn exec(db: &Db<TodoDb>, sql: &str) {
    block_on(db.custom_statement(sql, [])).unwrap();
}

fn count_now(db: &Db<TodoDb>, sql: &str) -> i64 {
    count_of(&block_on(db.custom_select(sql, [])).unwrap())
}

// Scenario (found by a probe): in-thread, a watched statement that writes
// ran on the writer, committed, marked its own watch, and ran again —
// forever, inside one poll, inserting tens of thousands of rows.
#[test]
fn a_watch_of_a_writing_statement_fails_instead_of_writing_forever() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            let mut insert = db.watch_custom_select(
                "INSERT INTO categories (description) VALUES ('Loop') RETURNING id",
                [],
            );
            let error = block_on(insert.next()).unwrap().unwrap_err();
            assert_eq!(
                error.to_string(),
                "invalid argument: a watched query must only read; this one writes \
                 (statement: INSERT INTO categories (description) VALUES ('Loop') RETURNING id)",
                "{backend:?}"
            );
            assert_eq!(count_now(&db, "SELECT count(*) FROM categories"), 0);
            assert_quiet(&mut insert, "after the failed write");
        });
    }
}

// Scenario (found by a probe): footprints remembered per SQL text were
// forgotten only after a schema change made while someone watched, so a
// trigger (or a redefined view) created while nobody watched stayed
// invisible to every later watcher.
#[test]
fn schema_changed_while_nobody_watched_is_seen_by_later_watchers() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            exec(&db, "CREATE TABLE t (x INTEGER)");
            exec(&db, "CREATE TABLE log (x INTEGER)");
            exec(&db, "CREATE TABLE other (x INTEGER)");
            exec(&db, "CREATE VIEW v AS SELECT x FROM t");
            let mut first = db.watch_custom_select("SELECT count(*) FROM v", []);
            assert_eq!(count_of(&next(&mut first)), 0);
            exec(&db, "INSERT INTO t VALUES (1)");
            assert_eq!(count_of(&next(&mut first)), 1);
            drop(first);
            exec(
                &db,
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.x); END",
            );
            exec(&db, "DROP VIEW v");
            exec(&db, "CREATE VIEW v AS SELECT x FROM other");
            let mut log = db.watch_custom_select("SELECT count(*) FROM log", []);
            let mut view = db.watch_custom_select("SELECT count(*) FROM v", []);
            assert_eq!(count_of(&next(&mut log)), 0);
            assert_eq!(count_of(&next(&mut view)), 0);
            exec(&db, "INSERT INTO t VALUES (2)");
            assert_eq!(
                count_of(&next(&mut log)),
                1,
                "{backend:?}: the trigger's write"
            );
            exec(&db, "INSERT INTO other VALUES (3)");
            assert_eq!(
                count_of(&next(&mut view)),
                1,
                "{backend:?}: the view's new table"
            );
        });
    }
}

// Scenario (found by a probe): an update of a column that generated
// columns (or an FTS5 index) derive from did not overlap the columns a
// watcher read, so the watcher kept the old value.
#[test]
fn updates_of_columns_others_derive_from_rerun_their_watchers() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            exec(
                &db,
                "CREATE TABLE g (x INTEGER, v INTEGER AS (x * 2) VIRTUAL, s INTEGER AS (x * 3) STORED)",
            );
            exec(&db, "INSERT INTO g (x) VALUES (1)");
            exec(&db, "CREATE VIRTUAL TABLE docs USING fts5(body)");
            exec(&db, "INSERT INTO docs VALUES ('hello world')");
            let mut virtual_column = db.watch_custom_select("SELECT v FROM g", []);
            let mut stored_column = db.watch_custom_select("SELECT s FROM g", []);
            let mut hits =
                db.watch_custom_select("SELECT count(*) FROM docs WHERE docs MATCH 'hello'", []);
            assert_eq!(count_of(&next(&mut virtual_column)), 2);
            assert_eq!(count_of(&next(&mut stored_column)), 3);
            assert_eq!(count_of(&next(&mut hits)), 1);
            exec(&db, "UPDATE g SET x = 10");
            exec(&db, "UPDATE docs SET body = 'bye' WHERE rowid = 1");
            assert_eq!(count_of(&next(&mut virtual_column)), 20, "{backend:?}");
            assert_eq!(count_of(&next(&mut stored_column)), 30, "{backend:?}");
            assert_eq!(count_of(&next(&mut hits)), 0, "{backend:?}: FTS5");
        });
    }
}

// Scenario (found by a probe): rowids that changed by `SET rowid = …`, a
// notification, or a TEMP trigger's `INSERT OR REPLACE` never reached
// watchers of rows by primary key (and `SET rowid` not even watchers of
// every row): the authorizer names the column `ROWID`, notifications had
// "no rows", and only the main schema was searched for REPLACE.
#[test]
fn rowid_changes_notifications_and_temp_replaces_reach_watchers_of_rows() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            exec(
                &db,
                "INSERT INTO categories (id, description) VALUES (1, 'one'), (5, 'five')",
            );
            let mut all = db.select::<Category>().watch();
            let mut one = db
                .select::<Category>()
                .filter(Category::ID.eq(1))
                .watch_optional();
            let mut five = db
                .select::<Category>()
                .filter(Category::ID.eq(5))
                .watch_optional();
            assert_eq!(next(&mut all).len(), 2);
            assert!(next(&mut one).is_some());
            assert!(next(&mut five).is_some());
            exec(&db, "UPDATE categories SET rowid = 3 WHERE id = 1");
            assert_eq!(next(&mut all)[0].id, 3, "{backend:?}: SET rowid, every row");
            assert_eq!(next(&mut one), None, "{backend:?}: SET rowid, the old row");
            // Its rowids untrusted, the update re-ran every watcher of rows.
            assert!(next(&mut five).is_some());
            let raw = block_on(db.write(|conn| {
                let raw = conn.connection().raw();
                raw.execute(
                    "UPDATE categories SET description = 'cinq' WHERE id = 5",
                    [],
                )
                .map_err(|e| Error::invalid_argument(e.to_string()))
            }));
            assert_eq!(raw, Ok(1));
            assert_quiet(&mut five, "a write driftwood could not see");
            block_on(db.notify_updates(&["categories"])).unwrap();
            assert_eq!(
                next(&mut five).unwrap().description,
                "cinq",
                "{backend:?}: notified"
            );
            exec(&db, "CREATE TABLE log (x TEXT)");
            exec(
                &db,
                "CREATE TEMP TRIGGER tr AFTER INSERT ON log BEGIN INSERT OR REPLACE INTO categories (id, description) VALUES (9, new.x); END",
            );
            exec(&db, "INSERT INTO log VALUES ('cinq')");
            assert_eq!(
                next(&mut five),
                None,
                "{backend:?}: a TEMP trigger's REPLACE"
            );
        });
    }
}

// Scenario (found by a probe): a run that failed with `Busy` was kept as
// the shared result, so a stream made after the transaction ended got the
// stale error, and both stayed silent until a commit.
#[test]
fn a_busy_run_is_retried_not_served_to_later_streams() {
    within(60, || {
        let options = OpenOptions::default().busy_timeout(Duration::from_millis(300));
        let (_dir, db) = block_on(open_with(Backend::InThread, options));
        let tx = block_on(db.begin()).unwrap();
        block_on(tx.insert(todo("Pending", "x", None))).unwrap();
        let mut early = db.select::<Todo>().watch_count();
        assert!(matches!(
            block_on(early.next()),
            Some(Err(Error::Busy { .. }))
        ));
        block_on(tx.rollback()).unwrap();
        let mut later = db.select::<Todo>().watch_count();
        assert_eq!(next(&mut later), 0, "a fresh stream runs the query");
        assert_eq!(next(&mut early), 0, "the busy stream tried again");
    });
}

// Scenario (found by a probe): a watched read unit that failed (or
// panicked) before its first statement kept an empty read set, so no
// commit ever ran it again.
#[test]
fn a_read_unit_that_failed_before_reading_runs_again_after_a_change() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut count = db.watch_read(move |conn| {
                if !failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    panic!("transient");
                }
                conn.select::<Todo>().count()
            });
            assert!(matches!(
                block_on(count.next()),
                Some(Err(Error::Panic { .. }))
            ));
            block_on(db.insert(todo("After it", "x", None))).unwrap();
            assert_eq!(next(&mut count), 1, "{backend:?}");
        });
    }
}

// Scenario (found by a probe): a connection prepares with the schema it
// has in memory, so a reader computing a footprint after the writer
// redefined a view (or the writer after another connection added a
// trigger) recorded the old tables, and the watch missed changes.
#[test]
fn footprints_see_schema_changes_made_by_other_connections() {
    within(60, || {
        let (_dir, db) = block_on(open(Backend::Background));
        exec(&db, "CREATE TABLE a (x INTEGER)");
        exec(&db, "CREATE TABLE b (x INTEGER)");
        exec(&db, "CREATE VIEW v AS SELECT x FROM a");
        let mut before = db.watch_custom_select("SELECT count(*) FROM v", []);
        assert_eq!(count_of(&next(&mut before)), 0);
        drop(before);
        exec(&db, "DROP VIEW v");
        exec(&db, "CREATE VIEW v AS SELECT x FROM b");
        let mut view = db.watch_custom_select("SELECT count(*) FROM v", []);
        assert_eq!(count_of(&next(&mut view)), 0);
        exec(&db, "INSERT INTO b VALUES (1)");
        assert_eq!(count_of(&next(&mut view)), 1, "the reader saw the new view");
    });
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("todos.db");
        let server = block_on(
            Server::builder()
                .detect_external_writes(Duration::from_millis(20))
                .open(&path, OpenOptions::default()),
        )
        .unwrap();
        let db = block_on(server.connect::<TodoDb>()).unwrap();
        exec(&db, "CREATE TABLE log (x TEXT)");
        let mut log = db.watch_custom_select("SELECT count(*) FROM log", []);
        assert_eq!(count_of(&next(&mut log)), 0);
        block_on(db.insert(todo("Before it", "x", None))).unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch("CREATE TRIGGER tr AFTER INSERT ON todos BEGIN INSERT INTO log VALUES (new.title); END")
            .unwrap();
        drop(other);
        // The other connection's commit is noticed as "anything changed".
        assert_eq!(count_of(&next(&mut log)), 0);
        block_on(db.insert(todo("After it", "x", None))).unwrap();
        assert_eq!(
            count_of(&next(&mut log)),
            1,
            "the writer saw the other's trigger"
        );
    });
}

// Scenario (found by a probe): the writer noted that it holds private
// state (a TEMP table) only after answering the request that created it,
// so a query sent right after could still go to a reader: "no such table".
#[test]
fn a_query_right_after_creating_a_temp_table_finds_it() {
    within(60, || {
        let (_dir, db) = block_on(open(Backend::Background));
        for n in 0..50 {
            exec(&db, &format!("CREATE TEMP TABLE scratch_{n} (x INTEGER)"));
            let mut watch = db.watch_custom_select(format!("SELECT count(*) FROM scratch_{n}"), []);
            assert_eq!(count_of(&next(&mut watch)), 0, "round {n}");
            let rows = block_on(db.custom_select(format!("SELECT count(*) FROM scratch_{n}"), []));
            assert_eq!(count_of(&rows.unwrap()), 0, "round {n}");
        }
    });
}

/// What one step of the randomized test does to the rows.
#[derive(Debug, Clone, Copy)]
enum Step {
    Insert(i64),
    Rename(i64),
    Delete(i64),
}

/// The categories in the file, read by a connection of its own.
fn categories_on_disk(dir: &tempfile::TempDir) -> std::collections::BTreeMap<i64, String> {
    let conn = rusqlite::Connection::open(dir.path().join("todos.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, description FROM categories")
        .unwrap();
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap()
}

// Random inserts, renames and deletes of rows by primary key, alone or in
// transactions that commit or roll back, against watchers of each row, of
// all rows and of the count: after every step, exactly the watchers whose
// rows a committed change touched run again and show what the file holds;
// every other watcher stays quiet. `DRIFTWOOD_MODEL_SEED` replays a run.
#[test]
fn watchers_fire_exactly_for_committed_changes_of_their_rows() {
    const KEYS: i64 = 6;
    const STEPS: usize = 300;
    for backend in BACKENDS {
        let seed = seed();
        within(120, move || {
            let (dir, db) = block_on(open(backend));
            let mut rng = Rng(seed);
            let mut rows: Vec<_> = (1..=KEYS)
                .map(|id| {
                    db.select::<Category>()
                        .filter(Category::ID.eq(id))
                        .watch_optional()
                })
                .collect();
            let mut all = db.select::<Category>().order_by(Category::ID.asc()).watch();
            let mut count = db.select::<Category>().watch_count();
            for row in &mut rows {
                assert_eq!(next(row), None);
            }
            assert!(next(&mut all).is_empty());
            assert_eq!(next(&mut count), 0);
            for n in 0..STEPS {
                let truth = categories_on_disk(&dir);
                let step = |rng: &mut Rng| {
                    let id = rng.below(KEYS as u64) as i64 + 1;
                    match (truth.contains_key(&id), rng.below(2)) {
                        (false, _) => Step::Insert(id),
                        (true, 0) => Step::Rename(id),
                        (true, _) => Step::Delete(id),
                    }
                };
                let apply =
                    |on: &dyn Fn(String, Vec<SqlValue>) -> Result<()>, step: Step| match step {
                        Step::Insert(id) => on(
                            "INSERT INTO categories (id, description) VALUES (?, ?)".into(),
                            args![id, format!("d{id}-{n}")],
                        ),
                        Step::Rename(id) => on(
                            "UPDATE categories SET description = ? WHERE id = ?".into(),
                            args![format!("r{id}-{n}"), id],
                        ),
                        Step::Delete(id) => {
                            on("DELETE FROM categories WHERE id = ?".into(), args![id])
                        }
                    };
                let first = step(&mut rng);
                let (touched, committed) = match rng.below(3) {
                    0 => {
                        let run = |sql: String, args| {
                            block_on(db.custom_statement(sql, args)).map(|_| ())
                        };
                        apply(&run, first).unwrap();
                        (vec![first], true)
                    }
                    kind => {
                        let tx = block_on(db.begin()).unwrap();
                        let run = |sql: String, args| {
                            block_on(tx.custom_statement(sql, args)).map(|_| ())
                        };
                        apply(&run, first).unwrap();
                        let id = match first {
                            Step::Insert(id) | Step::Rename(id) | Step::Delete(id) => id,
                        };
                        let second = match first {
                            Step::Delete(_) => Step::Insert(id),
                            _ => Step::Rename(id),
                        };
                        apply(&run, second).unwrap();
                        let commit = kind == 1;
                        if commit {
                            block_on(tx.commit()).unwrap();
                        } else {
                            block_on(tx.rollback()).unwrap();
                        }
                        (vec![first, second], commit)
                    }
                };
                let truth = categories_on_disk(&dir);
                let context =
                    format!("{backend:?} seed {seed} step {n} {touched:?} committed {committed}");
                for (i, row) in rows.iter_mut().enumerate() {
                    let id = i as i64 + 1;
                    let hit = committed
                        && touched.iter().any(|s| matches!(s, Step::Insert(k) | Step::Rename(k) | Step::Delete(k) if *k == id));
                    if hit {
                        let seen = next(row).map(|c| c.description);
                        assert_eq!(seen.as_ref(), truth.get(&id), "{context}: row {id}");
                    } else {
                        assert_quiet(row, &format!("{context}: row {id}"));
                    }
                }
                if committed {
                    let seen: Vec<(i64, String)> = next(&mut all)
                        .into_iter()
                        .map(|c| (c.id, c.description))
                        .collect();
                    assert_eq!(
                        seen,
                        truth.clone().into_iter().collect::<Vec<_>>(),
                        "{context}: all"
                    );
                    assert_eq!(next(&mut count), truth.len() as i64, "{context}: count");
                } else {
                    assert_quiet(&mut all, &context);
                    assert_quiet(&mut count, &context);
                }
            }
        });
    }
}

/// A table whose struct takes `id` for the rowid, whatever the file says.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "items")]
pub struct Item {
    #[column(primary_key)]
    pub id: i64,
    pub name: String,
}

// Scenario (found by a probe): streams of one shared query polled from
// several threads at once shared one registered waker, so all but the
// last poller slept until an unrelated commit.
#[test]
fn streams_of_one_query_polled_from_many_threads_all_wake() {
    within(120, || {
        let (_dir, db) = block_on(open(Backend::Background));
        for round in 0..20 {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let db = db.clone();
                    std::thread::spawn(move || {
                        let mut count = db.select::<Todo>().watch_count();
                        next_within(&mut count, Duration::from_secs(10)).map(|value| value.unwrap())
                    })
                })
                .collect();
            for thread in threads {
                assert_eq!(thread.join().unwrap(), Some(round), "round {round}");
            }
            block_on(db.insert(todo(&format!("Round {round:03}"), "x", None))).unwrap();
        }
    });
}

// Scenario (found by a probe): only row and schema writes were refused in a
// watched statement; pragmas that set, ATTACH and VACUUM INTO ran — one
// switched the file out of WAL, one a reader's write protection off.
#[test]
fn a_watched_statement_that_changes_anything_is_refused() {
    for backend in BACKENDS {
        within(60, move || {
            let (dir, db) = block_on(open(backend));
            let attached = dir.path().join("attached.db");
            let vacuumed = dir.path().join("vacuumed.db");
            for sql in [
                "PRAGMA user_version = 7".to_owned(),
                "PRAGMA journal_mode = DELETE".to_owned(),
                "PRAGMA query_only = 0".to_owned(),
                format!("ATTACH '{}' AS other", attached.display()),
                format!("VACUUM INTO '{}'", vacuumed.display()),
            ] {
                let mut watch = db.watch_custom_select(sql.clone(), []);
                let error = block_on(watch.next()).unwrap().unwrap_err();
                assert!(
                    error
                        .to_string()
                        .starts_with("invalid argument: a watched query must only read"),
                    "{backend:?} {sql}: {error}"
                );
            }
            assert_eq!(count_now(&db, "PRAGMA user_version"), 1);
            let mode = block_on(db.custom_select("PRAGMA journal_mode", [])).unwrap();
            assert_eq!(mode[0].get::<String>(0).unwrap(), "wal");
            assert!(!attached.exists() && !vacuumed.exists(), "{backend:?}");
        });
    }
}

// Scenario (found by probes): a watcher of some rows by rowid missed
// changes of its rows when a trigger emptied the table (SQLite's truncate
// reports no rows), when custom SQL in the select read other rows, and
// when the file's primary key was not the rowid the struct assumed.
#[test]
fn watchers_of_rows_see_truncates_custom_sql_and_keys_that_are_not_rowids() {
    for backend in BACKENDS {
        within(60, move || {
            let (_dir, db) = block_on(open(backend));
            exec(
                &db,
                "CREATE TABLE items (id INT PRIMARY KEY, name TEXT NOT NULL)",
            );
            exec(&db, "INSERT INTO items VALUES (10, 'a'), (20, 'b')");
            let mut ten = db.select::<Item>().filter(Item::ID.eq(10)).watch_optional();
            assert_eq!(next(&mut ten).unwrap().name, "a");
            exec(&db, "UPDATE items SET name = 'z' WHERE id = 10");
            assert_eq!(
                next(&mut ten).unwrap().name,
                "z",
                "{backend:?}: id is not the rowid"
            );
            exec(
                &db,
                "INSERT INTO categories (id, description) VALUES (1, 'one'), (2, 'two')",
            );
            let mut two_exists = db
                .select::<Category>()
                .filter(Category::ID.eq(1).and(custom::<bool>(
                    "(SELECT count(*) FROM categories WHERE id = 2) > 0",
                    [],
                )))
                .watch_optional();
            assert!(next(&mut two_exists).is_some());
            exec(&db, "DELETE FROM categories WHERE id = 2");
            assert_eq!(
                next(&mut two_exists),
                None,
                "{backend:?}: custom SQL read row 2"
            );
            // No foreign key points at `items`, so SQLite may truncate it.
            exec(&db, "DROP TABLE items");
            exec(
                &db,
                "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            );
            exec(&db, "INSERT INTO items VALUES (1, 'a'), (2, 'b')");
            let mut first = db.select::<Item>().filter(Item::ID.eq(1)).watch_optional();
            assert!(next(&mut first).is_some());
            exec(&db, "CREATE TABLE other (x INTEGER)");
            exec(
                &db,
                "CREATE TRIGGER tr AFTER INSERT ON other BEGIN DELETE FROM items; INSERT INTO items VALUES (99, 'z'); END",
            );
            exec(&db, "INSERT INTO other VALUES (1)");
            assert_eq!(
                next(&mut first),
                None,
                "{backend:?}: a trigger's DELETE FROM"
            );
            // And back: the check of the file must not use a statement
            // prepared for the old table.
            exec(&db, "DROP TABLE items");
            exec(
                &db,
                "CREATE TABLE items (id INT PRIMARY KEY, name TEXT NOT NULL)",
            );
            exec(&db, "INSERT INTO items VALUES (1, 'a')");
            assert_eq!(next(&mut first).unwrap().name, "a");
            exec(&db, "UPDATE items SET name = 'b' WHERE id = 1");
            assert_eq!(
                next(&mut first).unwrap().name,
                "b",
                "{backend:?}: id is no longer the rowid"
            );
        });
    }
}
