//! Tests of the embedded item store: TTL against the injected clock, index slots, SQL ranges
//! and cursors, transactions.

use serde_json::json;
use tessera_core::Clock;
use time::Duration;

use super::super::tests::{clock, item, store_in};
use crate::error::StoreError;
use crate::item::{Condition, IndexDef, ItemStore, Key, Page, Query, SortRange, TableDef, Update, Write};
use crate::queue::{OutgoingMessage, QueueDef, ReceiveRequest};

fn jobs() -> TableDef {
    TableDef {
        name: "jobs".into(),
        indexes: (1..=2)
            .map(|n| IndexDef {
                name: format!("gsi{n}"),
                partition_key: format!("gsi{n}pk"),
                sort_key: format!("gsi{n}sk"),
            })
            .collect(),
    }
}

fn keys(page: &Page, attribute: &str) -> Vec<String> {
    page.items
        .iter()
        .map(|item| item[attribute].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn expired_items_vanish_and_count_as_absent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let key = Key::new("lock", "run");
    let ttl = clock.now_unix() + 10;
    let held = item(json!({"pk": "lock", "sk": "run", "ttl": ttl, "owner": "a", "n": 5}));
    store.put(&jobs(), held, Some(Condition::NotExists)).await.expect("put");
    assert!(store.get(&jobs(), &key).await.expect("get").is_some());
    let again = item(json!({"pk": "lock", "sk": "run", "owner": "b"}));
    let refused = store.put(&jobs(), again.clone(), Some(Condition::NotExists)).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));

    clock.advance(Duration::seconds(10));
    assert_eq!(store.get(&jobs(), &key).await.expect("get"), None);
    let page = store.query(&jobs(), Query::partition("lock")).await.expect("query");
    assert!(page.items.is_empty());
    let updated = store
        .update(
            &jobs(),
            &key,
            Update::default().and_add("n", 1),
            Some(Condition::NotExists),
        )
        .await
        .expect("update of an expired item");
    assert_eq!(updated, item(json!({"pk": "lock", "sk": "run", "n": 1})));
    assert_eq!(store.purge_expired_items().expect("purge"), 0);
}

#[tokio::test]
async fn purge_removes_expired_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let ttl = clock.now_unix() + 1;
    for sk in ["a", "b"] {
        let row = item(json!({"pk": "p", "sk": sk, "ttl": ttl}));
        store.put(&jobs(), row, None).await.expect("put");
    }
    store
        .put(&jobs(), item(json!({"pk": "p", "sk": "c"})), None)
        .await
        .expect("put");
    clock.advance(Duration::seconds(1));
    assert_eq!(store.purge_expired_items().expect("purge"), 2);
}

#[tokio::test]
async fn conditional_writes_refuse_and_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let key = Key::new("job#1", "meta");
    let job = item(json!({"pk": "job#1", "sk": "meta", "status": "QUEUED", "version": 1}));
    store.put(&jobs(), job.clone(), None).await.expect("put");
    let start = Update::set("status", "RUNNING").and_add("version", 1);
    let stale = Some(Condition::equals("version", 0));
    let refused = store.update(&jobs(), &key, start.clone(), stale).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    let refused = store.delete(&jobs(), &key, Some(Condition::NotExists)).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    assert_eq!(store.get(&jobs(), &key).await.expect("get"), Some(job));

    let current = Some(Condition::equals("version", 1));
    let running = store.update(&jobs(), &key, start, current).await.expect("update");
    assert_eq!(running["status"], json!("RUNNING"));
    assert_eq!(running["version"], json!(2));
    store
        .delete(&jobs(), &key, Some(Condition::Exists))
        .await
        .expect("delete");
    store
        .delete(&jobs(), &key, None)
        .await
        .expect("deleting an absent item");
}

#[tokio::test]
async fn bad_inputs_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let mut crowded = jobs();
    let mut indexes = crowded.indexes.to_vec();
    indexes.push(IndexDef {
        name: "gsi3".into(),
        partition_key: "gsi3pk".into(),
        sort_key: "gsi3sk".into(),
    });
    crowded.indexes = indexes.into();
    let row = item(json!({"pk": "a", "sk": "b"}));
    let outcomes = [
        store.put(&crowded, row.clone(), None).await,
        store
            .put(&jobs(), item(json!({"pk": "a", "sk": "b", "gsi1pk": 7})), None)
            .await,
        store
            .put(&jobs(), item(json!({"pk": "a", "sk": "b", "gsi1pk": ""})), None)
            .await,
        store.put(&jobs(), item(json!({"pk": "a"})), None).await,
    ];
    for outcome in outcomes {
        assert!(matches!(outcome, Err(StoreError::InvalidInput(_))), "{outcome:?}");
    }
    let backwards = Query {
        range: SortRange::Between("b".into(), "a".into()),
        ..Query::partition("a")
    };
    let refused = store.query(&jobs(), backwards).await;
    assert!(matches!(refused, Err(StoreError::InvalidInput(_))));
    let unknown = Query {
        index: Some("gsi9".into()),
        ..Query::partition("a")
    };
    assert!(matches!(
        store.query(&jobs(), unknown).await,
        Err(StoreError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn table_queries_select_ranges_in_byte_order_and_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    for sk in [
        "event#01",
        "event#02",
        "event#03",
        "eventz",
        "meta",
        "Émoji",
        "event#\u{FFFF}",
    ] {
        let row = item(json!({"pk": "job#1", "sk": sk}));
        store.put(&jobs(), row, None).await.expect("put");
    }
    let prefix = Query {
        range: SortRange::Prefix("event#".into()),
        limit: 2,
        ..Query::partition("job#1")
    };
    let first = store.query(&jobs(), prefix.clone()).await.expect("first page");
    assert_eq!(keys(&first, "sk"), ["event#01", "event#02"]);
    let next = Query {
        cursor: first.cursor,
        ..prefix
    };
    let second = store.query(&jobs(), next).await.expect("second page");
    assert_eq!(keys(&second, "sk"), ["event#03", "event#\u{FFFF}"]);
    assert_eq!(second.cursor, None, "no cursor when nothing follows");

    let everything = Query {
        descending: true,
        ..Query::partition("job#1")
    };
    let all = store.query(&jobs(), everything).await.expect("all");
    assert_eq!(keys(&all, "sk")[..2], ["Émoji", "meta"]);
    let before = Query {
        range: SortRange::Lt("event#02".into()),
        ..Query::partition("job#1")
    };
    let page = store.query(&jobs(), before).await.expect("lt");
    assert_eq!(keys(&page, "sk"), ["event#01"]);
}

#[tokio::test]
async fn index_queries_are_sparse_and_page_through_equal_sort_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    for (pk, created) in [("job#3", "t1"), ("job#1", "t1"), ("job#2", "t0"), ("job#4", "t2")] {
        let row = item(json!({"pk": pk, "sk": "meta", "gsi2pk": "tenant#1", "gsi2sk": created}));
        store.put(&jobs(), row, None).await.expect("put");
    }
    let partial = item(json!({"pk": "job#5", "sk": "meta", "gsi2pk": "tenant#1"}));
    store.put(&jobs(), partial, None).await.expect("put");
    let mut query = Query {
        index: Some("gsi2".into()),
        limit: 1,
        ..Query::partition("tenant#1")
    };
    let mut seen = Vec::new();
    loop {
        let page = store.query(&jobs(), query.clone()).await.expect("page");
        seen.extend(keys(&page, "pk"));
        match page.cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, ["job#2", "job#1", "job#3", "job#4"]);

    let descending = Query {
        index: Some("gsi2".into()),
        descending: true,
        range: SortRange::Le("t1".into()),
        ..Query::partition("tenant#1")
    };
    let page = store.query(&jobs(), descending).await.expect("descending");
    assert_eq!(keys(&page, "pk"), ["job#3", "job#1", "job#2"]);
}

#[tokio::test]
async fn a_cursor_from_another_partition_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    for sk in ["a", "b"] {
        let row = item(json!({"pk": "p1", "sk": sk}));
        store.put(&jobs(), row, None).await.expect("put");
    }
    let first = Query {
        limit: 1,
        ..Query::partition("p1")
    };
    let page = store.query(&jobs(), first).await.expect("page");
    let elsewhere = Query {
        cursor: page.cursor,
        ..Query::partition("p2")
    };
    let refused = store.query(&jobs(), elsewhere).await;
    assert!(matches!(refused, Err(StoreError::InvalidInput(_))));
}

#[tokio::test]
async fn an_update_moves_an_item_between_index_partitions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let key = Key::new("job#1", "meta");
    let queued = Update::set("gsi1pk", "status#QUEUED").and_set("gsi1sk", "t0");
    store.update(&jobs(), &key, queued, None).await.expect("create");
    let running = Update::set("gsi1pk", "status#RUNNING");
    store.update(&jobs(), &key, running, None).await.expect("move");
    let partition = |name: &str| Query {
        index: Some("gsi1".into()),
        ..Query::partition(name)
    };
    let old = store.query(&jobs(), partition("status#QUEUED")).await.expect("old");
    let new = store.query(&jobs(), partition("status#RUNNING")).await.expect("new");
    assert!(old.items.is_empty());
    assert_eq!(keys(&new, "pk"), ["job#1"]);
}

#[tokio::test]
async fn a_transaction_writes_all_or_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let account = Key::new("tenant#1", "usage");
    store
        .put(&jobs(), item(json!({"pk": "tenant#1", "sk": "usage", "jobs": 0})), None)
        .await
        .expect("put");
    let writes = |pk: &str, expected: i64| {
        vec![
            Write::Put {
                table: jobs(),
                item: item(json!({"pk": pk, "sk": "meta"})),
                condition: Some(Condition::NotExists),
            },
            Write::Update {
                table: jobs(),
                key: account.clone(),
                update: Update::default().and_add("jobs", 1),
                condition: Some(Condition::equals("jobs", expected)),
            },
        ]
    };
    store.transact(writes("job#1", 0)).await.expect("first transaction");
    let refused = store.transact(writes("job#2", 0)).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    let mut checked = writes("job#2", 1);
    checked.push(Write::Check {
        table: jobs(),
        key: Key::new("tenant#1", "plan"),
        condition: Condition::Exists,
    });
    let refused = store.transact(checked).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    assert_eq!(store.get(&jobs(), &Key::new("job#2", "meta")).await.expect("get"), None);
    let delete = Write::Delete {
        table: jobs(),
        key: Key::new("job#1", "meta"),
        condition: None,
    };
    let bad = vec![delete.clone(), delete];
    assert!(matches!(store.transact(bad).await, Err(StoreError::InvalidInput(_))));
    let usage = store.get(&jobs(), &account).await.expect("get");
    assert_eq!(usage.map(|usage| usage["jobs"].clone()), Some(json!(1)));
}

#[tokio::test]
async fn a_message_sent_with_a_transaction_goes_out_with_it_or_not_at_all() {
    use crate::queue::Queue;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let lane = QueueDef::standard("lane");
    let put = |pk: &str, sent: bool| {
        vec![Write::Put {
            table: jobs(),
            item: item(json!({"pk": pk, "sk": "meta", "sent": sent})),
            condition: Some(Condition::NotExists),
        }]
    };
    let message = |body: &str| OutgoingMessage::new(body);
    let sent = store
        .transact_and_send(Box::new(|sent| Ok(put("job#1", sent))), &lane, message("one"))
        .await
        .expect("transaction");
    assert!(sent, "the embedded store sends in the transaction");
    let job = store.get(&jobs(), &Key::new("job#1", "meta")).await.expect("get");
    assert_eq!(job.map(|job| job["sent"].clone()), Some(json!(true)));

    let refused = store
        .transact_and_send(Box::new(|sent| Ok(put("job#1", sent))), &lane, message("two"))
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    let received = store
        .receive(&lane, ReceiveRequest::new(10, std::time::Duration::ZERO))
        .await
        .expect("receive");
    let bodies: Vec<&str> = received.iter().map(|message| message.body.as_str()).collect();
    assert_eq!(bodies, ["one"], "a refused transaction sends nothing");

    let fifo = QueueDef::fifo("events.fifo");
    let grouped = OutgoingMessage {
        group_id: Some("g".into()),
        ..message("three")
    };
    let sent = store
        .transact_and_send(Box::new(|sent| Ok(put("job#3", sent))), &fifo, grouped)
        .await
        .expect("transaction");
    assert!(!sent, "a FIFO message is left to the caller");
    let job = store.get(&jobs(), &Key::new("job#3", "meta")).await.expect("get");
    assert_eq!(job.map(|job| job["sent"].clone()), Some(json!(false)));
    let counts = store.counts(&fifo).await.expect("counts");
    assert_eq!(counts.visible, 0);
}

/// The count of an index range, stepped item by item (what the size must agree with).
async fn stepped_count(store: &crate::embedded::EmbeddedStore, partition: &str, range: SortRange) -> u64 {
    let page = store
        .query(
            &jobs(),
            Query {
                index: Some("gsi2".into()),
                range,
                limit: 1000,
                ..Query::partition(partition)
            },
        )
        .await
        .expect("query");
    page.items.len() as u64
}

async fn counted(store: &crate::embedded::EmbeddedStore, partition: &str, range: SortRange, limit: usize) -> u64 {
    let query = Query {
        index: Some("gsi2".into()),
        range,
        limit,
        ..Query::partition(partition)
    };
    store.count(&jobs(), query).await.expect("count")
}

/// Every write path keeps the index sizes right, so counts read from them agree with the
/// stepped ones: puts, upserts that move an item between partitions or give it a TTL,
/// deletes, transactions, the purge of expired items, and a refused transaction.
#[tokio::test]
async fn counts_from_index_sizes_agree_with_stepped_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let lane = |n: u32| {
        item(json!({"pk": format!("job#{n:04}"), "sk": "job", "gsi2pk": "lane#a", "gsi2sk": format!("{n:04}")}))
    };
    for n in 0..300 {
        store.put(&jobs(), lane(n), None).await.expect("put");
    }
    let check = |range: SortRange, limit: usize, expected: u64| {
        let store = &store;
        async move {
            assert_eq!(
                stepped_count(store, "lane#a", range.clone()).await.min(limit as u64),
                expected
            );
            assert_eq!(counted(store, "lane#a", range, limit).await, expected);
        }
    };
    check(SortRange::Lt("0300".into()), 1000, 300).await;
    check(SortRange::Lt("0290".into()), 1000, 290).await;
    check(SortRange::Le("0290".into()), 1000, 291).await;
    check(SortRange::Lt("0290".into()), 100, 100).await;
    check(SortRange::All, 1000, 300).await;
    check(SortRange::Lt("0100".into()), 1000, 100).await;
    check(SortRange::Gt("0100".into()), 1000, 199).await;

    // Rewriting an item in place changes nothing; moving it out of the lane and back does.
    store.put(&jobs(), lane(5), None).await.expect("rewrite");
    let moved = Update::set("gsi2pk", "running");
    for n in [1, 2, 3] {
        store
            .update(&jobs(), &Key::new(format!("job#{n:04}"), "job"), moved.clone(), None)
            .await
            .expect("move");
    }
    check(SortRange::Lt("0300".into()), 1000, 297).await;
    assert_eq!(counted(&store, "running", SortRange::All, 1000).await, 3);
    store
        .delete(&jobs(), &Key::new("job#0010", "job"), None)
        .await
        .expect("delete");
    let writes = vec![
        Write::Delete {
            table: jobs(),
            key: Key::new("job#0011", "job"),
            condition: None,
        },
        Write::Put {
            table: jobs(),
            item: lane(300),
            condition: Some(Condition::NotExists),
        },
    ];
    store.transact(writes).await.expect("transaction");
    check(SortRange::Lt("0301".into()), 1000, 296).await;
    let refused = vec![
        Write::Put {
            table: jobs(),
            item: lane(301),
            condition: None,
        },
        Write::Put {
            table: jobs(),
            item: lane(0),
            condition: Some(Condition::NotExists),
        },
    ];
    assert!(matches!(store.transact(refused).await, Err(StoreError::Conflict(_))));
    check(SortRange::Lt("0302".into()), 1000, 296).await;

    // An item with a TTL in the partition: the count steps the index (and skips it once it
    // expires); once the purge removes it, sizes serve again.
    let mut expiring = lane(400);
    expiring.insert("ttl".into(), json!(clock.now_unix() + 5));
    store.put(&jobs(), expiring, None).await.expect("put");
    check(SortRange::Lt("0500".into()), 1000, 297).await;
    clock.advance(Duration::seconds(5));
    check(SortRange::Lt("0500".into()), 1000, 296).await;
    assert_eq!(store.purge_expired_items().expect("purge"), 1);
    check(SortRange::Lt("0500".into()), 1000, 296).await;
    assert_eq!(counted(&store, "no such lane", SortRange::All, 10).await, 0);
    assert_eq!(recorded_size(dir.path(), "lane#a"), (296, 0));
    assert_eq!(recorded_size(dir.path(), "running"), (3, 0));
}

/// What `index_sizes` holds for a `gsi2` partition: items, and items with a TTL.
fn recorded_size(dir: &std::path::Path, partition: &str) -> (i64, i64) {
    let connection = rusqlite::Connection::open(dir.join("store.sqlite3")).expect("open");
    connection
        .query_row(
            "SELECT items, expiring FROM index_sizes WHERE tbl = 'jobs' AND slot = 1 AND part = ?1",
            [partition],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("size")
}

/// A file written before the sizes existed (schema version 2) gets them on open.
#[tokio::test]
async fn opening_an_older_file_sizes_its_partitions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    {
        let store = store_in(dir.path(), &clock);
        for n in 0..40 {
            let row =
                item(json!({"pk": format!("job#{n}"), "sk": "job", "gsi2pk": "lane#b", "gsi2sk": format!("{n:03}")}));
            store.put(&jobs(), row, None).await.expect("put");
        }
    }
    let connection = rusqlite::Connection::open(dir.path().join("store.sqlite3")).expect("open");
    connection
        .execute_batch("DELETE FROM index_sizes; PRAGMA user_version = 2;")
        .expect("downgrade");
    drop(connection);
    let store = store_in(dir.path(), &clock);
    assert_eq!(recorded_size(dir.path(), "lane#b"), (40, 0));
    assert_eq!(counted(&store, "lane#b", SortRange::Lt("100".into()), 1000).await, 40);
    assert_eq!(counted(&store, "lane#b", SortRange::All, 1000).await, 40);
}

/// Queries, counts and the queue's statements run prepared: binding new values does not make
/// SQLite prepare the statement again (as a bound LIMIT does, at every binding).
#[tokio::test]
async fn index_statements_are_prepared_once() {
    use rusqlite::StatementStatus;

    use super::{QueryPlan, size_count_sql};
    use crate::queue::Queue;

    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let queue = QueueDef::standard("work");
    let query = |partition: &str, range: SortRange| Query {
        index: Some("gsi2".into()),
        range,
        ..Query::partition(partition)
    };
    for (n, partition) in ["lane#a", "lane#b", "lane#c"].into_iter().enumerate() {
        let row = item(json!({"pk": format!("job#{n}"), "sk": "job", "gsi2pk": partition, "gsi2sk": "1"}));
        store.put(&jobs(), row, None).await.expect("put");
        store
            .query(&jobs(), query(partition, SortRange::All))
            .await
            .expect("query");
        store
            .count(&jobs(), query(partition, SortRange::Lt("2".into())))
            .await
            .expect("count");
        store
            .count(&jobs(), query(partition, SortRange::Gt("0".into())))
            .await
            .expect("count");
        store.send(&queue, OutgoingMessage::new("m")).await.expect("send");
        let request = ReceiveRequest::new(1, std::time::Duration::ZERO);
        let received = store.receive(&queue, request).await.expect("receive");
        let receipt = &received[0].receipt;
        store
            .change_visibility(&queue, receipt, std::time::Duration::from_secs(5))
            .await
            .expect("extend");
        Queue::delete(&store, &queue, receipt).await.expect("delete");
    }
    let now = clock.now_unix();
    let reads = [
        QueryPlan::new(&jobs(), &query("lane#a", SortRange::All), now)
            .expect("plan")
            .sql,
        QueryPlan::counting(&jobs(), &query("lane#a", SortRange::Gt("0".into())), now)
            .expect("plan")
            .sql,
        size_count_sql(1, ">=", 32),
    ];
    let writes = [
        crate::embedded::queue::EXTEND_VISIBILITY.to_owned(),
        "DELETE FROM messages WHERE queue = ?1 AND receipt = ?2".into(),
        format!(
            "SELECT seq, grp, receive_count FROM messages
             WHERE queue = ?1 AND seq > ?2 AND visible_at <= ?3 ORDER BY seq LIMIT {}",
            crate::embedded::queue::SCAN_BATCH
        ),
    ];
    // A read runs on the writer's connection when it is free, else on a pooled reader.
    let writer = store.db();
    let pooled = store.readers.lock().expect("pool");
    let runs = |sql: &str, connections: &[&rusqlite::Connection]| {
        let mut runs = 0;
        for db in connections {
            let statement = db.prepare_cached(sql).expect("cached");
            assert_eq!(statement.get_status(StatementStatus::RePrepare), 0, "{sql}");
            runs += statement.get_status(StatementStatus::Run);
        }
        runs
    };
    let readers: Vec<&rusqlite::Connection> = std::iter::once(&*writer).chain(pooled.iter()).collect();
    for sql in &reads {
        assert!(runs(sql, &readers) >= 3, "not the statement run: {sql}");
    }
    for sql in &writes {
        assert!(runs(sql, &[&*writer]) >= 3, "not the statement run: {sql}");
    }
}

/// SQLite's plan of the query of a page of `gsi2` after a cursor, over `range`.
fn plan_after_a_cursor(range: SortRange, descending: bool) -> String {
    use super::QueryPlan;
    use crate::item::{Item, cursor_after};

    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let mut last = Item::new();
    last.insert("pk".into(), json!("job#1"));
    last.insert("sk".into(), json!("meta"));
    last.insert("gsi2pk".into(), json!("lane#a"));
    last.insert("gsi2sk".into(), json!("00000000000000000005"));
    let cursor = cursor_after(&last, &jobs(), Some("gsi2")).expect("cursor");
    let query = Query {
        index: Some("gsi2".into()),
        range,
        descending,
        cursor: Some(cursor),
        ..Query::partition("lane#a")
    };
    let plan = QueryPlan::new(&jobs(), &query, 0).expect("plan");
    let db = store.db();
    let mut statement = db
        .prepare(&format!("EXPLAIN QUERY PLAN {}", plan.sql))
        .expect("explain");
    let rows = statement
        .query_map(rusqlite::params_from_iter(&plan.params), |row| row.get::<_, String>(3))
        .expect("plan rows");
    rows.collect::<Result<Vec<_>, _>>().expect("plan").join("; ")
}

#[test]
fn a_page_after_a_cursor_seeks_to_the_cursor_not_to_the_ranges_start() {
    let seek = "(i1sk,pk,sk)>(?,?,?)";
    for range in [
        SortRange::Between("00000000000000000001".into(), "00000000000000000009".into()),
        SortRange::Prefix("0000".into()),
        SortRange::Ge("00000000000000000001".into()),
        SortRange::Lt("00000000000000000009".into()),
    ] {
        let plan = plan_after_a_cursor(range.clone(), false);
        assert!(plan.contains(seek), "{range:?}: {plan}");
    }
    let plan = plan_after_a_cursor(SortRange::Le("00000000000000000009".into()), true);
    assert!(plan.contains("(i1sk,pk,sk)<(?,?,?)"), "descending: {plan}");
}
