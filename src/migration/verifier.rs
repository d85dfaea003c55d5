//! [`SchemaVerifier`]: migration tests against the schema snapshots of
//! every version (drift's `SchemaVerifier`).
//!
//! `start_at(v)` makes a fresh in-memory database exactly as version `v`
//! created it (from its snapshot, `user_version` = `v`), for seeding with
//! that version's rows; `migrate_and_validate(conn, v)` runs the app's own
//! migration to `v` through the real open sequence and compares the result
//! with `v`'s snapshot by meaning; `verify_all_paths()` does that for every
//! upgrade path and reports each one that fails, not only the first.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::Path;

use super::{Database, OpenDetails, create_all, open, read_back};
use crate::conn::write_unit;
use crate::error::{Error, Result};
use crate::schema::{Schema, Snapshot, compare};
use crate::sqlite::{Connection, OpenOptions};

/// Migration tests for database `D` against its schema snapshots.
pub struct SchemaVerifier<D: Database> {
    snapshots: BTreeMap<u32, Schema>,
    marker: PhantomData<fn() -> D>,
}

impl<D: Database> std::fmt::Debug for SchemaVerifier<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaVerifier")
            .field("versions", &self.versions())
            .finish()
    }
}

impl<D: Database> SchemaVerifier<D> {
    /// A verifier over these snapshots (e.g. parsed from `include_str!`s).
    pub fn new(snapshots: impl IntoIterator<Item = Snapshot>) -> Self {
        SchemaVerifier {
            snapshots: snapshots
                .into_iter()
                .map(|s| (s.schema_version, s.schema))
                .collect(),
            marker: PhantomData,
        }
    }

    /// A verifier over every snapshot file (`driftwood_schema_v{N}.json`)
    /// in `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] when the folder or a snapshot cannot be read.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let snapshots = Snapshot::versions_in(dir)?
            .into_iter()
            .map(|version| Snapshot::read_in(dir, version))
            .collect::<Result<Vec<_>>>()?;
        Ok(SchemaVerifier::new(snapshots))
    }

    /// The versions that have a snapshot, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.snapshots.keys().copied().collect()
    }

    /// The schema of `version`'s snapshot.
    pub fn schema(&self, version: u32) -> Result<&Schema> {
        self.snapshots.get(&version).ok_or_else(|| {
            Error::schema(format!(
                "no schema snapshot of version {version} (snapshots: {:?})",
                self.versions()
            ))
        })
    }

    /// A fresh in-memory database as version `version` created it: its
    /// snapshot's schema and `user_version`. Seed it with that version's
    /// rows (through [`Conn::new`](crate::Conn::new) and the old version's
    /// tables), then [`SchemaVerifier::migrate_and_validate`].
    pub fn start_at(&self, version: u32) -> Result<Connection> {
        let schema = self.schema(version)?;
        let conn = Connection::open_in_memory(&OpenOptions::default())?;
        write_unit(&conn, |handle| {
            create_all(handle, schema)?;
            conn.set_user_version(version)
        })?;
        Ok(conn)
    }

    /// Runs `D`'s migration of `conn` to `version` (the whole open
    /// sequence, `before_open` only for the current version) and checks
    /// the result against `version`'s snapshot.
    ///
    /// # Errors
    ///
    /// The migration's error, or [`Error::Schema`] listing every
    /// difference from the snapshot (as `validate_database_schema` words
    /// them).
    pub fn migrate_and_validate(&self, conn: &Connection, version: u32) -> Result<OpenDetails> {
        let expected = read_back(self.schema(version)?)?;
        let details = open::<D>(conn, version)?;
        let diff = compare::compare(&expected, &conn.read_schema()?);
        if diff.is_empty() {
            return Ok(details);
        }
        Err(Error::schema(format!(
            "after migrating to version {version}, the schema is not version {version}'s \
             snapshot:\n{diff}"
        )))
    }

    /// Proves every upgrade path: from each snapshotted version to every
    /// later one (each step, and each version to the current one), each on
    /// a fresh database. Runs them all and reports each path that fails,
    /// not only the first.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] listing every failed path with its reason; also
    /// when there are fewer than two snapshots, or the newest is not of
    /// `SCHEMA_VERSION` or differs from the code's schema (a check that
    /// proves nothing must not pass).
    pub fn verify_all_paths(&self) -> Result<usize> {
        let versions = self.versions();
        let current = D::SCHEMA_VERSION;
        if versions.len() < 2 {
            return Err(Error::schema(format!(
                "{} snapshot(s) ({versions:?}): at least two versions are needed for an upgrade \
                 path to prove",
                versions.len()
            )));
        }
        if versions.last() != Some(&current) {
            return Err(Error::schema(format!(
                "the newest snapshot is of version {:?}, not the code's SCHEMA_VERSION {current}: \
                 the paths to the current version would go unproven (write its snapshot with \
                 SnapshotCheck)",
                versions.last()
            )));
        }
        let diff = compare::compare(
            &read_back(self.schema(current)?)?,
            &read_back(&D::schema())?,
        );
        if !diff.is_empty() {
            return Err(Error::schema(format!(
                "the snapshot of version {current} is not the code's schema:\n{diff}"
            )));
        }
        let mut failures = Vec::new();
        let mut paths = 0;
        for (i, &from) in versions.iter().enumerate() {
            for &to in &versions[i + 1..] {
                paths += 1;
                let outcome = self
                    .start_at(from)
                    .and_then(|conn| self.migrate_and_validate(&conn, to));
                if let Err(error) = outcome {
                    failures.push(format!("{from} -> {to}: {error}"));
                }
            }
        }
        if failures.is_empty() {
            return Ok(paths);
        }
        Err(Error::schema(format!(
            "{} of {paths} upgrade paths failed:\n{}",
            failures.len(),
            failures.join("\n")
        )))
    }
}
