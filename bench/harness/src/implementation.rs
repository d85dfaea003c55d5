//! The one trait a benchmarked library implements, [`Implementation`], and the
//! small types its methods take and return.

use std::path::Path;

use crate::data::Dataset;
use crate::workload::{Op, Workload};

/// Errors from implementations and the harness: any error type converts with `?`.
pub type BenchError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout the harness.
pub type BenchResult<T> = Result<T, BenchError>;

/// Where the database of one run lives.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A file that does not exist yet, in a fresh temporary directory the
    /// runner removes afterwards (WAL and SHM files go beside it).
    File(&'a Path),
    /// A private in-memory database (`:memory:`). Everything the run does must
    /// go through the one database opened in `setup` (a pool must not open a
    /// second, empty one).
    Memory,
}

/// What [`Implementation::setup`] must prepare.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The workload about to run (its operations arrive through `run`).
    pub workload: Workload,
    /// The database to open.
    pub target: Target<'a>,
    /// The rows to seed, and the rows insert operations will pass back.
    pub dataset: &'a Dataset,
}

/// The facts [`Implementation::environment`] reports, read through the
/// implementation's own connection with [`ENV_QUERY`](crate::data::ENV_QUERY).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// `sqlite_version()`, e.g. `3.50.4`.
    pub sqlite_version: String,
    /// `PRAGMA journal_mode`: `wal` for files, `memory` in memory mode.
    pub journal_mode: String,
    /// `PRAGMA synchronous`: 1 (NORMAL).
    pub synchronous: i64,
}

/// One library under test, driven by the harness through one workload at a time.
///
/// The harness calls, for each (workload, round): [`setup`](Self::setup) →
/// [`environment`](Self::environment) → warm-up [`run`](Self::run)s → timed
/// `run`s → [`teardown`](Self::teardown). Only the `run` calls of the timed
/// phase are measured (each one individually, with `std::time::Instant`); all
/// else is untimed. The same value is reused for every workload and round, so
/// anything expensive that a real program builds once (an async runtime, a
/// thread pool) is built in the constructor, never inside `run`.
///
/// Rules every implementation follows, so that figures compare:
///
/// * **Idiomatic use.** Write each operation the way the library's own docs
///   teach a user to write it, with the library's normal statement caching.
///   Don't hand-tune one library and not another; raw `rusqlite` with cached
///   prepared statements (`bench/src/impls/rusqlite.rs`) is the reference
///   implementation and the physical limit.
/// * **Same settings.** Every connection runs [`PRAGMAS`](crate::data::PRAGMAS)
///   (WAL, `synchronous=NORMAL`) before anything else; the harness checks them
///   through `environment`.
/// * **Blocking calls.** `run` returns when the operation is complete. An async
///   library drives its future to completion inside `run` (`block_on` on the
///   runtime built in the constructor), one operation at a time, exactly as an
///   `.await` would; it never runs ahead or pipelines across `run` calls.
/// * **Real materialisation.** Query results are mapped into owned structs
///   (`User`, `Post`, `Comment` or the library's own equivalents) before `run`
///   returns; returning a count without decoding rows is not allowed.
/// * **Owned data.** Libraries whose API needs `'static` data (closures sent to
///   a background thread) may keep, from `setup`, an owned copy of
///   `dataset.new_users` and send that instead of cloning the slice that
///   [`Op::InsertUsers`]/[`Op::BulkInsertUsers`] carry (they are equal): that
///   models a caller who owns its rows, not a clone per operation.
///
/// Adding an implementation is one module implementing this trait plus one
/// line registering it (see `bench/src/impls/mod.rs` for in-process ones,
/// `bench/README.md` for peers in their own workspace).
pub trait Implementation {
    /// The `implementation` value reported in results: `rusqlite`,
    /// `driftwood`, `sqlx`, `rusqlite@3.50.4`, …
    fn name(&self) -> String;

    /// Opens a fresh database at `setup.target` (file mode: the file does not
    /// exist yet), runs [`PRAGMAS`](crate::data::PRAGMAS) on every connection,
    /// creates [`SCHEMA`](crate::data::SCHEMA), and inserts `setup.dataset`'s
    /// `users`, `posts` and `comments` with their given ids (any way, e.g. one
    /// transaction; untimed). Any previous database has been torn down.
    fn setup(&mut self, setup: &Setup<'_>) -> BenchResult<()>;

    /// Runs [`ENV_QUERY`](crate::data::ENV_QUERY) through the implementation's
    /// own connection and returns its row (SQLite version, journal mode,
    /// synchronous level). Untimed; called right after `setup`.
    fn environment(&mut self) -> BenchResult<Environment>;

    /// Performs one operation, as described on [`Op`], and returns its
    /// checksum (also described there). This is the timed call.
    fn run(&mut self, op: Op<'_>) -> BenchResult<u64>;

    /// Executes one SQL statement without parameters or results (e.g.
    /// `DELETE FROM users` between bulk inserts). Untimed.
    fn execute(&mut self, sql: &str) -> BenchResult<()>;

    /// Closes everything `setup` opened (connections, pools, background
    /// threads of the connection) so the database files can be deleted.
    /// Untimed. Keep what the constructor built (runtimes).
    fn teardown(&mut self) -> BenchResult<()>;

    /// Whether the implementation runs `workload` at all: a synchronous
    /// library has nothing to offer the concurrent workloads (the raw
    /// baseline runs their statements one after another).
    fn supports(&self, workload: Workload) -> bool {
        let _ = workload;
        true
    }
}
