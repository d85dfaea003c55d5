//! Migrations under load (issue 9): `Migrator::alter_table` rebuilding a
//! 1,000,000-row table with two indexes and a view, against the same 12
//! steps written by hand in SQL on a plain rusqlite connection, and
//! against itself with a progress callback (copy in row ranges), and
//! against the `driftwood migrate` command doing the same change from a
//! target `.sql` file (the release binary beside this one, timed as a whole
//! process, its stderr a pipe or a terminal); then the cost of opening a
//! database that is already at the current version. Prints a table and
//! writes `target/bench/migrate_load.json`.
//!
//! `cargo build --release -p driftwood-cli && cargo build --release -p driftwood-bench --bin migrate_load && ./target/release/migrate_load [--rounds N] [--rows N] [--opens N] [--quick]`
//! (without `target/release/driftwood`, the command's sides are skipped).
//!
//! The file is prepared once; every run of a side gets a fresh copy of it
//! and runs in a child process of its own (this binary re-executed with
//! `--child`), so the peak memory (`VmHWM`) each side reports is its own.
//! Rounds are interleaved: each round runs every side once (driftwood,
//! hand-written, driftwood with progress, the command with stderr a pipe
//! and with stderr a terminal), the order rotating from round to round.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use driftwood::block_on;
use driftwood::prelude::*;
use driftwood::schema::{Entity, Index, IndexColumn, View};

#[allow(dead_code)]
mod load;

use load::{percentile, scratch_dir, write_report};

/// The table at version 1: `category` is text.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "items")]
struct OldItem {
    #[column(primary_key)]
    id: i64,
    name: String,
    category: String,
    price: i64,
}

/// The table at version 2: `category` becomes a nullable integer, filled
/// by `CAST(category AS INTEGER)` (a type change: SQLite's `ALTER TABLE`
/// cannot do it, so it is the 12-step rebuild).
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "items")]
struct Item {
    #[column(primary_key)]
    id: i64,
    name: String,
    category: Option<i64>,
    price: i64,
}

/// Rows the prepared file gets (`--rows`).
static ROWS: AtomicI64 = AtomicI64::new(1_000_000);
/// Calls of the progress callback, and the rows it last heard were copied.
static PROGRESS_CALLS: AtomicU64 = AtomicU64::new(0);
static PROGRESS_COPIED: AtomicU64 = AtomicU64::new(0);

/// `table`, its two indexes and the view reading it.
fn schema_with(table: Entity) -> Schema {
    let index = |name: &str, column: &str| {
        Entity::Index(Index {
            name: name.into(),
            table: "items".into(),
            unique: false,
            columns: vec![IndexColumn::Column {
                name: column.into(),
                descending: false,
            }],
            where_clause: None,
        })
    };
    Schema::new([
        table,
        index("items_by_name", "name"),
        index("items_by_category", "category"),
        Entity::View(View {
            name: "item_names".into(),
            select: "SELECT id, name FROM items".into(),
        }),
    ])
}

/// Version 1, created with its rows in the creation transaction (rows
/// first, then the indexes and the view).
struct V1;

impl Database for V1 {
    const SCHEMA_VERSION: u32 = 1;
    fn schema() -> Schema {
        schema_with(Entity::Table(<OldItem as driftwood::Table>::definition()))
    }
    fn on_create(m: &Migrator<'_>) -> Result<()> {
        m.create("items")?;
        let rows = ROWS.load(Ordering::Relaxed);
        m.custom_statement(
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
                 INSERT INTO items (id, name, category, price) \
                 SELECT i, printf('item %07d', i), CAST(i * 7919 % 1000 AS TEXT), i * 31 % 10000 FROM n"
            ),
            [],
        )?;
        for entity in ["items_by_name", "items_by_category", "item_names"] {
            m.create(entity)?;
        }
        Ok(())
    }
}

/// The rebuild both driftwood sides run.
fn rebuild() -> TableMigration {
    TableMigration::of::<Item>().transform(Item::CATEGORY, OldItem::CATEGORY.cast::<i64>())
}

/// Version 2: `alter_table`, copy in one statement.
struct V2;

impl Database for V2 {
    const SCHEMA_VERSION: u32 = 2;
    fn schema() -> Schema {
        schema_with(Entity::Table(<Item as driftwood::Table>::definition()))
    }
    fn on_upgrade(m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
        if from < 2 && to >= 2 {
            m.alter_table(rebuild())?;
        }
        Ok(())
    }
}

/// Version 2 with a progress callback: copy in ranges of rows.
struct V2Progress;

impl Database for V2Progress {
    const SCHEMA_VERSION: u32 = 2;
    fn schema() -> Schema {
        V2::schema()
    }
    fn on_upgrade(m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
        if from < 2 && to >= 2 {
            m.alter_table(rebuild().on_progress(|p| {
                PROGRESS_CALLS.fetch_add(1, Ordering::Relaxed);
                PROGRESS_COPIED.store(p.rows_copied, Ordering::Relaxed);
            }))?;
        }
        Ok(())
    }
}

/// The target schema the `cli` sides give `driftwood migrate --to`: the
/// version-2 table (`category` a nullable integer), its two indexes and the
/// view, as `CREATE` statements (written as driftwood creates them, so the
/// migrated file is the other sides' to the byte of `sqlite_schema`).
const TARGET_SQL: &str = r#"CREATE TABLE "items" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, "category" INTEGER, "price" INTEGER NOT NULL);
CREATE INDEX "items_by_name" ON "items" ("name");
CREATE INDEX "items_by_category" ON "items" ("category");
CREATE VIEW "item_names" AS SELECT id, name FROM items;
"#;

/// The pragmas driftwood's `OpenOptions::default()` sets, for the plain
/// rusqlite connections.
const PRAGMAS: &str =
    "PRAGMA journal_mode = WAL;PRAGMA synchronous = NORMAL;PRAGMA foreign_keys = ON;";

/// A plain rusqlite connection configured as driftwood's default.
fn raw_open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(PRAGMAS)?;
    Ok(conn)
}

/// SQLite's 12-step procedure, by hand, with the same definitions
/// driftwood generates from the version-2 schema and the same transformer.
fn hand_rebuild(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    // 1. Foreign keys off (they cannot change inside a transaction).
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    // 2. One write transaction.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        // 3. The indexes and the view are known: written out below.
        // 4. The new definition under a temporary name.
        conn.execute_batch(
            "CREATE TABLE \"new_items\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"name\" TEXT NOT \
             NULL, \"category\" INTEGER, \"price\" INTEGER NOT NULL)",
        )?;
        // 5. Copy the rows through the transformer.
        conn.execute_batch(
            "INSERT INTO \"new_items\" (\"id\", \"name\", \"category\", \"price\") \
             SELECT \"id\", \"name\", CAST(\"category\" AS INTEGER), \"price\" FROM \"items\"",
        )?;
        // 6. Drop what reads the old table, and the old table (with its
        //    indexes).
        conn.execute_batch("DROP VIEW \"item_names\"")?;
        conn.execute_batch("DROP TABLE \"items\"")?;
        // 7. The new table takes the old name.
        conn.execute_batch("ALTER TABLE \"new_items\" RENAME TO \"items\"")?;
        // 8. The indexes again.
        conn.execute_batch("CREATE INDEX \"items_by_name\" ON \"items\" (\"name\")")?;
        conn.execute_batch("CREATE INDEX \"items_by_category\" ON \"items\" (\"category\")")?;
        // 9. The view again.
        conn.execute_batch("CREATE VIEW \"item_names\" AS SELECT id, name FROM items")?;
        // 10. Foreign keys still hold.
        let violations: i64 =
            conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        assert_eq!(violations, 0, "foreign_key_check");
        conn.execute_batch("PRAGMA user_version = 2")
    })();
    // 11. Commit (or roll back).
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(error);
        }
    }
    // 12. Foreign keys back on.
    conn.execute_batch("PRAGMA foreign_keys = ON")
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time this process has used (all threads), in ms:
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` from the C library std links.
fn cpu_ms() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut time = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `time` is a valid, writable timespec (64-bit Linux layout).
    if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut time) } != 0 {
        return f64::NAN;
    }
    time.sec as f64 * 1000.0 + time.nsec as f64 / 1e6
}

/// CPU time (user + system) of this process's children that have ended
/// and been waited for, in ms, and the peak RSS of the largest of them, in
/// KiB: `getrusage(RUSAGE_CHILDREN)`.
fn children_usage() -> (f64, u64) {
    #[repr(C)]
    struct Timeval {
        sec: i64,
        usec: i64,
    }
    #[repr(C)]
    struct Rusage {
        utime: Timeval,
        stime: Timeval,
        /// `ru_maxrss` first, then 13 more counters (64-bit Linux layout).
        counters: [i64; 14],
    }
    unsafe extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
    const RUSAGE_CHILDREN: i32 = -1;
    let zero = || Timeval { sec: 0, usec: 0 };
    let mut usage = Rusage {
        utime: zero(),
        stime: zero(),
        counters: [0; 14],
    };
    // SAFETY: `usage` is a valid, writable rusage (64-bit Linux layout).
    if unsafe { getrusage(RUSAGE_CHILDREN, &mut usage) } != 0 {
        return (f64::NAN, 0);
    }
    let ms = |t: &Timeval| t.sec as f64 * 1000.0 + t.usec as f64 / 1000.0;
    (
        ms(&usage.utime) + ms(&usage.stime),
        usage.counters[0].max(0) as u64,
    )
}

/// A pseudo-terminal, through the C library std links: what the `cli+tty`
/// side gives `driftwood migrate` as its stderr, so it draws its progress
/// bar (it does only on a terminal).
mod pty {
    use std::ffi::{CStr, c_char, c_int};
    use std::fs::File;
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    unsafe extern "C" {
        fn posix_openpt(flags: c_int) -> c_int;
        fn grantpt(fd: c_int) -> c_int;
        fn unlockpt(fd: c_int) -> c_int;
        fn ptsname_r(fd: c_int, buf: *mut c_char, len: usize) -> c_int;
    }

    const O_RDWR: c_int = 0o2;
    const O_NOCTTY: c_int = 0o400;

    /// The master side (to read what is drawn) and the terminal itself.
    pub fn open() -> std::io::Result<(File, File)> {
        let failed = |what: &str| std::io::Error::other(format!("{what} failed"));
        // SAFETY: plain calls on a descriptor this function owns (wrapped in
        // a `File` at once, so it is closed on every path); the name is
        // written into a buffer of the size given, NUL-terminated.
        let (master, name) = unsafe {
            let fd = posix_openpt(O_RDWR | O_NOCTTY);
            if fd < 0 {
                return Err(failed("posix_openpt"));
            }
            let master = File::from_raw_fd(fd);
            if grantpt(fd) != 0 || unlockpt(fd) != 0 {
                return Err(failed("grantpt/unlockpt"));
            }
            let mut buffer = [0 as c_char; 128];
            if ptsname_r(fd, buffer.as_mut_ptr(), buffer.len()) != 0 {
                return Err(failed("ptsname_r"));
            }
            let name = CStr::from_ptr(buffer.as_ptr())
                .to_string_lossy()
                .into_owned();
            (master, name)
        };
        let terminal = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_NOCTTY)
            .open(name)?;
        Ok((master, terminal))
    }
}

/// The sides of the rebuild comparison, in the order each round runs them
/// (the last two only when the `driftwood` binary is there).
const SIDES: [&str; 5] = ["driftwood", "hand", "driftwood+progress", "cli", "cli+tty"];

/// What one child reports about its run.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct Run {
    side: String,
    ms: f64,
    /// CPU time (user + system) over the same span.
    cpu_ms: f64,
    rss_before_kib: u64,
    hwm_after_kib: u64,
    /// Progress callbacks heard (`driftwood+progress`), or progress bars
    /// drawn on the terminal (`cli+tty`).
    progress_calls: u64,
    /// Closing afterwards (the last checkpoint), wall and CPU ms: not in
    /// `ms`, except for the `cli` sides, whose `ms` is the whole process
    /// (they report 0 here).
    #[serde(default)]
    close_ms: f64,
    #[serde(default)]
    close_cpu_ms: f64,
    /// What the file holds afterwards; every side must leave the same.
    outcome: String,
}

/// The child: migrates `file` one way, then reads the result.
fn child(side: &str, file: &Path, cli: Option<&Path>) -> Result<()> {
    if side == "prepare" {
        return prepare(file);
    }
    if side.starts_with("cli") {
        let cli = cli.ok_or_else(|| Error::invalid_argument("a cli side needs --cli"))?;
        return cli_child(side, file, cli);
    }
    let (rss_before, _) = memory_kib();
    let cpu_start = cpu_ms();
    let start = Instant::now();
    let opened = open_and_migrate(side, file)?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let cpu = cpu_ms() - cpu_start;
    let (_, hwm_after) = memory_kib();
    let close_start = Instant::now();
    match opened {
        Opened::Driftwood(db) => block_on(db.close())?,
        Opened::Progress(db) => block_on(db.close())?,
        Opened::Hand(conn) => drop(conn),
    }
    let close = [
        close_start.elapsed().as_secs_f64() * 1000.0,
        cpu_ms() - cpu_start - cpu,
    ];
    report_child(side, file, [ms, cpu], close, rss_before, hwm_after)
}

/// A `cli` side: `driftwood migrate <file> --to <target.sql> --set-version
/// 2` as a process of its own, timed from its start to its exit (reading
/// the target, opening, checking the data, the rebuild, closing: what a
/// user waits for). Its stderr is a pipe (`cli`: no progress bar, the rows
/// copied in one statement) or a pseudo-terminal (`cli+tty`: the progress
/// bar, the rows copied in ranges). CPU time and peak RSS are the
/// command's own, from `getrusage(RUSAGE_CHILDREN)` (it is this process's
/// only child).
fn cli_child(side: &str, file: &Path, cli: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::invalid_argument(format!("{side}: {e}"));
    let target = file.with_file_name("target.sql");
    std::fs::write(&target, TARGET_SQL).map_err(io)?;
    let mut command = Command::new(cli);
    command
        .arg("migrate")
        .arg(file)
        .arg("--to")
        .arg(&target)
        .args(["--set-version", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let terminal = if side == "cli+tty" {
        let (mut master, terminal) = pty::open().map_err(io)?;
        command.stderr(terminal);
        Some(std::thread::spawn(move || {
            let mut drawn = Vec::new();
            let mut buffer = [0u8; 4096];
            // Ends (EIO) once the command, the only holder of the other
            // side, has exited.
            while let Ok(n) = master.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                drawn.extend_from_slice(&buffer[..n]);
            }
            drawn
        }))
    } else {
        command.stderr(Stdio::piped());
        None
    };
    let (cpu_before, _) = children_usage();
    let start = Instant::now();
    let process = command.spawn().map_err(io)?;
    // `command` holds the terminal's other side: dropped, so the reader
    // ends with the process.
    drop(command);
    let output = process.wait_with_output().map_err(io)?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let (cpu_after, hwm) = children_usage();
    let drawn = terminal
        .map(|reader| reader.join().unwrap_or_default())
        .unwrap_or_default();
    let drawn = String::from_utf8_lossy(&drawn);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.contains("migrated") {
        return Err(Error::invalid_argument(format!(
            "{side}: driftwood migrate failed ({}): {stdout}{}{drawn}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    if side == "cli+tty" {
        let draws = drawn.matches("rebuilding items").count() as u64;
        if draws == 0 {
            return Err(Error::invalid_argument(format!(
                "{side}: no progress bar drawn on the terminal: {drawn:?}"
            )));
        }
        PROGRESS_CALLS.store(draws, Ordering::Relaxed);
    }
    report_child(side, file, [ms, cpu_after - cpu_before], [0.0, 0.0], 0, hwm)
}

/// A connection left open by [`open_and_migrate`].
enum Opened {
    Driftwood(Db<V2>),
    Progress(Db<V2Progress>),
    Hand(rusqlite::Connection),
}

/// The measured span: opening the file and migrating it, as an app does;
/// closing (the last checkpoint) is not in it. Not inlined, so that
/// `valgrind --tool=callgrind --toggle-collect='migrate_load::open_and_migrate'`
/// counts exactly this.
#[inline(never)]
fn open_and_migrate(side: &str, file: &Path) -> Result<Opened> {
    let fail = |e: rusqlite::Error| Error::invalid_argument(e.to_string());
    Ok(match side {
        "driftwood" => Opened::Driftwood(block_on(Db::<V2>::open(file))?),
        "driftwood+progress" => Opened::Progress(block_on(Db::<V2Progress>::open(file))?),
        "hand" => {
            let conn = raw_open(file).map_err(fail)?;
            hand_rebuild(&conn).map_err(fail)?;
            Opened::Hand(conn)
        }
        other => return Err(Error::invalid_argument(format!("unknown side {other}"))),
    })
}

/// Creates the version-1 file with its rows at `file` (checkpointed: no
/// WAL is left beside it).
fn prepare(file: &Path) -> Result<()> {
    remove_database(file);
    let db = block_on(Db::<V1>::open(file))?;
    block_on(db.close())?;
    drop(db);
    if file.with_extension("db-wal").exists() {
        return Err(Error::invalid_argument(
            "the prepared file still has a WAL after closing",
        ));
    }
    Ok(())
}

/// Reads what the migration left and prints the child's report.
fn report_child(
    side: &str,
    file: &Path,
    [ms, cpu_ms]: [f64; 2],
    [close_ms, close_cpu_ms]: [f64; 2],
    rss_before: u64,
    hwm_after: u64,
) -> Result<()> {
    let fail = |e: rusqlite::Error| Error::invalid_argument(e.to_string());
    let conn = raw_open(file).map_err(fail)?;
    let outcome: String = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version) || ' | ' || \
             (SELECT count(*) FROM items) || ' rows, ' || \
             (SELECT count(*) FROM items WHERE typeof(category) = 'integer') || ' integer, sum ' || \
             (SELECT sum(category) FROM items) || ' | ' || \
             (SELECT group_concat(type || ' ' || name || ': ' || sql, ' ; ') FROM \
              (SELECT * FROM sqlite_schema ORDER BY type, name)) || ' | view rows ' || \
             (SELECT count(*) FROM item_names)",
            [],
            |r| r.get(0),
        )
        .map_err(fail)?;
    let run = Run {
        side: side.to_owned(),
        ms,
        cpu_ms,
        rss_before_kib: rss_before,
        hwm_after_kib: hwm_after,
        progress_calls: PROGRESS_CALLS.load(Ordering::Relaxed),
        close_ms,
        close_cpu_ms,
        outcome,
    };
    if side == "driftwood+progress" {
        assert_eq!(
            PROGRESS_COPIED.load(Ordering::Relaxed) as i64,
            ROWS.load(Ordering::Relaxed),
            "the callback heard every row copied"
        );
    }
    println!(
        "{}",
        serde_json::to_string(&run).map_err(|e| Error::invalid_argument(e.to_string()))?
    );
    Ok(())
}

/// Runs `side` on a fresh copy of `prepared` in a child process (given the
/// `driftwood` binary, for the `cli` sides).
fn run_side(side: &str, prepared: &Path, dir: &Path, rows: i64, cli: Option<&Path>) -> Result<Run> {
    let file = dir.join("run.db");
    remove_database(&file);
    // The copy is written to disk before the child starts, so its
    // writeback does not compete with the run.
    let io = |e: std::io::Error| Error::invalid_argument(e.to_string());
    std::fs::copy(prepared, &file).map_err(io)?;
    std::fs::File::open(&file)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    let exe = std::env::current_exe().map_err(|e| Error::invalid_argument(e.to_string()))?;
    let mut command = Command::new(exe);
    command
        .args(["--child", side, "--rows", &rows.to_string(), "--file"])
        .arg(&file);
    if let Some(cli) = cli.filter(|_| side.starts_with("cli")) {
        command.arg("--cli").arg(cli);
    }
    let output = command
        .output()
        .map_err(|e| Error::invalid_argument(e.to_string()))?;
    remove_database(&file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Error::invalid_argument(format!(
            "child {side} failed: {}{stdout}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| Error::invalid_argument(format!("{e}: {line}")))
}

fn remove_database(file: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// The median of `values` (sorted here).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// A figure over the rounds: its median, lowest and highest, and each
/// round's value in order.
#[derive(serde::Serialize)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    rounds: Vec<f64>,
}

impl Spread {
    fn of(rounds: Vec<f64>) -> Spread {
        let (min, max) = min_max(&rounds);
        Spread {
            median: median(&mut rounds.clone()),
            min,
            max,
            rounds,
        }
    }

    /// `self ÷ other`: the ratio of the medians, and the lowest and highest
    /// ratio of one round's runs.
    fn ratio(&self, other: &Spread) -> Spread {
        let per_round: Vec<f64> = self
            .rounds
            .iter()
            .zip(&other.rounds)
            .map(|(a, b)| a / b)
            .collect();
        let (min, max) = min_max(&per_round);
        Spread {
            median: self.median / other.median,
            min,
            max,
            rounds: per_round,
        }
    }

    fn cell(&self, digits: usize) -> String {
        format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            self.median, self.min, self.max
        )
    }
}

/// One side's figures over the rounds.
#[derive(serde::Serialize)]
struct SideFigures {
    side: String,
    /// Wall-clock time of opening + migrating, ms.
    wall_ms: Spread,
    /// CPU time over the same span, ms.
    cpu_ms: Spread,
    /// Largest `VmHWM` of the side's child processes, MiB.
    peak_rss_mib: f64,
    /// Largest growth over the migration (`VmHWM` after − `VmRSS` before), MiB.
    peak_growth_mib: f64,
    progress_calls: u64,
    /// Wall-clock time of opening + migrating + closing (the last
    /// checkpoint), ms: what the `cli` sides' whole process is compared
    /// with. For them, the same as `wall_ms`.
    wall_with_close_ms: Spread,
    cpu_with_close_ms: Spread,
}

#[derive(serde::Serialize)]
struct Ratio {
    of: String,
    to: String,
    /// Wall-clock ratio: of the medians (`median`), and per round.
    wall: Spread,
    /// CPU-time ratio.
    cpu: Spread,
}

#[derive(serde::Serialize)]
struct OpenFigures {
    opens: usize,
    driftwood_median_us: f64,
    driftwood_p10_us: f64,
    driftwood_p90_us: f64,
    rusqlite_median_us: f64,
    rusqlite_p10_us: f64,
    rusqlite_p90_us: f64,
    rusqlite_with_version_read_median_us: f64,
    /// driftwood median − rusqlite median.
    overhead_us: f64,
    /// Median of the per-pair differences (pairs run back to back).
    overhead_paired_median_us: f64,
}

#[derive(serde::Serialize)]
struct Report {
    rows: i64,
    rounds: usize,
    file_mib: f64,
    sides: Vec<SideFigures>,
    ratios: Vec<Ratio>,
    open: OpenFigures,
}

/// Opening a file already at version 2: `Db::<V2>::open` against
/// `rusqlite::Connection::open` + the same pragmas, interleaved.
fn measure_open(dir: &Path, opens: usize) -> Result<OpenFigures> {
    let file = dir.join("current.db");
    remove_database(&file);
    let db = block_on(Db::<V2>::open(&file))?;
    block_on(db.insert(Item {
        id: 1,
        name: "item".into(),
        category: Some(1),
        price: 1,
    }))?;
    block_on(db.close())?;
    drop(db);
    let fail = |e: rusqlite::Error| Error::invalid_argument(e.to_string());
    let (mut ours, mut raw, mut raw_version, mut paired) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let warmup = opens / 10;
    for i in 0..warmup + opens {
        let start = Instant::now();
        let db = block_on(Db::<V2>::open(&file))?;
        let a = start.elapsed().as_nanos() as u64;
        drop(db);
        let start = Instant::now();
        let conn = raw_open(&file).map_err(fail)?;
        let b = start.elapsed().as_nanos() as u64;
        drop(conn);
        let start = Instant::now();
        let conn = raw_open(&file).map_err(fail)?;
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(fail)?;
        let c = start.elapsed().as_nanos() as u64;
        assert_eq!(version, 2);
        drop(conn);
        if i >= warmup {
            ours.push(a);
            raw.push(b);
            raw_version.push(c);
            paired.push(a as f64 / 1000.0 - b as f64 / 1000.0);
        }
    }
    remove_database(&file);
    for v in [&mut ours, &mut raw, &mut raw_version] {
        v.sort_unstable();
    }
    let driftwood_median_us = percentile(&ours, 0.5);
    let rusqlite_median_us = percentile(&raw, 0.5);
    Ok(OpenFigures {
        opens,
        driftwood_median_us,
        driftwood_p10_us: percentile(&ours, 0.1),
        driftwood_p90_us: percentile(&ours, 0.9),
        rusqlite_median_us,
        rusqlite_p10_us: percentile(&raw, 0.1),
        rusqlite_p90_us: percentile(&raw, 0.9),
        rusqlite_with_version_read_median_us: percentile(&raw_version, 0.5),
        overhead_us: driftwood_median_us - rusqlite_median_us,
        overhead_paired_median_us: median(&mut paired),
    })
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rows: i64 = arg(&args, "--rows").unwrap_or(if quick { 100_000 } else { 1_000_000 });
    ROWS.store(rows, Ordering::Relaxed);
    if let Some(side) = arg::<String>(&args, "--child") {
        let file: PathBuf =
            arg(&args, "--file").ok_or_else(|| Error::invalid_argument("--child needs --file"))?;
        let cli: Option<PathBuf> = arg(&args, "--cli");
        return child(&side, &file, cli.as_deref());
    }
    let rounds: usize = arg(&args, "--rounds").unwrap_or(7);
    let opens: usize = arg(&args, "--opens").unwrap_or(200);

    // The `driftwood` command, built beside this binary
    // (`cargo build --release -p driftwood-cli`).
    let cli = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("driftwood")))
        .filter(|cli| cli.is_file());
    let sides: Vec<&str> = match &cli {
        Some(cli) => {
            eprintln!("the cli sides run {}", cli.display());
            SIDES.to_vec()
        }
        None => {
            eprintln!(
                "no driftwood binary beside this one (cargo build --release -p driftwood-cli): \
                 skipping the cli sides"
            );
            SIDES
                .iter()
                .copied()
                .filter(|s| !s.starts_with("cli"))
                .collect()
        }
    };

    let dir = scratch_dir("migrate-load")?;
    let prepared = dir.join("prepared.db");
    eprintln!("preparing {rows} rows …");
    let start = Instant::now();
    prepare(&prepared)?;
    let file_mib = std::fs::metadata(&prepared)
        .map(|m| m.len() as f64 / 1048576.0)
        .unwrap_or(0.0);
    eprintln!(
        "prepared {file_mib:.1} MiB in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    eprintln!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); sides.len()];
    let mut outcome: Option<String> = None;
    for round in 1..=rounds {
        // Every round runs each side once; the order rotates from round to
        // round, so no side always runs first.
        for k in 0..sides.len() {
            let i = (k + round - 1) % sides.len();
            let side = sides[i];
            let run = run_side(side, &prepared, &dir, rows, cli.as_deref())?;
            eprintln!(
                "round {round} {side:<20} {:>9.1} ms (CPU {:>7.1})  peak {:>6.1} MiB ({})",
                run.ms,
                run.cpu_ms,
                run.hwm_after_kib as f64 / 1024.0,
                if side.starts_with("cli") {
                    "the whole process".to_owned()
                } else {
                    format!(
                        "+{:.1}; close {:.1} ms",
                        run.hwm_after_kib.saturating_sub(run.rss_before_kib) as f64 / 1024.0,
                        run.close_ms
                    )
                }
            );
            match &outcome {
                None => outcome = Some(run.outcome.clone()),
                Some(expected) if *expected != run.outcome => {
                    return Err(Error::invalid_argument(format!(
                        "{side} left another file:\n{}\nexpected:\n{expected}",
                        run.outcome
                    )));
                }
                Some(_) => {}
            }
            runs[i].push(run);
        }
    }
    eprintln!(
        "every run left the same file: {}",
        outcome.unwrap_or_default()
    );

    let sides: Vec<SideFigures> = sides
        .iter()
        .zip(&runs)
        .map(|(side, runs)| SideFigures {
            side: (*side).to_owned(),
            wall_ms: Spread::of(runs.iter().map(|r| r.ms).collect()),
            cpu_ms: Spread::of(runs.iter().map(|r| r.cpu_ms).collect()),
            peak_rss_mib: runs.iter().map(|r| r.hwm_after_kib).max().unwrap_or(0) as f64 / 1024.0,
            peak_growth_mib: runs
                .iter()
                .map(|r| r.hwm_after_kib.saturating_sub(r.rss_before_kib))
                .max()
                .unwrap_or(0) as f64
                / 1024.0,
            progress_calls: runs.iter().map(|r| r.progress_calls).max().unwrap_or(0),
            wall_with_close_ms: Spread::of(runs.iter().map(|r| r.ms + r.close_ms).collect()),
            cpu_with_close_ms: Spread::of(runs.iter().map(|r| r.cpu_ms + r.close_cpu_ms).collect()),
        })
        .collect();
    let ratio = |of: usize, to: usize| Ratio {
        of: sides[of].side.clone(),
        to: sides[to].side.clone(),
        wall: sides[of].wall_ms.ratio(&sides[to].wall_ms),
        cpu: sides[of].cpu_ms.ratio(&sides[to].cpu_ms),
    };
    let mut ratios = vec![ratio(0, 1), ratio(2, 0)];
    // The command's whole process against the hand-written SQL's opening +
    // migrating (as the other ratios), and against its opening + migrating
    // + closing (the command closes too: the same work).
    for of in (0..sides.len()).filter(|&i| sides[i].side.starts_with("cli")) {
        ratios.push(ratio(of, 1));
        ratios.push(Ratio {
            of: sides[of].side.clone(),
            to: "hand+close".to_owned(),
            wall: sides[of].wall_ms.ratio(&sides[1].wall_with_close_ms),
            cpu: sides[of].cpu_ms.ratio(&sides[1].cpu_with_close_ms),
        });
    }

    eprintln!("opening a current file {opens} times per side …");
    let open = measure_open(&dir, opens)?;
    eprintln!(
        "load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "alter_table of {rows} rows (2 indexes, 1 view; file {file_mib:.1} MiB), {rounds} interleaved rounds, a fresh copy and a child process per run"
    );
    println!(
        "{:<20} {:>30} {:>30} {:>30} {:>13} {:>15} {:>9}",
        "side",
        "wall ms: median (min–max)",
        "CPU ms: median (min–max)",
        "wall ms with close",
        "peak RSS MiB",
        "RSS growth MiB",
        "callbacks"
    );
    for s in &sides {
        let cli = s.side.starts_with("cli");
        println!(
            "{:<20} {:>30} {:>30} {:>30} {:>13.1} {:>15} {:>9}",
            s.side,
            s.wall_ms.cell(1),
            s.cpu_ms.cell(1),
            if cli {
                "(whole process)".to_owned()
            } else {
                s.wall_with_close_ms.cell(1)
            },
            s.peak_rss_mib,
            if cli {
                "n/a".to_owned()
            } else {
                format!("{:.1}", s.peak_growth_mib)
            },
            s.progress_calls
        );
    }
    for r in &ratios {
        println!(
            "{} / {}: wall {}×, CPU {}× (ratio of medians; per-round range in brackets)",
            r.of,
            r.to,
            r.wall.cell(3),
            r.cpu.cell(3)
        );
    }
    println!(
        "open of a current file, {} opens per side (median, p10–p90 µs): Db::<D>::open {:.1} ({:.1}–{:.1}), rusqlite open + pragmas {:.1} ({:.1}–{:.1}), + user_version read {:.1}",
        open.opens,
        open.driftwood_median_us,
        open.driftwood_p10_us,
        open.driftwood_p90_us,
        open.rusqlite_median_us,
        open.rusqlite_p10_us,
        open.rusqlite_p90_us,
        open.rusqlite_with_version_read_median_us
    );
    println!(
        "open sequence cost: {:.1} µs (difference of medians), {:.1} µs (median of paired differences)",
        open.overhead_us, open.overhead_paired_median_us
    );
    write_report(
        "migrate_load.json",
        &Report {
            rows,
            rounds,
            file_mib,
            sides,
            ratios,
            open,
        },
    )
}
