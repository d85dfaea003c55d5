//! Versioned JSON snapshots of a schema: the serialized form of [`Schema`]
//! that `driftwood schema dump` writes and schema tests read, one file per
//! schema version (`driftwood_schema_v{N}.json`) in a folder.
//!
//! The document is `{ "format": "driftwood-schema", "format_version": 1,
//! "schema_version": N, "entities": [ … ] }`, written pretty-printed in a
//! fixed field order so the same schema always gives the same bytes and
//! snapshot files diff well. `docs/schema-snapshots.md` describes every field
//! and the versioning policy.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::{Entity, Schema};
use crate::error::{Error, Result};

/// The value of a snapshot's `format` field.
pub const FORMAT: &str = "driftwood-schema";

/// The newest `format_version` this version of driftwood writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A schema at one version of an application: what a snapshot file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The application's schema version (`Database::SCHEMA_VERSION`), not
    /// the version of the file format.
    pub schema_version: u32,
    /// The schema itself.
    pub schema: Schema,
}

/// The document as written.
#[derive(Serialize)]
struct DocumentOut<'a> {
    format: &'static str,
    format_version: u32,
    schema_version: u32,
    entities: &'a [Entity],
    checksum: String,
}

/// The document as read, once `format` and `format_version` are checked;
/// fields it does not name are ignored.
#[derive(Deserialize)]
struct DocumentIn {
    schema_version: u32,
    entities: Vec<Entity>,
    #[serde(default)]
    checksum: Option<String>,
}

/// Writes `text` to `path` through a temporary file renamed into place, so
/// a reader never sees a half-written file; creates the folder if needed.
pub(crate) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    fs::write(&temporary, text)?;
    fs::rename(&temporary, path).inspect_err(|_| {
        let _ = fs::remove_file(&temporary);
    })
}

/// The checksum written with a snapshot: FNV-1a (64 bits) of its schema
/// version and its entities' compact JSON, so an edit that changes what
/// the file means is noticed when it is read (whitespace and field order
/// do not count).
fn checksum(schema_version: u32, entities: &[Entity]) -> String {
    let json = serde_json::to_string(entities).expect("a schema always serializes to JSON");
    let text = format!("{schema_version}:{json}");
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

impl Snapshot {
    /// A snapshot of `schema` at `schema_version`.
    pub fn new(schema_version: u32, schema: Schema) -> Self {
        Snapshot {
            schema_version,
            schema,
        }
    }

    /// The snapshot as pretty-printed JSON ending in a newline. The output
    /// depends only on the snapshot: fields in a fixed order, entities in
    /// the schema's order, optional fields left out when empty or false.
    pub fn to_json(&self) -> String {
        let document = DocumentOut {
            format: FORMAT,
            format_version: FORMAT_VERSION,
            schema_version: self.schema_version,
            entities: &self.schema.entities,
            checksum: checksum(self.schema_version, &self.schema.entities),
        };
        // The model holds only strings, numbers, booleans, lists and structs,
        // which serde_json always serializes.
        let mut json = serde_json::to_string_pretty(&document)
            .expect("a schema snapshot always serializes to JSON");
        json.push('\n');
        json
    }

    /// Reads a snapshot from JSON, checking its `format` and
    /// `format_version` first.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] when the text is not JSON, is not a driftwood
    /// schema snapshot, has a `format_version` newer than
    /// [`FORMAT_VERSION`], or does not match the format.
    pub fn from_json(json: &str) -> Result<Snapshot> {
        parse(json).map_err(Error::schema)
    }

    /// Writes the snapshot to `path`, creating its folder if needed.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] naming the path when the file cannot be written.
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let fail = |e: std::io::Error| {
            Error::schema(format!(
                "cannot write schema snapshot {}: {e}",
                path.display()
            ))
        };
        write_atomically(path, &self.to_json()).map_err(fail)
    }

    /// Reads the snapshot file at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] naming the path when the file cannot be read or is
    /// not a valid snapshot (see [`Snapshot::from_json`]).
    pub fn read_from(path: impl AsRef<Path>) -> Result<Snapshot> {
        let path = path.as_ref();
        let fail = |message: String| {
            Error::schema(format!(
                "cannot read schema snapshot {}: {message}",
                path.display()
            ))
        };
        let json = fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        parse(&json).map_err(fail)
    }

    /// The file name of the snapshot of `schema_version` in a snapshot
    /// folder: `driftwood_schema_v3.json`.
    pub fn file_name(schema_version: u32) -> String {
        format!("driftwood_schema_v{schema_version}.json")
    }

    /// The schema version a snapshot file name stands for, if it is one
    /// (exactly as [`Snapshot::file_name`] writes it: `…_v03.json` is not).
    pub fn version_of_file_name(name: &str) -> Option<u32> {
        let digits = name
            .strip_prefix("driftwood_schema_v")?
            .strip_suffix(".json")?;
        let version: u32 = digits.parse().ok()?;
        if Snapshot::file_name(version) != name {
            return None;
        }
        Some(version)
    }

    /// The path of the snapshot of `schema_version` in the folder `dir`.
    pub fn path_in(dir: impl AsRef<Path>, schema_version: u32) -> PathBuf {
        dir.as_ref().join(Snapshot::file_name(schema_version))
    }

    /// Writes the snapshot into the folder `dir` under its conventional
    /// name, creating the folder if needed, and returns the file's path.
    ///
    /// # Errors
    ///
    /// As [`Snapshot::write_to`].
    pub fn write_in(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        let path = Snapshot::path_in(dir, self.schema_version);
        self.write_to(&path)?;
        Ok(path)
    }

    /// Reads the snapshot of `schema_version` from the folder `dir`.
    ///
    /// # Errors
    ///
    /// As [`Snapshot::read_from`], and [`Error::Schema`] when the file holds
    /// another schema version than its name says.
    pub fn read_in(dir: impl AsRef<Path>, schema_version: u32) -> Result<Snapshot> {
        let path = Snapshot::path_in(dir, schema_version);
        let snapshot = Snapshot::read_from(&path)?;
        if snapshot.schema_version != schema_version {
            return Err(Error::schema(format!(
                "schema snapshot {} holds schema_version {}, expected {schema_version}",
                path.display(),
                snapshot.schema_version
            )));
        }
        Ok(snapshot)
    }

    /// The schema versions that have a snapshot file in the folder `dir`,
    /// ascending. Other files are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] naming the folder when it cannot be listed.
    pub fn versions_in(dir: impl AsRef<Path>) -> Result<Vec<u32>> {
        let dir = dir.as_ref();
        let fail = |e: std::io::Error| {
            Error::schema(format!(
                "cannot list schema snapshots in {}: {e}",
                dir.display()
            ))
        };
        let mut versions = Vec::new();
        for entry in fs::read_dir(dir).map_err(fail)? {
            let entry = entry.map_err(fail)?;
            let version = entry
                .file_name()
                .to_str()
                .and_then(Snapshot::version_of_file_name);
            if let Some(version) = version {
                versions.push(version);
            }
        }
        versions.sort_unstable();
        Ok(versions)
    }
}

/// Parses a snapshot document; the error is the message for [`Error::Schema`].
fn parse(json: &str) -> std::result::Result<Snapshot, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("invalid schema snapshot: {e}"))?;
    let Some(fields) = value.as_object() else {
        return Err("invalid schema snapshot: expected a JSON object".to_owned());
    };
    match fields.get("format") {
        None => {
            return Err(
                "not a driftwood schema snapshot: the \"format\" field is missing".to_owned(),
            );
        }
        Some(serde_json::Value::String(format)) if format == FORMAT => {}
        Some(other) => {
            return Err(format!(
                "unknown snapshot format {other}, expected \"{FORMAT}\""
            ));
        }
    }
    let Some(found) = fields.get("format_version") else {
        return Err("invalid schema snapshot: the \"format_version\" field is missing".to_owned());
    };
    match found.as_u64() {
        Some(version) if version > u64::from(FORMAT_VERSION) => {
            return Err(format!(
                "snapshot format_version {version} is newer than this version of driftwood supports \
                 (format_version {FORMAT_VERSION}); upgrade driftwood to read it"
            ));
        }
        Some(version) if version >= 1 => {}
        _ => {
            return Err(format!(
                "unsupported snapshot format_version {found}, expected {FORMAT_VERSION}"
            ));
        }
    }
    let document: DocumentIn =
        serde_json::from_str(json).map_err(|e| format!("invalid schema snapshot: {e}"))?;
    if let Some(written) = &document.checksum
        && *written != checksum(document.schema_version, &document.entities)
    {
        return Err(format!(
            "the snapshot of schema version {} was changed by hand after it was written (its \
             checksum {written} no longer matches its entities): a released version's schema \
             cannot change — restore the file from version control, or delete it and write it \
             again if that version was never released",
            document.schema_version
        ));
    }
    Ok(Snapshot {
        schema_version: document.schema_version,
        schema: Schema {
            entities: document.entities,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, FkAction, Index, IndexColumn, LengthLimit, Reference, Table};
    use crate::types::SqlType;

    /// The two-table schema of `docs/schema-snapshots.md`.
    fn example() -> Snapshot {
        let mut id = Column::new("id", SqlType::Integer);
        id.primary_key = true;
        id.auto_increment = true;
        let mut name = Column::new("name", SqlType::Text);
        name.unique = true;
        let categories = Table {
            name: "categories".into(),
            columns: vec![id.clone(), name],
            ..Default::default()
        };
        let mut title = Column::new("title", SqlType::Text);
        title.length = Some(LengthLimit {
            min: Some(6),
            max: Some(10),
        });
        let mut done = Column::new("done", SqlType::Integer);
        done.default = Some("0".into());
        done.checks.push("\"done\" IN (0, 1)".into());
        let mut category = Column::new("category", SqlType::Integer);
        category.nullable = true;
        category.references = Some(Reference {
            table: "categories".into(),
            column: "id".into(),
            on_delete: FkAction::SetNull,
            on_update: FkAction::NoAction,
        });
        let todos = Table {
            name: "todos".into(),
            columns: vec![id, title, done, category],
            ..Default::default()
        };
        let index = Index {
            name: "todos_by_category".into(),
            table: "todos".into(),
            unique: false,
            columns: vec![IndexColumn::Column {
                name: "category".into(),
                descending: false,
            }],
            where_clause: Some("\"done\" = 0".into()),
        };
        Snapshot::new(
            3,
            Schema::new([
                Entity::Table(categories),
                Entity::Table(todos),
                Entity::Index(index),
            ]),
        )
    }

    const EXAMPLE_JSON: &str = r#"{
  "format": "driftwood-schema",
  "format_version": 1,
  "schema_version": 3,
  "entities": [
    {
      "kind": "table",
      "name": "categories",
      "columns": [
        {
          "name": "id",
          "sql_type": "integer",
          "nullable": false,
          "primary_key": true,
          "auto_increment": true
        },
        {
          "name": "name",
          "sql_type": "text",
          "nullable": false,
          "unique": true
        }
      ]
    },
    {
      "kind": "table",
      "name": "todos",
      "columns": [
        {
          "name": "id",
          "sql_type": "integer",
          "nullable": false,
          "primary_key": true,
          "auto_increment": true
        },
        {
          "name": "title",
          "sql_type": "text",
          "nullable": false,
          "length": {
            "min": 6,
            "max": 10
          }
        },
        {
          "name": "done",
          "sql_type": "integer",
          "nullable": false,
          "default": "0",
          "checks": [
            "\"done\" IN (0, 1)"
          ]
        },
        {
          "name": "category",
          "sql_type": "integer",
          "nullable": true,
          "references": {
            "table": "categories",
            "column": "id",
            "on_delete": "set_null"
          }
        }
      ]
    },
    {
      "kind": "index",
      "name": "todos_by_category",
      "table": "todos",
      "columns": [
        {
          "column": {
            "name": "category"
          }
        }
      ],
      "where_clause": "\"done\" = 0"
    }
  ],
  "checksum": "f013abb49542aea6"
}
"#;

    fn rejection(json: &str) -> String {
        match Snapshot::from_json(json) {
            Ok(snapshot) => panic!("expected a rejection, read {snapshot:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn writes_the_documented_format() {
        assert_eq!(example().to_json(), EXAMPLE_JSON);
    }

    #[test]
    fn json_round_trips() -> Result<()> {
        let snapshot = example();
        assert_eq!(Snapshot::from_json(&snapshot.to_json())?, snapshot);
        assert_eq!(Snapshot::from_json(EXAMPLE_JSON)?, snapshot);
        Ok(())
    }

    #[test]
    fn a_snapshot_changed_by_hand_is_refused_naming_its_version() {
        let edited = EXAMPLE_JSON.replacen("\"max\": 10", "\"max\": 12", 1);
        let error = Snapshot::from_json(&edited).unwrap_err().to_string();
        assert!(
            error.starts_with(
                "schema error: the snapshot of schema version 3 was changed by hand after it was written"
            ),
            "{error}"
        );
        let reformatted = EXAMPLE_JSON.replace("\n    ", "\n  ");
        assert_eq!(
            Snapshot::from_json(&reformatted).unwrap(),
            example(),
            "whitespace is no change"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() -> Result<()> {
        let json = EXAMPLE_JSON.replacen(
            "\"schema_version\": 3,",
            "\"schema_version\": 3, \"generator\": \"x\",",
            1,
        );
        assert_eq!(Snapshot::from_json(&json)?, example());
        Ok(())
    }

    #[test]
    fn rejections_say_what_was_found_and_what_is_supported() {
        let cases = [
            (
                r#"{"format": "drift", "format_version": 1}"#,
                "unknown snapshot format \"drift\", expected \"driftwood-schema\"",
            ),
            (
                r#"{"format": 7, "format_version": 1}"#,
                "unknown snapshot format 7, expected \"driftwood-schema\"",
            ),
            (
                r#"{"format_version": 1}"#,
                "not a driftwood schema snapshot: the \"format\" field is missing",
            ),
            (
                r#"{"format": "driftwood-schema", "format_version": 2, "schema_version": 1, "entities": []}"#,
                "snapshot format_version 2 is newer than this version of driftwood supports (format_version 1); \
                 upgrade driftwood to read it",
            ),
            (
                r#"{"format": "driftwood-schema", "format_version": 0}"#,
                "unsupported snapshot format_version 0, expected 1",
            ),
            (
                r#"{"format": "driftwood-schema", "format_version": "1"}"#,
                "unsupported snapshot format_version \"1\", expected 1",
            ),
            (
                r#"{"format": "driftwood-schema"}"#,
                "invalid schema snapshot: the \"format_version\" field is missing",
            ),
            ("[1]", "invalid schema snapshot: expected a JSON object"),
            (
                "{",
                "invalid schema snapshot: EOF while parsing an object at line 1 column 1",
            ),
            (
                r#"{"format": "driftwood-schema", "format_version": 1, "entities": []}"#,
                "invalid schema snapshot: missing field `schema_version` at line 1 column 67",
            ),
            (
                r#"{"format": "driftwood-schema", "format_version": 1, "schema_version": 1, "entities": [{"kind": "sequence"}]}"#,
                "invalid schema snapshot: unknown variant `sequence`, expected one of `table`, `virtual_table`, \
                 `index`, `view`, `trigger` at line 1 column 105",
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(
                rejection(json),
                format!("schema error: {expected}"),
                "{json}"
            );
        }
    }

    #[test]
    fn file_names_follow_the_convention() {
        assert_eq!(Snapshot::file_name(12), "driftwood_schema_v12.json");
        assert_eq!(
            Snapshot::version_of_file_name("driftwood_schema_v12.json"),
            Some(12)
        );
        for other in [
            "driftwood_schema_v012.json",
            "driftwood_schema_v+1.json",
            "driftwood_schema_v.json",
            "v1.json",
        ] {
            assert_eq!(Snapshot::version_of_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_folder_of_snapshots() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::schema(e.to_string()))?;
        let folder = dir.path().join("schemas/app");
        let v3 = example();
        let v10 = Snapshot::new(10, Schema::default());
        assert_eq!(
            v3.write_in(&folder)?,
            folder.join("driftwood_schema_v3.json")
        );
        v10.write_in(&folder)?;
        v3.write_to(folder.join("driftwood_schema_v03.json"))?;
        fs::write(folder.join("notes.txt"), "not a snapshot")
            .map_err(|e| Error::schema(e.to_string()))?;
        assert_eq!(Snapshot::versions_in(&folder)?, [3, 10]);
        assert_eq!(Snapshot::read_in(&folder, 3)?, v3);
        assert_eq!(Snapshot::read_in(&folder, 10)?, v10);

        v3.write_to(Snapshot::path_in(&folder, 4))?;
        let mismatch = Snapshot::read_in(&folder, 4)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        let path = folder.join("driftwood_schema_v4.json");
        assert_eq!(
            mismatch,
            format!(
                "schema error: schema snapshot {} holds schema_version 3, expected 4",
                path.display()
            )
        );
        Ok(())
    }

    #[test]
    fn file_errors_carry_the_path() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::schema(e.to_string()))?;
        let missing = dir.path().join("nowhere");
        let err = Snapshot::versions_in(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "schema error: cannot list schema snapshots in {}: ",
                missing.display()
            )),
            "{err}"
        );
        let err = Snapshot::read_in(&missing, 1).unwrap_err().to_string();
        let path = missing.join("driftwood_schema_v1.json");
        assert!(
            err.starts_with(&format!(
                "schema error: cannot read schema snapshot {}: ",
                path.display()
            )),
            "{err}"
        );

        let bad = dir.path().join("bad.json");
        fs::write(
            &bad,
            r#"{"format": "driftwood-schema", "format_version": 9}"#,
        )
        .map_err(|e| Error::schema(e.to_string()))?;
        let err = Snapshot::read_from(&bad).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "schema error: cannot read schema snapshot {}: snapshot format_version 9 is newer than this version \
                 of driftwood supports (format_version 1); upgrade driftwood to read it",
                bad.display()
            )
        );

        let blocked = bad.join("child.json");
        let err = example().write_to(&blocked).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "schema error: cannot write schema snapshot {}: ",
                blocked.display()
            )),
            "{err}"
        );
        Ok(())
    }
}
