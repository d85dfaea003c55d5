//! The client side is plain futures: the same background database works from
//! tokio's multi-threaded runtime, from a single-threaded executor with many
//! tasks, and from synchronous code through `driftwood::block_on`.

mod common;

use common::*;
use driftwood::prelude::*;
use futures::task::LocalSpawnExt;

#[test]
fn tokio_tasks_share_a_background_database() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::<TodoDb>::open_in_background(dir.path().join("tokio.db"))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let db = db.clone();
                tokio::spawn(async move {
                    for n in 0..25 {
                        db.insert(todo(&format!("t{task} n{n:02}"), "x", None))
                            .await
                            .unwrap();
                    }
                    let tx = db.begin().await.unwrap();
                    tx.insert(todo(&format!("t{task} in tx"), "x", None))
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(db.select::<Todo>().count().await.unwrap(), 8 * 26);
    });
}

#[test]
fn many_tasks_on_one_thread_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let db = driftwood::block_on(Db::<TodoDb>::open_in_background(
        dir.path().join("local.db"),
    ))
    .unwrap();
    let mut pool = futures::executor::LocalPool::new();
    for task in 0..16 {
        let db = db.clone();
        pool.spawner()
            .spawn_local(async move {
                for n in 0..10 {
                    db.insert(todo(&format!("l{task:02} n{n}"), "x", None))
                        .await
                        .unwrap();
                    db.select::<Todo>().count().await.unwrap();
                }
            })
            .unwrap();
    }
    pool.run();
    assert_eq!(
        driftwood::block_on(db.select::<Todo>().count()).unwrap(),
        160
    );
}

#[test]
fn synchronous_code_blocks_on_the_same_api() {
    let (_dir, db) = driftwood::block_on(open(Backend::Background));
    let id = driftwood::block_on(db.insert(todo("Blocking", "x", None))).unwrap();
    let found = driftwood::block_on(db.find::<Todo>(id)).unwrap();
    assert_eq!(found.map(|t| t.title), Some("Blocking".to_owned()));
}
