//! driftwood over the wire beside the in-process background server, on the
//! same file in the same run: point selects awaited one by one (ops/s,
//! p50/p99), point selects from 64 concurrent tasks pipelined on one
//! connection, a 100,000-row batched insert, and a watcher's commit-to-emit
//! latency — over loopback TCP and a Unix socket, each as a ratio to the
//! in-process server, with the spread across rounds. Prints a table and
//! writes `target/bench/remote_load.json`.
//!
//! `cargo run --release -p driftwood-bench --bin remote_load [-- --quick] [--rounds N] [--only WORDS] [--over WORDS]`
//!
//! `--only` keeps the workloads whose name contains `WORDS`, `--over` the
//! transports whose name does (for a profiler); the others report nothing,
//! and without the in-process server there are no ratios.

use std::time::{Duration, Instant};

use driftwood::prelude::*;
use driftwood::remote::{RemoteOptions, RemoteServer};
use driftwood::{Server, block_on};
use futures::StreamExt;

mod load;

use load::{AppDb, User, UserCompanion, percentile, scratch_dir, write_report};

/// Where a client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    InProcess,
    Tcp,
    Unix,
}

const TRANSPORTS: [Transport; 3] = [Transport::InProcess, Transport::Tcp, Transport::Unix];

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::InProcess => "in-process server",
            Transport::Tcp => "loopback TCP",
            Transport::Unix => "Unix socket",
        }
    }
}

/// One measurement of one workload over one transport in one round.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Operations per second (rows per second for the insert).
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

#[derive(serde::Serialize)]
struct Figure {
    workload: &'static str,
    transport: &'static str,
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// Throughput as a fraction of the in-process server's: median, min, max over rounds.
    ratio_median: f64,
    ratio_min: f64,
    ratio_max: f64,
}

struct Setup {
    server: Server,
    tcp: std::net::SocketAddr,
    unix: std::path::PathBuf,
}

impl Setup {
    async fn connect(&self, transport: Transport) -> Result<Db<AppDb>> {
        match transport {
            Transport::InProcess => self.server.connect::<AppDb>().await,
            Transport::Tcp => Db::connect_tcp(self.tcp, RemoteOptions::new()).await,
            Transport::Unix => Db::connect_unix(&self.unix, RemoteOptions::new()).await,
        }
    }
}

fn latencies(mut nanos: Vec<u64>, elapsed: Duration) -> Sample {
    nanos.sort_unstable();
    Sample {
        ops_per_s: nanos.len() as f64 / elapsed.as_secs_f64(),
        p50_us: percentile(&nanos, 0.50),
        p99_us: percentile(&nanos, 0.99),
    }
}

async fn point_selects(db: &Db<AppDb>, count: usize, rows: i64) -> Result<Sample> {
    let mut nanos = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        let begun = Instant::now();
        let found = db.find::<User>(1 + (i as i64 * 7919) % rows).await?;
        nanos.push(begun.elapsed().as_nanos() as u64);
        assert!(found.is_some());
    }
    Ok(latencies(nanos, started.elapsed()))
}

async fn concurrent_selects(
    db: &Db<AppDb>,
    tasks: usize,
    each: usize,
    rows: i64,
) -> Result<Sample> {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut nanos = Vec::with_capacity(each);
                for i in 0..each {
                    let begun = Instant::now();
                    let key = 1 + ((task * each + i) as i64 * 7919) % rows;
                    db.find::<User>(key).await?;
                    nanos.push(begun.elapsed().as_nanos() as u64);
                }
                Ok::<_, Error>(nanos)
            })
        })
        .collect();
    let mut nanos = Vec::with_capacity(tasks * each);
    for handle in handles {
        nanos.extend(handle.await.expect("the task ran")?);
    }
    Ok(latencies(nanos, started.elapsed()))
}

async fn bulk_insert(db: &Db<AppDb>, rows: i64) -> Result<Sample> {
    db.custom_statement("DELETE FROM users WHERE id > 1000000", [])
        .await?;
    let mut batch = Batch::new();
    for id in 0..rows {
        batch.insert(User {
            id: 1_000_001 + id,
            name: format!("Bulk {id}"),
            hair_color: None,
        });
    }
    let started = Instant::now();
    db.run_batch(batch).await?;
    let elapsed = started.elapsed();
    Ok(Sample {
        ops_per_s: rows as f64 / elapsed.as_secs_f64(),
        p50_us: elapsed.as_secs_f64() * 1e6,
        p99_us: elapsed.as_secs_f64() * 1e6,
    })
}

/// From a commit returning (in-process) to the watcher over `db` having
/// the new result.
async fn commit_to_emit(db: &Db<AppDb>, writer: &Db<AppDb>, count: usize) -> Result<Sample> {
    let mut watch = db.select::<User>().filter(User::ID.eq(1)).watch_single();
    watch.next().await.expect("a first result")?;
    let mut nanos = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        let name = format!("Watched {i}");
        writer
            .update::<User>()
            .filter(User::ID.eq(1))
            .set(&UserCompanion {
                name: set(name.clone()),
                ..absent()
            })
            .await?;
        let committed = Instant::now();
        loop {
            let user = tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .map_err(|_| Error::invalid_argument("no emit within 10 s"))?
                .expect("the watch goes on")?;
            if user.name == name {
                break;
            }
        }
        nanos.push(committed.elapsed().as_nanos() as u64);
    }
    Ok(latencies(nanos, started.elapsed()))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|at| args.get(at + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 3 } else { 7 });
    let scale = if quick { 4 } else { 1 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::invalid_argument(e.to_string()))?;
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|at| args.get(at + 1))
            .cloned()
    };
    let (only, over) = (option("--only"), option("--over"));
    runtime.block_on(run(rounds, scale, only.as_deref(), over.as_deref()))
}

async fn run(rounds: usize, scale: usize, only: Option<&str>, over: Option<&str>) -> Result<()> {
    let dir = scratch_dir("remote-load")?;
    let server = Server::open(dir.join("remote.db")).await?;
    let local = server.connect::<AppDb>().await?;
    let seeded: i64 = 10_000;
    let mut seed = Batch::new();
    for id in 1..=seeded {
        seed.insert(User {
            id,
            name: format!("User {id}"),
            hair_color: Some("black".into()),
        });
    }
    local.run_batch(seed).await?;
    let remote = RemoteServer::new(server.clone()).max_in_flight(1024);
    let tcp = remote.listen_tcp("127.0.0.1:0").await?;
    let unix = dir.join("remote.sock");
    remote.listen_unix(&unix).await?;
    let setup = Setup {
        server: server.clone(),
        tcp: tcp.local_addr().expect("a TCP listener"),
        unix,
    };

    let workloads = [
        "point select, awaited one by one",
        "point select, 64 concurrent tasks",
        "bulk insert (one batch)",
        "watch: commit to emit",
    ];
    let (selects, per_task, bulk, emits) = (
        20_000 / scale,
        1_000 / scale,
        100_000 / scale as i64,
        300 / scale,
    );
    // samples[workload][transport] = one Sample per round.
    let mut samples = vec![vec![Vec::new(); TRANSPORTS.len()]; workloads.len()];
    for round in 0..rounds {
        for (t, transport) in TRANSPORTS.into_iter().enumerate() {
            if over.is_some_and(|words| !transport.name().contains(words)) {
                continue;
            }
            let db = setup.connect(transport).await?;
            let wanted = |w: usize| only.is_none_or(|words| workloads[w].contains(words));
            if wanted(0) {
                samples[0][t].push(point_selects(&db, selects, seeded).await?);
            }
            if wanted(1) {
                samples[1][t].push(concurrent_selects(&db, 64, per_task, seeded).await?);
            }
            if wanted(2) {
                samples[2][t].push(bulk_insert(&db, bulk).await?);
            }
            if wanted(3) {
                samples[3][t].push(commit_to_emit(&db, &local, emits).await?);
            }
            db.close().await?;
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }

    let mut figures = Vec::new();
    println!(
        "{:<36} {:<18} {:>12} {:>10} {:>10} {:>22}",
        "workload", "transport", "ops/s", "p50 µs", "p99 µs", "vs in-process (min–max)"
    );
    for (w, workload) in workloads.iter().enumerate() {
        for (t, transport) in TRANSPORTS.into_iter().enumerate() {
            if samples[w][t].is_empty() {
                continue;
            }
            let ratios: Vec<f64> = (0..rounds)
                .map(|r| match samples[w][0].get(r) {
                    Some(local) => samples[w][t][r].ops_per_s / local.ops_per_s,
                    None => f64::NAN,
                })
                .collect();
            let figure = Figure {
                workload,
                transport: transport.name(),
                ops_per_s: median(samples[w][t].iter().map(|s| s.ops_per_s).collect()),
                p50_us: median(samples[w][t].iter().map(|s| s.p50_us).collect()),
                p99_us: median(samples[w][t].iter().map(|s| s.p99_us).collect()),
                ratio_median: median(ratios.clone()),
                ratio_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratio_max: ratios.iter().copied().fold(0.0, f64::max),
            };
            println!(
                "{:<36} {:<18} {:>12.0} {:>10.1} {:>10.1} {:>10.2}× ({:.2}–{:.2})",
                figure.workload,
                figure.transport,
                figure.ops_per_s,
                figure.p50_us,
                figure.p99_us,
                figure.ratio_median,
                figure.ratio_min,
                figure.ratio_max
            );
            figures.push(figure);
        }
    }
    println!(
        "({rounds} rounds; ratios are throughput relative to the in-process server in the same round: above 1 is faster)"
    );
    write_report("remote_load.json", &figures)?;
    tcp.shutdown().await;
    block_on(server.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
