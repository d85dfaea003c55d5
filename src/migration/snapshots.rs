//! [`SnapshotCheck`]: the one step a project keeps in its test suite (or
//! runs after every `SCHEMA_VERSION` bump) so its schema history stays
//! true — drift's `make-migrations`, insta-style.
//!
//! It writes the current version's snapshot when it is missing (and fails
//! instead when it runs in CI, so a forgotten snapshot cannot pass
//! unnoticed), fails with a readable diff when the current version's
//! snapshot no longer matches the code (the schema changed, the version
//! did not), refuses old snapshots changed by hand (their checksum), and
//! (re)generates the old versions' tables as Rust source and a migration
//! test per version step (written once, then the project's own).

use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use super::codegen::tables_source;
use super::{Database, read_back};
use crate::error::{Error, Result};
use crate::schema::{Snapshot, compare};

/// Checks (and keeps up to date) the schema snapshots of database `D` in
/// one folder. See the module documentation.
pub struct SnapshotCheck<D: Database> {
    dir: PathBuf,
    tables_dir: Option<PathBuf>,
    tests_dir: Option<(PathBuf, String)>,
    in_ci: bool,
    marker: PhantomData<fn() -> D>,
}

/// What a [`SnapshotCheck`] found and wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotReport {
    /// The versions with a snapshot, ascending.
    pub versions: Vec<u32>,
    /// Files written or rewritten by this run.
    pub written: Vec<PathBuf>,
}

impl<D: Database> SnapshotCheck<D> {
    /// A check of the snapshots (`driftwood_schema_v{N}.json`) in `dir`.
    /// It runs as in CI when the `CI` (or Azure's `TF_BUILD`) environment
    /// variable is set to anything but `false`, `0` or `no`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let set = |name: &str| {
            std::env::var(name).is_ok_and(|v| {
                !v.is_empty() && !["false", "0", "no"].contains(&v.to_ascii_lowercase().as_str())
            })
        };
        let in_ci = set("CI") || set("TF_BUILD");
        SnapshotCheck {
            dir: dir.into(),
            tables_dir: None,
            tests_dir: None,
            in_ci,
            marker: PhantomData,
        }
    }

    /// Runs as in CI (never writes a missing snapshot) or not, whatever
    /// the environment says.
    pub fn in_ci(mut self, in_ci: bool) -> Self {
        self.in_ci = in_ci;
        self
    }

    /// Also writes each snapshotted version's tables as Rust source,
    /// `schema_v{N}.rs` in `dir` (include it with `#[path = …] mod v1;`).
    pub fn tables_in(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tables_dir = Some(dir.into());
        self
    }

    /// Also scaffolds a test per version step, `migrate_v{N}_to_v{N+1}.rs`
    /// in `dir`, written once (then it is the project's to extend).
    /// `database` is the path of `D` in that test (e.g. `my_app::AppDb`).
    pub fn tests_in(mut self, dir: impl Into<PathBuf>, database: &str) -> Self {
        self.tests_dir = Some((dir.into(), database.to_owned()));
        self
    }

    /// Runs the check.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] saying what to do: the current version's snapshot
    /// is missing in CI; it differs from the code (with the differences);
    /// a snapshot is newer than `SCHEMA_VERSION`, unreadable, or changed by
    /// hand; a generated file is stale in CI.
    pub fn run(&self) -> Result<SnapshotReport> {
        let current = D::SCHEMA_VERSION;
        let mut report = SnapshotReport::default();
        let found = if self.dir.exists() {
            Snapshot::versions_in(&self.dir)?
        } else {
            Vec::new()
        };
        let mut snapshots = found
            .iter()
            .map(|&version| Snapshot::read_in(&self.dir, version))
            .collect::<Result<Vec<_>>>()?;
        // A checksum removed together with an edit would pass the read:
        // once any snapshot has one, all must.
        let unsigned: Vec<u32> = found
            .iter()
            .copied()
            .filter(|&version| !has_checksum(&Snapshot::path_in(&self.dir, version)))
            .collect();
        if !unsigned.is_empty() && unsigned.len() < found.len() {
            return Err(Error::schema(format!(
                "the snapshots of versions {unsigned:?} in {} have no checksum while the others \
                 do: they were edited by hand (or written before checksums existed — then write \
                 them again with this version of driftwood, if those versions' schemas are \
                 unchanged)",
                self.dir.display()
            )));
        }
        if let Some(newer) = snapshots.iter().find(|s| s.schema_version > current) {
            return Err(Error::schema(format!(
                "{} holds version {}, newer than SCHEMA_VERSION {current}: the code went back, or the version was not bumped",
                Snapshot::path_in(&self.dir, newer.schema_version).display(),
                newer.schema_version
            )));
        }
        let code = D::schema();
        match snapshots.iter().find(|s| s.schema_version == current) {
            Some(snapshot) => {
                let diff = compare::compare(&read_back(&snapshot.schema)?, &read_back(&code)?);
                if !diff.is_empty() {
                    return Err(Error::schema(format!(
                        "the schema differs from the snapshot of version {current} ({}), but \
                         SCHEMA_VERSION is still {current}: bump SCHEMA_VERSION and write the \
                         migration (or, if version {current} was never released, delete the \
                         snapshot so it is written again). Snapshot vs code:\n{diff}",
                        Snapshot::path_in(&self.dir, current).display()
                    )));
                }
            }
            None if self.in_ci => {
                return Err(Error::schema(format!(
                    "no snapshot of schema version {current} in {} (CI never writes one): run \
                     the tests locally to write it, and commit it",
                    self.dir.display()
                )));
            }
            None => {
                let snapshot = Snapshot::new(current, code);
                report.written.push(snapshot.write_in(&self.dir)?);
                snapshots.push(snapshot);
            }
        }
        snapshots.sort_by_key(|s| s.schema_version);
        report.versions = snapshots.iter().map(|s| s.schema_version).collect();
        if let Some(dir) = &self.tables_dir {
            for snapshot in &snapshots {
                let file = Snapshot::file_name(snapshot.schema_version);
                let source = tables_source(snapshot, &file);
                let path = dir.join(format!("schema_v{}.rs", snapshot.schema_version));
                self.keep_written(&path, &source, true, &mut report)?;
            }
        }
        if let Some((dir, database)) = &self.tests_dir {
            let snapshots_dir = path_in_test(&self.dir);
            for pair in report.versions.clone().windows(2) {
                let (from, to) = (pair[0], pair[1]);
                let path = dir.join(format!("migrate_v{from}_to_v{to}.rs"));
                let source = test_source(database, &snapshots_dir, from, to);
                self.keep_written(&path, &source, false, &mut report)?;
            }
        }
        Ok(report)
    }

    /// Writes `source` to `path` when it is missing, or (if `regenerate`)
    /// when it differs; in CI, fails instead of writing.
    fn keep_written(
        &self,
        path: &Path,
        source: &str,
        regenerate: bool,
        report: &mut SnapshotReport,
    ) -> Result<()> {
        let existing = fs::read_to_string(path).ok();
        // A checkout may have turned line ends into CRLF.
        let stale = match &existing {
            None => true,
            Some(text) => regenerate && text.replace("\r\n", "\n") != source,
        };
        if !stale {
            return Ok(());
        }
        if self.in_ci {
            return Err(Error::schema(format!(
                "{} is {} (CI never writes it): run the tests locally and commit it",
                path.display(),
                if existing.is_some() {
                    "out of date"
                } else {
                    "missing"
                }
            )));
        }
        let fail =
            |e: std::io::Error| Error::schema(format!("cannot write {}: {e}", path.display()));
        crate::schema::snapshot::write_atomically(path, source).map_err(fail)?;
        report.written.push(path.to_owned());
        Ok(())
    }
}

/// A snapshot of an existing database: its live schema at its stored
/// `user_version` (for a file made before the project kept snapshots, or by
/// another tool).
pub fn snapshot_of(conn: &crate::sqlite::Connection) -> Result<Snapshot> {
    Ok(Snapshot::new(conn.user_version()?, conn.read_schema()?))
}

/// Whether the snapshot file at `path` carries a checksum.
fn has_checksum(path: &Path) -> bool {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|json| json.get("checksum").is_some())
}

/// How a test names the folder `dir`: a Rust expression that works on any
/// machine — `concat!(env!("CARGO_MANIFEST_DIR"), "/…")` for a folder
/// inside the package being tested (cargo runs tests there), the path as
/// it is otherwise.
fn path_in_test(dir: &Path) -> String {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let relative = match &manifest {
        Some(root) if dir.is_absolute() => dir.strip_prefix(root).ok().map(Path::to_path_buf),
        _ if dir.is_relative() => Some(dir.to_path_buf()),
        _ => None,
    };
    match relative {
        Some(relative) => format!(
            "concat!(env!(\"CARGO_MANIFEST_DIR\"), {:?})",
            format!("/{}", relative.display())
        ),
        None => format!("{:?}", dir.display().to_string()),
    }
}

/// The scaffold of one step's migration test.
fn test_source(database: &str, snapshots: &str, from: u32, to: u32) -> String {
    format!(
        "//! Migration from schema version {from} to {to}, scaffolded by driftwood's\n\
         //! snapshot check. It is yours now: add the rows your app writes at\n\
         //! version {from} and check what version {to} must find.\n\n\
         use driftwood::migration::SchemaVerifier;\n\n\
         #[test]\n\
         fn upgrade_from_v{from}_to_v{to}() {{\n\
         \x20   let verifier = SchemaVerifier::<{database}>::from_dir({snapshots}).unwrap();\n\
         \x20   let conn = verifier.start_at({from}).unwrap();\n\
         \x20   verifier.migrate_and_validate(&conn, {to}).unwrap();\n\
         }}\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaffold_names_the_snapshot_folder_relative_to_the_package() {
        let root = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        let expected = r#"concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemas")"#;
        assert_eq!(path_in_test(Path::new("tests/schemas")), expected);
        assert_eq!(
            path_in_test(&Path::new(&root).join("tests/schemas")),
            expected
        );
        assert_eq!(path_in_test(Path::new("/elsewhere/s")), r#""/elsewhere/s""#);
    }
}
