//! Tests of the embedded queue: visibility on the injected clock, dead-lettering, FIFO groups
//! and deduplication, and long polls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::tests::{clock, store_in};
use crate::error::StoreError;
use crate::queue::{OutgoingMessage, Queue, QueueCounts, QueueDef, ReceiveRequest, ReceivedMessage};

fn now() -> ReceiveRequest {
    ReceiveRequest::new(10, Duration::ZERO)
}

fn bodies(messages: &[ReceivedMessage]) -> Vec<&str> {
    messages.iter().map(|message| message.body.as_str()).collect()
}

fn grouped(body: &str, group: &str) -> OutgoingMessage {
    OutgoingMessage {
        group_id: Some(group.into()),
        ..OutgoingMessage::new(body)
    }
}

const fn counts(visible: u64, in_flight: u64, delayed: u64) -> QueueCounts {
    QueueCounts {
        visible,
        in_flight,
        delayed,
    }
}

#[tokio::test]
async fn messages_come_back_after_their_visibility_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let queue = QueueDef::standard("work");
    for body in ["one", "two"] {
        store.send(&queue, OutgoingMessage::new(body)).await.expect("send");
    }
    let first = store
        .receive(&queue, ReceiveRequest::new(1, Duration::ZERO))
        .await
        .expect("receive");
    assert_eq!(bodies(&first), ["one"]);
    assert_eq!(store.counts(&queue).await.expect("counts"), counts(1, 1, 0));

    clock.advance(time::Duration::seconds(30));
    let again = store.receive(&queue, now()).await.expect("receive");
    assert_eq!(bodies(&again), ["one", "two"]);
    assert_eq!(again[0].receive_count, 2);
    assert_eq!(again[0].message_id, first[0].message_id);
    let stale = &first[0].receipt;
    let refused = store.change_visibility(&queue, stale, Duration::ZERO).await;
    assert!(matches!(refused, Err(StoreError::NotFound(_))));
    store
        .delete(&queue, stale)
        .await
        .expect("a stale receipt deletes nothing");
    assert_eq!(store.counts(&queue).await.expect("counts"), counts(0, 2, 0));

    store
        .change_visibility(&queue, &again[0].receipt, Duration::ZERO)
        .await
        .expect("release");
    store.delete(&queue, &again[1].receipt).await.expect("delete");
    assert_eq!(store.counts(&queue).await.expect("counts"), counts(1, 0, 0));
    let half = Duration::from_millis(500);
    let fractional = store.change_visibility(&queue, &again[0].receipt, half).await;
    assert!(matches!(fractional, Err(StoreError::InvalidInput(_))));
}

#[tokio::test]
async fn delayed_messages_wait_their_turn() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let queue = QueueDef::standard("work");
    let later = OutgoingMessage {
        delay: Duration::from_secs(5),
        ..OutgoingMessage::new("later")
    };
    store.send(&queue, later).await.expect("send");
    assert_eq!(store.counts(&queue).await.expect("counts"), counts(0, 0, 1));
    assert!(store.receive(&queue, now()).await.expect("receive").is_empty());
    clock.advance(time::Duration::seconds(5));
    assert_eq!(bodies(&store.receive(&queue, now()).await.expect("receive")), ["later"]);
}

#[tokio::test]
async fn too_often_received_messages_move_to_the_dead_letter_queue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let dlq = QueueDef::standard("work-dlq");
    let queue = QueueDef::standard("work").with_dead_letter(dlq.clone(), 2);
    store.send(&queue, OutgoingMessage::new("poison")).await.expect("send");
    store.send(&queue, OutgoingMessage::new("fine")).await.expect("send");
    for _ in 0..2 {
        let got = store
            .receive(&queue, ReceiveRequest::new(1, Duration::ZERO))
            .await
            .expect("receive");
        assert_eq!(bodies(&got), ["poison"]);
        clock.advance(time::Duration::seconds(30));
    }
    let got = store
        .receive(&queue, ReceiveRequest::new(1, Duration::ZERO))
        .await
        .expect("receive");
    assert_eq!(
        bodies(&got),
        ["fine"],
        "the poison message moved on and the next one came"
    );
    let dead = store.receive(&dlq, now()).await.expect("receive dlq");
    assert_eq!(bodies(&dead), ["poison"]);
    assert_eq!(dead[0].receive_count, 1);
}

#[tokio::test]
async fn a_fifo_group_waits_for_its_message_in_flight() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let queue = QueueDef::fifo("chat.fifo");
    for (body, group) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("a3", "a")] {
        store.send(&queue, grouped(body, group)).await.expect("send");
    }
    let one = ReceiveRequest::new(1, Duration::ZERO);
    let a1 = store.receive(&queue, one).await.expect("receive");
    assert_eq!(bodies(&a1), ["a1"]);
    assert_eq!(a1[0].group_id.as_deref(), Some("a"));
    let b1 = store.receive(&queue, now()).await.expect("receive");
    assert_eq!(bodies(&b1), ["b1"], "group a is blocked while a1 is in flight");
    store.delete(&queue, &b1[0].receipt).await.expect("delete");
    store.delete(&queue, &a1[0].receipt).await.expect("delete");
    let rest = store.receive(&queue, now()).await.expect("receive");
    assert_eq!(bodies(&rest), ["a2", "a3"], "one receive may carry several of a group");

    store
        .change_visibility(&queue, &rest[0].receipt, Duration::ZERO)
        .await
        .expect("release a2");
    let blocked = store.receive(&queue, now()).await.expect("receive");
    assert!(blocked.is_empty(), "a3 is still in flight, so a2 waits");
    clock.advance(time::Duration::seconds(30));
    let again = store.receive(&queue, now()).await.expect("receive");
    assert_eq!(bodies(&again), ["a2", "a3"]);
}

#[tokio::test]
async fn fifo_duplicates_within_five_minutes_are_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let queue = QueueDef::fifo("chat.fifo");
    let first = store.send(&queue, grouped("hello", "a")).await.expect("send");
    let duplicate = store.send(&queue, grouped("hello", "b")).await.expect("send");
    assert_eq!(first, duplicate);
    let explicit = OutgoingMessage {
        deduplication_id: Some("reply-1".into()),
        ..grouped("hello again", "a")
    };
    let third = store.send(&queue, explicit.clone()).await.expect("send");
    assert_ne!(third, first);
    assert_eq!(store.send(&queue, explicit.clone()).await.expect("send"), third);
    assert_eq!(store.counts(&queue).await.expect("counts"), counts(2, 0, 0));

    clock.advance(time::Duration::minutes(5));
    let fresh = store.send(&queue, explicit).await.expect("send");
    assert_ne!(fresh, third);
    assert_eq!(store.counts(&queue).await.expect("counts"), counts(3, 0, 0));
}

#[tokio::test]
async fn a_long_poll_wakes_as_soon_as_a_message_is_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(store_in(dir.path(), &clock()));
    let queue = QueueDef::standard("work");
    let sender = {
        let (store, queue) = (store.clone(), queue.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let sent_at = Instant::now();
            store.send(&queue, OutgoingMessage::new("ping")).await.expect("send");
            sent_at
        })
    };
    let started = Instant::now();
    let got = store
        .receive(&queue, ReceiveRequest::new(1, Duration::from_secs(10)))
        .await
        .expect("receive");
    let received_at = Instant::now();
    let sent_at = sender.await.expect("sender");
    assert_eq!(bodies(&got), ["ping"]);
    assert!(sent_at - started >= Duration::from_millis(200));
    assert!(
        received_at - sent_at < Duration::from_millis(100),
        "{:?}",
        received_at - sent_at
    );
}

#[tokio::test]
async fn an_empty_receive_without_wait_returns_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let started = Instant::now();
    let got = store
        .receive(&QueueDef::standard("idle"), now())
        .await
        .expect("receive");
    assert!(got.is_empty());
    assert!(started.elapsed() < Duration::from_millis(100));
    let invalid = store.receive(&QueueDef::standard("bad name"), now()).await;
    assert!(matches!(invalid, Err(StoreError::InvalidInput(_))));
    let empty = store.delete(&QueueDef::standard("idle"), "").await;
    assert!(matches!(empty, Err(StoreError::InvalidInput(_))));
}

#[tokio::test]
async fn a_long_poll_notices_a_delayed_message_coming_due() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let queue = QueueDef::standard("work");
    let later = OutgoingMessage {
        delay: Duration::from_secs(60),
        ..OutgoingMessage::new("later")
    };
    store.send(&queue, later).await.expect("send");
    let ticker = clock.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ticker.advance(time::Duration::seconds(60));
    });
    let started = Instant::now();
    let got = store
        .receive(&queue, ReceiveRequest::new(1, Duration::from_secs(10)))
        .await
        .expect("receive");
    assert_eq!(bodies(&got), ["later"]);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_long_poll_sees_sends_through_another_handle_on_the_same_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let receiver = store_in(dir.path(), &clock);
    let other = store_in(dir.path(), &clock);
    let queue = QueueDef::standard("work");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        other
            .send(&queue, OutgoingMessage::new("from afar"))
            .await
            .expect("send");
    });
    let started = Instant::now();
    let request = ReceiveRequest::new(1, Duration::from_secs(10));
    let got = receiver
        .receive(&QueueDef::standard("work"), request)
        .await
        .expect("receive");
    assert_eq!(bodies(&got), ["from afar"]);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

/// A number freed by deleting a queue's newest message may be given again; the message that
/// gets it still comes after every message left, so a FIFO group keeps its order.
#[tokio::test]
async fn a_message_sent_after_the_newest_was_deleted_still_comes_last() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let queue = QueueDef::fifo("chat.fifo");
    let other = QueueDef::standard("other");
    store.send(&queue, grouped("a1", "a")).await.expect("send");
    store.send(&other, OutgoingMessage::new("x")).await.expect("send");
    let newest = store.receive(&other, now()).await.expect("receive");
    store
        .delete(&other, &newest[0].receipt)
        .await
        .expect("delete the newest");
    store.send(&queue, grouped("a2", "a")).await.expect("send");
    let first = store
        .receive(&queue, ReceiveRequest::new(1, Duration::ZERO))
        .await
        .expect("receive");
    assert_eq!(bodies(&first), ["a1"]);
    store.delete(&queue, &first[0].receipt).await.expect("delete");
    assert_eq!(bodies(&store.receive(&queue, now()).await.expect("receive")), ["a2"]);
}

/// A file of schema version 3 numbered messages with AUTOINCREMENT; opened now, its table is
/// rebuilt without it, and its messages keep their order, state and receipts.
#[tokio::test]
async fn opening_a_version_3_file_keeps_its_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let queue = QueueDef::standard("work");
    let in_flight = {
        let store = store_in(dir.path(), &clock);
        for body in ["one", "two", "three"] {
            store.send(&queue, OutgoingMessage::new(body)).await.expect("send");
        }
        store
            .receive(&queue, ReceiveRequest::new(1, Duration::ZERO))
            .await
            .expect("receive")
    };
    let file = dir.path().join("store.sqlite3");
    let connection = rusqlite::Connection::open(&file).expect("open");
    connection
        .execute_batch(
            "DROP INDEX messages_by_queue; DROP INDEX messages_by_receipt;
             ALTER TABLE messages RENAME TO messages_v4;
             CREATE TABLE messages (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, id TEXT NOT NULL, grp TEXT,
                 visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT,
                 body TEXT NOT NULL);
             INSERT INTO messages SELECT * FROM messages_v4; DROP TABLE messages_v4;
             CREATE INDEX messages_by_queue ON messages (queue, seq, visible_at);
             CREATE UNIQUE INDEX messages_by_receipt ON messages (receipt) WHERE receipt IS NOT NULL;
             PRAGMA user_version = 3;",
        )
        .expect("make a version 3 file");
    drop(connection);

    let store = store_in(dir.path(), &clock);
    let schema: String = rusqlite::Connection::open(&file)
        .expect("open")
        .query_row("SELECT sql FROM sqlite_schema WHERE name = 'messages'", [], |row| {
            row.get(0)
        })
        .expect("schema");
    assert!(!schema.contains("AUTOINCREMENT"), "{schema}");
    store.send(&queue, OutgoingMessage::new("four")).await.expect("send");
    assert_eq!(store.counts(&queue).await.expect("counts"), counts(3, 1, 0));
    assert_eq!(
        bodies(&store.receive(&queue, now()).await.expect("receive")),
        ["two", "three", "four"]
    );
    store
        .delete(&queue, &in_flight[0].receipt)
        .await
        .expect("the receipt from before still deletes");
    assert_eq!(store.counts(&queue).await.expect("counts"), counts(0, 3, 0));
}
