//! The [`Database`] trait: a schema, its version and the strategy that
//! brings a file of any version to it — what the open sequence in this
//! module's parent runs.

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::executor::Runner;
use crate::schema::{Schema, sql::create_statement};

use super::{Migrator, OpenDetails};

/// A database definition: its schema, the schema's version and the
/// migration strategy (drift's `schemaVersion` and `MigrationStrategy`).
///
/// Opening runs the strategy in one transaction with `user_version`, so it
/// all commits or none of it does; see [`crate::migration`]. Every callback
/// runs where the connection lives, with the synchronous typed API.
pub trait Database: Send + Sync + 'static {
    /// The schema version this code expects (`PRAGMA user_version`). Bump it
    /// whenever the schema changes. `0` means "unversioned": opening never
    /// creates, checks or upgrades anything.
    const SCHEMA_VERSION: u32;

    /// For development: when the file's version or its schema (compared
    /// by meaning, as [`validate_database_schema`](crate::migration::validate_database_schema)
    /// compares) is not the code's, drop everything and create it again
    /// (GRDB's `eraseDatabaseOnSchemaChange`, drift's destructive
    /// fallback). Destroys data: never ship it on (`cfg!(debug_assertions)`
    /// is a common value).
    const ERASE_ON_SCHEMA_CHANGE: bool = false;

    /// Every table, index, view and trigger (see [`schema!`](crate::schema!)).
    fn schema() -> Schema;

    /// Creates the schema in an empty file. The default creates every
    /// entity ([`Migrator::create_all`]).
    fn on_create(m: &Migrator<'_>) -> Result<()> {
        m.create_all()
    }

    /// Brings a file at version `from` to version `to` (normally
    /// [`Database::SCHEMA_VERSION`]; a migration test may ask for an older
    /// one, and the steps beyond `to` must then not run). Runs inside the
    /// opening transaction, before `user_version` is written: if it fails,
    /// nothing changes. The default refuses.
    fn on_upgrade(m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
        let _ = m;
        Err(Error::Migration {
            from,
            to,
            message: "the database defines no upgrade from this version (implement \
                      Database::on_upgrade)"
                .into(),
        })
    }

    /// Brings a file written by a newer version `from` back to `to`. The
    /// default refuses, leaving the file untouched: a downgrade must be
    /// written on purpose.
    fn on_downgrade(m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
        let _ = m;
        Err(Error::Migration {
            from,
            to,
            message: format!(
                "the file was written by schema version {from}, newer than this code's {to}; \
                 downgrades are refused (implement Database::on_downgrade to allow one)"
            ),
        })
    }

    /// Runs once per opening of the database (once per server, not once
    /// per client), after any migration and inside the same transaction:
    /// seed data when `details.was_created()`, checks. Connection pragmas
    /// such as `foreign_keys` are not set here but in
    /// [`OpenOptions`](crate::sqlite::OpenOptions) (they cannot change
    /// inside a transaction; driftwood refuses them there).
    fn before_open(conn: &Conn<'_>, details: &OpenDetails) -> Result<()> {
        let _ = (conn, details);
        Ok(())
    }
}

/// Creates every entity of `schema` on `conn` (drift's `createAll`).
pub fn create_all(conn: &Conn<'_>, schema: &Schema) -> Result<()> {
    for entity in &schema.entities {
        conn.custom_statement(create_statement(entity), [])?;
    }
    Ok(())
}
