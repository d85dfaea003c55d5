//! What a statement from a remote client may do: the policy the authorizer
//! enforces while a connection runs a request that came over the wire.
//!
//! Remote clients send raw SQL, so a served database refuses everything
//! that reaches beyond its rows and schema: attaching or detaching
//! databases (which `VACUUM INTO` does while it runs), loading extensions,
//! and pragmas other than the ones that only report. A read-only server
//! refuses every write on top. The decision is taken on every run, for the
//! client the request came from: a statement prepared and cached for one
//! client is checked again, through its footprint, when another runs it,
//! and whatever SQLite authorizes while the statement runs is judged
//! against the restriction in force right then.

use rusqlite::hooks::AuthAction;

/// Who the statement a connection runs now came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restriction {
    /// A remote client of a server that accepts writes.
    Remote,
    /// A remote client of a read-only server.
    RemoteReadOnly,
    /// A remote request sent as a plain read (`read` true, which lets a
    /// reader connection answer it, or several answer from one snapshot):
    /// it may not write either.
    RemoteRead,
}

impl Restriction {
    /// Why a statement that writes is refused under this restriction, if
    /// it is.
    pub(crate) fn refuses_writes(self) -> Option<&'static str> {
        match self {
            Restriction::Remote => None,
            Restriction::RemoteReadOnly => Some("this server is read-only"),
            Restriction::RemoteRead => Some(
                "the request was sent as a read (`read`: true), but this statement writes: send it with `read` false",
            ),
        }
    }
}

/// Pragmas a remote client may run with an argument: they only report on
/// the table or index named.
const REPORTING_PRAGMAS_WITH_ARGUMENT: [&str; 9] = [
    "table_info",
    "table_xinfo",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
];

/// Pragmas a remote client may read (without a value: with one, they set).
const READABLE_PRAGMAS: [&str; 17] = [
    "user_version",
    "schema_version",
    "application_id",
    "data_version",
    "page_count",
    "page_size",
    "freelist_count",
    "journal_mode",
    "foreign_keys",
    "query_only",
    "encoding",
    "compile_options",
    "function_list",
    "pragma_list",
    "collation_list",
    "module_list",
    "table_list",
];

/// Why a remote client may not do `action`, or `None` if it may.
pub(crate) fn refusal(action: &AuthAction<'_>) -> Option<String> {
    match *action {
        AuthAction::Attach { .. } => Some("remote clients may not attach databases".into()),
        // A TEMP object lives on the server's shared connection, outlives
        // the client and shadows `main` for every other client.
        AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTrigger { .. } => Some(
            "remote clients may not create TEMP objects (they would live on the server's shared connection, for every client)".into(),
        ),
        AuthAction::Detach { .. } => Some("remote clients may not detach databases".into()),
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            Some("remote clients may not load extensions".into())
        }
        // Refused for everyone, without the statement (it holds a key).
        AuthAction::Pragma { pragma_name, .. } if super::encryption::is_key_pragma(pragma_name) => {
            None
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let named = |list: &[&str]| list.iter().any(|p| p.eq_ignore_ascii_case(pragma_name));
            let allowed = named(&REPORTING_PRAGMAS_WITH_ARGUMENT)
                || (pragma_value.is_none() && named(&READABLE_PRAGMAS));
            let with_value = if pragma_value.is_some() {
                " with a value"
            } else {
                ""
            };
            (!allowed).then(|| {
                format!(
                    "remote clients may not run `PRAGMA {pragma_name}`{with_value}: only pragmas that report are allowed"
                )
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reporting_pragmas_pass_and_the_rest_are_refused() {
        let pragma = |name, value| AuthAction::Pragma {
            pragma_name: name,
            pragma_value: value,
        };
        assert_eq!(refusal(&pragma("table_info", Some("todos"))), None);
        assert_eq!(refusal(&pragma("USER_VERSION", None)), None);
        assert_eq!(
            refusal(&pragma("user_version", Some("7"))).unwrap(),
            "remote clients may not run `PRAGMA user_version` with a value: only pragmas that report are allowed"
        );
        assert_eq!(
            refusal(&pragma("wal_checkpoint", None)).unwrap(),
            "remote clients may not run `PRAGMA wal_checkpoint`: only pragmas that report are allowed"
        );
        assert!(
            refusal(&AuthAction::Function {
                function_name: "LOAD_EXTENSION"
            })
            .is_some()
        );
        assert_eq!(
            refusal(&AuthAction::Function {
                function_name: "abs"
            }),
            None
        );
    }
}
