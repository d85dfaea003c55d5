//! `driftwood`: schema snapshots, diffs, checks and automatic migrations of
//! SQLite files, from the command line. Each command is a thin layer over
//! the library (`driftwood::migration`); errors are one line on stderr plus
//! detail, and a non-zero exit code.

mod remote;
mod source;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use driftwood::migration::{self, AutoMigration, AutoPlan, Progress, Step};
use driftwood::prelude::*;
use driftwood::schema::Snapshot;
use driftwood::sqlite::{Connection, JournalMode};

/// Schema snapshots, diffs, checks and automatic migrations of SQLite files.
#[derive(Parser)]
#[command(name = "driftwood", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Schemas: snapshots, differences, checks, generated tables.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Migrates a database file to a target schema, atomically: killed at
    /// any instant, the file is as it was or fully migrated.
    Migrate {
        /// The database file.
        db: PathBuf,
        /// The target: a database file, a snapshot (.json) or CREATE
        /// statements (.sql).
        #[arg(long)]
        to: PathBuf,
        /// A rename the diff cannot guess: `old=new` for a table,
        /// `table.old=new` for a column (`table` as the target names it).
        #[arg(long = "rename", value_name = "RENAME")]
        renames: Vec<String>,
        /// Drop tables and columns that hold data.
        #[arg(long)]
        allow_destructive: bool,
        /// Let a retyped column's cast change values.
        #[arg(long)]
        allow_lossy_casts: bool,
        /// Print the plan and what it would lose; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Set `user_version` (kept otherwise).
        #[arg(long, value_name = "N")]
        set_version: Option<u32>,
    },
    /// Copies a database file while others may keep using it: one
    /// consistent snapshot, written beside the target and renamed into
    /// place.
    Backup {
        /// The database file.
        db: PathBuf,
        /// The copy to write.
        out: PathBuf,
    },
    /// Checks a database file's integrity and foreign keys; exits 1 on
    /// findings.
    Check {
        /// The database file (opened read-only).
        db: PathBuf,
    },
    /// Prints a database file's size statistics.
    Stats {
        /// The database file (opened read-only).
        db: PathBuf,
    },
    /// Serves a database file to other processes until Ctrl-C: TCP on
    /// loopback unless a token is given, or a Unix socket. The token comes
    /// from --token-file or $DRIFTWOOD_TOKEN, never the command line.
    Serve {
        /// The database file.
        db: PathBuf,
        /// `host:port`, or `unix:PATH` for a Unix socket.
        #[arg(long, default_value = "127.0.0.1:4567")]
        listen: remote::Address,
        /// A file whose first line is the token clients must present.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Refuse every write.
        #[arg(long)]
        read_only: bool,
        /// Migrate the file automatically to this schema first (a database
        /// file, a snapshot or a .sql file), as `driftwood migrate` does.
        #[arg(long, value_name = "SCHEMA")]
        to: Option<PathBuf>,
    },
    /// Runs one statement against a served database and prints its rows.
    Query {
        /// Where it is served: `host:port` or `unix:PATH`.
        #[arg(long)]
        remote: remote::Address,
        /// A file whose first line is the server's token (or set
        /// $DRIFTWOOD_TOKEN).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Print rows as a JSON array of objects.
        #[arg(long)]
        json: bool,
        /// The SQL statement.
        sql: String,
        /// Its arguments: integers and reals as such, `null`, text otherwise.
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Writes a snapshot of a database file (opened read-only).
    Dump {
        /// The database file.
        db: PathBuf,
        /// The snapshot to write (.json).
        out: PathBuf,
    },
    /// Prints the migration plan from one schema to another (each a
    /// database file, a snapshot or a .sql file).
    Diff {
        /// The schema migrated from.
        from: PathBuf,
        /// The schema migrated to.
        to: PathBuf,
    },
    /// Reports how a database file differs from a target; exits 1 if it
    /// does.
    Check {
        /// The database file (opened read-only).
        db: PathBuf,
        /// The schema it should have.
        #[arg(long)]
        against: PathBuf,
    },
    /// Writes a snapshot's tables as Rust source (`#[derive(Table)]`
    /// structs), for tests that write rows at an old version.
    Tables {
        /// The snapshot (.json).
        snapshot: PathBuf,
        /// The Rust file to write.
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            let text = error.to_string();
            let mut lines = text.lines();
            eprintln!("error: {}", lines.next().unwrap_or_default());
            for line in lines {
                eprintln!("  {line}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve {
            db,
            listen,
            token_file,
            read_only,
            to,
        } => {
            let token = remote::token(token_file.as_deref())?;
            if let Some(to) = to {
                let target = source::schema(&to)?;
                let conn = exclusive(&db)?;
                let plan =
                    migration::migrate_to_schema(&conn, target, &AutoMigration::new(), None)?;
                print!("{plan}");
            }
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "driftwood::remote=info".into()),
                )
                .init();
            runtime()?.block_on(remote::serve(&db, &listen, token, read_only))?;
        }
        Command::Query {
            remote: address,
            token_file,
            json,
            sql,
            args,
        } => {
            let token = remote::token(token_file.as_deref())?;
            runtime()?.block_on(remote::query(&address, token, &sql, &args, json))?;
        }
        Command::Schema(SchemaCommand::Dump { db, out }) => {
            let conn = source::read_only(&db)?;
            let snapshot = migration::snapshot_of(&conn)?;
            snapshot.write_to(&out)?;
            println!(
                "wrote {} (schema version {}, {} entities)",
                out.display(),
                snapshot.schema_version,
                snapshot.schema.entities.len()
            );
        }
        Command::Schema(SchemaCommand::Diff { from, to }) => {
            let from = source::schema(&from)?;
            let to = source::schema(&to)?;
            let conn = Connection::open_in_memory(&OpenOptions::default())?;
            let plan = conn_plan(&conn, &from, to)?;
            print!("{plan}");
        }
        Command::Schema(SchemaCommand::Check { db, against }) => {
            let conn = source::read_only(&db)?;
            let diff = migration::schema_differences(&conn, &source::schema(&against)?)?;
            if diff.is_empty() {
                println!("{} matches {}", db.display(), against.display());
                for note in &diff.notes {
                    println!("note: {note}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            print!("{diff}");
            if !diff.to_string().ends_with('\n') {
                println!();
            }
            return Ok(ExitCode::FAILURE);
        }
        Command::Schema(SchemaCommand::Tables { snapshot, out }) => {
            let read = Snapshot::read_from(&snapshot)?;
            let name = snapshot
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            std::fs::write(&out, migration::tables_source(&read, &name)).map_err(|e| {
                Error::invalid_argument(format!("cannot write {}: {e}", out.display()))
            })?;
            println!("wrote {}", out.display());
        }
        Command::Backup { db, out } => {
            let conn = source::read_only(&db)?;
            conn.backup_to(&out, |_| {})?;
            println!("wrote {}", out.display());
        }
        Command::Check { db } => {
            let conn = source::read_only(&db)?;
            let mut findings = conn.integrity_check(false)?;
            if findings.is_empty() {
                let violations = Conn::new(&conn).custom_select(
                    "SELECT \"table\" || ' rowid ' || coalesce(rowid, '?') || ' points at no row of ' || parent FROM pragma_foreign_key_check",
                    [],
                );
                match violations {
                    Ok(rows) => {
                        for row in rows {
                            findings.push(row.get::<String>(0)?);
                        }
                    }
                    Err(error) => findings.push(format!("foreign key check: {error}")),
                }
            }
            if findings.is_empty() {
                println!("{}: ok", db.display());
                return Ok(ExitCode::SUCCESS);
            }
            for finding in &findings {
                println!("{finding}");
            }
            return Ok(ExitCode::FAILURE);
        }
        Command::Stats { db } => {
            let conn = source::read_only(&db)?;
            let stats = conn.stats()?;
            println!("page size: {} bytes", stats.page_size);
            println!(
                "pages: {} ({} bytes)",
                stats.pages,
                stats.pages * stats.page_size
            );
            println!("free pages: {}", stats.free_pages);
            println!("wal: {} bytes", stats.wal_bytes);
            println!("journal mode: {}", conn.journal_mode()?);
            println!("user_version: {}", conn.user_version()?);
        }
        Command::Migrate {
            db,
            to,
            renames,
            allow_destructive,
            allow_lossy_casts,
            dry_run,
            set_version,
        } => {
            let target = source::schema(&to)?;
            let mut hints = AutoMigration::new()
                .allow_destructive(allow_destructive)
                .allow_lossy_casts(allow_lossy_casts);
            for rename in &renames {
                hints = rename_hint(hints, rename)?;
            }
            let conn = exclusive(&db)?;
            if dry_run {
                let plan = plan_only(&conn, target, &hints)?;
                print!("{plan}");
                println!("(dry run: nothing changed)");
                return Ok(ExitCode::SUCCESS);
            }
            let hints = with_progress_bar(hints);
            let plan = migration::migrate_to_schema(&conn, target, &hints, set_version)?;
            print!("{plan}");
            println!("migrated {}", db.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The tokio runtime `serve` and `query` run on.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::invalid_argument(format!("cannot start a runtime: {e}")))
}

/// A rename hint from `old=new` (a table) or `table.old=new` (a column).
fn rename_hint(hints: AutoMigration, rename: &str) -> Result<AutoMigration> {
    let Some((old, new)) = rename.split_once('=') else {
        return Err(Error::invalid_argument(format!(
            "--rename {rename}: expected old=new or table.old=new"
        )));
    };
    Ok(match old.split_once('.') {
        Some((table, column)) => hints.rename_column(table, column, new),
        None => hints.rename_table(old, new),
    })
}

/// `path` opened for a migration: its journal mode kept, and in exclusive
/// locking mode, so a file another process has open (a server) is refused
/// instead of migrated beside it.
fn exclusive(path: &Path) -> Result<Connection> {
    let mode = source::read_only(path)?.journal_mode()?;
    let journal = if mode == "wal" {
        JournalMode::Wal
    } else {
        JournalMode::Delete
    };
    // A dry run must leave the file's bytes as they were: no statistics
    // written at close.
    let options = OpenOptions::default()
        .journal_mode(journal)
        .busy_timeout(Duration::from_secs(1))
        .optimize_on_close(false);
    let conn = Connection::open(path, &options)?;
    conn.raw()
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN IMMEDIATE; COMMIT;")
        .map_err(|e| {
            Error::invalid_argument(format!(
                "{} is in use by another process ({e}): stop it, or migrate through it",
                path.display()
            ))
        })?;
    Ok(conn)
}

/// The plan from `from` (created on the empty `conn`) to `to`.
fn conn_plan(conn: &Connection, from: &Schema, to: Schema) -> Result<AutoPlan> {
    let handle = Conn::new(conn);
    driftwood::create_all(&handle, from)?;
    plan_only(
        conn,
        to,
        &AutoMigration::new()
            .allow_destructive(true)
            .allow_lossy_casts(true),
    )
}

fn plan_only(conn: &Connection, target: Schema, hints: &AutoMigration) -> Result<AutoPlan> {
    migration::plan_to_schema(conn, target, hints)
}

/// `hints` with a progress bar for long rebuilds, when stderr is a terminal.
fn with_progress_bar(hints: AutoMigration) -> AutoMigration {
    if !std::io::stderr().is_terminal() {
        return hints;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    hints.on_progress(move |progress: &Progress| {
        bar.set_length(progress.rows_total);
        bar.set_position(progress.rows_copied);
        bar.set_message(format!("rebuilding {}", progress.table));
        if progress.step == Step::Done {
            bar.finish_and_clear();
        }
    })
}
