//! Regression tests for defects the migration probes found (issue 9).
//! Each test pins one problem: its name says what must hold, the line above
//! it gives the scenario the probe built. Every file is written by plain
//! rusqlite at version 1, migrated to version 2 by an ad hoc step, and read
//! back by a connection of its own; every test runs under a time limit.

mod common;

use common::{block_on, within};
use driftwood::migration::{self, schema_differences};
use driftwood::prelude::*;
use driftwood::sqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------- helpers

/// A schema as SQLite reads it back after running `sql` in a fresh database.
fn schema_of(sql: &str) -> Schema {
    let c = Connection::open_in_memory(&OpenOptions::default()).unwrap();
    c.raw().execute_batch(sql).unwrap();
    c.read_schema().unwrap()
}

/// A file at user_version 1 built by plain rusqlite (rollback journal).
fn file(setup: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    c.execute_batch(setup).unwrap();
    c.execute_batch("PRAGMA user_version = 1").unwrap();
    (dir, path)
}

/// Rows of `sql` as `a|b|c` strings, read by a plain connection.
fn q(path: &Path, sql: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut s = c.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = s.column_count();
    s.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                rusqlite::types::Value::Null => "NULL".to_owned(),
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Real(f) => f.to_string(),
                rusqlite::types::Value::Text(t) => t,
                rusqlite::types::Value::Blob(b) => format!("x{b:?}"),
            })
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn q1(path: &Path, sql: &str) -> String {
    q(path, sql).into_iter().next().unwrap_or_default()
}

/// Runs `sql` on a plain connection with foreign keys on.
fn try_q(path: &Path, sql: &str) -> Result<(), String> {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    c.execute_batch(sql).map_err(|e| e.to_string())
}

/// The version, the schema and every row of every table, for "nothing changed".
fn snapshot(path: &Path) -> (String, Vec<String>, Vec<String>) {
    let version = q1(path, "PRAGMA user_version");
    let schema = q(
        path,
        "SELECT type || ' ' || name || ' ' || coalesce(sql,'') FROM sqlite_schema ORDER BY name",
    );
    let mut rows = Vec::new();
    for t in q(
        path,
        "SELECT name FROM sqlite_schema WHERE type='table' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
    ) {
        let quoted = format!("\"{}\"", t.replace('"', "\"\""));
        for r in q(path, &format!("SELECT * FROM {quoted}")) {
            rows.push(format!("{t}: {r}"));
        }
    }
    (version, schema, rows)
}

type AdHocStep = dyn Fn(&Migrator<'_>) -> Result<()>;
thread_local! {
    static STEP: std::cell::RefCell<Option<Box<AdHocStep>>> = const { std::cell::RefCell::new(None) };
    static SCHEMA: std::cell::RefCell<Option<Schema>> = const { std::cell::RefCell::new(None) };
}

/// A database whose schema and upgrade step the test sets (per thread).
struct AdHoc;
impl Database for AdHoc {
    const SCHEMA_VERSION: u32 = 2;
    fn schema() -> Schema {
        SCHEMA.with(|s| s.borrow().clone().unwrap())
    }
    fn on_upgrade(m: &Migrator<'_>, _: u32, _: u32) -> Result<()> {
        STEP.with(|s| (s.borrow().as_ref().unwrap())(m))
    }
}

/// Runs `step` as the upgrade 1 → 2 towards `schema` on a new connection.
fn migrate(
    path: &Path,
    schema: Schema,
    step: impl Fn(&Migrator<'_>) -> Result<()> + 'static,
) -> Result<OpenDetails> {
    let conn = Connection::open(path, &OpenOptions::default())?;
    STEP.with(|s| *s.borrow_mut() = Some(Box::new(step)));
    SCHEMA.with(|s| *s.borrow_mut() = Some(schema));
    let r = migration::open::<AdHoc>(&conn, 2);
    STEP.with(|s| *s.borrow_mut() = None);
    r
}

/// The differences between the file and `schema`; empty when they match.
fn diff(path: &Path, schema: &Schema) -> String {
    let conn = Connection::open(path, &OpenOptions::default()).unwrap();
    schema_differences(&conn, schema).unwrap().to_string()
}

// ------------------------------------------------------------- rebuilds

// Scenario (found by a probe): a table holding rows at rowid i64::MIN, 0 and i64::MAX is rebuilt (a new column) with a progress callback.
#[test]
fn a_rebuild_with_progress_keeps_the_row_at_the_smallest_rowid() {
    within(60, || {
        let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO t VALUES (-9223372036854775808,'min'),(0,'zero'),(9223372036854775807,'max');"
        ));
        let schema = schema_of(&v1.replace("v TEXT)", "v TEXT, w TEXT)"));
        migrate(&path, schema, |m| {
            m.alter_table(TableMigration::new("t").new_column("w").on_progress(|_| {}))
        })
        .unwrap();
        assert_eq!(
            q(&path, "SELECT v FROM t ORDER BY id"),
            ["min", "zero", "max"]
        );
    });
}

// Scenario (found by a probe): a table with a user column named `rowid` (no rowid alias) is rebuilt with a progress callback.
#[test]
fn a_rebuild_with_progress_copies_a_table_with_a_column_named_rowid() {
    within(60, || {
        let v1 = "CREATE TABLE t (rowid TEXT, v TEXT);";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO t VALUES ('a','x'),(NULL,'y'),('b','z');"
        ));
        let schema = schema_of(&v1.replace("v TEXT)", "v TEXT, w TEXT)"));
        let r = migrate(&path, schema, |m| {
            m.alter_table(TableMigration::new("t").new_column("w").on_progress(|_| {}))
        });
        assert!(r.is_ok(), "{:?}", r.err().map(|e| e.to_string()));
        assert_eq!(q(&path, "SELECT v FROM t ORDER BY v"), ["x", "y", "z"]);
        assert_eq!(
            q(&path, "SELECT rowid FROM t ORDER BY v"),
            ["a", "NULL", "b"]
        );
    });
}

// Scenario (found by a probe): a table without a rowid alias (implicit rowids 5, 10, 100) backs an FTS5 external-content table and is rebuilt.
#[test]
fn a_rebuild_keeps_implicit_rowids_so_an_fts5_content_table_still_finds_its_rows() {
    within(60, || {
        let v1 = "CREATE TABLE notes (body TEXT);
                  CREATE VIRTUAL TABLE notes_fts USING fts5(body, content='notes');";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO notes(rowid, body) VALUES (5,'apple'),(10,'banana'),(100,'cherry');
             INSERT INTO notes_fts(notes_fts) VALUES ('rebuild');"
        ));
        let schema = schema_of(&v1.replace("(body TEXT)", "(body TEXT, tag TEXT)"));
        migrate(&path, schema, |m| {
            m.alter_table(TableMigration::new("notes").new_column("tag"))
        })
        .unwrap();
        assert_eq!(
            q(
                &path,
                "SELECT rowid || '=' || body FROM notes ORDER BY rowid"
            ),
            ["5=apple", "10=banana", "100=cherry"]
        );
        assert_eq!(
            q(
                &path,
                "SELECT body FROM notes_fts WHERE notes_fts MATCH 'banana'"
            ),
            ["banana"]
        );
        try_q(
            &path,
            "INSERT INTO notes_fts(notes_fts, rank) VALUES ('integrity-check', 1)",
        )
        .unwrap();
    });
}

// Scenario (found by a probe): a trigger on another table inserts into `My "Odd" Table`, which is rebuilt.
#[test]
fn a_rebuild_keeps_a_trigger_on_another_table_that_names_a_table_with_quotes_in_its_name() {
    within(60, || {
        let v1 = r#"CREATE TABLE "My ""Odd"" Table" (id INTEGER PRIMARY KEY, v TEXT);
                  CREATE TABLE other (x TEXT);
                  CREATE TRIGGER other_t AFTER INSERT ON other BEGIN INSERT INTO "My ""Odd"" Table" (v) VALUES (new.x); END;"#;
        let (_d, path) = file(&format!(
            r#"{v1} INSERT INTO "My ""Odd"" Table" VALUES (1,'a');"#
        ));
        let schema = schema_of(&v1.replace("v TEXT);", "v TEXT, w TEXT);"));
        migrate(&path, schema, |m| {
            m.alter_table(TableMigration::new("My \"Odd\" Table").new_column("w"))
        })
        .unwrap();
        assert_eq!(
            q(
                &path,
                "SELECT name FROM sqlite_schema WHERE type = 'trigger'"
            ),
            ["other_t"]
        );
        try_q(&path, "INSERT INTO other VALUES ('b')").unwrap();
        assert_eq!(
            q(&path, r#"SELECT v FROM "My ""Odd"" Table" ORDER BY id"#),
            ["a", "b"]
        );
    });
}

// Scenario (found by a probe): a step drops the UNIQUE column "group" of "Order" (a rebuild, which recreates the view ov) and then renames "Select" to "Where"; the code's schema already has ov reading "Where".
#[test]
fn a_view_recreated_by_a_rebuild_is_put_back_as_it_was_so_a_later_rename_column_updates_it() {
    within(60, || {
        let v1 = r#"CREATE TABLE "Order" ("Index" INTEGER PRIMARY KEY, "group" TEXT UNIQUE, "Select" TEXT, keep TEXT);
                    CREATE VIEW ov AS SELECT "Index", "Select" FROM "Order";"#;
        let (_d, path) = file(&format!(
            r#"{v1} INSERT INTO "Order" VALUES (1,'g1','s1','k1'),(2,'g2','s2','k2');"#
        ));
        let v2 = r#"CREATE TABLE "Order" ("Index" INTEGER PRIMARY KEY, "Where" TEXT, keep TEXT);
                    CREATE VIEW ov AS SELECT "Index", "Where" FROM "Order";"#;
        let schema = schema_of(v2);
        migrate(&path, schema.clone(), |m| {
            m.drop_column(("Order", "group"))?; // UNIQUE: a rebuild
            m.rename_column("Order", "Select", "Where")
        })
        .unwrap();
        assert_eq!(
            q(
                &path,
                r#"SELECT "Index", "Where", keep FROM "Order" ORDER BY 1"#
            ),
            ["1|s1|k1", "2|s2|k2"]
        );
        // Recreated from the code's schema before the rename, `"Where"` would
        // have been read as the string literal 'Where' and frozen there.
        assert_eq!(
            q(&path, r#"SELECT "Where" FROM ov ORDER BY 1"#),
            ["s1", "s2"],
            "view sql: {:?}",
            q(&path, "SELECT sql FROM sqlite_schema WHERE name = 'ov'")
        );
        assert_eq!(diff(&path, &schema), "");
    });
}

// Scenario (found by a probe): a step rebuilds t with an empty TableMigration (dropping old_col, which the index t_old needs), the rebuild fails, and the step swallows the error and returns Ok.
#[test]
fn a_failed_rebuild_that_the_step_swallows_leaves_the_table_its_index_and_view_as_they_were() {
    within(60, || {
        let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, old_col TEXT);
                  CREATE INDEX t_old ON t (old_col);
                  CREATE VIEW tv AS SELECT id, name FROM t;";
        let (_d, path) = file(&format!("{v1} INSERT INTO t VALUES (1,'a','o');"));
        let (_, schema_before, rows_before) = snapshot(&path);
        let schema = schema_of(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); CREATE VIEW tv AS SELECT id, name FROM t;",
        );
        let outcome = Arc::new(Mutex::new(String::new()));
        let o2 = outcome.clone();
        migrate(&path, schema, move |m| {
            // Try the rebuild; if it fails (the index on old_col), keep the table.
            if let Err(e) = m.alter_table(TableMigration::new("t")) {
                *o2.lock().unwrap() = e.to_string();
            }
            Ok(())
        })
        .unwrap();
        let message = outcome.lock().unwrap().clone();
        println!("P14: {message}");
        assert!(
            message.contains("t_old"),
            "error names the index: {message}"
        );
        assert_eq!(
            q(&path, "SELECT name FROM sqlite_schema ORDER BY name"),
            ["t", "t_old", "tv"],
            "a failed rebuild left the schema half done ({message})"
        );
        let (version, schema_after, rows_after) = snapshot(&path);
        assert_eq!(
            version, "2",
            "the step returned Ok: the migration committed"
        );
        assert_eq!(schema_after, schema_before);
        assert_eq!(rows_after, rows_before);
        assert_eq!(q(&path, "SELECT * FROM t"), ["1|a|o"]);
    });
}

// Scenario (found by a probe): dropping b from the composite primary key (a, b) leaves duplicates in a, so the rebuild's copy fails.
#[test]
fn the_error_of_a_rebuild_whose_copy_fails_names_the_users_table_not_the_temporary_one() {
    within(60, || {
        let v1 = "CREATE TABLE kv (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b));";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO kv VALUES ('x',1,'1'),('x',2,'2');"
        ));
        let before = snapshot(&path);
        let schema = schema_of("CREATE TABLE kv (a TEXT, v TEXT, PRIMARY KEY (a));");
        let e = migrate(&path, schema, |m| m.drop_column(("kv", "b")))
            .unwrap_err()
            .to_string();
        println!("P34: {e}");
        assert!(
            !e.contains("_driftwood_new"),
            "names a temporary table: {e}"
        );
        assert!(e.contains("kv"), "{e}");
        assert_eq!(snapshot(&path), before);
    });
}

// ------------------------------------------------------ add/drop column

// Scenario (found by a probe): c has `FOREIGN KEY (pid) REFERENCES p (id)` at table level and a step drops pid, which SQLite's ALTER TABLE DROP COLUMN refuses.
#[test]
fn drop_column_of_a_column_in_a_table_level_foreign_key_falls_back_to_the_rebuild() {
    within(60, || {
        let (_d, path) = file(
            "CREATE TABLE p (id INTEGER PRIMARY KEY);
             CREATE TABLE c (id INTEGER PRIMARY KEY, pid INTEGER, v TEXT, FOREIGN KEY (pid) REFERENCES p (id));
             INSERT INTO p VALUES (1); INSERT INTO c VALUES (1,1,'v');",
        );
        let schema = schema_of(
            "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (id INTEGER PRIMARY KEY, v TEXT);",
        );
        let r = migrate(&path, schema.clone(), |m| m.drop_column(("c", "pid")));
        assert!(r.is_ok(), "{:?}", r.err().map(|e| e.to_string()));
        assert_eq!(q(&path, "SELECT * FROM c"), ["1|v"]);
        assert_eq!(diff(&path, &schema), "");
    });
}

// Scenario (found by a probe): another component's table `legacy` has `PRIMARY KEY (b DESC)` and `UNIQUE ON CONFLICT REPLACE`, which the schema reader cannot represent; the app adds a UNIQUE column to t (a rebuild), and drops one natively and through a rebuild.
#[test]
fn a_table_elsewhere_the_schema_reader_cannot_represent_does_not_break_add_column_or_drop_column() {
    within(60, || {
        let legacy = "CREATE TABLE legacy (a TEXT UNIQUE ON CONFLICT REPLACE, b TEXT, PRIMARY KEY (b DESC));";
        let v1 = format!("{legacy} CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);");
        let (_d, path) = file(&format!("{v1} INSERT INTO t VALUES (1,'a');"));
        // The app's code schema does not model `legacy` (it is another
        // component's table).
        let schema =
            schema_of("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, email TEXT UNIQUE);");
        let r = migrate(&path, schema, |m| m.add_column(("t", "email")));
        assert!(
            r.is_ok(),
            "add_column: {:?}",
            r.err().map(|e| e.to_string())
        );
        assert_eq!(q(&path, "SELECT * FROM t"), ["1|a|NULL"]);

        let narrow = schema_of("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);");
        for (how, extra) in [("native", "extra TEXT"), ("rebuild", "extra TEXT UNIQUE")] {
            let (_d, path) = file(&format!(
                "{legacy} CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, {extra}); INSERT INTO t VALUES (1,'a','x');"
            ));
            let r = migrate(&path, narrow.clone(), |m| m.drop_column(("t", "extra")));
            assert!(
                r.is_ok(),
                "drop_column ({how}): {:?}",
                r.err().map(|e| e.to_string())
            );
            assert_eq!(q(&path, "SELECT * FROM t"), ["1|a"], "{how}");
            assert!(
                q1(&path, "SELECT sql FROM sqlite_schema WHERE name = 'legacy'")
                    .contains("PRIMARY KEY (b DESC)"),
                "{how}: legacy untouched"
            );
        }
    });
}

// Scenario (found by a probe): a view with a column list, `CREATE VIEW names (n) AS …`, which the schema reader cannot represent; the app adds a plain nullable column to t, and drops one natively and through a rebuild.
#[test]
fn a_view_with_a_column_list_does_not_break_add_column_or_drop_column() {
    within(60, || {
        let view = "CREATE VIEW names (n) AS SELECT name FROM t;";
        let v1 = format!("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); {view}");
        let (_d, path) = file(&format!("{v1} INSERT INTO t VALUES (1,'a');"));
        // A plain nullable column: native ALTER TABLE ADD COLUMN would do.
        let schema = schema_of("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, email TEXT);");
        let r = migrate(&path, schema, |m| m.add_column(("t", "email")));
        assert!(
            r.is_ok(),
            "add_column: {:?}",
            r.err().map(|e| e.to_string())
        );
        assert_eq!(q(&path, "SELECT n FROM names"), ["a"]);

        let narrow = schema_of("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);");
        for (how, extra) in [("native", "extra TEXT"), ("rebuild", "extra TEXT UNIQUE")] {
            let (_d, path) = file(&format!(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, {extra}); {view} INSERT INTO t VALUES (1,'a','x');"
            ));
            let r = migrate(&path, narrow.clone(), |m| m.drop_column(("t", "extra")));
            assert!(
                r.is_ok(),
                "drop_column ({how}): {:?}",
                r.err().map(|e| e.to_string())
            );
            assert_eq!(q(&path, "SELECT n FROM names"), ["a"], "{how}");
            assert_eq!(
                q(&path, "SELECT sql FROM sqlite_schema WHERE name = 'names'"),
                ["CREATE VIEW names (n) AS SELECT name FROM t"],
                "{how}"
            );
        }
    });
}

// ------------------------------------------------------- foreign key checks

// Scenario (found by a probe): child has a key SQLite can check (p → parent.id) and one it cannot (tag → tags.name, not a key); child rowid 2 points at no parent.
#[test]
fn a_violation_in_a_table_that_also_has_an_uncheckable_key_aborts_the_migration() {
    within(60, || {
        let setup = "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                     CREATE TABLE tags (name TEXT);
                     CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent (id), tag TEXT REFERENCES tags (name));";
        let (_d, path) = file(&format!(
            "{setup} INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1, NULL), (2, 99, NULL);"
        ));
        let before = snapshot(&path);
        let e = match migrate(&path, schema_of(setup), |_| Ok(())) {
            Ok(details) => panic!(
                "committed with child rowid 2 pointing at no parent; warnings: {:?}",
                details.warnings
            ),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("foreign_key_check found 1 violation(s)"), "{e}");
        assert!(
            e.contains("child rowid 2 points at no row of parent"),
            "{e}"
        );
        assert_eq!(snapshot(&path), before);
    });
}

// Scenario (found by a probe): child's `p INTEGER REFERENCES parent` has no column list and parent has no primary key, so SQLite cannot check it.
#[test]
fn a_key_without_a_column_list_to_a_table_without_a_primary_key_gets_one_warning() {
    within(60, || {
        let setup = "CREATE TABLE parent (x TEXT);
                     CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent);";
        let (_d, path) = file(&format!("{setup} INSERT INTO child VALUES (1, 5);"));
        let details = migrate(&path, schema_of(setup), |_| Ok(())).unwrap();
        assert_eq!(details.warnings.len(), 1, "{:?}", details.warnings);
        let warning = &details.warnings[0];
        assert!(
            warning.contains("child(p) → parent cannot be checked by SQLite"),
            "{warning}"
        );
        assert!(warning.contains("parent has no primary key"), "{warning}");
        assert_eq!(q1(&path, "PRAGMA user_version"), "2");
    });
}

// ------------------------------------------------------- open sequence

mod erase {
    use driftwood::prelude::*;

    pub struct Geo;
    impl Database for Geo {
        const SCHEMA_VERSION: u32 = 1;
        const ERASE_ON_SCHEMA_CHANGE: bool = true;
        fn schema() -> Schema {
            super::schema_of("CREATE VIRTUAL TABLE geo USING rtree(id, minx, maxx);")
        }
    }

    pub struct Other;
    impl Database for Other {
        const SCHEMA_VERSION: u32 = 1;
        const ERASE_ON_SCHEMA_CHANGE: bool = true;
        fn schema() -> Schema {
            super::schema_of(
                "CREATE TABLE other (id INTEGER PRIMARY KEY, x TEXT); CREATE VIEW ov AS SELECT x FROM other;",
            )
        }
    }
}

// Scenario (found by a probe): a file created by a database whose schema is an R*Tree virtual table is opened by one with another schema and ERASE_ON_SCHEMA_CHANGE.
#[test]
fn erase_on_schema_change_erases_an_rtree_table_and_its_shadow_tables() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("geo.db");
        let db = block_on(Db::<erase::Geo>::open(&path)).unwrap();
        block_on(db.close()).unwrap();
        let db = block_on(Db::<erase::Other>::open(&path));
        assert!(db.is_ok(), "{}", db.err().unwrap());
        block_on(db.unwrap().close()).unwrap();
        assert_eq!(
            q(
                &path,
                "SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite%' ORDER BY name"
            ),
            ["other", "ov"]
        );
    });
}

const SIMPLE: &str =
    "CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT UNIQUE ON CONFLICT ROLLBACK);";

// Scenario (found by a probe): a database with SCHEMA_VERSION 3,000,000,000 (above i32::MAX, where user_version is signed) creates a file and opens it again.
#[test]
fn a_schema_version_above_i32_max_round_trips_without_an_upgrade() {
    within(60, || {
        static UPGRADES: AtomicUsize = AtomicUsize::new(0);
        struct Big;
        impl Database for Big {
            const SCHEMA_VERSION: u32 = 3_000_000_000;
            fn schema() -> Schema {
                schema_of(SIMPLE)
            }
            fn on_upgrade(_: &Migrator<'_>, _: u32, _: u32) -> Result<()> {
                UPGRADES.fetch_add(1, SeqCst);
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.db");
        let db = block_on(Db::<Big>::open(&path)).unwrap();
        block_on(db.close()).unwrap();
        let again = block_on(Db::<Big>::open(&path));
        assert!(
            again.is_ok(),
            "reopening the file it just created: {}",
            again.err().unwrap()
        );
        block_on(again.unwrap().close()).unwrap();
        assert_eq!(UPGRADES.load(SeqCst), 0, "no upgrade on reopen");
    });
}

// Scenario (found by a probe): a step runs setup pragmas (which have no effect inside the migration's transaction) written with odd case, a schema name, a quoted name, a leading comment or a line break.
#[test]
fn setup_pragmas_in_a_migration_are_refused_however_they_are_written() {
    within(60, || {
        let sqls = [
            ("pragma FOREIGN_KEYS=1", "foreign_keys"),
            ("PRAGMA main.foreign_keys = ON", "foreign_keys"),
            ("PRAGMA \"foreign_keys\" = ON", "foreign_keys"),
            ("/* setup */ PRAGMA foreign_keys = ON", "foreign_keys"),
            ("-- setup\nPRAGMA foreign_keys = ON", "foreign_keys"),
            ("PRAGMA journal_mode = DELETE", "journal_mode"),
            ("PRAGMA locking_mode = EXCLUSIVE", "locking_mode"),
            ("PRAGMA foreign_keys\n= ON", "foreign_keys"),
        ];
        let mut problems = Vec::new();
        for (sql, pragma) in sqls {
            let (_d, path) = file(SIMPLE);
            let r = migrate(&path, schema_of(SIMPLE), move |m| {
                m.custom_statement(sql, []).map(drop)
            });
            let expected = format!("PRAGMA {pragma} cannot change inside a transaction");
            match r {
                Ok(_) => problems.push(format!("{sql:?}: silently accepted")),
                Err(e)
                    if !e.to_string().contains(&expected)
                        || !e.to_string().contains("OpenOptions") =>
                {
                    problems.push(format!("{sql:?}: {e}"))
                }
                Err(_) => {}
            }
            if q1(&path, "PRAGMA user_version") != "1" {
                problems.push(format!("{sql:?}: the migration committed"));
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    });
}
