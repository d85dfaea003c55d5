//! The schema the integration tests share: drift's todo example.
#![allow(dead_code)]

use driftwood::prelude::*;

#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "categories")]
pub struct Category {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(unique)]
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
    #[column(references = "categories(id)", on_delete = "cascade")]
    pub category: Option<i64>,
    #[column(default = false)]
    pub done: bool,
    pub priority: Option<i32>,
}

pub struct TodoDb;

impl Database for TodoDb {
    const SCHEMA_VERSION: u32 = 1;
    fn schema() -> Schema {
        schema![Category, Todo]
    }
}

pub fn todo(title: &str, content: &str, category: Option<i64>) -> TodoCompanion {
    TodoCompanion {
        title: set(title),
        content: set(content),
        category: set(category),
        ..absent()
    }
}

/// Where a test's database runs: every capability is tested on both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    /// On the test's thread.
    InThread,
    /// On a background server thread.
    Background,
}

/// Both backends.
pub const BACKENDS: [Backend; 2] = [Backend::InThread, Backend::Background];

/// A fresh database file in its own temporary directory, on the calling thread.
pub async fn open_file() -> (tempfile::TempDir, Db<TodoDb>) {
    open(Backend::InThread).await
}

/// A fresh database file in its own temporary directory, on `backend`.
pub async fn open(backend: Backend) -> (tempfile::TempDir, Db<TodoDb>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("todos.db");
    let db = match backend {
        Backend::InThread => Db::<TodoDb>::open(path).await,
        Backend::Background => Db::<TodoDb>::open_in_background(path).await,
    };
    (dir, db.expect("open"))
}

/// Runs a future (or anything that becomes one) to completion on the calling thread.
pub fn block_on<F: std::future::IntoFuture>(f: F) -> F::Output {
    futures::executor::block_on(f.into_future())
}
