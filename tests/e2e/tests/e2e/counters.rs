//! Conformance of the rate limits' counters: both backends count each window of each counter on
//! its own, atomically, and forget a window once it has expired.

use std::sync::Arc;

use crate::conformance;
use crate::support::{Backend, unique};

conformance!(
    each_window_of_each_counter_counts_on_its_own,
    concurrent_increments_are_all_counted,
    an_expired_window_counts_afresh,
);

async fn each_window_of_each_counter_counts_on_its_own(backend: Backend) {
    let (first, second) = (unique("counter"), unique("counter"));
    let window = backend.clock_now();
    let expires = window + 120;
    let counters = &backend.counters;
    for expected in 1..=3 {
        let count = counters.increment(&first, window, expires).await.expect("increment");
        assert_eq!(count, expected);
    }
    assert_eq!(
        counters.increment(&second, window, expires).await.expect("increment"),
        1
    );
    assert_eq!(
        counters
            .increment(&first, window + 60, expires + 60)
            .await
            .expect("increment"),
        1,
        "the next window starts from one"
    );
    assert_eq!(
        counters.increment(&first, window, expires).await.expect("increment"),
        4,
        "the earlier window kept its count"
    );
}

async fn concurrent_increments_are_all_counted(backend: Backend) {
    let name = Arc::new(unique("counter"));
    let window = backend.clock_now();
    let increments: Vec<_> = (0..20)
        .map(|_| {
            let (counters, name) = (backend.counters.clone(), name.clone());
            tokio::spawn(async move { counters.increment(&name, window, window + 120).await })
        })
        .collect();
    let mut counts = Vec::new();
    for increment in increments {
        counts.push(increment.await.expect("task").expect("increment"));
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<u64>>(),
        "each increment saw its own count"
    );
}

async fn an_expired_window_counts_afresh(backend: Backend) {
    let name = unique("counter");
    let window = backend.clock_now();
    for _ in 0..3 {
        backend
            .counters
            .increment(&name, window, window + 60)
            .await
            .expect("increment");
    }
    backend.clock.advance(time::Duration::seconds(61));
    assert_eq!(
        backend
            .counters
            .increment(&name, window, window + 60)
            .await
            .expect("increment"),
        1,
        "an expired window is forgotten"
    );
}
