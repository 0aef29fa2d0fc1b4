//! The counters port: fixed-window request counters, for rate limits.
//!
//! A counter is soft state: it only decides whether a request is over a limit, and it expires
//! with its window. On AWS it is a DynamoDB item (one atomic `ADD` per request), shared by every
//! Lambda instance. The embedded backend keeps it in the memory of the one process that serves
//! the API: no request pays a durable write for it, and a restart starts the windows in
//! progress afresh.

use async_trait::async_trait;

use crate::error::StoreResult;

/// Fixed-window counters.
#[async_trait]
pub trait Counters: Send + Sync {
    /// Adds one to the counter `name` for the window that starts at `window_start`, which may be
    /// forgotten from `expires_at` (both unix seconds); answers the window's count afterwards.
    /// A backend that has no room left for a new window answers `u64::MAX`, over every limit:
    /// a flood of distinct subjects is refused, not let through uncounted.
    async fn increment(&self, name: &str, window_start: i64, expires_at: i64) -> StoreResult<u64>;
}
