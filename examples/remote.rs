//! Two processes, one database: this process owns the SQLite file and
//! serves it on a Unix socket; a second process (this same program, started
//! with `watch`) connects and watches a live query while the first one
//! writes.
//!
//! ```text
//! cargo run --example remote --features remote
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use driftwood::prelude::*;
use driftwood::remote::{RemoteOptions, RemoteServer};
use driftwood::{Error, Server};
use futures::StreamExt;

#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "notes")]
struct Note {
    #[column(primary_key, auto_increment)]
    id: i64,
    text: String,
}

struct Notes;

impl Database for Notes {
    const SCHEMA_VERSION: u32 = 1;
    fn schema() -> Schema {
        driftwood::schema![Note]
    }
}

const NOTES: [&str; 3] = ["buy milk", "call mum", "water the plants"];

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("watch") => watch(&args[2]).await,
        _ => serve().await,
    }
}

/// The serving process: owns the file, serves it, writes while the other
/// process watches.
async fn serve() -> Result<(), Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::invalid_argument(e.to_string()))?;
    let server = Server::open(dir.path().join("notes.db")).await?;
    let db = server.connect::<Notes>().await?;
    let socket = dir.path().join("notes.sock");
    let listening = RemoteServer::new(server.clone())
        .listen_unix(&socket)
        .await?;
    println!(
        "serving {} on {}",
        dir.path().join("notes.db").display(),
        socket.display()
    );

    let mut watcher = Command::new(std::env::current_exe().expect("this program's path"))
        .arg("watch")
        .arg(&socket)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the watching process");
    let mut lines = BufReader::new(watcher.stdout.take().expect("piped")).lines();
    let mut next_line = move || lines.next().and_then(Result::ok).unwrap_or_default();

    // Wait for the watcher's first (empty) result, then write.
    println!("[watcher] {}", next_line());
    let written = write_notes(&db, &mut next_line).await;
    let status = watcher.wait().expect("the watcher ends");
    println!("the watcher exited with {status}");
    written?;
    listening.shutdown().await;
    server.shutdown().await;
    Ok(())
}

/// Writes the notes one by one, printing what the watcher sees after each.
async fn write_notes(db: &Db<Notes>, next_line: &mut impl FnMut() -> String) -> Result<(), Error> {
    for text in NOTES {
        tokio::time::sleep(Duration::from_millis(100)).await;
        db.insert(NoteCompanion {
            text: set(text),
            ..absent()
        })
        .await?;
        println!("[server] wrote {text:?}");
        println!("[watcher] {}", next_line());
    }
    Ok(())
}

/// The watching process: connects over the socket and prints the live
/// query's result each time it changes, until it holds every note.
async fn watch(socket: &str) -> Result<(), Error> {
    let db = Db::<Notes>::connect_unix(socket, RemoteOptions::new()).await?;
    let mut notes = db
        .select::<Note>()
        .order_by(Note::ID.asc())
        .watch()
        .distinct();
    while let Some(result) = notes.next().await {
        let texts: Vec<String> = result?.into_iter().map(|note| note.text).collect();
        println!("{} note(s): {texts:?}", texts.len());
        if texts.len() == NOTES.len() {
            break;
        }
    }
    db.close().await
}
