//! Raw `rusqlite` with cached prepared statements on the calling thread: the
//! reference [`Implementation`] and the physical limit every other figure is
//! divided by.
//!
//! The runner compiles this file against driftwood's own `rusqlite` (reported
//! as `rusqlite`); every peer workspace compiles the very same file, through
//! `#[path]`, against the `rusqlite` whose `libsqlite3-sys` matches the peer's
//! (reported as `rusqlite@<sqlite version>`). It therefore uses only API that
//! rusqlite 0.39 through 0.41 share. Its row mappers and helpers are public
//! so that peers built on rusqlite (tokio-rusqlite) reuse them.

use driftwood_bench_harness::{
    BenchResult, Burst, Comment, Dataset, ENV_QUERY, Environment, Implementation, NewUser, Op,
    PRAGMAS, Post, SCHEMA, Setup, Step, Target, UPDATE_USER_NAME, User, association_count,
    group_associations,
};
use rusqlite::{Connection, Row, params, params_from_iter};

/// Loads every user.
pub const SELECT_USERS: &str = "SELECT id, name, hair_color FROM users";
/// Loads one user by primary key.
pub const SELECT_USER_BY_ID: &str = "SELECT id, name, hair_color FROM users WHERE id = ?1";
/// `medium_query_*`: users with their (optional) posts, by hair colour.
pub const SELECT_USERS_WITH_POSTS: &str = "SELECT users.id, users.name, users.hair_color, \
     posts.id, posts.user_id, posts.title, posts.body \
     FROM users LEFT JOIN posts ON posts.user_id = users.id WHERE users.hair_color = ?1";
/// Inserts one user.
pub const INSERT_USER: &str = "INSERT INTO users (name, hair_color) VALUES (?1, ?2)";

/// Raw rusqlite: one [`Connection`] opened in `setup`, `prepare_cached` for
/// every statement, rows mapped by column index.
pub struct RawRusqlite {
    name: String,
    conn: Option<Connection>,
}

impl RawRusqlite {
    /// A raw rusqlite implementation reported under `name` (`rusqlite`, or
    /// `rusqlite@<sqlite version>` inside a peer).
    pub fn new(name: impl Into<String>) -> Self {
        RawRusqlite {
            name: name.into(),
            conn: None,
        }
    }

    fn conn(&mut self) -> BenchResult<&mut Connection> {
        self.conn
            .as_mut()
            .ok_or_else(|| "rusqlite: no database open (setup not called)".into())
    }
}

/// Maps `id, name, hair_color` (columns 0..3) to a [`User`].
pub fn user(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        hair_color: row.get(2)?,
    })
}

/// Maps `id, user_id, title, body` (columns 0..4) to a [`Post`].
pub fn post(row: &Row<'_>) -> rusqlite::Result<Post> {
    Ok(Post {
        id: row.get(0)?,
        user_id: row.get(1)?,
        title: row.get(2)?,
        body: row.get(3)?,
    })
}

/// Maps `id, post_id, text` (columns 0..3) to a [`Comment`].
pub fn comment(row: &Row<'_>) -> rusqlite::Result<Comment> {
    Ok(Comment {
        id: row.get(0)?,
        post_id: row.get(1)?,
        text: row.get(2)?,
    })
}

/// `?1, ?2, …, ?n`.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts `users` in one transaction with one cached prepared statement.
pub fn insert_in_transaction(conn: &mut Connection, users: &[NewUser]) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    let mut inserted = 0;
    {
        let mut stmt = tx.prepare_cached(INSERT_USER)?;
        for u in users {
            inserted += stmt.execute(params![u.name, u.hair_color])? as u64;
        }
    }
    tx.commit()?;
    Ok(inserted)
}

/// The rows of `associations`, loaded in three queries: all users, their
/// posts (`user_id IN (…)`), those posts' comments (`post_id IN (…)`).
pub type AssociationRows = (Vec<User>, Vec<Post>, Vec<Comment>);

/// Loads [`AssociationRows`] with cached statements (the `IN` lists have the
/// same length every time, so their SQL is cached too).
pub fn load_association_rows(conn: &Connection) -> rusqlite::Result<AssociationRows> {
    let users = conn
        .prepare_cached(SELECT_USERS)?
        .query_map([], user)?
        .collect::<rusqlite::Result<Vec<User>>>()?;
    let posts_sql = format!(
        "SELECT id, user_id, title, body FROM posts WHERE user_id IN ({})",
        placeholders(users.len())
    );
    let posts = conn
        .prepare_cached(&posts_sql)?
        .query_map(params_from_iter(users.iter().map(|u| u.id)), post)?
        .collect::<rusqlite::Result<Vec<Post>>>()?;
    let comments_sql = format!(
        "SELECT id, post_id, text FROM comments WHERE post_id IN ({})",
        placeholders(posts.len())
    );
    let comments = conn
        .prepare_cached(&comments_sql)?
        .query_map(params_from_iter(posts.iter().map(|p| p.id)), comment)?
        .collect::<rusqlite::Result<Vec<Comment>>>()?;
    Ok((users, posts, comments))
}

/// Groups [`AssociationRows`] with the harness's grouping and returns the
/// `associations` checksum.
pub fn group_association_rows((users, posts, comments): AssociationRows) -> u64 {
    let grouped = group_associations(
        users,
        posts,
        comments,
        |u| u.id,
        |p| p.id,
        |p| p.user_id,
        |c| c.post_id,
    );
    association_count(&grouped)
}

/// Maps a row of [`SELECT_USERS_WITH_POSTS`] to `(User, Option<Post>)`.
pub fn user_with_post(row: &Row<'_>) -> rusqlite::Result<(User, Option<Post>)> {
    let post = match row.get::<_, Option<i64>>(3)? {
        Some(id) => Some(Post {
            id,
            user_id: row.get(4)?,
            title: row.get(5)?,
            body: row.get(6)?,
        }),
        None => None,
    };
    Ok((user(row)?, post))
}

/// Runs [`PRAGMAS`], creates [`SCHEMA`] and seeds `dataset` (one transaction).
pub fn prepare_database(conn: &mut Connection, dataset: &Dataset) -> rusqlite::Result<()> {
    for pragma in PRAGMAS {
        conn.execute_batch(pragma)?;
    }
    for create in SCHEMA {
        conn.execute_batch(create)?;
    }
    let tx = conn.transaction()?;
    {
        let mut users =
            tx.prepare("INSERT INTO users (id, name, hair_color) VALUES (?1, ?2, ?3)")?;
        for u in &dataset.users {
            users.execute(params![u.id, u.name, u.hair_color])?;
        }
        let mut posts =
            tx.prepare("INSERT INTO posts (id, user_id, title, body) VALUES (?1, ?2, ?3, ?4)")?;
        for p in &dataset.posts {
            posts.execute(params![p.id, p.user_id, p.title, p.body])?;
        }
        let mut comments =
            tx.prepare("INSERT INTO comments (id, post_id, text) VALUES (?1, ?2, ?3)")?;
        for c in &dataset.comments {
            comments.execute(params![c.id, c.post_id, c.text])?;
        }
    }
    tx.commit()
}

/// Reads [`ENV_QUERY`]'s row.
pub fn environment(conn: &Connection) -> rusqlite::Result<Environment> {
    conn.query_row(ENV_QUERY, [], |r| {
        Ok(Environment {
            sqlite_version: r.get(0)?,
            journal_mode: r.get(1)?,
            synchronous: r.get(2)?,
        })
    })
}

/// Every statement of `burst`, one task after another on one connection:
/// the single-connection limit the concurrent workloads compare with.
pub fn run_burst_in_order(conn: &Connection, burst: &Burst) -> rusqlite::Result<u64> {
    let mut checksum = 0;
    for task in 0..burst.tasks {
        for j in 0..burst.per_task {
            checksum += match burst.step(task, j) {
                Step::Select(id) => {
                    conn.prepare_cached(SELECT_USER_BY_ID)?
                        .query_row([id], user)?
                        .id as u64
                }
                Step::Update(id) => conn
                    .prepare_cached(UPDATE_USER_NAME)?
                    .execute(params!["renamed", id])? as u64,
            };
        }
    }
    Ok(checksum)
}

impl Implementation for RawRusqlite {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn setup(&mut self, setup: &Setup<'_>) -> BenchResult<()> {
        let mut conn = match setup.target {
            Target::File(path) => Connection::open(path)?,
            Target::Memory => Connection::open_in_memory()?,
        };
        prepare_database(&mut conn, setup.dataset)?;
        self.conn = Some(conn);
        Ok(())
    }

    fn environment(&mut self) -> BenchResult<Environment> {
        Ok(environment(self.conn()?)?)
    }

    fn run(&mut self, op: Op<'_>) -> BenchResult<u64> {
        let conn = self.conn()?;
        Ok(match op {
            Op::LoadUsers => {
                let users = conn
                    .prepare_cached(SELECT_USERS)?
                    .query_map([], user)?
                    .collect::<rusqlite::Result<Vec<User>>>()?;
                users.len() as u64
            }
            Op::UsersWithPosts { hair_color } => {
                let rows = conn
                    .prepare_cached(SELECT_USERS_WITH_POSTS)?
                    .query_map([hair_color], user_with_post)?
                    .collect::<rusqlite::Result<Vec<(User, Option<Post>)>>>()?;
                rows.len() as u64
            }
            Op::InsertUsers([u]) => conn
                .prepare_cached(INSERT_USER)?
                .execute(params![u.name, u.hair_color])? as u64,
            Op::InsertUsers(users) | Op::BulkInsertUsers(users) => {
                insert_in_transaction(conn, users)?
            }
            Op::LoadAssociations => group_association_rows(load_association_rows(conn)?),
            Op::SelectUserById(id) => {
                conn.prepare_cached(SELECT_USER_BY_ID)?
                    .query_row([id], user)?
                    .id as u64
            }
            Op::Concurrent(burst) => run_burst_in_order(conn, &burst)?,
        })
    }

    fn execute(&mut self, sql: &str) -> BenchResult<()> {
        self.conn()?.execute_batch(sql)?;
        Ok(())
    }

    fn teardown(&mut self) -> BenchResult<()> {
        if let Some(conn) = self.conn.take() {
            conn.close().map_err(|(_, e)| e)?;
        }
        Ok(())
    }
}
