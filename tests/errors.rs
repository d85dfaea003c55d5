//! Every error a user can reach, with the message it shows; and after each
//! one the database still works and has lost nothing.

mod common;

use common::*;
use driftwood::ConstraintKind;
use driftwood::prelude::*;
use driftwood::schema::Snapshot;
use driftwood::sqlite::Connection;

fn constraint(err: &Error) -> (ConstraintKind, Option<&str>, Option<&str>) {
    match err {
        Error::Constraint {
            kind,
            table,
            column,
            ..
        } => (*kind, table.as_deref(), column.as_deref()),
        other => panic!("expected a constraint error, got {other}"),
    }
}

#[test]
fn constraint_violations_name_kind_table_and_column() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db) = open(backend).await;
            let work = db
                .insert(CategoryCompanion {
                    description: set("Work"),
                    ..absent()
                })
                .await
                .unwrap();

            let err = db
                .insert(CategoryCompanion {
                    description: set("Work"),
                    ..absent()
                })
                .await
                .unwrap_err();
            assert_eq!(
                constraint(&err),
                (
                    ConstraintKind::Unique,
                    Some("categories"),
                    Some("description")
                )
            );
            assert_eq!(
                err.to_string(),
                "unique constraint failed on categories.description: UNIQUE constraint failed: categories.description \
             (statement: INSERT INTO \"categories\" (\"description\") VALUES (?))"
            );

            let err = db
                .insert(&Category {
                    id: work,
                    description: "Other".into(),
                })
                .await
                .unwrap_err();
            assert_eq!(
                constraint(&err),
                (ConstraintKind::PrimaryKey, Some("categories"), Some("id"))
            );

            let err = db
                .insert(TodoCompanion {
                    title: set("No body"),
                    ..absent()
                })
                .await
                .unwrap_err();
            assert_eq!(
                constraint(&err),
                (ConstraintKind::NotNull, Some("todos"), Some("body"))
            );
            assert!(
                err.to_string()
                    .starts_with("not null constraint failed on todos.body"),
                "{err}"
            );

            let err = db.insert(todo("Short", "x", None)).await.unwrap_err();
            assert_eq!(
                constraint(&err),
                (ConstraintKind::Check, Some("todos"), Some("title"))
            );
            assert!(
                err.to_string()
                    .contains("length(\"title\") BETWEEN 6 AND 10"),
                "{err}"
            );

            let err = db.insert(todo("Orphan", "x", Some(999))).await.unwrap_err();
            assert_eq!(
                constraint(&err),
                (ConstraintKind::ForeignKey, Some("todos"), None)
            );
            assert!(
                err.to_string().starts_with(
                    "foreign key constraint failed on todos: FOREIGN KEY constraint failed"
                ),
                "{err}"
            );

            let err = db.custom_statement("UPDATE todos SET done = 2", []).await;
            assert!(err.is_ok(), "no rows yet, so no check fires");
            db.insert(todo("Valid one", "x", Some(work))).await.unwrap();
            let err = db
                .custom_statement("UPDATE todos SET done = 2", [])
                .await
                .unwrap_err();
            assert_eq!(
                constraint(&err),
                (ConstraintKind::Check, None, Some("done"))
            );
            assert_eq!(
                err.to_string(),
                "check constraint failed on column done: CHECK constraint failed: done (statement: UPDATE todos SET done = 2)"
            );

            // Nothing was lost and the database still works.
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 1);
            assert_eq!(db.select::<Category>().count().await.unwrap(), 1);
        });
    }
}

#[test]
fn bad_sql_names_the_statement() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db) = open(backend).await;
            let err = db.custom_select("SELEC nonsense", []).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "sql error: near \"SELEC\": syntax error (statement: SELEC nonsense)"
            );
            let err = db
                .custom_select("SELECT * FROM missing_table", [])
                .await
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "sql error: no such table: missing_table (statement: SELECT * FROM missing_table)"
            );
            let err = db
                .custom_statement(
                    "INSERT INTO categories (description) VALUES (?)",
                    args![1, 2],
                )
                .await
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid argument: statement expects 1 arguments, got 2 (statement: INSERT INTO categories (description) VALUES (?))"
            );
        });
    }
}

#[test]
fn type_mismatches_name_the_column() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db) = open(backend).await;
            db.custom_statement("INSERT INTO categories (description) VALUES ('Work')", [])
                .await
                .unwrap();
            // A column SQLite lets hold any value, read back through the typed API.
            db.custom_statement(
                "CREATE TABLE loose (id INTEGER PRIMARY KEY, description)",
                [],
            )
            .await
            .unwrap();
            db.custom_statement("INSERT INTO loose (id, description) VALUES (1, 42)", [])
                .await
                .unwrap();
            let rows = db
                .custom_select("SELECT id, description FROM loose", [])
                .await
                .unwrap();
            // Rows of raw SQL name their statement, like typed queries do.
            let err = rows[0].get::<String>(1).unwrap_err();
            assert_eq!(
                err.to_string(),
                "column `description` holds INTEGER 42, expected TEXT (statement: SELECT id, description FROM loose)"
            );
            let err = db
                .fetch::<Category>(driftwood::query::Statement::new(
                    "SELECT id, description FROM loose",
                    vec![],
                ))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::TypeMismatch { column, .. } if column == "description"),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                "column `description` holds INTEGER 42, expected TEXT (statement: SELECT id, description FROM loose)"
            );
        });
    }
}

#[test]
fn a_long_statement_can_be_interrupted() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db) = open(backend).await;
            let err = db
            .read(|conn| {
                let handle = conn.connection().raw().get_interrupt_handle();
                let interrupter = std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    handle.interrupt();
                });
                let result = conn.custom_select(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
                    [],
                );
                interrupter.join().unwrap();
                result.map(|_| ())
            })
            .await
            .unwrap_err();
            assert!(matches!(err, Error::Interrupted { .. }), "{err}");
            assert!(
                err.to_string()
                    .starts_with("statement was interrupted (statement: WITH RECURSIVE"),
                "{err}"
            );
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 0);
        });
    }
}

struct TodoDbV2;

impl Database for TodoDbV2 {
    const SCHEMA_VERSION: u32 = 2;
    fn schema() -> Schema {
        schema![Category, Todo]
    }
    fn on_upgrade(conn: &Migrator<'_>, from: u32, _to: u32) -> Result<()> {
        if from < 2 {
            conn.custom_statement("CREATE INDEX todos_by_title ON todos (title)", [])?;
            conn.custom_statement(
                "INSERT INTO categories (description) VALUES ('Migrated')",
                [],
            )?;
            conn.custom_statement("THIS IS NOT SQL", [])?;
        }
        Ok(())
    }
}

struct TodoDbV3;

impl Database for TodoDbV3 {
    const SCHEMA_VERSION: u32 = 3;
    fn schema() -> Schema {
        schema![Category, Todo]
    }
    fn on_upgrade(conn: &Migrator<'_>, from: u32, _to: u32) -> Result<()> {
        if from < 3 {
            conn.custom_statement(
                "INSERT INTO categories (description) VALUES ('Migrated')",
                [],
            )?;
        }
        Ok(())
    }
}

#[test]
fn versions_downgrades_and_failed_upgrades_change_nothing() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let v1 = Db::<TodoDb>::open(&path).await.unwrap();
        v1.insert(CategoryCompanion {
            description: set("Kept"),
            ..absent()
        })
        .await
        .unwrap();
        v1.close().await.unwrap();

        // A failing upgrade rolls back everything, including its own writes.
        let err = Db::<TodoDbV2>::open(&path).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("sql error: near \"THIS\": syntax error"),
            "{err}"
        );
        let v1 = Db::<TodoDb>::open(&path).await.unwrap();
        let names: Vec<String> = v1
            .select::<Category>()
            .get()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.description)
            .collect();
        assert_eq!(names, ["Kept"]);
        v1.close().await.unwrap();

        // A working upgrade applies and bumps the version.
        let v3 = Db::<TodoDbV3>::open(&path).await.unwrap();
        assert_eq!(v3.select::<Category>().count().await.unwrap(), 2);
        v3.close().await.unwrap();

        // Going back is refused.
        let err = Db::<TodoDb>::open(&path).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "migration from version 3 to 1 failed: the file was written by schema version 3, newer than this code's 1; downgrades are refused (implement Database::on_downgrade to allow one)"
        );

        // The default upgrade refuses too.
        let raw = dir.path().join("raw.db");
        let conn = Connection::open(&raw, &Default::default()).unwrap();
        conn.raw()
            .execute_batch("CREATE TABLE t (x); PRAGMA user_version = 0;")
            .unwrap();
        drop(conn);
        let err = Db::<TodoDb>::open(&raw).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "migration from version 0 to 1 failed: the file has tables but no schema version (PRAGMA user_version = 0); refusing to guess which version it is"
        );
    });
}

#[test]
fn unopenable_paths_and_bad_snapshots_say_why() {
    block_on(async {
        let err = Db::<TodoDb>::open("/nonexistent-dir/for/sure/app.db")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot open database /nonexistent-dir/for/sure/app.db:"),
            "{err}"
        );
        let err = Snapshot::from_json("{\"format\": \"something-else\"}").unwrap_err();
        assert!(matches!(err, Error::Schema { .. }), "{err}");
        assert!(err.to_string().starts_with("schema error:"), "{err}");
    });
}
