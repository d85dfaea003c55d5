//! The schema the integration tests share: drift's todo example.
#![allow(dead_code)]

use driftwood::prelude::*;

#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "categories")]
pub struct Category {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(unique)]
    pub description: String,
}

#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "todos")]
pub struct Todo {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(length = 6..=10)]
    pub title: String,
    #[column(name = "body")]
    pub content: String,
    #[column(references = "categories(id)", on_delete = "cascade")]
    pub category: Option<i64>,
    #[column(default = false)]
    pub done: bool,
    pub priority: Option<i32>,
}

pub struct TodoDb;

impl Database for TodoDb {
    const SCHEMA_VERSION: u32 = 1;
    fn schema() -> Schema {
        schema![Category, Todo]
    }
}

pub fn todo(title: &str, content: &str, category: Option<i64>) -> TodoCompanion {
    TodoCompanion {
        title: set(title),
        content: set(content),
        category: set(category),
        ..absent()
    }
}

/// Where a test's database runs: every capability is tested on both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    /// On the test's thread.
    InThread,
    /// On a background server thread.
    Background,
}

/// Both backends.
pub const BACKENDS: [Backend; 2] = [Backend::InThread, Backend::Background];

/// A fresh database file in its own temporary directory, on the calling thread.
pub async fn open_file() -> (tempfile::TempDir, Db<TodoDb>) {
    open(Backend::InThread).await
}

/// A fresh database file in its own temporary directory, on `backend`.
pub async fn open(backend: Backend) -> (tempfile::TempDir, Db<TodoDb>) {
    open_with(backend, OpenOptions::default()).await
}

/// [`open`] with these options.
pub async fn open_with(backend: Backend, options: OpenOptions) -> (tempfile::TempDir, Db<TodoDb>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("todos.db");
    let db = match backend {
        Backend::InThread => Db::<TodoDb>::open_with(path, options).await,
        Backend::Background => Db::<TodoDb>::open_in_background_with(path, options).await,
    };
    (dir, db.expect("open"))
}

/// The titles of the todos in the test database's file, sorted, read by a
/// connection of its own: what is really on disk, whatever driftwood thinks.
pub fn titles_on_disk(dir: &tempfile::TempDir) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.path().join("todos.db")).expect("open the file");
    let mut stmt = conn
        .prepare("SELECT title FROM todos ORDER BY title")
        .expect("prepare");
    stmt.query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Runs `test` on its own thread and fails if it does not finish in time:
/// a hang is a failure, never a stuck test run.
pub fn within<T: Send + 'static>(seconds: u64, test: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = done.send(test());
    });
    match result.recv_timeout(std::time::Duration::from_secs(seconds)) {
        Ok(value) => {
            worker.join().unwrap();
            value
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the test thread ended without a result"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test did not finish within {seconds} s: something hangs")
        }
    }
}

/// Runs a future (or anything that becomes one) to completion on the calling thread.
pub fn block_on<F: std::future::IntoFuture>(f: F) -> F::Output {
    futures::executor::block_on(f.into_future())
}

/// A small deterministic generator, so a failing seed replays exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seed of a randomized test: `DRIFTWOOD_MODEL_SEED`, or the clock.
pub fn seed() -> u64 {
    std::env::var("DRIFTWOOD_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        })
}

/// Collects the `driftwood` warnings emitted on the test's thread.
#[derive(Clone, Default)]
pub struct Warnings(pub std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "driftwood" && *metadata.level() == tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push(message.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// One `driftwood` event [`recorded`] saw.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub level: tracing::Level,
    pub message: String,
    /// Its other fields, as text (strings without quotes).
    pub fields: Vec<(String, String)>,
}

impl Recorded {
    /// The value of field `name`, if it has one.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Every `driftwood` event of the test process down to `DEBUG` (not the
/// per-statement `driftwood::sql` ones), from whichever thread: a server's
/// threads do not see a test's scoped subscriber, so this one is the
/// process's global subscriber, installed on first use. Tests run side by
/// side, so each picks its events by the `db` field naming its file.
pub fn recorded() -> &'static Recorder {
    static RECORDER: std::sync::OnceLock<&'static Recorder> = std::sync::OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static Recorder = Box::leak(Box::default());
        tracing::subscriber::set_global_default(RecorderSubscriber(recorder))
            .expect("no other global subscriber in this test binary");
        recorder
    })
}

/// See [`recorded`].
#[derive(Default)]
pub struct Recorder(std::sync::Mutex<Vec<Recorded>>);

impl Recorder {
    /// The events so far whose `db` field is `db`.
    pub fn about(&self, db: &std::path::Path) -> Vec<Recorded> {
        let db = db.display().to_string();
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|event| event.field("db") == Some(&db))
            .cloned()
            .collect()
    }

    /// Waits (polling, at most `seconds`) for an event about `db`, after
    /// the first `from` of them, that `wanted` accepts, and returns it;
    /// panics at the deadline.
    pub fn wait_for(
        &self,
        db: &std::path::Path,
        from: usize,
        seconds: u64,
        wanted: impl Fn(&Recorded) -> bool,
    ) -> Recorded {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            if let Some(event) = self.about(db).into_iter().skip(from).find(|e| wanted(e)) {
                return event;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no such event within {seconds} s; seen: {:#?}",
                self.about(db)
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

struct RecorderSubscriber(&'static Recorder);

impl tracing::Subscriber for RecorderSubscriber {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "driftwood" && *metadata.level() <= tracing::Level::DEBUG
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        #[derive(Default)]
        struct Fields(String, Vec<(String, String)>);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.1.push((field.name().to_owned(), value.to_owned()));
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let value = format!("{value:?}");
                match field.name() {
                    "message" => self.0 = value,
                    name => self.1.push((name.to_owned(), value)),
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.0.lock().unwrap().push(Recorded {
            level: *event.metadata().level(),
            message: fields.0,
            fields: fields.1,
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Runs the async `test` on a two-worker tokio runtime of its own, within
/// 60 seconds (see [`within`]).
pub fn on_tokio<F: std::future::Future<Output = ()> + Send + 'static>(
    test: impl FnOnce() -> F + Send + 'static,
) {
    within(60, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(test())
    })
}
