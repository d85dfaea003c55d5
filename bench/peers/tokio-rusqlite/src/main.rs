//! Benchmark peer for tokio-rusqlite 0.8: its implementation of the harness's
//! `Implementation` trait, plus the raw rusqlite baseline (`bench/src/impls/
//! rusqlite.rs`, compiled here against the same rusqlite 0.40 and
//! libsqlite3-sys), served over the peer protocol.
//!
//! Usage as tokio-rusqlite's docs teach it: one `Connection` handle whose
//! `call` runs a closure on the connection's background thread; each
//! operation is one `call` (the whole 100k-row transaction too) awaited on a
//! multi-thread tokio runtime built once per process.

#[path = "../../../src/impls/rusqlite.rs"]
mod raw;

use std::process::ExitCode;
use std::sync::Arc;

use driftwood_bench_harness::{
    BASELINE_PREFIX, BenchResult, Dataset, Environment, Implementation, NewUser, Op, Post, Setup,
    Step, Target, UPDATE_USER_NAME, User, peer_main,
};
use tokio::runtime::Runtime;
use tokio_rusqlite::Connection;

/// tokio-rusqlite: a `Connection` handle to a background thread.
struct TokioRusqlite {
    rt: Runtime,
    conn: Option<Connection>,
    /// An owned copy of `dataset.new_users`, sent into `call` closures
    /// (they must be `'static`), as a caller owning its rows would.
    new_users: Arc<Vec<NewUser>>,
}

impl TokioRusqlite {
    fn new() -> BenchResult<Self> {
        Ok(TokioRusqlite {
            rt: tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?,
            conn: None,
            new_users: Arc::new(Vec::new()),
        })
    }

    fn conn(&self) -> BenchResult<Connection> {
        self.conn
            .clone()
            .ok_or_else(|| "tokio-rusqlite: no database open".into())
    }
}

impl Implementation for TokioRusqlite {
    fn name(&self) -> String {
        "tokio-rusqlite".to_owned()
    }

    fn setup(&mut self, setup: &Setup<'_>) -> BenchResult<()> {
        let dataset: Dataset = setup.dataset.clone();
        self.new_users = Arc::new(dataset.new_users.clone());
        let target = match setup.target {
            Target::File(p) => Some(p.to_path_buf()),
            Target::Memory => None,
        };
        let conn = self.rt.block_on(async move {
            let conn = match target {
                Some(path) => Connection::open(path).await?,
                None => Connection::open_in_memory().await?,
            };
            conn.call(move |c| raw::prepare_database(c, &dataset))
                .await?;
            BenchResult::Ok(conn)
        })?;
        self.conn = Some(conn);
        Ok(())
    }

    fn environment(&mut self) -> BenchResult<Environment> {
        let conn = self.conn()?;
        Ok(self.rt.block_on(conn.call(|c| raw::environment(c)))?)
    }

    fn run(&mut self, op: Op<'_>) -> BenchResult<u64> {
        let conn = self.conn()?;
        let staged = self.new_users.clone();
        self.rt.block_on(async move {
            Ok(match op {
                Op::LoadUsers => {
                    let users = conn
                        .call(|c| {
                            c.prepare_cached(raw::SELECT_USERS)?
                                .query_map([], raw::user)?
                                .collect::<rusqlite::Result<Vec<User>>>()
                        })
                        .await?;
                    users.len() as u64
                }
                Op::UsersWithPosts { hair_color } => {
                    let hair_color = hair_color.to_owned();
                    let rows = conn
                        .call(move |c| {
                            c.prepare_cached(raw::SELECT_USERS_WITH_POSTS)?
                                .query_map([hair_color], raw::user_with_post)?
                                .collect::<rusqlite::Result<Vec<(User, Option<Post>)>>>()
                        })
                        .await?;
                    rows.len() as u64
                }
                Op::InsertUsers(users) | Op::BulkInsertUsers(users) => {
                    if users.len() != staged.len() {
                        return Err("tokio-rusqlite: rows differ from the staged copy".into());
                    }
                    conn.call(move |c| {
                        if let [u] = staged.as_slice() {
                            c.prepare_cached(raw::INSERT_USER)?
                                .execute(rusqlite::params![u.name, u.hair_color])
                                .map(|n| n as u64)
                        } else {
                            raw::insert_in_transaction(c, &staged)
                        }
                    })
                    .await?
                }
                Op::LoadAssociations => {
                    // One call runs the three queries on the connection's
                    // thread; the rows come back in bulk and are grouped here.
                    let rows = conn.call(|c| raw::load_association_rows(c)).await?;
                    raw::group_association_rows(rows)
                }
                Op::SelectUserById(id) => {
                    let user = conn
                        .call(move |c| {
                            c.prepare_cached(raw::SELECT_USER_BY_ID)?
                                .query_row([id], raw::user)
                        })
                        .await?;
                    user.id as u64
                }
                Op::Concurrent(burst) => {
                    // One task per burst task on the runtime, each awaiting
                    // one `call` per statement on clones of the handle.
                    let tasks: Vec<_> = (0..burst.tasks)
                        .map(|task| {
                            let conn = conn.clone();
                            tokio::spawn(async move {
                                let mut checksum = 0u64;
                                for j in 0..burst.per_task {
                                    checksum += match burst.step(task, j) {
                                        Step::Select(id) => {
                                            conn.call(move |c| {
                                                c.prepare_cached(raw::SELECT_USER_BY_ID)?
                                                    .query_row([id], raw::user)
                                            })
                                            .await?
                                            .id as u64
                                        }
                                        Step::Update(id) => {
                                            conn.call(move |c| {
                                                c.prepare_cached(UPDATE_USER_NAME)?
                                                    .execute(rusqlite::params!["renamed", id])
                                            })
                                            .await? as u64
                                        }
                                    };
                                }
                                Ok::<u64, tokio_rusqlite::Error>(checksum)
                            })
                        })
                        .collect();
                    let mut checksum = 0;
                    for task in tasks {
                        checksum += task.await??;
                    }
                    checksum
                }
            })
        })
    }

    fn execute(&mut self, sql: &str) -> BenchResult<()> {
        let conn = self.conn()?;
        let sql = sql.to_owned();
        self.rt
            .block_on(conn.call(move |c| c.execute_batch(&sql)))?;
        Ok(())
    }

    fn teardown(&mut self) -> BenchResult<()> {
        if let Some(conn) = self.conn.take() {
            self.rt.block_on(conn.close())?;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let peer = match TokioRusqlite::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot build the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    peer_main(vec![
        Box::new(peer),
        Box::new(raw::RawRusqlite::new(format!(
            "{BASELINE_PREFIX}{}",
            rusqlite::version()
        ))),
    ])
}
