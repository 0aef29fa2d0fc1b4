//! The injected clock: production reads the system time, tests move time by hand.

use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

/// A source of the current time. Every component that needs "now" takes one, so tests are
/// deterministic and can expire things without sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// The current instant as whole seconds since the Unix epoch.
    fn now_unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until told to move; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    /// Sets the clock to `instant`.
    pub fn set(&self, instant: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = instant;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::new(datetime!(2025-12-17 20:00:00 UTC));
        let twin = clock.clone();
        clock.advance(Duration::seconds(90));
        assert_eq!(twin.now(), datetime!(2025-12-17 20:01:30 UTC));
        assert_eq!(twin.now_unix(), 1_766_001_690);
    }
}
