//! The one error type of driftwood.
//!
//! [`Error`] is an enum a caller can match on. Every variant carries its
//! context as plain owned data (the statement text, the table and column)
//! and no live handles, so an error can cross threads and, later, the wire
//! unchanged (it implements `Serialize` and `Deserialize`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Shorthand for `Result<T, driftwood::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which kind of constraint a write violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConstraintKind {
    /// A `UNIQUE` constraint or unique index.
    Unique,
    /// A `PRIMARY KEY` (duplicate key).
    PrimaryKey,
    /// A `NOT NULL` column received `NULL`.
    NotNull,
    /// A `FOREIGN KEY` reference points nowhere.
    ForeignKey,
    /// A `CHECK` constraint (including length limits and `bool` checks).
    Check,
    /// A constraint SQLite does not classify further (a trigger's `RAISE`, …).
    Other,
}

impl fmt::Display for ConstraintKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConstraintKind::Unique => "unique",
            ConstraintKind::PrimaryKey => "primary key",
            ConstraintKind::NotNull => "not null",
            ConstraintKind::ForeignKey => "foreign key",
            ConstraintKind::Check => "check",
            ConstraintKind::Other => "other",
        })
    }
}

/// Everything that can go wrong in driftwood.
///
/// Messages start lowercase, name the statement or the column involved, and
/// end without a period.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Error {
    /// A write violated a constraint.
    #[error("{kind} constraint failed on {}: {message} (statement: {sql})", describe_target(.table, .column))]
    Constraint {
        /// Which kind of constraint.
        kind: ConstraintKind,
        /// The table, when SQLite names it.
        table: Option<String>,
        /// The column, when SQLite names it.
        column: Option<String>,
        /// SQLite's message.
        message: String,
        /// The statement that failed.
        sql: String,
    },
    /// SQLite rejected or failed to run a statement (syntax error, missing
    /// table, busy database, …).
    #[error("sql error: {message} (statement: {sql})")]
    Sql {
        /// SQLite's extended result code, when there is one.
        code: Option<i32>,
        /// SQLite's message.
        message: String,
        /// The statement that failed.
        sql: String,
    },
    /// A result cell could not be read as the requested Rust type.
    #[error("column `{column}` holds {found}, expected {expected} (statement: {sql})")]
    TypeMismatch {
        /// The column's name in the result.
        column: String,
        /// What the Rust side expected.
        expected: String,
        /// What the cell held.
        found: String,
        /// The statement whose result it was.
        sql: String,
    },
    /// A query that must return a row returned none.
    #[error("query returned no rows (statement: {sql})")]
    NoRows {
        /// The query.
        sql: String,
    },
    /// A query that must return at most one row returned more.
    #[error("query returned more than one row (statement: {sql})")]
    TooManyRows {
        /// The query.
        sql: String,
    },
    /// A statement was cancelled or interrupted before it finished; a write
    /// transaction it ran in has been rolled back.
    #[error("statement was interrupted (statement: {sql})")]
    Interrupted {
        /// The statement that was running.
        sql: String,
    },
    /// The database, its server or the connection is closed.
    #[error("database is closed")]
    Closed,
    /// A server registered under this name has shut down.
    #[error("the server registered as `{name}` has shut down")]
    StaleServer {
        /// The registered name.
        name: String,
    },
    /// The schema is invalid or does not match what was expected.
    #[error("schema error: {message}")]
    Schema {
        /// What is wrong.
        message: String,
    },
    /// Opening or upgrading the database failed; nothing was changed.
    #[error("migration from version {from} to {to} failed: {message}")]
    Migration {
        /// The version found in the file.
        from: u32,
        /// The version the code expects.
        to: u32,
        /// Why.
        message: String,
    },
    /// A pragma that configures the connection ran inside a transaction,
    /// where SQLite ignores it: it belongs to connection setup.
    #[error(
        "PRAGMA {pragma} cannot change inside a transaction (SQLite would ignore it); it is connection setup: set it in OpenOptions (e.g. OpenOptions::foreign_keys), which applies before any transaction (statement: {sql})"
    )]
    SetupPragma {
        /// The pragma.
        pragma: String,
        /// The statement.
        sql: String,
    },
    /// A value given to driftwood is not usable (a companion missing a
    /// required column, a nested transaction used after its parent ended, …).
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong.
        message: String,
    },
    /// Opening the database file failed.
    #[error("cannot open database {path}: {message}")]
    Open {
        /// The path given.
        path: String,
        /// Why.
        message: String,
    },
    /// The file cannot be read with the encryption key given, or without
    /// one: the key is wrong or missing — or the file is not a database.
    /// Found when the connection opens; the key is never part of it.
    #[error("cannot open database {path}: {}", describe_key_failure(*.key_given))]
    EncryptionKey {
        /// The path given.
        path: String,
        /// Whether a key was given (`OpenOptions::encryption_key`).
        key_given: bool,
    },
    /// An encryption key was given, but this build's SQLite cannot encrypt
    /// (driftwood was built without its `sqlcipher` feature): refused
    /// rather than write a plain file.
    #[error(
        "cannot open database {path} with an encryption key: this build's SQLite has no encryption (build driftwood with its `sqlcipher` feature); nothing was written"
    )]
    NoEncryption {
        /// The path given.
        path: String,
    },
    /// SQL tried to set or change the encryption key (`PRAGMA key`,
    /// `PRAGMA rekey`, …): the key belongs to `OpenOptions::encryption_key`
    /// and `rekey`. The statement is not kept, since it holds a key.
    #[error(
        "PRAGMA {pragma} cannot run as SQL: set the key with OpenOptions::encryption_key and change it with rekey (the statement is not shown: it holds a key)"
    )]
    KeyPragma {
        /// The pragma.
        pragma: String,
    },
    /// User code called by driftwood panicked; the panic was caught and the
    /// database is still usable.
    #[error("user code panicked: {message}")]
    Panic {
        /// The panic's message.
        message: String,
    },
    /// SQLite rolled the whole transaction back on its own (an `OR ROLLBACK`
    /// conflict, an interrupted write, a full disk, …). Nothing more runs in
    /// it: every later statement and `commit` on its handle fail with this
    /// error, and only rolling it back (or dropping it) ends it.
    #[error(
        "the transaction was rolled back by SQLite ({cause}); nothing more can run in it: roll it back or drop it"
    )]
    RolledBack {
        /// The failure that made SQLite roll back.
        cause: String,
    },
    /// The transaction (or savepoint) this handle names has already ended.
    #[error("this transaction is no longer open: {message}")]
    TransactionEnded {
        /// How it ended.
        message: String,
    },
    /// Raw SQL tried to control transactions (`BEGIN`, `COMMIT`, `ROLLBACK`,
    /// `SAVEPOINT`, `RELEASE`). driftwood owns transaction boundaries so that
    /// no write can leak out of, or into, someone else's transaction.
    #[error(
        "transaction control statements cannot run as raw SQL: use db.begin(), db.transaction(..), tx.begin() or conn.transaction(..) (statement: {sql})"
    )]
    TransactionControl {
        /// The statement.
        sql: String,
    },
    /// A unit of work left a transaction open that no transaction handle
    /// owns (through [`Connection::raw`](crate::sqlite::Connection::raw));
    /// it was rolled back.
    #[error(
        "a unit of work left a transaction open that no transaction handle owns; it was rolled back (use db.begin() or db.transaction(..))"
    )]
    UnownedTransaction,
    /// A request waited longer than the busy timeout for the writer, which
    /// a transaction holds.
    #[error("gave up after {waited_ms} ms waiting for the writer: {message}")]
    Busy {
        /// How long the request waited.
        waited_ms: u64,
        /// Who holds the writer, and what to do about it.
        message: String,
    },
    /// A read unit of work (`Db::read`) changed the database (after turning
    /// `query_only` off); its changes were rolled back.
    #[error(
        "a read unit of work changed the database; its changes were rolled back (use db.write(..) to write)"
    )]
    WriteInRead,
    /// The database was called from its own thread (inside a unit of work
    /// or from a server thread), which would wait for itself forever.
    #[error(
        "called from the database's own thread, which would wait for itself: inside a unit of work, use the `Conn` you were given"
    )]
    Reentrant,
    /// A remote client tried what a served database does not allow
    /// (attaching a database, a pragma that sets, a write on a read-only
    /// server, …); nothing ran.
    #[error("not permitted: {message} (statement: {sql})")]
    NotPermitted {
        /// What is not allowed, and why.
        message: String,
        /// The statement.
        sql: String,
    },
    /// The other side of a remote connection broke the protocol (wrong
    /// magic value, incompatible version, a malformed or oversized frame)
    /// or the connection failed; the connection is closed.
    #[error("remote protocol error: {message}")]
    Protocol {
        /// What went wrong.
        message: String,
    },
    /// A remote server refused the client's credentials (a wrong or
    /// missing token, a peer it does not trust).
    #[error("not authorized: {message}")]
    Unauthorized {
        /// Why.
        message: String,
    },
    /// A remote server's limit refused a connection or closed it (too many
    /// connections, idle too long).
    #[error("limit reached: {message}")]
    LimitReached {
        /// Which limit, and its value.
        message: String,
    },
    /// The connection to a remote server was lost while this request was in
    /// flight: it may or may not have run (a write may have committed).
    /// driftwood never retries it by itself.
    #[error(
        "outcome unknown: the connection to the server was lost while the request was in flight ({message})"
    )]
    OutcomeUnknown {
        /// How the connection ended.
        message: String,
    },
    /// This backend cannot do what was asked (a closure-based unit of work
    /// over a socket: a closure cannot cross it).
    #[error("not supported by this backend: {message}")]
    Unsupported {
        /// What, and what to use instead.
        message: String,
    },
    /// A thread of the background server died (a panic escaped driftwood's
    /// own handling, or it did not stop when shut down); the server no
    /// longer accepts work.
    #[error("the database thread `{thread}` died: {message}")]
    ThreadDied {
        /// The thread's name.
        thread: String,
        /// Why.
        message: String,
    },
    /// An operation that needs the database to itself (restoring a backup)
    /// was refused: other handles, a transaction or other connections use
    /// it. Nothing was changed.
    #[error("the database is in use: {message}; nothing was changed")]
    InUse {
        /// Who uses it, and what to do about it.
        message: String,
    },
    /// The file given to restore from is not a usable backup: missing, not
    /// a SQLite database, damaged (`quick_check` found problems), or from a
    /// schema version this database cannot be brought to. Nothing was
    /// changed.
    #[error("cannot restore from {path}: {message}; nothing was changed")]
    BadBackup {
        /// The backup's path.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

fn describe_target(table: &Option<String>, column: &Option<String>) -> String {
    match (table, column) {
        (Some(t), Some(c)) => format!("{t}.{c}"),
        (Some(t), None) => t.clone(),
        (None, Some(c)) => format!("column {c}"),
        (None, None) => "a row".to_owned(),
    }
}

fn describe_key_failure(key_given: bool) -> &'static str {
    if key_given {
        "the encryption key is wrong, or the file is not a database (or not one SQLCipher wrote with its default settings)"
    } else {
        "the file is encrypted and no encryption key was given (OpenOptions::encryption_key), or it is not a database"
    }
}

impl Error {
    /// Builds [`Error::InvalidArgument`].
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            message: message.into(),
        }
    }

    /// Builds [`Error::Schema`].
    pub fn schema(message: impl Into<String>) -> Self {
        Error::Schema {
            message: message.into(),
        }
    }

    /// The kind of constraint violated, if this is a constraint violation.
    pub fn constraint_kind(&self) -> Option<ConstraintKind> {
        match self {
            Error::Constraint { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Builds [`Error::TransactionEnded`].
    pub(crate) fn ended(message: impl Into<String>) -> Self {
        Error::TransactionEnded {
            message: message.into(),
        }
    }

    /// Turns a caught panic payload into [`Error::Panic`].
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_owned()
        };
        Error::Panic { message }
    }
}

/// Runs user code, turning a panic into [`Error::Panic`]: the one place
/// driftwood catches unwinding at the boundary where it calls user code.
#[inline]
pub(crate) fn catch<R>(work: impl FnOnce() -> Result<R>) -> Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|panic| Err(Error::from_panic(panic)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_json() {
        let err = Error::Constraint {
            kind: ConstraintKind::Unique,
            table: Some("todos".into()),
            column: Some("title".into()),
            message: "UNIQUE constraint failed: todos.title".into(),
            sql: "INSERT INTO todos …".into(),
        };
        let json = serde_json::to_string(&err).unwrap();
        assert!(json.contains("\"error\":\"constraint\""), "{json}");
        assert_eq!(serde_json::from_str::<Error>(&json).unwrap(), err);
    }

    #[test]
    fn panics_keep_their_message() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(
            Error::from_panic(caught).to_string(),
            "user code panicked: boom 7"
        );
    }
}
