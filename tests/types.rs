//! Column types through a real database: dates (unix and ISO), uuid, JSON,
//! enums stored as integers and text, and user type converters.
#![cfg(all(feature = "uuid", feature = "time"))]

use driftwood::prelude::*;
use driftwood::types::{Converted, IsoDateTime, Json, TypeConverter};
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

#[derive(IntEnum, Debug, Clone, Copy, PartialEq)]
pub enum Priority {
    Low,
    High,
}

#[derive(TextEnum, Debug, Clone, Copy, PartialEq)]
pub enum Status {
    Open,
    #[sql(rename = "closed")]
    Done,
}

/// Tags stored as one comma-separated text.
pub struct Tags;

impl TypeConverter for Tags {
    type Rust = Vec<String>;
    type Sql = String;
    fn to_sql(value: &Vec<String>) -> String {
        value.join(",")
    }
    fn from_sql(value: String) -> std::result::Result<Vec<String>, String> {
        Ok(value
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

#[derive(Table, Debug, Clone, PartialEq)]
#[table(name = "events")]
pub struct Event {
    #[column(primary_key)]
    pub id: uuid::Uuid,
    pub at: OffsetDateTime,
    pub at_text: IsoDateTime,
    pub day: Option<Date>,
    pub priority: Priority,
    pub status: Status,
    pub payload: Json<Vec<u32>>,
    pub tags: Converted<Tags>,
    pub ratio: f64,
    pub blob: Vec<u8>,
    pub flag: bool,
}

struct EventDb;

impl Database for EventDb {
    const SCHEMA_VERSION: u32 = 1;
    fn schema() -> Schema {
        schema![Event]
    }
}

#[test]
fn every_column_type_round_trips_through_sqlite() {
    futures::executor::block_on(async {
        let db = Db::<EventDb>::open_in_memory().await.unwrap();
        let event = Event {
            id: uuid::Uuid::from_u128(42),
            at: datetime!(2025-01-02 03:04:05 UTC),
            at_text: IsoDateTime(datetime!(2025-01-02 03:04:05.25 +01:00)),
            day: Some(date!(2025 - 01 - 02)),
            priority: Priority::High,
            status: Status::Done,
            payload: Json(vec![1, 2, 3]),
            tags: Converted::new(vec!["a".into(), "b".into()]),
            ratio: 0.5,
            blob: vec![0, 255],
            flag: true,
        };
        db.insert(&event).await.unwrap();
        let back = db
            .select::<Event>()
            .filter(Event::ID.eq(event.id))
            .get_single()
            .await
            .unwrap();
        assert_eq!(back, event);

        let raw = db
            .custom_select(
                "SELECT at, at_text, day, priority, status, payload, tags, flag FROM events",
                [],
            )
            .await
            .unwrap();
        let stored: Vec<SqlValue> = raw[0].values().to_vec();
        assert_eq!(
            stored,
            [
                SqlValue::Integer(1_735_787_045),
                SqlValue::Text("2025-01-02T03:04:05.25+01:00".into()),
                SqlValue::Text("2025-01-02".into()),
                SqlValue::Integer(1),
                SqlValue::Text("closed".into()),
                SqlValue::Text("[1,2,3]".into()),
                SqlValue::Text("a,b".into()),
                SqlValue::Integer(1),
            ]
        );

        let by_status = db
            .select::<Event>()
            .filter(Event::STATUS.eq(Status::Done))
            .count()
            .await
            .unwrap();
        assert_eq!(by_status, 1);
        let err = db
            .custom_statement("UPDATE events SET status = 'unknown'", [])
            .await
            .unwrap_err();
        assert_eq!(
            err.constraint_kind(),
            Some(driftwood::ConstraintKind::Check)
        );
    });
}
