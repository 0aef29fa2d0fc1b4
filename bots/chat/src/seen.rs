//! The events a bot has already shown, so that a duplicate delivery of one (SQS delivers at
//! least once) posts nothing twice.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

/// How many handled event ids the bot remembers to drop duplicates.
const SEEN_CAPACITY: usize = 10_000;

/// The event ids handled lately, oldest first out.
#[derive(Debug, Default)]
pub struct Seen(Mutex<(VecDeque<String>, HashSet<String>)>);

impl Seen {
    /// Whether `event_id` was handled already.
    pub fn contains(&self, event_id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .contains(event_id)
    }

    /// Remembers `event_id` as handled.
    pub fn insert(&self, event_id: &str) {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (order, set) = &mut *guard;
        if set.insert(event_id.to_owned()) {
            order.push_back(event_id.to_owned());
            if order.len() > SEEN_CAPACITY
                && let Some(oldest) = order.pop_front()
            {
                set.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_events_and_forgets_the_oldest_past_its_capacity() {
        let seen = Seen::default();
        assert!(!seen.contains("evt_a"));
        seen.insert("evt_a");
        seen.insert("evt_a");
        assert!(seen.contains("evt_a"));
        for n in 0..SEEN_CAPACITY {
            seen.insert(&format!("evt_{n}"));
        }
        assert!(!seen.contains("evt_a"), "the oldest is forgotten");
        assert!(seen.contains(&format!("evt_{}", SEEN_CAPACITY - 1)));
    }
}
