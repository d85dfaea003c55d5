//! `driftwood serve` and `driftwood query`: serving a database file to
//! other processes, and poking a served one from the command line. Thin
//! layers over `driftwood::remote`.

use std::path::{Path, PathBuf};

use driftwood::prelude::*;
use driftwood::remote::{Listening, RemoteOptions, RemoteServer, Token};
use driftwood::row::OwnedRow;
use driftwood::{Db, Server};

/// Where a server listens or a client connects: `host:port` for TCP,
/// `unix:PATH` for a Unix socket.
#[derive(Debug, Clone)]
pub enum Address {
    Tcp(String),
    Unix(PathBuf),
}

impl std::str::FromStr for Address {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.strip_prefix("unix:") {
            Some("") => Err("unix: needs a socket path".into()),
            Some(path) => Ok(Address::Unix(path.into())),
            None if text.contains(':') => Ok(Address::Tcp(text.to_owned())),
            None => Err(format!(
                "{text}: expected host:port (127.0.0.1:4567) or unix:PATH"
            )),
        }
    }
}

/// The token from `--token-file` or the environment variable
/// `DRIFTWOOD_TOKEN`, if either is given: never from the command line
/// itself, which other users can read.
pub fn token(file: Option<&Path>) -> Result<Option<Token>> {
    if let Some(file) = file {
        return Token::from_file(file).map(Some);
    }
    match std::env::var_os("DRIFTWOOD_TOKEN") {
        Some(_) => Token::from_env("DRIFTWOOD_TOKEN").map(Some),
        None => Ok(None),
    }
}

/// Serves `db` on `listen` until Ctrl-C, logging connections to stderr.
pub async fn serve(
    db: &Path,
    listen: &Address,
    token: Option<Token>,
    read_only: bool,
) -> Result<()> {
    let server = Server::open(db).await?;
    let mut remote = RemoteServer::new(server.clone()).read_only(read_only);
    if let Some(token) = token {
        remote = remote.token(token);
    }
    let listening: Listening = match listen {
        Address::Tcp(addr) => remote.listen_tcp(addr.as_str()).await?,
        Address::Unix(path) => remote.listen_unix(path).await?,
    };
    let read_only = if read_only { ", read-only" } else { "" };
    eprintln!(
        "serving {} on {:?}{read_only}; Ctrl-C stops",
        db.display(),
        listening.endpoint()
    );
    // Scripts wait for this line to know the server is ready.
    println!("listening on {}", describe(&listening));
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("cannot wait for Ctrl-C ({error}); stopping");
    }
    let stats = remote.stats();
    listening.shutdown().await;
    server.shutdown().await;
    eprintln!("stopped: {stats:?}");
    Ok(())
}

fn describe(listening: &Listening) -> String {
    match listening.endpoint() {
        driftwood::remote::Endpoint::Tcp(addr) => addr.to_string(),
        driftwood::remote::Endpoint::Unix(path) => format!("unix:{}", path.display()),
    }
}

/// Runs `sql` with `args` against the database served at `remote`; prints
/// its rows (a header and tab-separated values, or JSON).
pub async fn query(
    remote: &Address,
    token: Option<Token>,
    sql: &str,
    args: &[String],
    json: bool,
) -> Result<()> {
    let mut options = RemoteOptions::new().client_name("driftwood query");
    if let Some(token) = token {
        options = options.token(token);
    }
    let db: Db = match remote {
        Address::Tcp(addr) => Db::connect_tcp(addr.as_str(), options).await?,
        Address::Unix(path) => Db::connect_unix(path, options).await?,
    };
    let args: Vec<SqlValue> = args.iter().map(|arg| argument(arg)).collect();
    let rows = db.custom_select(sql, args).await?;
    if json {
        println!("{}", to_json(&rows));
    } else {
        print_table(&rows);
    }
    db.close().await
}

/// A command-line argument as a value: an integer or a real if it reads as
/// one, `NULL` for the word null, text otherwise.
fn argument(text: &str) -> SqlValue {
    if let Ok(integer) = text.parse::<i64>() {
        return SqlValue::Integer(integer);
    }
    if let Ok(real) = text.parse::<f64>()
        && text.contains(['.', 'e', 'E'])
    {
        return SqlValue::Real(real);
    }
    if text.eq_ignore_ascii_case("null") {
        return SqlValue::Null;
    }
    SqlValue::Text(text.to_owned())
}

fn print_table(rows: &[OwnedRow]) {
    let Some(first) = rows.first() else {
        println!("(no rows)");
        return;
    };
    println!("{}", first.columns().join("\t"));
    for row in rows {
        let cells: Vec<String> = row.values().iter().map(cell_text).collect();
        println!("{}", cells.join("\t"));
    }
}

fn cell_text(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(r) => format!("{r:?}"),
        SqlValue::Text(t) => t.clone(),
        SqlValue::Blob(b) => format!(
            "x'{}'",
            b.iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
        ),
    }
}

fn to_json(rows: &[OwnedRow]) -> serde_json::Value {
    let json_value = |value: &SqlValue| match value {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => serde_json::json!(i),
        SqlValue::Real(r) => serde_json::json!(r),
        SqlValue::Text(t) => serde_json::json!(t),
        SqlValue::Blob(_) => serde_json::json!(cell_text(value)),
    };
    rows.iter()
        .map(|row| {
            row.columns()
                .iter()
                .zip(row.values())
                .map(|(name, value)| (name.clone(), json_value(value)))
                .collect::<serde_json::Map<_, _>>()
        })
        .collect()
}
