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
use driftwood::sqlite::CheckpointMode;

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
