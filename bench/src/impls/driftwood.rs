//! driftwood: the typed API written as its README teaches, on a `Db` opened
//! on the calling thread (`driftwood`), on a background server thread
//! (`driftwood-server`), and on the server with bulk inserts written as the
//! plain async loop of one awaited insert per row inside a transaction
//! (`driftwood-server-loop`). Futures are driven with
//! `futures::executor::block_on`, one operation at a time; the concurrent
//! workloads spawn their tasks on a tokio multi-thread runtime built once,
//! as the async peers do.

use std::sync::Arc;

use driftwood::prelude::*;
use driftwood::sqlite::{Connection, JournalMode, Synchronous};
use driftwood_bench_harness::{
    BenchResult, Burst, ENV_QUERY, Environment, Implementation, Op, SCHEMA, Setup, Step, Target,
    Workload, association_count, group_associations,
};
use futures::executor::block_on;

/// `users`, as the harness's schema declares it.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "users")]
pub struct User {
    #[column(primary_key)]
    pub id: i64,
    pub name: String,
    pub hair_color: Option<String>,
}

/// `posts`.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "posts")]
pub struct Post {
    #[column(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub body: Option<String>,
}

/// `comments`.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "comments")]
pub struct Comment {
    #[column(primary_key)]
    pub id: i64,
    pub post_id: i64,
    pub text: String,
}

/// Where the database runs and how bulk inserts are written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// `Db::open`: on the calling thread.
    InThread,
    /// `Db::open_in_background`: on a server thread, bulk work as one unit of work.
    Server,
    /// On a server thread, bulk inserts as one awaited insert per row.
    ServerLoop,
    /// On a server thread, bulk inserts queued without awaiting each one
    /// (1,000 futures made, then awaited), inside a transaction.
    ServerQueued,
}

/// driftwood in one [`Mode`].
pub struct Driftwood {
    mode: Mode,
    db: Option<Db>,
    /// Where the concurrent workloads' tasks run.
    runtime: tokio::runtime::Runtime,
    /// The rows insert operations insert, owned once (the harness allows it):
    /// `Db::write` takes a `'static` closure.
    new_users: Arc<Vec<UserCompanion>>,
}

impl Driftwood {
    /// driftwood in `mode`.
    pub fn new(mode: Mode) -> Self {
        Driftwood {
            mode,
            db: None,
            runtime: tokio::runtime::Builder::new_multi_thread()
                .build()
                .expect("a tokio runtime for the concurrent workloads"),
            new_users: Arc::new(Vec::new()),
        }
    }

    fn db(&self) -> BenchResult<&Db> {
        self.db
            .as_ref()
            .ok_or_else(|| "driftwood: no database open (setup not called)".into())
    }
}

/// One task of a burst: its statements one after another, each awaited.
async fn run_task(db: Db, burst: Burst, task: usize) -> driftwood::Result<u64> {
    let mut checksum = 0;
    for j in 0..burst.per_task {
        checksum += match burst.step(task, j) {
            Step::Select(id) => db.find::<User>(id).await?.map_or(0, |u| u.id as u64),
            Step::Update(id) => {
                db.update::<User>()
                    .filter(User::ID.eq(id))
                    .set(&UserCompanion {
                        name: set("renamed"),
                        ..absent()
                    })
                    .await?
            }
        };
    }
    Ok(checksum)
}

fn companions(users: &[driftwood_bench_harness::NewUser]) -> Vec<UserCompanion> {
    users
        .iter()
        .map(|u| UserCompanion {
            name: set(u.name.clone()),
            hair_color: set(u.hair_color.clone()),
            ..absent()
        })
        .collect()
}

impl Implementation for Driftwood {
    fn name(&self) -> String {
        match self.mode {
            Mode::InThread => "driftwood",
            Mode::Server => "driftwood-server",
            Mode::ServerLoop => "driftwood-server-loop",
            Mode::ServerQueued => "driftwood-server-queued",
        }
        .into()
    }

    fn setup(&mut self, setup: &Setup<'_>) -> BenchResult<()> {
        let options = OpenOptions::default()
            .journal_mode(JournalMode::Wal)
            .synchronous(Synchronous::Normal);
        let in_thread = self.mode == Mode::InThread;
        let db = block_on(async {
            match (setup.target, in_thread) {
                (Target::File(path), true) => Db::open_with(path, options).await,
                (Target::Memory, true) => Db::open_in_memory().await,
                (Target::File(path), false) => Db::open_in_background_with(path, options).await,
                (Target::Memory, false) => {
                    let server =
                        Server::start(move || Connection::open_in_memory(&options)).await?;
                    server.connect_single_client().await
                }
            }
        })?;
        let dataset = setup.dataset;
        let users: Vec<User> = dataset
            .users
            .iter()
            .map(|u| User {
                id: u.id,
                name: u.name.clone(),
                hair_color: u.hair_color.clone(),
            })
            .collect();
        let posts: Vec<Post> = dataset
            .posts
            .iter()
            .map(|p| Post {
                id: p.id,
                user_id: p.user_id,
                title: p.title.clone(),
                body: p.body.clone(),
            })
            .collect();
        let comments: Vec<Comment> = dataset
            .comments
            .iter()
            .map(|c| Comment {
                id: c.id,
                post_id: c.post_id,
                text: c.text.clone(),
            })
            .collect();
        block_on(db.write(move |conn| {
            for create in SCHEMA {
                conn.custom_statement(*create, [])?;
            }
            conn.insert_all(&users)?;
            conn.insert_all(&posts)?;
            conn.insert_all(&comments)?;
            Ok(())
        }))?;
        self.new_users = Arc::new(companions(&dataset.new_users));
        self.db = Some(db);
        Ok(())
    }

    fn environment(&mut self) -> BenchResult<Environment> {
        let rows = block_on(self.db()?.custom_select(ENV_QUERY, []))?;
        let row = rows
            .first()
            .ok_or("driftwood: the environment query returned no row")?;
        Ok(Environment {
            sqlite_version: row.get(0)?,
            journal_mode: row.get(1)?,
            synchronous: row.get(2)?,
        })
    }

    fn run(&mut self, op: Op<'_>) -> BenchResult<u64> {
        let db = self.db()?;
        Ok(match op {
            Op::LoadUsers => block_on(db.select::<User>().get())?.len() as u64,
            Op::UsersWithPosts { hair_color } => {
                let rows = block_on(
                    db.select::<User>()
                        .left_join::<Post>(Post::USER_ID.eq(User::ID))
                        .filter(User::HAIR_COLOR.eq(hair_color))
                        .get(),
                )?;
                rows.len() as u64
            }
            Op::InsertUsers([u]) => {
                block_on(
                    db.insert(UserCompanion {
                        name: set(u.name.clone()),
                        hair_color: set(u.hair_color.clone()),
                        ..absent()
                    })
                    .execute(),
                )?
                .rows_affected
            }
            Op::InsertUsers(users) => {
                let rows = self.new_users.clone();
                let count = users.len();
                block_on(db.write(move |conn| conn.insert_all(&rows[..count])))?.rows_affected
            }
            Op::BulkInsertUsers(_) if self.mode == Mode::ServerQueued => block_on(async {
                let tx = db.begin().await?;
                let mut inserted = 0;
                for chunk in self.new_users.chunks(1_000) {
                    let queued: Vec<_> = chunk.iter().map(|row| tx.insert(row).execute()).collect();
                    for pending in queued {
                        inserted += pending.await?.rows_affected;
                    }
                }
                tx.commit().await?;
                Ok::<_, driftwood::Error>(inserted)
            })?,
            Op::BulkInsertUsers(_) if self.mode == Mode::ServerLoop => block_on(async {
                let tx = db.begin().await?;
                let mut inserted = 0;
                for row in self.new_users.iter() {
                    inserted += tx.insert(row).execute().await?.rows_affected;
                }
                tx.commit().await?;
                Ok::<_, driftwood::Error>(inserted)
            })?,
            Op::BulkInsertUsers(_) => {
                let rows = self.new_users.clone();
                block_on(db.write(move |conn| conn.insert_all(rows.iter())))?.rows_affected
            }
            Op::LoadAssociations => block_on(async {
                let users = db.select::<User>().get().await?;
                let posts = db
                    .select::<Post>()
                    .filter(Post::USER_ID.is_in(users.iter().map(|u| u.id)))
                    .get()
                    .await?;
                let comments = db
                    .select::<Comment>()
                    .filter(Comment::POST_ID.is_in(posts.iter().map(|p| p.id)))
                    .get()
                    .await?;
                let grouped = group_associations(
                    users,
                    posts,
                    comments,
                    |u| u.id,
                    |p| p.id,
                    |p| p.user_id,
                    |c| c.post_id,
                );
                Ok::<_, driftwood::Error>(association_count(&grouped))
            })?,
            Op::SelectUserById(id) => {
                block_on(db.find::<User>(id))?
                    .ok_or("driftwood: user not found")?
                    .id as u64
            }
            Op::Concurrent(burst) => {
                let tasks: Vec<_> = (0..burst.tasks)
                    .map(|task| self.runtime.spawn(run_task(db.clone(), burst, task)))
                    .collect();
                self.runtime.block_on(async {
                    let mut checksum = 0;
                    for task in tasks {
                        checksum += task.await??;
                    }
                    Ok::<_, driftwood_bench_harness::BenchError>(checksum)
                })?
            }
        })
    }

    fn execute(&mut self, sql: &str) -> BenchResult<()> {
        block_on(self.db()?.custom_statement(sql, []))?;
        Ok(())
    }

    fn teardown(&mut self) -> BenchResult<()> {
        if let Some(db) = self.db.take() {
            block_on(db.close())?;
        }
        Ok(())
    }

    /// The loop and queued variants differ from `driftwood-server` only in
    /// how they write the bulk insert, so they run only that.
    fn supports(&self, workload: Workload) -> bool {
        match self.mode {
            Mode::ServerLoop | Mode::ServerQueued => workload == Workload::BulkInsert100k,
            Mode::InThread | Mode::Server => true,
        }
    }
}
