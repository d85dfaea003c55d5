//! Benchmark peer for diesel 2.3 (SQLite backend): its implementation of the
//! harness's `Implementation` trait, plus the raw rusqlite baseline
//! (`bench/src/impls/rusqlite.rs`, compiled here against rusqlite 0.40, whose
//! libsqlite3-sys is the one diesel links), served over the peer protocol.
//!
//! Usage as diesel's guides teach it: `table!` schema, `Queryable` structs,
//! the query builder (`load`, `left_join`, `find`, `belonging_to` +
//! `grouped_by`), multi-row `insert_into(..).values(&vec)` for small batches
//! and a per-row insert loop inside `conn.transaction` for the 100k bulk (one
//! 100k-row statement exceeds SQLite's bind-parameter limit).

#[path = "../../../src/impls/rusqlite.rs"]
mod raw;

use std::process::ExitCode;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use driftwood_bench_harness::{
    BASELINE_PREFIX, BenchResult, Environment, Implementation, NewUser, Op, PRAGMAS, SCHEMA, Setup,
    Target, Workload, peer_main,
};

diesel::table! {
    users (id) {
        id -> BigInt,
        name -> Text,
        hair_color -> Nullable<Text>,
    }
}

diesel::table! {
    posts (id) {
        id -> BigInt,
        user_id -> BigInt,
        title -> Text,
        body -> Nullable<Text>,
    }
}

diesel::table! {
    comments (id) {
        id -> BigInt,
        post_id -> BigInt,
        text -> Text,
    }
}

diesel::joinable!(posts -> users (user_id));
diesel::joinable!(comments -> posts (post_id));
diesel::allow_tables_to_appear_in_same_query!(users, posts, comments);

/// A `users` row.
#[derive(Debug, Queryable, Identifiable, Insertable)]
#[diesel(table_name = users)]
struct User {
    id: i64,
    name: String,
    hair_color: Option<String>,
}

/// A `posts` row.
#[derive(Debug, Queryable, Identifiable, Associations, Insertable)]
#[diesel(table_name = posts, belongs_to(User))]
struct Post {
    id: i64,
    user_id: i64,
    title: String,
    body: Option<String>,
}

/// A `comments` row.
#[derive(Debug, Queryable, Identifiable, Associations, Insertable)]
#[diesel(table_name = comments, belongs_to(Post))]
struct Comment {
    id: i64,
    post_id: i64,
    text: String,
}

/// A user to insert, borrowing the caller's data.
#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUserRef<'a> {
    name: &'a str,
    hair_color: Option<&'a str>,
}

impl<'a> From<&'a NewUser> for NewUserRef<'a> {
    fn from(u: &'a NewUser) -> Self {
        NewUserRef {
            name: &u.name,
            hair_color: u.hair_color.as_deref(),
        }
    }
}

/// The row of `ENV_QUERY`.
#[derive(QueryableByName)]
struct EnvRow {
    #[diesel(sql_type = Text)]
    sqlite_version: String,
    #[diesel(sql_type = Text)]
    journal_mode: String,
    #[diesel(sql_type = BigInt)]
    synchronous: i64,
}

/// Seed rows per multi-row INSERT (keeps binds under SQLite's limit).
const SEED_CHUNK: usize = 1_000;

/// diesel: one `SqliteConnection`.
struct Diesel {
    conn: Option<SqliteConnection>,
}

impl Diesel {
    fn conn(&mut self) -> BenchResult<&mut SqliteConnection> {
        self.conn
            .as_mut()
            .ok_or_else(|| "diesel: no database open".into())
    }
}

impl Implementation for Diesel {
    fn name(&self) -> String {
        "diesel".to_owned()
    }

    fn setup(&mut self, setup: &Setup<'_>) -> BenchResult<()> {
        let url = match setup.target {
            Target::File(p) => p.to_str().ok_or("non-UTF-8 path")?.to_owned(),
            Target::Memory => ":memory:".to_owned(),
        };
        let mut conn = SqliteConnection::establish(&url)?;
        for pragma in PRAGMAS {
            conn.batch_execute(pragma)?;
        }
        for create in SCHEMA {
            conn.batch_execute(create)?;
        }
        let d = setup.dataset;
        conn.transaction(|c| {
            let seed_users: Vec<User> = d
                .users
                .iter()
                .map(|u| User {
                    id: u.id,
                    name: u.name.clone(),
                    hair_color: u.hair_color.clone(),
                })
                .collect();
            for chunk in seed_users.chunks(SEED_CHUNK) {
                diesel::insert_into(users::table).values(chunk).execute(c)?;
            }
            let seed_posts: Vec<Post> = d
                .posts
                .iter()
                .map(|p| Post {
                    id: p.id,
                    user_id: p.user_id,
                    title: p.title.clone(),
                    body: p.body.clone(),
                })
                .collect();
            for chunk in seed_posts.chunks(SEED_CHUNK) {
                diesel::insert_into(posts::table).values(chunk).execute(c)?;
            }
            let seed_comments: Vec<Comment> = d
                .comments
                .iter()
                .map(|m| Comment {
                    id: m.id,
                    post_id: m.post_id,
                    text: m.text.clone(),
                })
                .collect();
            for chunk in seed_comments.chunks(SEED_CHUNK) {
                diesel::insert_into(comments::table)
                    .values(chunk)
                    .execute(c)?;
            }
            diesel::QueryResult::Ok(())
        })?;
        self.conn = Some(conn);
        Ok(())
    }

    fn environment(&mut self) -> BenchResult<Environment> {
        let row: EnvRow =
            diesel::sql_query(driftwood_bench_harness::ENV_QUERY).get_result(self.conn()?)?;
        Ok(Environment {
            sqlite_version: row.sqlite_version,
            journal_mode: row.journal_mode,
            synchronous: row.synchronous,
        })
    }

    fn run(&mut self, op: Op<'_>) -> BenchResult<u64> {
        let conn = self.conn()?;
        Ok(match op {
            Op::LoadUsers => users::table.load::<User>(conn)?.len() as u64,
            Op::UsersWithPosts { hair_color } => users::table
                .left_join(posts::table)
                .filter(users::hair_color.eq(hair_color))
                .load::<(User, Option<Post>)>(conn)?
                .len() as u64,
            Op::InsertUsers(rows) => {
                let rows: Vec<NewUserRef<'_>> = rows.iter().map(NewUserRef::from).collect();
                diesel::insert_into(users::table)
                    .values(&rows)
                    .execute(conn)? as u64
            }
            Op::BulkInsertUsers(rows) => conn.transaction(|c| {
                let mut inserted = 0u64;
                for u in rows {
                    inserted += diesel::insert_into(users::table)
                        .values(NewUserRef::from(u))
                        .execute(c)? as u64;
                }
                diesel::QueryResult::Ok(inserted)
            })?,
            Op::LoadAssociations => {
                let users = users::table.load::<User>(conn)?;
                let posts = Post::belonging_to(&users).load::<Post>(conn)?;
                let comments = Comment::belonging_to(&posts)
                    .load::<Comment>(conn)?
                    .grouped_by(&posts);
                let posts_and_comments = posts.into_iter().zip(comments).grouped_by(&users);
                let grouped: driftwood_bench_harness::Grouped<User, Post, Comment> =
                    users.into_iter().zip(posts_and_comments).collect();
                driftwood_bench_harness::data::association_count(&grouped)
            }
            Op::SelectUserById(id) => users::table.find(id).first::<User>(conn)?.id as u64,
            Op::Concurrent(_) => return Err("diesel is synchronous: no concurrent workloads".into()),
        })
    }

    fn execute(&mut self, sql: &str) -> BenchResult<()> {
        self.conn()?.batch_execute(sql)?;
        Ok(())
    }

    fn teardown(&mut self) -> BenchResult<()> {
        self.conn = None;
        Ok(())
    }

    fn supports(&self, workload: Workload) -> bool {
        workload.concurrency().is_none()
    }
}

fn main() -> ExitCode {
    peer_main(vec![
        Box::new(Diesel { conn: None }),
        Box::new(raw::RawRusqlite::new(format!(
            "{BASELINE_PREFIX}{}",
            rusqlite::version()
        ))),
    ])
}
