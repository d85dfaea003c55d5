//! What encryption at rest costs: the benchmark's workloads (see
//! `bench/README.md`) on an encrypted and a plain file, both with the same
//! SQLCipher build (a connection without a key is plain SQLite), in-thread,
//! WAL, `synchronous=NORMAL`. The seeded table fits in SQLite's page
//! cache, so warm reads decrypt nothing; the last workload reads on a cold
//! one. Rounds alternate which side goes first; each
//! figure is the encrypted side's time over the plain side's, the median
//! of the rounds with the lowest and highest round beside it.
//!
//! ```sh
//! CARGO_TARGET_DIR=target/sqlcipher cargo run --release --features sqlcipher \
//!     --example encryption_cost -- --rounds 7
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use driftwood::prelude::*;
use driftwood::sqlite::{Connection, EncryptionKey};

/// `users`, as the benchmark's schema declares it.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "users")]
pub struct User {
    #[column(primary_key)]
    pub id: i64,
    pub name: String,
    pub hair_color: Option<String>,
}

struct Bench;

impl Database for Bench {
    const SCHEMA_VERSION: u32 = 1;
    fn schema() -> Schema {
        schema![User]
    }
}

/// Users seeded for point selects and the scan (the benchmark's 10,000).
const USERS: i64 = 10_000;
const POINT_SELECTS: i64 = 100_000;
const SINGLE_INSERTS: i64 = 2_000;
const BULK_ROWS: i64 = 100_000;
const SCANS: usize = 20;

fn user(id: i64) -> User {
    User {
        id,
        name: format!("User {id}"),
        hair_color: (id % 2 == 0).then(|| "brown".to_owned()),
    }
}

/// One side's times for each workload, in workload order.
fn run_side(dir: &Path, key: Option<&EncryptionKey>) -> Result<Vec<Duration>> {
    let path = dir.join(if key.is_some() {
        "secret.db"
    } else {
        "plain.db"
    });
    let _ = std::fs::remove_file(&path);
    let mut options = OpenOptions::default();
    if let Some(key) = key {
        options = options.encryption_key(key.clone());
    }
    let db = driftwood::block_on(Db::<Bench>::open_with(&path, options.clone()))?;
    let seed: Vec<User> = (1..=USERS).map(user).collect();
    driftwood::block_on(db.write(move |conn| conn.insert_all(&seed).map(drop)))?;
    let mut times = Vec::new();

    let started = Instant::now();
    for i in 0..POINT_SELECTS {
        let id = i * 7919 % USERS + 1;
        let found = driftwood::block_on(db.find::<User>(id))?;
        assert!(found.is_some());
    }
    times.push(started.elapsed());

    let started = Instant::now();
    for _ in 0..SCANS {
        let all = driftwood::block_on(db.select::<User>().get())?;
        assert_eq!(all.len() as i64, USERS);
    }
    times.push(started.elapsed());

    let started = Instant::now();
    for i in 0..SINGLE_INSERTS {
        driftwood::block_on(db.insert(user(USERS + 1 + i)))?;
    }
    times.push(started.elapsed());

    let bulk: Vec<User> = (0..BULK_ROWS).map(|i| user(1_000_000 + i)).collect();
    let started = Instant::now();
    driftwood::block_on(db.write(move |conn| conn.insert_all(&bulk).map(drop)))?;
    times.push(started.elapsed());
    driftwood::block_on(db.close())?;

    // Opening an existing file (key derivation for a passphrase), then
    // one scan on its cold page cache: every page read and decrypted.
    let started = Instant::now();
    let conn = Connection::open(&path, &options)?;
    times.push(started.elapsed());
    let started = Instant::now();
    let all = Conn::new(&conn).select::<User>().get()?;
    times.push(started.elapsed());
    assert_eq!(all.len() as i64, USERS + SINGLE_INSERTS + BULK_ROWS);
    Ok(times)
}

const WORKLOADS: [&str; 6] = [
    "point_select_100k (find by key)",
    "trivial_query_10000 x20 (scan)",
    "insert_rows_1 x2000 (autocommit)",
    "bulk_insert_100k (one transaction)",
    "open an existing file",
    "cold scan of 112,000 rows (fresh connection)",
];

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(7usize);
    let raw_key = args.iter().any(|a| a == "--raw-key");
    let key = if raw_key {
        EncryptionKey::raw([0x5a; 32])
    } else {
        EncryptionKey::passphrase("a passphrase for the benchmark")
    };
    let dir = tempfile::tempdir().map_err(|e| Error::invalid_argument(e.to_string()))?;
    let mut plain = vec![Vec::new(); WORKLOADS.len()];
    let mut encrypted = vec![Vec::new(); WORKLOADS.len()];
    for round in 0..rounds {
        let (first, second) = if round % 2 == 0 {
            (None, Some(&key))
        } else {
            (Some(&key), None)
        };
        for side in [first, second] {
            let times = run_side(dir.path(), side)?;
            let into = if side.is_some() {
                &mut encrypted
            } else {
                &mut plain
            };
            for (all, time) in into.iter_mut().zip(times) {
                all.push(time.as_secs_f64());
            }
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    let sqlcipher = driftwood::block_on(async {
        let db: Db = Db::open_in_memory().await?;
        let version = db.custom_select("PRAGMA cipher_version", []).await?;
        version[0].get::<String>(0)
    })?;
    println!(
        "SQLCipher {sqlcipher}, {} key, {rounds} rounds; encrypted / plain, median (lowest-highest round)",
        if raw_key { "raw" } else { "passphrase" }
    );
    println!("| workload | plain ms | encrypted ms | ratio |\n| --- | --- | --- | --- |");
    for (w, name) in WORKLOADS.iter().enumerate() {
        let mut ratios: Vec<f64> = encrypted[w]
            .iter()
            .zip(&plain[w])
            .map(|(e, p)| e / p)
            .collect();
        let (low, high) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
        let ratio = median(&mut ratios);
        println!(
            "| {name} | {:.1} | {:.1} | {ratio:.2} ({low:.2}-{high:.2}) |",
            median(&mut plain[w].clone()) * 1e3,
            median(&mut encrypted[w].clone()) * 1e3,
        );
    }
    Ok(())
}
