//! The authorizer driftwood installs on every connection: it refuses
//! transaction control in user SQL (driftwood owns transaction boundaries,
//! so no write leaks out of or into somebody else's transaction) and notes
//! what a statement needs beyond reading the shared database, so raw SQL is
//! routed to a reader only when any connection would answer it the same.
//!
//! SQLite calls the authorizer while it prepares a statement — never when a
//! cached statement runs again — and also for statements SQLite prepares
//! itself while running one (`VACUUM` attaches a database and begins a
//! transaction). So the guard judges only while the connection prepares a
//! user statement ([`Guard::preparing`]); what it saw describes the
//! statement prepared last. The one exception is a remote client's
//! request: while it runs, the guard judges everything SQLite authorizes,
//! prepared or running, against the client's [`Restriction`].

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use super::changes::Footprint;
use super::policy::{self, Restriction};

/// Functions whose value depends on the connection that runs them.
const CONNECTION_STATE_FUNCTIONS: [&str; 3] = ["last_insert_rowid", "changes", "total_changes"];

/// What the authorizer saw and whether a user statement is being prepared.
#[derive(Default)]
pub(crate) struct Guard {
    /// Set while the connection prepares user SQL.
    preparing: AtomicBool,
    /// The last prepare tried to control a transaction and was refused.
    refused_control: AtomicBool,
    /// The last prepare tried to set or change the encryption key and was
    /// refused (see `encryption.rs`); `refused_pragma` names the pragma.
    refused_key: AtomicBool,
    refused_pragma: Mutex<String>,
    /// The last prepare needs this very connection: it attaches, detaches,
    /// runs a pragma, reads another schema than `main`, or calls a function
    /// of the connection's state.
    needs_this_connection: AtomicBool,
    /// This connection created something other connections cannot see (a
    /// `TEMP` object, an attached database): sticky.
    has_private_state: AtomicBool,
    /// Set while a statement's footprint is recorded.
    recording: AtomicBool,
    /// What the statement being recorded reads and writes.
    footprint: Mutex<Footprint>,
    /// The user's own authorizer, asked after driftwood's checks.
    user: Mutex<Option<UserAuthorizer>>,
    /// The restriction of the remote request running now (0: none).
    restriction: AtomicU8,
    /// Why the guard refused something a remote request tried.
    refused_remotely: Mutex<Option<String>>,
}

/// An authorizer a user adds with `Connection::set_authorizer`.
pub(crate) type UserAuthorizer = Box<dyn FnMut(AuthContext<'_>) -> Authorization + Send>;

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("has_private_state", &self.has_private_state)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Installs `guard` as `raw`'s authorizer (again, after user code may
    /// have replaced it).
    pub(crate) fn install(
        guard: &Arc<Guard>,
        raw: &mut rusqlite::Connection,
    ) -> rusqlite::Result<()> {
        let seen = guard.clone();
        raw.authorizer(Some(move |context: AuthContext<'_>| {
            seen.authorize(context)
        }))
    }

    /// Adds (or, with `None`, removes) the user's own authorizer.
    pub(crate) fn set_user(&self, user: Option<UserAuthorizer>) {
        *self.user.lock().unwrap_or_else(PoisonError::into_inner) = user;
    }

    fn authorize(&self, context: AuthContext<'_>) -> Authorization {
        let verdict = self.judge(&context);
        let controls = matches!(
            context.action,
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. }
        );
        if verdict != Authorization::Allow || controls {
            return verdict;
        }
        match self
            .user
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(user) => user(context),
            None => verdict,
        }
    }

    /// driftwood's own verdict, noting what the statement needs.
    fn judge(&self, context: &AuthContext<'_>) -> Authorization {
        if self.restriction().is_some()
            && let Some(reason) = policy::refusal(&context.action)
        {
            *self
                .refused_remotely
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(reason);
            return Authorization::Deny;
        }
        if !self.preparing.load(Ordering::Relaxed) {
            return Authorization::Allow;
        }
        if self.recording.load(Ordering::Relaxed) {
            self.footprint
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .note(&context.action, context.accessor);
        }
        match context.action {
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
                self.refused_control.store(true, Ordering::Relaxed);
                return Authorization::Deny;
            }
            AuthAction::Pragma { pragma_name, .. }
                if super::encryption::is_key_pragma(pragma_name) =>
            {
                *self
                    .refused_pragma
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = pragma_name.to_ascii_lowercase();
                self.refused_key.store(true, Ordering::Relaxed);
                return Authorization::Deny;
            }
            AuthAction::Attach { .. }
            | AuthAction::CreateTempTable { .. }
            | AuthAction::CreateTempView { .. }
            | AuthAction::CreateTempIndex { .. }
            | AuthAction::CreateTempTrigger { .. } => {
                self.has_private_state.store(true, Ordering::Relaxed);
                self.needs_this_connection.store(true, Ordering::Relaxed);
            }
            AuthAction::Detach { .. } | AuthAction::Pragma { .. } => {
                self.needs_this_connection.store(true, Ordering::Relaxed);
            }
            AuthAction::Function { function_name }
                if CONNECTION_STATE_FUNCTIONS
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(function_name)) =>
            {
                self.needs_this_connection.store(true, Ordering::Relaxed);
            }
            AuthAction::Read { .. } if context.database_name.is_some_and(|db| db != "main") => {
                self.needs_this_connection.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
        Authorization::Allow
    }

    /// Prepares user SQL with `prepare`, judged by the guard; says whether
    /// the prepare was refused for controlling a transaction.
    pub(crate) fn preparing<R>(&self, prepare: impl FnOnce() -> R) -> (R, bool) {
        self.refused_control.store(false, Ordering::Relaxed);
        self.refused_key.store(false, Ordering::Relaxed);
        self.needs_this_connection.store(false, Ordering::Relaxed);
        self.preparing.store(true, Ordering::Relaxed);
        let result = prepare();
        self.preparing.store(false, Ordering::Relaxed);
        (result, self.refused_control.load(Ordering::Relaxed))
    }

    /// [`Guard::preparing`], recording what the statement reads and writes.
    pub(crate) fn recording<R>(&self, prepare: impl FnOnce() -> R) -> (R, Footprint) {
        self.recording.store(true, Ordering::Relaxed);
        let (result, _) = self.preparing(prepare);
        self.recording.store(false, Ordering::Relaxed);
        let footprint = std::mem::take(
            &mut *self
                .footprint
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        (result, footprint)
    }

    /// Whether the statement prepared last needs this very connection.
    pub(crate) fn needs_this_connection(&self) -> bool {
        self.needs_this_connection.load(Ordering::Relaxed)
    }

    /// Runs `work` judging everything against `restriction` (see
    /// [`policy`]), then goes back to the restriction before.
    pub(crate) fn restricted<R>(&self, restriction: Restriction, work: impl FnOnce() -> R) -> R {
        let code = match restriction {
            Restriction::Remote => 1,
            Restriction::RemoteReadOnly => 2,
            Restriction::RemoteRead => 3,
        };
        let before = self.restriction.swap(code, Ordering::Relaxed);
        let result = work();
        self.restriction.store(before, Ordering::Relaxed);
        result
    }

    /// The restriction in force, if a remote request runs.
    #[inline]
    pub(crate) fn restriction(&self) -> Option<Restriction> {
        match self.restriction.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(Restriction::Remote),
            2 => Some(Restriction::RemoteReadOnly),
            _ => Some(Restriction::RemoteRead),
        }
    }

    /// Why the guard refused what a remote request tried, if it did since
    /// the last call.
    pub(crate) fn take_remote_refusal(&self) -> Option<String> {
        self.refused_remotely
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether this connection holds objects no other connection sees.
    pub(crate) fn has_private_state(&self) -> bool {
        self.has_private_state.load(Ordering::Relaxed)
    }

    /// Marks this connection as one no other can stand in for (after a
    /// re-key, other connections hold the old key): sticky.
    pub(crate) fn set_private_state(&self) {
        self.has_private_state.store(true, Ordering::Relaxed);
    }

    /// The key pragma the last prepare was refused for, if it was.
    pub(crate) fn refused_key(&self) -> Option<String> {
        if !self.refused_key.load(Ordering::Relaxed) {
            return None;
        }
        let pragma = self.refused_pragma.lock();
        Some(pragma.unwrap_or_else(PoisonError::into_inner).clone())
    }
}
