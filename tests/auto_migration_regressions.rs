//! Regression tests for automatic migrations: each one a scenario a
//! hostile probe of `migrate_to_schema` and `AutoMigration` found broken,
//! kept so the defect stays fixed.

mod common;

use common::within;
use driftwood::migration::{self, AutoMigration, AutoPlan};
use driftwood::prelude::*;
use driftwood::sqlite::Connection;
use std::path::{Path, PathBuf};

/// The schema `sql` creates, as SQLite reads it back.
fn schema_of(sql: &str) -> Schema {
    let conn = Connection::open_in_memory(&OpenOptions::default()).unwrap();
    conn.raw().execute_batch(sql).unwrap();
    conn.read_schema().unwrap()
}

/// A file at version 1 made by `sql`, written with foreign keys off.
fn file(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute_batch(sql).unwrap();
    conn.execute_batch("PRAGMA user_version = 1").unwrap();
    (dir, path)
}

/// Migrates the file at `path` to the schema `target` creates, atomically.
fn mig(path: &Path, target: &str, hints: AutoMigration) -> driftwood::Result<AutoPlan> {
    let conn = Connection::open(path, &OpenOptions::default())?;
    migration::migrate_to_schema(&conn, schema_of(target), &hints, None)
}

/// The dry run of the migration of the file at `path` to `target`.
fn plan(path: &Path, target: &str, hints: AutoMigration) -> driftwood::Result<AutoPlan> {
    let conn = Connection::open(path, &OpenOptions::default())?;
    let m = Migrator::new(Conn::new(&conn), schema_of(target));
    hints.plan(&m)
}

/// What still differs between the file at `path` and `target` ("" when none).
fn diffs(path: &Path, target: &str) -> String {
    let conn = Connection::open(path, &OpenOptions::default()).unwrap();
    let d = migration::schema_differences(&conn, &schema_of(target)).unwrap();
    if d.is_empty() {
        String::new()
    } else {
        d.to_string()
    }
}

/// Rows of `sql`, read by a plain connection, each as `a|b|…` with text
/// quoted, reals suffixed `r` and NULL as `NULL`.
fn rows(path: &Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let width = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..width)
            .map(|i| match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                rusqlite::types::Value::Null => "NULL".to_string(),
                rusqlite::types::Value::Integer(i) => format!("{i}"),
                rusqlite::types::Value::Real(f) => format!("{f:?}r"),
                rusqlite::types::Value::Text(t) => format!("'{t}'"),
                rusqlite::types::Value::Blob(b) => format!("x{b:?}"),
            })
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn exec(path: &Path, sql: &str) -> rusqlite::Result<()> {
    rusqlite::Connection::open(path).unwrap().execute_batch(sql)
}

/// A logical dump: the schema, user_version and every ordinary table's rows.
fn dump(path: &Path) -> Vec<String> {
    let mut out = rows(
        path,
        "SELECT type||':'||name||':'||coalesce(sql,'') FROM sqlite_schema ORDER BY name",
    );
    out.extend(rows(path, "PRAGMA user_version"));
    let tables = rows(
        path,
        "SELECT name FROM sqlite_schema WHERE type='table' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
    );
    for t in tables {
        let t = t.trim_matches('\'').to_string();
        out.push(format!("== {t}"));
        out.extend(rows(path, &format!("SELECT * FROM \"{t}\"")));
    }
    out
}

// ---------------------------------------------------------------- generated columns

// Scenario (found by a probe): a plain column with values becomes a generated one; its stored values were silently replaced by computed ones.
#[test]
fn plain_column_becoming_generated_counts_its_values_as_lost() {
    within(60, || {
        let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, c INTEGER);";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO t(a, c) VALUES (1, 77), (2, 88);"
        ));
        let before = dump(&path);
        let v2 =
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, c INTEGER AS (a * 10) VIRTUAL);";
        let e = mig(&path, v2, AutoMigration::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "schema error: the automatic migration is refused:\ncolumn t.c: 2 values (it becomes generated) would be lost (allow_destructive to drop them)"
        );
        assert_eq!(dump(&path), before);
        let p = mig(&path, v2, AutoMigration::new().allow_destructive(true)).unwrap();
        assert_eq!(p.losses, ["column t.c: 2 values (it becomes generated)"]);
        assert_eq!(
            rows(&path, "SELECT a, c FROM t ORDER BY id"),
            ["1|10", "2|20"]
        );
        assert_eq!(diffs(&path, v2), "");
    })
}

// Scenario (found by a probe): a generated column changes only its declared type; the rebuild tried to cast a generated column.
#[test]
fn retyped_generated_column_is_rebuilt() {
    within(60, || {
        let v1 =
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, c INTEGER AS (a + 1) VIRTUAL);";
        let (_d, path) = file(&format!("{v1} INSERT INTO t(a) VALUES (1), (2);"));
        let v2 = "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, c TEXT AS (a + 1) VIRTUAL);";
        mig(&path, v2, AutoMigration::new()).unwrap();
        assert_eq!(
            rows(&path, "SELECT a, c FROM t ORDER BY id"),
            ["1|'2'", "2|'3'"]
        );
        assert_eq!(diffs(&path, v2), "");
    })
}

// ---------------------------------------------------------------- affinity

// Scenario (found by a probe): a table with NUMERIC, BOOLEAN and DATETIME columns is rebuilt for another column; those columns lost their NUMERIC affinity.
#[test]
fn numeric_affinity_survives_a_rebuild() {
    within(60, || {
        let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, price NUMERIC, flag BOOLEAN, at DATETIME, x TEXT);";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO t(price, flag, at, x) VALUES ('12', '1', '2024', '1');"
        ));
        let v2 = "CREATE TABLE t (id INTEGER PRIMARY KEY, price NUMERIC, flag BOOLEAN, at DATETIME, x INTEGER);";
        mig(&path, v2, AutoMigration::new()).unwrap();
        assert_eq!(diffs(&path, v2), "");
        exec(
            &path,
            "INSERT INTO t(price, flag, at, x) VALUES ('13', '0', '2025', '2')",
        )
        .unwrap();
        // NUMERIC affinity stores well-formed numeric text as a number.
        assert_eq!(
            rows(
                &path,
                "SELECT typeof(price), typeof(flag), typeof(at), typeof(x) FROM t ORDER BY id"
            ),
            [
                "'integer'|'integer'|'integer'|'integer'",
                "'integer'|'integer'|'integer'|'integer'"
            ]
        );
    })
}

// Scenario (found by a probe): a new table with DECIMAL and BOOLEAN columns was created with columns of no affinity.
#[test]
fn numeric_affinity_kept_in_a_created_table() {
    within(60, || {
        let (_d, path) = file("CREATE TABLE a (id INTEGER PRIMARY KEY);");
        let v2 = "CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE TABLE prices (id INTEGER PRIMARY KEY, amount DECIMAL(10,2), ok BOOLEAN);";
        mig(&path, v2, AutoMigration::new()).unwrap();
        assert_eq!(diffs(&path, v2), "");
        exec(
            &path,
            "INSERT INTO prices(amount, ok) VALUES ('12.50', '1')",
        )
        .unwrap();
        assert_eq!(
            rows(&path, "SELECT typeof(amount), typeof(ok) FROM prices"),
            ["'real'|'integer'"]
        );
    })
}

// ---------------------------------------------------------------- FTS5

const FTS_V1: &str = "
CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, body TEXT);
CREATE VIRTUAL TABLE docs_fts USING fts5(title, body, content='docs', content_rowid='id');
CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN
  INSERT INTO docs_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER docs_ad AFTER DELETE ON docs BEGIN
  INSERT INTO docs_fts(docs_fts, rowid, title, body) VALUES('delete', old.id, old.title, old.body);
END;
CREATE TRIGGER docs_au AFTER UPDATE ON docs BEGIN
  INSERT INTO docs_fts(docs_fts, rowid, title, body) VALUES('delete', old.id, old.title, old.body);
  INSERT INTO docs_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
END;
";

/// [`FTS_V1`] with rows, one of them deleted.
fn fts_v1_with_rows() -> String {
    format!(
        "{FTS_V1} INSERT INTO docs(title, body) VALUES ('apple pie', 'sweet'), ('banana', 'yellow fruit'), ('cherry', 'red fruit');
        DELETE FROM docs WHERE id = 2;
        INSERT INTO docs(title, body) VALUES ('date', 'brown fruit');"
    )
}

// Scenario (found by a probe): an external-content FTS5 table changes its definition; it was recreated empty (out of sync with its content table) and refused as a loss.
#[test]
fn changed_external_content_fts_table_is_rebuilt_from_its_content() {
    within(60, || {
        let (_d, path) = file(&fts_v1_with_rows());
        let v2 = FTS_V1.replace(
            "content_rowid='id');",
            "content_rowid='id', tokenize='porter');",
        );
        let p = mig(&path, &v2, AutoMigration::new()).unwrap();
        assert_eq!(p.losses, Vec::<String>::new(), "{p}");
        assert_eq!(diffs(&path, &v2), "");
        exec(
            &path,
            "INSERT INTO docs_fts(docs_fts) VALUES('integrity-check')",
        )
        .unwrap();
        assert_eq!(
            rows(
                &path,
                "SELECT rowid FROM docs_fts WHERE docs_fts MATCH 'fruit' ORDER BY rowid"
            ),
            ["3", "4"]
        );
    })
}

// Scenario (found by a probe): the content table of an external-content FTS5 table is renamed with a hint; the FTS table must follow and keep its index.
#[test]
fn fts_content_table_renamed_by_hint_keeps_the_index() {
    within(60, || {
        let (_d, path) = file(&fts_v1_with_rows());
        let v2 = FTS_V1
            .replace("docs", "articles")
            .replace("articles_fts", "docs_fts");
        mig(
            &path,
            &v2,
            AutoMigration::new().rename_table("docs", "articles"),
        )
        .unwrap();
        assert_eq!(diffs(&path, &v2), "");
        exec(
            &path,
            "INSERT INTO docs_fts(docs_fts) VALUES('integrity-check')",
        )
        .unwrap();
        assert_eq!(
            rows(
                &path,
                "SELECT rowid FROM docs_fts WHERE docs_fts MATCH 'fruit' ORDER BY rowid"
            ),
            ["3", "4"]
        );
    })
}

// ---------------------------------------------------------------- casts and defaults

// Scenario (found by a probe): TEXT to INTEGER over '007', '0123', '+44', '1e2'; the lossy-cast check compared numerically and let the text forms be lost.
#[test]
fn text_that_no_longer_reads_the_same_as_integer_is_a_lossy_cast() {
    within(60, || {
        let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, phone TEXT);";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO t(phone) VALUES ('007'), ('0123'), ('+44'), ('1e2'), ('15'), (NULL);"
        ));
        let before = dump(&path);
        let v2 = "CREATE TABLE t (id INTEGER PRIMARY KEY, phone INTEGER);";
        let e = mig(&path, v2, AutoMigration::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "schema error: the automatic migration is refused:\ncolumn t.phone: 4 values change under CAST(\"phone\" AS INTEGER) (allow_lossy_casts to migrate anyway)"
        );
        assert_eq!(dump(&path), before);
    })
}

// Scenario (found by a probe): a TEXT column with NULLs becomes INTEGER NOT NULL DEFAULT 0; the copy must be IFNULL(CAST(…), 0).
#[test]
fn retyped_column_made_not_null_with_default_fills_nulls() {
    within(60, || {
        let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, score TEXT);";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO t(score) VALUES ('1'), (NULL), ('3');"
        ));
        let v2 = "CREATE TABLE t (id INTEGER PRIMARY KEY, score INTEGER NOT NULL DEFAULT 0);";
        mig(&path, v2, AutoMigration::new()).unwrap();
        assert_eq!(
            rows(&path, "SELECT score FROM t ORDER BY id"),
            ["1", "0", "3"]
        );
        assert_eq!(diffs(&path, v2), "");
    })
}

// Scenario (found by a probe): a nullable column that already has a default becomes NOT NULL; its NULLs were refused instead of filled with the default.
#[test]
fn nullable_column_with_unchanged_default_made_not_null_fills_nulls() {
    within(60, || {
        let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT DEFAULT 'none');";
        let (_d, path) = file(&format!("{v1} INSERT INTO t(x) VALUES ('a'), (NULL);"));
        let v2 = "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT NOT NULL DEFAULT 'none');";
        mig(&path, v2, AutoMigration::new()).unwrap();
        assert_eq!(
            rows(&path, "SELECT x FROM t ORDER BY id"),
            ["'a'", "'none'"]
        );
        assert_eq!(diffs(&path, v2), "");
    })
}

// Scenario (found by a probe): a NOT NULL column without a default added to an empty table was refused although no row needs a value.
#[test]
fn not_null_column_without_default_can_be_added_to_an_empty_table() {
    within(60, || {
        let (_d, path) = file("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);");
        let v2 = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, owner TEXT NOT NULL);";
        mig(&path, v2, AutoMigration::new()).unwrap();
        assert_eq!(diffs(&path, v2), "");
        assert!(exec(&path, "INSERT INTO t(a) VALUES ('x')").is_err());
    })
}

// ---------------------------------------------------------------- rename hints

// Scenario (found by a probe): a table rename hint naming no table was silently ignored.
#[test]
fn table_rename_hint_matching_nothing_is_an_error() {
    within(60, || {
        let v1 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT);";
        let (_d, path) = file(&format!("{v1} INSERT INTO notes(title) VALUES ('a');"));
        let before = dump(&path);
        let v2 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, extra TEXT);";
        let e = mig(
            &path,
            v2,
            AutoMigration::new().rename_table("nosuch", "other"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "schema error: the rename hint nosuch -> other names no table of the database"
        );
        assert_eq!(dump(&path), before);
    })
}

// Scenario (found by a probe): a column rename hint naming no column was silently ignored.
#[test]
fn column_rename_hint_matching_nothing_is_an_error() {
    within(60, || {
        let v1 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT);";
        let (_d, path) = file(&format!("{v1} INSERT INTO notes(title) VALUES ('a');"));
        let before = dump(&path);
        let v2 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, extra TEXT);";
        let e = mig(
            &path,
            v2,
            AutoMigration::new().rename_column("notes", "nosuch", "extra"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "schema error: the rename hint notes.nosuch -> extra names no column of the database"
        );
        assert_eq!(dump(&path), before);
    })
}

// Scenario (found by a probe): a column rename hint names its table by the old name of a renamed table; it was ignored and, with destructive changes allowed, the column's data dropped.
#[test]
fn column_rename_hint_may_name_the_table_as_it_was() {
    within(60, || {
        let v1 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT);";
        let (_d, path) = file(&format!("{v1} INSERT INTO notes(title) VALUES ('a');"));
        let v2 = "CREATE TABLE memos (id INTEGER PRIMARY KEY, heading TEXT);";
        let p = mig(
            &path,
            v2,
            AutoMigration::new()
                .rename_table("notes", "memos")
                .rename_column("notes", "title", "heading")
                .allow_destructive(true),
        )
        .unwrap();
        assert_eq!(p.losses, Vec::<String>::new(), "{p}");
        assert_eq!(rows(&path, "SELECT heading FROM memos"), ["'a'"]);
        assert_eq!(diffs(&path, v2), "");
    })
}

// Scenario (found by a probe): a hint renames a table only in case (Notes to notes) while a column is retyped; the migration failed.
#[test]
fn case_only_table_rename_hint() {
    within(60, || {
        let v1 = "CREATE TABLE Notes (id INTEGER PRIMARY KEY, x TEXT);";
        let (_d, path) = file(&format!("{v1} INSERT INTO Notes(x) VALUES ('1');"));
        let v2 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, x INTEGER);";
        let p = mig(
            &path,
            v2,
            AutoMigration::new().rename_table("Notes", "notes"),
        )
        .unwrap();
        assert_eq!(p.steps, ["rebuild table notes (column x: type)"]);
        assert_eq!(rows(&path, "SELECT x FROM notes"), ["1"]);
        assert_eq!(diffs(&path, v2), "");
        // A case-only rename alone is no step: SQLite names ignore case.
        let v3 = "CREATE TABLE NOTES (id INTEGER PRIMARY KEY, x INTEGER);";
        let p = mig(
            &path,
            v3,
            AutoMigration::new().rename_table("notes", "NOTES"),
        )
        .unwrap();
        assert_eq!(p.steps, Vec::<String>::new(), "{p}");
        assert_eq!(diffs(&path, v3), "");
    })
}

// ---------------------------------------------------------------- the dry run

// Scenario (found by a probe): a CHECK the existing rows violate; the dry run said fine while the run failed.
#[test]
fn dry_run_fails_for_a_check_existing_rows_violate() {
    within(60, || {
        let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER);";
        let (_d, path) = file(&format!("{v1} INSERT INTO t(n) VALUES (1),(-1),(-2);"));
        let before = dump(&path);
        let v2 = "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER CHECK (n >= 0));";
        let dry = plan(&path, v2, AutoMigration::new())
            .unwrap_err()
            .to_string();
        assert_eq!(dump(&path), before);
        let e = mig(&path, v2, AutoMigration::new())
            .unwrap_err()
            .to_string();
        assert_eq!(dump(&path), before);
        assert_eq!(
            e,
            "schema error: cannot rebuild table t: copying its rows into the new definition failed: check constraint failed on t (new definition): CHECK constraint failed: n >= 0 (statement: INSERT INTO \"t (new definition)\" (\"id\", \"n\") SELECT \"id\", \"n\" FROM \"t\")"
        );
        assert_eq!(dry, e);
    })
}

// Scenario (found by a probe): a UNIQUE index over duplicate values; the dry run said fine while the run failed.
#[test]
fn dry_run_fails_for_a_unique_index_over_duplicates() {
    within(60, || {
        let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);";
        let (_d, path) = file(&format!("{v1} INSERT INTO t(a) VALUES ('x'),('x');"));
        let before = dump(&path);
        let v2 =
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT); CREATE UNIQUE INDEX t_a ON t(a);";
        let dry = plan(&path, v2, AutoMigration::new())
            .unwrap_err()
            .to_string();
        assert_eq!(dump(&path), before);
        let e = mig(&path, v2, AutoMigration::new())
            .unwrap_err()
            .to_string();
        assert_eq!(dump(&path), before);
        assert_eq!(
            e,
            "unique constraint failed on t.a: UNIQUE constraint failed: t.a (statement: CREATE UNIQUE INDEX \"t_a\" ON \"t\" (\"a\"))"
        );
        assert_eq!(dry, e);
    })
}

// Scenario (found by a probe): a foreign key added over orphan rows; the dry run said fine while the run failed.
#[test]
fn dry_run_fails_for_a_foreign_key_over_orphans() {
    within(60, || {
        let v1 = "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                  CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER);";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO parent VALUES (1); INSERT INTO child(pid) VALUES (1), (2), (3);"
        ));
        let before = dump(&path);
        let v2 = "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                  CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id));";
        let dry = plan(&path, v2, AutoMigration::new())
            .unwrap_err()
            .to_string();
        assert_eq!(dump(&path), before);
        let e = mig(&path, v2, AutoMigration::new())
            .unwrap_err()
            .to_string();
        assert_eq!(dump(&path), before);
        assert_eq!(
            e,
            "schema error: cannot rebuild table child: foreign_key_check found 2 violation(s):\nchild rowid 2 points at no row of parent (foreign key 0)\nchild rowid 3 points at no row of parent (foreign key 0)"
        );
        // The dry run runs with the connection's foreign keys on, so it
        // fails at the copy rather than at the foreign_key_check.
        assert!(
            dry.starts_with("schema error: cannot rebuild table child: ")
                && dry.contains("FOREIGN KEY constraint failed"),
            "{dry}"
        );
    })
}

// Scenario (found by a probe): a switch to STRICT over values a strict table rejects; the dry run said fine while the run failed.
#[test]
fn dry_run_fails_for_strict_over_values_it_rejects() {
    within(60, || {
        let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, r REAL, s TEXT);";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO t(n, r, s) VALUES (1, 1.5, 'a'), ('abc', 2, 'b'), (2.5, 'x', 3);"
        ));
        let before = dump(&path);
        let v2 = "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, r REAL, s TEXT) STRICT;";
        let dry = plan(&path, v2, AutoMigration::new())
            .unwrap_err()
            .to_string();
        assert_eq!(dump(&path), before);
        let e = mig(&path, v2, AutoMigration::new())
            .unwrap_err()
            .to_string();
        assert_eq!(dump(&path), before);
        assert_eq!(
            e,
            "schema error: cannot rebuild table t: copying its rows into the new definition failed: other constraint failed on t (new definition): cannot store TEXT value in INTEGER column t (new definition).n (statement: INSERT INTO \"t (new definition)\" (\"id\", \"n\", \"r\", \"s\") SELECT \"id\", \"n\", \"r\", \"s\" FROM \"t\")"
        );
        assert_eq!(dry, e);
    })
}

// ---------------------------------------------------------------- foreign keys

// Scenario (found by a probe): a foreign key to a non-unique parent column (which SQLite cannot check) and an orphan row; nothing in the plan said so.
#[test]
fn foreign_keys_sqlite_cannot_check_are_plan_warnings() {
    within(60, || {
        let v1 = "CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT);
                  CREATE TABLE child (id INTEGER PRIMARY KEY, pcode TEXT REFERENCES parent(code), n TEXT);";
        let (_d, path) = file(&format!(
            "{v1} INSERT INTO parent(code) VALUES ('a'), ('a'), ('b'); INSERT INTO child(pcode, n) VALUES ('a', '1'), ('zz', '2');"
        ));
        let v2 = "CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT, extra TEXT NOT NULL DEFAULT 'e');
                  CREATE TABLE child (id INTEGER PRIMARY KEY, pcode TEXT REFERENCES parent(code), n INTEGER);";
        let p = mig(&path, v2, AutoMigration::new()).unwrap();
        assert_eq!(
            p.warnings,
            [
                "foreign key child(pcode) → parent(code) cannot be checked by SQLite (foreign key mismatch: those columns are not a primary key or unique); 1 row(s) point at no row of parent"
            ]
        );
        assert!(
            p.to_string()
                .contains(&format!("warning: {}", p.warnings[0])),
            "{p}"
        );
        assert_eq!(diffs(&path, v2), "");
    })
}

// ---------------------------------------------------------------- views

// Scenario (found by a probe): a table is replaced by a view of the same name; the view was not created.
#[test]
fn table_replaced_by_a_view_of_the_same_name() {
    within(60, || {
        let v1 = "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); CREATE TABLE legacy (id INTEGER PRIMARY KEY, x TEXT);";
        let (_d, path) = file(&format!("{v1} INSERT INTO a(x) VALUES ('1');"));
        let v2 = "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); CREATE VIEW legacy AS SELECT id, x FROM a;";
        mig(&path, v2, AutoMigration::new()).unwrap();
        assert_eq!(diffs(&path, v2), "");
        assert_eq!(rows(&path, "SELECT id, x FROM legacy"), ["1|'1'"]);
    })
}
