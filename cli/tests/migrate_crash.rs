//! Crash safety of `driftwood migrate`: the real binary, migrating a large
//! table by a rebuild, is killed (SIGKILL) at random moments, and every
//! time a plain connection finds the file whole, exactly at the version-1
//! schema with every row as it was, or exactly at the target with every
//! row migrated: never damaged, half-migrated or shortened. Then the same
//! command, run again, finishes the migration.
//!
//! The rounds cycle through four variants: the file in WAL or in rollback
//! journal (`DELETE`) mode, and the command's stderr a pipe (one `INSERT …
//! SELECT` copies the rows) or a terminal (a pseudo-terminal: the command
//! draws its progress bar and copies in ranges of rows).
//!
//! `DRIFTWOOD_MODEL_SEED` replays a run's kill delays.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use driftwood::schema::Schema;
use driftwood::sqlite::{Connection, JournalMode};

/// Rows of `items` (the rebuilt table); each third one has an order.
const ITEMS: i64 = 100_000;
/// Kill rounds (at least 20), cycling through [`VARIANTS`].
const ROUNDS: usize = 24;
/// The default of the target's new column.
const STOCK: i64 = 7;
/// The whole test's time limit.
const LIMIT: Duration = Duration::from_secs(180);

/// Version 1: `items.category` is text holding integers (each tenth one
/// `NULL`), `orders` references `items`, an index on each table and a view
/// joining them.
const V1_SQL: &str = "
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT,
    price INTEGER NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    item INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    quantity INTEGER NOT NULL
);
CREATE INDEX items_by_category ON items (category);
CREATE INDEX orders_by_item ON orders (item);
CREATE VIEW item_orders AS
    SELECT i.id, i.name, i.category, o.quantity FROM items i JOIN orders o ON o.item = i.id;
";

/// The target: `category` an integer (the values cast losslessly) and a
/// new `stock` column with a default; a type change, so the 12-step
/// rebuild of `items` while `orders` references it.
const TARGET_SQL: &str = "
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category INTEGER,
    price INTEGER NOT NULL,
    stock INTEGER NOT NULL DEFAULT 7
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    item INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    quantity INTEGER NOT NULL
);
CREATE INDEX items_by_category ON items (category);
CREATE INDEX orders_by_item ON orders (item);
CREATE VIEW item_orders AS
    SELECT i.id, i.name, i.category, o.quantity FROM items i JOIN orders o ON o.item = i.id;
";

/// How a round runs the command.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Variant {
    wal: bool,
    /// stderr is a (pseudo-)terminal: the progress bar, the copy in ranges.
    tty: bool,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        wal: true,
        tty: false,
    },
    Variant {
        wal: true,
        tty: true,
    },
    Variant {
        wal: false,
        tty: false,
    },
    Variant {
        wal: false,
        tty: true,
    },
];

impl Variant {
    fn name(self) -> &'static str {
        match (self.wal, self.tty) {
            (true, false) => "wal/pipe",
            (true, true) => "wal/tty",
            (false, false) => "delete/pipe",
            (false, true) => "delete/tty",
        }
    }

    fn journal(self) -> JournalMode {
        if self.wal {
            JournalMode::Wal
        } else {
            JournalMode::Delete
        }
    }
}

/// Which schema a file was found at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    V1,
    Target,
}

/// Runs `test` on a thread of its own and fails if it does not finish in
/// `limit`: a hang is a failure, never a stuck test run.
fn within(limit: Duration, test: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        test();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test did not finish within {limit:?}: something hangs")
        }
    }
}

/// xorshift64: a failing seed replays exactly.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("DRIFTWOOD_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1
}

// The claim: killed with SIGKILL at random moments, `driftwood migrate`
// never leaves a damaged, half-migrated or shortened file, and running it
// again migrates the file.
#[test]
fn migrate_killed_at_random_moments_leaves_the_file_whole() {
    within(LIMIT, || {
        let began = Instant::now();
        let seed = seed();
        println!("seed {seed} (DRIFTWOOD_MODEL_SEED={seed} replays it)");
        let mut rng = Rng(seed);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.sql");
        std::fs::write(&target, TARGET_SQL).unwrap();
        let target_schema = schema_of_sql(TARGET_SQL);

        // The pristine version-1 files, one per journal mode, and what an
        // uninterrupted migration of each variant takes and leaves.
        let mut pristine = Vec::new();
        for wal in [true, false] {
            let path = dir
                .path()
                .join(if wal { "v1-wal.db" } else { "v1-delete.db" });
            let start = Instant::now();
            prepare_v1(&path, wal);
            println!(
                "prepared {} ({} rows, {:.1} MiB) in {:?}",
                path.display(),
                ITEMS,
                std::fs::metadata(&path).unwrap().len() as f64 / 1048576.0,
                start.elapsed()
            );
            pristine.push(path);
        }
        let pristine_of = |variant: Variant| pristine[usize::from(!variant.wal)].clone();
        let v1_dump = schema_dump(&pristine[0]);
        assert_eq!(v1_dump, schema_dump(&pristine[1]));
        let v1_schema = Connection::open(
            &pristine[0],
            &driftwood::sqlite::OpenOptions::default().read_only(true),
        )
        .unwrap()
        .read_schema()
        .unwrap();
        let mut expected = Expected {
            v1_dump,
            v1_schema,
            target_schema,
            // Taken from the first uninterrupted migration below.
            target_dump: Vec::new(),
        };
        let mut spans = Vec::new();
        for variant in VARIANTS {
            let file = dir.path().join("uninterrupted.db");
            copy_db(&pristine_of(variant), &file);
            let start = Instant::now();
            let mut run = Run::spawn(&file, &target, dir.path(), variant);
            let status = run.child.wait().unwrap();
            let took = start.elapsed();
            let output = run.finish();
            assert!(
                status.success(),
                "the uninterrupted migration ({}) failed: {status}\n{output}",
                variant.name()
            );
            assert!(output.stdout.contains("migrated"), "{output}");
            if variant.tty {
                assert!(
                    output.terminal.contains("rebuilding items"),
                    "no progress bar on the terminal ({}):\n{output}",
                    variant.name()
                );
            }
            if expected.target_dump.is_empty() {
                expected.target_dump = schema_dump(&file);
            }
            assert_eq!(
                check_whole(&file, &pristine_of(variant), &expected, variant),
                Found::Target,
                "the uninterrupted migration ({})",
                variant.name()
            );
            println!(
                "uninterrupted {:<12} {took:>12.3?}{}",
                variant.name(),
                if variant.tty {
                    format!(" ({} bytes drawn on the terminal)", output.terminal.len())
                } else {
                    String::new()
                }
            );
            spans.push(took);
            remove_db(&file);
        }

        let mut found = Vec::new();
        for round in 0..ROUNDS {
            let variant = VARIANTS[round % VARIANTS.len()];
            let span = spans[round % VARIANTS.len()];
            let bound = span.as_micros() as u64 * 6 / 5;
            let delay = Duration::from_micros(rng.below(bound + 1));
            let file = dir.path().join(format!("round{round}.db"));
            copy_db(&pristine_of(variant), &file);

            let start = Instant::now();
            let mut run = Run::spawn(&file, &target, dir.path(), variant);
            std::thread::sleep(delay.saturating_sub(start.elapsed()));
            let _ = run.child.kill(); // it may have exited already
            let status = run.child.wait().unwrap();
            let output = run.finish();
            let killed = was_killed(&status);
            assert!(
                killed || status.success(),
                "round {round} ({}): the command failed on its own: {status}\n{output}",
                variant.name()
            );
            // What the kill left beside the file, before anything opens it.
            let wrote = written_beside(&file);
            let state = check_whole(&file, &pristine_of(variant), &expected, variant);
            let moment = match (killed, state) {
                (false, Found::Target) => "had exited",
                (false, Found::V1) => {
                    panic!("round {round}: the command exited successfully, the file is at v1")
                }
                (true, Found::Target) => "after the commit",
                (true, Found::V1) if wrote > 0 => "mid-migration",
                (true, Found::V1) => "before writing",
            };
            println!(
                "round {round:2} {:<12} killed at {delay:>12.3?}: {} ({moment}; {wrote} bytes of \
                 journal or WAL beside it)",
                variant.name(),
                match state {
                    Found::V1 => "v1",
                    Found::Target => "target",
                },
            );
            found.push((variant, state, moment));

            // Whatever the kill left, the command run again migrates it.
            let mut again = Run::spawn(&file, &target, dir.path(), variant);
            let status = again.child.wait().unwrap();
            let output = again.finish();
            assert!(
                status.success(),
                "round {round}: migrating again failed: {status}\n{output}"
            );
            let expected_output = match state {
                Found::V1 => "rebuild table items",
                Found::Target => "nothing to migrate",
            };
            assert!(
                output.stdout.contains(expected_output),
                "round {round}: migrating again ({state:?} found):\n{output}"
            );
            assert_eq!(
                check_whole(&file, &pristine_of(variant), &expected, variant),
                Found::Target,
                "round {round}: after migrating again"
            );
            remove_db(&file);
        }

        let count =
            |f: &dyn Fn(&(Variant, Found, &str)) -> bool| found.iter().filter(|r| f(r)).count();
        println!(
            "{} rounds in {:?}: v1 found {} times ({} killed before writing, {} mid-migration), \
             target found {} times ({} killed after the commit, {} had exited)",
            found.len(),
            began.elapsed(),
            count(&|r| r.1 == Found::V1),
            count(&|r| r.2 == "before writing"),
            count(&|r| r.2 == "mid-migration"),
            count(&|r| r.1 == Found::Target),
            count(&|r| r.2 == "after the commit"),
            count(&|r| r.2 == "had exited"),
        );
        for variant in VARIANTS {
            println!(
                "  {:<12} v1 {} (mid-migration {}), target {}",
                variant.name(),
                count(&|r| r.0 == variant && r.1 == Found::V1),
                count(&|r| r.0 == variant && r.2 == "mid-migration"),
                count(&|r| r.0 == variant && r.1 == Found::Target),
            );
        }
        assert!(found.len() >= 20);
        assert!(
            count(&|r| r.2 == "mid-migration") >= 1,
            "no kill landed while the migration was writing: the test proved nothing"
        );
    });
}

// The check above is not vacuous: what a broken migration could leave —
// a half-copied temporary table committed, the table retyped without its
// new column, a row lost, a value changed, a file cut short — fails it.
#[test]
fn the_check_refuses_what_a_broken_migration_would_leave() {
    within(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let variant = VARIANTS[0];
        let pristine = dir.path().join("v1.db");
        prepare_v1(&pristine, true);
        let expected = Expected {
            v1_dump: schema_dump(&pristine),
            v1_schema: plain(&pristine, variant).read_schema().unwrap(),
            target_dump: Vec::new(),
            target_schema: schema_of_sql(TARGET_SQL),
        };
        let file = dir.path().join("broken.db");
        copy_db(&pristine, &file);
        assert_eq!(check_whole(&file, &pristine, &expected, variant), Found::V1);
        let half_copied = "CREATE TABLE _driftwood_new_items (id INTEGER PRIMARY KEY, name TEXT \
                           NOT NULL, category INTEGER, price INTEGER NOT NULL, stock INTEGER NOT \
                           NULL DEFAULT 7); INSERT INTO _driftwood_new_items (id, name, category, \
                           price) SELECT id, name, CAST(category AS INTEGER), price FROM items \
                           WHERE id <= 500;";
        let retyped_only = "PRAGMA foreign_keys = OFF; CREATE TABLE n (id INTEGER PRIMARY KEY, \
                            name TEXT NOT NULL, category INTEGER, price INTEGER NOT NULL); \
                            INSERT INTO n SELECT id, name, CAST(category AS INTEGER), price FROM \
                            items; DROP VIEW item_orders; DROP TABLE items; ALTER TABLE n RENAME \
                            TO items; CREATE INDEX items_by_category ON items (category); CREATE \
                            VIEW item_orders AS SELECT i.id, i.name, i.category, o.quantity FROM \
                            items i JOIN orders o ON o.item = i.id;";
        let broken: [Damage<'_>; 5] = [
            ("a half-copied temporary table", &|path| {
                sql(path, half_copied)
            }),
            ("the column retyped, the new one missing", &|path| {
                sql(path, retyped_only)
            }),
            ("a row lost", &|path| {
                sql(
                    path,
                    "DELETE FROM orders WHERE item = 3; DELETE FROM items WHERE id = 3;",
                )
            }),
            ("a value changed", &|path| {
                sql(path, "UPDATE items SET price = price + 1 WHERE id = 77;")
            }),
            ("the file cut short", &|path| {
                let length = std::fs::metadata(path).unwrap().len();
                let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                file.set_len(length - 4096).unwrap();
            }),
        ];
        for (what, damage) in broken {
            copy_db(&pristine, &file);
            damage(&file);
            let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                check_whole(&file, &pristine, &expected, variant)
            }));
            assert!(checked.is_err(), "the check passed {what}");
            println!("the check refuses {what}");
        }
    });
}

/// What is done to a file, and how.
type Damage<'a> = (&'a str, &'a dyn Fn(&Path));

/// Runs `batch` on `path` and closes it (checkpointing the WAL).
fn sql(path: &Path, batch: &str) {
    let conn = plain(path, VARIANTS[0]);
    conn.raw().execute_batch(batch).unwrap();
}

/// What a whole file holds, at either end.
struct Expected {
    /// `sqlite_schema` of the pristine version-1 file.
    v1_dump: Vec<String>,
    v1_schema: Schema,
    /// `sqlite_schema` after the first uninterrupted migration.
    target_dump: Vec<String>,
    target_schema: Schema,
}

/// The schema `sql` creates, read back by driftwood.
fn schema_of_sql(sql: &str) -> Schema {
    let conn = Connection::open_in_memory(&Default::default()).unwrap();
    conn.raw().execute_batch(sql).unwrap();
    conn.read_schema().unwrap()
}

/// Creates the version-1 file with plain SQL, in WAL or rollback-journal
/// mode; closed cleanly, so it is a single file.
fn prepare_v1(path: &Path, wal: bool) {
    remove_db(path);
    let options = driftwood::sqlite::OpenOptions::default().journal_mode(if wal {
        JournalMode::Wal
    } else {
        JournalMode::Delete
    });
    let conn = Connection::open(path, &options).unwrap();
    conn.raw()
        .execute_batch(&format!(
            "BEGIN;
             {V1_SQL}
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ITEMS})
             INSERT INTO items (id, name, category, price)
             SELECT i, printf('item %06d %s', i, hex(randomblob(8))),
                    CASE WHEN i % 10 = 0 THEN NULL ELSE CAST(i * 7919 % 1000 AS TEXT) END,
                    i * 31 % 10000
             FROM n;
             INSERT INTO orders (item, quantity) SELECT id, id % 5 + 1 FROM items WHERE id % 3 = 0;
             PRAGMA user_version = 1;
             COMMIT;"
        ))
        .unwrap();
    if wal {
        conn.raw()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    drop(conn);
    for suffix in ["-wal", "-journal"] {
        assert!(
            !sibling(path, suffix).exists(),
            "the version-1 file should be a single file"
        );
    }
}

/// A running `driftwood migrate`, its stdout going to a file and its stderr
/// to a file or a pseudo-terminal.
struct Run {
    child: Child,
    stdout: PathBuf,
    stderr: Stderr,
}

enum Stderr {
    File(PathBuf),
    /// The reader draining the terminal's master side, until the command
    /// (the only holder of the other side) is gone.
    Terminal(std::thread::JoinHandle<Vec<u8>>),
}

/// What a run wrote.
struct Output {
    stdout: String,
    stderr: String,
    terminal: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stdout:\n{}\nstderr:\n{}\nterminal:\n{}",
            self.stdout, self.stderr, self.terminal
        )
    }
}

impl Run {
    /// Starts `driftwood migrate <file> --to <target>`.
    fn spawn(file: &Path, target: &Path, dir: &Path, variant: Variant) -> Run {
        let stdout = dir.join("stdout.txt");
        let mut command = Command::new(env!("CARGO_BIN_EXE_driftwood"));
        command
            .arg("migrate")
            .arg(file)
            .arg("--to")
            .arg(target)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap());
        let stderr = if variant.tty {
            let (master, slave) = pty::open();
            command.stderr(slave);
            let reader = std::thread::spawn(move || {
                let mut master = master;
                let mut drawn = Vec::new();
                let mut buffer = [0u8; 4096];
                // Ends with EIO once no process holds the other side.
                while let Ok(n) = master.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    drawn.extend_from_slice(&buffer[..n]);
                }
                drawn
            });
            let child = command.spawn().expect("start driftwood migrate");
            // `command` holds the terminal's other side: dropped here, so
            // the reader ends with the command.
            drop(command);
            return Run {
                child,
                stdout,
                stderr: Stderr::Terminal(reader),
            };
        } else {
            let path = dir.join("stderr.txt");
            command.stderr(std::fs::File::create(&path).unwrap());
            Stderr::File(path)
        };
        Run {
            child: command.spawn().expect("start driftwood migrate"),
            stdout,
            stderr,
        }
    }

    /// What it wrote (after it ended).
    fn finish(self) -> Output {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        let (stderr, terminal) = match self.stderr {
            Stderr::File(path) => (read(&path), String::new()),
            Stderr::Terminal(reader) => (
                String::new(),
                String::from_utf8_lossy(&reader.join().unwrap()).into_owned(),
            ),
        };
        Output {
            stdout: read(&self.stdout),
            stderr,
            terminal,
        }
    }
}

/// A pseudo-terminal, through the C library std links.
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
    pub fn open() -> (File, File) {
        // SAFETY: plain calls on a descriptor this function owns; the name
        // is written into a buffer of the size given, NUL-terminated.
        let (master, name) = unsafe {
            let fd = posix_openpt(O_RDWR | O_NOCTTY);
            assert!(fd >= 0, "posix_openpt failed");
            let master = File::from_raw_fd(fd);
            assert_eq!(grantpt(fd), 0, "grantpt failed");
            assert_eq!(unlockpt(fd), 0, "unlockpt failed");
            let mut buffer = [0 as c_char; 128];
            assert_eq!(ptsname_r(fd, buffer.as_mut_ptr(), buffer.len()), 0);
            let name = CStr::from_ptr(buffer.as_ptr())
                .to_string_lossy()
                .into_owned();
            (master, name)
        };
        let terminal = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_NOCTTY)
            .open(&name)
            .unwrap_or_else(|e| panic!("open {name}: {e}"));
        (master, terminal)
    }
}

#[cfg(unix)]
fn was_killed(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// `path` with `suffix` appended (`-wal`, `-journal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Bytes of WAL or rollback journal beside `path`: what the migration
/// wrote before it was killed, if anything (the pristine file has none).
fn written_beside(path: &Path) -> u64 {
    ["-wal", "-journal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(sibling(path, suffix)).ok())
        .map(|m| m.len())
        .sum()
}

fn copy_db(from: &Path, to: &Path) {
    remove_db(to);
    std::fs::copy(from, to).unwrap();
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sibling(path, suffix));
    }
}

/// A connection to `path` that changes nothing about it: its journal mode
/// is the file's.
fn plain(path: &Path, variant: Variant) -> Connection {
    let options = driftwood::sqlite::OpenOptions::default().journal_mode(variant.journal());
    Connection::open(path, &options).unwrap()
}

/// Every schema object of the file: type, name, table and SQL.
fn schema_dump(path: &Path) -> Vec<String> {
    let conn = Connection::open(
        path,
        &driftwood::sqlite::OpenOptions::default().read_only(true),
    )
    .unwrap();
    strings(
        &conn,
        "SELECT type || ' ' || name || ' on ' || tbl_name || ': ' || coalesce(sql, '') \
         FROM sqlite_schema WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name",
    )
}

fn strings(conn: &Connection, sql: &str) -> Vec<String> {
    let mut statement = conn.raw().prepare(sql).unwrap();
    let rows = statement.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.raw()
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Checks with a plain connection that `path` is whole: integrity, foreign
/// keys, no leftover table, the schema exactly version 1's or exactly the
/// target's, every row with its version-1 values or its migrated ones, the
/// file as long as its pages. Returns which end it is at.
fn check_whole(path: &Path, pristine: &Path, expected: &Expected, variant: Variant) -> Found {
    let conn = plain(path, variant);
    assert_eq!(strings(&conn, "PRAGMA integrity_check"), ["ok"], "{path:?}");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM pragma_foreign_key_check"),
        0,
        "foreign_key_check in {path:?}"
    );
    let leftovers = strings(
        &conn,
        "SELECT name FROM sqlite_schema WHERE name LIKE '\\_driftwood\\_new\\_%' ESCAPE '\\'",
    );
    assert!(
        leftovers.is_empty(),
        "leftover tables in {path:?}: {leftovers:?}"
    );
    assert_eq!(
        conn.journal_mode().unwrap(),
        if variant.wal { "wal" } else { "delete" },
        "the journal mode of {path:?}"
    );
    assert_eq!(
        count(&conn, "PRAGMA user_version"),
        1,
        "user_version of {path:?}"
    );

    let dump = schema_dump(path);
    let against_v1 = driftwood::migration::schema_differences(&conn, &expected.v1_schema).unwrap();
    let against_target =
        driftwood::migration::schema_differences(&conn, &expected.target_schema).unwrap();
    let found = match (against_v1.is_empty(), against_target.is_empty()) {
        (true, false) => {
            assert_eq!(dump, expected.v1_dump, "the version-1 schema of {path:?}");
            Found::V1
        }
        (false, true) => {
            assert!(
                against_target.notes.is_empty(),
                "{path:?} against the target: {against_target}"
            );
            if !expected.target_dump.is_empty() {
                assert_eq!(dump, expected.target_dump, "the target schema of {path:?}");
            }
            Found::Target
        }
        _ => panic!(
            "{path:?} is neither at version 1 nor at the target:\nagainst v1:\n{against_v1}\n\
             against the target:\n{against_target}\nschema:\n{}",
            dump.join("\n")
        ),
    };

    // Every row, with the values of its end.
    conn.raw()
        .execute("ATTACH ?1 AS old", [pristine.to_str().unwrap()])
        .unwrap();
    let (expected_items, found_items) = match found {
        Found::V1 => (
            "SELECT id, name, category, typeof(category), price FROM old.items",
            "SELECT id, name, category, typeof(category), price FROM main.items",
        ),
        Found::Target => (
            &*format!(
                "SELECT id, name, CAST(category AS INTEGER), typeof(CAST(category AS INTEGER)), \
                 price, {STOCK} FROM old.items"
            ),
            "SELECT id, name, category, typeof(category), price, stock FROM main.items",
        ),
    };
    assert_eq!(
        count(&conn, "SELECT count(*) FROM main.items"),
        ITEMS,
        "items in {path:?}"
    );
    for (a, b) in [(expected_items, found_items), (found_items, expected_items)] {
        assert_eq!(
            count(&conn, &format!("SELECT count(*) FROM ({a} EXCEPT {b})")),
            0,
            "{found:?}: items missing or changed in {path:?}"
        );
    }
    let orders = count(&conn, "SELECT count(*) FROM old.orders");
    assert_eq!(orders, ITEMS / 3);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM main.orders"),
        orders,
        "orders in {path:?}"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM (SELECT * FROM old.orders EXCEPT SELECT * FROM main.orders)"
        ),
        0,
        "orders changed in {path:?}"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM main.item_orders"),
        orders,
        "the view in {path:?}"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM main.items WHERE category IN (SELECT category FROM main.items \
             INDEXED BY items_by_category WHERE category IS NOT NULL)"
        ),
        count(&conn, "SELECT count(category) FROM main.items"),
        "the index of {path:?}"
    );
    conn.raw().execute_batch("DETACH old").unwrap();

    // Not shortened: once the last connection has closed (checkpointing a
    // WAL), the file holds every page.
    let pages = count(&conn, "PRAGMA page_count") * count(&conn, "PRAGMA page_size");
    drop(conn);
    let length = std::fs::metadata(path).unwrap().len() as i64;
    assert_eq!(length, pages, "the length of {path:?} against its pages");
    assert!(
        !sibling(path, "-wal").exists()
            || std::fs::metadata(sibling(path, "-wal")).unwrap().len() == 0,
        "a WAL left beside {path:?} after the last connection closed"
    );
    // Re-read by a fresh connection: the same.
    let reopened = plain(path, variant);
    assert_eq!(
        count(&reopened, "SELECT count(*) FROM items"),
        ITEMS,
        "{path:?} reopened"
    );
    found
}
