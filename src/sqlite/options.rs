//! How a connection is opened and configured.

use std::time::Duration;

use super::EncryptionKey;

/// SQLite's journal mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalMode {
    /// Write-ahead log: readers and one writer at once (the default for files).
    Wal,
    /// Rollback journal, deleted after each transaction.
    Delete,
    /// Journal kept in memory (in-memory databases always use it).
    Memory,
}

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// No syncs: fastest, a power loss can corrupt.
    Off,
    /// Syncs at checkpoints: safe with WAL against crashes (the default).
    Normal,
    /// Syncs at every commit.
    Full,
}

/// SQLite's `auto_vacuum` setting: what happens to the pages deletes free.
/// It takes effect on a new file (set before its first table) or after a
/// `VACUUM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoVacuum {
    /// Freed pages stay in the file for reuse (SQLite's default).
    None,
    /// Freed pages are returned to the system at every commit.
    Full,
    /// Freed pages are kept until `incremental_vacuum` returns them.
    Incremental,
}

/// Connection settings, applied before any transaction when a connection
/// opens (some pragmas are no-ops or errors inside one). Build them from
/// `OpenOptions::default()` and its setters; new settings can be added
/// without breaking callers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenOptions {
    /// The journal mode for file databases.
    pub journal_mode: JournalMode,
    /// The `synchronous` setting.
    pub synchronous: Synchronous,
    /// Enforce foreign keys (`PRAGMA foreign_keys = ON`).
    pub foreign_keys: bool,
    /// How long a statement waits for a lock held by another connection
    /// before failing with "database is locked".
    pub busy_timeout: Duration,
    /// How many prepared statements each connection keeps.
    pub statement_cache_capacity: usize,
    /// Open read-only.
    pub read_only: bool,
    /// The size, in bytes, a WAL (or journal) is truncated to after a
    /// checkpoint when it grew beyond it (`PRAGMA journal_size_limit`), so a
    /// burst of writes does not leave a large file behind; `None` keeps
    /// SQLite's (no limit).
    pub journal_size_limit: Option<u64>,
    /// Run `PRAGMA optimize` when the connection closes, as SQLite
    /// recommends for long-lived applications. Off by default: it may write
    /// the planner's statistics (`sqlite_stat1`) at close, so a file opened
    /// only to be refused (a downgrade) would not be left untouched.
    pub optimize_on_close: bool,
    /// A read transaction open longer than this is logged (a `tracing`
    /// warning with its duration): while it is open, checkpoints cannot
    /// finish and the WAL grows.
    pub long_read_warning: Duration,
    /// `PRAGMA auto_vacuum` for a new file; `None` leaves the file's.
    pub auto_vacuum: Option<AutoVacuum>,
    /// The key of an encrypted database (SQLCipher, the `sqlcipher`
    /// feature), set before anything else on every connection opened with
    /// these options; `None` for a plain file.
    pub encryption_key: Option<EncryptionKey>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            journal_mode: JournalMode::Wal,
            synchronous: Synchronous::Normal,
            foreign_keys: true,
            busy_timeout: Duration::from_secs(5),
            statement_cache_capacity: 256,
            read_only: false,
            journal_size_limit: Some(64 * 1024 * 1024),
            optimize_on_close: false,
            long_read_warning: Duration::from_secs(10),
            auto_vacuum: None,
            encryption_key: None,
        }
    }
}

impl OpenOptions {
    /// Sets the journal mode.
    pub fn journal_mode(mut self, mode: JournalMode) -> Self {
        self.journal_mode = mode;
        self
    }

    /// Sets `synchronous`.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Enforces foreign keys or not.
    pub fn foreign_keys(mut self, on: bool) -> Self {
        self.foreign_keys = on;
        self
    }

    /// Sets the busy timeout.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets the prepared-statement cache capacity.
    pub fn statement_cache_capacity(mut self, capacity: usize) -> Self {
        self.statement_cache_capacity = capacity;
        self
    }

    /// Opens read-only.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets `PRAGMA journal_size_limit` (`None`: no limit).
    pub fn journal_size_limit(mut self, bytes: Option<u64>) -> Self {
        self.journal_size_limit = bytes;
        self
    }

    /// Sets how long a read transaction may stay open before it is logged.
    pub fn long_read_warning(mut self, after: Duration) -> Self {
        self.long_read_warning = after;
        self
    }

    /// Sets `PRAGMA auto_vacuum` (effective on a new file, or after `VACUUM`).
    pub fn auto_vacuum(mut self, mode: AutoVacuum) -> Self {
        self.auto_vacuum = Some(mode);
        self
    }

    /// Opens an encrypted database with `key` — a passphrase (`&str`,
    /// `String`) or a raw 256-bit key (`[u8; 32]`) — or creates one: its
    /// first statement is `PRAGMA key`, then a read proves the key opens
    /// the file ([`Error::EncryptionKey`](crate::Error::EncryptionKey) if
    /// not). Needs SQLCipher (driftwood's `sqlcipher` feature); without it
    /// opening fails with [`Error::NoEncryption`](crate::Error::NoEncryption)
    /// instead of writing a plain file.
    pub fn encryption_key(mut self, key: impl Into<EncryptionKey>) -> Self {
        self.encryption_key = Some(key.into());
        self
    }

    /// Runs `PRAGMA optimize` when the connection closes, or not.
    pub fn optimize_on_close(mut self, on: bool) -> Self {
        self.optimize_on_close = on;
        self
    }

    /// The pragmas these settings amount to, for a file database or not.
    pub(crate) fn pragmas(&self, in_memory: bool) -> String {
        let mut sql = String::new();
        // Before the journal mode: SQLite reads it when it writes page 1.
        if let Some(mode) = self.auto_vacuum.filter(|_| !self.read_only) {
            let mode = match mode {
                AutoVacuum::None => "NONE",
                AutoVacuum::Full => "FULL",
                AutoVacuum::Incremental => "INCREMENTAL",
            };
            sql.push_str(&format!("PRAGMA auto_vacuum = {mode};"));
        }
        if !in_memory && !self.read_only {
            let mode = match self.journal_mode {
                JournalMode::Wal => "WAL",
                JournalMode::Delete => "DELETE",
                JournalMode::Memory => "MEMORY",
            };
            sql.push_str(&format!("PRAGMA journal_mode = {mode};"));
        }
        let sync = match self.synchronous {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        sql.push_str(&format!("PRAGMA synchronous = {sync};"));
        sql.push_str(&format!(
            "PRAGMA foreign_keys = {};",
            if self.foreign_keys { "ON" } else { "OFF" }
        ));
        if let Some(limit) = self
            .journal_size_limit
            .filter(|_| !in_memory && !self.read_only)
        {
            sql.push_str(&format!("PRAGMA journal_size_limit = {limit};"));
        }
        sql
    }
}
