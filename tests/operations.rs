//! Operations on a live database: an online backup taken during a stream
//! of writes holds a prefix of the committed transactions, a backup killed
//! half-way leaves the source untouched and no file under the target's
//! name, checkpoints shrink the WAL unless a reader holds it, and the
//! checks report what they find.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{block_on, within};
use driftwood::prelude::*;
use driftwood::sqlite::{CheckpointMode, JournalMode};

/// Rows of `sql` in the file at `path`, read by a plain connection.
fn column(path: &std::path::Path, sql: &str) -> Vec<i64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn a_backup_taken_during_writes_holds_a_prefix_of_whole_transactions() {
    within(120, || {
        let dir = tempfile::tempdir().unwrap();
        let db: Db = block_on(Db::open_in_background(dir.path().join("live.db"))).unwrap();
        block_on(db.custom_statement("CREATE TABLE t (tx INTEGER, n INTEGER, pad TEXT)", []))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut tx = 0;
                while !stop.load(Ordering::Relaxed) {
                    tx += 1;
                    block_on(db.write(move |conn| {
                        for n in 0..10 {
                            conn.custom_statement(
                                "INSERT INTO t VALUES (?1, ?2, randomblob(200))",
                                args![tx, n],
                            )?;
                        }
                        Ok(())
                    }))
                    .unwrap();
                }
                tx
            })
        };
        let mut last = 0;
        for round in 0..5 {
            std::thread::sleep(Duration::from_millis(40));
            let copy = dir.path().join(format!("copy{round}.db"));
            let last_step = Arc::new(std::sync::Mutex::new(None));
            let heard = last_step.clone();
            block_on(db.backup_to(&copy, move |p| *heard.lock().unwrap() = Some(p))).unwrap();
            let last_step = last_step.lock().unwrap().expect("progress was reported");
            assert_eq!(last_step.remaining, 0, "the last step copied everything");
            assert!(last_step.total > 0);
            let conn = rusqlite::Connection::open(&copy).unwrap();
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok");
            drop(conn);
            let sizes = column(&copy, "SELECT count(*) FROM t GROUP BY tx ORDER BY tx");
            assert!(
                sizes.iter().all(|&n| n == 10),
                "round {round}: a partial transaction: {sizes:?}"
            );
            let txs = column(&copy, "SELECT DISTINCT tx FROM t ORDER BY tx");
            assert!(
                txs.iter().enumerate().all(|(i, &tx)| tx == i as i64 + 1),
                "round {round}: not a prefix"
            );
            assert!(txs.len() >= last, "later backups hold at least as much");
            last = txs.len();
        }
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().unwrap();
        assert!(last > 0 && (last as i64) <= written, "{last} of {written}");
    });
}

#[test]
fn a_backup_killed_half_way_leaves_the_source_untouched_and_no_file_under_its_name() {
    if let Ok(path) = std::env::var("DRIFTWOOD_BACKUP_CHILD") {
        let db: Db = block_on(Db::open(&path)).unwrap();
        let target = format!("{path}.copy");
        block_on(db.backup_to(&target, |_| std::thread::sleep(Duration::from_millis(20)))).unwrap();
        return;
    }
    within(120, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.db");
        let db: Db = block_on(Db::open(&path)).unwrap();
        block_on(db.write(|conn| {
            conn.custom_statement("CREATE TABLE t (n INTEGER, pad BLOB)", [])?;
            conn.custom_statement(
                "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000) \
                 INSERT INTO t SELECT n, randomblob(500) FROM s",
                [],
            )?;
            Ok(())
        }))
        .unwrap();
        block_on(db.close()).unwrap();
        let before = column(&path, "SELECT sum(n) FROM t");
        let mut interrupted = 0;
        for round in 0..5 {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "a_backup_killed_half_way_leaves_the_source_untouched_and_no_file_under_its_name",
                    "--test-threads=1",
                ])
                .env("DRIFTWOOD_BACKUP_CHILD", &path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(60 + 40 * round));
            let _ = child.kill();
            let _ = child.wait();
            let copy = dir.path().join("big.db.copy");
            if copy.exists() {
                // The backup finished before the kill: it is whole.
                assert_eq!(column(&copy, "SELECT sum(n) FROM t"), before);
                std::fs::remove_file(&copy).unwrap();
            } else {
                interrupted += 1;
            }
            let conn = rusqlite::Connection::open(&path).unwrap();
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok", "round {round}");
            drop(conn);
            assert_eq!(
                column(&path, "SELECT sum(n) FROM t"),
                before,
                "round {round}"
            );
        }
        assert!(interrupted > 0, "no kill landed during a backup");
    });
}

#[test]
fn a_truncating_checkpoint_shrinks_the_wal_unless_a_reader_holds_it() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let db: Db = block_on(Db::open(&path)).unwrap();
        block_on(db.custom_statement("CREATE TABLE t (pad BLOB)", [])).unwrap();
        block_on(db.custom_statement(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 2000) \
             INSERT INTO t SELECT randomblob(1000) FROM s",
            [],
        ))
        .unwrap();
        // Another connection in a read transaction pins the WAL.
        let reader = rusqlite::Connection::open(&path).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM t;")
            .unwrap();
        block_on(db.custom_statement("INSERT INTO t VALUES (randomblob(1000))", [])).unwrap();
        let pinned = block_on(db.checkpoint(CheckpointMode::Truncate)).unwrap();
        assert!(pinned.busy, "{pinned:?}");
        assert!(block_on(db.stats()).unwrap().wal_bytes > 0);
        reader.execute_batch("COMMIT").unwrap();
        let done = block_on(db.checkpoint(CheckpointMode::Truncate)).unwrap();
        assert!(!done.busy, "{done:?}");
        assert_eq!(block_on(db.stats()).unwrap().wal_bytes, 0, "truncated");
        let stats = block_on(db.stats()).unwrap();
        assert!(stats.pages > 400 && stats.page_size == 4096, "{stats:?}");
    });
}

#[test]
fn integrity_checks_report_findings_as_data_and_vacuum_into_copies() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let db: Db = block_on(Db::open(dir.path().join("ok.db"))).unwrap();
        block_on(db.custom_statement("CREATE TABLE t (x)", [])).unwrap();
        block_on(db.custom_statement("INSERT INTO t VALUES (1), (2)", [])).unwrap();
        assert!(block_on(db.integrity_check(false)).unwrap().is_empty());
        assert!(block_on(db.integrity_check(true)).unwrap().is_empty());
        block_on(db.optimize()).unwrap();
        let copy = dir.path().join("compact.db");
        block_on(db.vacuum_into(&copy)).unwrap();
        assert_eq!(column(&copy, "SELECT count(*) FROM t"), [2]);
    });
}

#[test]
fn connections_limit_the_wal_and_optimize_when_they_close() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.db");
        let conn = driftwood::sqlite::Connection::open(
            &path,
            &OpenOptions::default().optimize_on_close(true),
        )
        .unwrap();
        assert_eq!(
            conn.query_value("PRAGMA journal_size_limit").unwrap(),
            SqlValue::Integer(64 * 1024 * 1024)
        );
        conn.raw()
            .execute_batch(
                "CREATE TABLE t (a INTEGER, b TEXT); CREATE INDEX t_by_a ON t (a);
                 WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 2000)
                 INSERT INTO t SELECT n % 7, 'x' FROM s;
                 SELECT count(*) FROM t WHERE a = 3;",
            )
            .unwrap();
        drop(conn);
        // PRAGMA optimize ran at close: the planner's statistics exist.
        let stats = column(
            &path,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'",
        );
        assert_eq!(stats, [1], "PRAGMA optimize analyzed the table");

        let other = dir.path().join("no_policy.db");
        let options = OpenOptions::default()
            .journal_size_limit(None)
            .optimize_on_close(false);
        let conn = driftwood::sqlite::Connection::open(&other, &options).unwrap();
        assert_eq!(
            conn.query_value("PRAGMA journal_size_limit").unwrap(),
            SqlValue::Integer(-1)
        );
        conn.raw()
            .execute_batch(
                "CREATE TABLE t (a INTEGER); CREATE INDEX t_by_a ON t (a);
                 WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 2000)
                 INSERT INTO t SELECT n % 7 FROM s;
                 SELECT count(*) FROM t WHERE a = 3;",
            )
            .unwrap();
        drop(conn);
        let stats = column(
            &other,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'",
        );
        assert_eq!(stats, [0]);
    });
}

// A read transaction held long holds back checkpoints: it is named in a
// warning with its duration, and so is the checkpoint it kept from
// finishing.
#[test]
fn a_long_read_transaction_and_the_checkpoint_it_blocks_are_logged() {
    within(60, || {
        let warnings = common::Warnings::default();
        let seen = warnings.0.clone();
        tracing::subscriber::with_default(warnings, || {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("long.db");
            let options = OpenOptions::default().long_read_warning(Duration::from_millis(100));
            let db: Db = block_on(Db::open_with(&path, options)).unwrap();
            block_on(db.custom_statement("CREATE TABLE t (x)", [])).unwrap();
            block_on(db.read(|_| {
                std::thread::sleep(Duration::from_millis(150));
                Ok(())
            }))
            .unwrap();
            block_on(db.read(|_| Ok(()))).unwrap();
            let reader = rusqlite::Connection::open(&path).unwrap();
            reader
                .execute_batch("BEGIN; SELECT count(*) FROM t;")
                .unwrap();
            block_on(db.custom_statement("INSERT INTO t VALUES (1)", [])).unwrap();
            block_on(db.checkpoint(CheckpointMode::Truncate)).unwrap();
            reader.execute_batch("COMMIT").unwrap();
        });
        let seen = seen.lock().unwrap();
        let long_reads = seen
            .iter()
            .filter(|m| m.starts_with("a read transaction was open for "))
            .count();
        assert_eq!(long_reads, 1, "only the long one: {seen:?}");
        assert!(
            seen.iter()
                .any(|m| m.starts_with("a checkpoint could not finish")),
            "{seen:?}"
        );
    });
}

#[test]
fn incremental_vacuum_returns_the_pages_deletes_freed() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let options =
            OpenOptions::default().auto_vacuum(driftwood::sqlite::AutoVacuum::Incremental);
        let db: Db = block_on(Db::open_with(dir.path().join("vacuum.db"), options)).unwrap();
        block_on(db.custom_statement("CREATE TABLE t (pad BLOB)", [])).unwrap();
        block_on(db.custom_statement(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000) \
             INSERT INTO t SELECT randomblob(2000) FROM s",
            [],
        ))
        .unwrap();
        block_on(db.custom_statement("DELETE FROM t", [])).unwrap();
        let before = block_on(db.stats()).unwrap();
        assert!(before.free_pages > 400, "{before:?}");
        block_on(db.incremental_vacuum(Some(100))).unwrap();
        let partly = block_on(db.stats()).unwrap();
        assert_eq!(partly.free_pages, before.free_pages - 100);
        block_on(db.incremental_vacuum(None)).unwrap();
        let after = block_on(db.stats()).unwrap();
        assert_eq!(after.free_pages, 0);
        assert!(after.pages < before.pages - 400, "{before:?} -> {after:?}");
    });
}

// ---- restore ----

/// The titles `db` sees, sorted, through a query on the writer and through
/// a read unit (on a server, a reader thread).
fn titles_seen(db: &Db<common::TodoDb>) -> (Vec<String>, Vec<String>) {
    let sql = "SELECT title FROM todos ORDER BY title";
    let direct = block_on(db.custom_select(sql, [])).unwrap();
    let read = block_on(db.read(move |conn| conn.custom_select(sql, []))).unwrap();
    let titles = |rows: Vec<driftwood::row::OwnedRow>| {
        rows.iter()
            .map(|r| r.get::<String>(0).unwrap())
            .collect::<Vec<_>>()
    };
    (titles(direct), titles(read))
}

/// Fails unless `db` sees exactly the todos `want` (sorted) everywhere.
fn assert_titles(db: &Db<common::TodoDb>, want: &[&str], context: &str) {
    let want: Vec<String> = want.iter().map(|t| t.to_string()).collect();
    assert_eq!(titles_seen(db), (want.clone(), want), "{context}");
}

/// Writes "Original", backs it up to `backup.db` beside the database,
/// then writes "Later one": the backup's path.
fn backed_up(dir: &tempfile::TempDir, db: &Db<common::TodoDb>) -> std::path::PathBuf {
    insert(db, "Original");
    let copy = dir.path().join("backup.db");
    block_on(db.backup_to(&copy, |_| {})).unwrap();
    insert(db, "Later one");
    copy
}

fn insert(db: &Db<common::TodoDb>, title: &str) {
    block_on(db.insert(common::todo(title, "x", None))).unwrap();
}

/// A read unit sent to a reader at once and held open there — one read
/// transaction, its snapshot — until the sender returned sends or drops;
/// the pending read then answers the todos it counted.
fn hold_a_read(db: &Db<common::TodoDb>) -> (std::sync::mpsc::Sender<()>, driftwood::Pending<i64>) {
    let (holding, held) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let reading = db.read(move |conn| {
        let n = conn.select::<common::Todo>().count()?;
        holding.send(()).unwrap();
        let _ = released.recv();
        Ok(n)
    });
    held.recv().unwrap();
    (release, reading)
}

// A restore replaces the content everywhere it is seen — queries, read
// units (a server's readers), the file — and a watched query runs again
// and sees the restored rows.
#[test]
fn a_restore_replaces_the_content_and_watchers_see_it() {
    for backend in common::BACKENDS {
        within(60, move || {
            use futures::StreamExt;
            let (dir, db) = block_on(common::open(backend));
            insert(&db, "Alpha one");
            insert(&db, "Beta two");
            let copy = dir.path().join("backup.db");
            block_on(db.backup_to(&copy, |_| {})).unwrap();
            insert(&db, "Gamma 3");
            block_on(db.custom_statement("DELETE FROM todos WHERE title = 'Alpha one'", []))
                .unwrap();
            let mut watched = db.select::<common::Todo>().watch();
            let first = block_on(watched.next()).unwrap().unwrap();
            assert_eq!(first.len(), 2);
            let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
            let steps = heard.clone();
            block_on(db.restore_from(&copy, move |p| steps.lock().unwrap().push(p))).unwrap();
            let heard = heard.lock().unwrap();
            assert_eq!(heard.last().unwrap().remaining, 0, "{backend:?}: {heard:?}");
            let want = vec!["Alpha one".to_owned(), "Beta two".to_owned()];
            assert_eq!(
                titles_seen(&db),
                (want.clone(), want.clone()),
                "{backend:?}"
            );
            let mut after: Vec<String> = block_on(watched.next())
                .unwrap()
                .unwrap()
                .into_iter()
                .map(|t| t.title)
                .collect();
            after.sort();
            assert_eq!(after, want, "{backend:?}: the watcher saw the restore");
            drop(watched);
            // The handle goes on as usual, and the file holds the backup.
            insert(&db, "Delta four");
            block_on(db.close()).unwrap();
            assert_eq!(
                common::titles_on_disk(&dir),
                ["Alpha one", "Beta two", "Delta four"]
            );
        });
    }
}

// What a statement touches is found once and remembered per SQL text; a
// restore changes the schema under it. Here the view a watched query reads
// reads another table after the restore: writes to that table must wake it
// (a footprint found under the old schema would miss them, and the stream
// would wait for ever).
#[test]
fn after_a_restore_watched_queries_follow_the_restored_schema() {
    for backend in common::BACKENDS {
        within(60, move || {
            use futures::StreamExt;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("views.db");
            let db: Db = match backend {
                common::Backend::InThread => block_on(Db::open(&path)).unwrap(),
                common::Backend::Background => block_on(Db::open_in_background(&path)).unwrap(),
            };
            block_on(db.write(|conn| {
                conn.custom_statement("CREATE TABLE a (x)", [])?;
                conn.custom_statement("CREATE TABLE b (x)", [])?;
                conn.custom_statement("CREATE VIEW v AS SELECT x FROM a", [])?;
                Ok(())
            }))
            .unwrap();
            let copy = dir.path().join("backup.db");
            rusqlite::Connection::open(&copy)
                .unwrap()
                .execute_batch(
                    "CREATE TABLE a (x); CREATE TABLE b (x);
                     CREATE VIEW v AS SELECT x FROM b; INSERT INTO b VALUES (1);",
                )
                .unwrap();
            let count = |rows: Vec<driftwood::row::OwnedRow>| rows[0].get::<i64>(0).unwrap();
            let mut watched = db.watch_custom_select("SELECT count(*) FROM v", []);
            assert_eq!(count(block_on(watched.next()).unwrap().unwrap()), 0);
            block_on(db.restore_from(&copy, |_| {})).unwrap();
            assert_eq!(
                count(block_on(watched.next()).unwrap().unwrap()),
                1,
                "{backend:?}"
            );
            block_on(db.custom_statement("INSERT INTO b VALUES (2)", [])).unwrap();
            assert_eq!(
                count(block_on(watched.next()).unwrap().unwrap()),
                2,
                "{backend:?}"
            );
        });
    }
}

// What counts as someone else using the database, on each backend: a
// clone of the handle, an open transaction (owned or scoped), another
// client of the server, another connection to the file. Each refusal
// leaves the database as it was and usable.
#[test]
fn a_restore_is_refused_while_others_use_the_database() {
    for backend in common::BACKENDS {
        within(60, move || {
            let (dir, db) = block_on(common::open(backend));
            let copy = backed_up(&dir, &db);
            let in_use = |result: Result<()>, says: &str| match result {
                Err(Error::InUse { message }) => {
                    assert!(message.contains(says), "{backend:?}: {message}")
                }
                other => panic!("{backend:?}: expected InUse ({says}), got {other:?}"),
            };

            let clone = db.clone();
            in_use(
                block_on(db.restore_from(&copy, |_| {})),
                "clones of this Db",
            );
            drop(clone);

            let tx = block_on(db.begin()).unwrap();
            in_use(
                block_on(db.restore_from(&copy, |_| {})),
                "a transaction is open",
            );
            block_on(tx.rollback()).unwrap();
            let scoped =
                block_on(db.transaction(|| async { db.restore_from(&copy, |_| {}).await }));
            in_use(scoped, "inside a transaction");

            // Another connection to the file (WAL: it holds a lock while
            // open, even idle).
            let other = rusqlite::Connection::open(dir.path().join("todos.db")).unwrap();
            other
                .query_row("SELECT count(*) FROM todos", [], |r| r.get::<_, i64>(0))
                .unwrap();
            in_use(
                block_on(db.restore_from(&copy, |_| {})),
                "another connection",
            );
            drop(other);

            assert_titles(&db, &["Later one", "Original"], &format!("{backend:?}"));
            block_on(db.restore_from(&copy, |_| {})).unwrap();
            assert_titles(&db, &["Original"], &format!("{backend:?}"));
        });
    }
}

#[test]
fn a_restore_is_refused_while_another_client_of_the_server_is_connected() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let server = block_on(driftwood::server::Server::open(&path)).unwrap();
        let db: Db<common::TodoDb> = block_on(server.connect()).unwrap();
        insert(&db, "Original");
        let copy = dir.path().join("backup.db");
        block_on(db.backup_to(&copy, |_| {})).unwrap();
        let other: Db<common::TodoDb> = block_on(server.connect()).unwrap();
        match block_on(db.restore_from(&copy, |_| {})) {
            Err(Error::InUse { message }) => {
                assert!(message.contains("1 other client(s)"), "{message}")
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        block_on(other.close()).unwrap();
        block_on(db.restore_from(&copy, |_| {})).unwrap();
        server.shutdown_all();
    });
}

// With a rollback journal, another connection holds a lock only inside a
// transaction: one in a read transaction is detected; an idle one is not,
// and sees the restored database at its next read.
#[test]
fn with_a_rollback_journal_only_a_connection_inside_a_transaction_is_detected() {
    within(60, || {
        let options = OpenOptions::default().journal_mode(JournalMode::Delete);
        let (dir, db) = block_on(common::open_with(common::Backend::InThread, options));
        let copy = backed_up(&dir, &db);
        let other = rusqlite::Connection::open(dir.path().join("todos.db")).unwrap();
        other
            .execute_batch("BEGIN; SELECT count(*) FROM todos;")
            .unwrap();
        let refused = block_on(db.restore_from(&copy, |_| {}));
        assert!(matches!(refused, Err(Error::InUse { .. })), "{refused:?}");
        other.execute_batch("COMMIT").unwrap();
        block_on(db.restore_from(&copy, |_| {})).unwrap();
        let seen: i64 = other
            .query_row("SELECT count(*) FROM todos", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 1, "the idle connection sees the restored rows");
    });
}

// Nothing is touched for a file that is not a sound backup: missing (and
// not created), not a database, damaged, or the database's own file.
#[test]
fn a_restore_refuses_a_file_that_is_not_a_sound_backup() {
    for backend in common::BACKENDS {
        within(60, move || {
            let (dir, db) = block_on(common::open(backend));
            insert(&db, "Original");
            let refused = |source: &std::path::Path, says: &str| {
                match block_on(db.restore_from(source, |_| {})) {
                    Err(Error::BadBackup { path, message }) => {
                        assert_eq!(path, source.display().to_string());
                        assert!(message.contains(says), "{backend:?}: {message}");
                    }
                    other => panic!("{backend:?}: expected BadBackup ({says}), got {other:?}"),
                }
                assert_titles(&db, &["Original"], &format!("{backend:?}"));
            };
            let missing = dir.path().join("missing.db");
            refused(&missing, "cannot be opened");
            assert!(!missing.exists(), "a missing backup is not created");

            let text = dir.path().join("notes.txt");
            std::fs::write(
                &text,
                "these are not the pages you are looking for\n".repeat(200),
            )
            .unwrap();
            refused(&text, "not a SQLite database");

            let damaged = dir.path().join("damaged.db");
            let conn = rusqlite::Connection::open(&damaged).unwrap();
            conn.execute_batch(
                "CREATE TABLE big (n INTEGER, pad TEXT);
                 CREATE INDEX big_by_n ON big (n);
                 WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 3000)
                 INSERT INTO big SELECT n, printf('%0500d', n) FROM s;",
            )
            .unwrap();
            drop(conn);
            let mut bytes = std::fs::read(&damaged).unwrap();
            let middle = bytes.len() / 2 / 4096 * 4096;
            for byte in &mut bytes[middle + 100..middle + 4000] {
                *byte = 0x5a;
            }
            std::fs::write(&damaged, bytes).unwrap();
            refused(&damaged, "damaged");

            refused(&dir.path().join("todos.db"), "this database's own file");
            let leftovers: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains(".restore-"))
                .collect();
            assert!(leftovers.is_empty(), "staged copies left: {leftovers:?}");
        });
    }
}

mod versions {
    use driftwood::prelude::*;

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "notes")]
    pub struct NoteV1 {
        #[column(primary_key)]
        pub id: i64,
        pub text: String,
    }

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "notes")]
    pub struct Note {
        #[column(primary_key)]
        pub id: i64,
        pub text: String,
        #[column(default = 0)]
        pub stars: i64,
    }

    pub struct V1;
    impl Database for V1 {
        const SCHEMA_VERSION: u32 = 1;
        fn schema() -> Schema {
            schema![NoteV1]
        }
    }

    pub struct V2;
    impl Database for V2 {
        const SCHEMA_VERSION: u32 = 2;
        fn schema() -> Schema {
            schema![Note]
        }
        fn on_upgrade(m: &Migrator<'_>, _: u32, _: u32) -> Result<()> {
            m.add_column(Note::STARS)
        }
    }
}

// A backup from an older version of the app is migrated on its copy, as
// opening it would, before it replaces the database: the handle never sees
// the old schema, and the backup file is left as it was. One from a newer
// version is refused, as opening it would be.
#[test]
fn a_backup_of_another_schema_version_is_migrated_first_or_refused() {
    for background in [false, true] {
        within(60, move || {
            let dir = tempfile::tempdir().unwrap();
            let (old_path, new_path) = (dir.path().join("old.db"), dir.path().join("new.db"));
            let open_v1 = |path: &std::path::Path| -> Db<versions::V1> {
                match background {
                    false => block_on(Db::open(path)).unwrap(),
                    true => block_on(Db::open_in_background(path)).unwrap(),
                }
            };
            let v1 = open_v1(&old_path);
            block_on(v1.custom_statement("INSERT INTO notes VALUES (1, 'kept')", [])).unwrap();
            let backup_v1 = dir.path().join("backup_v1.db");
            block_on(v1.backup_to(&backup_v1, |_| {})).unwrap();
            let backup_bytes = std::fs::read(&backup_v1).unwrap();

            let v2: Db<versions::V2> = match background {
                false => block_on(Db::open(&new_path)).unwrap(),
                true => block_on(Db::open_in_background(&new_path)).unwrap(),
            };
            block_on(v2.custom_statement("INSERT INTO notes VALUES (7, 'newer', 5)", [])).unwrap();
            block_on(v2.restore_from(&backup_v1, |_| {})).unwrap();
            let notes = block_on(v2.select::<versions::Note>().get()).unwrap();
            assert_eq!(
                notes,
                [versions::Note {
                    id: 1,
                    text: "kept".into(),
                    stars: 0
                }]
            );
            let version = block_on(v2.custom_select("PRAGMA user_version", [])).unwrap();
            assert_eq!(version[0].get::<i64>(0).unwrap(), 2);
            assert_eq!(
                std::fs::read(&backup_v1).unwrap(),
                backup_bytes,
                "the backup is untouched"
            );

            let backup_v2 = dir.path().join("backup_v2.db");
            block_on(v2.backup_to(&backup_v2, |_| {})).unwrap();
            match block_on(v1.restore_from(&backup_v2, |_| {})) {
                Err(Error::BadBackup { message, .. }) => {
                    assert!(message.contains("schema version"), "{message}")
                }
                other => panic!("expected BadBackup, got {other:?}"),
            }
            let kept = block_on(v1.custom_select("SELECT text FROM notes", [])).unwrap();
            assert_eq!(kept[0].get::<String>(0).unwrap(), "kept");
        });
    }
}

/// A backup big enough to take several steps to restore.
fn big_backup(dir: &std::path::Path) -> std::path::PathBuf {
    let copy = dir.join("big_backup.db");
    let conn = rusqlite::Connection::open(&copy).unwrap();
    conn.execute_batch(
        "CREATE TABLE categories (id INTEGER PRIMARY KEY AUTOINCREMENT, description TEXT NOT NULL UNIQUE);
         CREATE TABLE todos (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, body TEXT NOT NULL,
             category INTEGER REFERENCES categories(id) ON DELETE CASCADE, done INTEGER NOT NULL DEFAULT 0, priority INTEGER);
         WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 4000)
         INSERT INTO todos (title, body) SELECT printf('Big %05d', n), randomblob(500) FROM s;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    copy
}

// A restore that fails half-way — here its progress callback panics after
// the first step — rolls back: the database is as it was, sound, usable,
// and a later restore works.
#[test]
fn a_restore_whose_progress_panics_half_way_leaves_the_database_as_it_was() {
    for backend in common::BACKENDS {
        within(60, move || {
            let (dir, db) = block_on(common::open(backend));
            insert(&db, "Original");
            let copy = big_backup(dir.path());
            let failed = block_on(db.restore_from(&copy, |p| {
                if p.remaining > 0 {
                    panic!("the progress callback broke");
                }
            }));
            assert!(matches!(failed, Err(Error::Panic { .. })), "{failed:?}");
            assert_titles(&db, &["Original"], &format!("{backend:?}"));
            assert!(block_on(db.integrity_check(false)).unwrap().is_empty());
            block_on(db.restore_from(&copy, |_| {})).unwrap();
            assert_eq!(block_on(db.select::<common::Todo>().count()).unwrap(), 4000);
        });
    }
}

// A restore whose caller stops waiting (its future dropped while it runs)
// stops between steps and rolls back; the readers it parked open again.
#[test]
fn a_restore_whose_future_is_dropped_half_way_leaves_the_database_as_it_was() {
    within(60, || {
        let (dir, db) = block_on(common::open(common::Backend::Background));
        insert(&db, "Original");
        let copy = big_backup(dir.path());
        let (started, in_progress) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let restore = db.restore_from(&copy, move |_| {
            let _ = started.send(());
            let _ = released.recv();
        });
        in_progress.recv().unwrap();
        drop(restore);
        release.send(()).unwrap();
        drop(release);
        assert_titles(&db, &["Original"], "");
        assert!(block_on(db.integrity_check(false)).unwrap().is_empty());
    });
}

// A reader still holding a read transaction (its snapshot) keeps the
// restore from taking the file; after the busy timeout it is refused,
// naming the reader, and every reader serves again.
#[test]
fn a_restore_is_refused_while_a_reader_holds_a_snapshot_past_the_busy_timeout() {
    within(60, || {
        let options = OpenOptions::default().busy_timeout(Duration::from_millis(300));
        let (dir, db) = block_on(common::open_with(common::Backend::Background, options));
        let copy = backed_up(&dir, &db);
        let (release, reading) = hold_a_read(&db);
        match block_on(db.restore_from(&copy, |_| {})) {
            Err(Error::InUse { message }) => {
                assert!(message.contains("driftwood-reader-"), "{message}")
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        release.send(()).unwrap();
        assert_eq!(block_on(reading).unwrap(), 2, "the snapshot read on");
        assert_titles(&db, &["Later one", "Original"], "");
        block_on(db.restore_from(&copy, |_| {})).unwrap();
        assert_titles(&db, &["Original"], "");
    });
}

// A WAL database cannot take pages of another size, nor can an in-memory
// one: the staged copy is rebuilt in the database's page size first.
#[test]
fn a_backup_with_another_page_size_is_restored_in_this_databases_page_size() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("large_pages.db");
        let conn = rusqlite::Connection::open(&copy).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 8192; PRAGMA auto_vacuum = FULL;
             CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);",
        )
        .unwrap();
        drop(conn);
        let file: Db = block_on(Db::open(dir.path().join("wal.db"))).unwrap();
        let memory: Db = block_on(Db::open_in_memory()).unwrap();
        block_on(memory.custom_statement("CREATE TABLE before (x)", [])).unwrap();
        for db in [file, memory] {
            block_on(db.restore_from(&copy, |_| {})).unwrap();
            let rows = block_on(db.custom_select("SELECT sum(x) FROM t", [])).unwrap();
            assert_eq!(rows[0].get::<i64>(0).unwrap(), 6);
            assert_eq!(block_on(db.stats()).unwrap().page_size, 4096);
            let vacuum = block_on(db.custom_select("PRAGMA auto_vacuum", [])).unwrap();
            assert_eq!(
                vacuum[0].get::<i64>(0).unwrap(),
                0,
                "this database's auto_vacuum"
            );
            assert!(block_on(db.integrity_check(false)).unwrap().is_empty());
        }
    });
}

// A process killed while it restores leaves the database whole: as it
// was, or wholly restored — never part of the backup. (SQLite copies the
// pages inside one write transaction; the WAL, or the rollback journal,
// undoes an unfinished one when the file is next opened.)
#[test]
fn a_restore_killed_half_way_leaves_the_database_as_it_was_or_wholly_restored() {
    let name = "a_restore_killed_half_way_leaves_the_database_as_it_was_or_wholly_restored";
    if let Ok(path) = std::env::var("DRIFTWOOD_RESTORE_CHILD") {
        let mode = match std::env::var("DRIFTWOOD_RESTORE_JOURNAL").as_deref() {
            Ok("delete") => JournalMode::Delete,
            _ => JournalMode::Wal,
        };
        let options = OpenOptions::default().journal_mode(mode);
        let db: Db = block_on(Db::open_with(&path, options)).unwrap();
        let backup = format!("{path}.backup");
        let copying = format!("{path}.copying");
        block_on(db.restore_from(&backup, move |_| {
            // Heard only while the copy over the database runs.
            std::fs::write(&copying, "").unwrap();
            std::thread::sleep(Duration::from_millis(20))
        }))
        .unwrap();
        return;
    }
    within(120, move || {
        for journal in ["wal", "delete"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("live.db");
            let backup = dir.path().join("live.db.backup");
            let conn = rusqlite::Connection::open(&backup).unwrap();
            conn.execute_batch(
                "CREATE TABLE t (n INTEGER, pad BLOB);
                 WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000)
                 INSERT INTO t SELECT n, randomblob(500) FROM s;",
            )
            .unwrap();
            drop(conn);
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = {journal}; CREATE TABLE t (n INTEGER, pad BLOB);
                 INSERT INTO t VALUES (-1, x'00');"
            ))
            .unwrap();
            drop(conn);
            let (original, restored) = (vec![-1], column(&backup, "SELECT sum(n) FROM t"));
            let mut interrupted = 0;
            for round in 0..6 {
                let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", name, "--test-threads=1"])
                    .env("DRIFTWOOD_RESTORE_CHILD", &path)
                    .env("DRIFTWOOD_RESTORE_JOURNAL", journal)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                std::thread::sleep(Duration::from_millis(80 + 40 * round));
                let _ = child.kill();
                let _ = child.wait();
                let conn = rusqlite::Connection::open(&path).unwrap();
                let check: String = conn
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(check, "ok", "{journal}, round {round}");
                drop(conn);
                let now = column(&path, "SELECT sum(n) FROM t");
                let copying = dir.path().join("live.db.copying");
                if now == original {
                    interrupted += usize::from(copying.exists());
                } else {
                    assert_eq!(
                        now, restored,
                        "{journal}, round {round}: part of the backup"
                    );
                    // Wholly restored: start over from the original.
                    let conn = rusqlite::Connection::open(&path).unwrap();
                    conn.execute_batch("DELETE FROM t; INSERT INTO t VALUES (-1, x'00');")
                        .unwrap();
                }
                let _ = std::fs::remove_file(&copying);
            }
            assert!(
                interrupted > 0,
                "{journal}: no kill landed while the copy ran"
            );
        }
    });
}

// ---- periodic PRAGMA optimize ----

/// A file with an indexed table of 2,000 rows, not yet analyzed.
fn unanalyzed(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("stats.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE t (a INTEGER, b TEXT); CREATE INDEX t_by_a ON t (a);
         WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 2000)
         INSERT INTO t SELECT n % 7, 'x' FROM s;",
    )
    .unwrap();
    path
}

fn analyzed(path: &std::path::Path) -> bool {
    column(
        path,
        "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'",
    ) == [1]
}

/// A server on `path` that runs `PRAGMA optimize` every few milliseconds.
fn optimizing(path: &std::path::Path) -> (driftwood::server::Server, Db) {
    let server = block_on(
        driftwood::server::Server::builder()
            .optimize_every(Duration::from_millis(20))
            .open(path, OpenOptions::default()),
    )
    .unwrap();
    let db = block_on(server.connect()).unwrap();
    (server, db)
}

// The writer of a long-lived server runs PRAGMA optimize by itself while
// idle: the planner's statistics appear without anyone asking.
#[test]
fn a_server_runs_pragma_optimize_by_itself_while_idle() {
    within(60, || {
        let recorder = common::recorded();
        let dir = tempfile::tempdir().unwrap();
        let path = unanalyzed(dir.path());
        let (server, db) = optimizing(&path);
        block_on(db.custom_select("SELECT count(*) FROM t WHERE a = 3", [])).unwrap();
        let ran = recorder.wait_for(&path, 0, 30, |e| e.message == "PRAGMA optimize ran");
        assert_eq!(ran.field("first"), Some("true"), "{ran:?}");
        assert!(analyzed(&path));
        recorder.wait_for(&path, 0, 30, |e| {
            e.message == "PRAGMA optimize ran" && e.field("first") == Some("false")
        });
        server.shutdown_all();
    });
}

// It never runs inside a user's transaction: while one is open it waits,
// and runs once the writer is idle again.
#[test]
fn pragma_optimize_waits_while_a_transaction_is_open() {
    within(60, || {
        let recorder = common::recorded();
        let dir = tempfile::tempdir().unwrap();
        let path = unanalyzed(dir.path());
        let (server, db) = optimizing(&path);
        let tx = block_on(db.begin()).unwrap();
        let start = recorder.about(&path).len();
        recorder.wait_for(&path, start, 30, |e| {
            e.message == "PRAGMA optimize waits: the writer is busy"
        });
        block_on(tx.custom_select("SELECT count(*) FROM t WHERE a = 3", [])).unwrap();
        recorder.wait_for(&path, start, 30, |e| {
            e.message == "PRAGMA optimize waits: the writer is busy"
        });
        let held = recorder.about(&path);
        let first_wait = start
            + held[start..]
                .iter()
                .position(|e| e.message.starts_with("PRAGMA optimize waits"))
                .unwrap();
        assert!(
            !held[first_wait..]
                .iter()
                .any(|e| e.message == "PRAGMA optimize ran"),
            "it ran inside the transaction: {held:#?}"
        );
        block_on(tx.commit()).unwrap();
        recorder.wait_for(&path, held.len(), 30, |e| {
            e.message == "PRAGMA optimize ran"
        });
        server.shutdown_all();
    });
}

// ---- long transactions noticed while open ----

// A read unit held open on a reader is noticed by the writer's watchdog
// and logged while it is still open, once, naming the reader; the reads
// before it were short and logged nothing.
#[test]
fn a_read_held_open_on_a_reader_is_logged_while_it_is_still_open() {
    within(60, || {
        let recorder = common::recorded();
        let options = OpenOptions::default().long_read_warning(Duration::from_millis(200));
        let (dir, db) = block_on(common::open_with(common::Backend::Background, options));
        let path = dir.path().join("todos.db");
        for _ in 0..20 {
            block_on(db.read(|conn| conn.select::<common::Todo>().count())).unwrap();
            block_on(db.select::<common::Todo>().count()).unwrap();
        }
        let quiet = recorder.about(&path);
        assert!(
            quiet.iter().all(|e| e.level != tracing::Level::WARN),
            "short reads were logged: {quiet:#?}"
        );
        let (release, reading) = hold_a_read(&db);
        let warned = recorder.wait_for(&path, quiet.len(), 30, |e| {
            e.message.contains("and is still open")
        });
        assert!(
            warned
                .message
                .starts_with("a read transaction has been open for "),
            "{warned:?}"
        );
        assert!(
            warned
                .field("connection")
                .unwrap()
                .starts_with("driftwood-reader-"),
            "{warned:?}"
        );
        release.send(()).unwrap();
        block_on(reading).unwrap();
        let events = recorder.about(&path);
        let still_open = events.iter().filter(|e| e.message.contains("still open"));
        assert_eq!(still_open.count(), 1, "once per transaction: {events:#?}");
        assert!(
            events.iter().any(|e| e
                .message
                .starts_with("the long transaction reported earlier ended")),
            "{events:#?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| e.message.starts_with("a read transaction was open for")),
            "not logged again as it ended: {events:#?}"
        );
    });
}

// An in-thread database has no thread to watch with: a transaction held
// across awaits is noticed at the requests made while it is open.
#[test]
fn an_in_thread_transaction_held_across_awaits_is_logged_while_it_is_still_open() {
    within(60, || {
        let recorder = common::recorded();
        let options = OpenOptions::default().long_read_warning(Duration::from_millis(200));
        let (dir, db) = block_on(common::open_with(common::Backend::InThread, options));
        let path = dir.path().join("todos.db");
        let tx = block_on(db.begin()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let warned = loop {
            block_on(tx.custom_select("SELECT 1", [])).unwrap();
            let events = recorder.about(&path);
            if let Some(e) = events.iter().find(|e| e.message.contains("still open")) {
                break e.clone();
            }
            assert!(std::time::Instant::now() < deadline, "{events:#?}");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            warned
                .message
                .starts_with("a transaction has been open for "),
            "{warned:?}"
        );
        assert_eq!(warned.field("connection"), Some("the in-thread connection"));
        block_on(tx.commit()).unwrap();
        let events = recorder.about(&path);
        let warnings: Vec<_> = events
            .iter()
            .filter(|e| e.level == tracing::Level::WARN)
            .collect();
        assert_eq!(warnings.len(), 1, "once: {events:#?}");
    });
}

// A checkpoint that a reader's long read keeps from finishing names it.
#[test]
fn a_checkpoint_held_back_by_a_reader_names_the_reader() {
    within(60, || {
        let recorder = common::recorded();
        let options = OpenOptions::default().busy_timeout(Duration::from_millis(300));
        let (dir, db) = block_on(common::open_with(common::Backend::Background, options));
        let path = dir.path().join("todos.db");
        insert(&db, "Before");
        let (release, reading) = hold_a_read(&db);
        insert(&db, "After one");
        let checkpoint = block_on(db.checkpoint(CheckpointMode::Truncate)).unwrap();
        assert!(checkpoint.busy, "{checkpoint:?}");
        let warned = recorder.wait_for(&path, 0, 30, |e| {
            e.message.starts_with("a checkpoint could not finish")
        });
        assert!(
            warned.message.contains("driftwood-reader-")
                && warned
                    .message
                    .contains("has had a read transaction open for"),
            "{warned:?}"
        );
        release.send(()).unwrap();
        assert_eq!(block_on(reading).unwrap(), 1);
    });
}
