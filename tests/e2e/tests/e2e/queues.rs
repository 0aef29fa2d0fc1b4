//! Conformance of the queue: both backends deliver, hide, redrive and order messages the same way.

use std::time::{Duration, Instant};

use tessera_store::queue::{OutgoingMessage, QueueDef, ReceiveRequest, ReceivedMessage};
use tessera_store::{QueueCounts, StoreError};

use crate::conformance;
use crate::support::Backend;

const NO_WAIT: Duration = Duration::ZERO;

conformance!(
    a_sent_message_is_received_once_and_deleted,
    a_received_message_is_invisible_until_its_timeout_then_returns_then_goes_to_the_dlq,
    change_visibility_releases_or_extends_a_message,
    a_long_poll_returns_within_100_ms_of_a_send,
    a_long_poll_without_messages_waits_its_full_time,
    a_delayed_message_stays_hidden_until_its_delay_passes,
    a_receive_returns_at_most_ten_messages_and_all_are_delivered,
    fifo_delivers_each_group_in_order_one_batch_in_flight_at_a_time,
    fifo_drops_duplicates_within_the_deduplication_window,
    invalid_messages_are_refused,
);

async fn receive(backend: &Backend, queue: &QueueDef, max: u32, wait: Duration) -> Vec<ReceivedMessage> {
    backend
        .queue
        .receive(queue, ReceiveRequest::new(max, wait))
        .await
        .expect("receive")
}

fn bodies(messages: &[ReceivedMessage]) -> Vec<&str> {
    messages.iter().map(|message| message.body.as_str()).collect()
}

async fn a_sent_message_is_received_once_and_deleted(backend: Backend) {
    let queue = backend.fresh_queue(QueueDef::standard("basic")).await;
    let id = backend
        .queue
        .send(&queue, OutgoingMessage::new(r#"{"job_id":"job_abc123def456"}"#))
        .await
        .expect("send");
    let received = receive(&backend, &queue, 10, Duration::from_secs(2)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].message_id, id);
    assert_eq!(received[0].body, r#"{"job_id":"job_abc123def456"}"#);
    assert_eq!(received[0].receive_count, 1);
    assert_eq!(received[0].group_id, None);
    assert_eq!(
        backend.queue.counts(&queue).await.expect("counts"),
        QueueCounts {
            visible: 0,
            in_flight: 1,
            delayed: 0
        }
    );
    backend
        .queue
        .delete(&queue, &received[0].receipt)
        .await
        .expect("delete");
    backend
        .queue
        .delete(&queue, &received[0].receipt)
        .await
        .expect("deleting twice succeeds");
    assert_eq!(
        backend.queue.counts(&queue).await.expect("counts"),
        QueueCounts::default()
    );
    assert!(receive(&backend, &queue, 10, NO_WAIT).await.is_empty());
}

async fn a_received_message_is_invisible_until_its_timeout_then_returns_then_goes_to_the_dlq(backend: Backend) {
    let dead = QueueDef::standard("redrive-dlq");
    let def = QueueDef {
        visibility_timeout: Duration::from_secs(1),
        ..QueueDef::standard("redrive")
    }
    .with_dead_letter(dead, 2);
    let queue = backend.fresh_queue(def).await;
    let dlq = queue.dead_letter.clone().expect("dlq").queue;
    backend
        .queue
        .send(&queue, OutgoingMessage::new("poison"))
        .await
        .expect("send");

    let first = receive(&backend, &queue, 1, NO_WAIT).await;
    assert_eq!((bodies(&first), first[0].receive_count), (vec!["poison"], 1));
    assert!(
        receive(&backend, &queue, 1, NO_WAIT).await.is_empty(),
        "invisible while in flight"
    );
    assert_eq!(backend.queue.counts(&queue).await.expect("counts").in_flight, 1);

    tokio::time::sleep(Duration::from_millis(1300)).await;
    let second = receive(&backend, &queue, 1, NO_WAIT).await;
    assert_eq!(
        (bodies(&second), second[0].receive_count),
        (vec!["poison"], 2),
        "back after the timeout"
    );

    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        receive(&backend, &queue, 1, NO_WAIT).await.is_empty(),
        "a third receive dead-letters it"
    );
    let dead_lettered = receive(&backend, &dlq, 1, Duration::from_secs(2)).await;
    assert_eq!(bodies(&dead_lettered), ["poison"]);
    assert_eq!(
        backend.queue.counts(&queue).await.expect("counts"),
        QueueCounts::default()
    );
}

async fn change_visibility_releases_or_extends_a_message(backend: Backend) {
    let queue = backend.fresh_queue(QueueDef::standard("visibility")).await;
    backend
        .queue
        .send(&queue, OutgoingMessage::new("work"))
        .await
        .expect("send");
    let first = receive(&backend, &queue, 1, NO_WAIT).await;
    backend
        .queue
        .change_visibility(&queue, &first[0].receipt, Duration::ZERO)
        .await
        .expect("release");
    let again = receive(&backend, &queue, 1, Duration::from_secs(1)).await;
    assert_eq!((bodies(&again), again[0].receive_count), (vec!["work"], 2));
    let request = ReceiveRequest {
        visibility_timeout: Some(Duration::from_secs(1)),
        ..ReceiveRequest::new(1, NO_WAIT)
    };
    backend
        .queue
        .change_visibility(&queue, &again[0].receipt, Duration::from_secs(60))
        .await
        .expect("extend");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        backend
            .queue
            .receive(&queue, request)
            .await
            .expect("receive")
            .is_empty(),
        "extended"
    );
    backend.queue.delete(&queue, &again[0].receipt).await.expect("delete");
}

async fn a_long_poll_returns_within_100_ms_of_a_send(backend: Backend) {
    let queue = backend.fresh_queue(QueueDef::standard("longpoll")).await;
    let poller = {
        let (port, queue) = (backend.queue.clone(), queue.clone());
        tokio::spawn(async move {
            let messages = port
                .receive(&queue, ReceiveRequest::new(1, Duration::from_secs(10)))
                .await
                .expect("long poll");
            (messages, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent_at = Instant::now();
    backend
        .queue
        .send(&queue, OutgoingMessage::new("wake up"))
        .await
        .expect("send");
    let (messages, returned_at) = poller.await.expect("poller");
    let latency = returned_at.duration_since(sent_at);
    assert_eq!(bodies(&messages), ["wake up"]);
    assert!(
        latency <= Duration::from_millis(100),
        "the long poll returned {latency:?} after the send"
    );
}

async fn a_long_poll_without_messages_waits_its_full_time(backend: Backend) {
    let queue = backend.fresh_queue(QueueDef::standard("idle")).await;
    let started = Instant::now();
    let messages = receive(&backend, &queue, 1, Duration::from_secs(1)).await;
    let waited = started.elapsed();
    assert!(messages.is_empty());
    assert!(waited >= Duration::from_millis(900), "returned after {waited:?}");
    assert!(waited < Duration::from_secs(5), "returned after {waited:?}");
}

async fn a_delayed_message_stays_hidden_until_its_delay_passes(backend: Backend) {
    let queue = backend.fresh_queue(QueueDef::standard("delayed")).await;
    let delayed = OutgoingMessage {
        delay: Duration::from_secs(1),
        ..OutgoingMessage::new("later")
    };
    backend.queue.send(&queue, delayed).await.expect("send");
    assert_eq!(
        backend.queue.counts(&queue).await.expect("counts"),
        QueueCounts {
            visible: 0,
            in_flight: 0,
            delayed: 1
        }
    );
    assert!(receive(&backend, &queue, 1, NO_WAIT).await.is_empty());
    let later = receive(&backend, &queue, 1, Duration::from_secs(5)).await;
    assert_eq!(bodies(&later), ["later"]);
}

async fn a_receive_returns_at_most_ten_messages_and_all_are_delivered(backend: Backend) {
    let queue = backend.fresh_queue(QueueDef::standard("batch")).await;
    for n in 0..12 {
        backend
            .queue
            .send(&queue, OutgoingMessage::new(format!("m{n}")))
            .await
            .expect("send");
    }
    assert_eq!(backend.queue.counts(&queue).await.expect("counts").visible, 12);
    let mut delivered = Vec::new();
    for _ in 0..20 {
        let batch = receive(&backend, &queue, 10, Duration::from_secs(1)).await;
        assert!(batch.len() <= 10);
        for message in &batch {
            backend.queue.delete(&queue, &message.receipt).await.expect("delete");
        }
        delivered.extend(batch.into_iter().map(|message| message.body));
        if delivered.len() >= 12 {
            break;
        }
    }
    delivered.sort_by_key(|body| body[1..].parse::<u32>().expect("number"));
    let expected: Vec<String> = (0..12).map(|n| format!("m{n}")).collect();
    assert_eq!(delivered, expected);
}

fn grouped(body: &str, group: &str) -> OutgoingMessage {
    OutgoingMessage {
        group_id: Some(group.into()),
        ..OutgoingMessage::new(body)
    }
}

async fn fifo_delivers_each_group_in_order_one_batch_in_flight_at_a_time(backend: Backend) {
    let queue = backend.fresh_queue(QueueDef::fifo("chats.fifo")).await;
    for (body, group) in [
        ("a1", "chat-a"),
        ("b1", "chat-b"),
        ("a2", "chat-a"),
        ("b2", "chat-b"),
        ("a3", "chat-a"),
    ] {
        backend.queue.send(&queue, grouped(body, group)).await.expect("send");
    }
    let mut delivered = Vec::new();
    for _ in 0..10 {
        let Some(message) = receive(&backend, &queue, 1, NO_WAIT).await.into_iter().next() else {
            break;
        };
        let others = receive(&backend, &queue, 10, NO_WAIT).await;
        assert!(
            others.iter().all(|other| other.group_id != message.group_id),
            "a group with a message in flight is blocked: {message:?} then {others:?}"
        );
        for other in &others {
            backend
                .queue
                .change_visibility(&queue, &other.receipt, Duration::ZERO)
                .await
                .expect("release");
        }
        backend.queue.delete(&queue, &message.receipt).await.expect("delete");
        delivered.push((message.group_id.clone().expect("group id"), message.body));
    }
    let order_of = |group: &str| -> Vec<String> {
        delivered
            .iter()
            .filter(|(g, _)| g == group)
            .map(|(_, body)| body.clone())
            .collect()
    };
    assert_eq!(order_of("chat-a"), ["a1", "a2", "a3"]);
    assert_eq!(order_of("chat-b"), ["b1", "b2"]);
}

async fn fifo_drops_duplicates_within_the_deduplication_window(backend: Backend) {
    let queue = backend.fresh_queue(QueueDef::fifo("dedup.fifo")).await;
    let with_id = |body: &str, id: &str| OutgoingMessage {
        deduplication_id: Some(id.into()),
        ..grouped(body, "g")
    };
    let first = backend
        .queue
        .send(&queue, with_id("reply 1", "job_1:completed"))
        .await
        .expect("send");
    let duplicate = backend
        .queue
        .send(&queue, with_id("reply 1 again", "job_1:completed"))
        .await
        .expect("send dup");
    assert_eq!(duplicate, first, "a duplicate answers the first message's id");
    backend
        .queue
        .send(&queue, grouped("same body", "g"))
        .await
        .expect("content dedup 1");
    backend
        .queue
        .send(&queue, grouped("same body", "g"))
        .await
        .expect("content dedup 2");
    let mut bodies_seen = Vec::new();
    for _ in 0..5 {
        let batch = receive(&backend, &queue, 10, NO_WAIT).await;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            backend.queue.delete(&queue, &message.receipt).await.expect("delete");
            bodies_seen.push(message.body);
        }
    }
    assert_eq!(bodies_seen, ["reply 1", "same body"]);
}

async fn invalid_messages_are_refused(backend: Backend) {
    let standard = backend.fresh_queue(QueueDef::standard("strict")).await;
    let fifo = backend.fresh_queue(QueueDef::fifo("strict.fifo")).await;
    let invalid =
        |result: Result<String, StoreError>| assert!(matches!(result, Err(StoreError::InvalidInput(_))), "{result:?}");
    invalid(backend.queue.send(&standard, OutgoingMessage::new("")).await);
    invalid(
        backend
            .queue
            .send(&standard, OutgoingMessage::new("x".repeat(256 * 1024 + 1)))
            .await,
    );
    invalid(backend.queue.send(&standard, grouped("x", "g")).await);
    invalid(backend.queue.send(&fifo, OutgoingMessage::new("no group")).await);
    let late = OutgoingMessage {
        delay: Duration::from_secs(901),
        ..OutgoingMessage::new("x")
    };
    invalid(backend.queue.send(&standard, late).await);
    let too_many = backend.queue.receive(&standard, ReceiveRequest::new(11, NO_WAIT)).await;
    assert!(matches!(too_many, Err(StoreError::InvalidInput(_))), "{too_many:?}");
    assert_eq!(
        backend.queue.counts(&standard).await.expect("counts"),
        QueueCounts::default()
    );
    assert_eq!(
        backend.queue.counts(&fifo).await.expect("counts"),
        QueueCounts::default()
    );
}
