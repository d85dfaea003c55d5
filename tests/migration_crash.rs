//! Crash safety of migrations: a process migrating a large table is killed
//! (SIGKILL) at random moments, and every time the file is found whole at
//! the old version or at the new one, never in between.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Rng, block_on, within};
use driftwood::prelude::*;
use driftwood::schema::{Entity, Index, IndexColumn, View};

/// Todos in the file; each fourth one has a note.
const TODOS: i64 = 100_000;
/// Rounds of copy, migrate, kill, check.
const ROUNDS: usize = 24;
/// Set in the child process (this test binary again): the file it migrates.
const CHILD_MIGRATES: &str = "DRIFTWOOD_TEST_CHILD_MIGRATES";
/// The test's name, which the child is run with as its filter.
const TEST: &str = "a_migration_killed_at_any_moment_leaves_the_old_or_the_new_version_whole";

/// Version 1: todos with their category as text, notes referencing them.
mod v1 {
    use driftwood::prelude::*;

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "todos")]
    pub struct Todo {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub title: String,
        pub body: String,
        pub category: String,
    }

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "notes")]
    pub struct Note {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        #[column(references = "todos(id)", on_delete = "cascade")]
        pub todo: i64,
        pub text: String,
    }

    pub struct App;

    impl Database for App {
        const SCHEMA_VERSION: u32 = 1;
        fn schema() -> Schema {
            super::with_index_and_view(schema![Todo, Note])
        }
    }
}

/// Version 2: titles upper-cased, the category an integer (both by a
/// rebuild with transformers) and a new `priority` column (`ADD COLUMN`).
mod v2 {
    use driftwood::prelude::*;

    pub use super::v1::Note;

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "todos")]
    pub struct Todo {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub title: String,
        pub body: String,
        pub category: i64,
        #[column(default = 3)]
        pub priority: i64,
    }

    pub struct App;

    impl Database for App {
        const SCHEMA_VERSION: u32 = 2;
        fn schema() -> Schema {
            super::with_index_and_view(schema![Todo, Note])
        }
        fn on_upgrade(m: &Migrator<'_>, _: u32, _: u32) -> Result<()> {
            // Tells the parent the migration has begun (its transaction is open).
            if let Ok(path) = std::env::var(super::CHILD_MIGRATES) {
                std::fs::write(super::marker(path.as_ref(), "started"), "").unwrap();
            }
            m.add_column(Todo::PRIORITY)?;
            m.alter_table(
                TableMigration::of::<Todo>()
                    .transform(Todo::TITLE, "upper(title)")
                    .transform(Todo::CATEGORY, super::v1::Todo::CATEGORY.cast::<i64>()),
            )
        }
    }
}

/// `tables` with an index on each table and a view joining them.
fn with_index_and_view(tables: Schema) -> Schema {
    let index = |name: &str, table: &str, column: &str| {
        Entity::Index(Index {
            name: name.into(),
            table: table.into(),
            unique: false,
            columns: vec![IndexColumn::Column {
                name: column.into(),
                descending: false,
            }],
            where_clause: None,
        })
    };
    let mut entities = tables.entities;
    entities.push(index("todos_by_title", "todos", "title"));
    entities.push(index("notes_by_todo", "notes", "todo"));
    entities.push(Entity::View(View {
        name: "todo_notes".into(),
        select: "SELECT t.id, t.title, n.text FROM todos t JOIN notes n ON n.todo = t.id".into(),
    }));
    Schema::new(entities)
}

/// The file next to `path` whose existence says the child got to `what`.
fn marker(path: &Path, what: &str) -> PathBuf {
    path.with_extension(what)
}

// The demand: a child process migrating a large table (a rebuild
// with transformers plus ADD COLUMN, with a referencing table, indexes and
// a view) is killed with SIGKILL at random moments; after each kill a plain
// connection finds the file whole — integrity_check ok, foreign keys
// intact — at version 1 exactly as it was, or at version 2 with every row
// transformed, and driftwood then opens it at version 2 with every row.
// `DRIFTWOOD_MODEL_SEED` replays a run's delays.
#[test]
fn a_migration_killed_at_any_moment_leaves_the_old_or_the_new_version_whole() {
    if let Ok(path) = std::env::var(CHILD_MIGRATES) {
        let path = PathBuf::from(path);
        let start = Instant::now();
        let db = block_on(Db::<v2::App>::open(&path)).expect("migrate in the child");
        block_on(db.close()).expect("close in the child");
        let took = start.elapsed().as_micros().to_string();
        std::fs::write(marker(&path, "done"), took).unwrap();
        return;
    }
    within(300, || {
        let began = Instant::now();
        let seed = common::seed();
        println!("seed {seed} (DRIFTWOOD_MODEL_SEED={seed} replays it)");
        let mut rng = Rng(seed);
        let dir = tempfile::tempdir().unwrap();
        let pristine = dir.path().join("v1.db");
        prepare_v1(&pristine);
        let v1_schema = schema_dump(&pristine);

        // An uninterrupted migration, twice (the second with warm caches):
        // how long the child runs, and the schema version 2 must have.
        let reference = dir.path().join("v2.db");
        let mut span = Duration::ZERO;
        for _ in 0..2 {
            copy_db(&pristine, &reference);
            let start = Instant::now();
            let status = child(&reference, dir.path()).wait().unwrap();
            let elapsed = start.elapsed();
            assert!(
                status.success(),
                "the uninterrupted child failed: {status}\n{}",
                child_stderr(dir.path())
            );
            let inside: u64 = std::fs::read_to_string(marker(&reference, "done"))
                .unwrap()
                .parse()
                .unwrap();
            println!(
                "uninterrupted: the child ran {elapsed:?}, its open (the migration) took {:?}",
                Duration::from_micros(inside)
            );
            span = span.max(elapsed);
        }
        let db = block_on(Db::<v2::App>::open(&reference)).unwrap();
        block_on(db.write(driftwood::migration::validate_database_schema::<v2::App>))
            .expect("the migrated schema is the code's");
        block_on(db.close()).unwrap();
        let v2_schema = schema_dump(&reference);
        assert_eq!(
            check_whole(&reference, &pristine, &v1_schema, &v2_schema),
            2
        );
        let span_us = (span.as_micros() as u64) * 6 / 5;
        println!(
            "kill delays uniform in 0..{:?}",
            Duration::from_micros(span_us)
        );

        let mut found = Vec::new();
        for round in 0..ROUNDS {
            let file = dir.path().join(format!("round{round}.db"));
            copy_db(&pristine, &file);
            let delay = Duration::from_micros(rng.below(span_us + 1));
            let mut process = child(&file, dir.path());
            std::thread::sleep(delay);
            let _ = process.kill(); // it may have finished already
            let status = process.wait().unwrap();
            let killed = was_killed(&status);
            assert!(
                killed || status.success(),
                "round {round}: the child failed on its own: {status}\n{}",
                child_stderr(dir.path())
            );
            let started = marker(&file, "started").exists();
            let done = marker(&file, "done").exists();
            let version = check_whole(&file, &pristine, &v1_schema, &v2_schema);
            let moment = match (started, done) {
                (false, _) => "before migrating",
                (true, false) if version == 1 => "mid-migration",
                (true, false) => "after the commit",
                (true, true) => "after finishing",
            };
            println!(
                "round {round:2}: killed after {delay:>12?} ({}), found version {version}: {moment}",
                if killed { "killed" } else { "had exited" },
            );
            found.push((version, moment));

            // Whatever the kill left, driftwood finishes the migration.
            let db = block_on(Db::<v2::App>::open(&file))
                .unwrap_or_else(|e| panic!("round {round}: reopening at version 2 failed: {e}"));
            let count = block_on(db.select::<v2::Todo>().count()).unwrap();
            assert_eq!(count as i64, TODOS, "round {round}: rows after reopening");
            block_on(db.close()).unwrap();
            assert_eq!(
                check_whole(&file, &pristine, &v1_schema, &v2_schema),
                2,
                "round {round}: the version after reopening"
            );
            remove_db(&file);
        }

        let at = |version: u32| found.iter().filter(|(v, _)| *v == version).count();
        let mid = found.iter().filter(|(_, m)| *m == "mid-migration").count();
        let before = found
            .iter()
            .filter(|(_, m)| *m == "before migrating")
            .count();
        println!(
            "{} rounds: version 1 in {} ({before} before the migration began, {mid} \
             mid-migration), version 2 in {}; total {:?}",
            found.len(),
            at(1),
            at(2),
            began.elapsed()
        );
        assert!(found.len() >= 20);
        assert!(
            mid >= 1,
            "no kill landed while the migration ran: the test proved nothing"
        );
    });
}

/// Starts the child that migrates `file` to version 2; its stderr goes to a
/// file in `dir`.
fn child(file: &Path, dir: &Path) -> std::process::Child {
    let _ = std::fs::remove_file(marker(file, "started"));
    let _ = std::fs::remove_file(marker(file, "done"));
    let stderr = std::fs::File::create(dir.join("child.stderr")).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--test-threads=1"])
        .env(CHILD_MIGRATES, file)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start the child")
}

/// What the last child wrote to its stderr.
fn child_stderr(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("child.stderr")).unwrap_or_default()
}

#[cfg(unix)]
fn was_killed(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(not(unix))]
fn was_killed(status: &ExitStatus) -> bool {
    !status.success()
}

/// Creates the version-1 file: the schema by driftwood, the rows by a plain
/// connection; one more todo than kept, so the AUTOINCREMENT counter is
/// ahead of the largest id. Closed cleanly, so it is a single file.
fn prepare_v1(path: &Path) {
    let db = block_on(Db::<v1::App>::open(path)).unwrap();
    block_on(db.close()).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO todos (id, title, body, category)
         SELECT i, printf('todo %06d', i),
                printf('the body of todo %d, with some text to copy: %s', i, hex(randomblob(16))),
                CAST(i % 97 AS TEXT)
         FROM n;
         DELETE FROM todos WHERE id = {last};
         INSERT INTO notes (todo, text)
         SELECT id, 'a note on ' || title FROM todos WHERE id % 4 = 0;
         COMMIT;
         PRAGMA wal_checkpoint(TRUNCATE);",
        last = TODOS + 1
    ))
    .unwrap();
    drop(conn);
    assert!(
        !sibling(path, "-wal").exists(),
        "the version-1 file should be a single file"
    );
}

/// `path` with `suffix` appended (`-wal`, `-shm`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Copies a database file and its `-wal`/`-shm` files, if any, replacing
/// whatever `to` held.
fn copy_db(from: &Path, to: &Path) {
    remove_db(to);
    std::fs::copy(from, to).unwrap();
    for suffix in ["-wal", "-shm"] {
        if sibling(from, suffix).exists() {
            std::fs::copy(sibling(from, suffix), sibling(to, suffix)).unwrap();
        }
    }
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sibling(path, suffix));
    }
}

/// Every schema object of the file: type, name, table and SQL.
fn schema_dump(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT type || ' ' || name || ' on ' || tbl_name || ': ' || coalesce(sql, '') \
             FROM sqlite_schema WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name",
        )
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Checks with a plain connection that `path` is whole at version 1 (the
/// schema and rows of `pristine`, exactly) or at version 2 (the schema of
/// an uninterrupted migration, every row transformed); returns which.
fn check_whole(path: &Path, pristine: &Path, v1_schema: &[String], v2_schema: &[String]) -> u32 {
    let conn = rusqlite::Connection::open(path).unwrap();
    let strings = |sql: &str| -> Vec<String> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(strings("PRAGMA integrity_check"), ["ok"], "{path:?}");
    let foreign_key_violations = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |_| Ok(()))
        .unwrap()
        .count();
    assert_eq!(foreign_key_violations, 0, "foreign_key_check in {path:?}");
    let leftovers =
        strings("SELECT name FROM sqlite_schema WHERE name LIKE '\\_driftwood%' ESCAPE '\\'");
    assert!(
        leftovers.is_empty(),
        "leftover tables in {path:?}: {leftovers:?}"
    );
    let version = count("PRAGMA user_version") as u32;
    let schema = schema_dump(path);
    match version {
        1 => assert_eq!(schema, v1_schema, "the version-1 schema of {path:?}"),
        2 => assert_eq!(schema, v2_schema, "the version-2 schema of {path:?}"),
        other => panic!("{path:?} is at version {other}"),
    }

    conn.execute("ATTACH ?1 AS old", [pristine.to_str().unwrap()])
        .unwrap();
    let expected = if version == 1 {
        "SELECT id, title, body, category FROM old.todos"
    } else {
        "SELECT id, upper(title), body, CAST(category AS INTEGER), 3 FROM old.todos"
    };
    let found = if version == 1 {
        "SELECT id, title, body, category FROM main.todos"
    } else {
        "SELECT id, title, body, category, priority FROM main.todos"
    };
    assert_eq!(
        count("SELECT count(*) FROM main.todos"),
        TODOS,
        "todos in {path:?}"
    );
    assert_eq!(
        count(&format!("SELECT count(*) FROM ({expected} EXCEPT {found})")),
        0,
        "todos missing or changed at version {version} in {path:?}"
    );
    assert_eq!(
        count(&format!("SELECT count(*) FROM ({found} EXCEPT {expected})")),
        0,
        "todos not expected at version {version} in {path:?}"
    );
    let notes = count("SELECT count(*) FROM old.notes");
    assert_eq!(notes, TODOS / 4);
    assert_eq!(
        count("SELECT count(*) FROM main.notes"),
        notes,
        "notes in {path:?}"
    );
    assert_eq!(
        count("SELECT count(*) FROM (SELECT * FROM old.notes EXCEPT SELECT * FROM main.notes)"),
        0,
        "notes changed in {path:?}"
    );
    assert_eq!(
        count("SELECT count(*) FROM main.todo_notes"),
        notes,
        "the view in {path:?}"
    );
    assert_eq!(
        count("SELECT seq FROM main.sqlite_sequence WHERE name = 'todos'"),
        TODOS + 1,
        "the AUTOINCREMENT counter in {path:?}"
    );
    version
}
