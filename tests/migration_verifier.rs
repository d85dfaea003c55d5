//! Verifying migrations against the schema history in `tests/schemas`
//! (drift's "Verifying migrations", as a user of driftwood writes it):
//! the snapshot check this project keeps, the seed's `upgrade from v1 to
//! v2` and data-integrity tests, every upgrade path, and what a forgotten
//! version bump or a hand-edited snapshot look like.

mod common;

use common::within;
use driftwood::migration::{SchemaVerifier, SnapshotCheck, StepByStep};
use driftwood::prelude::*;
use driftwood::schema::Snapshot;

/// The app's schema now: version 4 (v2 added `due_date`, v3 `priority`,
/// v4 a `tags` table and an index).
mod app {
    use driftwood::prelude::*;

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "categories")]
    pub struct Category {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        pub description: String,
    }

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "todos")]
    pub struct Todo {
        #[column(primary_key, auto_increment)]
        pub id: i64,
        #[column(length = 6..=10)]
        pub title: String,
        #[column(name = "body")]
        pub content: String,
        #[column(references = "categories(id)")]
        pub category: Option<i64>,
        pub due_date: Option<i64>,
        pub priority: Option<i64>,
    }

    #[derive(Table, Debug, Clone, PartialEq)]
    #[table(name = "tags")]
    pub struct Tag {
        #[column(primary_key)]
        pub id: i64,
        #[column(unique)]
        pub name: String,
    }
}

/// The snapshots of every version, shipped inside the test binary.
fn snapshots() -> Vec<Snapshot> {
    [
        include_str!("schemas/driftwood_schema_v1.json"),
        include_str!("schemas/driftwood_schema_v2.json"),
        include_str!("schemas/driftwood_schema_v3.json"),
        include_str!("schemas/driftwood_schema_v4.json"),
    ]
    .into_iter()
    .map(|json| Snapshot::from_json(json).unwrap())
    .collect()
}

/// The index version 4 added.
fn todos_by_category() -> Entity {
    Entity::Index(driftwood::schema::Index {
        name: "todos_by_category".into(),
        table: "todos".into(),
        unique: false,
        columns: vec![driftwood::schema::IndexColumn::Column {
            name: "category".into(),
            descending: false,
        }],
        where_clause: None,
    })
}

use driftwood::schema::Entity;

/// The app's database, migrating step by step, each step against its own
/// version's schema.
pub struct History;

impl Database for History {
    const SCHEMA_VERSION: u32 = 4;
    fn schema() -> Schema {
        let mut schema = schema![app::Category, app::Todo, app::Tag];
        schema.entities.push(todos_by_category());
        schema
    }
    fn on_upgrade(m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
        let mut steps = StepByStep::new()
            .step(2, |m| m.add_column(("todos", "due_date")))
            .step(3, |m| m.add_column(("todos", "priority")))
            .step(4, |m| {
                m.create("tags")?;
                m.create("todos_by_category")
            });
        for snapshot in snapshots() {
            steps = steps.snapshot(snapshot);
        }
        steps.run(m, from, to)
    }
}

// The step a project keeps in its suite: the current version's snapshot
// matches the code (written when missing, outside CI), old snapshots are
// untouched, and the old versions' tables are generated from them.
#[test]
fn the_schema_history_is_current() {
    let report = SnapshotCheck::<History>::new("tests/schemas")
        .tables_in("tests/schemas")
        .tests_in("tests/schemas/scaffold", "crate::History")
        .run()
        .unwrap();
    assert_eq!(report.versions, [1, 2, 3, 4]);
}

// The old versions' tables, generated from their snapshots.
#[rustfmt::skip]
#[path = "schemas/schema_v1.rs"]
mod v1;
#[rustfmt::skip]
#[path = "schemas/schema_v2.rs"]
mod v2;

// The migration tests the snapshot check scaffolded, one per step.
#[path = "schemas/scaffold/migrate_v1_to_v2.rs"]
mod migrate_v1_to_v2;
#[path = "schemas/scaffold/migrate_v2_to_v3.rs"]
mod migrate_v2_to_v3;
#[path = "schemas/scaffold/migrate_v3_to_v4.rs"]
mod migrate_v3_to_v4;

fn verifier() -> SchemaVerifier<History> {
    SchemaVerifier::new(snapshots())
}

// The seed's data-integrity test: rows written with version 1's
// companions read back with version 2's rows.
#[test]
fn rows_written_at_v1_read_back_at_v2() {
    within(30, || {
        let verifier = verifier();
        let conn = verifier.start_at(1).unwrap();
        let at_v1 = Conn::new(&conn);
        at_v1
            .insert(v1::CategoriesCompanion {
                description: set("Work"),
                ..absent()
            })
            .execute()
            .unwrap();
        for (title, category) in [("Report", Some(1)), ("Dishes", None)] {
            at_v1
                .insert(v1::TodosCompanion {
                    title: set(format!("{title:<6}")),
                    body: set(format!("{title} body")),
                    category: set(category),
                    ..absent()
                })
                .execute()
                .unwrap();
        }
        verifier.migrate_and_validate(&conn, 2).unwrap();
        let todos = Conn::new(&conn)
            .select::<v2::Todos>()
            .order_by(v2::Todos::ID.asc())
            .get()
            .unwrap();
        assert_eq!(
            todos,
            [
                v2::Todos {
                    id: 1,
                    title: "Report".into(),
                    body: "Report body".into(),
                    category: Some(1),
                    due_date: None,
                },
                v2::Todos {
                    id: 2,
                    title: "Dishes".into(),
                    body: "Dishes body".into(),
                    category: None,
                    due_date: None,
                },
            ]
        );
    });
}

#[test]
fn every_upgrade_path_of_the_history_is_proven() {
    within(30, || {
        assert_eq!(verifier().verify_all_paths().unwrap(), 6);
    });
}

// A wrong step breaks several paths: each is reported, not only the first.
#[test]
fn the_all_paths_check_reports_every_path_that_fails() {
    within(30, || {
        struct Broken;
        impl Database for Broken {
            const SCHEMA_VERSION: u32 = 4;
            fn schema() -> Schema {
                History::schema()
            }
            fn on_upgrade(m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
                StepByStep::new()
                    .step(2, |m| m.add_column(("todos", "due_date")))
                    // Wrong: priority as text.
                    .step(3, |m| {
                        m.custom_statement("ALTER TABLE todos ADD COLUMN priority TEXT", [])
                            .map(drop)
                    })
                    // Forgets the index.
                    .step(4, |m| m.create("tags"))
                    .run(m, from, to)
            }
        }
        let error = SchemaVerifier::<Broken>::new(snapshots())
            .verify_all_paths()
            .unwrap_err()
            .to_string();
        println!("{error}");
        assert!(
            error.starts_with("schema error: 5 of 6 upgrade paths failed:"),
            "{error}"
        );
        for path in ["1 -> 3", "1 -> 4", "2 -> 3", "2 -> 4", "3 -> 4"] {
            assert!(
                error.contains(&format!("\n{path}: ")),
                "{path} missing in {error}"
            );
        }
        assert!(!error.contains("1 -> 2:"), "{error}");
        assert!(error.contains("column priority: type"), "{error}");
        assert!(
            error.contains("index todos_by_category: missing"),
            "{error}"
        );
    });
}

/// A copy of the schema history in a folder of its own.
fn history_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for version in 1..=4 {
        let name = Snapshot::file_name(version);
        std::fs::copy(format!("tests/schemas/{name}"), dir.path().join(&name)).unwrap();
    }
    dir
}

#[test]
fn changing_the_schema_without_bumping_the_version_fails_the_check_with_the_difference() {
    struct Forgetful;
    impl Database for Forgetful {
        const SCHEMA_VERSION: u32 = 4;
        fn schema() -> Schema {
            let mut schema = History::schema();
            if let Some(Entity::Table(tags)) =
                schema.entities.iter_mut().find(|e| e.name() == "tags")
            {
                tags.columns.push(driftwood::schema::Column {
                    nullable: true,
                    ..driftwood::schema::Column::new("color", driftwood::types::SqlType::Text)
                });
            }
            schema
        }
    }
    let dir = history_copy();
    let error = SnapshotCheck::<Forgetful>::new(dir.path())
        .run()
        .unwrap_err()
        .to_string();
    println!("{error}");
    assert!(
        error.contains("but SCHEMA_VERSION is still 4: bump SCHEMA_VERSION"),
        "{error}"
    );
    assert!(error.contains("\ntable tags: column color: "), "{error}");
}

#[test]
fn an_old_snapshot_changed_by_hand_fails_the_check_naming_its_version() {
    let dir = history_copy();
    let path = dir.path().join(Snapshot::file_name(1));
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("\"max\": 10", "\"max\": 12", 1);
    std::fs::write(&path, edited).unwrap();
    let error = SnapshotCheck::<History>::new(dir.path())
        .run()
        .unwrap_err()
        .to_string();
    println!("{error}");
    assert!(
        error.starts_with("schema error: cannot read schema snapshot"),
        "{error}"
    );
    assert!(
        error.contains("driftwood_schema_v1.json: the snapshot of schema version 1 was changed by hand after it was written"),
        "{error}"
    );
}

#[test]
fn a_missing_snapshot_is_written_locally_but_fails_in_ci() {
    let dir = history_copy();
    std::fs::remove_file(dir.path().join(Snapshot::file_name(4))).unwrap();
    let error = SnapshotCheck::<History>::new(dir.path())
        .in_ci(true)
        .run()
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("schema error: no snapshot of schema version 4 in"),
        "{error}"
    );
    let report = SnapshotCheck::<History>::new(dir.path())
        .in_ci(false)
        .run()
        .unwrap();
    assert_eq!(report.written, [dir.path().join(Snapshot::file_name(4))]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(Snapshot::file_name(4))).unwrap(),
        include_str!("schemas/driftwood_schema_v4.json")
    );
}

#[test]
fn a_file_older_than_the_oldest_step_the_app_ships_gets_both_versions_named() {
    within(30, || {
        struct Trimmed;
        impl Database for Trimmed {
            const SCHEMA_VERSION: u32 = 4;
            fn schema() -> Schema {
                History::schema()
            }
            // Steps to version 2 were removed from the app.
            fn on_upgrade(m: &Migrator<'_>, from: u32, to: u32) -> Result<()> {
                StepByStep::new()
                    .step(3, |m| m.add_column(("todos", "priority")))
                    .step(4, |m| m.create("tags"))
                    .run(m, from, to)
            }
        }
        let verifier = SchemaVerifier::<Trimmed>::new(snapshots());
        let conn = verifier.start_at(1).unwrap();
        let error = verifier.migrate_and_validate(&conn, 4).unwrap_err();
        assert_eq!(
            error.to_string(),
            "migration from version 1 to 4 failed: the file is at version 1, older than the oldest version this app can migrate from (2): its steps before version 3 were removed"
        );
        assert_eq!(conn.user_version().unwrap(), 1, "nothing changed");
    });
}

#[test]
fn a_snapshot_written_from_an_existing_file_matches_the_one_the_code_wrote() {
    within(30, || {
        let verifier = verifier();
        let conn = verifier.start_at(3).unwrap();
        let snapshot = driftwood::migration::snapshot_of(&conn).unwrap();
        assert_eq!(snapshot.schema_version, 3);
        let reference = SchemaVerifier::<History>::new([snapshot])
            .start_at(3)
            .unwrap();
        let diff =
            driftwood::migration::schema_differences(&reference, verifier.schema(3).unwrap())
                .unwrap();
        assert!(diff.is_empty(), "{diff}");
    });
}

// Scenario (found by a probe): generated tables did not compile for
// columns named like keywords (`self`, `static`), names that collide once
// cased (`fooBar`/`foo_bar`, `todo_items`/`todoItems`, a table named like
// another's companion), names without ASCII letters (`日付`, `_`), a table
// named `Option`, and references to columns with quotes or commas.
#[rustfmt::skip]
#[path = "schemas/odd/schema_v1.rs"]
mod odd;

#[test]
fn generated_tables_with_odd_names_compile_and_define_their_snapshot() {
    within(30, || {
        let snapshot = Snapshot::read_in("tests/schemas/odd", 1).unwrap();
        assert_eq!(
            driftwood::migration::tables_source(&snapshot, "driftwood_schema_v1.json"),
            include_str!("schemas/odd/schema_v1.rs"),
            "the committed source is what the generator writes now"
        );
        let conn = SchemaVerifier::<NoSchema>::new([snapshot])
            .start_at(1)
            .unwrap();
        let code = schema![
            odd::Option,
            odd::TodoItems,
            odd::TodoItems_2,
            odd::TodoItemsCompanion_2,
            odd::WT,
            odd::Child
        ];
        let diff = driftwood::migration::schema_differences(&conn, &code).unwrap();
        assert!(diff.is_empty(), "{diff}");
        let at_v1 = Conn::new(&conn);
        at_v1
            .insert(odd::OptionCompanion {
                self_: set(Some("me")),
                r#static: set(Some(1)),
                foo_bar: set(Some("camel")),
                foo_bar_2: set(Some("snake")),
                column_5: set(Some("today")),
                ..absent()
            })
            .execute()
            .unwrap();
        let rows = at_v1.select::<odd::Option>().get().unwrap();
        assert_eq!(rows[0].foo_bar.as_deref(), Some("camel"));
        assert_eq!(rows[0].foo_bar_2.as_deref(), Some("snake"));
        assert_eq!(rows[0].column_5.as_deref(), Some("today"));
    });
}

#[test]
fn step_by_step_refuses_downgrades_duplicate_steps_and_step_zero() {
    within(30, || {
        let conn = SchemaVerifier::<History>::new(snapshots())
            .start_at(1)
            .unwrap();
        let m = Migrator::new(Conn::new(&conn), History::schema());
        let noop = |_: &Migrator<'_>| Ok(());
        let cases: [(StepByStep<'_>, u32, u32, &str); 5] = [
            (
                StepByStep::new().step(2, noop),
                2,
                1,
                "StepByStep only upgrades; write the downgrade in Database::on_downgrade",
            ),
            (
                StepByStep::new().step(2, noop).step(2, noop),
                1,
                2,
                "two steps to version 2",
            ),
            (
                StepByStep::new().step(0, noop),
                1,
                2,
                "a step to version 0 can never run",
            ),
            (StepByStep::new(), 1, 2, "no migration steps are defined"),
            (
                StepByStep::new().step(3, noop).step(2, noop),
                1,
                4,
                "no migration step to version 4",
            ),
        ];
        for (steps, from, to, expected) in cases {
            let error = steps.run(&m, from, to).unwrap_err().to_string();
            assert!(error.ends_with(expected), "{error}");
        }
        // Nothing to do is not an error, even below the oldest step.
        StepByStep::new().step(3, noop).run(&m, 1, 1).unwrap();
    });
}

#[test]
fn verify_all_paths_refuses_to_prove_nothing() {
    within(30, || {
        let one = SchemaVerifier::<History>::new(snapshots().into_iter().take(1));
        let error = one.verify_all_paths().unwrap_err().to_string();
        assert!(
            error.contains("at least two versions are needed"),
            "{error}"
        );
        let without_current = SchemaVerifier::<History>::new(snapshots().into_iter().take(3));
        let error = without_current.verify_all_paths().unwrap_err().to_string();
        assert!(
            error.contains(
                "the newest snapshot is of version Some(3), not the code's SCHEMA_VERSION 4"
            ),
            "{error}"
        );
    });
}

// Scenario (found by a probe): the checksum covered only the entities, so
// copying v3 over v2 and fixing its version passed; and deleting the
// checksum along with an edit passed too.
#[test]
fn a_snapshot_copied_over_another_or_stripped_of_its_checksum_fails_the_check() {
    let dir = history_copy();
    let v2 = dir.path().join(Snapshot::file_name(2));
    let v3 = std::fs::read_to_string(dir.path().join(Snapshot::file_name(3))).unwrap();
    std::fs::write(
        &v2,
        v3.replace("\"schema_version\": 3", "\"schema_version\": 2"),
    )
    .unwrap();
    let error = SnapshotCheck::<History>::new(dir.path())
        .run()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("the snapshot of schema version 2 was changed by hand"),
        "{error}"
    );

    let dir = history_copy();
    let v1 = dir.path().join(Snapshot::file_name(1));
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&v1).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("checksum");
    std::fs::write(
        &v1,
        json.to_string().replacen("\"max\":10", "\"max\":12", 1),
    )
    .unwrap();
    let error = SnapshotCheck::<History>::new(dir.path())
        .run()
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("schema error: the snapshots of versions [1] in"),
        "{error}"
    );
    assert!(
        error.contains("have no checksum while the others do"),
        "{error}"
    );
}

// Scenario (found by a probe): a generated file checked out with CRLF line
// ends counted as out of date in CI.
#[test]
fn a_generated_file_with_crlf_line_ends_is_current() {
    let dir = history_copy();
    SnapshotCheck::<History>::new(dir.path())
        .in_ci(false)
        .tables_in(dir.path())
        .run()
        .unwrap();
    let generated = dir.path().join("schema_v1.rs");
    let text = std::fs::read_to_string(&generated).unwrap();
    std::fs::write(&generated, text.replace('\n', "\r\n")).unwrap();
    let report = SnapshotCheck::<History>::new(dir.path())
        .in_ci(true)
        .tables_in(dir.path())
        .run()
        .unwrap();
    assert!(report.written.is_empty());
}
