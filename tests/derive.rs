//! `#[derive(Table)]`, `#[derive(IntEnum)]` and `#[derive(TextEnum)]` as a
//! user sees them: the schema model and `CREATE` SQL they produce, the
//! companion's values and client defaults, column handles, row mapping and
//! enum conversions. Expected values sit next to each check.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use driftwood::row::{FixedWidth, FromRow, OwnedRow, Row};
use driftwood::schema::{self, FkAction, ForeignKey, Generated, LengthLimit, Reference};
use driftwood::table::{Companion, Insertable, Value, absent, set};
use driftwood::types::{
    ColumnType, Converted, FromSql, SqlArg, SqlType, SqlValue, ToSql, TypeConverter, ValueRef,
};
use driftwood::{IntEnum, Table, TextEnum};
use time::OffsetDateTime;

/// drift's `Categories` table, which `Todo::category` references.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "categories")]
pub struct Category {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(unique, custom = "COLLATE NOCASE")]
    pub description: String,
    #[column(default = true)]
    pub visible: bool,
}

/// drift's `Todos` table from the migrations guide, at schema version 3.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "todos")]
pub struct Todo {
    #[column(primary_key, auto_increment)]
    pub id: i64,
    #[column(length = 6..=10)]
    pub title: String,
    #[column(name = "body")]
    pub content: String,
    #[column(references = Category::ID, on_delete = "set null")]
    pub category: Option<i64>,
    pub due_date: Option<OffsetDateTime>,
    pub priority: Option<i32>,
}

/// How urgent a tag is, stored as its position.
#[derive(IntEnum, Debug, Clone, Copy, PartialEq)]
pub enum Priority {
    Low,
    Medium,
    High,
}

/// A tag's state, stored as its name.
#[derive(TextEnum, Debug, Clone, Copy, PartialEq)]
pub enum Status {
    Open,
    #[sql(rename = "in progress")]
    InProgress,
    Done,
}

static NEXT_TOKEN: AtomicI64 = AtomicI64::new(100);

/// The client default of `TodoTag::token`: a fresh number per insert.
fn next_token() -> i64 {
    NEXT_TOKEN.fetch_add(1, Ordering::SeqCst)
}

/// The client default of `TodoTag::status`.
fn open() -> Status {
    Status::Open
}

/// Every other attribute: a table-level key, unique key, check and foreign
/// key, defaults of each kind, enums, a generated column.
#[derive(Table, Debug, Clone, PartialEq)]
#[table(
    primary_key(todo, tag),
    unique(tag, position),
    check = "\"position\" >= 0"
)]
#[table(foreign_key(columns(todo), references = Todo, to(id), on_delete = "cascade", on_update = "restrict"))]
pub struct TodoTag {
    pub todo: i64,
    #[column(name = "tag_name", check = "\"tag_name\" <> ''")]
    pub tag: String,
    #[column(default = 0)]
    pub position: i64,
    #[column(client_default = open)]
    pub status: Status,
    pub priority: Option<Priority>,
    #[column(client_default = next_token)]
    pub token: i64,
    #[column(sql_default = "CURRENT_TIMESTAMP")]
    pub created: String,
    #[column(default = "it's")]
    pub note: String,
    #[column(generated = "upper(\"tag_name\")", stored)]
    pub shout: Option<String>,
    #[column(generated = "length(\"tag_name\")")]
    pub tag_length: Option<i64>,
}

/// A value type with no `Clone`, `Debug` or `PartialEq`.
pub struct Opaque(String);

/// Stores [`Opaque`] as its text.
pub struct OpaqueText;

impl TypeConverter for OpaqueText {
    type Rust = Opaque;
    type Sql = String;
    fn to_sql(value: &Opaque) -> String {
        value.0.clone()
    }
    fn from_sql(value: String) -> Result<Opaque, String> {
        Ok(Opaque(value))
    }
}

/// A table whose companion cannot be `Clone`: it still derives.
#[derive(Table)]
#[table(name = "opaque_rows", strict, without_rowid)]
pub struct OpaqueRow {
    #[column(primary_key)]
    pub key: String,
    pub value: Converted<OpaqueText>,
}

fn column(name: &str, sql_type: SqlType) -> schema::Column {
    schema::Column::new(name, sql_type)
}

fn owned_row(values: Vec<SqlValue>) -> OwnedRow {
    let names: Vec<String> = (0..values.len()).map(|i| format!("c{i}")).collect();
    OwnedRow::new(names.into(), values)
}

fn text(value: &str) -> SqlArg<'_> {
    SqlArg::Borrowed(ValueRef::Text(value))
}

fn int(value: i64) -> SqlArg<'static> {
    SqlArg::Borrowed(ValueRef::Integer(value))
}

#[test]
fn todo_definition_matches_the_hand_built_model() {
    let mut id = column("id", SqlType::Integer);
    id.primary_key = true;
    id.auto_increment = true;
    let mut title = column("title", SqlType::Text);
    title.length = Some(LengthLimit {
        min: Some(6),
        max: Some(10),
    });
    let body = column("body", SqlType::Text);
    let mut category = column("category", SqlType::Integer);
    category.nullable = true;
    category.references = Some(Reference {
        table: "categories".into(),
        column: "id".into(),
        on_delete: FkAction::SetNull,
        on_update: FkAction::NoAction,
    });
    let mut due_date = column("due_date", SqlType::Integer);
    due_date.nullable = true;
    let mut priority = column("priority", SqlType::Integer);
    priority.nullable = true;
    let expected = schema::Table {
        name: "todos".into(),
        columns: vec![id, title, body, category, due_date, priority],
        ..Default::default()
    };
    assert_eq!(Todo::definition(), expected);
    assert_eq!(Todo::NAME, "todos");
    assert_eq!(
        Todo::COLUMNS,
        ["id", "title", "body", "category", "due_date", "priority"]
    );
    assert_eq!(Todo::PRIMARY_KEY, [0]);
    assert!(Todo::GENERATED.is_empty());
    assert_eq!(Todo::WIDTH, 6);
}

#[test]
fn todo_create_sql() {
    assert_eq!(
        schema::sql::create_table(&Todo::definition()),
        "CREATE TABLE \"todos\" (\"id\" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \
         \"title\" TEXT NOT NULL CHECK (length(\"title\") BETWEEN 6 AND 10), \"body\" TEXT NOT NULL, \
         \"category\" INTEGER REFERENCES \"categories\" (\"id\") ON DELETE SET NULL, \"due_date\" INTEGER, \
         \"priority\" INTEGER)"
    );
    assert_eq!(
        schema::sql::create_table(&Category::definition()),
        "CREATE TABLE \"categories\" (\"id\" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \
         \"description\" TEXT NOT NULL UNIQUE COLLATE NOCASE, \
         \"visible\" INTEGER NOT NULL DEFAULT (1) CHECK (\"visible\" IN (0, 1)))"
    );
}

#[test]
fn every_attribute_reaches_the_model() {
    let todo = column("todo", SqlType::Integer);
    let mut tag = column("tag_name", SqlType::Text);
    tag.checks = vec!["\"tag_name\" <> ''".into()];
    let mut position = column("position", SqlType::Integer);
    position.default = Some("0".into());
    let mut status = column("status", SqlType::Text);
    status.checks = vec!["\"status\" IN ('Open', 'in progress', 'Done')".into()];
    let mut priority = column("priority", SqlType::Integer);
    priority.nullable = true;
    priority.checks = vec!["\"priority\" BETWEEN 0 AND 2".into()];
    let token = column("token", SqlType::Integer);
    let mut created = column("created", SqlType::Text);
    created.default = Some("CURRENT_TIMESTAMP".into());
    let mut note = column("note", SqlType::Text);
    note.default = Some("'it''s'".into());
    let mut shout = column("shout", SqlType::Text);
    shout.nullable = true;
    shout.generated = Some(Generated {
        expression: "upper(\"tag_name\")".into(),
        stored: true,
    });
    let mut tag_length = column("tag_length", SqlType::Integer);
    tag_length.nullable = true;
    tag_length.generated = Some(Generated {
        expression: "length(\"tag_name\")".into(),
        stored: false,
    });
    let expected = schema::Table {
        name: "todo_tag".into(),
        columns: vec![
            todo, tag, position, status, priority, token, created, note, shout, tag_length,
        ],
        primary_key: vec!["todo".into(), "tag_name".into()],
        unique_keys: vec![vec!["tag_name".into(), "position".into()]],
        checks: vec!["\"position\" >= 0".into()],
        foreign_keys: vec![ForeignKey {
            columns: vec!["todo".into()],
            table: "todos".into(),
            references: vec!["id".into()],
            on_delete: FkAction::Cascade,
            on_update: FkAction::Restrict,
        }],
        without_rowid: false,
        strict: false,
    };
    assert_eq!(TodoTag::definition(), expected);
    assert_eq!(TodoTag::PRIMARY_KEY, [0, 1]);
    assert_eq!(TodoTag::GENERATED, [8, 9]);
    assert_eq!(
        schema::sql::create_table(&TodoTag::definition()),
        "CREATE TABLE \"todo_tag\" (\"todo\" INTEGER NOT NULL, \
         \"tag_name\" TEXT NOT NULL CHECK (\"tag_name\" <> ''), \
         \"position\" INTEGER NOT NULL DEFAULT (0), \
         \"status\" TEXT NOT NULL CHECK (\"status\" IN ('Open', 'in progress', 'Done')), \
         \"priority\" INTEGER CHECK (\"priority\" BETWEEN 0 AND 2), \
         \"token\" INTEGER NOT NULL, \
         \"created\" TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP), \
         \"note\" TEXT NOT NULL DEFAULT ('it''s'), \
         \"shout\" TEXT GENERATED ALWAYS AS (upper(\"tag_name\")) STORED, \
         \"tag_length\" INTEGER GENERATED ALWAYS AS (length(\"tag_name\")) VIRTUAL, \
         PRIMARY KEY (\"todo\", \"tag_name\"), UNIQUE (\"tag_name\", \"position\"), CHECK (\"position\" >= 0), \
         FOREIGN KEY (\"todo\") REFERENCES \"todos\" (\"id\") ON DELETE CASCADE ON UPDATE RESTRICT)"
    );
    let opaque = OpaqueRow::definition();
    assert!(opaque.strict && opaque.without_rowid);
    assert_eq!(
        schema::sql::create_table(&opaque),
        "CREATE TABLE \"opaque_rows\" (\"key\" TEXT NOT NULL PRIMARY KEY, \"value\" TEXT NOT NULL) WITHOUT ROWID, STRICT"
    );
}

#[test]
fn sqlite_accepts_every_generated_create_statement() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    for table in [
        Category::definition(),
        Todo::definition(),
        TodoTag::definition(),
        OpaqueRow::definition(),
    ] {
        let sql = schema::sql::create_table(&table);
        conn.execute_batch(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn.execute_batch(
        "INSERT INTO todos (id, title, body) VALUES (1, 'Groceries', 'milk');
         INSERT INTO todo_tag (todo, tag_name, status, token) VALUES (1, 'x', 'Open', 7);",
    )
    .unwrap();
    let shout: String = conn
        .query_row("SELECT shout FROM todo_tag", [], |r| r.get(0))
        .unwrap();
    assert_eq!(shout, "X");
    let bad = conn.execute_batch(
        "INSERT INTO todo_tag (todo, tag_name, status, token) VALUES (1, 'y', 'Lost', 7)",
    );
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("CHECK constraint failed")
    );
}

#[test]
fn column_handles_know_their_names_and_indexes() {
    assert_eq!((Todo::ID.name(), Todo::ID.index()), ("id", 0));
    assert_eq!((Todo::TITLE.name(), Todo::TITLE.index()), ("title", 1));
    assert_eq!((Todo::CONTENT.name(), Todo::CONTENT.index()), ("body", 2));
    assert_eq!(
        (Todo::PRIORITY.name(), Todo::PRIORITY.index()),
        ("priority", 5)
    );
    assert_eq!(Todo::DUE_DATE.table_name(), "todos");
    assert_eq!(TodoTag::TAG.name(), "tag_name");
    let mut due_date = column("due_date", SqlType::Integer);
    due_date.nullable = true;
    assert_eq!(Todo::DUE_DATE.definition(), due_date);
}

#[test]
fn row_values_follow_the_columns() {
    let when = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let todo = Todo {
        id: 3,
        title: "Groceries".into(),
        content: "milk".into(),
        category: None,
        due_date: Some(when),
        priority: Some(2),
    };
    let values: Vec<SqlValue> = (0..Todo::COLUMNS.len())
        .map(|i| todo.value(i).into_owned())
        .collect();
    assert_eq!(
        values,
        [
            SqlValue::Integer(3),
            SqlValue::Text("Groceries".into()),
            SqlValue::Text("milk".into()),
            SqlValue::Null,
            SqlValue::Integer(1_700_000_000),
            SqlValue::Integer(2),
        ]
    );
    assert_eq!(todo.value(99), SqlArg::Borrowed(ValueRef::Null));
    assert_eq!(Insertable::insert_value(&todo, 1), Some(text("Groceries")));
    const { assert!(<Todo as Insertable>::WHOLE_ROW) };
}

#[test]
fn whole_rows_leave_generated_columns_out() {
    let tag = TodoTag {
        todo: 1,
        tag: "home".into(),
        position: 0,
        status: Status::Done,
        priority: Some(Priority::High),
        token: 5,
        created: "now".into(),
        note: "n".into(),
        shout: Some("HOME".into()),
        tag_length: Some(4),
    };
    assert_eq!(Insertable::insert_value(&tag, 3), Some(text("Done")));
    assert_eq!(Insertable::insert_value(&tag, 4), Some(int(2)));
    assert_eq!(Insertable::insert_value(&tag, 8), None);
    assert_eq!(Insertable::insert_value(&tag, 9), None);
    assert_eq!(tag.value(8), text("HOME"));
}

#[test]
fn companion_values_are_present_or_absent() {
    let companion = TodoCompanion {
        title: set("Groceries"),
        content: set("milk"),
        ..absent()
    };
    assert_eq!(companion.value(0), None);
    assert_eq!(companion.value(1), Some(text("Groceries")));
    assert_eq!(companion.value(2), Some(text("milk")));
    assert_eq!(companion.value(3), None);
    assert_eq!(companion.value(42), None);
    assert_eq!(Companion::insert_value(&companion, 0), None);
    assert_eq!(
        Insertable::insert_value(&companion, 1),
        Some(text("Groceries"))
    );
    const { assert!(!<TodoCompanion as Insertable>::WHOLE_ROW) };
    let explicit_null = TodoCompanion {
        category: Value::Set(None),
        ..absent()
    };
    assert_eq!(
        explicit_null.value(3),
        Some(SqlArg::Borrowed(ValueRef::Null))
    );
    assert_eq!(TodoCompanion::default(), absent::<TodoCompanion>());
    let copy = companion.clone();
    assert_eq!(copy, companion);
    assert!(
        format!("{companion:?}")
            .starts_with("TodoCompanion { id: Absent, title: Set(\"Groceries\")")
    );
}

#[test]
fn client_defaults_fill_absent_columns_at_insert_time() {
    let companion = TodoTagCompanion {
        todo: set(1),
        tag: set("home"),
        ..absent()
    };
    assert_eq!(
        companion.value(3),
        None,
        "value() reports only what was given"
    );
    assert_eq!(
        Companion::insert_value(&companion, 3),
        Some(SqlArg::Owned(SqlValue::Text("Open".into())))
    );
    let first = Companion::insert_value(&companion, 5).unwrap().into_owned();
    let second = Companion::insert_value(&companion, 5).unwrap().into_owned();
    let (SqlValue::Integer(first), SqlValue::Integer(second)) = (first, second) else {
        panic!("tokens are integers");
    };
    assert!(
        second > first,
        "the default function runs at each insert: {first} then {second}"
    );
    assert_eq!(
        Companion::insert_value(&companion, 2),
        None,
        "a database default stays with the database"
    );
    let given = TodoTagCompanion {
        status: set(Status::Done),
        token: set(7),
        ..absent()
    };
    assert_eq!(Companion::insert_value(&given, 3), Some(text("Done")));
    assert_eq!(Companion::insert_value(&given, 5), Some(int(7)));
    let generated = TodoTagCompanion {
        shout: set(Some("X".to_owned())),
        ..absent()
    };
    assert_eq!(
        generated.value(8),
        None,
        "generated columns are never written"
    );
}

#[test]
fn companion_from_a_row_sets_every_column() {
    let todo = Todo {
        id: 1,
        title: "Groceries".into(),
        content: "milk".into(),
        category: Some(2),
        due_date: None,
        priority: None,
    };
    let companion = TodoCompanion::from(todo.clone());
    assert_eq!(
        companion,
        TodoCompanion {
            id: set(1),
            title: set("Groceries"),
            content: set("milk"),
            category: set(Some(2)),
            due_date: set(None),
            priority: set(None),
        }
    );
    for i in 0..Todo::COLUMNS.len() {
        assert_eq!(companion.value(i), Some(todo.value(i)), "column {i}");
    }
}

#[test]
fn companions_of_columns_without_clone_still_work() {
    let companion = OpaqueRowCompanion {
        value: set(Converted::new(Opaque("v".into()))),
        ..absent()
    };
    assert_eq!(
        companion.value(1),
        Some(SqlArg::Owned(SqlValue::Text("v".into())))
    );
    assert_eq!(companion.value(0), None);
}

#[test]
fn rows_map_from_result_cells() {
    let row = owned_row(vec![
        SqlValue::Integer(1),
        SqlValue::Text("Groceries".into()),
        SqlValue::Text("milk".into()),
        SqlValue::Null,
        SqlValue::Integer(1_700_000_000),
        SqlValue::Integer(3),
    ]);
    let todo = Todo::from_row(&Row::new(&row, "select")).unwrap();
    assert_eq!(
        todo,
        Todo {
            id: 1,
            title: "Groceries".into(),
            content: "milk".into(),
            category: None,
            due_date: Some(OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()),
            priority: Some(3),
        }
    );
    let null_title = owned_row(vec![SqlValue::Integer(1), SqlValue::Null]);
    let err = Todo::from_row(&Row::new(&null_title, "select")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "column `c1` holds NULL, expected TEXT (statement: select)"
    );
}

#[test]
fn enum_cells_are_checked_when_mapping_rows() {
    let cells = vec![
        SqlValue::Integer(1),
        SqlValue::Text("home".into()),
        SqlValue::Integer(0),
        SqlValue::Text("in progress".into()),
        SqlValue::Integer(7),
    ];
    let err = TodoTag::from_row(&Row::new(&owned_row(cells), "select")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "column `c4` holds INTEGER 7, expected INTEGER 0 to 2 (one of the variants of Priority) (statement: select)"
    );
}

#[test]
fn int_enums_store_positions() {
    assert_eq!(Priority::Low.to_index(), 0);
    assert_eq!(Priority::High.to_index(), 2);
    assert_eq!(Priority::from_index(1), Some(Priority::Medium));
    assert_eq!(Priority::from_index(3), None);
    assert_eq!(Priority::Medium.to_sql(), int(1));
    assert_eq!(Priority::from_sql(ValueRef::Integer(2)), Ok(Priority::High));
    let err = Priority::from_sql(ValueRef::Integer(5)).unwrap_err();
    assert_eq!(
        err.expected,
        "INTEGER 0 to 2 (one of the variants of Priority)"
    );
    assert_eq!(err.found, "INTEGER 5");
    assert_eq!(
        Priority::from_sql(ValueRef::Text("Low")).unwrap_err().found,
        "TEXT 'Low'"
    );
    assert_eq!(Priority::SQL_TYPE, SqlType::Integer);
    const { assert!(!Priority::NULLABLE) };
    assert_eq!(
        Priority::check_constraint("\"p\"").as_deref(),
        Some("\"p\" BETWEEN 0 AND 2")
    );
    assert_eq!(<Option<Priority>>::from_sql(ValueRef::Null), Ok(None));
}

#[test]
fn text_enums_store_names() {
    assert_eq!(Status::Open.to_name(), "Open");
    assert_eq!(Status::InProgress.to_name(), "in progress");
    assert_eq!(Status::from_name("Done"), Some(Status::Done));
    assert_eq!(
        Status::from_name("InProgress"),
        None,
        "a renamed variant answers only to its new name"
    );
    assert_eq!(Status::InProgress.to_sql(), text("in progress"));
    assert_eq!(
        Status::from_sql(ValueRef::Text("in progress")),
        Ok(Status::InProgress)
    );
    let err = Status::from_sql(ValueRef::Text("Lost")).unwrap_err();
    assert_eq!(
        err.expected,
        "TEXT 'Open', 'in progress' or 'Done' (one of the variants of Status)"
    );
    assert_eq!(err.found, "TEXT 'Lost'");
    assert_eq!(Status::SQL_TYPE, SqlType::Text);
    assert_eq!(
        Status::check_constraint("\"s\"").as_deref(),
        Some("\"s\" IN ('Open', 'in progress', 'Done')")
    );
    let round_trip: Vec<Status> = [Status::Open, Status::InProgress, Status::Done]
        .iter()
        .map(|s| Status::from_sql(s.to_sql().as_value_ref()).unwrap())
        .collect();
    assert_eq!(round_trip, [Status::Open, Status::InProgress, Status::Done]);
}

#[test]
fn rows_sharing_column_names_map_one_by_one() {
    let names: Arc<[String]> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let rows: Vec<OwnedRow> = (0..3)
        .map(|i| {
            OwnedRow::new(
                names.clone(),
                vec![
                    SqlValue::Integer(i),
                    SqlValue::Text(format!("c{i}")),
                    SqlValue::Integer(1),
                ],
            )
        })
        .collect();
    let categories: Vec<Category> = rows
        .iter()
        .map(|r| Category::from_row(&Row::new(r, "select")).unwrap())
        .collect();
    assert_eq!(
        categories[2],
        Category {
            id: 2,
            description: "c2".into(),
            visible: true
        }
    );
}

/// One column of each built-in type, and a raw identifier as a field name.
#[derive(Table, Debug, Clone, PartialEq)]
pub struct Sample {
    #[column(primary_key)]
    pub id: i32,
    pub ratio: f64,
    pub bytes: Vec<u8>,
    #[column(default = b"\x00\xff")]
    pub flags: Vec<u8>,
    #[column(default = -1.5)]
    pub offset: f64,
    pub done: bool,
    pub maybe: Option<bool>,
    pub at: OffsetDateTime,
    pub day: time::Date,
    pub small: u8,
    pub r#type: String,
}

/// Writes a row's values into a result row and reads it back.
fn round_trip<T: Table>(row: &T) -> T {
    let values: Vec<SqlValue> = (0..T::COLUMNS.len())
        .map(|i| row.value(i).into_owned())
        .collect();
    let names: Vec<String> = T::COLUMNS.iter().map(|c| c.to_string()).collect();
    let cells = OwnedRow::new(names.into(), values);
    T::from_row(&Row::new(&cells, "round trip")).unwrap()
}

#[test]
fn every_column_type_round_trips_through_a_row() {
    let sample = Sample {
        id: 7,
        ratio: 0.25,
        bytes: vec![1, 2, 3],
        flags: vec![],
        offset: 2.0,
        done: true,
        maybe: None,
        at: OffsetDateTime::from_unix_timestamp(86_400).unwrap(),
        day: time::Date::from_calendar_date(2024, time::Month::February, 29).unwrap(),
        small: 255,
        r#type: "kind".into(),
    };
    assert_eq!(round_trip(&sample), sample);
    assert_eq!(Sample::TYPE.name(), "type");
    assert_eq!(
        schema::sql::create_table(&Sample::definition()),
        "CREATE TABLE \"sample\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"ratio\" REAL NOT NULL, \
         \"bytes\" BLOB NOT NULL, \"flags\" BLOB NOT NULL DEFAULT (X'00FF'), \
         \"offset\" REAL NOT NULL DEFAULT (-1.5), \"done\" INTEGER NOT NULL CHECK (\"done\" IN (0, 1)), \
         \"maybe\" INTEGER CHECK (\"maybe\" IN (0, 1)), \"at\" INTEGER NOT NULL, \"day\" TEXT NOT NULL, \
         \"small\" INTEGER NOT NULL, \"type\" TEXT NOT NULL)"
    );
    let companion = SampleCompanion {
        r#type: set("k"),
        ..absent()
    };
    assert_eq!(companion.value(10), Some(text("k")));
}

#[cfg(feature = "json")]
mod json_columns {
    use driftwood::Table;
    use driftwood::types::Json;

    /// JSON columns: a typed `Json<T>` and a raw `serde_json::Value`.
    #[derive(Table, Debug, Clone, PartialEq)]
    pub struct Document {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub tags: Json<Vec<String>>,
        pub extra: Option<serde_json::Value>,
    }

    #[test]
    fn json_columns_round_trip() {
        let doc = Document {
            id: 1,
            tags: Json(vec!["a".into(), "b".into()]),
            extra: Some(serde_json::json!({ "k": [1, 2] })),
        };
        assert_eq!(super::round_trip(&doc), doc);
        assert_eq!(
            doc.value(1).into_owned(),
            driftwood::types::SqlValue::Text("[\"a\",\"b\"]".into())
        );
        let companion = DocumentCompanion::from(doc.clone());
        assert_eq!(companion.clone(), companion);
    }
}
