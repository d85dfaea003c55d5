//! What the load binaries (`server_load`, `watch_load`) share: the table,
//! the database, percentiles, a scratch directory and the JSON report.

use driftwood::prelude::*;

/// The benchmark's table.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "users")]
pub struct User {
    #[column(primary_key)]
    pub id: i64,
    pub name: String,
    pub hair_color: Option<String>,
}

/// The benchmark's database.
pub struct AppDb;

impl Database for AppDb {
    const SCHEMA_VERSION: u32 = 1;
    fn schema() -> Schema {
        schema![User]
    }
}

/// The `p` quantile of `sorted` nanoseconds, in µs.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

/// A fresh directory under the system's temporary directory.
pub fn scratch_dir(name: &str) -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("driftwood-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::invalid_argument(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Writes `figures` as JSON to `target/bench/<file>`.
pub fn write_report(file: &str, figures: &impl serde::Serialize) -> Result<()> {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench")
        .join(file);
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let json = serde_json::to_string_pretty(figures)
        .map_err(|e| Error::invalid_argument(e.to_string()))?;
    std::fs::write(&out, json)
        .map_err(|e| Error::invalid_argument(format!("writing {}: {e}", out.display())))?;
    println!("wrote {}", out.display());
    Ok(())
}
