//! Where a schema comes from on the command line: an SQLite file (opened
//! read-only, so reading never changes it), a snapshot (`.json`) or a file
//! of `CREATE` statements (`.sql`).

use std::path::Path;

use driftwood::prelude::*;
use driftwood::schema::Snapshot;
use driftwood::sqlite::Connection;

/// The schema `path` holds or describes.
pub fn schema(path: &Path) -> Result<Schema> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Ok(Snapshot::read_from(path)?.schema),
        Some("sql") => {
            let sql = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid_argument(format!("cannot read {}: {e}", path.display()))
            })?;
            let conn = Connection::open_in_memory(&OpenOptions::default())?;
            conn.raw()
                .execute_batch(&sql)
                .map_err(|e| Error::invalid_argument(format!("{}: {e}", path.display())))?;
            conn.read_schema()
        }
        _ => read_only(path)?.read_schema(),
    }
}

/// `path`, an existing SQLite file, opened read-only.
pub fn read_only(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(Error::invalid_argument(format!(
            "{} does not exist",
            path.display()
        )));
    }
    Connection::open(path, &OpenOptions::default().read_only(true))
}
