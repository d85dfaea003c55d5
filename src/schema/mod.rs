//! The runtime model of a database schema: tables and their columns and
//! constraints, virtual tables, indexes, views and triggers, as plain data.
//!
//! A [`Schema`] is one value holding every entity in dependency order
//! (tables before the tables that reference them, then indexes, views and
//! triggers). From it come the exact `CREATE` statements ([`sql`]); it can
//! be read back from a live database ([`read`]) and written to and read from
//! a versioned JSON snapshot ([`snapshot`]), and two schemas compare by
//! meaning ([`compare`](mod@compare)). Nothing here touches a database:
//! [`read`] parses rows of `sqlite_schema` that the SQLite backend reads
//! for it, and only the snapshot file helpers read and write files.

pub mod compare;
mod model;
pub mod read;
pub mod snapshot;
pub mod sql;

pub use compare::{Difference, EntityKind, SchemaDiff, compare};
pub use model::{
    Column, Entity, FkAction, ForeignKey, Generated, Index, IndexColumn, LengthLimit, Reference,
    Schema, Table, Trigger, View, VirtualTable,
};
pub use snapshot::Snapshot;
