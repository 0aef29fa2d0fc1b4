//! From the outbox to the queues. A job's final transition writes its event to the outbox in
//! the same transaction; the API then dispatches it at once, and the sweep dispatches whatever
//! a crash (or a queue outage) left behind. Dispatching twice is harmless: the first delivery's
//! id is the event's, and a notify message's deduplication id is the event id.

use serde_json::{Value, json};
use tessera_core::{DeliveryId, EventId, EventKind, Frontend, NotifyEvent, NotifyMessage};
use tessera_store::StoreResult;
use tessera_store::definitions::{notify_queue, webhook_queue};
use tessera_store::events::{DeliveryRecord, DeliveryStatus, OutboxRecord};
use tessera_store::jobs::JobRecord;
use tessera_store::queue::OutgoingMessage;

use super::deliver::DeliveryMessage;
use crate::auth::routes::timestamp;
use crate::v1::V1State;
use crate::v1::jobs::job_view;

/// How old an outbox entry must be before the sweep dispatches it (the API dispatches within
/// milliseconds; this keeps the sweep from racing it).
pub const OUTBOX_GRACE_SECONDS: i64 = 30;

/// The least time between two progress messages to a chat (its edit limits).
pub const PROGRESS_GAP_MS: i64 = 2000;

/// Dispatches the final event of `job`, if anyone listens for it: called right after the final
/// transition. A failure is logged and left for the sweep.
pub async fn dispatch_job(state: &V1State, job: &JobRecord) {
    if job.webhook_url.is_none() && job.origin.is_none() {
        return;
    }
    let event = EventId::for_job(&job.job_id);
    let outcome = match state.events.outbox(&event).await {
        Ok(Some(outbox)) => dispatch(state, &outbox).await,
        Ok(None) => Ok(()),
        Err(error) => Err(error),
    };
    if let Err(error) = outcome {
        tracing::warn!(job = %job.job_id, %error, "event dispatch failed: left for the sweep");
    }
}

/// Dispatches every outbox entry older than [`OUTBOX_GRACE_SECONDS`]; answers how many.
pub async fn dispatch_stale(state: &V1State) -> StoreResult<usize> {
    let mut dispatched = 0;
    for outbox in state.events.stale_outbox(state.now() - OUTBOX_GRACE_SECONDS).await? {
        match dispatch(state, &outbox).await {
            Ok(()) => dispatched += 1,
            Err(error) => tracing::warn!(event = %outbox.event_id, %error, "event dispatch failed again"),
        }
    }
    Ok(dispatched)
}

/// Sends one outbox entry to its webhook and notify queues, marking each as it goes, then
/// removes it.
pub async fn dispatch(state: &V1State, outbox: &OutboxRecord) -> StoreResult<()> {
    let Some(job) = state.jobs.get(&outbox.job_id).await? else {
        return state.events.remove_outbox(&outbox.event_id).await;
    };
    let view = job_view(state, &job)
        .await
        .map_err(|error| tessera_store::StoreError::Unavailable(error.message))?;
    if outbox.webhook_pending {
        if let Some(url) = &job.webhook_url {
            let payload = webhook_payload(outbox, &view);
            queue_first_delivery(state, outbox, &job, url, payload).await?;
        }
        state.events.outbox_sent(&outbox.event_id, "webhook_pending").await?;
    }
    if outbox.notify_pending {
        let timestamp = timestamp(outbox.created_at);
        let event = NotifyEvent::from(outbox.event);
        notify(state, &job, event, outbox.event_id.to_string(), None, view, timestamp).await?;
        state.events.outbox_sent(&outbox.event_id, "notify_pending").await?;
    }
    state.events.remove_outbox(&outbox.event_id).await
}

/// The spec's webhook body: `event`, `job_id`, `status`, `timestamp`, `data.job` (the job as
/// `GET` shows it) and `data.artifacts`; plus `event_id`, for receivers that drop duplicates.
pub fn webhook_payload(outbox: &OutboxRecord, view: &Value) -> String {
    let artifacts = view.get("artifacts").cloned().unwrap_or_else(|| json!([]));
    json!({
        "event": outbox.event,
        "event_id": outbox.event_id,
        "job_id": outbox.job_id,
        "status": view.get("status"),
        "timestamp": timestamp(outbox.created_at),
        "data": { "job": view, "artifacts": artifacts },
    })
    .to_string()
}

async fn queue_first_delivery(
    state: &V1State,
    outbox: &OutboxRecord,
    job: &JobRecord,
    url: &str,
    payload: String,
) -> StoreResult<()> {
    let delivery = DeliveryRecord {
        delivery_id: DeliveryId::first_of(&outbox.event_id),
        tenant_id: job.tenant_id.clone(),
        job_id: job.job_id.clone(),
        event_id: outbox.event_id.clone(),
        event: outbox.event,
        url: url.to_owned(),
        payload,
        status: DeliveryStatus::Pending,
        attempts: Vec::new(),
        attempt_count: 0,
        next_attempt_at: Some(outbox.created_at),
        created_at: outbox.created_at,
        redelivery_of: None,
    };
    state.events.create_delivery(&delivery).await?;
    queue_attempt(state, &delivery.delivery_id, 0, 0).await
}

/// Queues the message that makes attempt `attempt_count + 1` of a delivery, `delay_seconds`
/// from now (at most the queue's 15 minutes: a longer wait is chained by the consumer).
pub async fn queue_attempt(
    state: &V1State,
    delivery: &DeliveryId,
    attempt_count: u32,
    delay_seconds: i64,
) -> StoreResult<()> {
    let message = DeliveryMessage {
        delivery_id: delivery.clone(),
        attempt_count,
    };
    let body = serde_json::to_string(&message).unwrap_or_default();
    let max = i64::try_from(tessera_store::queue::MAX_DELAY.as_secs()).unwrap_or(900);
    let delay = std::time::Duration::from_secs(u64::try_from(delay_seconds.clamp(0, max)).unwrap_or(0));
    state
        .queue
        .send(
            &webhook_queue(),
            OutgoingMessage {
                delay,
                ..OutgoingMessage::new(body)
            },
        )
        .await
        .map(drop)
}

/// Tells the job's chat frontend (if it came from one) what happened, on that frontend's FIFO
/// notify queue, grouped by chat user and deduplicated by `event_id`.
pub async fn notify(
    state: &V1State,
    job: &JobRecord,
    event: NotifyEvent,
    event_id: String,
    progress: Option<u8>,
    view: Value,
    timestamp: String,
) -> StoreResult<()> {
    let Some(origin) = &job.origin else {
        return Ok(());
    };
    let Ok(frontend) = origin.frontend.parse::<Frontend>() else {
        tracing::warn!(job = %job.job_id, frontend = origin.frontend, "no notify queue for this frontend");
        return Ok(());
    };
    let message = NotifyMessage {
        event_id: event_id.clone(),
        event,
        job_id: job.job_id.to_string(),
        bot_id: origin.bot_id.clone(),
        user_ref: origin.user_ref.clone(),
        reply_context: origin.reply_context.clone(),
        progress,
        job: view,
        timestamp,
    };
    let body = serde_json::to_string(&message).unwrap_or_default();
    let outgoing = OutgoingMessage {
        group_id: Some(origin.user_ref.clone()),
        deduplication_id: Some(event_id),
        ..OutgoingMessage::new(body)
    };
    state.queue.send(&notify_queue(frontend), outgoing).await.map(drop)
}

/// Tells a bot's chat that a worker took the job (attempt `job.attempt`). Best effort: a
/// failure is logged, and the next milestone or the final event follows anyway.
pub async fn notify_started(state: &V1State, job: &JobRecord) {
    if job.origin.is_none() {
        return;
    }
    let event_id = format!("{}-started-{}", EventId::for_job(&job.job_id), job.attempt);
    let view = json!({ "job_id": job.job_id, "status": job.status, "progress": job.progress });
    let now = timestamp(state.now());
    if let Err(error) = notify(
        state,
        job,
        NotifyEvent::Started,
        event_id,
        Some(job.progress),
        view,
        now,
    )
    .await
    {
        tracing::warn!(job = %job.job_id, %error, "start notice not sent");
    }
}

/// Tells a bot's chat the job's progress, when a milestone is due: every 10 % (from 10 % on),
/// at most every [`PROGRESS_GAP_MS`]. Best effort, like [`notify_started`].
pub async fn notify_progress(state: &V1State, job: &JobRecord, attempt: u32, percent: u8) {
    if job.origin.is_none() || !(10..100).contains(&percent) {
        return;
    }
    let now_ms = i64::try_from(state.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    match state
        .jobs
        .announce_progress(&job.job_id, attempt, percent, now_ms, PROGRESS_GAP_MS)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(job = %job.job_id, %error, "progress notice not sent");
            return;
        }
    }
    let event_id = format!(
        "{}-progress-{attempt}-{}",
        EventId::for_job(&job.job_id),
        percent / 10 * 10
    );
    let view = json!({ "job_id": job.job_id, "status": job.status, "progress": percent });
    let now = timestamp(state.now());
    if let Err(error) = notify(state, job, NotifyEvent::Progress, event_id, Some(percent), view, now).await {
        tracing::warn!(job = %job.job_id, %error, "progress notice not sent");
    }
}

/// The event a final job emitted, for callers that only know the job.
pub fn event_of(job: &JobRecord) -> Option<EventKind> {
    EventKind::for_status(job.status)
}
