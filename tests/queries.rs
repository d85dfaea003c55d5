//! Typed queries against a real SQLite file: selects, joins, aggregates,
//! inserts with conflict modes and RETURNING, updates, deletes, raw SQL.

mod common;

use common::*;
use driftwood::prelude::*;
use driftwood::query::count_all;

async fn seeded(backend: Backend) -> (tempfile::TempDir, Db<TodoDb>, i64, i64) {
    let (dir, db) = open(backend).await;
    let work = db
        .insert(CategoryCompanion {
            description: set("Work"),
            ..absent()
        })
        .await
        .unwrap();
    let home = db
        .insert(CategoryCompanion {
            description: set("Home"),
            ..absent()
        })
        .await
        .unwrap();
    for (title, category, priority) in [
        ("Report", Some(work), 1),
        ("Groceries", Some(home), 2),
        ("Laundry", Some(home), 3),
        ("Call mum", None, 2),
    ] {
        let mut t = todo(title, "x", category);
        t.priority = set(Some(priority));
        db.insert(t).await.unwrap();
    }
    (dir, db, work, home)
}

#[test]
fn filters_order_limit_and_offset() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db, _work, home) = seeded(backend).await;
            let titles = |rows: Vec<Todo>| rows.into_iter().map(|t| t.title).collect::<Vec<_>>();
            let at_home = db
                .select::<Todo>()
                .filter(Todo::CATEGORY.eq(home))
                .order_by(Todo::TITLE.desc())
                .get()
                .await;
            assert_eq!(titles(at_home.unwrap()), ["Laundry", "Groceries"]);
            let page = db
                .select::<Todo>()
                .order_by(Todo::ID.asc())
                .limit(2)
                .offset(1)
                .get()
                .await
                .unwrap();
            assert_eq!(titles(page), ["Groceries", "Laundry"]);
            let combined = db
                .select::<Todo>()
                .filter(Todo::PRIORITY.ge(2).and(Todo::TITLE.like("%r%")))
                .filter(!Todo::CATEGORY.is_null())
                .order_by(Todo::ID.asc())
                .get()
                .await
                .unwrap();
            assert_eq!(titles(combined), ["Groceries", "Laundry"]);
            let listed = db
                .select::<Todo>()
                .filter(Todo::TITLE.is_in(["Report", "Nope"]))
                .get()
                .await
                .unwrap();
            assert_eq!(titles(listed), ["Report"]);
            let arithmetic = db
                .select::<Todo>()
                .filter((Todo::PRIORITY * 10 + 1).eq(31))
                .get_single()
                .await
                .unwrap();
            assert_eq!(arithmetic.title, "Laundry");
        });
    }
}

#[test]
fn find_loads_by_primary_key() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db, work, _) = seeded(backend).await;
            let found = db.find::<Category>(work).await.unwrap();
            assert_eq!(found.map(|c| c.description), Some("Work".to_owned()));
            assert_eq!(db.find::<Category>(12345).await.unwrap(), None);
            let in_unit = db
                .read(move |conn| conn.find::<Category>(work))
                .await
                .unwrap();
            assert_eq!(in_unit.map(|c| c.id), Some(work));
        });
    }
}

#[test]
fn single_and_optional_enforce_their_counts() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db, _, _) = seeded(backend).await;
            let one = db
                .select::<Todo>()
                .filter(Todo::TITLE.eq("Report"))
                .get_single()
                .await
                .unwrap();
            assert_eq!(one.priority, Some(1));
            let none = db
                .select::<Todo>()
                .filter(Todo::TITLE.eq("Nothing"))
                .get_optional()
                .await
                .unwrap();
            assert_eq!(none, None);
            let err = db
                .select::<Todo>()
                .filter(Todo::TITLE.eq("Nothing"))
                .get_single()
                .await
                .unwrap_err();
            assert!(matches!(err, Error::NoRows { .. }), "{err}");
            assert!(
                err.to_string()
                    .starts_with("query returned no rows (statement: SELECT"),
                "{err}"
            );
            let err = db.select::<Todo>().get_optional().await.unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("query returned more than one row"),
                "{err}"
            );
        });
    }
}

#[test]
fn joins_map_missing_rows_to_none() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db, work, _) = seeded(backend).await;
            let rows = db
                .select::<Todo>()
                .left_join::<Category>(Category::ID.eq(Todo::CATEGORY))
                .order_by(Todo::ID.asc())
                .get()
                .await
                .unwrap();
            let pairs: Vec<(&str, Option<&str>)> = rows
                .iter()
                .map(|(t, c)| (t.title.as_str(), c.as_ref().map(|c| c.description.as_str())))
                .collect();
            assert_eq!(
                pairs,
                [
                    ("Report", Some("Work")),
                    ("Groceries", Some("Home")),
                    ("Laundry", Some("Home")),
                    ("Call mum", None)
                ]
            );
            let inner = db
                .select::<Todo>()
                .inner_join::<Category>(Category::ID.eq(Todo::CATEGORY))
                .filter(Category::ID.eq(work))
                .get()
                .await
                .unwrap();
            assert_eq!(inner.len(), 1);
            assert_eq!(
                (inner[0].0.title.as_str(), inner[0].1.description.as_str()),
                ("Report", "Work")
            );
        });
    }
}

#[test]
fn aggregates_and_group_by() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db, work, home) = seeded(backend).await;
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 4);
            assert_eq!(
                db.select::<Todo>()
                    .filter(Todo::CATEGORY.eq(home))
                    .count()
                    .await
                    .unwrap(),
                2
            );
            let per_category = db
                .select::<Todo>()
                .columns((Todo::CATEGORY, count_all(), Todo::PRIORITY.max()))
                .group_by(Todo::CATEGORY)
                .order_by(Todo::CATEGORY.asc())
                .get()
                .await
                .unwrap();
            assert_eq!(
                per_category,
                [
                    (None, 1, Some(2)),
                    (Some(work), 1, Some(1)),
                    (Some(home), 2, Some(3))
                ]
            );
            let (sum, avg) = db
                .select::<Todo>()
                .columns((Todo::PRIORITY.sum(), Todo::PRIORITY.avg()))
                .get_single()
                .await
                .unwrap();
            assert_eq!((sum, avg), (Some(8), Some(2.0)));
            let busy = db
                .select::<Todo>()
                .columns((Todo::CATEGORY,))
                .group_by(Todo::CATEGORY)
                .having(count_all().gt(1))
                .get()
                .await
                .unwrap();
            assert_eq!(busy, [(Some(home),)]);
        });
    }
}

#[test]
fn insert_modes_upserts_and_returning() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db, work, _) = seeded(backend).await;
            let stored = db
                .insert(todo("Dentist", "9am", None))
                .returning()
                .await
                .unwrap();
            assert_eq!(
                (stored.title.as_str(), stored.done, stored.category),
                ("Dentist", false, None)
            );

            let dup = CategoryCompanion {
                description: set("Work"),
                ..absent()
            };
            let ignored = db.insert(dup.clone()).or_ignore().execute().await.unwrap();
            assert_eq!(ignored.rows_affected, 0);
            let err = db.insert(dup.clone()).await.unwrap_err();
            assert_eq!(
                err.constraint_kind(),
                Some(driftwood::ConstraintKind::Unique)
            );

            let upsert = OnConflict::update(
                &[&Category::DESCRIPTION],
                &CategoryCompanion {
                    description: set("Office"),
                    ..absent()
                },
            );
            db.insert(dup.clone()).on_conflict(upsert).await.unwrap();
            let renamed = db
                .select::<Category>()
                .filter(Category::ID.eq(work))
                .get_single()
                .await
                .unwrap();
            assert_eq!(renamed.description, "Office");

            let nothing = OnConflict::do_nothing(&[&Category::DESCRIPTION]);
            let done = db
                .insert(CategoryCompanion {
                    description: set("Office"),
                    ..absent()
                })
                .on_conflict(nothing)
                .execute()
                .await;
            assert_eq!(done.unwrap().rows_affected, 0);

            let replaced = Category {
                id: work,
                description: "Job".into(),
            };
            db.insert(&replaced).or_replace().await.unwrap();
            assert_eq!(
                db.select::<Category>()
                    .filter(Category::ID.eq(work))
                    .get_single()
                    .await
                    .unwrap(),
                replaced
            );
        });
    }
}

#[test]
fn updates_replace_and_deletes_report_counts() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db, _, home) = seeded(backend).await;
            let changed = db
                .update::<Todo>()
                .filter(Todo::CATEGORY.eq(home))
                .set(&TodoCompanion {
                    done: set(true),
                    ..absent()
                })
                .await
                .unwrap();
            assert_eq!(changed, 2);
            assert_eq!(
                db.select::<Todo>()
                    .filter(Todo::DONE.eq(true))
                    .count()
                    .await
                    .unwrap(),
                2
            );

            let mut report = db
                .select::<Todo>()
                .filter(Todo::TITLE.eq("Report"))
                .get_single()
                .await
                .unwrap();
            report.content = "quarterly".into();
            assert_eq!(db.replace(&report).await.unwrap(), 1);
            assert_eq!(
                db.select::<Todo>()
                    .filter(Todo::ID.eq(report.id))
                    .get_single()
                    .await
                    .unwrap(),
                report
            );

            let err = db.update::<Todo>().await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid argument: update of `todos` sets no column"
            );

            assert_eq!(
                db.delete::<Todo>()
                    .filter(Todo::DONE.eq(true))
                    .await
                    .unwrap(),
                2
            );
            assert_eq!(db.select::<Todo>().count().await.unwrap(), 2);
        });
    }
}

#[test]
fn raw_sql_binds_arguments() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db, _, _) = seeded(backend).await;
            let rows = db
                .custom_select(
                    "SELECT title, priority FROM todos WHERE priority = ? ORDER BY title",
                    args![2],
                )
                .await
                .unwrap();
            let got: Vec<(String, i64)> = rows
                .iter()
                .map(|r| (r.get(0).unwrap(), r.get_named("priority").unwrap()))
                .collect();
            assert_eq!(
                got,
                [("Call mum".to_owned(), 2), ("Groceries".to_owned(), 2)]
            );
            let hostile = "x'); DROP TABLE todos; --";
            let done = db
                .custom_statement(
                    "UPDATE todos SET body = ? WHERE title = ?",
                    args![hostile, "Report"],
                )
                .await
                .unwrap();
            assert_eq!(done.rows_affected, 1);
            let body: String = db
                .custom_select("SELECT body FROM todos WHERE title = 'Report'", [])
                .await
                .unwrap()[0]
                .get(0)
                .unwrap();
            assert_eq!(body, hostile);
        });
    }
}

#[test]
fn batches_and_units_of_work_run_in_one_transaction() {
    for backend in BACKENDS {
        block_on(async move {
            let (_dir, db, _, _) = seeded(backend).await;
            let mut batch = Batch::new();
            batch.insert(todo("Batch one", "a", None));
            batch.insert(todo("Batch two", "b", None));
            batch.custom_statement(
                "UPDATE todos SET done = 1 WHERE title LIKE 'Batch%'",
                vec![],
            );
            assert_eq!(batch.len(), 3);
            db.run_batch(batch).await.unwrap();
            assert_eq!(
                db.select::<Todo>()
                    .filter(Todo::DONE.eq(true))
                    .count()
                    .await
                    .unwrap(),
                2
            );

            // A failing statement rolls the whole batch back.
            let mut bad = Batch::new();
            bad.insert(todo("Kept? no", "a", None));
            bad.insert(todo("x", "too short title", None));
            let err = db.run_batch(bad).await.unwrap_err();
            assert_eq!(
                err.constraint_kind(),
                Some(driftwood::ConstraintKind::Check)
            );
            assert_eq!(
                db.select::<Todo>()
                    .filter(Todo::TITLE.eq("Kept? no"))
                    .count()
                    .await
                    .unwrap(),
                0
            );

            let rows: Vec<TodoCompanion> = (0..50)
                .map(|i| todo(&format!("Bulk {i:03}"), "x", None))
                .collect();
            let inserted = db.write(move |conn| conn.insert_all(&rows)).await.unwrap();
            assert_eq!(inserted.rows_affected, 50);
            let counted = db
                .read(|conn| {
                    conn.select::<Todo>()
                        .filter(Todo::TITLE.like("Bulk%"))
                        .count()
                })
                .await
                .unwrap();
            assert_eq!(counted, 50);
        });
    }
}

// Probe (bulk inserts bind each row in place while its given columns match
// the statement prepared for the rows before it): rows whose given columns
// change — one column more, one fewer, back again — each get a statement of
// their own and keep exactly their values, never a stale binding.
#[test]
fn bulk_inserts_whose_given_columns_change_keep_every_value() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (_dir, db) = open(backend).await;
                let row = |i: usize| {
                    let mut row = todo(&format!("Mix {i:03}"), &format!("body {i}"), None);
                    match i % 4 {
                        0 => {}
                        1 => row.done = set(true),
                        2 => row.priority = set(Some(i as i32)),
                        _ => {
                            row.done = set(true);
                            row.priority = set(Some(i as i32));
                        }
                    }
                    row
                };
                // Runs of equal column sets, then every row a different set.
                let order: Vec<usize> = (0..12).map(|i| i / 3).chain(0..12).collect();
                let rows: Vec<TodoCompanion> = order.iter().map(|&i| row(i)).collect();
                let inserted = db.write(move |conn| conn.insert_all(&rows)).await.unwrap();
                assert_eq!(inserted.rows_affected, order.len() as u64);
                let stored = db
                    .select::<Todo>()
                    .filter(Todo::TITLE.like("Mix%"))
                    .order_by(Todo::ID.asc())
                    .get()
                    .await
                    .unwrap();
                let got: Vec<(String, String, bool, Option<i32>)> = stored
                    .into_iter()
                    .map(|t| (t.title, t.content, t.done, t.priority))
                    .collect();
                let expected: Vec<(String, String, bool, Option<i32>)> = order
                    .iter()
                    .map(|&i| {
                        let done = i % 4 == 1 || i % 4 == 3;
                        let priority = (i % 4 >= 2).then_some(i as i32);
                        (format!("Mix {i:03}"), format!("body {i}"), done, priority)
                    })
                    .collect();
                assert_eq!(got, expected);
            });
        });
    }
}

// Scenario (found writing watch tests): the column count of a cached
// `SELECT *` was read before its first step, so after `ALTER TABLE … ADD
// COLUMN` (SQLite re-prepares the statement when it steps) rows kept the
// old number of columns.
#[test]
fn a_cached_select_star_sees_columns_added_after_it_was_prepared() {
    for backend in BACKENDS {
        within(60, move || {
            block_on(async move {
                let (_dir, db) = open(backend).await;
                db.custom_statement("CREATE TABLE notes (body TEXT)", [])
                    .await
                    .unwrap();
                db.custom_statement("INSERT INTO notes VALUES ('one')", [])
                    .await
                    .unwrap();
                let before = db.custom_select("SELECT * FROM notes", []).await.unwrap();
                assert_eq!(before[0].columns(), ["body"]);
                db.custom_statement("ALTER TABLE notes ADD COLUMN extra TEXT DEFAULT 'x'", [])
                    .await
                    .unwrap();
                let after = db.custom_select("SELECT * FROM notes", []).await.unwrap();
                assert_eq!(after[0].columns(), ["body", "extra"], "{backend:?}");
                assert_eq!(after[0].get::<String>(1).unwrap(), "x");
            })
        });
    }
}
