//! The counters port on DynamoDB: one item per counter and window in the accounts table,
//! incremented atomically and expired by its TTL.

use async_trait::async_trait;
use serde_json::json;

use super::AwsStore;
use crate::counters::Counters;
use crate::definitions::accounts_table;
use crate::error::StoreResult;
use crate::item::{ItemStore, Key, Update};

#[async_trait]
impl Counters for AwsStore {
    async fn increment(&self, name: &str, window_start: i64, expires_at: i64) -> StoreResult<u64> {
        let key = Key::new(format!("RATE#{name}"), window_start.to_string());
        let update = Update::set("ttl", json!(expires_at)).and_add("count", 1);
        let item = self.update(&accounts_table(), &key, update, None).await?;
        Ok(item
            .get("count")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(u64::MAX))
    }
}
