//! Benchmark peer for sqlx 0.9 (SQLite, tokio): its implementation of the
//! harness's `Implementation` trait, plus the raw rusqlite baseline
//! (`bench/src/impls/rusqlite.rs`, compiled here against rusqlite 0.39, whose
//! libsqlite3-sys is the one sqlx links), served over the peer protocol.
//!
//! Usage as sqlx's docs teach it: a `SqlitePool` (connect options carrying
//! the pragmas), `query_as` into `FromRow` structs with `fetch_all` /
//! `fetch_one`, `QueryBuilder` for `IN (…)` lists, and inserts awaited one by
//! one inside `pool.begin()` … `commit()` — all awaited on a multi-thread
//! tokio runtime built once per process.

#[path = "../../../src/impls/rusqlite.rs"]
mod raw;

use std::process::ExitCode;

use driftwood_bench_harness::{
    BASELINE_PREFIX, BenchResult, ENV_QUERY, Environment, Implementation, Op, Setup, Step, Target,
    UPDATE_USER_NAME, association_count, group_associations, peer_main,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, FromRow, QueryBuilder, Sqlite};
use tokio::runtime::Runtime;

const SELECT_USERS: &str = "SELECT id, name, hair_color FROM users";
const SELECT_USER_BY_ID: &str = "SELECT id, name, hair_color FROM users WHERE id = ?";
const SELECT_USERS_WITH_POSTS: &str = "SELECT users.id, users.name, users.hair_color, \
     posts.id AS post_id, posts.user_id, posts.title, posts.body \
     FROM users LEFT JOIN posts ON posts.user_id = users.id WHERE users.hair_color = ?";
const INSERT_USER: &str = "INSERT INTO users (name, hair_color) VALUES (?, ?)";

/// A `users` row.
#[derive(Debug, FromRow)]
#[allow(dead_code)] // every column is decoded, as in an app; not all are read here
struct User {
    id: i64,
    name: String,
    hair_color: Option<String>,
}

/// A `posts` row.
#[derive(Debug, FromRow)]
#[allow(dead_code)] // every column is decoded, as in an app; not all are read here
struct Post {
    id: i64,
    user_id: i64,
    title: String,
    body: Option<String>,
}

/// A `comments` row.
#[derive(Debug, FromRow)]
#[allow(dead_code)] // every column is decoded, as in an app; not all are read here
struct Comment {
    id: i64,
    post_id: i64,
    text: String,
}

/// A row of the `medium_query_*` join, before splitting into `(User, Option<Post>)`.
#[derive(Debug, FromRow)]
struct UserWithPost {
    id: i64,
    name: String,
    hair_color: Option<String>,
    post_id: Option<i64>,
    user_id: Option<i64>,
    title: Option<String>,
    body: Option<String>,
}

impl UserWithPost {
    fn split(self) -> (User, Option<Post>) {
        let post = match (self.post_id, self.user_id, self.title) {
            (Some(id), Some(user_id), Some(title)) => Some(Post {
                id,
                user_id,
                title,
                body: self.body,
            }),
            _ => None,
        };
        let user = User {
            id: self.id,
            name: self.name,
            hair_color: self.hair_color,
        };
        (user, post)
    }
}

/// sqlx: a `SqlitePool` driven from a tokio runtime.
struct Sqlx {
    rt: Runtime,
    pool: Option<SqlitePool>,
}

impl Sqlx {
    fn new() -> BenchResult<Self> {
        Ok(Sqlx {
            rt: tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?,
            pool: None,
        })
    }

    fn pool(&self) -> BenchResult<SqlitePool> {
        self.pool
            .clone()
            .ok_or_else(|| "sqlx: no database open".into())
    }
}

async fn insert_users(
    pool: &SqlitePool,
    rows: &[driftwood_bench_harness::NewUser],
) -> BenchResult<u64> {
    if let [u] = rows {
        let done = sqlx::query(INSERT_USER)
            .bind(&u.name)
            .bind(&u.hair_color)
            .execute(pool)
            .await?;
        return Ok(done.rows_affected());
    }
    let mut tx = pool.begin().await?;
    let mut inserted = 0;
    for u in rows {
        inserted += sqlx::query(INSERT_USER)
            .bind(&u.name)
            .bind(&u.hair_color)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(inserted)
}

async fn load_associations(pool: &SqlitePool) -> BenchResult<u64> {
    let users = sqlx::query_as::<_, User>(SELECT_USERS)
        .fetch_all(pool)
        .await?;
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT id, user_id, title, body FROM posts WHERE user_id IN (");
    let mut ids = q.separated(", ");
    for u in &users {
        ids.push_bind(u.id);
    }
    ids.push_unseparated(")");
    let posts = q.build_query_as::<Post>().fetch_all(pool).await?;
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT id, post_id, text FROM comments WHERE post_id IN (");
    let mut ids = q.separated(", ");
    for p in &posts {
        ids.push_bind(p.id);
    }
    ids.push_unseparated(")");
    let comments = q.build_query_as::<Comment>().fetch_all(pool).await?;
    let grouped = group_associations(
        users,
        posts,
        comments,
        |u| u.id,
        |p| p.id,
        |p| p.user_id,
        |c| c.post_id,
    );
    Ok(association_count(&grouped))
}

impl Implementation for Sqlx {
    fn name(&self) -> String {
        "sqlx".to_owned()
    }

    fn setup(&mut self, setup: &Setup<'_>) -> BenchResult<()> {
        let d = setup.dataset;
        let pool = self.rt.block_on(async {
            let options = match setup.target {
                Target::File(path) => SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true),
                Target::Memory => SqliteConnectOptions::new().in_memory(true),
            }
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
            let pool = match setup.target {
                Target::File(_) => SqlitePoolOptions::new(),
                // Each connection to `:memory:` is its own database: keep exactly one, forever.
                Target::Memory => SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None),
            }
            .connect_with(options)
            .await?;
            for create in driftwood_bench_harness::SCHEMA {
                sqlx::query(*create).execute(&pool).await?;
            }
            let mut tx = pool.begin().await?;
            for u in &d.users {
                sqlx::query("INSERT INTO users (id, name, hair_color) VALUES (?, ?, ?)")
                    .bind(u.id)
                    .bind(&u.name)
                    .bind(&u.hair_color)
                    .execute(&mut *tx)
                    .await?;
            }
            for p in &d.posts {
                sqlx::query("INSERT INTO posts (id, user_id, title, body) VALUES (?, ?, ?, ?)")
                    .bind(p.id)
                    .bind(p.user_id)
                    .bind(&p.title)
                    .bind(&p.body)
                    .execute(&mut *tx)
                    .await?;
            }
            for c in &d.comments {
                sqlx::query("INSERT INTO comments (id, post_id, text) VALUES (?, ?, ?)")
                    .bind(c.id)
                    .bind(c.post_id)
                    .bind(&c.text)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            BenchResult::Ok(pool)
        })?;
        self.pool = Some(pool);
        Ok(())
    }

    fn environment(&mut self) -> BenchResult<Environment> {
        let pool = self.pool()?;
        let (sqlite_version, journal_mode, synchronous) = self
            .rt
            .block_on(sqlx::query_as::<_, (String, String, i64)>(ENV_QUERY).fetch_one(&pool))?;
        Ok(Environment {
            sqlite_version,
            journal_mode,
            synchronous,
        })
    }

    fn run(&mut self, op: Op<'_>) -> BenchResult<u64> {
        let pool = self.pool()?;
        self.rt.block_on(async move {
            Ok(match op {
                Op::LoadUsers => sqlx::query_as::<_, User>(SELECT_USERS)
                    .fetch_all(&pool)
                    .await?
                    .len() as u64,
                Op::UsersWithPosts { hair_color } => {
                    let rows: Vec<(User, Option<Post>)> =
                        sqlx::query_as::<_, UserWithPost>(SELECT_USERS_WITH_POSTS)
                            .bind(hair_color)
                            .fetch_all(&pool)
                            .await?
                            .into_iter()
                            .map(UserWithPost::split)
                            .collect();
                    rows.len() as u64
                }
                Op::InsertUsers(rows) | Op::BulkInsertUsers(rows) => {
                    insert_users(&pool, rows).await?
                }
                Op::LoadAssociations => load_associations(&pool).await?,
                Op::SelectUserById(id) => {
                    sqlx::query_as::<_, User>(SELECT_USER_BY_ID)
                        .bind(id)
                        .fetch_one(&pool)
                        .await?
                        .id as u64
                }
                Op::Concurrent(burst) => {
                    // One task per burst task on the runtime, each awaiting
                    // its statements one by one on the shared pool.
                    let tasks: Vec<_> = (0..burst.tasks)
                        .map(|task| {
                            let pool = pool.clone();
                            tokio::spawn(async move {
                                let mut checksum = 0u64;
                                for j in 0..burst.per_task {
                                    checksum += match burst.step(task, j) {
                                        Step::Select(id) => {
                                            sqlx::query_as::<_, User>(SELECT_USER_BY_ID)
                                                .bind(id)
                                                .fetch_one(&pool)
                                                .await?
                                                .id as u64
                                        }
                                        Step::Update(id) => sqlx::query(UPDATE_USER_NAME)
                                            .bind("renamed")
                                            .bind(id)
                                            .execute(&pool)
                                            .await?
                                            .rows_affected(),
                                    };
                                }
                                Ok::<u64, sqlx::Error>(checksum)
                            })
                        })
                        .collect();
                    let mut checksum = 0;
                    for task in tasks {
                        checksum += task.await??;
                    }
                    checksum
                }
            })
        })
    }

    fn execute(&mut self, sql: &str) -> BenchResult<()> {
        let pool = self.pool()?;
        self.rt
            .block_on(sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(&pool))?;
        Ok(())
    }

    fn teardown(&mut self) -> BenchResult<()> {
        if let Some(pool) = self.pool.take() {
            self.rt.block_on(pool.close());
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let peer = match Sqlx::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot build the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    peer_main(vec![
        Box::new(peer),
        Box::new(raw::RawRusqlite::new(format!(
            "{BASELINE_PREFIX}{}",
            rusqlite::version()
        ))),
    ])
}
