//! Load on the background server: point selects from 1, 8 and 64 concurrent
//! clients (one OS thread each, each awaiting its own requests one by one)
//! with and without the reader pool, and point reads while a long write
//! holds the writer. Prints a table and writes `target/bench/server_load.json`.
//!
//! `cargo run --release -p driftwood-bench --bin server_load [-- --quick]`

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use driftwood::prelude::*;
use driftwood::server::Server;
use futures::executor::block_on;

mod load;

use load::{AppDb, User, percentile, scratch_dir, write_report};

const USERS: i64 = 10_000;

/// One measured configuration.
#[derive(serde::Serialize)]
struct Figure {
    scenario: String,
    readers: usize,
    clients: usize,
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

async fn seeded_server(dir: &std::path::Path, readers: usize) -> Result<Server> {
    let server = Server::open_with(dir.join("load.db"), OpenOptions::default(), readers).await?;
    let db = server.connect::<AppDb>().await?;
    let rows: Vec<User> = (1..=USERS)
        .map(|id| User {
            id,
            name: format!("User {id}"),
            hair_color: Some("black".into()),
        })
        .collect();
    db.write(move |conn| conn.insert_all(&rows)).await?;
    Ok(server)
}

/// `clients` threads each doing `per_client` point selects.
fn point_selects(
    server: &Server,
    readers: usize,
    clients: usize,
    per_client: usize,
) -> Result<Figure> {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (server, barrier) = (server.clone(), barrier.clone());
            std::thread::spawn(move || -> Result<Vec<u64>> {
                let db = block_on(server.connect::<AppDb>())?;
                barrier.wait();
                let mut latencies = Vec::with_capacity(per_client);
                for n in 0..per_client {
                    let id = ((c * 7919 + n * 104_729) as i64 % USERS) + 1;
                    let start = Instant::now();
                    let user = block_on(db.find::<User>(id))?;
                    latencies.push(start.elapsed().as_nanos() as u64);
                    assert_eq!(user.map(|u| u.id), Some(id));
                }
                Ok(latencies)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut all = Vec::new();
    for thread in threads {
        all.extend(thread.join().expect("client thread")?);
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    Ok(Figure {
        scenario: "point_select".into(),
        readers,
        clients,
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50_us: percentile(&all, 0.50),
        p99_us: percentile(&all, 0.99),
    })
}

/// Point reads from `clients` threads while one unit of work holds the
/// writer for `hold`.
fn reads_during_long_write(
    server: &Server,
    readers: usize,
    clients: usize,
    hold: Duration,
) -> Result<Figure> {
    let started = Arc::new(Barrier::new(clients + 1));
    // Connect first: connecting runs on the writer, which is about to be held.
    let dbs = (0..clients)
        .map(|_| block_on(server.connect::<AppDb>()))
        .collect::<Result<Vec<_>>>()?;
    let writer_db = block_on(server.connect::<AppDb>())?;
    let writer = {
        let started = started.clone();
        std::thread::spawn(move || {
            block_on(writer_db.write(move |conn| {
                started.wait();
                let until = Instant::now() + hold;
                let mut rounds = 0;
                while Instant::now() < until {
                    conn.custom_statement(
                        "UPDATE users SET name = name || '' WHERE id % 10 = ?",
                        args![rounds % 10],
                    )?;
                    rounds += 1;
                }
                Ok(rounds)
            }))
        })
    };
    let threads: Vec<_> = dbs
        .into_iter()
        .enumerate()
        .map(|(c, db)| {
            let started = started.clone();
            std::thread::spawn(move || -> Result<Vec<u64>> {
                started.wait();
                let deadline = Instant::now() + hold;
                let mut latencies = Vec::new();
                let mut n = 0i64;
                while Instant::now() < deadline {
                    let id = (c as i64 * 31 + n) % USERS + 1;
                    let start = Instant::now();
                    block_on(db.find::<User>(id))?;
                    latencies.push(start.elapsed().as_nanos() as u64);
                    n += 1;
                }
                Ok(latencies)
            })
        })
        .collect();
    let start = Instant::now();
    let mut all = Vec::new();
    for thread in threads {
        all.extend(thread.join().expect("reader thread")?);
    }
    let elapsed = start.elapsed();
    writer.join().expect("writer thread")?;
    all.sort_unstable();
    Ok(Figure {
        scenario: format!("reads_during_{}ms_write", hold.as_millis()),
        readers,
        clients,
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50_us: percentile(&all, 0.50),
        p99_us: percentile(&all, 0.99),
    })
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let per_client_total = if quick { 40_000 } else { 200_000 };
    let hold = Duration::from_millis(if quick { 500 } else { 1000 });
    let mut figures = Vec::new();
    for readers in [0, 2] {
        let dir = scratch_dir(&format!("server-load-{readers}"))?;
        let server = block_on(seeded_server(&dir, readers))?;
        for clients in [1, 8, 64] {
            figures.push(point_selects(
                &server,
                readers,
                clients,
                per_client_total / clients,
            )?);
        }
        figures.push(reads_during_long_write(&server, readers, 4, hold)?);
        server.shutdown_all();
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "{:<28} {:>7} {:>7} {:>14} {:>10} {:>10}",
        "scenario", "readers", "clients", "ops/s", "p50 µs", "p99 µs"
    );
    for f in &figures {
        println!(
            "{:<28} {:>7} {:>7} {:>14.0} {:>10.2} {:>10.2}",
            f.scenario, f.readers, f.clients, f.ops_per_sec, f.p50_us, f.p99_us
        );
    }
    write_report("server_load.json", &figures)?;
    Ok(())
}
