//! Turns `rusqlite` errors into driftwood's [`Error`], classifying
//! constraint violations and naming the statement.

use rusqlite::ffi;

use crate::error::{ConstraintKind, Error};

/// Converts an error SQLite raised while running `sql`.
pub(crate) fn from_rusqlite(err: rusqlite::Error, sql: &str) -> Error {
    if let rusqlite::Error::SqlInputError { error, msg, .. } = &err {
        return Error::Sql {
            code: Some(error.extended_code),
            message: msg.clone(),
            sql: sql.to_owned(),
        };
    }
    let rusqlite::Error::SqliteFailure(failure, message) = &err else {
        return Error::Sql {
            code: None,
            message: err.to_string(),
            sql: sql.to_owned(),
        };
    };
    let message = message.clone().unwrap_or_else(|| failure.to_string());
    if failure.code == rusqlite::ErrorCode::OperationInterrupted {
        return Error::Interrupted {
            sql: sql.to_owned(),
        };
    }
    if failure.code != rusqlite::ErrorCode::ConstraintViolation {
        return Error::Sql {
            code: Some(failure.extended_code),
            message,
            sql: sql.to_owned(),
        };
    }
    let kind = match failure.extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE => ConstraintKind::Unique,
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_ROWID => {
            ConstraintKind::PrimaryKey
        }
        ffi::SQLITE_CONSTRAINT_NOTNULL => ConstraintKind::NotNull,
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ConstraintKind::ForeignKey,
        ffi::SQLITE_CONSTRAINT_CHECK => ConstraintKind::Check,
        _ => ConstraintKind::Other,
    };
    let (table, column) = constraint_target(kind, &message);
    let table = table.or_else(|| written_table(sql));
    Error::Constraint {
        kind,
        table,
        column,
        message,
        sql: sql.to_owned(),
    }
}

/// Extracts the table and column SQLite names in a constraint message:
/// `UNIQUE constraint failed: todos.title` names both; a failed `CHECK`
/// names the expression, whose first quoted identifier is taken as the column.
fn constraint_target(kind: ConstraintKind, message: &str) -> (Option<String>, Option<String>) {
    let Some((_, detail)) = message.split_once("constraint failed: ") else {
        return (None, None);
    };
    match kind {
        ConstraintKind::Unique | ConstraintKind::PrimaryKey | ConstraintKind::NotNull => {
            // Composite keys list every column: `t.a, t.b`; keep the first.
            let first = detail.split(", ").next().unwrap_or(detail);
            match first.split_once('.') {
                Some((table, column)) => (Some(table.to_owned()), Some(column.to_owned())),
                None => (None, Some(first.to_owned())),
            }
        }
        ConstraintKind::Check => {
            // A bare name is the constraint's (SQLite names column checks
            // after their column); an expression names it in quotes.
            let bare = detail.chars().all(|c| c.is_alphanumeric() || c == '_');
            let column = if bare {
                Some(detail)
            } else {
                detail.split('"').nth(1).filter(|c| !c.is_empty())
            };
            (None, column.map(str::to_owned))
        }
        _ => (None, None),
    }
}

/// The table an `INSERT`, `UPDATE` or `DELETE` writes, when it is quoted the
/// way driftwood writes it (`INSERT INTO "todos" …`).
fn written_table(sql: &str) -> Option<String> {
    let start = sql.find('"')?;
    let head = sql[..start].trim_end().to_ascii_uppercase();
    let writes = head.ends_with(" INTO")
        || head == "UPDATE"
        || head.starts_with("UPDATE OR")
        || head == "DELETE FROM";
    if !writes {
        return None;
    }
    let rest = &sql[start + 1..];
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '"' {
            if chars.peek() != Some(&'"') {
                return Some(name);
            }
            chars.next();
        }
        name.push(ch);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_come_from_the_message() {
        let t = constraint_target(
            ConstraintKind::Unique,
            "UNIQUE constraint failed: todos.title, todos.body",
        );
        assert_eq!(t, (Some("todos".into()), Some("title".into())));
        let t = constraint_target(
            ConstraintKind::Check,
            "CHECK constraint failed: length(\"title\") BETWEEN 6 AND 10",
        );
        assert_eq!(t, (None, Some("title".into())));
        assert_eq!(
            constraint_target(ConstraintKind::ForeignKey, "FOREIGN KEY constraint failed"),
            (None, None)
        );
        assert_eq!(
            written_table("INSERT OR IGNORE INTO \"to\"\"dos\" (\"a\") VALUES (?)").as_deref(),
            Some("to\"dos")
        );
        assert_eq!(
            written_table("UPDATE \"todos\" SET \"a\" = ?").as_deref(),
            Some("todos")
        );
        assert_eq!(written_table("SELECT \"a\" FROM \"t\""), None);
    }
}
