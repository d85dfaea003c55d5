//! The foreign-key check that ends every migration, table by table.
//!
//! `PRAGMA foreign_key_check` over the whole database fails outright
//! ("foreign key mismatch") as soon as one foreign key points at columns
//! that are not a key, which real apps ship. So each table is checked on
//! its own; a table SQLite cannot check gets a query of driftwood's own
//! per foreign key, whose findings are warnings, while violations SQLite
//! reports abort the migration with the offending rows listed.

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::executor::Runner;
use crate::row::OwnedRow;
use crate::schema::sql::{quote_ident, quote_text};
use crate::types::SqlValue;

/// How many violating rows an error lists.
const LISTED: usize = 20;

/// Checks every table's foreign keys: `Err(Error::Schema)` listing the
/// violations SQLite finds; otherwise the warnings about keys SQLite cannot
/// check.
pub(crate) fn foreign_keys(conn: &Conn<'_>) -> Result<Vec<String>> {
    foreign_keys_of(conn, &tables(conn)?)
}

/// [`foreign_keys`] for these tables only.
pub(crate) fn foreign_keys_of(conn: &Conn<'_>, tables: &[String]) -> Result<Vec<String>> {
    let mut violations = Vec::new();
    let mut total = 0usize;
    let mut warnings = Vec::new();
    for table in tables {
        let sql = format!(
            "SELECT rowid, parent, fkid FROM pragma_foreign_key_check({})",
            quote_text(table)
        );
        match conn.custom_select(sql, []) {
            Ok(found) => {
                total += found.len();
                for row in found.iter().take(LISTED.saturating_sub(violations.len())) {
                    let which = match row.get::<Option<i64>>(0)? {
                        Some(id) => format!("rowid {id}"),
                        None => "a row".to_owned(),
                    };
                    let parent = row.get::<String>(1)?;
                    let fkid = row.get::<i64>(2)?;
                    violations.push(format!(
                        "{table} {which} points at no row of {parent} (foreign key {fkid})"
                    ));
                }
            }
            Err(error) if error.to_string().contains("foreign key mismatch") => {
                let checked = own_check(conn, table)?;
                warnings.extend(checked.warnings);
                total += checked.violating_rows;
                let room = LISTED.saturating_sub(violations.len());
                violations.extend(checked.violations.into_iter().take(room));
            }
            Err(error) => return Err(error),
        }
    }
    if total == 0 {
        return Ok(warnings);
    }
    let more = if total > violations.len() {
        format!("\n… and {} more", total - violations.len())
    } else {
        String::new()
    };
    Err(Error::Schema {
        message: format!(
            "foreign_key_check found {total} violation(s):\n{}{more}",
            violations.join("\n")
        ),
    })
}

/// The ordinary tables of the main schema.
pub(crate) fn tables(conn: &Conn<'_>) -> Result<Vec<String>> {
    let sql = "SELECT name FROM sqlite_schema WHERE type = 'table' \
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%' \
               ORDER BY rowid";
    strings(&conn.custom_select(sql, [])?)
}

/// The first column of every row, as text.
pub(crate) fn strings(rows: &[OwnedRow]) -> Result<Vec<String>> {
    rows.iter().map(|row| row.get::<String>(0)).collect()
}

/// What driftwood's own check of a table SQLite refuses to check found.
struct OwnCheck {
    /// Keys SQLite could have checked (their parent has the key) that
    /// rows break: as real violations as SQLite's, the first rows listed.
    violations: Vec<String>,
    /// How many rows break them.
    violating_rows: usize,
    /// Keys SQLite cannot check at all, with the rows they leave orphaned.
    warnings: Vec<String>,
}

/// Checks every foreign key of `table` with a query of driftwood's own,
/// since one key SQLite cannot check ("foreign key mismatch") makes it
/// refuse the whole table.
fn own_check(conn: &Conn<'_>, table: &str) -> Result<OwnCheck> {
    let sql =
        "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq";
    let rows = conn.custom_select(sql, [SqlValue::Text(table.to_owned())])?;
    let rows: Vec<(i64, String, String, Option<String>)> = rows
        .iter()
        .map(|row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .collect::<Result<_>>()?;
    let mut found = OwnCheck {
        violations: Vec::new(),
        violating_rows: 0,
        warnings: Vec::new(),
    };
    let mut start = 0;
    while start < rows.len() {
        let id = rows[start].0;
        let end = rows[start..]
            .iter()
            .position(|row| row.0 != id)
            .map_or(rows.len(), |n| start + n);
        let key = &rows[start..end];
        start = end;
        let parent = &key[0].1;
        let from: Vec<&str> = key.iter().map(|row| row.2.as_str()).collect();
        // `REFERENCES parent` without columns means its primary key.
        let to = match key
            .iter()
            .map(|row| row.3.clone())
            .collect::<Option<Vec<String>>>()
        {
            Some(to) => to,
            None => primary_key(conn, parent)?,
        };
        if to.len() != from.len() {
            found.warnings.push(format!(
                "foreign key {table}({}) → {parent} cannot be checked by SQLite (foreign key \
                 mismatch: {parent} has no primary key to point at)",
                from.join(", ")
            ));
            continue;
        }
        let orphans = orphans(conn, table, parent, &from, &to)?;
        if parent_has_key(conn, parent, &to)? {
            // A key SQLite could check: its orphans are violations, listed
            // as SQLite lists them.
            found.violating_rows += usize::try_from(orphans.count).unwrap_or(0);
            found.violations.extend(orphans.rowids.iter().map(|rowid| {
                let which = rowid.map_or("a row".to_owned(), |id| format!("rowid {id}"));
                format!("{table} {which} points at no row of {parent} (foreign key {id})")
            }));
            continue;
        }
        let orphans = orphans.count;
        found.warnings.push(format!(
            "foreign key {table}({}) → {parent}({}) cannot be checked by SQLite (foreign key \
             mismatch: those columns are not a primary key or unique); {orphans} row(s) point \
             at no row of {parent}",
            from.join(", "),
            to.join(", "),
        ));
    }
    Ok(found)
}

/// The primary key columns of `table`, in key order.
fn primary_key(conn: &Conn<'_>, table: &str) -> Result<Vec<String>> {
    strings(&conn.custom_select(
        "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
        [SqlValue::Text(table.to_owned())],
    )?)
}

/// Whether `columns` of `parent` are its primary key or covered by a
/// unique index, so SQLite can check keys pointing there.
fn parent_has_key(conn: &Conn<'_>, parent: &str, columns: &[String]) -> Result<bool> {
    let mut wanted: Vec<String> = columns.iter().map(|c| c.to_ascii_lowercase()).collect();
    wanted.sort();
    let sql = "SELECT group_concat(lower(name), ',') FROM (SELECT name FROM pragma_table_info(?1) \
               WHERE pk > 0 ORDER BY name) \
               UNION ALL SELECT (SELECT group_concat(lower(name), ',') FROM (SELECT ii.name FROM \
               pragma_index_info(il.name) ii ORDER BY ii.name)) FROM pragma_index_list(?1) il \
               WHERE il.\"unique\" AND NOT il.partial";
    let keys: Vec<Option<String>> = conn
        .custom_select(sql, [SqlValue::Text(parent.to_owned())])?
        .iter()
        .map(|row| row.get(0))
        .collect::<Result<_>>()?;
    let wanted = wanted.join(",");
    Ok(keys.into_iter().flatten().any(|key| key == wanted))
}

/// The rows of `table` that have every column of `from` set and match no
/// row of `parent` on `to`: how many, and the rowids of the first
/// [`LISTED`] (`None` each for a `WITHOUT ROWID` table).
struct Orphans {
    count: i64,
    rowids: Vec<Option<i64>>,
}

fn orphans(
    conn: &Conn<'_>,
    table: &str,
    parent: &str,
    from: &[&str],
    to: &[String],
) -> Result<Orphans> {
    let set = from
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let matches = from
        .iter()
        .zip(to)
        .map(|(f, t)| format!("p.{} = c.{}", quote_ident(t), quote_ident(f)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let rows = format!(
        "FROM {} AS c WHERE {set} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {matches})",
        quote_ident(table),
        quote_ident(parent)
    );
    let count: i64 = conn.custom_select(format!("SELECT count(*) {rows}"), [])?[0].get(0)?;
    let rowids = match conn.custom_select(format!("SELECT c.rowid {rows} LIMIT {LISTED}"), []) {
        Ok(found) => found.iter().map(|row| row.get(0)).collect::<Result<_>>()?,
        Err(_) => vec![None; usize::try_from(count.min(LISTED as i64)).unwrap_or(0)],
    };
    Ok(Orphans { count, rowids })
}
