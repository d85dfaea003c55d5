//! Encryption at rest: an encrypted file (and its WAL) holds none of the
//! plaintext written to it, opens with its key — in-thread, and through a
//! background server's writer and readers — and fails clearly with a wrong
//! key or none; re-keying; backups and `VACUUM INTO` copies are encrypted
//! with the same key; the key never shows in SQL, errors or logs.
//!
//! Most of it needs SQLCipher, so it runs in the build with the
//! `sqlcipher` feature (`.ci/run` has a step of its own for it:
//! `cargo test -p driftwood --features full,sqlcipher --test encryption`);
//! a plain build checks that a key is refused rather than ignored.

mod common;

use driftwood::prelude::*;

/// A passphrase no test writes anywhere else.
const KEY: &str = "correct horse battery staple";

#[cfg(not(feature = "sqlcipher"))]
#[test]
fn without_sqlcipher_a_key_is_refused_and_no_plain_file_is_written() {
    use common::{TodoDb, block_on, within};
    within(30, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.db");
        let options = OpenOptions::default().encryption_key(KEY);
        for background in [false, true] {
            let opened = if background {
                block_on(Db::<TodoDb>::open_in_background_with(
                    &path,
                    options.clone(),
                ))
            } else {
                block_on(Db::<TodoDb>::open_with(&path, options.clone()))
            };
            let err = opened.unwrap_err();
            println!("{err}");
            assert!(matches!(err, Error::NoEncryption { .. }), "{err:?}");
            assert!(err.to_string().contains("sqlcipher"), "{err}");
            // SQLite may create the file when it opens it, but nothing is
            // written to it.
            let written = std::fs::metadata(&path).map_or(0, |m| m.len());
            assert_eq!(written, 0, "a plain file was written");
        }
    });
}

#[cfg(feature = "sqlcipher")]
mod sqlcipher {
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex, OnceLock};

    use super::common::{TodoDb, block_on, todo, within};
    use super::*;
    use driftwood::sqlite::{CheckpointMode, Connection, EncryptionKey, JournalMode};

    /// Text written to every database, looked for in the raw bytes.
    const MARKER: &str = "PLAINTEXT-MARKER-8c41f0";

    /// Options with `key`; from the first call on, every `tracing` event
    /// of the test binary is kept (see [`logged`]).
    fn keyed(key: impl Into<EncryptionKey>) -> OpenOptions {
        logged();
        OpenOptions::default().encryption_key(key)
    }

    /// Whether `needle` occurs in the file at `path` (false if there is none).
    fn file_contains(path: &Path, needle: &str) -> bool {
        let bytes = std::fs::read(path).unwrap_or_default();
        bytes
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    }

    fn wal(path: &Path) -> PathBuf {
        PathBuf::from(format!("{}-wal", path.display()))
    }

    /// Writes rows carrying [`MARKER`] (and a category, so a second table's
    /// name is in the schema too) through an in-thread database.
    fn write_rows(db: &Db<TodoDb>) {
        block_on(db.custom_statement(
            "INSERT INTO categories (description) VALUES (?)",
            [SqlValue::Text(format!("category {MARKER}"))],
        ))
        .unwrap();
        for i in 0..20 {
            block_on(db.insert(todo(
                &format!("Task {i:03}"),
                &format!("{MARKER} {i}"),
                Some(1),
            )))
            .unwrap();
        }
    }

    fn count(db: &Db<TodoDb>) -> i64 {
        block_on(db.select::<common::Todo>().count()).unwrap()
    }

    fn open_error(path: &Path, options: OpenOptions) -> Error {
        block_on(Db::<TodoDb>::open_with(path, options)).unwrap_err()
    }

    /// A temporary directory with `secret.db`, encrypted with [`KEY`],
    /// holding [`write_rows`]'s rows, closed.
    fn encrypted_file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.db");
        let db = block_on(Db::<TodoDb>::open_with(&path, keyed(KEY))).unwrap();
        write_rows(&db);
        block_on(db.close()).unwrap();
        (dir, path)
    }

    /// Runs a read unit of work on `db` and says whether it ran on a
    /// reader (a read-only connection), with the number of todos it saw.
    fn read_where(db: &Db<TodoDb>) -> (bool, i64) {
        block_on(db.read(|conn| {
            let raw = conn.connection().raw();
            let on_reader = raw.is_readonly(rusqlite::MAIN_DB).unwrap();
            Ok((on_reader, conn.select::<common::Todo>().count()?))
        }))
        .unwrap()
    }

    #[test]
    fn an_encrypted_file_and_its_wal_hold_none_of_the_plaintext() {
        within(60, || {
            let dir = tempfile::tempdir().unwrap();
            for encrypted in [false, true] {
                let path = dir
                    .path()
                    .join(if encrypted { "secret.db" } else { "plain.db" });
                let options = if encrypted {
                    keyed(KEY)
                } else {
                    OpenOptions::default()
                };
                let db = block_on(Db::<TodoDb>::open_with(&path, options)).unwrap();
                write_rows(&db);
                // Open: the last commits are in the WAL.
                let wal_bytes = std::fs::metadata(wal(&path)).unwrap().len();
                assert!(wal_bytes > 0, "the rows should be in the WAL");
                let in_wal = file_contains(&wal(&path), MARKER);
                block_on(db.close()).unwrap();
                // Closed: checkpointed into the file.
                let after_close = file_contains(&path, MARKER);
                let in_file = file_contains(&path, "categories");
                let header = std::fs::read(&path)
                    .unwrap()
                    .starts_with(b"SQLite format 3");
                println!(
                    "{}: marker in WAL {in_wal}, table name in file {in_file}, marker in file after close {after_close}, plain header {header}",
                    path.display()
                );
                // The plain file shows the bytes are really there to find.
                assert_eq!(in_wal, !encrypted);
                assert_eq!(in_file, !encrypted);
                assert_eq!(after_close, !encrypted);
                assert_eq!(header, !encrypted);
            }
        });
    }

    #[test]
    fn an_encrypted_file_opens_with_its_key_in_thread_and_in_the_background() {
        within(60, || {
            let (dir, path) = encrypted_file();

            let db = block_on(Db::<TodoDb>::open_with(&path, keyed(KEY))).unwrap();
            assert_eq!(count(&db), 20);
            block_on(db.close()).unwrap();

            // The server's writer and its readers all open with the key.
            let server = block_on(Server::open_with(&path, keyed(KEY), 2)).unwrap();
            let db = block_on(server.connect::<TodoDb>()).unwrap();
            block_on(db.insert(todo("Written", "through the writer", None))).unwrap();
            assert_eq!(
                read_where(&db),
                (true, 21),
                "a unit of work reads on a reader"
            );
            assert_eq!(
                block_on(db.integrity_check(false)).unwrap(),
                Vec::<String>::new()
            );
            server.shutdown_all();

            // Raw keys too.
            let raw = dir.path().join("raw.db");
            let key = [7u8; 32];
            let db = block_on(Db::<TodoDb>::open_in_background_with(&raw, keyed(key))).unwrap();
            block_on(db.insert(todo("Raw key", MARKER, None))).unwrap();
            block_on(db.close()).unwrap();
            assert!(!file_contains(&raw, MARKER));
            let db = block_on(Db::<TodoDb>::open_with(&raw, keyed(key))).unwrap();
            assert_eq!(count(&db), 1);
        });
    }

    #[test]
    fn a_wrong_or_missing_key_fails_clearly() {
        within(60, || {
            let (dir, path) = encrypted_file();

            let wrong = open_error(&path, keyed("not the key"));
            println!("wrong key: {wrong}");
            assert!(
                matches!(
                    wrong,
                    Error::EncryptionKey {
                        key_given: true,
                        ..
                    }
                ),
                "{wrong:?}"
            );
            assert!(wrong.to_string().contains("key is wrong"), "{wrong}");
            assert!(!wrong.to_string().contains("not the key"), "{wrong}");

            let missing = open_error(&path, OpenOptions::default());
            println!("no key: {missing}");
            assert!(
                matches!(
                    missing,
                    Error::EncryptionKey {
                        key_given: false,
                        ..
                    }
                ),
                "{missing:?}"
            );
            assert!(
                missing.to_string().contains("no encryption key was given"),
                "{missing}"
            );

            // Read-only (what a server's readers and the CLI open) and
            // through a background server: the same error, at open.
            let read_only = Connection::open(&path, &OpenOptions::default().read_only(true));
            assert!(matches!(
                read_only,
                Err(Error::EncryptionKey {
                    key_given: false,
                    ..
                })
            ));
            let background = block_on(Db::<TodoDb>::open_in_background_with(
                &path,
                keyed("not the key"),
            ));
            assert!(matches!(
                background,
                Err(Error::EncryptionKey {
                    key_given: true,
                    ..
                })
            ));

            // A plain file opened with a key is no database to SQLCipher.
            let plain = dir.path().join("plain.db");
            drop(block_on(Db::<TodoDb>::open_with(&plain, OpenOptions::default())).unwrap());
            let err = open_error(&plain, keyed(KEY));
            assert!(
                matches!(
                    err,
                    Error::EncryptionKey {
                        key_given: true,
                        ..
                    }
                ),
                "{err:?}"
            );

            // Neither failure touched the file.
            let db = block_on(Db::<TodoDb>::open_with(&path, keyed(KEY))).unwrap();
            assert_eq!(count(&db), 20);
        });
    }

    #[test]
    fn rekeying_changes_the_key_and_keeps_the_data() {
        within(60, || {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("secret.db");
            let db = block_on(Db::<TodoDb>::open_with(&path, keyed(KEY))).unwrap();
            write_rows(&db);
            block_on(db.rekey("the new key")).unwrap();
            assert_eq!(count(&db), 20, "the connection goes on with the new key");
            block_on(db.close()).unwrap();
            assert!(matches!(
                open_error(&path, keyed(KEY)),
                Error::EncryptionKey {
                    key_given: true,
                    ..
                }
            ));

            // On a server with readers: the writer re-keys, and every later
            // request runs there (the readers hold the old key).
            let db = block_on(Db::<TodoDb>::open_in_background_with(
                &path,
                keyed("the new key"),
            ))
            .unwrap();
            block_on(db.rekey([9u8; 32])).unwrap();
            block_on(db.insert(todo("Rekeyed", MARKER, None))).unwrap();
            assert_eq!(
                read_where(&db),
                (false, 21),
                "after a re-key, reads stay on the writer"
            );
            block_on(db.close()).unwrap();
            assert!(matches!(
                open_error(&path, keyed("the new key")),
                Error::EncryptionKey {
                    key_given: true,
                    ..
                }
            ));
            let db = block_on(Db::<TodoDb>::open_with(&path, keyed([9u8; 32]))).unwrap();
            assert_eq!(count(&db), 21);
            assert_eq!(
                block_on(db.integrity_check(false)).unwrap(),
                Vec::<String>::new()
            );

            // Not inside a transaction; not on a plain file.
            let inside = block_on(db.transaction(|| async { db.rekey("later").await }));
            println!("inside a transaction: {}", inside.as_ref().unwrap_err());
            assert!(
                matches!(inside, Err(Error::InvalidArgument { .. })),
                "{inside:?}"
            );
            let plain: Db<TodoDb> = block_on(Db::open_with(
                dir.path().join("plain.db"),
                OpenOptions::default(),
            ))
            .unwrap();
            let err = block_on(plain.rekey(KEY)).unwrap_err();
            println!("plain file: {err}");
            assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
        });
    }

    #[test]
    fn backups_and_vacuum_copies_are_encrypted_with_the_same_key() {
        within(60, || {
            let (dir, path) = encrypted_file();
            // In-thread, and on a server's reader.
            let local = block_on(Db::<TodoDb>::open_with(&path, keyed(KEY))).unwrap();
            let background =
                block_on(Db::<TodoDb>::open_in_background_with(&path, keyed(KEY))).unwrap();
            let copies = [
                ("backup.db", &local, "backup"),
                ("server-backup.db", &background, "backup"),
                ("vacuum.db", &local, "vacuum"),
                ("server-vacuum.db", &background, "vacuum"),
            ];
            for (name, db, how) in copies {
                let copy = dir.path().join(name);
                match how {
                    "backup" => block_on(db.backup_to(&copy, |_| {})).unwrap(),
                    _ => block_on(db.vacuum_into(&copy)).unwrap(),
                }
                assert!(!file_contains(&copy, MARKER), "{name} holds plaintext");
                assert!(matches!(
                    open_error(&copy, OpenOptions::default()),
                    Error::EncryptionKey {
                        key_given: false,
                        ..
                    }
                ));
                let copied = block_on(Db::<TodoDb>::open_with(&copy, keyed(KEY))).unwrap();
                assert_eq!(count(&copied), 20, "{name}");
                assert_eq!(
                    block_on(copied.integrity_check(false)).unwrap(),
                    Vec::<String>::new()
                );
            }
            block_on(background.close()).unwrap();

            // After a re-key, copies take the new key.
            block_on(local.rekey("the new key")).unwrap();
            let copy = dir.path().join("after-rekey.db");
            block_on(local.backup_to(&copy, |_| {})).unwrap();
            assert!(matches!(
                open_error(&copy, keyed(KEY)),
                Error::EncryptionKey { .. }
            ));
            let copied = block_on(Db::<TodoDb>::open_with(&copy, keyed("the new key"))).unwrap();
            assert_eq!(count(&copied), 20);
        });
    }

    // An encrypted database restores from its backup — the staged copy is
    // keyed like the database, since SQLCipher copies only between
    // databases with the same key — in-thread and on a server, and refuses
    // a file its key cannot read (a plain one) clearly.
    #[test]
    fn an_encrypted_database_restores_from_its_encrypted_backup() {
        within(120, || {
            let dir = tempfile::tempdir().unwrap();
            for background in [false, true] {
                let path = dir.path().join(format!("live-{background}.db"));
                let db: Db<TodoDb> = match background {
                    false => block_on(Db::open_with(&path, keyed(KEY))).unwrap(),
                    true => block_on(Db::open_in_background_with(&path, keyed(KEY))).unwrap(),
                };
                write_rows(&db);
                let copy = dir.path().join(format!("backup-{background}.db"));
                block_on(db.backup_to(&copy, |_| {})).unwrap();
                block_on(db.custom_statement("DELETE FROM todos", [])).unwrap();
                block_on(db.restore_from(&copy, |_| {})).unwrap();
                assert_eq!(count(&db), 20, "background: {background}");
                let plain = dir.path().join(format!("plain-{background}.db"));
                let conn = rusqlite::Connection::open(&plain).unwrap();
                conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
                    .unwrap();
                drop(conn);
                match block_on(db.restore_from(&plain, |_| {})) {
                    Err(Error::BadBackup { message, .. }) => {
                        assert!(message.contains("this database's key"), "{message}")
                    }
                    other => panic!("expected BadBackup, got {other:?}"),
                }
                assert_eq!(count(&db), 20, "background: {background}");
                block_on(db.close()).unwrap();
                assert!(
                    !file_contains(&path, MARKER),
                    "the restored file is encrypted"
                );
            }
        });
    }

    /// Every `tracing` event's fields, as text.
    #[derive(Clone, Default)]
    struct Events(Arc<Mutex<Vec<String>>>);

    /// The events of every test of this binary, kept by a global subscriber
    /// (a thread's own one misses events whose callsites another test's
    /// thread registered first).
    fn logged() -> Arc<Mutex<Vec<String>>> {
        static EVENTS: OnceLock<Events> = OnceLock::new();
        let events = EVENTS.get_or_init(|| {
            let events = Events::default();
            tracing::subscriber::set_global_default(events.clone())
                .expect("no other subscriber in this test binary");
            events
        });
        events.0.clone()
    }

    impl tracing::Subscriber for Events {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Fields(String);
            impl tracing::field::Visit for Fields {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    self.0.push_str(&format!("{}={value:?} ", field.name()));
                }
            }
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn the_key_never_shows_in_sql_errors_or_logs() {
        within(60, || {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("secret.db");
            let options = keyed(KEY).journal_mode(JournalMode::Wal);
            let debug = format!("{options:?}");
            assert!(
                !debug.contains(KEY) && debug.contains("<redacted>"),
                "{debug}"
            );
            {
                let db = block_on(Db::<TodoDb>::open_with(&path, options.clone())).unwrap();
                write_rows(&db);
                // User SQL cannot set or change the key, in a transaction
                // or not, however it is spelled.
                for sql in [
                    format!("PRAGMA key = '{KEY}'"),
                    format!("PRAGMA rekey = '{KEY}'"),
                    format!("/* hi */ pragma main.REKEY('{KEY}')"),
                    format!("PRAGMA hexrekey = '{}'", "ab".repeat(32)),
                ] {
                    let err = block_on(db.custom_statement(sql.as_str(), [])).unwrap_err();
                    assert!(matches!(err, Error::KeyPragma { .. }), "{err:?}");
                    assert!(!err.to_string().contains(KEY), "{err}");
                    let inside = block_on(
                        db.transaction(|| async { db.custom_statement(sql.as_str(), []).await }),
                    )
                    .unwrap_err();
                    assert!(matches!(inside, Error::KeyPragma { .. }), "{inside:?}");
                }
                println!(
                    "{}",
                    block_on(db.custom_statement(format!("PRAGMA key = '{KEY}'"), [])).unwrap_err()
                );
                block_on(db.rekey(KEY.repeat(2))).unwrap();
                block_on(db.checkpoint(CheckpointMode::Truncate)).unwrap();
                block_on(db.close()).unwrap();
                let wrong = open_error(&path, keyed(KEY));
                assert!(matches!(wrong, Error::EncryptionKey { .. }));
            }
            // A copy: logging goes on while it is checked.
            let events = logged().lock().unwrap().clone();
            assert!(
                events.iter().any(|e| e.contains("INSERT")),
                "statements were logged"
            );
            assert!(
                events.iter().any(|e| e.contains("<redacted>")),
                "refusals were logged"
            );
            for event in events.iter() {
                assert!(!event.contains(KEY), "a log event holds the key: {event}");
            }
            let db = block_on(Db::<TodoDb>::open_with(&path, keyed(KEY.repeat(2)))).unwrap();
            assert_eq!(count(&db), 20);
        });
    }
}
