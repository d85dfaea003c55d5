//! The SQLite backend: [`Connection`] owns one `rusqlite` connection and is
//! the only place in driftwood that touches one. It runs statements through
//! a prepared-statement cache, maps result rows in place, tracks the
//! transaction and savepoint depth, reads the live schema back, and emits a
//! `tracing` event for every statement (target `driftwood::sql`).
//!
//! It is synchronous; the async layers (the in-thread database, the
//! background server) own a `Connection` and call into it.

mod cells;
mod connection;
mod error;
mod options;

pub use connection::{Connection, Execution, TxKind};
pub use options::{JournalMode, OpenOptions, Synchronous};
