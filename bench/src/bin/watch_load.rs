//! Auto-updating queries under load, in-thread and through the background
//! server: how long after a commit a watcher has its new result, how many
//! watchers a write re-runs (of 1,000 on another table; of 1,000 each on
//! one row by primary key), and a 10,000-row transaction with 100 watchers
//! of its table. Prints a table and writes `target/bench/watch_load.json`.
//!
//! `cargo run --release -p driftwood-bench --bin watch_load [-- --quick]`

use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use driftwood::block_on;
use driftwood::prelude::*;
use driftwood::watch::Watched;
use futures::{Stream, StreamExt};

mod load;

use load::{AppDb, User, UserCompanion, percentile, scratch_dir, write_report};

/// One measured scenario on one backend.
#[derive(serde::Serialize)]
struct Figure {
    scenario: String,
    backend: &'static str,
    /// What was counted or timed, in the unit of `value`.
    value: f64,
    unit: &'static str,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

fn user(id: i64) -> User {
    User {
        id,
        name: format!("User {id}"),
        hair_color: Some("black".into()),
    }
}

/// Polls once, as an executor would after a wake-up: a watcher marked by
/// a change starts a run (counted by `runs()`).
fn poll_once<S: Stream + Unpin>(stream: &mut S) -> Poll<Option<S::Item>> {
    std::pin::Pin::new(stream).poll_next(&mut Context::from_waker(Waker::noop()))
}

fn next<T: Watched>(watch: &mut Watch<T>) -> Result<T> {
    block_on(watch.next()).unwrap_or(Err(Error::Closed))
}

/// Runs started by `watches` after one poll each.
fn reruns<T: Watched>(watches: &mut [Watch<T>]) -> u64 {
    let before: u64 = watches.iter().map(|w| w.runs()).sum();
    for watch in watches.iter_mut() {
        let _ = poll_once(watch);
    }
    watches.iter().map(|w| w.runs()).sum::<u64>() - before
}

/// From a commit returning to its writer to the watcher (on a thread of
/// its own) holding the new result, `rounds` times.
fn commit_to_emit(db: &Db<AppDb>, backend: &'static str, rounds: i64) -> Result<Figure> {
    let (emitted, emissions) = mpsc::channel::<(i64, Instant)>();
    let watcher = {
        let db = db.clone();
        std::thread::spawn(move || -> Result<()> {
            let mut count = db.select::<User>().watch_count();
            let mut last = -1;
            while last < rounds {
                let value = next(&mut count)?;
                if value != last {
                    last = value;
                    let _ = emitted.send((value, Instant::now()));
                }
            }
            Ok(())
        })
    };
    let mut latencies = Vec::new();
    let (mut seen, _) = emissions.recv().map_err(|_| Error::Closed)?;
    for id in 1..=rounds {
        block_on(db.insert(user(id)))?;
        let committed = Instant::now();
        while seen < id {
            let (value, at) = emissions.recv().map_err(|_| Error::Closed)?;
            seen = value;
            latencies.push(at.saturating_duration_since(committed).as_nanos() as u64);
        }
    }
    watcher.join().expect("watcher thread")?;
    latencies.sort_unstable();
    Ok(Figure {
        scenario: "commit to emit".into(),
        backend,
        value: latencies.len() as f64,
        unit: "commits",
        p50_us: Some(percentile(&latencies, 0.50)),
        p99_us: Some(percentile(&latencies, 0.99)),
    })
}

/// 1,000 watchers of another table: re-runs after 10 writes.
fn watchers_elsewhere(db: &Db<AppDb>, backend: &'static str) -> Result<Figure> {
    block_on(db.custom_statement(
        "CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY, tag TEXT)",
        [],
    ))?;
    let mut watches: Vec<_> = (0..1000)
        .map(|n| db.watch_custom_select("SELECT tag FROM tags WHERE id = ?", args![n as i64]))
        .collect();
    for watch in &mut watches {
        next(watch)?;
    }
    for id in 0..10 {
        block_on(db.insert(user(1_000_000 + id)))?;
    }
    Ok(Figure {
        scenario: "1,000 watchers of another table, 10 writes".into(),
        backend,
        value: reruns(&mut watches) as f64,
        unit: "re-runs",
        p50_us: None,
        p99_us: None,
    })
}

/// 1,000 watchers each of one row by primary key: re-runs after updating
/// one row.
fn watchers_by_key(db: &Db<AppDb>, backend: &'static str) -> Result<Figure> {
    let mut watches: Vec<_> = (1..=1000)
        .map(|id| db.select::<User>().filter(User::ID.eq(id)).watch_optional())
        .collect();
    for watch in &mut watches {
        next(watch)?;
    }
    block_on(
        db.update::<User>()
            .filter(User::ID.eq(500))
            .set(&UserCompanion {
                name: set("Renamed"),
                ..absent()
            })
            .execute(),
    )?;
    Ok(Figure {
        scenario: "1,000 watchers by key, 1 row updated".into(),
        backend,
        value: reruns(&mut watches) as f64,
        unit: "re-runs",
        p50_us: None,
        p99_us: None,
    })
}

/// 100 watchers of the table a 10,000-row transaction writes: re-runs per
/// watcher, and the time until every watcher has its new result.
fn big_transaction(db: &Db<AppDb>, backend: &'static str) -> Result<[Figure; 2]> {
    let mut watches: Vec<_> = (0..100)
        .map(|n| {
            db.select::<User>()
                .filter(User::ID.gt(n * 10))
                .watch_count()
        })
        .collect();
    for watch in &mut watches {
        next(watch)?;
    }
    let before: Vec<u64> = watches.iter().map(|w| w.runs()).collect();
    let start = Instant::now();
    block_on(db.write(|conn| {
        conn.insert_all((0..10_000).map(|n| user(2_000_000 + n)))?;
        Ok(())
    }))?;
    for watch in &mut watches {
        next(watch)?;
    }
    let elapsed = start.elapsed();
    let most = watches
        .iter()
        .zip(before)
        .map(|(w, before)| w.runs() - before)
        .max()
        .unwrap_or(0);
    Ok([
        Figure {
            scenario: "10,000-row tx, 100 watchers: most re-runs of one".into(),
            backend,
            value: most as f64,
            unit: "re-runs",
            p50_us: None,
            p99_us: None,
        },
        Figure {
            scenario: "10,000-row tx, 100 watchers: write + all re-runs".into(),
            backend,
            value: elapsed.as_secs_f64() * 1000.0,
            unit: "ms",
            p50_us: None,
            p99_us: None,
        },
    ])
}

fn measure(db: &Db<AppDb>, backend: &'static str, rounds: i64) -> Result<Vec<Figure>> {
    let mut figures = vec![commit_to_emit(db, backend, rounds)?];
    figures.push(watchers_elsewhere(db, backend)?);
    figures.push(watchers_by_key(db, backend)?);
    figures.extend(big_transaction(db, backend)?);
    Ok(figures)
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 500 } else { 5_000 };
    let mut figures = Vec::new();
    for (backend, background) in [("in-thread", false), ("server", true)] {
        let dir = scratch_dir(&format!("watch-load-{backend}"))?;
        let path = dir.join("watch.db");
        let db = match background {
            false => block_on(Db::<AppDb>::open(&path))?,
            true => block_on(Db::<AppDb>::open_in_background(&path))?,
        };
        figures.extend(measure(&db, backend, rounds)?);
        block_on(db.close())?;
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "{:<52} {:>10} {:>12} {:<8} {:>9} {:>9}",
        "scenario", "backend", "value", "unit", "p50 µs", "p99 µs"
    );
    let cell = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    for f in &figures {
        println!(
            "{:<52} {:>10} {:>12.1} {:<8} {:>9} {:>9}",
            f.scenario,
            f.backend,
            f.value,
            f.unit,
            cell(f.p50_us),
            cell(f.p99_us)
        );
    }
    write_report("watch_load.json", &figures)
}
