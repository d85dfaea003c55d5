//! The authorizer driftwood installs on every connection: it refuses
//! transaction control in user SQL (driftwood owns transaction boundaries,
//! so no write leaks out of or into somebody else's transaction) and notes
//! what a statement does beyond reading, so raw SQL can be routed to a
//! reader only when it is a plain read.
//!
//! SQLite calls the authorizer while it prepares a statement, never when a
//! cached statement runs again, so the flags it sets describe the statement
//! prepared last. The connection resets them before each prepare.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// What the authorizer saw and whether driftwood itself is preparing.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    /// Set while driftwood runs its own `BEGIN`/`COMMIT`/`SAVEPOINT`/….
    internal: AtomicBool,
    /// The last prepare tried to control a transaction and was refused.
    refused_control: AtomicBool,
    /// The last prepare attaches, detaches or runs a pragma: not for a reader.
    side_effect: AtomicBool,
}

impl Guard {
    /// Installs a new guard as `raw`'s authorizer.
    pub(crate) fn install(raw: &mut rusqlite::Connection) -> rusqlite::Result<Arc<Guard>> {
        let guard = Arc::new(Guard::default());
        let seen = guard.clone();
        raw.authorizer(Some(move |context: AuthContext<'_>| {
            seen.authorize(context)
        }))?;
        Ok(guard)
    }

    fn authorize(&self, context: AuthContext<'_>) -> Authorization {
        match context.action {
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
                if self.internal.load(Ordering::Relaxed) {
                    return Authorization::Allow;
                }
                self.refused_control.store(true, Ordering::Relaxed);
                Authorization::Deny
            }
            AuthAction::Attach { .. } | AuthAction::Detach { .. } | AuthAction::Pragma { .. } => {
                self.side_effect.store(true, Ordering::Relaxed);
                Authorization::Allow
            }
            _ => Authorization::Allow,
        }
    }

    /// Forgets what the previous prepare did.
    pub(crate) fn reset(&self) {
        self.refused_control.store(false, Ordering::Relaxed);
        self.side_effect.store(false, Ordering::Relaxed);
    }

    /// Whether the last prepare was refused for controlling a transaction.
    pub(crate) fn refused_control(&self) -> bool {
        self.refused_control.load(Ordering::Relaxed)
    }

    /// Whether the last prepare attaches, detaches or runs a pragma.
    pub(crate) fn side_effect(&self) -> bool {
        self.side_effect.load(Ordering::Relaxed)
    }

    /// Runs `work` with driftwood's own transaction control allowed.
    pub(crate) fn internal<R>(&self, work: impl FnOnce() -> R) -> R {
        self.internal.store(true, Ordering::Relaxed);
        let result = work();
        self.internal.store(false, Ordering::Relaxed);
        result
    }
}
