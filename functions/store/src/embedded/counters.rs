//! The counters port in the memory of the serving process (see [`crate::counters`]): windows
//! are forgotten once expired, and an expired window counts as never seen, as on DynamoDB.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use async_trait::async_trait;

use super::EmbeddedStore;
use crate::counters::Counters;
use crate::error::StoreResult;

/// The fewest windows kept before expired ones are dropped.
const MIN_PRUNE: usize = 1024;

/// The most windows kept at once (about a hundred bytes each). Once that many are live, a new
/// window counts as full (see [`Counters::increment`]): a flood of distinct subjects (client
/// addresses) is refused until windows expire, rather than counted in memory without bound.
const MAX_WINDOWS: usize = 1_000_000;

/// Every counter's windows.
#[derive(Debug)]
pub(super) struct Windows {
    counts: HashMap<(String, i64), Window>,
    /// How many windows make the next increment drop the expired ones first (twice as many as
    /// were left the last time, so that dropping costs O(1) per increment).
    prune_at: usize,
    /// The most windows kept.
    capacity: usize,
    /// When expired windows were last dropped (unix seconds): while full, at most once a second.
    pruned_at: i64,
}

/// One counter's count in one window.
#[derive(Debug)]
struct Window {
    count: u64,
    expires_at: i64,
}

impl Default for Windows {
    fn default() -> Self {
        Self::with_capacity(MAX_WINDOWS)
    }
}

impl Windows {
    /// No windows, keeping at most `capacity`.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            counts: HashMap::new(),
            prune_at: 0,
            capacity,
            pruned_at: i64::MIN,
        }
    }

    /// Adds one to `name`'s window starting at `window_start` (a fresh one when absent or
    /// expired at `now`), which expires at `expires_at`; answers its count, or `u64::MAX` for a
    /// new window when [`Windows::capacity`] live windows are kept already.
    pub(super) fn increment(&mut self, name: &str, window_start: i64, expires_at: i64, now: i64) -> u64 {
        let full = self.counts.len() >= self.capacity;
        if self.counts.len() >= self.prune_at || (full && now > self.pruned_at) {
            self.counts.retain(|_, window| window.expires_at > now);
            self.prune_at = (self.counts.len() * 2).max(MIN_PRUNE);
            self.pruned_at = now;
        }
        let full = self.counts.len() >= self.capacity;
        let window = match self.counts.entry((name.to_owned(), window_start)) {
            Entry::Occupied(window) => window.into_mut(),
            Entry::Vacant(_) if full => return u64::MAX,
            Entry::Vacant(window) => window.insert(Window { count: 0, expires_at }),
        };
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

    #[test]
    fn a_new_window_counts_as_full_while_the_windows_are_at_capacity() {
        let mut windows = Windows::with_capacity(4);
        for subject in ["a", "b", "c", "d"] {
            assert_eq!(windows.increment(subject, 0, 60, 0), 1);
        }
        assert_eq!(windows.increment("e", 0, 60, 1), u64::MAX, "no room for a fifth");
        assert_eq!(windows.increment("a", 0, 60, 1), 2, "kept windows still count");
        assert_eq!(windows.len(), 4);
        assert_eq!(windows.increment("e", 60, 120, 60), 1, "expired windows make room");
        assert!(windows.len() <= 4, "{} windows kept", windows.len());
    }
}
