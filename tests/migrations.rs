//! Migrations: drift's whole seed example (v1 → v2 adds `due_date` → v3
//! adds `priority`), the table rebuild and its traps, atomicity, and the
//! strategy's callbacks — each checked on the file with a connection of
//! its own.

mod common;

use common::{block_on, within};
use driftwood::migration::{self, Progress, Step, validate_database_schema};
use driftwood::prelude::*;
use driftwood::sqlite::Connection;

/// The schema at each version, as the app's code had it then.
mod v1 {
    use driftwood::prelude::*;

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "categories")]
    pub struct Category {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub description: String,
    }

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "todos")]
    pub struct Todo {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        #[column(length = 6..=10)]
        pub title: String,
        #[column(name = "body")]
        pub content: String,
        #[column(references = "categories(id)")]
        pub category: Option<i64>,
    }

    pub struct App;

    impl Database for App {
        const SCHEMA_VERSION: u32 = 1;
        fn schema() -> Schema {
            schema![Category, Todo]
        }
    }
}

mod v3 {
    use driftwood::prelude::*;

    pub use super::v1::Category;

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "todos")]
    pub struct Todo {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        #[column(length = 6..=10)]
        pub title: String,
        #[column(name = "body")]
        pub content: String,
        #[column(references = "categories(id)")]
        pub category: Option<i64>,
        /// New in version 2.
        pub due_date: Option<i64>,
        /// New in version 3.
        pub priority: Option<i64>,
    }

    pub struct App;

    impl Database for App {
        const SCHEMA_VERSION: u32 = 3;
        fn schema() -> Schema {
            schema![Category, Todo]
        }
        // The seed's strategy, honouring `to`.
        fn on_upgrade(m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
            if from < 2 && to >= 2 {
                m.add_column(Todo::DUE_DATE)?;
            }
            if from < 3 && to >= 3 {
                m.add_column(Todo::PRIORITY)?;
            }
            Ok(())
        }
        // The seed's before-open: data when the database was just created.
        fn before_open(conn: &Conn<'_>, details: &OpenDetails) -> Result<()> {
            if details.was_created() {
                let work = conn
                    .insert(super::v1::CategoryCompanion {
                        description: set("Work"),
                        ..absent()
                    })
                    .execute()?;
                conn.insert(TodoCompanion {
                    title: set("A first"),
                    content: set("A first todo entry"),
                    ..absent()
                })
                .execute()?;
                conn.insert(TodoCompanion {
                    title: set("Rework"),
                    content: set("Rework persistence code"),
                    category: set(Some(work.last_insert_id)),
                    due_date: set(Some(4)),
                    ..absent()
                })
                .execute()?;
            }
            Ok(())
        }
    }
}

/// A fresh file at version 1 with two categories and three todos.
fn file_at_v1() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let db = block_on(Db::<v1::App>::open(&path)).unwrap();
    block_on(db.write(|conn| {
        for name in ["Work", "Home"] {
            conn.insert(v1::CategoryCompanion {
                description: set(name),
                ..absent()
            })
            .execute()?;
        }
        for (title, category) in [("Report", Some(1)), ("Dishes", Some(2)), ("Nothing", None)] {
            conn.insert(v1::TodoCompanion {
                title: set(format!("{title:<6}")),
                content: set(format!("{title} body")),
                category: set(category),
                ..absent()
            })
            .execute()?;
        }
        Ok(())
    }))
    .unwrap();
    block_on(db.close()).unwrap();
    (dir, path)
}

/// What the file holds, read by a plain rusqlite connection: the version,
/// the schema's SQL and every row of every table, as text.
fn on_disk(path: &std::path::Path) -> (u32, Vec<String>, Vec<String>) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let mut stmt = conn
        .prepare("SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_schema WHERE name NOT LIKE 'sqlite_stat%' ORDER BY name")
        .unwrap();
    let schema: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_stat%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let mut rows = Vec::new();
    for table in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY rowid"))
            .unwrap();
        let width = stmt.column_count();
        let found: Vec<String> = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..width)
                    .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                    .collect();
                Ok(format!("{table}: {}", cells.join(", ")))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        rows.extend(found);
    }
    (version, schema, rows)
}

fn columns_on_disk(path: &std::path::Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn open_raw(path: &std::path::Path) -> Connection {
    Connection::open(path, &OpenOptions::default()).unwrap()
}

#[test]
fn the_seed_example_upgrades_v1_to_v3_in_steps_and_at_once_keeping_every_row() {
    within(60, || {
        // v1 → v3 at once.
        let (_dir, path) = file_at_v1();
        let (_, _, before) = on_disk(&path);
        let db = block_on(Db::<v3::App>::open(&path)).unwrap();
        let todos = block_on(db.select::<v3::Todo>().order_by(v3::Todo::ID.asc()).get()).unwrap();
        assert_eq!(todos.len(), 3);
        assert_eq!(todos[0].content, "Report body");
        assert_eq!(todos[1].category, Some(2));
        assert!(
            todos
                .iter()
                .all(|t| t.due_date.is_none() && t.priority.is_none())
        );
        block_on(db.close()).unwrap();
        let (version, _, after) = on_disk(&path);
        assert_eq!(version, 3);
        assert_eq!(before.len(), after.len(), "no row lost");
        assert_eq!(
            columns_on_disk(&path, "todos"),
            ["id", "title", "body", "category", "due_date", "priority"]
        );

        // v1 → v2 (asking for version 2 of the version-3 app), then → v3.
        let (_dir, path) = file_at_v1();
        let details = migration::open::<v3::App>(&open_raw(&path), 2).unwrap();
        assert_eq!(details.version_before, Some(1));
        assert_eq!(details.version_now, 2);
        assert!(details.had_upgrade() && !details.was_created());
        assert_eq!(on_disk(&path).0, 2);
        assert_eq!(
            columns_on_disk(&path, "todos"),
            ["id", "title", "body", "category", "due_date"],
            "the step to version 3 must not run"
        );
        let details = migration::open::<v3::App>(&open_raw(&path), 3).unwrap();
        assert_eq!(details.version_before, Some(2));
        let db = block_on(Db::<v3::App>::open(&path)).unwrap();
        block_on(db.write(validate_database_schema::<v3::App>)).unwrap();
        assert_eq!(block_on(db.select::<v3::Todo>().count()).unwrap(), 3);
    });
}

#[test]
fn before_open_seeds_a_new_database_once_per_server_not_per_client() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let db = block_on(Db::<v3::App>::open(&path)).unwrap();
        let todos = block_on(db.select::<v3::Todo>().order_by(v3::Todo::ID.asc()).get()).unwrap();
        assert_eq!(todos.len(), 2, "the seed's two todos");
        assert_eq!(todos[1].category, Some(1));
        block_on(db.close()).unwrap();
        // Opening again: not created, so nothing is seeded again.
        let db = block_on(Db::<v3::App>::open(&path)).unwrap();
        assert_eq!(block_on(db.select::<v3::Todo>().count()).unwrap(), 2);
        block_on(db.close()).unwrap();

        struct Counting;
        static OPENINGS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        impl Database for Counting {
            const SCHEMA_VERSION: u32 = 1;
            fn schema() -> Schema {
                schema![v1::Category]
            }
            fn before_open(_: &Conn<'_>, _: &OpenDetails) -> Result<()> {
                OPENINGS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
        }
        let server = block_on(Server::open(dir.path().join("counting.db"))).unwrap();
        let clients: Vec<Db<Counting>> = (0..5)
            .map(|_| block_on(server.connect::<Counting>()).unwrap())
            .collect();
        assert_eq!(OPENINGS.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(clients);
        block_on(server.shutdown());
    });
}

/// Version 4: `category` changes from text to a nullable integer, with a
/// cast (the seed's "changing the type of a column").
mod typed {
    use driftwood::prelude::*;

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "todos")]
    pub struct OldTodo {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub title: String,
        pub category: String,
    }

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "todos")]
    pub struct Todo {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub title: String,
        pub category: Option<i64>,
    }

    pub struct Old;
    impl Database for Old {
        const SCHEMA_VERSION: u32 = 1;
        fn schema() -> Schema {
            schema![OldTodo]
        }
    }

    pub struct New;
    impl Database for New {
        const SCHEMA_VERSION: u32 = 2;
        fn schema() -> Schema {
            schema![Todo]
        }
        fn on_upgrade(m: &Migrator<'_>, _: u32, _: u32) -> Result<()> {
            m.alter_table(
                TableMigration::of::<Todo>()
                    .transform(Todo::CATEGORY, OldTodo::CATEGORY.cast::<i64>()),
            )
        }
    }
}

#[test]
fn a_type_change_copies_every_row_through_its_cast() {
    within(60, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let db = block_on(Db::<typed::Old>::open(&path)).unwrap();
        for (title, category) in [("a", "1"), ("b", "22"), ("c", "3")] {
            block_on(db.insert(typed::OldTodoCompanion {
                title: set(title),
                category: set(category),
                ..absent()
            }))
            .unwrap();
        }
        block_on(db.close()).unwrap();
        let db = block_on(Db::<typed::New>::open(&path)).unwrap();
        let rows = block_on(
            db.select::<typed::Todo>()
                .order_by(typed::Todo::ID.asc())
                .get(),
        )
        .unwrap();
        let categories: Vec<Option<i64>> = rows.iter().map(|t| t.category).collect();
        assert_eq!(categories, [Some(1), Some(22), Some(3)]);
        let types =
            block_on(db.custom_select("SELECT DISTINCT typeof(category) FROM todos", [])).unwrap();
        assert_eq!(types[0].get::<String>(0).unwrap(), "integer");
        block_on(db.write(validate_database_schema::<typed::New>)).unwrap();
    });
}

/// A schema whose `todos` renamed `body` to `content` and dropped `category`.
mod reshaped {
    use driftwood::prelude::*;

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "todos")]
    pub struct Todo {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        #[column(length = 6..=10)]
        pub title: String,
        pub content: String,
    }
}

#[test]
fn columns_are_renamed_by_transformer_or_rename_column_and_dropped() {
    within(60, || {
        for how in ["transformer", "rename_column"] {
            let (_dir, path) = file_at_v1();
            let conn = open_raw(&path);
            conn_migrate(
                &conn,
                move |m| {
                    if how == "transformer" {
                        m.alter_table(
                            TableMigration::of::<reshaped::Todo>()
                                .transform(reshaped::Todo::CONTENT, "body"),
                        )
                    } else {
                        m.rename_column("todos", "body", "content")?;
                        m.drop_column(("todos", "category"))
                    }
                },
                schema![v1::Category, reshaped::Todo],
            );
            drop(conn);
            assert_eq!(
                columns_on_disk(&path, "todos"),
                ["id", "title", "content"],
                "{how}"
            );
            let conn = rusqlite::Connection::open(&path).unwrap();
            let contents: Vec<String> = conn
                .prepare("SELECT content FROM todos ORDER BY id")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(
                contents,
                ["Report body", "Dishes body", "Nothing body"],
                "{how}"
            );
        }
    });
}

/// Runs `step` as a migration to version 2 against `schema`, through the
/// whole open sequence.
fn conn_migrate(
    conn: &Connection,
    step: impl Fn(&Migrator<'_>) -> Result<()> + 'static,
    schema: Schema,
) {
    try_migrate(conn, step, schema).unwrap();
}

/// A migration step run by [`try_migrate`].
type AdHocStep = dyn Fn(&Migrator<'_>) -> Result<()>;

fn try_migrate(
    conn: &Connection,
    step: impl Fn(&Migrator<'_>) -> Result<()> + 'static,
    schema: Schema,
) -> Result<OpenDetails> {
    // The step and schema reach the `Database` through thread-locals: a
    // test-only way to run ad-hoc steps through the real open sequence.
    thread_local! {
        static STEP: std::cell::RefCell<Option<Box<AdHocStep>>> = const { std::cell::RefCell::new(None) };
        static SCHEMA: std::cell::RefCell<Option<Schema>> = const { std::cell::RefCell::new(None) };
    }
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
    STEP.with(|s| *s.borrow_mut() = Some(Box::new(step)));
    SCHEMA.with(|s| *s.borrow_mut() = Some(schema));
    let result = migration::open::<AdHoc>(conn, 2);
    STEP.with(|s| *s.borrow_mut() = None);
    result
}

/// `categories` gains a `color` column by rebuild while `todos` (which
/// references it with ON DELETE CASCADE) and a view keep working.
mod colored {
    use driftwood::prelude::*;

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "categories")]
    pub struct Category {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub description: String,
        #[column(default = "grey")]
        pub color: String,
    }
}

#[test]
fn rebuilding_a_referenced_table_deletes_nothing_and_keeps_its_views_indexes_triggers_and_counter()
{
    within(60, || {
        let (_dir, path) = file_at_v1();
        {
            let raw = rusqlite::Connection::open(&path).unwrap();
            raw.execute_batch(
                "CREATE INDEX categories_by_description ON categories (description);
                 CREATE VIEW category_names AS SELECT description FROM categories;
                 CREATE VIEW named_todos AS SELECT t.title, c.description FROM todos t JOIN categories c ON c.id = t.category;
                 CREATE TABLE log (what TEXT);
                 CREATE TRIGGER categories_logged AFTER INSERT ON categories BEGIN INSERT INTO log VALUES (new.description); END;
                 CREATE TRIGGER todos_logged AFTER DELETE ON todos BEGIN INSERT INTO log SELECT description FROM categories WHERE id = old.category; END;
                 INSERT INTO categories (description) VALUES ('Gone');
                 DELETE FROM categories WHERE description = 'Gone';",
            )
            .unwrap();
        }
        let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Progress>::new()));
        let seen = progress.clone();
        let conn = open_raw(&path);
        conn_migrate(
            &conn,
            move |m| {
                let seen = seen.clone();
                m.alter_table(
                    TableMigration::of::<colored::Category>()
                        .new_column("color")
                        .on_progress(move |p| seen.lock().unwrap().push(p.clone())),
                )
            },
            schema![colored::Category, v1::Todo],
        );
        drop(conn);
        let raw = rusqlite::Connection::open(&path).unwrap();
        let count = |sql: &str| raw.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(
            count("SELECT count(*) FROM todos WHERE category IS NOT NULL"),
            2,
            "no cascade delete"
        );
        assert_eq!(
            count("SELECT count(*) FROM categories WHERE color = 'grey'"),
            2
        );
        assert_eq!(
            count("SELECT count(*) FROM category_names"),
            2,
            "the view reads the new table"
        );
        assert_eq!(count("SELECT count(*) FROM named_todos"), 2);
        assert_eq!(
            count(
                "SELECT count(*) FROM sqlite_schema WHERE name IN ('categories_by_description', 'categories_logged', 'todos_logged')"
            ),
            3
        );
        // The AUTOINCREMENT counter still remembers the deleted row 3.
        assert_eq!(
            count("SELECT seq FROM sqlite_sequence WHERE name = 'categories'"),
            3
        );
        raw.execute("INSERT INTO categories (description) VALUES ('Next')", [])
            .unwrap();
        assert_eq!(raw.last_insert_rowid(), 4);
        assert_eq!(
            count("SELECT count(*) FROM log WHERE what = 'Next'"),
            1,
            "its trigger fires"
        );
        let steps: Vec<Step> = progress.lock().unwrap().iter().map(|p| p.step).collect();
        assert_eq!(steps.first(), Some(&Step::Creating));
        assert_eq!(steps.last(), Some(&Step::Done));
        let copied = progress.lock().unwrap().iter().map(|p| p.rows_copied).max();
        assert_eq!(copied, Some(2));
        assert_eq!(count("SELECT count(*) FROM pragma_foreign_key_check"), 0);
    });
}

#[test]
fn a_migration_that_breaks_a_foreign_key_is_aborted_with_the_rows_listed() {
    within(60, || {
        let (_dir, path) = file_at_v1();
        let before = on_disk(&path);
        let conn = open_raw(&path);
        let error = try_migrate(
            &conn,
            |m| {
                m.custom_statement("DELETE FROM categories WHERE id = 2", [])
                    .map(drop)
            },
            v1::App::schema(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "migration from version 1 to 2 failed: foreign_key_check found 1 violation(s):\ntodos rowid 2 points at no row of categories (foreign key 0)"
        );
        assert!(conn.foreign_keys().unwrap(), "foreign keys are back on");
        drop(conn);
        assert_eq!(on_disk(&path), before, "nothing changed");
    });
}

#[test]
fn a_downgrade_is_refused_and_leaves_the_file_as_it_was() {
    within(60, || {
        let (_dir, path) = file_at_v1();
        block_on(Db::<v3::App>::open(&path)).unwrap();
        let before = on_disk(&path);
        let error = block_on(Db::<v1::App>::open(&path)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "migration from version 3 to 1 failed: the file was written by schema version 3, newer than this code's 1; downgrades are refused (implement Database::on_downgrade to allow one)"
        );
        assert_eq!(on_disk(&path), before);
    });
}

#[test]
fn a_failing_or_panicking_step_changes_nothing() {
    within(60, || {
        let (_dir, path) = file_at_v1();
        let before = on_disk(&path);
        let conn = open_raw(&path);
        let error = try_migrate(
            &conn,
            |m| {
                m.add_column(v3::Todo::DUE_DATE)?;
                m.custom_statement("DELETE FROM todos", [])?;
                m.custom_statement("NOT SQL", []).map(drop)
            },
            v3::App::schema(),
        )
        .unwrap_err();
        assert!(
            error.to_string().starts_with("sql error: near \"NOT\""),
            "{error}"
        );
        assert_eq!(on_disk(&path), before);
        let error = try_migrate(
            &conn,
            |m| {
                m.custom_statement("DELETE FROM todos", [])?;
                panic!("bug in a migration")
            },
            v3::App::schema(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("bug in a migration"), "{error}");
        drop(conn);
        assert_eq!(on_disk(&path), before);
    });
}

#[test]
fn validate_database_schema_catches_a_wrong_migration_and_says_what_differs() {
    within(60, || {
        let (_dir, path) = file_at_v1();
        struct Forgetful;
        impl Database for Forgetful {
            const SCHEMA_VERSION: u32 = 3;
            fn schema() -> Schema {
                v3::App::schema()
            }
            // Forgets `priority`, and adds `due_date` as text.
            fn on_upgrade(m: &Migrator<'_>, _: u32, _: u32) -> Result<()> {
                m.custom_statement("ALTER TABLE todos ADD COLUMN due_date TEXT", [])
                    .map(drop)
            }
            fn before_open(conn: &Conn<'_>, _: &OpenDetails) -> Result<()> {
                validate_database_schema::<Self>(conn)
            }
        }
        let error = block_on(Db::<Forgetful>::open(&path)).unwrap_err();
        let message = error.to_string();
        println!("{message}");
        assert!(
            message.starts_with("schema error: the database's schema is not the code's:"),
            "{message}"
        );
        assert!(message.contains("priority"), "{message}");
        assert!(message.contains("due_date"), "{message}");
        assert_eq!(on_disk(&path).0, 1, "refused before it committed");
    });
}

#[test]
fn setup_pragmas_inside_a_migration_are_refused_with_where_they_belong() {
    within(60, || {
        let (_dir, path) = file_at_v1();
        let conn = open_raw(&path);
        let error = try_migrate(
            &conn,
            |m| m.custom_statement("PRAGMA foreign_keys = ON", []).map(drop),
            v1::App::schema(),
        )
        .unwrap_err();
        println!("{error}");
        assert!(
            error
                .to_string()
                .starts_with("PRAGMA foreign_keys cannot change inside a transaction"),
            "{error}"
        );
        assert!(error.to_string().contains("OpenOptions::foreign_keys"));
    });
}

#[test]
fn a_new_not_null_column_without_a_default_is_refused_before_any_data_is_touched() {
    within(60, || {
        mod strict {
            use driftwood::prelude::*;
            #[derive(Table, Debug, Clone, PartialEq)]
            #[table(name = "todos")]
            pub struct Todo {
                #[column(primary_key, auto_increment)]
                pub id: i64,
                #[column(length = 6..=10)]
                pub title: String,
                #[column(name = "body")]
                pub content: String,
                #[column(references = "categories(id)")]
                pub category: Option<i64>,
                pub owner: String,
            }
        }
        let (_dir, path) = file_at_v1();
        let before = on_disk(&path);
        let conn = open_raw(&path);
        for (how, expected) in [
            (
                "add_column",
                "schema error: cannot add column owner to todos: it is NOT NULL without a default",
            ),
            (
                "alter_table",
                "schema error: cannot rebuild table todos: new column owner is NOT NULL without a default or a transformer",
            ),
        ] {
            let error = try_migrate(
                &conn,
                move |m| match how {
                    "add_column" => m.add_column(strict::Todo::OWNER),
                    _ => m.alter_table(TableMigration::of::<strict::Todo>().new_column("owner")),
                },
                schema![v1::Category, strict::Todo],
            )
            .unwrap_err();
            assert!(error.to_string().starts_with(expected), "{error}");
        }
        drop(conn);
        assert_eq!(on_disk(&path), before);
    });
}

#[test]
fn erase_on_schema_change_recreates_a_database_whose_schema_differs() {
    within(60, || {
        struct Dev;
        impl Database for Dev {
            const SCHEMA_VERSION: u32 = 1;
            const ERASE_ON_SCHEMA_CHANGE: bool = true;
            fn schema() -> Schema {
                v3::App::schema()
            }
        }
        let (_dir, path) = file_at_v1();
        let db = block_on(Db::<Dev>::open(&path)).unwrap();
        assert_eq!(
            block_on(db.select::<v3::Todo>().count()).unwrap(),
            0,
            "erased"
        );
        block_on(db.insert(v3::TodoCompanion {
            title: set("Kept!!"),
            content: set("x"),
            ..absent()
        }))
        .unwrap();
        block_on(db.close()).unwrap();
        let db = block_on(Db::<Dev>::open(&path)).unwrap();
        assert_eq!(
            block_on(db.select::<v3::Todo>().count()).unwrap(),
            1,
            "same schema: kept"
        );
    });
}

#[test]
fn a_foreign_key_sqlite_cannot_check_is_a_warning_not_a_failure() {
    within(60, || {
        let (_dir, path) = file_at_v1();
        let conn = open_raw(&path);
        let details = try_migrate(
            &conn,
            |m| {
                m.custom_statement("CREATE TABLE tags (name TEXT)", [])?;
                m.custom_statement(
                    "CREATE TABLE tagged (todo INTEGER, tag TEXT REFERENCES tags (name))",
                    [],
                )?;
                m.custom_statement("INSERT INTO tagged VALUES (1, 'missing')", [])
                    .map(drop)
            },
            v1::App::schema(),
        )
        .unwrap();
        assert_eq!(details.warnings.len(), 1, "{:?}", details.warnings);
        assert!(
            details.warnings[0]
                .starts_with("foreign key tagged(tag) → tags(name) cannot be checked by SQLite"),
            "{}",
            details.warnings[0]
        );
        assert!(details.warnings[0].ends_with("1 row(s) point at no row of tags"));
    });
}

/// `todos` whose `category` must now be set (NOT NULL), with or without a
/// default, and whose `body` may now be NULL.
mod tightened {
    use driftwood::prelude::*;

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "todos")]
    pub struct Todo {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        #[column(length = 6..=10)]
        pub title: String,
        #[column(name = "body")]
        pub content: Option<String>,
        #[column(references = "categories(id)")]
        pub category: i64,
    }

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "todos")]
    pub struct DefaultedTodo {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        #[column(length = 6..=10)]
        pub title: String,
        #[column(name = "body")]
        pub content: String,
        #[column(references = "categories(id)", default = 1)]
        pub category: i64,
    }
}

fn root_page(path: &std::path::Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
        [table],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn nullability_changes_run_natively_and_refuse_nulls_with_a_clear_error() {
    within(60, || {
        let (_dir, path) = file_at_v1();
        let page = root_page(&path, "todos");
        let conn = open_raw(&path);
        // Row 3 has no category: NOT NULL is refused, naming the column.
        let error = try_migrate(
            &conn,
            |m| m.alter_table(TableMigration::of::<tightened::Todo>()),
            schema![v1::Category, tightened::Todo],
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "schema error: cannot make column category of todos NOT NULL: it holds 1 NULL value(s); give it a transformer (e.g. IFNULL(category, …)) in the TableMigration"
        );
        conn.raw()
            .execute_batch("UPDATE todos SET category = 1 WHERE category IS NULL")
            .unwrap();
        conn_migrate(
            &conn,
            |m| {
                m.alter_table(TableMigration::of::<tightened::Todo>())?;
                validate_database_schema::<Tightened>(m)
            },
            schema![v1::Category, tightened::Todo],
        );
        struct Tightened;
        impl Database for Tightened {
            const SCHEMA_VERSION: u32 = 2;
            fn schema() -> Schema {
                schema![v1::Category, tightened::Todo]
            }
        }
        drop(conn);
        assert_eq!(
            root_page(&path, "todos"),
            page,
            "no rebuild: the same b-tree"
        );
        let todos = on_disk(&path).2;
        assert_eq!(
            todos.iter().filter(|row| row.starts_with("todos:")).count(),
            3,
            "every row kept"
        );
    });
}

#[test]
fn a_nullable_column_that_becomes_not_null_with_a_default_is_copied_through_ifnull() {
    within(60, || {
        let (_dir, path) = file_at_v1();
        let conn = open_raw(&path);
        conn_migrate(
            &conn,
            |m| m.alter_table(TableMigration::of::<tightened::DefaultedTodo>()),
            schema![v1::Category, tightened::DefaultedTodo],
        );
        drop(conn);
        let raw = rusqlite::Connection::open(&path).unwrap();
        let categories: Vec<i64> = raw
            .prepare("SELECT category FROM todos ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(categories, [1, 2, 1], "the NULL took the default");
    });
}

#[test]
fn a_step_rebuilds_with_the_definition_of_its_own_version_from_a_snapshot() {
    within(60, || {
        // Version 2 of `todos` (with due_date, without priority), as the
        // app would ship it: a snapshot file's JSON.
        mod at_v2 {
            use driftwood::prelude::*;
            #[derive(Table, Debug, Clone, PartialEq)]
            #[table(name = "todos")]
            pub struct Todo {
                #[column(primary_key, auto_increment)]
                pub id: i64,
                #[column(length = 6..=10)]
                pub title: String,
                #[column(name = "body")]
                pub content: String,
                #[column(references = "categories(id)")]
                pub category: Option<i64>,
                pub due_date: Option<i64>,
            }
        }
        let json =
            driftwood::schema::Snapshot::new(2, schema![v1::Category, at_v2::Todo]).to_json();
        let (_dir, path) = file_at_v1();
        let conn = open_raw(&path);
        conn_migrate(
            &conn,
            move |m| {
                // The step to version 2 rebuilds `todos` as version 2 had it,
                // not as the code (version 3) has it now.
                let v2 = m.with_schema(driftwood::schema::Snapshot::from_json(&json)?.schema);
                v2.alter_table(TableMigration::new("todos").new_column("due_date"))
            },
            v3::App::schema(),
        );
        drop(conn);
        assert_eq!(
            columns_on_disk(&path, "todos"),
            ["id", "title", "body", "category", "due_date"]
        );
    });
}

#[test]
fn drop_column_rebuilds_where_sqlite_refuses_and_names_what_still_uses_the_column() {
    within(60, || {
        let (_dir, path) = file_at_v1();
        let conn = open_raw(&path);
        conn.raw()
            .execute_batch(
                "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE, note TEXT);
                 INSERT INTO tags (name, note) VALUES ('a', 'x'), ('b', 'y');
                 CREATE INDEX tags_by_note ON tags (note);",
            )
            .unwrap();
        // SQLite refuses DROP COLUMN of a UNIQUE column: the rebuild does it.
        conn_migrate(
            &conn,
            |m| m.drop_column(("tags", "name")),
            v1::App::schema(),
        );
        drop(conn);
        assert_eq!(columns_on_disk(&path, "tags"), ["id", "note"]);
        let conn = open_raw(&path);
        conn.set_user_version(1).unwrap();
        // An index still uses `note`: the error names it, nothing changes.
        let error = try_migrate(
            &conn,
            |m| m.drop_column(("tags", "note")),
            v1::App::schema(),
        )
        .unwrap_err();
        println!("{error}");
        assert_eq!(
            error.to_string(),
            "sql error: error in index tags_by_note after drop column: no such column: note (statement: ALTER TABLE \"tags\" DROP COLUMN \"note\")"
        );
        drop(conn);
        assert_eq!(columns_on_disk(&path, "tags"), ["id", "note"]);
    });
}

#[test]
fn add_column_rebuilds_where_sqlite_refuses_add_column() {
    within(60, || {
        mod extended {
            use driftwood::prelude::*;
            #[derive(Table, Debug, Clone, PartialEq)]
            #[table(name = "categories")]
            pub struct Category {
                #[column(primary_key, auto_increment)]
                pub id: i64,
                pub description: String,
                #[column(unique)]
                pub code: Option<String>,
                #[column(sql_default = "CURRENT_TIMESTAMP")]
                pub created: String,
            }
        }
        let (_dir, path) = file_at_v1();
        let conn = open_raw(&path);
        // UNIQUE and a non-constant default: SQLite's ADD COLUMN refuses
        // both, so each is a rebuild, with the rows kept.
        conn_migrate(
            &conn,
            |m| {
                m.add_column(extended::Category::CODE)?;
                m.add_column(extended::Category::CREATED)
            },
            schema![extended::Category, v1::Todo],
        );
        drop(conn);
        assert_eq!(
            columns_on_disk(&path, "categories"),
            ["id", "description", "code", "created"]
        );
        let raw = rusqlite::Connection::open(&path).unwrap();
        let stamped: i64 = raw
            .query_row(
                "SELECT count(*) FROM categories WHERE created IS NOT NULL AND code IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stamped, 2);
        let error = raw
            .execute_batch("UPDATE categories SET code = 'x'")
            .unwrap_err();
        assert!(error.to_string().contains("UNIQUE"), "{error}");
    });
}
