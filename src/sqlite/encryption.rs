//! Encryption at rest (SQLCipher): the key a connection opens with
//! ([`EncryptionKey`], which never prints), keying a connection before
//! anything else reads the file, telling a wrong or missing key from other
//! failures, and re-keying.
//!
//! SQLCipher takes SQLite's place when driftwood is built with its
//! `sqlcipher` feature. The API is there in every build; a build whose
//! SQLite has no encryption refuses to open with a key
//! ([`Error::NoEncryption`]) instead of writing a plain file.
//!
//! The key reaches SQLite only as `PRAGMA key` / `PRAGMA rekey` run on the
//! raw connection, outside the statement wrapper: no `tracing` event and no
//! error carries it, and driftwood's own copies of it (the key and the
//! statement text) are overwritten with zeros when dropped. User SQL cannot
//! set or change it: the authorizer refuses those pragmas
//! ([`Error::KeyPragma`]).

use std::sync::Arc;

use super::connection::Connection;
use crate::error::{Error, Result};

/// The key of an encrypted database: a passphrase (SQLCipher derives the
/// key from it with PBKDF2, and a per-file salt) or a raw 256-bit key
/// (used as is: no derivation at open, so opening is faster).
///
/// It never prints: its `Debug` says `<redacted>`. driftwood's copy is
/// shared by the clones (every connection of a server opens from one) and
/// overwritten with zeros when the last one drops.
#[derive(Clone)]
pub struct EncryptionKey {
    secret: Arc<Secret>,
    /// A raw key rather than a passphrase.
    raw: bool,
}

/// Bytes of a key, or of a statement holding one: zeroed on drop.
struct Secret(Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keeps the compiler from dropping the writes as dead before the
        // memory is freed.
        std::hint::black_box(&mut self.0);
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

impl EncryptionKey {
    /// A passphrase (any text but empty and without NUL characters).
    pub fn passphrase(passphrase: impl Into<String>) -> Self {
        EncryptionKey {
            secret: Arc::new(Secret(passphrase.into().into_bytes())),
            raw: false,
        }
    }

    /// A raw 256-bit key, used without key derivation.
    pub fn raw(key: [u8; 32]) -> Self {
        EncryptionKey {
            secret: Arc::new(Secret(key.to_vec())),
            raw: true,
        }
    }

    /// `PRAGMA {pragma} = …` with this key, in a buffer zeroed on drop.
    fn statement(&self, pragma: &str) -> Result<Secret> {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let key = &self.secret.0;
        if key.is_empty() {
            return Err(Error::invalid_argument("an encryption key cannot be empty"));
        }
        if key.contains(&0) {
            return Err(Error::invalid_argument(
                "an encryption passphrase cannot contain a NUL character",
            ));
        }
        // Sized once, so no reallocation leaves a copy behind.
        let mut sql = Secret(Vec::with_capacity(pragma.len() + 2 * key.len() + 24));
        let out = &mut sql.0;
        out.extend_from_slice(b"PRAGMA ");
        out.extend_from_slice(pragma.as_bytes());
        if self.raw {
            out.extend_from_slice(b" = \"x'");
            for byte in key {
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
            out.extend_from_slice(b"'\"");
        } else {
            out.extend_from_slice(b" = '");
            for &byte in key {
                if byte == b'\'' {
                    out.push(b'\'');
                }
                out.push(byte);
            }
            out.push(b'\'');
        }
        Ok(sql)
    }

    /// Runs `PRAGMA {pragma}` with this key on `raw`, outside driftwood's
    /// statement wrapper (nothing traces it); fails with SQLite's message,
    /// never the statement.
    fn run(&self, raw: &rusqlite::Connection, pragma: &str) -> Result<(), String> {
        let sql = self.statement(pragma).map_err(|e| e.to_string())?;
        let text = std::str::from_utf8(&sql.0).map_err(|_| "the passphrase is not UTF-8")?;
        raw.execute_batch(text).map_err(message)
    }
}

/// SQLite's message in `error`, without the statement (rusqlite puts the
/// statement in the text of a syntax error).
fn message(error: rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqlInputError { msg, .. } => msg,
        rusqlite::Error::SqliteFailure(failure, message) => {
            message.unwrap_or_else(|| failure.to_string())
        }
        other => other.to_string(),
    }
}

impl From<&str> for EncryptionKey {
    fn from(passphrase: &str) -> Self {
        EncryptionKey::passphrase(passphrase)
    }
}

impl From<String> for EncryptionKey {
    fn from(passphrase: String) -> Self {
        EncryptionKey::passphrase(passphrase)
    }
}

impl From<[u8; 32]> for EncryptionKey {
    fn from(key: [u8; 32]) -> Self {
        EncryptionKey::raw(key)
    }
}

/// Pragmas that set or change a connection's key (SQLCipher's, and its
/// `rekey_*` settings): user SQL never runs them.
pub(super) fn is_key_pragma(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["key", "hexkey", "textkey", "hexrekey", "textrekey"].contains(&name.as_str())
        || name.starts_with("rekey")
}

/// Keys a newly opened connection — `PRAGMA key`, its first statement — and
/// reads the schema to prove the key opens the file; without a key, in a
/// build with SQLCipher, only reads (an encrypted file then fails here,
/// clearly, rather than at its first query).
pub(super) fn unlock(
    raw: &rusqlite::Connection,
    key: Option<&EncryptionKey>,
    path: &str,
) -> Result<()> {
    if let Some(key) = key {
        key.run(raw, "key").map_err(|message| Error::Open {
            path: path.to_owned(),
            message,
        })?;
        ensure_cipher(raw, path)?;
    } else if !cfg!(feature = "sqlcipher") {
        return Ok(());
    }
    match raw.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())) {
        Ok(()) => Ok(()),
        Err(error) if error.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
            Err(Error::EncryptionKey {
                path: path.to_owned(),
                key_given: key.is_some(),
            })
        }
        Err(error) => Err(Error::Open {
            path: path.to_owned(),
            message: error.to_string(),
        }),
    }
}

/// Fails unless this SQLite encrypts (SQLCipher answers `PRAGMA
/// cipher_version`; plain SQLite ignores the pragma, and `PRAGMA key` too).
fn ensure_cipher(raw: &rusqlite::Connection, path: &str) -> Result<()> {
    let version = raw.query_row("PRAGMA cipher_version", [], |row| row.get::<_, String>(0));
    match version {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::QueryReturnedNoRows) => Err(Error::NoEncryption {
            path: path.to_owned(),
        }),
        Err(error) => Err(Error::Open {
            path: path.to_owned(),
            message: error.to_string(),
        }),
    }
}

/// What errors show for a re-key statement.
const HIDDEN_REKEY: &str = "PRAGMA rekey = <redacted>";

impl Connection {
    /// Re-encrypts the database with `key` (`PRAGMA rekey`): every page is
    /// rewritten in one transaction, and from then on the file opens only
    /// with the new key. Outside a transaction only.
    ///
    /// Other connections to the file keep the old key and can no longer
    /// read it (SQLCipher cannot re-key an open connection without
    /// rewriting the file): this connection is marked as one no other
    /// connection can stand in for, so a background server runs every
    /// later request on its writer, never on a reader opened with the old
    /// key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] inside a transaction, and for a database
    /// that is not encrypted (SQLCipher re-keys only encrypted files;
    /// encrypt a plain one by copying it with `sqlcipher_export`); an SQLite
    /// error otherwise, with the statement not shown.
    pub fn rekey(&self, key: impl Into<EncryptionKey>) -> Result<()> {
        let key = key.into();
        self.stand_alone_for_rekey()?;
        key.run(&self.raw, "rekey").map_err(|message| Error::Sql {
            code: None,
            message,
            sql: HIDDEN_REKEY.into(),
        })?;
        *self.key.borrow_mut() = Some(key);
        Ok(())
    }

    /// Checks that this connection can re-key (outside a transaction, an
    /// encrypted database), then marks it as one no other connection can
    /// stand in for: a background server runs every later request on it,
    /// never on a reader, since other connections keep the old key.
    pub(crate) fn stand_alone_for_rekey(&self) -> Result<()> {
        if self.open_levels.get() > 0 {
            return Err(Error::invalid_argument(
                "rekey cannot run inside a transaction: it rewrites the whole file in a transaction of its own",
            ));
        }
        if self.key.borrow().is_none() {
            return Err(Error::invalid_argument(
                "this database is not encrypted: rekey changes the key of a database opened with OpenOptions::encryption_key",
            ));
        }
        self.guard.set_private_state();
        Ok(())
    }

    /// Keys `other` (a connection this one copies to: a backup's target)
    /// with this connection's key, if it has one, so the copy is encrypted
    /// like the original (SQLCipher refuses to back an encrypted database
    /// up to a plain one).
    pub(super) fn key_like_this(&self, other: &rusqlite::Connection) -> Result<(), String> {
        match &*self.key.borrow() {
            Some(key) => key.run(other, "key"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(key: &EncryptionKey, pragma: &str) -> String {
        String::from_utf8(key.statement(pragma).unwrap().0.clone()).unwrap()
    }

    #[test]
    fn keys_become_pragmas_and_never_print() {
        let key = EncryptionKey::passphrase("it's secret");
        assert_eq!(text(&key, "key"), "PRAGMA key = 'it''s secret'");
        assert_eq!(format!("{key:?}"), "EncryptionKey(<redacted>)");
        let raw = EncryptionKey::raw([0xab; 32]);
        assert_eq!(
            text(&raw, "rekey"),
            format!("PRAGMA rekey = \"x'{}'\"", "AB".repeat(32))
        );
        assert!(EncryptionKey::from("").statement("key").is_err());
        assert!(EncryptionKey::from("a\0b").statement("key").is_err());
    }

    #[test]
    fn key_pragmas_are_recognized() {
        for name in [
            "key",
            "KEY",
            "rekey",
            "hexkey",
            "hexrekey",
            "textkey",
            "textrekey",
            "rekey_cipher",
        ] {
            assert!(is_key_pragma(name), "{name}");
        }
        for name in ["cipher_version", "journal_mode", "keys", "foreign_keys"] {
            assert!(!is_key_pragma(name), "{name}");
        }
    }
}
