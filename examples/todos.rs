//! The todo list from drift's documentation, on an SQLite file.
//!
//! `cargo run --example todos [--from-v1] [path]` — the database goes to
//! `target/todos.db` unless a path is given. Each run starts from a fresh
//! file; with `--from-v1` that file is first written as version 1 of the
//! schema (drift's migration example: v2 adds `due_date`, v3 `priority`),
//! and opening upgrades it, printing what the migration did. The first part
//! runs in-thread; the second serves the same file from a background
//! thread to two clients on two threads, one of which keeps a live list
//! that updates itself when the other commits.

use driftwood::prelude::*;
use futures::StreamExt;
use time::OffsetDateTime;

/// A category todos can belong to.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "categories")]
pub struct Category {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(unique)]
    pub description: String,
}

/// One todo entry (drift's `Todos` table: title of 6 to 10 characters,
/// content stored in a column named `body`).
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "todos")]
pub struct Todo {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(length = 6..=10)]
    pub title: String,
    #[column(name = "body")]
    pub content: String,
    #[column(references = "categories(id)", on_delete = "set null")]
    pub category: Option<i64>,
    /// New in schema version 2.
    pub due_date: Option<OffsetDateTime>,
    /// New in schema version 3.
    pub priority: Option<i32>,
}

/// The app's database: two tables, schema version 3.
pub struct AppDb;

impl Database for AppDb {
    const SCHEMA_VERSION: u32 = 3;
    fn schema() -> Schema {
        schema![Category, Todo]
    }
    // drift's migration example, honouring `to`; each step says what it did.
    fn on_upgrade(m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
        if from < 2 && to >= 2 {
            m.add_column(Todo::DUE_DATE)?;
            println!("migration v1 -> v2: added todos.due_date");
        }
        if from < 3 && to >= 3 {
            m.add_column(Todo::PRIORITY)?;
            println!("migration v2 -> v3: added todos.priority");
        }
        Ok(())
    }
    fn before_open(conn: &Conn<'_>, details: &OpenDetails) -> Result<()> {
        match details.version_before {
            None => println!("created the schema at version {}", details.version_now),
            Some(before) if details.had_upgrade() => {
                // The migrated file must now mean what the code declares.
                driftwood::migration::validate_database_schema::<Self>(conn)?;
                println!(
                    "upgraded from version {before} to {}: {} todos kept, schema validated",
                    details.version_now,
                    conn.select::<Todo>().count()?
                );
            }
            Some(_) => {}
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let mut from_v1 = false;
    let mut path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/todos.db").to_owned();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--from-v1" => from_v1 = true,
            _ => path = arg,
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    // `target/` is missing when cargo builds elsewhere (CARGO_TARGET_DIR).
    if let Some(parent) = std::path::Path::new(&path).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    futures::executor::block_on(async {
        if from_v1 {
            write_version_1(&path).await?;
        }
        run(&path).await
    })
}

/// Writes `path` as version 1 of the app wrote it: `todos` without
/// `due_date` and `priority`, with one todo in it.
async fn write_version_1(path: &str) -> Result<()> {
    let db: Db = Db::open(path).await?;
    db.custom_statement(
        "CREATE TABLE categories (id INTEGER PRIMARY KEY AUTOINCREMENT, description TEXT NOT NULL UNIQUE)",
        [],
    )
    .await?;
    db.custom_statement(
        "CREATE TABLE todos (id INTEGER PRIMARY KEY AUTOINCREMENT, \
         title TEXT NOT NULL CHECK (length(title) BETWEEN 6 AND 10), body TEXT NOT NULL, \
         category INTEGER REFERENCES categories (id) ON DELETE SET NULL)",
        [],
    )
    .await?;
    db.custom_statement(
        "INSERT INTO todos (title, body) VALUES ('Old one', 'written by version 1')",
        [],
    )
    .await?;
    db.custom_statement("PRAGMA user_version = 1", []).await?;
    db.close().await?;
    println!("wrote {path} as schema version 1 with one todo");
    Ok(())
}

async fn run(path: &str) -> Result<()> {
    let db = Db::<AppDb>::open(path).await?;
    println!("opened {path} (schema version {})", AppDb::SCHEMA_VERSION);

    let work = db
        .insert(CategoryCompanion {
            description: set("Work"),
            ..absent()
        })
        .await?;
    let home = db
        .insert(CategoryCompanion {
            description: set("Home"),
            ..absent()
        })
        .await?;
    println!("inserted categories Work (id {work}) and Home (id {home})");

    let due = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid timestamp");
    for (title, content, category, priority) in [
        ("Groceries", "milk, eggs", Some(home), Some(2)),
        ("Write docs", "README and ARCHITECTURE", Some(work), Some(1)),
        ("Call mum", "Sunday", None, None),
    ] {
        let todo = TodoCompanion {
            title: set(title),
            content: set(content),
            category: set(category),
            priority: set(priority),
            due_date: set(Some(due)),
            ..absent()
        };
        let id = db.insert(todo).await?;
        println!("inserted todo {id}: {title}");
    }

    // drift's withLength(min: 6, max: 10) is a CHECK constraint here.
    let too_short = db
        .insert(TodoCompanion {
            title: set("Tax"),
            content: set("!"),
            ..absent()
        })
        .await;
    match too_short {
        Err(error) => println!("rejected a 3-character title: {error}"),
        Ok(id) => {
            return Err(Error::invalid_argument(format!(
                "a too-short title was accepted as row {id}"
            )));
        }
    }

    let with_category = db
        .select::<Todo>()
        .left_join::<Category>(Category::ID.eq(Todo::CATEGORY))
        .order_by(Todo::ID.asc())
        .get()
        .await?;
    println!("all todos with their category:");
    for (todo, category) in &with_category {
        let category = category.as_ref().map_or("-", |c| c.description.as_str());
        println!(
            "  #{} {:<10} [{category}] {}",
            todo.id, todo.title, todo.content
        );
    }

    let uncategorized = db
        .select::<Todo>()
        .filter(Todo::CATEGORY.is_null())
        .get()
        .await?;
    println!(
        "todos without a category: {:?}",
        uncategorized.iter().map(|t| &t.title).collect::<Vec<_>>()
    );

    let changed = db
        .update::<Todo>()
        .filter(Todo::TITLE.eq("Call mum"))
        .set(&TodoCompanion {
            category: set(Some(home)),
            priority: set(Some(3)),
            ..absent()
        })
        .await?;
    println!("updated {changed} todo: Call mum is now at Home with priority 3");

    let per_category = db
        .select::<Todo>()
        .columns((Todo::CATEGORY, Todo::ID.count()))
        .group_by(Todo::CATEGORY)
        .order_by(Todo::CATEGORY.asc())
        .get()
        .await?;
    println!("todos per category id: {per_category:?}");

    // A transaction held across awaits; dropped without commit, it rolls back.
    {
        let tx = db.begin().await?;
        tx.delete::<Todo>().await?;
        println!(
            "inside a transaction: {} todos left",
            tx.select::<Todo>().count().await?
        );
    }
    println!(
        "after dropping it uncommitted: {} todos",
        db.select::<Todo>().count().await?
    );

    // The scoped form (drift's `transaction(() async {…})`): calls through
    // `db` inside it join the transaction; an error rolls it all back.
    db.transaction(|| async {
        db.insert(TodoCompanion {
            title: set("Dentist"),
            content: set("9am"),
            ..absent()
        })
        .await?;
        db.update::<Todo>()
            .filter(Todo::TITLE.eq("Dentist"))
            .set(&TodoCompanion {
                content: set("9am, bring the card"),
                ..absent()
            })
            .await?;
        Ok(())
    })
    .await?;
    println!(
        "committed a transaction: {} todos",
        db.select::<Todo>().count().await?
    );

    // A batch: several statements, one transaction, one round trip.
    let mut batch = Batch::new();
    for day in ["Mon", "Tue", "Fri"] {
        batch.insert(TodoCompanion {
            title: set(format!("Gym {day}")),
            content: set("legs"),
            ..absent()
        });
    }
    let done = db.run_batch(batch).await?;
    println!("batch inserted {} todos", done.rows_affected);

    // A unit of work: synchronous code run where the connection lives.
    let promoted = db
        .write(|conn| {
            let gym = conn
                .select::<Todo>()
                .filter(Todo::TITLE.like("Gym %"))
                .get()?;
            for todo in &gym {
                conn.update::<Todo>()
                    .filter(Todo::ID.eq(todo.id))
                    .set(&TodoCompanion {
                        priority: set(Some(5)),
                        ..absent()
                    })
                    .execute()?;
            }
            Ok(gym.len())
        })
        .await?;
    println!("unit of work gave {promoted} gym todos priority 5");

    let deleted = db.delete::<Todo>().filter(Todo::PRIORITY.eq(5)).await?;
    println!("deleted {deleted} todos with priority 5");

    let remaining = db
        .select::<Todo>()
        .order_by(Todo::TITLE.asc())
        .get()
        .await?;
    println!(
        "remaining: {:?}",
        remaining.iter().map(|t| &t.title).collect::<Vec<_>>()
    );
    db.close().await?;

    background(path).await
}

/// The same file, now served by a background thread to clients on threads
/// of their own (drift's isolates): client 2 keeps a live list of errands
/// that updates itself whenever client 1 commits.
async fn background(path: &str) -> Result<()> {
    let server = Server::open(path).await?;
    let viewer = server.connect::<AppDb>().await?;
    let mut errands = viewer
        .select::<Todo>()
        .filter(Todo::TITLE.like("Errand %"))
        .order_by(Todo::TITLE.asc())
        .watch();
    let first = errands.next().await.expect("a first result")?;
    println!("live list (client 2): {} errands", first.len());

    let other = server.clone();
    let writer = std::thread::spawn(move || {
        futures::executor::block_on(async move {
            let db = other.connect::<AppDb>().await?;
            let tx = db.begin().await?;
            for n in 1..=3 {
                tx.insert(errand(n)).await?;
            }
            tx.commit().await?;
            db.insert(errand(4)).await?;
            Ok::<_, Error>(4)
        })
    });
    // Each result is whole commits: never one of the transaction's three
    // inserts without the others. Commits that land between two polls are
    // coalesced into one result.
    loop {
        let list = errands.next().await.expect("the list stays live")?;
        println!(
            "live list (client 2): {:?} (as of commit {})",
            list.iter().map(|t| &t.title).collect::<Vec<_>>(),
            errands.last_commit().unwrap_or(0)
        );
        if list.len() == 4 {
            break;
        }
    }
    let written = writer.join().expect("client 1 thread")?;
    println!("background server: client 1 committed {written} errands");
    let total = viewer.select::<Todo>().count().await?;
    println!("background server: {total} todos in all");
    server.shutdown_all();
    let after = viewer.select::<Todo>().count().await;
    println!(
        "after shutdown_all: {}",
        after.map_or_else(|e| e.to_string(), |n| n.to_string())
    );
    match errands.next().await {
        Some(Err(error)) => println!("and the live list ended: {error}"),
        other => {
            return Err(Error::invalid_argument(format!(
                "the live list should end with Closed, got {other:?}"
            )));
        }
    }
    Ok(())
}

/// Errand number `n`, as client 1 writes it.
fn errand(n: i32) -> TodoCompanion {
    TodoCompanion {
        title: set(format!("Errand {n}")),
        content: set("from client 1"),
        ..absent()
    }
}
