//! The webhook consumer: one queue message makes (at most) one attempt of one delivery. It
//! claims the attempt with a conditional write, so that duplicate messages never POST twice,
//! signs the body with the tenant's secrets, POSTs it through the SSRF guard, logs the attempt,
//! and chains the next one on the retry schedule (SQS delays stop at 15 minutes, so a longer
//! wait is a message that puts itself back until its time has come).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tessera_core::DeliveryId;
use tessera_core::event::{MAX_DELIVERY_ATTEMPTS, SIGNATURE_HEADER, retry_delay_seconds, signature_header};
use tessera_store::events::{DeliveryAttempt, DeliveryRecord, DeliveryStatus};
use tessera_store::{StoreError, StoreResult};

use super::dispatch::queue_attempt;
use super::secret::new_salt;
use crate::v1::V1State;

/// How long a consumer holds an attempt: longer than the HTTP timeout and the writes around it.
pub const CLAIM_SECONDS: i64 = 45;

/// The longest answer read from a receiver; the rest is dropped.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// How much of an answer the log keeps.
const EXCERPT_CHARS: usize = 512;

/// The body of a webhook queue message: make the delivery's next attempt when it is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMessage {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// How many attempts the delivery had when this message was queued (for the logs: the
    /// consumer goes by the delivery's own count, so that an older message carries the chain
    /// on after a crash).
    pub attempt_count: u32,
}

/// What the consumer did with a message; every outcome but an error deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// It made an attempt, which delivered, failed for good, or was scheduled again.
    Attempted(DeliveryStatus),
    /// The attempt is not due yet: the message was put back with a delay.
    Deferred,
    /// Nothing to do: the delivery is finished or gone, or the message was not ours.
    Dropped,
}

/// Why a message must come back later (it is not deleted).
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The store or queue failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another consumer holds this attempt right now; if it dies, this message carries on.
    #[error("another consumer holds the attempt")]
    Busy,
}

/// Handles one webhook queue message body.
pub async fn handle(state: &V1State, body: &str) -> Result<Handled, DeliverError> {
    let Ok(message) = serde_json::from_str::<DeliveryMessage>(body) else {
        tracing::warn!(body, "not a delivery message: dropped");
        return Ok(Handled::Dropped);
    };
    tracing::debug!(delivery = %message.delivery_id, queued_after = message.attempt_count, "webhook message");
    let Some(delivery) = state.events.delivery(&message.delivery_id).await? else {
        return Ok(Handled::Dropped);
    };
    if delivery.status != DeliveryStatus::Pending {
        return Ok(Handled::Dropped);
    }
    // A message older than the delivery's last attempt carries the chain on: the consumer that
    // recorded that attempt may have died before queueing the next. Duplicates meet at the claim.
    let now = state.now();
    if let Some(due) = delivery.next_attempt_at.filter(|due| *due > now) {
        queue_attempt(state, &delivery.delivery_id, delivery.attempt_count, due - now).await?;
        return Ok(Handled::Deferred);
    }
    if !state
        .events
        .claim_attempt(&delivery.delivery_id, delivery.attempt_count, now, now + CLAIM_SECONDS)
        .await?
    {
        return match state.events.delivery(&delivery.delivery_id).await? {
            Some(current)
                if current.status == DeliveryStatus::Pending && current.attempt_count == delivery.attempt_count =>
            {
                Err(DeliverError::Busy)
            }
            _ => Ok(Handled::Dropped),
        };
    }
    let attempt = post(state, &delivery).await;
    record(state, &delivery, attempt).await.map(Handled::Attempted)
}

/// Logs the attempt, decides what follows, and queues the next attempt if there is one.
async fn record(
    state: &V1State,
    delivery: &DeliveryRecord,
    attempt: DeliveryAttempt,
) -> Result<DeliveryStatus, DeliverError> {
    let delivered = attempt.error.is_none();
    let made = delivery.attempt_count + 1;
    let delay = (!delivered && made < MAX_DELIVERY_ATTEMPTS)
        .then(|| retry_delay_seconds(made, rand::random::<f64>() * 2.0 - 1.0))
        .flatten();
    let (status, next_attempt_at) = match (delivered, delay) {
        (true, _) => (DeliveryStatus::Delivered, None),
        (false, Some(delay)) => (DeliveryStatus::Pending, Some(attempt.at + delay)),
        (false, None) => (DeliveryStatus::Failed, None),
    };
    tracing::info!(
        delivery = %delivery.delivery_id,
        attempt = made,
        status_code = attempt.status_code,
        error = attempt.error.as_deref().unwrap_or_default(),
        outcome = status.as_str(),
        "webhook attempt"
    );
    state
        .events
        .record_attempt(delivery, attempt, status, next_attempt_at)
        .await?;
    if let Some(delay) = delay {
        queue_attempt(state, &delivery.delivery_id, made, delay).await?;
    }
    Ok(status)
}

/// One signed POST of the delivery's body, as the log records it.
async fn post(state: &V1State, delivery: &DeliveryRecord) -> DeliveryAttempt {
    let now = state.now();
    let mut attempt = DeliveryAttempt {
        number: delivery.attempt_count + 1,
        at: now,
        status_code: None,
        latency_ms: 0,
        error: None,
        response_excerpt: None,
    };
    let secrets = match signing_secrets(state, delivery, now).await {
        Ok(secrets) => secrets,
        Err(error) => {
            attempt.error = Some(format!("could not read the webhook secret: {error}"));
            return attempt;
        }
    };
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let signature = signature_header(now, &secrets, delivery.payload.as_bytes());
    let started = Instant::now();
    let outcome = send(state, delivery, &signature).await;
    attempt.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok((status, excerpt)) => {
            attempt.status_code = Some(status.as_u16());
            attempt.response_excerpt = (!excerpt.is_empty()).then_some(excerpt);
            attempt.error = answer_error(status);
        }
        Err(error) => attempt.error = Some(error),
    }
    attempt
}

/// Why an answer does not count as delivered (`None` for 2xx).
fn answer_error(status: reqwest::StatusCode) -> Option<String> {
    if status.is_success() {
        None
    } else if status.is_redirection() {
        Some(format!(
            "answered {status}: redirects are not followed; point the webhook_url at the final address"
        ))
    } else {
        Some(format!("answered {status}"))
    }
}

/// The secrets that sign now: the tenant's current one (created on first use) and, for a day
/// after a rotation, the previous one.
async fn signing_secrets(state: &V1State, delivery: &DeliveryRecord, now: i64) -> StoreResult<Vec<String>> {
    let record = state
        .events
        .webhook_secret_or_create(&delivery.tenant_id, &new_salt(), now)
        .await?;
    Ok(record
        .signing_salts(now)
        .into_iter()
        .map(|salt| state.webhook.key.secret(&delivery.tenant_id, salt))
        .collect())
}

/// POSTs the body; answers the status and the start of the answer, or why nothing came back.
async fn send(
    state: &V1State,
    delivery: &DeliveryRecord,
    signature: &str,
) -> Result<(reqwest::StatusCode, String), String> {
    let url = reqwest::Url::parse(&delivery.url).map_err(|error| format!("invalid URL: {error}"))?;
    crate::ssrf::check_literal(&url, state.webhook.rules.allow_private)?;
    let response = state
        .webhook
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header("X-Tessera-Event", delivery.event.as_str())
        .header("X-Tessera-Event-Id", delivery.event_id.as_str())
        .header("X-Tessera-Delivery", delivery.delivery_id.as_str())
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|error| describe(&error, state.webhook.timeout))?;
    let status = response.status();
    let body = read_capped(response, state.webhook.timeout).await?;
    Ok((status, excerpt(&body)))
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of an answer.
async fn read_capped(mut response: reqwest::Response, timeout: Duration) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BYTES - body.len())]),
            Ok(None) => break,
            Err(error) => return Err(describe(&error, timeout)),
        }
    }
    Ok(body)
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(EXCERPT_CHARS).collect()
}

/// A transport failure in words for the log.
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs_f32());
    }
    if let Some(refused) = crate::ssrf::refusal(error) {
        return format!("refused by the SSRF guard: {}", refused.message());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
