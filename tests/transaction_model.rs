//! Randomized tests of the transaction model. One drives a tree of nested
//! transactions with random commits, rollbacks, drops, abandoned begins,
//! cancelled statements and rollbacks SQLite makes on its own, against a
//! model of which rows must exist, checking the file with a separate
//! connection after every step. The other runs 16 clients at once and
//! checks that every acknowledged transaction is on disk and every
//! transaction is all or nothing.
//!
//! `DRIFTWOOD_MODEL_SEED` replays a run; `DRIFTWOOD_MODEL_STEPS` sets its
//! length (default 2000 steps per backend).

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::*;
use driftwood::prelude::*;

fn steps() -> usize {
    std::env::var("DRIFTWOOD_MODEL_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// What must be true: the committed rows, and per open level the rows it
/// added that are not committed yet.
struct Model {
    committed: BTreeSet<String>,
    pending: Vec<Vec<String>>,
    /// SQLite rolled the open transaction back.
    poisoned: bool,
}

impl Model {
    fn visible(&self) -> BTreeSet<String> {
        let mut rows = self.committed.clone();
        rows.extend(self.pending.iter().flatten().cloned());
        rows
    }

    /// The innermost level ended; `commit` merges it into its parent (or
    /// the file, for the outermost).
    fn end_level(&mut self, commit: bool) {
        let rows = self.pending.pop().expect("a level is open");
        if !commit || self.poisoned {
            if self.pending.is_empty() {
                self.poisoned = false;
            }
            return;
        }
        match self.pending.last_mut() {
            Some(parent) => parent.extend(rows),
            None => self.committed.extend(rows),
        }
    }

    fn poison(&mut self) {
        self.poisoned = true;
        for level in &mut self.pending {
            level.clear();
        }
    }
}

/// The state a run shares across its levels.
struct Run {
    rng: Rng,
    model: Model,
    backend: Backend,
    dir: tempfile::TempDir,
    file: rusqlite::Connection,
    next_title: u64,
    steps_left: usize,
    seed: u64,
    trace: Vec<String>,
}

impl Run {
    fn title(&mut self) -> String {
        self.next_title += 1;
        format!("r{:07}", self.next_title)
    }

    fn on_disk(&self) -> BTreeSet<String> {
        let mut stmt = self.file.prepare_cached("SELECT title FROM todos").unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn check(&mut self, action: &str) {
        self.trace.push(action.to_owned());
        let on_disk = self.on_disk();
        if on_disk != self.model.committed {
            panic!(
                "{:?}, seed {}: the file holds {:?}, the model {:?}; last actions {:?}",
                self.backend,
                self.seed,
                on_disk
                    .difference(&self.model.committed)
                    .collect::<Vec<_>>(),
                self.model
                    .committed
                    .difference(&on_disk)
                    .collect::<Vec<_>>(),
                &self.trace[self.trace.len().saturating_sub(12)..]
            );
        }
    }

    fn expect_rolled_back<T: std::fmt::Debug>(&self, result: Result<T>, action: &str) {
        match result {
            Err(Error::RolledBack { .. }) => {}
            other => panic!(
                "{:?}, seed {}: {action} in a poisoned transaction gave {other:?}",
                self.backend, self.seed
            ),
        }
    }
}

/// Drives one level (`tx`, at `depth`) until it ends or the run does.
fn drive<'f>(
    run: &'f mut Run,
    tx: Transaction<'f>,
    depth: usize,
) -> Pin<Box<dyn Future<Output = ()> + 'f>> {
    Box::pin(async move {
        let mut tx = tx;
        loop {
            if run.steps_left == 0 {
                run.model.end_level(false);
                drop(tx);
                return run.check("end of run: dropped");
            }
            run.steps_left -= 1;
            let poisoned = run.model.poisoned;
            match run.rng.below(100) {
                0..=34 => {
                    let title = run.title();
                    let inserted = tx.insert(todo(&title, "x", None)).await;
                    if poisoned {
                        run.expect_rolled_back(inserted, "insert");
                    } else {
                        inserted.unwrap();
                        run.model.pending.last_mut().unwrap().push(title);
                    }
                    run.check("insert");
                }
                35..=39 => {
                    // A constraint violation undoes only its own statement.
                    let failed = tx.insert(todo("short", "x", None)).await;
                    if poisoned {
                        run.expect_rolled_back(failed, "bad insert");
                    } else {
                        assert_eq!(
                            failed.unwrap_err().constraint_kind(),
                            Some(driftwood::ConstraintKind::Check)
                        );
                    }
                    run.check("bad insert");
                }
                40..=42 => {
                    // SQLite rolls the whole transaction back by itself.
                    let conflict = tx
                        .custom_statement(
                            "INSERT OR ROLLBACK INTO categories (description) VALUES ('Dup')",
                            [],
                        )
                        .await;
                    if poisoned {
                        run.expect_rolled_back(conflict, "conflict");
                    } else {
                        assert!(conflict.is_err());
                        run.model.poison();
                    }
                    run.check("or rollback");
                }
                43..=47 => {
                    // Give up on an insert after one poll: its outcome is
                    // learned through the transaction's own view.
                    let title = run.title();
                    {
                        let mut insert = Box::pin(tx.insert(todo(&title, "x", None)).into_future());
                        let _ = poll_once(insert.as_mut());
                    }
                    let seen = tx
                        .select::<Todo>()
                        .filter(Todo::TITLE.eq(title.as_str()))
                        .count()
                        .await;
                    match seen {
                        Err(Error::RolledBack { .. }) => run.model.poison(),
                        Ok(1) if !poisoned => run.model.pending.last_mut().unwrap().push(title),
                        Ok(0) if !poisoned => {}
                        other => panic!(
                            "{:?}, seed {}: after a cancelled insert: {other:?}",
                            run.backend, run.seed
                        ),
                    }
                    run.check("cancelled insert");
                }
                48..=50 if run.backend == Backend::Background => {
                    // A long write given up on: interrupted (SQLite then
                    // rolls the transaction back) or skipped.
                    {
                        let mut flood = Box::pin(tx.custom_statement(
                            "INSERT INTO todos (title, body) WITH RECURSIVE n(i) AS \
                             (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT 'Flooder', 'x' FROM n",
                            [],
                        ));
                        let _ = poll_once(flood.as_mut());
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    match tx.select::<Todo>().count().await {
                        Err(Error::RolledBack { .. }) => run.model.poison(),
                        Ok(n) if !poisoned => assert_eq!(n as usize, run.model.visible().len()),
                        other => panic!(
                            "{:?}, seed {}: after an interrupted write: {other:?}",
                            run.backend, run.seed
                        ),
                    }
                    run.check("interrupted write");
                }
                51..=53 => {
                    // A savepoint's begin given up on never touches this level.
                    {
                        let mut begin = Box::pin(tx.begin());
                        let _ = poll_once(begin.as_mut());
                    }
                    run.check("abandoned begin");
                }
                54..=57 => {
                    if !poisoned {
                        let mut rows: Vec<String> = tx
                            .select::<Todo>()
                            .get()
                            .await
                            .unwrap()
                            .into_iter()
                            .map(|t| t.title)
                            .collect();
                        rows.sort();
                        let expected: Vec<String> = run.model.visible().into_iter().collect();
                        assert_eq!(rows, expected, "{:?}, seed {}", run.backend, run.seed);
                    }
                    run.check("read in transaction");
                }
                58..=71 if depth < 4 => match tx.begin().await {
                    Ok(child) => {
                        run.model.pending.push(Vec::new());
                        run.check("begin savepoint");
                        drive(run, child, depth + 1).await;
                    }
                    Err(error) => {
                        assert!(poisoned, "{:?}, seed {}: {error}", run.backend, run.seed);
                        run.check("begin refused");
                    }
                },
                72..=83 => {
                    let committed = tx.commit().await;
                    if poisoned {
                        run.expect_rolled_back(committed, "commit");
                    } else {
                        committed.unwrap();
                    }
                    run.model.end_level(true);
                    return run.check("commit");
                }
                84..=91 => {
                    tx.rollback().await.unwrap();
                    run.model.end_level(false);
                    return run.check("rollback");
                }
                92..=99 => {
                    drop(tx);
                    run.model.end_level(false);
                    return run.check("drop");
                }
                _ => {}
            }
        }
    })
}

#[test]
fn a_random_transaction_tree_matches_its_model_and_the_file() {
    for backend in BACKENDS {
        within(600, move || {
            block_on(async move {
                let (dir, db) = open(backend).await;
                db.custom_statement("INSERT INTO categories (description) VALUES ('Dup')", [])
                    .await
                    .unwrap();
                let file = rusqlite::Connection::open(dir.path().join("todos.db")).unwrap();
                let seed = seed();
                let mut run = Run {
                    rng: Rng(seed),
                    model: Model {
                        committed: BTreeSet::new(),
                        pending: Vec::new(),
                        poisoned: false,
                    },
                    backend,
                    dir,
                    file,
                    next_title: 0,
                    steps_left: steps(),
                    seed,
                    trace: Vec::new(),
                };
                while run.steps_left > 0 {
                    let tx = db.begin().await.unwrap();
                    run.model.pending.push(Vec::new());
                    drive(&mut run, tx, 0).await;
                    assert!(run.model.pending.is_empty());
                    // Outside any transaction, the database works normally.
                    let title = run.title();
                    db.insert(todo(&title, "x", None)).await.unwrap();
                    run.model.committed.insert(title);
                    run.check("autocommit insert");
                }
                assert_eq!(titles_on_disk(&run.dir).len(), run.model.committed.len());
            })
        });
    }
}

/// How one client's transaction ended, as far as the client knows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Committed,
    RolledBack,
    /// The commit's future was dropped: either way, but never partly.
    Unknown,
}

const ROWS_PER_TRANSACTION: i64 = 4;

#[test]
fn sixteen_clients_keep_every_acknowledged_transaction_whole() {
    within(300, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stress.db");
        let server = block_on(Server::open(&path)).unwrap();
        let db = block_on(server.connect::<NoSchema>()).unwrap();
        block_on(db.custom_statement(
            "CREATE TABLE stress (client INTEGER, txn INTEGER, k INTEGER)",
            [],
        ))
        .unwrap();
        let seed = seed();
        let threads: Vec<_> = (0..16u64)
            .map(|client| {
                let server = server.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng(seed ^ (client + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let db = block_on(server.connect::<NoSchema>()).unwrap();
                    let mut outcomes = Vec::new();
                    for txn in 0..60i64 {
                        let insert = move |k: i64| {
                            (
                                "INSERT INTO stress (client, txn, k) VALUES (?, ?, ?)",
                                args![client as i64, txn, k],
                            )
                        };
                        let outcome = block_on(async {
                            match rng.below(4) {
                                0 => {
                                    // The scoped form: calls through the Db join it.
                                    let result = db
                                        .transaction(|| async {
                                            for k in 0..ROWS_PER_TRANSACTION {
                                                let (sql, args) = insert(k);
                                                db.custom_statement(sql, args).await?;
                                            }
                                            Ok(())
                                        })
                                        .await;
                                    result.map_or(Outcome::RolledBack, |()| Outcome::Committed)
                                }
                                1 => {
                                    // A unit of work on the server thread.
                                    let result = db
                                        .write(move |conn| {
                                            for k in 0..ROWS_PER_TRANSACTION {
                                                let (sql, args) = insert(k);
                                                conn.custom_statement(sql, args)?;
                                            }
                                            Ok(())
                                        })
                                        .await;
                                    result.map_or(Outcome::RolledBack, |()| Outcome::Committed)
                                }
                                choice => {
                                    // The owned handle, abandoned half-way or its
                                    // commit given up on after one poll.
                                    let tx = db.begin().await.unwrap();
                                    for k in 0..ROWS_PER_TRANSACTION {
                                        let (sql, args) = insert(k);
                                        tx.custom_statement(sql, args).await.unwrap();
                                        if choice == 2 && k == 1 && rng.below(2) == 0 {
                                            return Outcome::RolledBack;
                                        }
                                    }
                                    if rng.below(3) == 0 {
                                        let mut commit = Box::pin(tx.commit());
                                        let _ = poll_once(commit.as_mut());
                                        return Outcome::Unknown;
                                    }
                                    tx.commit().await.unwrap();
                                    Outcome::Committed
                                }
                            }
                        });
                        outcomes.push((txn, outcome));
                    }
                    (client, outcomes)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        server.shutdown_all();

        let file = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = file
            .prepare("SELECT count(*), count(DISTINCT k) FROM stress WHERE client = ? AND txn = ?")
            .unwrap();
        for (client, outcomes) in results {
            for (txn, outcome) in outcomes {
                let (rows, distinct): (i64, i64) = stmt
                    .query_row([client as i64, txn], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap();
                let whole = rows == ROWS_PER_TRANSACTION && distinct == ROWS_PER_TRANSACTION;
                match outcome {
                    Outcome::Committed => assert!(
                        whole,
                        "seed {seed}: client {client} txn {txn} acknowledged, {rows} rows"
                    ),
                    Outcome::RolledBack => assert_eq!(
                        rows, 0,
                        "seed {seed}: client {client} txn {txn} rolled back"
                    ),
                    Outcome::Unknown => assert!(
                        whole || rows == 0,
                        "seed {seed}: client {client} txn {txn} is partial: {rows} rows"
                    ),
                }
            }
        }
    });
}
