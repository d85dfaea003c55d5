//! The `driftwood` command, run as a real process on real files: every
//! command's output and exit code, what it refuses and that a refusal
//! changes nothing.

mod common;

use std::path::{Path, PathBuf};

use common::{driftwood, text};
use driftwood::sqlite::{Connection, OpenOptions};

const V1: &str =
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, score TEXT, body TEXT);
CREATE VIEW titles AS SELECT title FROM notes;";

const V2: &str = "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, score INTEGER, body TEXT, tag TEXT);
CREATE INDEX notes_by_tag ON notes (tag);
CREATE VIEW titles AS SELECT title FROM notes;";

/// A folder with `app.db` at version 1 (rollback journal, two notes),
/// `v1.sql` and `v2.sql`.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let conn = Connection::open(
        &db,
        &OpenOptions::default().journal_mode(driftwood::sqlite::JournalMode::Delete),
    )
    .unwrap();
    conn.raw()
        .execute_batch(&format!(
            "{V1} INSERT INTO notes (title, score, body) VALUES ('a', '1', 'x'), ('b', '22', NULL); PRAGMA user_version = 1;"
        ))
        .unwrap();
    drop(conn);
    std::fs::write(dir.path().join("v1.sql"), V1).unwrap();
    std::fs::write(dir.path().join("v2.sql"), V2).unwrap();
    (dir, db)
}

fn path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).display().to_string()
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn query(db: &Path, sql: &str) -> Vec<String> {
    use driftwood::Runner;
    let conn = Connection::open(db, &OpenOptions::default().read_only(true)).unwrap();
    driftwood::Conn::new(&conn)
        .custom_select(sql, [])
        .unwrap()
        .iter()
        .map(|row| format!("{:?}", row.get::<driftwood::types::SqlValue>(0).unwrap()))
        .collect()
}

#[test]
fn dump_writes_a_snapshot_without_touching_the_file() {
    let (dir, db) = fixture();
    let before = file_bytes(&db);
    let out = driftwood(&[
        "schema",
        "dump",
        &db.display().to_string(),
        &path(&dir, "v1.json"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("wrote "),
        "{}",
        text(&out.stdout)
    );
    let snapshot = driftwood::schema::Snapshot::read_from(dir.path().join("v1.json")).unwrap();
    assert_eq!(snapshot.schema_version, 1);
    assert!(
        file_bytes(&db) == before,
        "reading never changes the file, its journal mode included"
    );
}

#[test]
fn diff_prints_the_plan_between_any_two_kinds_of_schema() {
    let (dir, db) = fixture();
    driftwood(&[
        "schema",
        "dump",
        &db.display().to_string(),
        &path(&dir, "v1.json"),
    ]);
    for from in [
        db.display().to_string(),
        path(&dir, "v1.json"),
        path(&dir, "v1.sql"),
    ] {
        let out = driftwood(&["schema", "diff", &from, &path(&dir, "v2.sql")]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            "rebuild table notes (column score: type; column tag)\nCREATE INDEX \"notes_by_tag\" ON \"notes\" (\"tag\")\n",
            "from {from}"
        );
    }
}

#[test]
fn check_reports_differences_and_exits_non_zero() {
    let (dir, db) = fixture();
    let out = driftwood(&[
        "schema",
        "check",
        &db.display().to_string(),
        "--against",
        &path(&dir, "v2.sql"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "table notes: column score: type: expected INTEGER, found TEXT\ntable notes: column tag: expected TEXT NULL, found missing\nindex notes_by_tag: missing\n"
    );
    let out = driftwood(&[
        "schema",
        "check",
        &db.display().to_string(),
        "--against",
        &path(&dir, "v1.sql"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn migrate_applies_the_plan_keeping_rows_version_and_journal_mode() {
    let (dir, db) = fixture();
    let db_arg = db.display().to_string();
    let before = file_bytes(&db);
    let out = driftwood(&[
        "migrate",
        &db_arg,
        "--to",
        &path(&dir, "v2.sql"),
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("(dry run: nothing changed)\n"));
    assert!(file_bytes(&db) == before, "a dry run changes nothing");

    let out = driftwood(&["migrate", &db_arg, "--to", &path(&dir, "v2.sql")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        query(&db, "SELECT score FROM notes ORDER BY id"),
        ["Integer(1)", "Integer(22)"]
    );
    assert_eq!(
        query(&db, "PRAGMA user_version"),
        ["Integer(1)"],
        "kept without --set-version"
    );
    assert_eq!(query(&db, "PRAGMA journal_mode"), ["Text(\"delete\")"]);
    let check = driftwood(&[
        "schema",
        "check",
        &db_arg,
        "--against",
        &path(&dir, "v2.sql"),
    ]);
    assert_eq!(check.status.code(), Some(0));

    let out = driftwood(&[
        "migrate",
        &db_arg,
        "--to",
        &path(&dir, "v2.sql"),
        "--set-version",
        "7",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "nothing to migrate\nmigrated ".to_owned() + &db_arg + "\n"
    );
    assert_eq!(query(&db, "PRAGMA user_version"), ["Integer(7)"]);
}

#[test]
fn migrate_refuses_to_lose_data_unless_allowed_and_names_what() {
    let (dir, db) = fixture();
    let db_arg = db.display().to_string();
    std::fs::write(
        dir.path().join("slim.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, score TEXT);",
    )
    .unwrap();
    let before = file_bytes(&db);
    let out = driftwood(&["migrate", &db_arg, "--to", &path(&dir, "slim.sql")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: schema error: the automatic migration is refused:\n  column notes.body: 1 values would be lost (allow_destructive to drop them)\n"
    );
    assert!(file_bytes(&db) == before, "a refusal changes nothing");
    let out = driftwood(&[
        "migrate",
        &db_arg,
        "--to",
        &path(&dir, "slim.sql"),
        "--allow-destructive",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("loses: column notes.body: 1 values"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn migrate_follows_rename_hints() {
    let (dir, db) = fixture();
    std::fs::write(
        dir.path().join("renamed.sql"),
        "CREATE TABLE memos (id INTEGER PRIMARY KEY, heading TEXT NOT NULL, score TEXT, body TEXT);
         CREATE VIEW titles AS SELECT heading AS title FROM memos;",
    )
    .unwrap();
    let out = driftwood(&[
        "migrate",
        &db.display().to_string(),
        "--to",
        &path(&dir, "renamed.sql"),
        "--rename",
        "notes=memos",
        "--rename",
        "memos.title=heading",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        query(&db, "SELECT heading FROM memos ORDER BY id"),
        ["Text(\"a\")", "Text(\"b\")"]
    );
}

#[test]
fn migrate_refuses_a_file_another_process_has_open() {
    let (dir, db) = fixture();
    // Another connection (a server, say) holds the file open in WAL mode.
    let other = Connection::open(&db, &OpenOptions::default()).unwrap();
    other
        .raw()
        .execute_batch("SELECT count(*) FROM notes")
        .unwrap();
    let out = driftwood(&[
        "migrate",
        &db.display().to_string(),
        "--to",
        &path(&dir, "v2.sql"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is in use by another process"),
        "{}",
        text(&out.stderr)
    );
    drop(other);
    assert_eq!(
        query(&db, "SELECT typeof(score) FROM notes LIMIT 1"),
        ["Text(\"text\")"]
    );
}

#[test]
fn bad_input_gets_one_clear_line_and_a_non_zero_exit() {
    let (dir, _db) = fixture();
    let out = driftwood(&[
        "schema",
        "dump",
        &path(&dir, "missing.db"),
        &path(&dir, "x.json"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: invalid argument: "),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("missing.db does not exist"));
    std::fs::write(dir.path().join("bad.sql"), "CREATE TABLE (").unwrap();
    let out = driftwood(&[
        "schema",
        "diff",
        &path(&dir, "v1.sql"),
        &path(&dir, "bad.sql"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: invalid argument: "),
        "{}",
        text(&out.stderr)
    );
    let out = driftwood(&[
        "migrate",
        &path(&dir, "app.db"),
        "--to",
        &path(&dir, "v2.sql"),
        "--rename",
        "nonsense",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("expected old=new or table.old=new"));
    let out = driftwood(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage errors");
}

// Scenario (found by a probe): the dry run planned with the connection's
// foreign keys on, so a foreign key SQLite cannot check (a non-unique
// parent column) failed the dry run although the run succeeds.
#[test]
fn a_dry_run_sees_what_the_run_would_see_with_an_uncheckable_foreign_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let conn = Connection::open(&db, &OpenOptions::default().foreign_keys(false)).unwrap();
    conn.raw()
        .execute_batch(
            "CREATE TABLE parent (code TEXT);
             CREATE TABLE child (id INTEGER PRIMARY KEY, code TEXT REFERENCES parent (code), n TEXT);
             INSERT INTO parent VALUES ('a'); INSERT INTO child (code, n) VALUES ('a', '1'), ('zz', '2');",
        )
        .unwrap();
    drop(conn);
    std::fs::write(
        dir.path().join("target.sql"),
        "CREATE TABLE parent (code TEXT);
         CREATE TABLE child (id INTEGER PRIMARY KEY, code TEXT REFERENCES parent (code), n INTEGER);",
    )
    .unwrap();
    let db_arg = db.display().to_string();
    let dry = driftwood(&[
        "migrate",
        &db_arg,
        "--to",
        &path(&dir, "target.sql"),
        "--dry-run",
    ]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let run = driftwood(&["migrate", &db_arg, "--to", &path(&dir, "target.sql")]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let warning = "warning: foreign key child(code) → parent(code) cannot be checked by SQLite";
    assert!(text(&dry.stdout).contains(warning), "{}", text(&dry.stdout));
    assert!(text(&run.stdout).contains(warning), "{}", text(&run.stdout));
}

#[test]
fn check_reports_a_damaged_file_and_backup_and_stats_work() {
    let (dir, db) = fixture();
    let db_arg = db.display().to_string();
    let conn = Connection::open(
        &db,
        &OpenOptions::default().journal_mode(driftwood::sqlite::JournalMode::Delete),
    )
    .unwrap();
    conn.raw()
        .execute_batch(
            "CREATE TABLE big (n INTEGER, pad TEXT);
             CREATE INDEX big_by_n ON big (n);
             WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 3000)
             INSERT INTO big SELECT n, printf('%0500d', n) FROM s;",
        )
        .unwrap();
    drop(conn);
    let out = driftwood(&["check", &db_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), format!("{db_arg}: ok\n"));

    let copy = path(&dir, "copy.db");
    let out = driftwood(&["backup", &db_arg, &copy]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        query(Path::new(&copy), "SELECT count(*) FROM big"),
        ["Integer(3000)"]
    );
    let out = driftwood(&["stats", &copy]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("page size: 4096 bytes\npages: "),
        "{}",
        text(&out.stdout)
    );

    // Damage the index's pages in the middle of the file.
    let mut bytes = std::fs::read(&db).unwrap();
    let middle = bytes.len() / 2 / 4096 * 4096;
    for byte in &mut bytes[middle + 100..middle + 4000] {
        *byte = 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();
    let out = driftwood(&["check", &db_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).is_empty());
    println!("{}", text(&out.stdout));
}
