//! Every statement emits a `tracing` event (target `driftwood::sql`) with its
//! SQL, argument count and duration: drift's `logStatements`.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use driftwood::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One event's fields, as name and printed value.
type EventFields = Vec<(String, String)>;

/// Records the fields of every `driftwood::sql` event.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<EventFields>>>);

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "driftwood::sql"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn field<'a>(event: &'a [(String, String)], name: &str) -> &'a str {
    event
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn each_statement_is_reported_with_sql_arguments_and_duration() {
    let recorder = Recorder::default();
    let events = recorder.0.clone();
    tracing::subscriber::with_default(recorder, || {
        block_on(async {
            let (_dir, db) = open_file().await;
            events.lock().unwrap().clear();
            db.insert(todo("Traced one", "x", None)).await.unwrap();
            db.select::<Todo>()
                .filter(Todo::TITLE.eq("Traced one"))
                .get()
                .await
                .unwrap();
            db.custom_select("SELEC broken", []).await.unwrap_err();
        })
    });
    let events = events.lock().unwrap();
    let sqls: Vec<&str> = events.iter().map(|e| field(e, "sql")).collect();
    assert_eq!(sqls.len(), 3, "{events:?}");
    assert!(sqls[0].starts_with("INSERT INTO \"todos\""), "{sqls:?}");
    assert!(sqls[1].starts_with("SELECT \"todos\".\"id\""), "{sqls:?}");
    assert_eq!(field(&events[0], "args"), "3");
    assert_eq!(field(&events[1], "args"), "1");
    assert!(
        field(&events[1], "elapsed_us").parse::<u64>().is_ok(),
        "{:?}",
        events[1]
    );
    assert_eq!(field(&events[1], "message"), "statement");
    assert_eq!(field(&events[2], "message"), "statement failed");
    assert!(
        field(&events[2], "error").contains("syntax error"),
        "{:?}",
        events[2]
    );
}
