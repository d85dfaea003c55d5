// A schema round-trips: Rust definition → CREATE SQL → live database → schema read back → JSON snapshot → schema, equal at every step (property-tested over generated schemas).

use driftwood::schema::read::{SchemaRow, parse_schema};
use driftwood::schema::sql::{create_statement, quote_ident};
use driftwood::schema::{
    Column, Entity, FkAction, ForeignKey, Generated, Index, IndexColumn, LengthLimit, Reference,
    Schema, Snapshot, Table, Trigger, View, VirtualTable,
};
use driftwood::types::SqlType;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use rusqlite::Connection;

/// Column `DEFAULT` expressions, as the model stores them.
const DEFAULTS: [&str; 9] = [
    "0",
    "-1",
    "1.5",
    "'it''s'",
    "x'00ff'",
    "CURRENT_TIMESTAMP",
    "NULL",
    "1 + 2",
    "(1) * (2)",
];
/// Column checks; `{c}` is the quoted column.
const CHECKS: [&str; 3] = [
    "{c} IS NOT NULL OR 1",
    "typeof({c}) <> 'x, (y)'",
    "{c} <> ''",
];
/// Generated column expressions; `{c}` is the table's quoted first column.
const GENERATED: [&str; 3] = ["{c} IS NULL", "length({c})", "coalesce({c}, 'x') || 'y'"];
/// Custom constraint text.
const CUSTOM: [&str; 3] = ["COLLATE NOCASE", "COLLATE RTRIM", "COLLATE BINARY"];
/// FTS5 options, appended to the column list.
const FTS_OPTIONS: [&str; 4] = [
    "tokenize = 'porter ascii'",
    "prefix = '2 3'",
    "content = ''",
    "detail = none",
];

#[derive(Debug, Clone)]
struct ColumnPlan {
    base: String,
    sql_type: SqlType,
    nullable: bool,
    unique: bool,
    default: Option<usize>,
    checks: Vec<usize>,
    length: Option<LengthLimit>,
    custom: Option<usize>,
    reference: Option<(usize, FkAction, FkAction)>,
    generated: Option<(usize, bool)>,
}

#[derive(Debug, Clone, Copy)]
enum Key {
    None,
    Column,
    AutoIncrement,
    Composite,
}

#[derive(Debug, Clone)]
struct TablePlan {
    base: String,
    columns: Vec<ColumnPlan>,
    key: Key,
    unique_key: bool,
    check: bool,
    foreign_key: Option<(usize, FkAction, FkAction)>,
    without_rowid: bool,
    strict: bool,
}

#[derive(Debug, Clone)]
struct IndexPlan {
    base: String,
    table: usize,
    unique: bool,
    columns: Vec<(usize, usize, bool)>,
    partial: bool,
}

#[derive(Debug, Clone)]
struct ViewPlan {
    base: String,
    table: usize,
    grouped: bool,
}

#[derive(Debug, Clone)]
struct TriggerPlan {
    base: String,
    table: usize,
    before: bool,
    event: usize,
}

#[derive(Debug, Clone)]
struct FtsPlan {
    base: String,
    columns: Vec<String>,
    option: Option<usize>,
}

#[derive(Debug, Clone)]
struct SchemaPlan {
    tables: Vec<TablePlan>,
    fts: Option<FtsPlan>,
    indexes: Vec<IndexPlan>,
    views: Vec<ViewPlan>,
    triggers: Vec<TriggerPlan>,
}

/// A name suffix with characters that need quoting; never starts with a
/// digit, so `t{i}{base}` names are unique.
fn base() -> impl Strategy<Value = String> {
    "[a-zé \"'`.()\\[\\]-]{0,6}"
}

fn sql_type() -> impl Strategy<Value = SqlType> {
    prop_oneof![
        Just(SqlType::Integer),
        Just(SqlType::Real),
        Just(SqlType::Text),
        Just(SqlType::Blob),
        Just(SqlType::Any)
    ]
}

fn action() -> impl Strategy<Value = FkAction> {
    prop_oneof![
        Just(FkAction::NoAction),
        Just(FkAction::Restrict),
        Just(FkAction::SetNull),
        Just(FkAction::SetDefault),
        Just(FkAction::Cascade),
    ]
}

fn length() -> impl Strategy<Value = LengthLimit> {
    prop_oneof![
        (0..5u32, 0..20u32).prop_map(|(min, extra)| LengthLimit {
            min: Some(min),
            max: Some(min + extra)
        }),
        (0..5u32).prop_map(|min| LengthLimit {
            min: Some(min),
            max: None
        }),
        (0..20u32).prop_map(|max| LengthLimit {
            min: None,
            max: Some(max)
        }),
    ]
}

fn column_plan() -> impl Strategy<Value = ColumnPlan> {
    (
        base(),
        sql_type(),
        any::<bool>(),
        proptest::bool::weighted(0.2),
        proptest::option::weighted(0.4, 0..DEFAULTS.len()),
        vec(0..CHECKS.len(), 0..3),
        proptest::option::weighted(0.3, length()),
        proptest::option::weighted(0.2, 0..CUSTOM.len()),
        proptest::option::weighted(0.3, (any::<usize>(), action(), action())),
        proptest::option::weighted(0.2, (0..GENERATED.len(), any::<bool>())),
    )
        .prop_map(
            |(
                base,
                sql_type,
                nullable,
                unique,
                default,
                checks,
                length,
                custom,
                reference,
                generated,
            )| {
                ColumnPlan {
                    base,
                    sql_type,
                    nullable,
                    unique,
                    default,
                    checks,
                    length,
                    custom,
                    reference,
                    generated,
                }
            },
        )
}

fn table_plan() -> impl Strategy<Value = TablePlan> {
    (
        base(),
        vec(column_plan(), 1..6),
        prop_oneof![
            Just(Key::None),
            Just(Key::Column),
            Just(Key::AutoIncrement),
            Just(Key::Composite)
        ],
        proptest::bool::weighted(0.3),
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.3, (any::<usize>(), action(), action())),
        proptest::bool::weighted(0.3),
        proptest::bool::weighted(0.3),
    )
        .prop_map(
            |(base, columns, key, unique_key, check, foreign_key, without_rowid, strict)| {
                TablePlan {
                    base,
                    columns,
                    key,
                    unique_key,
                    check,
                    foreign_key,
                    without_rowid,
                    strict,
                }
            },
        )
}

fn schema_plan() -> impl Strategy<Value = SchemaPlan> {
    let index = (
        base(),
        any::<usize>(),
        any::<bool>(),
        vec((any::<usize>(), 0..3usize, any::<bool>()), 1..4),
        any::<bool>(),
    )
        .prop_map(|(base, table, unique, columns, partial)| IndexPlan {
            base,
            table,
            unique,
            columns,
            partial,
        });
    let view =
        (base(), any::<usize>(), any::<bool>()).prop_map(|(base, table, grouped)| ViewPlan {
            base,
            table,
            grouped,
        });
    let trigger = (base(), any::<usize>(), any::<bool>(), 0..4usize).prop_map(
        |(base, table, before, event)| TriggerPlan {
            base,
            table,
            before,
            event,
        },
    );
    let fts = (
        base(),
        vec("[a-z]{0,4}", 1..4),
        proptest::option::of(0..FTS_OPTIONS.len()),
    )
        .prop_map(|(base, columns, option)| FtsPlan {
            base,
            columns,
            option,
        });
    (
        vec(table_plan(), 1..5),
        proptest::option::weighted(0.5, fts),
        vec(index, 0..4),
        vec(view, 0..3),
        vec(trigger, 0..3),
    )
        .prop_map(|(tables, fts, indexes, views, triggers)| SchemaPlan {
            tables,
            fts,
            indexes,
            views,
            triggers,
        })
}

/// Turns a plan into a schema SQLite accepts: generated columns never come
/// first, have no default, key or reference; foreign keys point at earlier
/// tables; WITHOUT ROWID tables get a primary key and no AUTOINCREMENT.
fn build(plan: &SchemaPlan) -> Schema {
    let mut tables: Vec<Table> = Vec::new();
    for (i, tp) in plan.tables.iter().enumerate() {
        let mut columns: Vec<Column> = Vec::new();
        for (j, cp) in tp.columns.iter().enumerate() {
            let mut column = Column::new(format!("c{j}{}", cp.base), cp.sql_type);
            let quoted = quote_ident(&column.name);
            column.nullable = cp.nullable;
            column.unique = cp.unique;
            column.checks = cp
                .checks
                .iter()
                .map(|&k| CHECKS[k].replace("{c}", &quoted))
                .collect();
            column.length = cp.length;
            column.custom = cp.custom.map(|k| CUSTOM[k].to_owned());
            match cp.generated {
                Some((k, stored)) if j > 0 => {
                    let expression = GENERATED[k].replace("{c}", &quote_ident(&columns[0].name));
                    column.generated = Some(Generated { expression, stored });
                }
                _ => {
                    column.default = cp.default.map(|k| DEFAULTS[k].to_owned());
                    if let Some((target, on_delete, on_update)) = cp.reference.filter(|_| i > 0) {
                        let target = &tables[target % i];
                        column.references = Some(Reference {
                            table: target.name.clone(),
                            column: target.columns[0].name.clone(),
                            on_delete,
                            on_update,
                        });
                    }
                }
            }
            columns.push(column);
        }
        let plain: Vec<String> = columns
            .iter()
            .filter(|c| c.generated.is_none())
            .map(|c| c.name.clone())
            .collect();
        let mut table = Table {
            name: format!("t{i}{}", tp.base),
            columns,
            without_rowid: tp.without_rowid,
            strict: tp.strict,
            ..Default::default()
        };
        let key = match tp.key {
            Key::None | Key::AutoIncrement if tp.without_rowid => Key::Column,
            key => key,
        };
        match key {
            Key::None => {}
            Key::Column => table.columns[0].primary_key = true,
            Key::AutoIncrement => {
                let first = &mut table.columns[0];
                first.sql_type = SqlType::Integer;
                first.primary_key = true;
                first.auto_increment = true;
            }
            Key::Composite => table.primary_key = plain.iter().take(2).cloned().collect(),
        }
        if tp.unique_key {
            table
                .unique_keys
                .push(plain.iter().rev().take(2).cloned().collect());
        }
        if tp.check {
            let c = quote_ident(&plain[0]);
            table.checks.push(format!("{c} IS NULL OR {c} = {c}"));
        }
        if let Some((target, on_delete, on_update)) = tp.foreign_key.filter(|_| i > 0) {
            let target = &tables[target % i];
            let n = plain.len().min(target.columns.len()).min(2);
            table.foreign_keys.push(ForeignKey {
                columns: plain[..n].to_vec(),
                table: target.name.clone(),
                references: target.columns[..n].iter().map(|c| c.name.clone()).collect(),
                on_delete,
                on_update,
            });
        }
        tables.push(table);
    }

    let mut entities: Vec<Entity> = Vec::new();
    if let Some(fts) = &plan.fts {
        let mut arguments: Vec<String> = fts
            .columns
            .iter()
            .enumerate()
            .map(|(k, c)| format!("x{k}{c}"))
            .collect();
        arguments.extend(fts.option.map(|k| FTS_OPTIONS[k].to_owned()));
        entities.push(Entity::VirtualTable(VirtualTable {
            name: format!("f{}", fts.base),
            module: "fts5".into(),
            arguments,
        }));
    }
    for (k, ip) in plan.indexes.iter().enumerate() {
        let table = &tables[ip.table % tables.len()];
        let mut seen = Vec::new();
        let mut columns = Vec::new();
        for &(c, kind, descending) in &ip.columns {
            let c = c % table.columns.len();
            if seen.contains(&(c, kind)) {
                continue;
            }
            seen.push((c, kind));
            let name = table.columns[c].name.clone();
            let quoted = quote_ident(&name);
            columns.push(match kind {
                0 => IndexColumn::Column { name, descending },
                1 => IndexColumn::Expression {
                    sql: format!("lower({quoted})"),
                    descending,
                },
                _ => IndexColumn::Expression {
                    sql: format!("{quoted} + 1"),
                    descending,
                },
            });
        }
        let where_clause = ip
            .partial
            .then(|| format!("{} IS NOT NULL", quote_ident(&table.columns[0].name)));
        entities.push(Entity::Index(Index {
            name: format!("i{k}{}", ip.base),
            table: table.name.clone(),
            unique: ip.unique,
            columns,
            where_clause,
        }));
    }
    for (k, vp) in plan.views.iter().enumerate() {
        let table = &tables[vp.table % tables.len()];
        let (t, c) = (
            quote_ident(&table.name),
            quote_ident(&table.columns[0].name),
        );
        let select = if vp.grouped {
            format!("SELECT {c}, count(*) AS \"n\" FROM {t} GROUP BY {c}")
        } else {
            format!("SELECT * FROM {t} WHERE {c} IS NOT NULL")
        };
        entities.push(Entity::View(View {
            name: format!("v{k}{}", vp.base),
            select,
        }));
    }
    for (k, tp) in plan.triggers.iter().enumerate() {
        let table = &tables[tp.table % tables.len()];
        let name = format!("g{k}{}", tp.base);
        let timing = if tp.before { "BEFORE" } else { "AFTER" };
        let event = match tp.event {
            0 => "INSERT".to_owned(),
            1 => "DELETE".to_owned(),
            2 => "UPDATE".to_owned(),
            _ => format!("UPDATE OF {}", quote_ident(&table.columns[0].name)),
        };
        let sql = format!(
            "CREATE TRIGGER {} {timing} {event} ON {} FOR EACH ROW BEGIN SELECT 1; END",
            quote_ident(&name),
            quote_ident(&table.name)
        );
        entities.push(Entity::Trigger(Trigger {
            name,
            table: table.name.clone(),
            sql,
        }));
    }
    Schema::new(tables.into_iter().map(Entity::Table).chain(entities))
}

fn fail(context: &str, e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{context}: {e}"))
}

/// Creates every entity of the schema on the connection.
fn create_all(conn: &Connection, schema: &Schema) -> Result<(), TestCaseError> {
    for entity in &schema.entities {
        let sql = create_statement(entity);
        conn.execute_batch(&sql).map_err(|e| fail(&sql, e))?;
    }
    Ok(())
}

/// Reads the schema back as the sqlite backend does: every `sqlite_schema`
/// row except internal objects and virtual tables' shadow tables.
fn read_back(conn: &Connection) -> Result<Schema, TestCaseError> {
    let mut shadow = conn
        .prepare("SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'shadow'")
        .map_err(|e| fail("table_list", e))?;
    let shadow: Vec<String> = shadow
        .query_map([], |r| r.get(0))
        .and_then(Iterator::collect)
        .map_err(|e| fail("table_list", e))?;
    let mut rows = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
        .map_err(|e| fail("sqlite_schema", e))?;
    let rows: Vec<SchemaRow> = rows
        .query_map([], |r| {
            Ok(SchemaRow {
                kind: r.get(0)?,
                name: r.get(1)?,
                table: r.get(2)?,
                sql: r.get(3)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| fail("sqlite_schema", e))?;
    let rows = rows.into_iter().filter(|row| !shadow.contains(&row.name));
    parse_schema(rows).map_err(|e| fail("parse_schema", e))
}

/// The whole round trip on one connection, equal at every step.
fn check_round_trip(conn: &Connection, schema: &Schema) -> Result<(), TestCaseError> {
    create_all(conn, schema)?;
    let read = read_back(conn)?;
    prop_assert_eq!(&read, schema);
    let snapshot = Snapshot::new(7, read);
    let json = snapshot.to_json();
    let back = Snapshot::from_json(&json).map_err(|e| fail("from_json", e))?;
    prop_assert_eq!(&back, &snapshot);
    prop_assert_eq!(back.to_json(), json, "snapshot output is not deterministic");
    Ok(())
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn schemas_round_trip_through_an_in_memory_database(plan in schema_plan()) {
        let schema = build(&plan);
        let conn = Connection::open_in_memory().map_err(|e| fail("open", e))?;
        check_round_trip(&conn, &schema)?;
    }
}

/// A plan that uses every feature at least once.
fn kitchen_sink() -> SchemaPlan {
    let column = |base: &str, sql_type| ColumnPlan {
        base: base.into(),
        sql_type,
        nullable: false,
        unique: false,
        default: None,
        checks: Vec::new(),
        length: None,
        custom: None,
        reference: None,
        generated: None,
    };
    let table = |base: &str, columns| TablePlan {
        base: base.into(),
        columns,
        key: Key::None,
        unique_key: false,
        check: false,
        foreign_key: None,
        without_rowid: false,
        strict: false,
    };
    let parents = TablePlan {
        key: Key::AutoIncrement,
        unique_key: true,
        check: true,
        ..table(
            " \"parents\"",
            vec![
                column("id", SqlType::Integer),
                ColumnPlan {
                    length: Some(LengthLimit {
                        min: Some(1),
                        max: Some(40),
                    }),
                    custom: Some(0),
                    unique: true,
                    ..column("name", SqlType::Text)
                },
                ColumnPlan {
                    nullable: true,
                    default: Some(4),
                    ..column("data", SqlType::Blob)
                },
                ColumnPlan {
                    nullable: true,
                    ..column("anything", SqlType::Any)
                },
            ],
        )
    };
    let children = TablePlan {
        key: Key::Composite,
        foreign_key: Some((0, FkAction::Cascade, FkAction::SetDefault)),
        without_rowid: true,
        strict: true,
        ..table(
            "[kids]",
            vec![
                ColumnPlan {
                    reference: Some((0, FkAction::SetNull, FkAction::Restrict)),
                    ..column("a", SqlType::Integer)
                },
                ColumnPlan {
                    default: Some(3),
                    checks: vec![0, 1, 2],
                    ..column("b'", SqlType::Text)
                },
                ColumnPlan {
                    default: Some(2),
                    ..column("score", SqlType::Real)
                },
                ColumnPlan {
                    generated: Some((1, true)),
                    ..column("len", SqlType::Integer)
                },
                ColumnPlan {
                    generated: Some((2, false)),
                    nullable: true,
                    ..column("tag", SqlType::Any)
                },
                ColumnPlan {
                    length: Some(LengthLimit {
                        min: None,
                        max: Some(3),
                    }),
                    default: Some(5),
                    ..column("short", SqlType::Text)
                },
            ],
        )
    };
    SchemaPlan {
        tables: vec![parents, children],
        fts: Some(FtsPlan {
            base: "ind ex".into(),
            columns: vec!["title".into(), "body".into()],
            option: Some(0),
        }),
        indexes: vec![
            IndexPlan {
                base: "by name".into(),
                table: 0,
                unique: true,
                columns: vec![(1, 0, true)],
                partial: false,
            },
            IndexPlan {
                base: "expr".into(),
                table: 1,
                unique: false,
                columns: vec![(1, 1, false), (2, 2, true), (3, 0, false)],
                partial: true,
            },
        ],
        views: vec![
            ViewPlan {
                base: "counts".into(),
                table: 1,
                grouped: true,
            },
            ViewPlan {
                base: "named".into(),
                table: 0,
                grouped: false,
            },
        ],
        triggers: vec![
            TriggerPlan {
                base: "ins".into(),
                table: 0,
                before: false,
                event: 0,
            },
            TriggerPlan {
                base: "upd".into(),
                table: 1,
                before: true,
                event: 3,
            },
        ],
    }
}

#[test]
fn a_file_database_round_trips_after_reopening() -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| fail("tempdir", e))?;
    let path = dir.path().join("app.db");
    let schema = build(&kitchen_sink());
    {
        let conn = Connection::open(&path).map_err(|e| fail("open", e))?;
        create_all(&conn, &schema)?;
    }
    let conn = Connection::open(&path).map_err(|e| fail("reopen", e))?;
    let read = read_back(&conn)?;
    assert_eq!(read, schema);

    let folder = dir.path().join("schemas");
    Snapshot::new(2, read)
        .write_in(&folder)
        .map_err(|e| fail("write_in", e))?;
    assert_eq!(
        Snapshot::versions_in(&folder).map_err(|e| fail("versions_in", e))?,
        [2]
    );
    let snapshot = Snapshot::read_in(&folder, 2).map_err(|e| fail("read_in", e))?;
    assert_eq!(snapshot.schema, schema);
    Ok(())
}
