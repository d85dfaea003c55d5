//! Operations on a live database file: online backup, `VACUUM INTO`,
//! WAL checkpoints, integrity checks and size statistics — what an app
//! keeping its users' data in SQLite needs beside queries.
//!
//! A backup copies the pages inside one read transaction of the source, so
//! the copy is one consistent snapshot (a prefix of the committed
//! transactions, never part of one) while writers go on (in WAL mode);
//! it is written to a temporary file renamed into place, so a backup
//! killed half-way leaves no half file under the target's name and the
//! source untouched.

use std::path::Path;
use std::time::Duration;

use super::connection::Connection;
use super::error::from_rusqlite;
use crate::error::{Error, Result};
use crate::types::SqlValue;

/// Pages copied per backup step.
pub(super) const PAGES_PER_STEP: std::ffi::c_int = 256;

/// How far a backup got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupProgress {
    /// Pages still to copy.
    pub remaining: u64,
    /// Pages in the source.
    pub total: u64,
}

/// A checkpoint mode (`PRAGMA wal_checkpoint(MODE)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointMode {
    /// Copy what it can without waiting for readers or writers.
    Passive,
    /// Wait for writers, then copy everything readers allow.
    Full,
    /// As `Full`, then wait until readers are done with the WAL so the
    /// next writer starts it over.
    Restart,
    /// As `Restart`, and truncate the WAL file to zero bytes.
    Truncate,
}

impl CheckpointMode {
    fn sql(self) -> &'static str {
        match self {
            CheckpointMode::Passive => "PASSIVE",
            CheckpointMode::Full => "FULL",
            CheckpointMode::Restart => "RESTART",
            CheckpointMode::Truncate => "TRUNCATE",
        }
    }
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// Whether it could not finish because of other connections (`Full`
    /// and stronger modes); `Passive` never reports busy.
    pub busy: bool,
    /// Frames in the WAL.
    pub wal_frames: i64,
    /// Frames copied back into the database file (all of them: nothing is
    /// left for a later checkpoint).
    pub checkpointed_frames: i64,
}

/// Size statistics of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Page size in bytes.
    pub page_size: u64,
    /// Pages in the database file.
    pub pages: u64,
    /// Pages on the freelist (reclaimable by `VACUUM`).
    pub free_pages: u64,
    /// Bytes of the WAL file (0 when there is none).
    pub wal_bytes: u64,
}

impl Connection {
    /// Copies the database to `target` with SQLite's backup API, in steps,
    /// calling `progress` after each. The copy is one snapshot (all steps
    /// run in one read transaction of this connection); it is written
    /// beside `target` and renamed into place when complete.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] or an SQLite error naming the target; nothing is
    /// left under `target`'s name after a failure.
    pub fn backup_to(
        &self,
        target: impl AsRef<Path>,
        mut progress: impl FnMut(BackupProgress),
    ) -> Result<()> {
        let target = target.as_ref();
        let partial = partial_path(target);
        let _ = std::fs::remove_file(&partial);
        let fail = |message: String| Error::Open {
            path: target.display().to_string(),
            message,
        };
        let copied = self.read_only(|| {
            let mut destination =
                rusqlite::Connection::open(&partial).map_err(|e| fail(e.to_string()))?;
            self.key_like_this(&destination).map_err(fail)?;
            let backup = rusqlite::backup::Backup::new(&self.raw, &mut destination)
                .map_err(|e| fail(e.to_string()))?;
            let mut heard = |p| {
                progress(p);
                Ok(())
            };
            step_to_end(&backup, &mut heard, &|| false, self.busy_timeout())
                .map_err(|e| fail(e.to_string()))?;
            drop(backup);
            destination.close().map_err(|(_, e)| fail(e.to_string()))
        });
        if let Err(error) = copied {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
        std::fs::rename(&partial, target).map_err(|e| fail(e.to_string()))
    }

    /// Writes a compacted copy of the database to `target` (`VACUUM INTO`),
    /// one consistent snapshot; `target` must not exist.
    pub fn vacuum_into(&self, target: impl AsRef<Path>) -> Result<()> {
        let target = target.as_ref().display().to_string();
        let sql = format!("VACUUM INTO {}", crate::schema::sql::quote_text(&target));
        self.raw
            .execute_batch(&sql)
            .map_err(|e| from_rusqlite(e, &sql))
    }

    /// Runs a WAL checkpoint in `mode`.
    pub fn checkpoint(&self, mode: CheckpointMode) -> Result<Checkpoint> {
        let sql = format!("PRAGMA wal_checkpoint({})", mode.sql());
        let done = self
            .raw
            .query_row(&sql, [], |row| {
                Ok(Checkpoint {
                    busy: row.get::<_, i64>(0)? != 0,
                    wal_frames: row.get(1)?,
                    checkpointed_frames: row.get(2)?,
                })
            })
            .map_err(|e| from_rusqlite(e, &sql))?;
        if done.busy || done.checkpointed_frames < done.wal_frames {
            let (wal_frames, checkpointed_frames) = (done.wal_frames, done.checkpointed_frames);
            let db = self.file().unwrap_or(":memory:");
            match self.longest_peer_read() {
                Some((reader, open)) => tracing::warn!(
                    target: "driftwood",
                    wal_frames, checkpointed_frames, db, reader, open_ms = open.as_millis() as u64,
                    "a checkpoint could not finish: {reader} has had a read transaction open for {open:.1?}"
                ),
                None => tracing::warn!(
                    target: "driftwood",
                    wal_frames, checkpointed_frames, db,
                    "a checkpoint could not finish: another connection holds the WAL (a long read transaction?)"
                ),
            }
        }
        Ok(done)
    }

    /// `PRAGMA integrity_check` (or the faster `quick_check`), its
    /// findings as data: empty when the database is sound.
    pub fn integrity_check(&self, quick: bool) -> Result<Vec<String>> {
        let sql = if quick {
            "PRAGMA quick_check"
        } else {
            "PRAGMA integrity_check"
        };
        findings(&self.raw, sql)
    }

    /// Pages, free pages and the WAL's size.
    pub fn stats(&self) -> Result<Stats> {
        let number = |sql: &str| -> Result<u64> {
            match self.query_value(sql)? {
                SqlValue::Integer(n) => Ok(n.max(0) as u64),
                other => Err(Error::invalid_argument(format!("{sql} returned {other:?}"))),
            }
        };
        let wal_bytes = self
            .file()
            .map(|file| std::fs::metadata(format!("{file}-wal")).map_or(0, |m| m.len()))
            .unwrap_or(0);
        Ok(Stats {
            page_size: number("PRAGMA page_size")?,
            pages: number("PRAGMA page_count")?,
            free_pages: number("PRAGMA freelist_count")?,
            wal_bytes,
        })
    }

    /// Returns up to `pages` free pages (all of them with `None`) to the
    /// system, in a file whose `auto_vacuum` is `Incremental`.
    pub fn incremental_vacuum(&self, pages: Option<u32>) -> Result<()> {
        let sql = match pages {
            Some(pages) => format!("PRAGMA incremental_vacuum({pages})"),
            None => "PRAGMA incremental_vacuum".to_owned(),
        };
        // Each step frees one page: step to the end.
        let run = || -> rusqlite::Result<()> {
            let mut stmt = self.raw.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        };
        run().map_err(|e| from_rusqlite(e, &sql))
    }

    /// `PRAGMA optimize`: lets SQLite refresh the statistics its planner
    /// uses where they are stale (SQLite recommends it before closing and
    /// now and then on long-lived connections).
    pub fn optimize(&self) -> Result<()> {
        self.raw
            .execute_batch("PRAGMA optimize")
            .map_err(|e| from_rusqlite(e, "PRAGMA optimize"))
    }

    /// `PRAGMA optimize` as a long-lived connection runs it now and then:
    /// the `first` time with SQLite's mask for a connection that has not
    /// used any table yet (`0x10002`: every table is considered), later
    /// plain (the tables used since). It waits for no lock another
    /// connection holds: it fails instead, to be tried again later.
    pub(crate) fn optimize_periodically(&self, first: bool) -> Result<()> {
        let sql = if first {
            "PRAGMA optimize = 0x10002"
        } else {
            "PRAGMA optimize"
        };
        let run = || -> rusqlite::Result<()> {
            self.raw.busy_timeout(Duration::ZERO)?;
            let ran = self.raw.execute_batch(sql);
            self.raw.busy_timeout(self.busy_timeout())?;
            ran
        };
        run().map_err(|e| from_rusqlite(e, sql))
    }
}

/// Steps `backup` to the end, [`PAGES_PER_STEP`] pages at a time, telling
/// `progress` after each step and asking `interrupted` before each; a lock
/// another connection holds on either side is waited for at most
/// `patience`. Dropping an unfinished backup rolls its target back.
pub(super) fn step_to_end(
    backup: &rusqlite::backup::Backup<'_, '_>,
    progress: &mut dyn FnMut(BackupProgress) -> Result<()>,
    interrupted: &dyn Fn() -> bool,
    patience: Duration,
) -> Result<()> {
    let sql = "sqlite3_backup_step";
    let mut blocked_since = None;
    loop {
        if interrupted() {
            return Err(Error::Interrupted { sql: sql.into() });
        }
        let step = backup
            .step(PAGES_PER_STEP)
            .map_err(|e| from_rusqlite(e, sql))?;
        let done = match step {
            rusqlite::backup::StepResult::Done => true,
            rusqlite::backup::StepResult::More => false,
            // Another connection holds a lock on the target or the source:
            // wait a little, not for ever.
            _ => {
                let since = *blocked_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= patience {
                    return Err(Error::Sql {
                        code: Some(rusqlite::ffi::SQLITE_BUSY),
                        message:
                            "another connection holds a lock on the database copied from or to"
                                .into(),
                        sql: sql.into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        blocked_since = None;
        let p = backup.progress();
        progress(BackupProgress {
            remaining: p.remaining as u64,
            total: p.pagecount as u64,
        })?;
        if done {
            return Ok(());
        }
    }
}

/// The findings of `sql` (`PRAGMA integrity_check` or `quick_check`) on
/// `raw`: empty when the database is sound.
pub(super) fn findings(raw: &rusqlite::Connection, sql: &str) -> Result<Vec<String>> {
    let found: Vec<String> = raw
        .prepare(sql)
        .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect())
        .map_err(|e| from_rusqlite(e, sql))?;
    Ok(found.into_iter().filter(|line| line != "ok").collect())
}

/// Where a backup is written before it is renamed to `target`.
fn partial_path(target: &Path) -> std::path::PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.partial"))
}
