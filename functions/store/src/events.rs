//! The events repository: the outbox of final job events, webhook deliveries with their attempt
//! log, and each tenant's webhook secret (its salt: the secret itself is derived, never stored).
//!
//! | item | table | pk | sk | index |
//! | --- | --- | --- | --- | --- |
//! | outbox entry | jobs | `OUTBOX#<event id>` | `OUTBOX` | gsi1: `OUTBOX` / `<created>#<event id>` |
//! | delivery | jobs | `DELIVERY#<id>` | `DELIVERY` | gsi1: `TENANT#<id>#DELIVERIES` / `<created>#<id>`, gsi2: `JOB#<id>#DELIVERIES` / `<created>#<id>` (ttl 30 days) |
//! | webhook secret | accounts | `TENANT#<id>` | `WEBHOOK_SECRET` | |
//!
//! The outbox entry is written in the same transaction as the job's final state (see
//! [`crate::jobs::Jobs`]), so an event can't be lost between the state change and its queues.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_core::{DeliveryId, EventId, EventKind, JobId, TenantId};

use crate::definitions::{accounts_table, jobs_table};
use crate::item::{Cmp, Condition, ItemStore, Key, Query, SortRange, TableDef, Update, Write};
use crate::jobs::{JobRecord, from_item, to_item};
use crate::{StoreError, StoreResult};

/// How long a delivery and its attempt log are kept.
pub const DELIVERY_RETENTION_SECONDS: i64 = 30 * 24 * 60 * 60;

/// The index partition of outbox entries.
const OUTBOX_PARTITION: &str = "OUTBOX";

/// A final event waiting to reach its queues. Each target is marked once its message is sent;
/// the entry is removed when all are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The event (stable per job).
    pub event_id: EventId,
    /// Which final event.
    pub event: EventKind,
    /// The job it is about.
    pub job_id: JobId,
    /// When the job reached its final state, unix seconds.
    pub created_at: i64,
    /// The job has a webhook URL and its delivery is not yet queued.
    #[serde(default)]
    pub webhook_pending: bool,
    /// The job came from a chat frontend and its notify message is not yet sent.
    #[serde(default)]
    pub notify_pending: bool,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// One POST to a webhook URL, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// When it was sent, unix seconds.
    pub at: i64,
    /// The receiver's HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// From sending to the end of the answer (or the failure), in milliseconds.
    pub latency_ms: u64,
    /// Why it did not count as delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The start of the receiver's answer, for the log (at most 512 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_excerpt: Option<String>,
}

/// One delivery of an event to a webhook URL, with every attempt made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Its id.
    pub delivery_id: DeliveryId,
    /// Whose.
    pub tenant_id: TenantId,
    /// The job the event is about.
    pub job_id: JobId,
    /// The event delivered.
    pub event_id: EventId,
    /// Which event.
    pub event: EventKind,
    /// Where it is POSTed.
    pub url: String,
    /// The exact body POSTed (the signature is made per attempt).
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Every attempt so far, oldest first.
    #[serde(default)]
    pub attempts: Vec<DeliveryAttempt>,
    /// `attempts.len()`, as a number that conditions can compare.
    #[serde(default)]
    pub attempt_count: u32,
    /// When the next attempt is due, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    /// When it was created, unix seconds.
    pub created_at: i64,
    /// The delivery this one repeats, for a redelivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery_of: Option<DeliveryId>,
}

/// A tenant's webhook secret, as stored: the salts it is derived from (with a server key the
/// store never holds), the current one and, for a day after a rotation, the previous one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecretRecord {
    /// Whose.
    pub tenant_id: TenantId,
    /// The salt of the current secret.
    pub salt: String,
    /// When the current secret was made, unix seconds.
    pub created_at: i64,
    /// The salt of the secret it replaced, while that one still signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_salt: Option<String>,
    /// Until when the previous secret signs too, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_expires_at: Option<i64>,
    /// Bumped on every rotation, so that two racing rotations can't both win.
    pub version: u64,
}

impl WebhookSecretRecord {
    /// The salts that sign at `now`: the current one, then the previous one in its overlap.
    pub fn signing_salts(&self, now: i64) -> Vec<&str> {
        let mut salts = vec![self.salt.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_salt, self.previous_expires_at)
            && now < until
        {
            salts.push(previous);
        }
        salts
    }
}

/// Reads and writes outbox entries, deliveries and webhook secrets.
#[derive(Clone)]
pub struct Events {
    items: Arc<dyn ItemStore>,
    jobs: TableDef,
    accounts: TableDef,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

/// The outbox write that goes into a job's final transaction, when anyone listens for its
/// event (a webhook URL or a chat frontend); `None` otherwise.
pub(crate) fn outbox_write(job: &JobRecord, event: EventKind, now: i64) -> StoreResult<Option<Write>> {
    if job.webhook_url.is_none() && job.origin.is_none() {
        return Ok(None);
    }
    let record = OutboxRecord {
        event_id: EventId::for_job(&job.job_id),
        event,
        job_id: job.job_id.clone(),
        created_at: now,
        webhook_pending: job.webhook_url.is_some(),
        notify_pending: job.origin.is_some(),
    };
    let mut item = to_item(&record)?;
    let key = outbox_key(&record.event_id);
    item.insert("pk".into(), key.pk.into());
    item.insert("sk".into(), key.sk.into());
    item.insert("gsi1pk".into(), OUTBOX_PARTITION.into());
    item.insert("gsi1sk".into(), order_key(now, record.event_id.as_str()).into());
    Ok(Some(Write::Put {
        table: jobs_table(),
        item,
        condition: Some(Condition::NotExists),
    }))
}

impl Events {
    /// The repository over `items`.
    pub fn new(items: Arc<dyn ItemStore>) -> Self {
        Self {
            items,
            jobs: jobs_table(),
            accounts: accounts_table(),
        }
    }

    /// The outbox entry of an event, if it is still there.
    pub async fn outbox(&self, event: &EventId) -> StoreResult<Option<OutboxRecord>> {
        self.read(&self.jobs, &outbox_key(event)).await
    }

    /// Outbox entries written before `before` (unix seconds), oldest first: events whose
    /// dispatch did not finish (a crash, or a queue that was down).
    pub async fn stale_outbox(&self, before: i64) -> StoreResult<Vec<OutboxRecord>> {
        let mut query = Query::partition(OUTBOX_PARTITION);
        query.index = Some("gsi1".into());
        query.range = SortRange::Lt(format!("{:020}#", before.max(0)));
        query.limit = 1000;
        self.collect(&self.jobs, query).await
    }

    /// Marks one target of an outbox entry as sent: `webhook_pending` or `notify_pending`.
    pub async fn outbox_sent(&self, event: &EventId, target: &str) -> StoreResult<()> {
        let update = Update::set(target, false);
        match self
            .items
            .update(&self.jobs, &outbox_key(event), update, Some(Condition::Exists))
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Removes a fully dispatched outbox entry.
    pub async fn remove_outbox(&self, event: &EventId) -> StoreResult<()> {
        self.items.delete(&self.jobs, &outbox_key(event), None).await
    }

    /// Stores a new delivery; `false` when one with its id exists already (a duplicate dispatch).
    pub async fn create_delivery(&self, delivery: &DeliveryRecord) -> StoreResult<bool> {
        let mut item = to_item(delivery)?;
        let key = delivery_key(&delivery.delivery_id);
        let order = order_key(delivery.created_at, delivery.delivery_id.as_str());
        item.insert("pk".into(), key.pk.into());
        item.insert("sk".into(), key.sk.into());
        item.insert(
            "gsi1pk".into(),
            format!("TENANT#{}#DELIVERIES", delivery.tenant_id).into(),
        );
        item.insert("gsi1sk".into(), order.clone().into());
        item.insert("gsi2pk".into(), format!("JOB#{}#DELIVERIES", delivery.job_id).into());
        item.insert("gsi2sk".into(), order.into());
        item.insert("ttl".into(), json!(delivery.created_at + DELIVERY_RETENTION_SECONDS));
        match self.items.put(&self.jobs, item, Some(Condition::NotExists)).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// The delivery with this id.
    pub async fn delivery(&self, id: &DeliveryId) -> StoreResult<Option<DeliveryRecord>> {
        self.read(&self.jobs, &delivery_key(id)).await
    }

    /// Takes the right to make attempt `attempt_count + 1` of a pending delivery until
    /// `claimed_until`: `false` when another consumer holds it or the delivery moved on.
    pub async fn claim_attempt(
        &self,
        id: &DeliveryId,
        attempt_count: u32,
        now: i64,
        claimed_until: i64,
    ) -> StoreResult<bool> {
        let condition = Condition::All(vec![
            Condition::equals("status", DeliveryStatus::Pending.as_str()),
            Condition::equals("attempt_count", attempt_count),
            Condition::Any(vec![
                Condition::AttributeNotExists("claimed_until".into()),
                Condition::Compare("claimed_until".into(), Cmp::Lt, json!(now)),
            ]),
        ]);
        let update = Update::set("claimed_until", claimed_until);
        match self
            .items
            .update(&self.jobs, &delivery_key(id), update, Some(condition))
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Records the attempt that follows `attempt_count` and the delivery's new state, and
    /// releases the claim; `Conflict` if another attempt was recorded meanwhile.
    pub async fn record_attempt(
        &self,
        delivery: &DeliveryRecord,
        attempt: DeliveryAttempt,
        status: DeliveryStatus,
        next_attempt_at: Option<i64>,
    ) -> StoreResult<DeliveryRecord> {
        let mut attempts = delivery.attempts.clone();
        attempts.push(attempt);
        let attempts = serde_json::to_value(&attempts).map_err(|error| StoreError::Internal(error.to_string()))?;
        let mut update = Update::set("attempts", attempts)
            .and_add("attempt_count", 1)
            .and_set("status", status.as_str())
            .and_remove("claimed_until");
        update = match next_attempt_at {
            Some(at) => update.and_set("next_attempt_at", at),
            None => update.and_remove("next_attempt_at"),
        };
        let condition = Condition::All(vec![
            Condition::equals("status", DeliveryStatus::Pending.as_str()),
            Condition::equals("attempt_count", delivery.attempt_count),
        ]);
        let item = self
            .items
            .update(
                &self.jobs,
                &delivery_key(&delivery.delivery_id),
                update,
                Some(condition),
            )
            .await?;
        from_item(item)
    }

    /// A tenant's deliveries, newest first: all of them, or one job's.
    pub async fn deliveries_for(&self, tenant: &TenantId, job: Option<&JobId>) -> StoreResult<Vec<DeliveryRecord>> {
        let mut query = match job {
            Some(job) => {
                let mut query = Query::partition(format!("JOB#{job}#DELIVERIES"));
                query.index = Some("gsi2".into());
                query
            }
            None => {
                let mut query = Query::partition(format!("TENANT#{tenant}#DELIVERIES"));
                query.index = Some("gsi1".into());
                query
            }
        };
        query.descending = true;
        query.limit = 1000;
        let deliveries: Vec<DeliveryRecord> = self.collect(&self.jobs, query).await?;
        Ok(deliveries
            .into_iter()
            .filter(|delivery| delivery.tenant_id == *tenant)
            .collect())
    }

    /// The tenant's webhook secret record, if it has one.
    pub async fn webhook_secret(&self, tenant: &TenantId) -> StoreResult<Option<WebhookSecretRecord>> {
        self.read(&self.accounts, &secret_key(tenant)).await
    }

    /// The tenant's webhook secret record, created with `salt` if it has none (first use).
    pub async fn webhook_secret_or_create(
        &self,
        tenant: &TenantId,
        salt: &str,
        now: i64,
    ) -> StoreResult<WebhookSecretRecord> {
        let record = WebhookSecretRecord {
            tenant_id: tenant.clone(),
            salt: salt.to_owned(),
            created_at: now,
            previous_salt: None,
            previous_expires_at: None,
            version: 1,
        };
        match self.put_secret(&record, Condition::NotExists).await {
            Ok(()) => Ok(record),
            Err(StoreError::Conflict(_)) => self
                .webhook_secret(tenant)
                .await?
                .ok_or_else(|| StoreError::Internal("the webhook secret vanished".into())),
            Err(other) => Err(other),
        }
    }

    /// Replaces the tenant's secret with one from `salt`: the old one keeps signing until
    /// `now + overlap_seconds`. Creates the first one when there is none.
    pub async fn rotate_webhook_secret(
        &self,
        tenant: &TenantId,
        salt: &str,
        now: i64,
        overlap_seconds: i64,
    ) -> StoreResult<WebhookSecretRecord> {
        let current = self.webhook_secret(tenant).await?;
        let (record, condition) = match current {
            None => (
                WebhookSecretRecord {
                    tenant_id: tenant.clone(),
                    salt: salt.to_owned(),
                    created_at: now,
                    previous_salt: None,
                    previous_expires_at: None,
                    version: 1,
                },
                Condition::NotExists,
            ),
            Some(current) => (
                WebhookSecretRecord {
                    tenant_id: tenant.clone(),
                    salt: salt.to_owned(),
                    created_at: now,
                    previous_salt: Some(current.salt.clone()),
                    previous_expires_at: Some(now + overlap_seconds),
                    version: current.version + 1,
                },
                Condition::equals("version", current.version),
            ),
        };
        self.put_secret(&record, condition).await?;
        Ok(record)
    }

    async fn put_secret(&self, record: &WebhookSecretRecord, condition: Condition) -> StoreResult<()> {
        let mut item = to_item(record)?;
        let key = secret_key(&record.tenant_id);
        item.insert("pk".into(), key.pk.into());
        item.insert("sk".into(), key.sk.into());
        self.items.put(&self.accounts, item, Some(condition)).await
    }

    async fn read<T: serde::de::DeserializeOwned>(&self, table: &TableDef, key: &Key) -> StoreResult<Option<T>> {
        self.items.get(table, key).await?.map(from_item).transpose()
    }

    async fn collect<T: serde::de::DeserializeOwned>(&self, table: &TableDef, mut query: Query) -> StoreResult<Vec<T>> {
        let mut records = Vec::new();
        loop {
            let page = self.items.query(table, query.clone()).await?;
            for item in page.items {
                records.push(from_item::<T>(item)?);
            }
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(records),
            }
        }
    }
}

fn outbox_key(event: &EventId) -> Key {
    Key::new(format!("OUTBOX#{event}"), "OUTBOX")
}

fn delivery_key(id: &DeliveryId) -> Key {
    Key::new(format!("DELIVERY#{id}"), "DELIVERY")
}

fn secret_key(tenant: &TenantId) -> Key {
    Key::new(format!("TENANT#{tenant}"), "WEBHOOK_SECRET")
}

fn order_key(at: i64, id: &str) -> String {
    format!("{:020}#{id}", at.max(0))
}
