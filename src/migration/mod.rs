//! Migrations: how a file at one schema version becomes a database of the
//! code's version, atomically.
//!
//! A [`Database`] declares its version and its strategy —
//! [`Database::on_create`], [`Database::on_upgrade`],
//! [`Database::on_downgrade`], [`Database::before_open`] — and opening runs
//! [`open`]: foreign keys off (they cannot change inside a transaction),
//! one `BEGIN IMMEDIATE`, the version read inside it, create, upgrade or
//! downgrade through a [`Migrator`], `user_version` written, `before_open`,
//! `foreign_key_check` table by table, `COMMIT`, foreign keys restored. An
//! error, a panic or a killed process at any instant leaves the file as it
//! was: everything is one transaction. The callbacks get the synchronous
//! typed API ([`Conn`], which the migrator dereferences to), run where the
//! connection lives, and nothing else interleaves.
//!
//! The strategy trait is in `strategy.rs`; the migrator's operations in
//! `migrator.rs`; the 12-step table rebuild ([`TableMigration`]) in
//! `rebuild.rs`; the foreign-key checks in `checks.rs`; one function per
//! version step in `steps.rs`; migration tests against the snapshots of
//! every version ([`SchemaVerifier`]) in `verifier.rs`; keeping the
//! snapshots true ([`SnapshotCheck`]) in `snapshots.rs`, with the old
//! versions' tables as Rust source from `codegen.rs`.

mod auto;
mod checks;
mod codegen;
mod migrator;
mod rebuild;
mod snapshots;
mod steps;
mod strategy;
mod verifier;

pub use auto::{AutoMigration, AutoPlan};
pub use codegen::tables_source;
pub use migrator::{ColumnRef, Migrator};
pub use rebuild::{Progress, Step, TableMigration, Transform};
pub use snapshots::{SnapshotCheck, SnapshotReport, snapshot_of};
pub use steps::StepByStep;
pub use strategy::{Database, create_all};
pub use verifier::SchemaVerifier;

use crate::conn::{Conn, write_unit};
use crate::error::{Error, Result};
use crate::schema::{Schema, compare};
use crate::sqlite::Connection;

/// What opening found and did, given to [`Database::before_open`] (drift's
/// `OpeningDetails`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenDetails {
    /// The version stored in the file before opening; `None` when the file
    /// was empty and the schema was just created.
    pub version_before: Option<u32>,
    /// The version now stored.
    pub version_now: u32,
    /// Foreign keys SQLite cannot check ("foreign key mismatch": they point
    /// at columns that are not a key), with what driftwood's own check of
    /// them found. Apps ship such schemas; they are reported, not refused.
    pub warnings: Vec<String>,
}

impl OpenDetails {
    /// The schema was just created.
    pub fn was_created(&self) -> bool {
        self.version_before.is_none()
    }

    /// The file was at another version before (created, upgraded or
    /// downgraded).
    pub fn had_upgrade(&self) -> bool {
        self.version_before != Some(self.version_now)
    }
}

/// Opens the schema of `D` on `conn` at version `to` (normally
/// [`Database::SCHEMA_VERSION`]; a migration test may ask for an older
/// one, and then `before_open` does not run, since it expects the
/// current schema). See the module documentation for the sequence.
///
/// # Errors
///
/// [`Error::Migration`] (nothing changed) when the file is newer than `to`
/// and `D` does not handle downgrades, when the file has tables but no
/// version, when a callback fails or panics, or when `foreign_key_check`
/// finds violations (listed).
pub fn open<D: Database>(conn: &Connection, to: u32) -> Result<OpenDetails> {
    if to == 0 {
        return Ok(OpenDetails {
            version_before: Some(0),
            version_now: 0,
            warnings: Vec::new(),
        });
    }
    let found = conn.user_version()?;
    let current = found == to && !D::ERASE_ON_SCHEMA_CHANGE;
    if current {
        // Nothing to migrate: only `before_open` runs, with the
        // connection's foreign keys as configured.
        return write_unit(conn, |handle| {
            let found = conn.user_version()?;
            if found != to {
                // Another process changed it since: migrate after all.
                return Err(Error::Migration {
                    from: found,
                    to,
                    message: "the version changed while opening; open again".into(),
                });
            }
            let details = OpenDetails {
                version_before: Some(found),
                version_now: to,
                warnings: Vec::new(),
            };
            if to == D::SCHEMA_VERSION {
                D::before_open(handle, &details)?;
            }
            Ok(details)
        });
    }
    migration_transaction(conn, |handle| migrate::<D>(conn, handle, to))
}

/// Runs `work` as a migration: foreign keys off before one immediate
/// transaction (SQLite ignores the pragma inside one), restored after it,
/// whatever happened.
fn migration_transaction<R>(
    conn: &Connection,
    work: impl FnOnce(&Conn<'_>) -> Result<R>,
) -> Result<R> {
    with_foreign_keys_off(conn, || write_unit(conn, work))
}

/// Runs `work` with foreign keys off, restoring them whatever happened.
fn with_foreign_keys_off<R>(conn: &Connection, work: impl FnOnce() -> Result<R>) -> Result<R> {
    let foreign_keys = conn.foreign_keys()?;
    if foreign_keys {
        conn.set_foreign_keys(false)?;
    }
    let result = work();
    let restored = if foreign_keys {
        conn.set_foreign_keys(true)
    } else {
        Ok(())
    };
    let value = result?;
    restored?;
    Ok(value)
}

/// Runs `work` in a transaction (a savepoint inside one) that is rolled
/// back whatever it returns, panics included: not even the file's change
/// counter moves.
pub(crate) fn rolled_back<R>(conn: &Connection, work: impl FnOnce() -> Result<R>) -> Result<R> {
    let level = conn.begin(crate::sqlite::TxKind::Immediate)?;
    let result = crate::error::catch(work);
    conn.rollback(level)?;
    result
}

/// What [`migrate_to_schema`] would do and lose, found the way it would
/// run (foreign keys off, the whole migration in a transaction), rolled
/// back: nothing changes. What `driftwood migrate --dry-run` runs.
///
/// # Errors
///
/// As [`migrate_to_schema`]: a dry run fails where the run would.
pub fn plan_to_schema(
    conn: &Connection,
    target: Schema,
    hints: &AutoMigration,
) -> Result<AutoPlan> {
    with_foreign_keys_off(conn, || {
        rolled_back(conn, || {
            Migrator::new(Conn::new(conn), target).plan_automatically(hints)
        })
    })
}

/// Migrates the database on `conn` to `target` automatically (see
/// [`AutoMigration`]), atomically as an opening migration is: foreign keys
/// off, one transaction, `foreign_key_check`, restored. `user_version` is
/// kept unless `set_version` says otherwise. What `driftwood migrate`
/// runs.
///
/// # Errors
///
/// As [`AutoMigration::run`], and foreign-key violations; nothing changes.
pub fn migrate_to_schema(
    conn: &Connection,
    target: Schema,
    hints: &AutoMigration,
    set_version: Option<u32>,
) -> Result<AutoPlan> {
    migration_transaction(conn, |handle| {
        let plan = Migrator::new(*handle, target).migrate_automatically(hints)?;
        if let Some(version) = set_version {
            conn.set_user_version(version)?;
        }
        for warning in &plan.warnings {
            tracing::warn!(target: "driftwood::migration", "{warning}");
        }
        Ok(plan)
    })
}

/// The migration itself, inside the opening transaction.
fn migrate<D: Database>(conn: &Connection, handle: &Conn<'_>, to: u32) -> Result<OpenDetails> {
    let found = conn.user_version()?;
    let fail = |message: String| Error::Migration {
        from: found,
        to,
        message,
    };
    let migrator = Migrator::new(*handle, D::schema());
    let empty = is_empty(conn)?;
    let version_before = if found == 0 && empty {
        if to != D::SCHEMA_VERSION {
            return Err(fail(format!(
                "creating a database at version {to} needs that version's schema; this code \
                 has version {}'s",
                D::SCHEMA_VERSION
            )));
        }
        tracing::info!(target: "driftwood::migration", to, "creating the schema");
        D::on_create(&migrator)?;
        None
    } else if D::ERASE_ON_SCHEMA_CHANGE && (found != to || differs(conn, &D::schema())?) {
        tracing::warn!(target: "driftwood::migration", from = found, to, "the schema changed: erasing the database (ERASE_ON_SCHEMA_CHANGE)");
        migrator.erase_all()?;
        D::on_create(&migrator)?;
        None
    } else if found == 0 {
        return Err(fail(
            "the file has tables but no schema version (PRAGMA user_version = 0); refusing to \
             guess which version it is"
                .into(),
        ));
    } else if found < to {
        tracing::info!(target: "driftwood::migration", from = found, to, "upgrading");
        D::on_upgrade(&migrator, found, to)?;
        Some(found)
    } else if found > to {
        tracing::info!(target: "driftwood::migration", from = found, to, "downgrading");
        D::on_downgrade(&migrator, found, to)?;
        Some(found)
    } else {
        Some(found)
    };
    conn.set_user_version(to)?;
    let mut details = OpenDetails {
        version_before,
        version_now: to,
        warnings: Vec::new(),
    };
    if to == D::SCHEMA_VERSION {
        D::before_open(handle, &details)?;
    }
    details.warnings = checks::foreign_keys(handle).map_err(|error| match error {
        Error::Schema { message } => fail(message),
        other => other,
    })?;
    for warning in &details.warnings {
        tracing::warn!(target: "driftwood::migration", "{warning}");
    }
    Ok(details)
}

/// Whether the file holds no schema object of its own.
fn is_empty(conn: &Connection) -> Result<bool> {
    let count = conn.query_value(
        "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    Ok(count == crate::types::SqlValue::Integer(0))
}

/// Whether the live schema differs in meaning from `expected`.
fn differs(conn: &Connection, expected: &Schema) -> Result<bool> {
    Ok(!schema_differences(conn, expected)?.is_empty())
}

/// The differences between the live schema of `conn` and `expected`, as
/// a fresh in-memory database built from `expected` reads back (so both
/// sides went through SQLite the same way).
pub fn schema_differences(conn: &Connection, expected: &Schema) -> Result<compare::SchemaDiff> {
    let expected = read_back(expected)?;
    let found = conn.read_schema()?;
    Ok(compare::compare(&expected, &found))
}

/// `schema` as SQLite reads it back after creating it in a fresh
/// in-memory database: the form a live schema is compared in.
pub(crate) fn read_back(schema: &Schema) -> Result<Schema> {
    let reference = Connection::open_in_memory(&Default::default())?;
    write_unit(&reference, |handle| create_all(handle, schema))?;
    reference.read_schema()
}

/// Checks that the live schema of `conn` is the one `D` declares
/// (drift's `validateDatabaseSchema`): `Ok` when they mean the same,
/// [`Error::Schema`] listing every difference otherwise (column order is
/// only a note). Use it in tests of migrations, or in `before_open` while
/// developing.
pub fn validate_database_schema<D: Database>(conn: &Conn<'_>) -> Result<()> {
    let diff = schema_differences(conn.connection(), &D::schema())?;
    if diff.is_empty() {
        return Ok(());
    }
    Err(Error::Schema {
        message: format!("the database's schema is not the code's:\n{diff}"),
    })
}
