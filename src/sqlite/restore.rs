//! Restoring a database from a backup file ([`Connection::restore_from`]).
//!
//! Nothing is touched until the backup has proven usable. It is copied to
//! a private stage beside the database (in the temporary directory for an
//! in-memory one), so it cannot change under the restore and the user's
//! file is never written, and checked there: a SQLite database (readable
//! with this connection's encryption key, if it has one), `quick_check`
//! clean, given this database's page size and `auto_vacuum` (a WAL
//! database cannot take pages of another size) and — through the caller's
//! `prepare` — brought to the code's schema version. Then the connection
//! takes the file to itself (`locking_mode = EXCLUSIVE` and a write
//! transaction, waiting for nobody), which fails if another connection has
//! it open, and SQLite's backup API copies the stage over it page by page
//! inside one write transaction that commits at the end: a failed,
//! interrupted or killed restore leaves the database as it was, and no
//! connection ever sees half of one. The copy bumps the schema cookie, so
//! every connection reloads the schema; this one's statement cache and
//! footprints are cleared.
//!
//! What is detected of other connections: in WAL mode every connection
//! holds a shared lock on the file for as long as it is open, so any other
//! one — another process, or another connection of this process —
//! refuses the restore. With a rollback journal a connection holds a lock
//! only inside a transaction: only those in one at that moment are
//! detected; the others see the restored database at their next
//! transaction.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::OpenFlags;
use rusqlite::backup::Backup;

use super::connection::Connection;
use super::error::from_rusqlite;
use super::operations::{BackupProgress, findings, step_to_end};
use super::{JournalMode, OpenOptions};
use crate::error::{Error, Result, catch};

/// What a restore asks of its caller beside the backup's path.
pub(crate) struct RestoreSteps<'a> {
    /// Hears each step of the copy over the database.
    pub(crate) progress: &'a mut dyn FnMut(BackupProgress),
    /// Runs on the staged copy before it replaces the database: brings it
    /// to the code's schema version (the open sequence's migration).
    pub(crate) prepare: &'a dyn Fn(&Connection) -> Result<()>,
    /// Whether to give up (the caller stopped waiting, the server stops),
    /// asked between steps.
    pub(crate) interrupted: &'a dyn Fn() -> bool,
}

impl Connection {
    /// Replaces this database's content with the backup at `source` (a
    /// file [`Connection::backup_to`] or any SQLite tool wrote), calling
    /// `progress` after each step of the copy. The backup is copied aside
    /// and checked first (a SQLite database, `quick_check` clean) and given
    /// this database's page size; its `user_version` is restored with it
    /// as it is (`Db::restore_from` brings it to the code's version). The
    /// copy over the database is one write transaction: a failure or a
    /// kill half-way leaves the database as it was.
    ///
    /// It takes the file to itself first, and is refused if another
    /// connection has it open. In WAL mode every connection holds a shared
    /// lock for as long as it is open, so any other one — another process,
    /// or another connection of this one — is detected. With a rollback
    /// journal a connection holds a lock only inside a transaction: only
    /// those in one at that moment are detected; the others see the
    /// restored database at their next transaction.
    ///
    /// # Errors
    ///
    /// [`Error::BadBackup`] for a missing, damaged or non-database file or
    /// this database's own file; [`Error::InUse`] inside a transaction or
    /// while another connection has the file open; an SQLite error if the
    /// copy fails. In every case the database is as it was.
    pub fn restore_from(
        &mut self,
        source: impl AsRef<Path>,
        mut progress: impl FnMut(BackupProgress),
    ) -> Result<()> {
        self.restore_with(
            source.as_ref(),
            RestoreSteps {
                progress: &mut progress,
                prepare: &|_| Ok(()),
                interrupted: &|| false,
            },
        )
    }

    /// [`Connection::restore_from`] with the caller's `steps`.
    pub(crate) fn restore_with(
        &mut self,
        source: &Path,
        mut steps: RestoreSteps<'_>,
    ) -> Result<()> {
        if self.in_transaction() {
            return Err(Error::InUse {
                message: "a transaction is open on its connection: commit or roll it back first"
                    .into(),
            });
        }
        if let Some(file) = self.file()
            && is_same_file(Path::new(file), source)
        {
            return Err(bad(source, "it is this database's own file".into()));
        }
        let stage = Stage::beside(self.file());
        let restored = self.stage(source, &stage, &steps).and_then(|staged| {
            let copied = self.with_file_to_itself(|conn| conn.copy_over(&staged, &mut steps));
            drop(staged);
            copied
        });
        stage.remove();
        restored
    }

    /// Copies the backup at `source` to `stage` and checks it there: the
    /// staged copy, ready to replace the database.
    fn stage(&self, source: &Path, stage: &Stage, steps: &RestoreSteps<'_>) -> Result<Connection> {
        let bad = |message: String| bad(source, message);
        // Read-only, so a missing backup is an error, never a new file.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let from = rusqlite::Connection::open_with_flags(source, flags)
            .map_err(|e| bad(format!("it cannot be opened ({e})")))?;
        self.key_like_this(&from)
            .map_err(|e| bad(format!("it cannot be keyed ({e})")))?;
        if let Err(error) = from.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())) {
            return Err(bad(self.unreadable(error)));
        }
        let mut staged = stage
            .open()
            .map_err(|e| bad(format!("it cannot be copied aside ({e})")))?;
        self.key_like_this(&staged)
            .map_err(|e| bad(format!("its copy cannot be keyed ({e})")))?;
        let backup = Backup::new(&from, &mut staged)
            .map_err(|e| bad(format!("it cannot be copied ({e})")))?;
        step_to_end(
            &backup,
            &mut |_| Ok(()),
            steps.interrupted,
            self.busy_timeout(),
        )
        .map_err(|error| match error {
            Error::Interrupted { .. } => error,
            other => bad(format!("copying it failed ({other})")),
        })?;
        drop(backup);
        drop(from);
        let problems = findings(&staged, "PRAGMA quick_check")
            .map_err(|e| bad(format!("checking it failed ({e})")))?;
        if !problems.is_empty() {
            let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
            return Err(bad(format!(
                "it is damaged: quick_check found {} problem(s): {}",
                problems.len(),
                shown.join("; ")
            )));
        }
        self.shape_like_this(&staged).map_err(|e| {
            bad(format!(
                "it cannot be given this database's page size ({e})"
            ))
        })?;
        let options = OpenOptions::default()
            .journal_mode(JournalMode::Delete)
            .journal_size_limit(None)
            .busy_timeout(self.busy_timeout());
        let staged = Connection::configure(staged, &options, false)?;
        (steps.prepare)(&staged).map_err(|e| {
            bad(format!(
                "it cannot be brought to this database's schema version ({e})"
            ))
        })?;
        Ok(staged)
    }

    /// Why a backup cannot be read.
    fn unreadable(&self, error: rusqlite::Error) -> String {
        if error.sqlite_error_code() != Some(rusqlite::ErrorCode::NotADatabase) {
            return format!("it cannot be read ({error})");
        }
        if self.key.borrow().is_some() {
            return "it is not a SQLite database, or not one encrypted with this database's key"
                .into();
        }
        "it is not a SQLite database".into()
    }

    /// Gives `staged` a rollback journal (its header must not ask for WAL
    /// where this database has none) and this database's page size and
    /// `auto_vacuum`, rebuilding it if they differ.
    fn shape_like_this(&self, staged: &rusqlite::Connection) -> rusqlite::Result<()> {
        // SQLCipher answers `page_size` as text (its `cipher_page_size`).
        let number = |conn: &rusqlite::Connection, pragma: &str| -> rusqlite::Result<i64> {
            let value: rusqlite::types::Value =
                conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))?;
            match value {
                rusqlite::types::Value::Integer(n) => Ok(n),
                rusqlite::types::Value::Text(text) => text.trim().parse().map_err(|_| {
                    rusqlite::Error::InvalidColumnType(
                        0,
                        pragma.into(),
                        rusqlite::types::Type::Text,
                    )
                }),
                other => Err(rusqlite::Error::InvalidColumnType(
                    0,
                    pragma.into(),
                    other.data_type(),
                )),
            }
        };
        staged.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
        let page_size = number(&self.raw, "page_size")?;
        let auto_vacuum = number(&self.raw, "auto_vacuum")?;
        if number(staged, "page_size")? == page_size
            && number(staged, "auto_vacuum")? == auto_vacuum
        {
            return Ok(());
        }
        staged.execute_batch(&format!(
            "PRAGMA page_size = {page_size}; PRAGMA auto_vacuum = {auto_vacuum}; VACUUM"
        ))
    }

    /// Runs `work` with the file to this connection alone: exclusive
    /// locking and a write transaction, taken without waiting — refused if
    /// another connection has the file open (see the module documentation).
    /// Normal locking is back afterwards, whatever happened.
    fn with_file_to_itself<R>(&mut self, work: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        let Some(file) = self.file().map(str::to_owned) else {
            return work(self);
        };
        let sql = "PRAGMA locking_mode = EXCLUSIVE; BEGIN IMMEDIATE; COMMIT";
        let taken = self
            .raw
            .busy_timeout(std::time::Duration::ZERO)
            .and_then(|()| self.raw.execute_batch(sql));
        let result = match taken {
            Ok(()) => work(self),
            Err(error) if is_locked(&error) => Err(Error::InUse {
                message: format!(
                    "another connection has {file} open (another process, or another connection \
                     of this one, such as a second Db on the same file): close it first"
                ),
            }),
            Err(error) => Err(from_rusqlite(error, sql)),
        };
        if !self.raw.is_autocommit() {
            let _ = self.raw.execute_batch("ROLLBACK");
        }
        // Normal locking takes effect, and the lock goes, at the next access.
        let released = self
            .raw
            .execute_batch("PRAGMA locking_mode = NORMAL")
            .and_then(|()| {
                self.raw
                    .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
            })
            .and_then(|()| self.raw.busy_timeout(self.busy_timeout()));
        if let Err(error) = released {
            tracing::warn!(target: "driftwood", %error, "returning to normal locking after a restore failed");
        }
        result
    }

    /// Copies `staged` over this database: one write transaction, committed
    /// at its end, rolled back if anything fails on the way (a panic in
    /// `progress` included). Then forgets what it knew of the old schema.
    fn copy_over(&mut self, staged: &Connection, steps: &mut RestoreSteps<'_>) -> Result<()> {
        let patience = self.busy_timeout();
        let copied = {
            let backup = Backup::new(&staged.raw, &mut self.raw)
                .map_err(|e| from_rusqlite(e, "sqlite3_backup_init"))?;
            let progress = &mut *steps.progress;
            let mut heard = |p| {
                catch(|| {
                    progress(p);
                    Ok(())
                })
            };
            step_to_end(&backup, &mut heard, steps.interrupted, patience)
        };
        // Whether it committed or not, statements prepared for the old
        // schema and footprints found under it must go.
        self.raw.flush_prepared_statement_cache();
        self.tracking.borrow_mut().forget_footprints();
        copied
    }
}

/// A [`Error::BadBackup`] for `source`.
fn bad(source: &Path, message: String) -> Error {
    Error::BadBackup {
        path: source.display().to_string(),
        message,
    }
}

/// Whether SQLite failed because another connection holds a lock.
fn is_locked(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Whether `a` and `b` name the same file.
fn is_same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Where a backup is staged: a file beside the database, or in the
/// system's temporary directory for an in-memory one (an in-memory
/// database cannot be rebuilt with another page size); named for this
/// process and restore, so two never share one.
struct Stage(PathBuf);

impl Stage {
    fn beside(file: Option<&str>) -> Stage {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        Stage(match file {
            Some(file) => {
                let file = Path::new(file);
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                file.with_file_name(format!(".{name}.restore-{pid}-{n}"))
            }
            None => std::env::temp_dir().join(format!(".driftwood-restore-{pid}-{n}")),
        })
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        self.remove();
        rusqlite::Connection::open(&self.0)
    }

    /// Removes the stage and its journal, if they are there.
    fn remove(&self) {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut name = OsString::from(self.0.as_os_str());
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}
