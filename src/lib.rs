//! # driftwood
//!
//! Typed SQLite persistence for Rust applications — the Rust counterpart of
//! Dart's [drift](https://drift.simonbinder.eu/).
//!
//! Declare tables once as Rust structs with `#[derive(Table)]`; get typed
//! rows, typed column handles for queries, a companion type for partial
//! inserts and updates, and the exact `CREATE` statements. Open a [`Db`] and
//! query it through the [`Executor`] methods from async code; run whole units
//! of work synchronously with [`Db::write`] in one call.
//!
//! The main types:
//!
//! - [`Db`] — a handle to a database of a [`Database`] definition;
//! - [`Runner`] — the typed query API (`select`, `insert`, `update`,
//!   `delete`, raw SQL, batches) on every handle; [`Executor`] is its async
//!   half, what `Db` and [`Transaction`] implement, whose queries give
//!   [`Pending`] futures;
//! - [`Transaction`] — an owned transaction usable across awaits, and
//!   [`Db::transaction`] for a scoped one;
//! - [`Conn`] — the synchronous handle a unit of work gets, whose queries
//!   give results at once;
//! - [`schema::Schema`] — the schema model, its SQL, its JSON snapshots;
//! - [`Error`] — one error enum to match on.
//!
//! ```
//! use driftwood::prelude::*;
//!
//! #[derive(Table, Debug, Clone, PartialEq)]
//! #[table(name = "todos")]
//! pub struct Todo {
//!     #[column(primary_key, auto_increment)]
//!     pub id: i64,
//!     #[column(length = 6..=10)]
//!     pub title: String,
//!     #[column(name = "body")]
//!     pub content: String,
//!     pub category: Option<i64>,
//! }
//!
//! struct AppDb;
//!
//! impl Database for AppDb {
//!     const SCHEMA_VERSION: u32 = 1;
//!     fn schema() -> Schema {
//!         schema![Todo]
//!     }
//! }
//!
//! # futures::executor::block_on(async {
//! let db = Db::<AppDb>::open_in_memory().await?;
//! let id = db.insert(TodoCompanion { title: set("Groceries"), content: set("milk"), ..absent() }).await?;
//! let open = db.select::<Todo>().filter(Todo::CATEGORY.is_null()).get().await?;
//! assert_eq!(open[0].id, id);
//! # Ok::<(), driftwood::Error>(())
//! # }).unwrap();
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate self as driftwood;

mod backend;
mod batch;
mod conn;
mod database;
mod error;
pub mod executor;
pub mod migration;
mod plan;
mod queries;
pub mod query;
#[cfg(feature = "remote")]
pub mod remote;
pub mod row;
pub mod schema;
pub mod sqlite;
pub mod table;
mod transaction;
pub mod types;
pub mod watch;

pub use backend::{Pending, server};
pub use batch::Batch;
pub use conn::Conn;
pub use database::{Database, Db, NoSchema, create_all};
pub use driftwood_macros::{IntEnum, Table, TextEnum};
pub use error::{ConstraintKind, Error, Result};
pub use executor::{Executor, Runner};
pub use queries::{ColumnsQuery, DeleteQuery, InsertQuery, SelectQuery, UpdateQuery};
pub use server::Server;
pub use table::Table;
pub use transaction::Transaction;
pub use types::{IntEnum, TextEnum};
pub use watch::{TableUpdatesStream, Watch};

/// Runs a future to completion on the calling thread: how synchronous code
/// (a CLI, a test, a UI callback that may block) uses driftwood's async API
/// without an async runtime.
///
/// ```
/// use driftwood::prelude::*;
/// let db: Db = driftwood::block_on(Db::open_in_memory()).unwrap();
/// let rows = driftwood::block_on(db.custom_select("SELECT 40 + 2", [])).unwrap();
/// assert_eq!(rows[0].get::<i64>(0).unwrap(), 42);
/// ```
pub fn block_on<F: std::future::IntoFuture>(future: F) -> F::Output {
    futures::executor::block_on(future.into_future())
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The names most programs need: `use driftwood::prelude::*;`.
pub mod prelude {
    pub use crate::migration::{Migrator, OpenDetails, TableMigration};
    pub use crate::query::{Expr, InsertMode, OnConflict, custom};
    pub use crate::schema::Schema;
    pub use crate::sqlite::{Execution, OpenOptions};
    pub use crate::table::{Column, Value, absent, set};
    pub use crate::types::SqlValue;
    pub use crate::watch::{UpdateFilter, UpdateKind, Watch};
    pub use crate::{
        Batch, Conn, Database, Db, Error, Executor, IntEnum, NoSchema, Pending, Result, Runner,
        Server, Table, TextEnum, Transaction, args, schema,
    };
}
