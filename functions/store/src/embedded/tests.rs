//! Tests of what only the embedded backend has: its files, and surviving a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tessera_core::ManualClock;
use time::macros::datetime;

use super::*;
use crate::blob::{BlobStore, BucketDef};
use crate::item::{Item, ItemStore, Key, TableDef};
use crate::queue::{OutgoingMessage, Queue, QueueDef, ReceiveRequest};

/// A clock stopped at a fixed instant.
pub(super) fn clock() -> ManualClock {
    ManualClock::new(datetime!(2025-12-17 20:00:00 UTC))
}

/// A store in `dir` on `clock`.
pub(super) fn store_in(dir: &Path, clock: &ManualClock) -> EmbeddedStore {
    store_with_limits(dir, clock, schema::LogLimits::default())
}

/// A store in `dir` on `clock`, its write-ahead log started over at `limits`.
fn store_with_limits(dir: &Path, clock: &ManualClock, limits: schema::LogLimits) -> EmbeddedStore {
    let config = EmbeddedConfig {
        dir: dir.to_owned(),
        public_url: "http://localhost:8080/".into(),
        clock: Arc::new(clock.clone()),
    };
    EmbeddedStore::open_with(config, limits).expect("open the store")
}

/// A JSON object as an item.
pub(super) fn item(value: serde_json::Value) -> Item {
    value.as_object().cloned().expect("an object")
}

fn table() -> TableDef {
    TableDef {
        name: "jobs".into(),
        indexes: vec![].into(),
    }
}

fn bucket() -> BucketDef {
    BucketDef {
        name: "files".into(),
        expire_after_days: None,
    }
}

#[tokio::test]
async fn a_reopened_store_keeps_items_messages_blobs_and_its_signing_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let queue = QueueDef::standard("work");
    let store = store_in(dir.path(), &clock);
    let job = item(json!({"pk": "job#1", "sk": "meta", "status": "QUEUED"}));
    ItemStore::put(&store, &table(), job.clone(), None).await.expect("put");
    let sent = store.send(&queue, OutgoingMessage::new("job#1")).await.expect("send");
    let body = Bytes::from_static(b"hello");
    BlobStore::put(&store, &bucket(), "a/b.txt", body.clone(), "text/plain")
        .await
        .expect("put blob");
    let url = store
        .signed_url(&bucket(), "a/b.txt", Duration::from_secs(60))
        .await
        .expect("url");
    drop(store);

    let reopened = store_in(dir.path(), &clock);
    let key = Key::new("job#1", "meta");
    assert_eq!(ItemStore::get(&reopened, &table(), &key).await.expect("get"), Some(job));
    let received = reopened
        .receive(&queue, ReceiveRequest::new(1, Duration::ZERO))
        .await
        .expect("receive");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].message_id, sent);
    let blob = BlobStore::get(&reopened, &bucket(), "a/b.txt").await.expect("get blob");
    assert_eq!(blob.map(|blob| blob.body), Some(body));
    let reopened_url = reopened
        .signed_url(&bucket(), "a/b.txt", Duration::from_secs(60))
        .await
        .expect("url");
    assert_eq!(url, reopened_url, "the same key signs the same URL");
}

#[test]
fn the_store_creates_its_folder_and_a_private_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nested = dir.path().join("data").join("store");
    drop(store_in(&nested, &clock()));
    assert!(nested.join("store.sqlite3").is_file());
    assert!(nested.join("blobs").is_dir());
    let key = nested.join("signing.key");
    assert_eq!(std::fs::read(&key).expect("key").len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn a_damaged_key_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("signing.key"), b"short").expect("write");
    let opened = EmbeddedStore::open(EmbeddedConfig {
        dir: dir.path().to_owned(),
        public_url: "http://localhost".into(),
        clock: Arc::new(clock()),
    });
    assert!(matches!(opened, Err(StoreError::Internal(_))));
}

#[test]
fn prefix_upper_bounds_bump_the_last_code_point() {
    assert_eq!(prefix_upper_bound("job#"), Some("job$".into()));
    assert_eq!(prefix_upper_bound("a\u{D7FF}"), Some("a\u{E000}".into()));
    assert_eq!(prefix_upper_bound("a\u{10FFFF}"), Some("b".into()));
    assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    assert_eq!(prefix_upper_bound(""), None);
}

/// Commits leave their pages in the write-ahead log (no commit checkpoints); the store's own
/// thread copies them into the database file soon after.
#[tokio::test]
async fn the_checkpointer_copies_the_log_into_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let file = dir.path().join("store.sqlite3");
    let size = || std::fs::metadata(&file).expect("the file").len();
    let before = size();
    let padding = "x".repeat(2000);
    for n in 0..200 {
        let row = item(json!({"pk": format!("job#{n}"), "sk": "meta", "padding": padding}));
        ItemStore::put(&store, &table(), row, None).await.expect("put");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while size() < before + 200 * 2000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        size() >= before + 200 * 2000,
        "the file grew from {before} to only {} bytes",
        size()
    );
}

/// The write-ahead log starts over while writes go on without a pause (a checkpoint alone
/// never catches up with them, and the log would grow without end): its header's checkpoint
/// sequence number, which each new start increments, moves during a steady stream of writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_starts_over_while_writes_go_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Limits this test's writes cross every few hundred milliseconds (the defaults take seconds
    // of an unoptimised build's writes).
    let limits = schema::LogLimits {
        restart_frames: 1024,
        cap_frames: 2048,
    };
    let store = Arc::new(store_with_limits(dir.path(), &clock(), limits));
    let log = dir.path().join("store.sqlite3-wal");
    let sequence = || {
        let header = std::fs::read(&log).ok()?;
        Some(u32::from_be_bytes(header.get(16..20)?.try_into().ok()?))
    };
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let padding = "x".repeat(1000);
                let mut n = 0;
                while std::time::Instant::now() < until {
                    let row = item(
                        json!({"pk": format!("job#{writer}-{}", n % 500), "sk": "meta", "n": n, "padding": padding}),
                    );
                    ItemStore::put(&*store, &table(), row, None).await.expect("put");
                    n += 1;
                }
            })
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    while std::time::Instant::now() < until {
        seen.extend(sequence());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    assert!(
        seen.len() >= 3,
        "the log started over {} time(s) in 3 s of writes",
        seen.len().saturating_sub(1)
    );
}

/// How many reader connections the store has opened and keeps idle.
fn pooled_readers(store: &EmbeddedStore) -> usize {
    store.readers.lock().expect("pool").len()
}

#[tokio::test]
#[expect(
    clippy::await_holding_lock,
    reason = "the test holds the writer's connection, as a write in progress does, across a read"
)]
async fn short_reads_use_the_writers_connection_when_it_is_free_and_a_reader_when_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let key = Key::new("job#1", "meta");
    ItemStore::put(&store, &table(), item(json!({"pk": "job#1", "sk": "meta"})), None)
        .await
        .expect("put");
    let found = ItemStore::get(&store, &table(), &key).await.expect("get");
    assert!(found.is_some());
    assert_eq!(pooled_readers(&store), 0, "a read with the writer free opened a reader");
    let short = crate::item::Query::partition("job#1");
    let page = ItemStore::query(&store, &table(), short.clone()).await.expect("query");
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        pooled_readers(&store),
        0,
        "a short query with the writer free opened a reader"
    );
    let long = crate::item::Query { limit: 1000, ..short };
    let page = ItemStore::query(&store, &table(), long).await.expect("query");
    assert_eq!(page.items.len(), 1);
    assert_eq!(pooled_readers(&store), 1, "a query of up to 1,000 rows took the writer");

    let busy = store.db();
    let found = tokio::time::timeout(Duration::from_secs(5), ItemStore::get(&store, &table(), &key))
        .await
        .expect("a read while the writer is busy must not wait for it")
        .expect("get");
    assert!(found.is_some(), "a read beside a busy writer missed a committed item");
    drop(busy);
}

#[tokio::test]
async fn reads_never_see_a_write_that_has_not_committed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    {
        let db = store.db();
        db.execute_batch("BEGIN IMMEDIATE").expect("begin");
        db.execute(
            "INSERT INTO items (tbl, pk, sk, doc) VALUES ('jobs', 'job#1', 'meta', '{\"pk\":\"job#1\",\"sk\":\"meta\"}')",
            [],
        )
        .expect("insert");
    }
    let found = ItemStore::get(&store, &table(), &Key::new("job#1", "meta"))
        .await
        .expect("get");
    assert!(found.is_none(), "a read saw a write that was never committed");
    store.db().execute_batch("ROLLBACK").expect("rollback");
}

/// The nice values of this process's threads named `name` (the kernel keeps a name's first 15
/// bytes).
#[cfg(target_os = "linux")]
fn nice_of_threads(name: &str) -> Vec<i32> {
    let kept = &name[..name.len().min(15)];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim_end() == kept).then_some(())?;
            nice_in_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)
        })
        .collect()
}

/// The nice value in a `/proc/.../stat` line: its 19th field, the 17th after the name's `)`.
#[cfg(target_os = "linux")]
fn nice_in_stat(stat: &str) -> Option<i32> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
}

#[cfg(target_os = "linux")]
#[test]
fn the_checkpointer_runs_in_the_background_and_the_log_restarts_at_the_writers_priority() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _store = store_in(dir.path(), &clock());
    let own = std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| nice_in_stat(&stat))
        .expect("this thread's nice value");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let checkpointers = loop {
        let nice = nice_of_threads("tessera-checkpoint");
        if (!nice.is_empty() && nice.iter().all(|&nice| nice == 19)) || std::time::Instant::now() > deadline {
            break nice;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(!checkpointers.is_empty(), "no checkpointer thread");
    assert!(
        checkpointers.iter().all(|&nice| nice == 19),
        "checkpointers' nice values: {checkpointers:?}"
    );
    let restarters = nice_of_threads("tessera-log-restart");
    assert!(!restarters.is_empty(), "no restart thread");
    assert!(
        restarters.iter().all(|&nice| nice == own),
        "restart threads' nice values {restarters:?}, the writers' {own}"
    );
}
