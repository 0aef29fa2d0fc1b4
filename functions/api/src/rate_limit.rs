//! Rate limits shared by every Lambda instance: fixed windows counted in the counters port (one
//! atomic increment per request, expired with the window), with the `X-RateLimit-*` headers; and
//! the login lockout, kept in the item store.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use tessera_core::Clock;
use tessera_store::definitions::accounts_table;
use tessera_store::{Counters, ItemStore, Key, StoreResult, TableDef, Update};

/// One limit: at most `limit` requests per `window_seconds` per subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name, part of the counter's key.
    pub name: &'static str,
    /// Requests allowed per window.
    pub limit: u32,
    /// Window length in seconds.
    pub window_seconds: i64,
}

impl Rule {
    /// `/auth/login`: 5 per 15 minutes per IP.
    pub const LOGIN_PER_IP: Rule = Rule::new("login-ip", 5, 15 * 60);
    /// `/auth/signup`: 10 per hour per IP.
    pub const SIGNUP_PER_IP: Rule = Rule::new("signup-ip", 10, 60 * 60);
    /// `/auth/refresh`: 30 per minute per IP.
    pub const REFRESH_PER_IP: Rule = Rule::new("refresh-ip", 30, 60);
    /// `/auth/me`: 60 per minute per token.
    pub const ME: Rule = Rule::new("me", 60, 60);
    /// `/projetos/*`, `/dominios/*` and the key routes: 60 per minute per token.
    pub const PLATFORM: Rule = Rule::new("platform", 60, 60);
    /// `/admin/*`: 120 per minute per token.
    pub const ADMIN: Rule = Rule::new("admin", 120, 60);

    /// A rule.
    pub const fn new(name: &'static str, limit: u32, window_seconds: i64) -> Self {
        Self {
            name,
            limit,
            window_seconds,
        }
    }
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The rule's limit.
    pub limit: u32,
    /// Requests left in this window.
    pub remaining: u32,
    /// When the window ends, unix seconds.
    pub reset_at: i64,
    /// Seconds until then (at least 1).
    pub retry_after: i64,
}

impl Decision {
    /// Adds `X-RateLimit-Limit`, `-Remaining`, `-Reset`, and `Retry-After` when refused.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let mut put = |name: &'static str, value: i64| {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        };
        put("x-ratelimit-limit", i64::from(self.limit));
        put("x-ratelimit-remaining", i64::from(self.remaining));
        put("x-ratelimit-reset", self.reset_at);
        if !self.allowed {
            put("retry-after", self.retry_after);
        }
    }
}

/// Counts requests per rule and subject.
#[derive(Clone)]
pub struct RateLimiter {
    counters: Arc<dyn Counters>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter counting in `counters`, on `clock`.
    pub fn new(counters: Arc<dyn Counters>, clock: Arc<dyn Clock>) -> Self {
        Self { counters, clock }
    }

    /// Counts one request of `subject` under `rule`.
    pub async fn hit(&self, rule: Rule, subject: &str) -> StoreResult<Decision> {
        let now = self.clock.now().unix_timestamp();
        let window_start = now - now.rem_euclid(rule.window_seconds);
        let reset_at = window_start + rule.window_seconds;
        let name = format!("{}#{subject}", rule.name);
        let count = self.counters.increment(&name, window_start, reset_at + 60).await?;
        let limit = u64::from(rule.limit);
        Ok(Decision {
            allowed: count <= limit,
            limit: rule.limit,
            remaining: u32::try_from(limit.saturating_sub(count)).unwrap_or(0),
            reset_at,
            retry_after: (reset_at - now).max(1),
        })
    }

    /// The clock the limiter counts windows on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

/// The account lockout of `/auth/login`: after [`Lockout::MAX_FAILURES`] failures in a row for
/// one e-mail (known or not, so that it reveals nothing), logins for it are refused for
/// [`Lockout::LOCK_SECONDS`]; a success clears the count.
#[derive(Clone)]
pub struct Lockout {
    items: Arc<dyn ItemStore>,
    clock: Arc<dyn Clock>,
    table: TableDef,
}

impl std::fmt::Debug for Lockout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockout").finish_non_exhaustive()
    }
}

impl Lockout {
    /// Failures in a row that lock the account.
    pub const MAX_FAILURES: i64 = 5;
    /// How long a lock lasts, in seconds.
    pub const LOCK_SECONDS: i64 = 15 * 60;
    /// How long a failure counts towards a lock, in seconds.
    const FORGET_SECONDS: i64 = 24 * 60 * 60;

    /// Lockouts kept in `items`' accounts table.
    pub fn new(items: Arc<dyn ItemStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            items,
            clock,
            table: accounts_table(),
        }
    }

    /// Seconds left on the lock of `subject`, if locked.
    pub async fn locked_for(&self, subject: &str) -> StoreResult<Option<i64>> {
        let now = self.clock.now().unix_timestamp();
        let item = self.items.get(&self.table, &Self::key(subject)).await?;
        let until = item.and_then(|item| item.get("locked_until").and_then(serde_json::Value::as_i64));
        Ok(until.filter(|until| *until > now).map(|until| until - now))
    }

    /// Counts a failed login of `subject`, locking it at the fifth in a row.
    pub async fn record_failure(&self, subject: &str) -> StoreResult<()> {
        let now = self.clock.now().unix_timestamp();
        let key = Self::key(subject);
        let update = Update::set("ttl", json!(now + Self::FORGET_SECONDS)).and_add("failures", 1);
        let item = self.items.update(&self.table, &key, update, None).await?;
        let failures = item.get("failures").and_then(serde_json::Value::as_i64).unwrap_or(0);
        if failures >= Self::MAX_FAILURES {
            let lock = Update::set("locked_until", json!(now + Self::LOCK_SECONDS))
                .and_set("failures", json!(0))
                .and_set("ttl", json!(now + Self::LOCK_SECONDS + Self::FORGET_SECONDS));
            self.items.update(&self.table, &key, lock, None).await?;
        }
        Ok(())
    }

    /// Clears the failures of `subject` after a successful login.
    pub async fn clear(&self, subject: &str) -> StoreResult<()> {
        self.items.delete(&self.table, &Self::key(subject), None).await
    }

    fn key(subject: &str) -> Key {
        Key::new(format!("LOCKOUT#{subject}"), "LOCKOUT")
    }
}
