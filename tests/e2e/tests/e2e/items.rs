//! Conformance of the item store: both backends answer every operation the same way.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use tessera_store::definitions::jobs_table;
use tessera_store::item::{Cmp, Condition, Item, Key, Page, Query, SortRange, Update, Write};
use tessera_store::{ItemStore, StoreError};

use crate::conformance;
use crate::support::{Backend, unique};

fn item(value: Value) -> Item {
    value.as_object().cloned().expect("an object")
}

fn sort_keys(page: &Page) -> Vec<&str> {
    page.items.iter().map(|item| item["sk"].as_str().expect("sk")).collect()
}

conformance!(
    get_returns_what_put_stored_and_none_for_a_missing_key,
    put_if_absent_refuses_to_overwrite,
    put_replaces_the_whole_item,
    conditional_update_compares_on_a_version,
    concurrent_conditional_updates_have_exactly_one_winner_per_version,
    update_creates_an_absent_item_and_adds_removes_sets,
    conditional_delete_refuses_when_the_condition_fails,
    an_any_condition_bounds_a_counter_that_starts_absent,
    count_tallies_live_items_of_a_range_up_to_a_cap,
    query_pages_through_a_partition_in_both_orders,
    query_selects_sort_key_ranges_and_prefixes,
    query_on_a_secondary_index_is_sparse_and_pages_both_ways,
    transaction_with_one_failing_condition_writes_nothing,
    transaction_applies_all_writes_together,
    expired_items_are_never_returned_and_count_as_absent,
    invalid_requests_are_refused_and_change_nothing,
);

async fn get_returns_what_put_stored_and_none_for_a_missing_key(backend: Backend) {
    let table = jobs_table();
    let pk = unique("job#");
    let stored = item(json!({
        "pk": pk, "sk": "meta", "status": "QUEUED", "cost": 1000, "ratio": 0.5,
        "tags": ["a", "b"], "params": {"prompt": "a sunset", "steps": 20, "seed": -42}, "flag": false, "none": null
    }));
    backend.items.put(&table, stored.clone(), None).await.expect("put");
    let got = backend.items.get(&table, &Key::new(&pk, "meta")).await.expect("get");
    assert_eq!(got, Some(stored));
    let missing = backend
        .items
        .get(&table, &Key::new(&pk, "other"))
        .await
        .expect("get missing");
    assert_eq!(missing, None);
}

async fn put_if_absent_refuses_to_overwrite(backend: Backend) {
    let table = jobs_table();
    let pk = unique("job#");
    let first = item(json!({"pk": pk, "sk": "meta", "n": 1}));
    let second = item(json!({"pk": pk, "sk": "meta", "n": 2}));
    backend
        .items
        .put(&table, first.clone(), Some(Condition::NotExists))
        .await
        .expect("first put");
    let refused = backend.items.put(&table, second, Some(Condition::NotExists)).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    let kept = backend.items.get(&table, &Key::new(&pk, "meta")).await.expect("get");
    assert_eq!(kept, Some(first));
}

async fn put_replaces_the_whole_item(backend: Backend) {
    let table = jobs_table();
    let pk = unique("job#");
    backend
        .items
        .put(&table, item(json!({"pk": pk, "sk": "meta", "old": 1})), None)
        .await
        .expect("put");
    let replacement = item(json!({"pk": pk, "sk": "meta", "new": 2}));
    backend
        .items
        .put(&table, replacement.clone(), Some(Condition::Exists))
        .await
        .expect("replace");
    let got = backend.items.get(&table, &Key::new(&pk, "meta")).await.expect("get");
    assert_eq!(got, Some(replacement));
}

async fn conditional_update_compares_on_a_version(backend: Backend) {
    let table = jobs_table();
    let key = Key::new(unique("job#"), "meta");
    let start = item(json!({"pk": key.pk, "sk": key.sk, "status": "QUEUED", "version": 1}));
    backend.items.put(&table, start, None).await.expect("put");
    let claimed = backend
        .items
        .update(
            &table,
            &key,
            Update::set("status", "RUNNING").and_add("version", 1),
            Some(Condition::All(vec![
                Condition::equals("status", "QUEUED"),
                Condition::equals("version", 1),
            ])),
        )
        .await
        .expect("claim");
    assert_eq!(claimed["status"], "RUNNING");
    assert_eq!(claimed["version"], 2);
    let stale = backend
        .items
        .update(
            &table,
            &key,
            Update::set("status", "CANCELLED"),
            Some(Condition::equals("version", 1)),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let on_missing = backend
        .items
        .update(
            &table,
            &Key::new(unique("job#"), "meta"),
            Update::set("a", 1),
            Some(Condition::Exists),
        )
        .await;
    assert!(matches!(on_missing, Err(StoreError::Conflict(_))), "{on_missing:?}");
    let current = backend.items.get(&table, &key).await.expect("get").expect("present");
    assert_eq!(current["status"], "RUNNING");
    let below = Condition::Compare("version".into(), Cmp::Lt, json!(3));
    backend
        .items
        .update(&table, &key, Update::set("note", "ok"), Some(below))
        .await
        .expect("lt");
}

async fn concurrent_conditional_updates_have_exactly_one_winner_per_version(backend: Backend) {
    const CONTENDERS: usize = 32;
    let table = jobs_table();
    let key = Key::new(unique("job#"), "meta");
    backend
        .items
        .put(&table, item(json!({"pk": key.pk, "sk": key.sk, "version": 0})), None)
        .await
        .expect("put");

    let first_round = futures::future::join_all((0..CONTENDERS).map(|contender| {
        let (items, table, key) = (backend.items.clone(), table.clone(), key.clone());
        async move {
            items
                .update(
                    &table,
                    &key,
                    Update::set("winner", contender as i64).and_add("version", 1),
                    Some(Condition::equals("version", 0)),
                )
                .await
        }
    }))
    .await;
    let winners: Vec<_> = first_round.iter().filter(|result| result.is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one update from version 0 wins");
    assert!(
        first_round
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(StoreError::Conflict(_))))
    );

    let versions_won = futures::future::join_all((0..CONTENDERS).map(|_| {
        let (items, table, key) = (backend.items.clone(), table.clone(), key.clone());
        tokio::spawn(async move { win_one_version(items, &table, &key).await })
    }))
    .await;
    let distinct: BTreeSet<i64> = versions_won.into_iter().map(|won| won.expect("task")).collect();
    assert_eq!(distinct.len(), CONTENDERS, "no version was won twice");
    let last = backend.items.get(&table, &key).await.expect("get").expect("present");
    assert_eq!(last["version"], json!(1 + CONTENDERS as i64));
}

/// Reads the version and tries to move it on until it wins; returns the version it moved from.
async fn win_one_version(items: Arc<dyn ItemStore>, table: &tessera_store::TableDef, key: &Key) -> i64 {
    loop {
        let current = items.get(table, key).await.expect("get").expect("present");
        let version = current["version"].as_i64().expect("version");
        let attempt = items
            .update(
                table,
                key,
                Update::default().and_add("version", 1),
                Some(Condition::equals("version", version)),
            )
            .await;
        match attempt {
            Ok(_) => return version,
            Err(StoreError::Conflict(_)) => continue,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
}

async fn update_creates_an_absent_item_and_adds_removes_sets(backend: Backend) {
    let table = jobs_table();
    let key = Key::new(unique("usage#"), "2025-12-17");
    let created = backend
        .items
        .update(
            &table,
            &key,
            Update::default().and_add("tokens", 1500).and_add("jobs", 1),
            None,
        )
        .await
        .expect("create by update");
    assert_eq!(
        Value::Object(created),
        json!({"pk": key.pk, "sk": key.sk, "tokens": 1500, "jobs": 1})
    );
    let changed = backend
        .items
        .update(
            &table,
            &key,
            Update::set("plan", "pro").and_add("tokens", -500).and_remove("jobs"),
            Some(Condition::Exists),
        )
        .await
        .expect("update");
    assert_eq!(
        Value::Object(changed.clone()),
        json!({"pk": key.pk, "sk": key.sk, "tokens": 1000, "plan": "pro"})
    );
    assert_eq!(backend.items.get(&table, &key).await.expect("get"), Some(changed));
}

async fn conditional_delete_refuses_when_the_condition_fails(backend: Backend) {
    let table = jobs_table();
    let key = Key::new(unique("job#"), "meta");
    backend
        .items
        .put(
            &table,
            item(json!({"pk": key.pk, "sk": key.sk, "status": "RUNNING"})),
            None,
        )
        .await
        .expect("put");
    let refused = backend
        .items
        .delete(&table, &key, Some(Condition::equals("status", "QUEUED")))
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert!(backend.items.get(&table, &key).await.expect("get").is_some());
    backend
        .items
        .delete(&table, &key, Some(Condition::equals("status", "RUNNING")))
        .await
        .expect("delete");
    assert_eq!(backend.items.get(&table, &key).await.expect("get"), None);
    backend
        .items
        .delete(&table, &key, None)
        .await
        .expect("deleting an absent item succeeds");
    let gone = backend.items.delete(&table, &key, Some(Condition::Exists)).await;
    assert!(matches!(gone, Err(StoreError::Conflict(_))), "{gone:?}");
}

async fn put_sequence(backend: &Backend, pk: &str, count: usize) {
    for n in 0..count {
        let row = item(json!({"pk": pk, "sk": format!("item#{n:02}"), "n": n}));
        backend.items.put(&jobs_table(), row, None).await.expect("put");
    }
}

async fn collect_pages(backend: &Backend, mut query: Query) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        let page = backend.items.query(&jobs_table(), query.clone()).await.expect("query");
        pages.push(sort_keys(&page).into_iter().map(str::to_owned).collect());
        match page.cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return pages,
        }
        assert!(pages.len() < 20, "pagination does not end");
    }
}

async fn query_pages_through_a_partition_in_both_orders(backend: Backend) {
    let pk = unique("user#");
    put_sequence(&backend, &pk, 7).await;
    backend
        .items
        .put(
            &jobs_table(),
            item(json!({"pk": unique("other#"), "sk": "item#00"})),
            None,
        )
        .await
        .expect("put elsewhere");
    let query = Query {
        limit: 3,
        ..Query::partition(&pk)
    };
    let ascending = collect_pages(&backend, query.clone()).await;
    assert_eq!(
        ascending,
        vec![
            vec!["item#00", "item#01", "item#02"],
            vec!["item#03", "item#04", "item#05"],
            vec!["item#06"]
        ]
    );
    let descending = collect_pages(
        &backend,
        Query {
            descending: true,
            ..query.clone()
        },
    )
    .await;
    assert_eq!(
        descending,
        vec![
            vec!["item#06", "item#05", "item#04"],
            vec!["item#03", "item#02", "item#01"],
            vec!["item#00"]
        ]
    );
    let exact = collect_pages(&backend, Query { limit: 7, ..query }).await;
    assert_eq!(exact.len(), 1, "no cursor when nothing follows: {exact:?}");
}

async fn query_selects_sort_key_ranges_and_prefixes(backend: Backend) {
    let pk = unique("user#");
    put_sequence(&backend, &pk, 12).await;
    let select = |range: SortRange| {
        let query = Query {
            range,
            limit: 100,
            ..Query::partition(&pk)
        };
        let items = backend.items.clone();
        async move {
            let page = items.query(&jobs_table(), query).await.expect("query");
            sort_keys(&page).into_iter().map(str::to_owned).collect::<Vec<_>>()
        }
    };
    assert_eq!(select(SortRange::Prefix("item#1".into())).await, ["item#10", "item#11"]);
    assert_eq!(
        select(SortRange::Between("item#03".into(), "item#05".into())).await,
        ["item#03", "item#04", "item#05"]
    );
    assert_eq!(select(SortRange::Eq("item#07".into())).await, ["item#07"]);
    assert_eq!(select(SortRange::Lt("item#02".into())).await, ["item#00", "item#01"]);
    assert_eq!(select(SortRange::Le("item#01".into())).await, ["item#00", "item#01"]);
    assert_eq!(select(SortRange::Gt("item#10".into())).await, ["item#11"]);
    assert_eq!(select(SortRange::Ge("item#10".into())).await, ["item#10", "item#11"]);
    assert!(select(SortRange::Prefix("nothing".into())).await.is_empty());
}

async fn query_on_a_secondary_index_is_sparse_and_pages_both_ways(backend: Backend) {
    let table = jobs_table();
    let owner = unique("user#");
    for n in 0..5 {
        let row = item(json!({
            "pk": unique("job#"), "sk": "meta", "n": n,
            "gsi1pk": owner, "gsi1sk": format!("2025-12-17T20:00:0{n}Z")
        }));
        backend.items.put(&table, row, None).await.expect("put");
    }
    let unindexed = item(json!({"pk": unique("job#"), "sk": "meta", "gsi1pk": owner}));
    backend
        .items
        .put(&table, unindexed, None)
        .await
        .expect("put without index sort key");

    let mut query = Query {
        index: Some("gsi1".into()),
        limit: 2,
        ..Query::partition(&owner)
    };
    let mut seen = Vec::new();
    loop {
        let page = backend.items.query(&table, query.clone()).await.expect("query index");
        seen.extend(page.items.iter().map(|row| row["n"].as_i64().expect("n")));
        match page.cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, [0, 1, 2, 3, 4]);

    query = Query {
        index: Some("gsi1".into()),
        limit: 3,
        descending: true,
        ..Query::partition(&owner)
    };
    let first = backend.items.query(&table, query.clone()).await.expect("first page");
    let second = backend
        .items
        .query(
            &table,
            Query {
                cursor: first.cursor.clone(),
                ..query
            },
        )
        .await
        .expect("second page");
    let order: Vec<i64> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|row| row["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(order, [4, 3, 2, 1, 0]);
    assert_eq!(second.cursor, None);
}

fn seeded(pk: &str) -> [Item; 3] {
    [
        item(json!({"pk": pk, "sk": "account", "tokens": 10})),
        item(json!({"pk": pk, "sk": "doomed"})),
        item(json!({"pk": pk, "sk": "guard", "state": "open"})),
    ]
}

async fn transaction_with_one_failing_condition_writes_nothing(backend: Backend) {
    let table = jobs_table();
    let pk = unique("acct#");
    for row in seeded(&pk) {
        backend.items.put(&table, row, None).await.expect("seed");
    }
    let writes = vec![
        Write::Put {
            table: table.clone(),
            item: item(json!({"pk": pk, "sk": "job#1", "status": "QUEUED"})),
            condition: Some(Condition::NotExists),
        },
        Write::Update {
            table: table.clone(),
            key: Key::new(&pk, "account"),
            update: Update::default().and_add("tokens", -1),
            condition: Some(Condition::Compare("tokens".into(), Cmp::Ge, json!(1))),
        },
        Write::Delete {
            table: table.clone(),
            key: Key::new(&pk, "doomed"),
            condition: None,
        },
        Write::Check {
            table: table.clone(),
            key: Key::new(&pk, "guard"),
            condition: Condition::equals("state", "closed"),
        },
    ];
    let refused = backend.items.transact(writes).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(
        backend.items.get(&table, &Key::new(&pk, "job#1")).await.expect("get"),
        None
    );
    let page = backend.items.query(&table, Query::partition(&pk)).await.expect("query");
    assert_eq!(page.items, seeded(&pk).to_vec());
}

async fn transaction_applies_all_writes_together(backend: Backend) {
    let table = jobs_table();
    let pk = unique("acct#");
    for row in seeded(&pk) {
        backend.items.put(&table, row, None).await.expect("seed");
    }
    let writes = vec![
        Write::Put {
            table: table.clone(),
            item: item(json!({"pk": pk, "sk": "job#1", "status": "QUEUED"})),
            condition: Some(Condition::NotExists),
        },
        Write::Update {
            table: table.clone(),
            key: Key::new(&pk, "account"),
            update: Update::default().and_add("tokens", -1),
            condition: Some(Condition::Compare("tokens".into(), Cmp::Ge, json!(1))),
        },
        Write::Delete {
            table: table.clone(),
            key: Key::new(&pk, "doomed"),
            condition: Some(Condition::Exists),
        },
        Write::Check {
            table: table.clone(),
            key: Key::new(&pk, "guard"),
            condition: Condition::equals("state", "open"),
        },
    ];
    backend.items.transact(writes).await.expect("transaction");
    let page = backend.items.query(&table, Query::partition(&pk)).await.expect("query");
    assert_eq!(
        page.items,
        vec![
            item(json!({"pk": pk, "sk": "account", "tokens": 9})),
            item(json!({"pk": pk, "sk": "guard", "state": "open"})),
            item(json!({"pk": pk, "sk": "job#1", "status": "QUEUED"})),
        ]
    );
}

async fn expired_items_are_never_returned_and_count_as_absent(backend: Backend) {
    let table = jobs_table();
    let pk = unique("idem#");
    let now = backend.clock_now();
    let expiring = item(json!({"pk": pk, "sk": "a", "ttl": now + 60, "count": 5, "gsi1pk": pk, "gsi1sk": "a"}));
    let lasting = item(json!({"pk": pk, "sk": "b", "ttl": now + 3600, "gsi1pk": pk, "gsi1sk": "b"}));
    backend.items.put(&table, expiring.clone(), None).await.expect("put");
    backend.items.put(&table, lasting.clone(), None).await.expect("put");
    assert_eq!(
        backend.items.get(&table, &Key::new(&pk, "a")).await.expect("get"),
        Some(expiring)
    );

    backend.clock.advance(time::Duration::seconds(61));
    assert_eq!(backend.items.get(&table, &Key::new(&pk, "a")).await.expect("get"), None);
    let page = backend
        .items
        .query(
            &table,
            Query {
                limit: 1,
                ..Query::partition(&pk)
            },
        )
        .await
        .expect("query");
    assert_eq!((page.items, page.cursor), (vec![lasting.clone()], None));
    let by_index = Query {
        index: Some("gsi1".into()),
        ..Query::partition(&pk)
    };
    let page = backend.items.query(&table, by_index).await.expect("query index");
    assert_eq!(page.items, vec![lasting]);

    let recount = backend
        .items
        .update(
            &table,
            &Key::new(&pk, "a"),
            Update::default().and_add("count", 1),
            Some(Condition::NotExists),
        )
        .await
        .expect("an expired item counts as absent");
    assert_eq!(Value::Object(recount), json!({"pk": pk, "sk": "a", "count": 1}));
    let replacement = item(json!({"pk": pk, "sk": "b2", "ttl": now}));
    backend
        .items
        .put(&table, replacement, None)
        .await
        .expect("put already expired");
    let again = item(json!({"pk": pk, "sk": "b2", "fresh": true}));
    backend
        .items
        .put(&table, again.clone(), Some(Condition::NotExists))
        .await
        .expect("put over expired");
    assert_eq!(
        backend.items.get(&table, &Key::new(&pk, "b2")).await.expect("get"),
        Some(again)
    );
}

async fn invalid_requests_are_refused_and_change_nothing(backend: Backend) {
    let table = jobs_table();
    let pk = unique("bad#");
    let invalid =
        |result: Result<(), StoreError>| assert!(matches!(result, Err(StoreError::InvalidInput(_))), "{result:?}");
    invalid(backend.items.put(&table, item(json!({"pk": pk})), None).await);
    invalid(backend.items.put(&table, item(json!({"pk": pk, "sk": 3})), None).await);
    invalid(
        backend
            .items
            .put(&table, item(json!({"pk": pk, "sk": "a", "ttl": "soon"})), None)
            .await,
    );
    let oversized = item(json!({"pk": pk, "sk": "big", "blob": "x".repeat(500 * 1024)}));
    invalid(backend.items.put(&table, oversized, None).await);
    invalid(
        backend
            .items
            .update(&table, &Key::new(&pk, "a"), Update::set("pk", "x"), None)
            .await
            .map(drop),
    );
    let too_many = (0..26)
        .map(|n| Write::Put {
            table: table.clone(),
            item: item(json!({"pk": pk, "sk": format!("{n}")})),
            condition: None,
        })
        .collect();
    invalid(backend.items.transact(too_many).await);
    let twice = vec![
        Write::Put {
            table: table.clone(),
            item: item(json!({"pk": pk, "sk": "x"})),
            condition: None,
        },
        Write::Delete {
            table: table.clone(),
            key: Key::new(&pk, "x"),
            condition: None,
        },
    ];
    invalid(backend.items.transact(twice).await);
    let forged = Query {
        cursor: Some("eyJwayI6MX0".into()),
        ..Query::partition(&pk)
    };
    invalid(backend.items.query(&table, forged).await.map(drop));
    invalid(
        backend
            .items
            .query(
                &table,
                Query {
                    index: Some("gsi9".into()),
                    ..Query::partition(&pk)
                },
            )
            .await
            .map(drop),
    );
    invalid(
        backend
            .items
            .query(
                &table,
                Query {
                    limit: 0,
                    ..Query::partition(&pk)
                },
            )
            .await
            .map(drop),
    );
    let page = backend.items.query(&table, Query::partition(&pk)).await.expect("query");
    assert!(page.items.is_empty(), "nothing was written: {:?}", page.items);
}

/// `Any` holds when one part does: the shape of a quota counter that may not exist yet.
async fn an_any_condition_bounds_a_counter_that_starts_absent(backend: Backend) {
    let table = jobs_table();
    let key = Key::new(unique("usage#"), "day");
    let below_limit = || {
        Condition::Any(vec![
            Condition::AttributeNotExists("used".into()),
            Condition::Compare("used".into(), Cmp::Le, json!(7)),
        ])
    };
    let mut accepted = 0;
    for _ in 0..5 {
        let update = Update::set("kind", "usage").and_add("used", 3);
        match backend.items.update(&table, &key, update, Some(below_limit())).await {
            Ok(_) => accepted += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(accepted, 3, "0, 3 and 6 are within the bound; 9 is not");
    let stored = backend.items.get(&table, &key).await.expect("get").expect("item");
    assert_eq!(stored["used"], 9);
}

async fn count_tallies_live_items_of_a_range_up_to_a_cap(backend: Backend) {
    let table = jobs_table();
    let pk = unique("lane#");
    let now = backend.clock_now();
    for n in 0..1500 {
        let mut stored = item(json!({"pk": pk, "sk": format!("{n:05}"), "gsi2pk": pk, "gsi2sk": format!("{n:05}")}));
        // An hour, however long the 1,500 writes take on a loaded emulator; the clock jumps it.
        if n % 10 == 0 {
            stored.insert("ttl".into(), json!(now + 3600));
        }
        backend.items.put(&table, stored, None).await.expect("put");
    }
    let below = |index: Option<&str>| Query {
        index: index.map(str::to_owned),
        range: SortRange::Lt("01200".into()),
        limit: 1000,
        ..Query::partition(&pk)
    };
    assert_eq!(
        backend.items.count(&table, below(None)).await.expect("count"),
        1000,
        "counting stops at the cap"
    );
    assert_eq!(
        backend.items.count(&table, below(Some("gsi2"))).await.expect("count"),
        1000
    );
    let few = Query {
        range: SortRange::Lt("00500".into()),
        ..below(Some("gsi2"))
    };
    assert_eq!(backend.items.count(&table, few.clone()).await.expect("count"), 500);
    backend.clock.advance(time::Duration::seconds(3601));
    assert_eq!(
        backend.items.count(&table, few).await.expect("count"),
        450,
        "expired items do not count"
    );
    assert_eq!(
        backend
            .items
            .count(&table, Query::partition(unique("none#")))
            .await
            .expect("count"),
        0
    );
}

/// The AWS bootstrap (run once per test process by `Backend::aws`) creates every table with
/// point-in-time recovery on, as `template.yaml` declares them.
#[tokio::test]
async fn the_aws_bootstrap_turns_on_point_in_time_recovery() {
    let _backend = Backend::aws().await;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let naming = tessera_store::definitions::Naming::new(crate::support::test_prefix()).expect("prefix");
    for table in tessera_store::Definitions::tessera().tables {
        let name = naming.physical(&table.name);
        let backups = dynamodb
            .describe_continuous_backups()
            .table_name(&name)
            .send()
            .await
            .expect("DescribeContinuousBackups");
        let status = backups
            .continuous_backups_description()
            .and_then(|description| description.point_in_time_recovery_description())
            .and_then(|recovery| recovery.point_in_time_recovery_status())
            .cloned();
        assert_eq!(
            status,
            Some(aws_sdk_dynamodb::types::PointInTimeRecoveryStatus::Enabled),
            "table {name}"
        );
    }
}
