//! Serving a database over TCP, Unix sockets or any byte stream, and the
//! client that connects to it (the `remote` feature).
//!
//! One process owns the SQLite file: it runs a background [`Server`] and a
//! [`RemoteServer`] in front of it. Clients in other processes connect with
//! [`Db::connect_tcp`], [`Db::connect_unix`] or [`Db::connect_remote`] and
//! use the same queries, batches and transactions as in-process clients;
//! closure-based units of work stay in-process (a closure cannot cross a
//! socket). The protocol is driftwood's own, documented in
//! `docs/PROTOCOL.md`: a preamble with a magic value and the version, then
//! length-prefixed MessagePack frames, with request ids so many requests
//! are in flight on one connection.
//!
//! Secure by default: TCP listens on loopback unless given a token, a
//! token is compared in constant time, a Unix socket is owner-only and
//! serves only peers of the same user, and every remote statement runs
//! under a policy the authorizer enforces on each run (no `ATTACH`, no
//! `VACUUM INTO`, no extensions, no pragmas that set; no writes at all on a
//! read-only server).
//!
//! [`Server`]: crate::Server
//! [`Db::connect_tcp`]: crate::Db::connect_tcp
//! [`Db::connect_unix`]: crate::Db::connect_unix
//! [`Db::connect_remote`]: crate::Db::connect_remote

mod budget;
pub(crate) mod client;
mod outbox;
mod running;
mod serve;
#[cfg(unix)]
pub(crate) mod shared;
#[cfg(feature = "tls")]
mod tls;
pub mod wire;

use std::path::Path;

pub use client::RemoteOptions;
pub use serve::{DEFAULT_REQUEST_MEMORY, Endpoint, Listening, RemoteServer, ServeStats};
#[cfg(feature = "tls")]
pub use tls::{TlsIdentity, TlsTrust};
pub use wire::{DEFAULT_MAX_FRAME, PROTOCOL_VERSION};

use crate::error::{Error, Result};

/// A secret a server requires and a client presents. Its `Debug` never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from its text; refused if empty.
    pub fn new(secret: impl Into<String>) -> Result<Token> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(Error::invalid_argument("a token cannot be empty"));
        }
        Ok(Token(secret))
    }

    /// The first line of a file, trimmed: how to hand a token to a process
    /// without putting it on its command line.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Token> {
        serve::token_from_file(path.as_ref())
    }

    /// The value of environment variable `name`.
    pub fn from_env(name: &str) -> Result<Token> {
        let secret = std::env::var(name).map_err(|e| {
            Error::invalid_argument(format!("cannot read the token from ${name}: {e}"))
        })?;
        Token::new(secret.trim()).map_err(|_| {
            Error::invalid_argument(format!("${name} is empty: it should hold the token"))
        })
    }

    pub(crate) fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}
