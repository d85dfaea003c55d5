//! A process-wide registry of named servers (drift's `IsolateNameServer`
//! pattern): one part of a program registers a [`Server`] under a name,
//! another looks it up without knowing where it came from. Unlike drift's,
//! a stale entry — a server that has shut down — is detected and reported
//! ([`Error::StaleServer`]) and removed, instead of handing out a dead port.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::Server;
use crate::error::{Error, Result};

fn servers() -> &'static Mutex<HashMap<String, Server>> {
    static SERVERS: OnceLock<Mutex<HashMap<String, Server>>> = OnceLock::new();
    SERVERS.get_or_init(Default::default)
}

/// Registers `server` under `name`, replacing a stopped server of that name.
/// Fails if a running server already holds the name. The registry keeps the
/// server alive until it is shut down or [`remove`]d.
pub fn register(name: &str, server: &Server) -> Result<()> {
    let mut servers = servers().lock().unwrap_or_else(|e| e.into_inner());
    if servers.get(name).is_some_and(Server::is_running) {
        return Err(Error::invalid_argument(format!(
            "a running server is already registered as `{name}`"
        )));
    }
    servers.insert(name.to_owned(), server.clone());
    Ok(())
}

/// The running server registered as `name`: `Ok(None)` if there is none,
/// [`Error::StaleServer`] (and the entry removed) if it has shut down.
pub fn lookup(name: &str) -> Result<Option<Server>> {
    let mut servers = servers().lock().unwrap_or_else(|e| e.into_inner());
    match servers.get(name) {
        None => Ok(None),
        Some(server) if server.is_running() => Ok(Some(server.clone())),
        Some(_) => {
            servers.remove(name);
            Err(Error::StaleServer {
                name: name.to_owned(),
            })
        }
    }
}

/// Removes and returns the entry for `name`, running or not.
pub fn remove(name: &str) -> Option<Server> {
    servers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(name)
}
