//! The counters port in the memory of the serving process (see [`crate::counters`]): windows
//! are forgotten once expired, and an expired window counts as never seen, as on DynamoDB.

use std::collections::HashMap;

use async_trait::async_trait;

use super::EmbeddedStore;
use crate::counters::Counters;
use crate::error::StoreResult;

/// The fewest windows kept before expired ones are dropped.
const MIN_PRUNE: usize = 1024;

/// Every counter's windows.
#[derive(Debug, Default)]
pub(super) struct Windows {
    counts: HashMap<(String, i64), Window>,
    /// How many windows make the next increment drop the expired ones first (twice as many as
    /// were left the last time, so that dropping costs O(1) per increment).
    prune_at: usize,
}

/// One counter's count in one window.
#[derive(Debug)]
struct Window {
    count: u64,
    expires_at: i64,
}

impl Windows {
    /// Adds one to `name`'s window starting at `window_start` (a fresh one when absent or
    /// expired at `now`), which expires at `expires_at`; answers its count.
    pub(super) fn increment(&mut self, name: &str, window_start: i64, expires_at: i64, now: i64) -> u64 {
        if self.counts.len() >= self.prune_at {
            self.counts.retain(|_, window| window.expires_at > now);
            self.prune_at = (self.counts.len() * 2).max(MIN_PRUNE);
        }
        let window = self
            .counts
            .entry((name.to_owned(), window_start))
            .or_insert(Window { count: 0, expires_at });
        if window.expires_at <= now {
            window.count = 0;
        }
        window.count += 1;
        window.expires_at = expires_at;
        window.count
    }

    /// How many windows are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.counts.len()
    }
}

#[async_trait]
impl Counters for EmbeddedStore {
    async fn increment(&self, name: &str, window_start: i64, expires_at: i64) -> StoreResult<u64> {
        let now = self.now_unix();
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(windows.increment(name, window_start, expires_at, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_windows_are_dropped_as_new_ones_come() {
        let mut windows = Windows::default();
        for window in 0..10 * MIN_PRUNE as i64 {
            windows.increment("a", window * 60, window * 60 + 60, window * 60);
        }
        assert!(windows.len() <= MIN_PRUNE, "{} windows kept", windows.len());
        assert_eq!(windows.increment("a", 0, 60, 0), 1, "a dropped window starts afresh");
    }
}
