//! The SQLite backend: [`Connection`] owns one `rusqlite` connection and is
//! the only place in driftwood that touches one. It runs statements through
//! a prepared-statement cache, maps result rows in place, keeps the
//! transaction's named levels and notices when SQLite rolls a transaction
//! back on its own, refuses raw transaction control through its authorizer,
//! reads the live schema back, and emits a `tracing` event for every
//! statement (target `driftwood::sql`).
//!
//! It is synchronous; the backends (in-thread, background server) own a
//! `Connection` and call into it.

mod cells;
pub(crate) mod changes;
pub(crate) mod clock;
mod connection;
mod encryption;
mod error;
mod guard;
mod levels;
mod operations;
mod options;
pub(crate) mod policy;
mod restore;

pub use changes::{TableUpdate, UpdateKind};
pub use connection::{Connection, Execution, RawMut};
pub use encryption::EncryptionKey;
pub use levels::{Level, TxKind};
pub use operations::{BackupProgress, Checkpoint, CheckpointMode, Stats};
pub use options::{AutoVacuum, JournalMode, OpenOptions, Synchronous};
pub(crate) use restore::RestoreSteps;
