//! The `webhooks` family (`/api/v1/webhooks`), and the machinery behind job events: the
//! dispatcher (outbox to queues), the consumer that POSTs signed webhooks with retries, and
//! the tenant's webhook secret.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /api/v1/webhooks/secret` | 201: a new secret, shown this once (`secret`, `created_at`, `previous_secret_expires_at`); the previous one keeps signing for 24 hours |
//! | `GET /api/v1/webhooks/deliveries?job_id=&status=&limit=&offset=` | the tenant's deliveries, newest first, each with its attempt log |
//! | `GET /api/v1/webhooks/deliveries/{id}` | one delivery |
//! | `POST /api/v1/webhooks/deliveries/{id}/redeliver` | 202: a new delivery of the same event and body |

pub mod deliver;
pub mod dispatch;
pub mod secret;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::request::WebhookRules;
use tessera_core::{DeliveryId, IdSource, JobId, Principal, Scope};
use tessera_store::accounts::TenantRecord;
use tessera_store::definitions::webhook_queue;
use tessera_store::events::{DeliveryRecord, DeliveryStatus};
use tessera_store::queue::ReceiveRequest;

pub use deliver::{DeliveryMessage, Handled, handle};
pub use secret::WebhookKey;

use super::jobs::{page_bounds, page_of, require};
use super::{ApiError, V1State, protected, schemas};
use crate::auth::routes::timestamp;
use crate::openapi::{ErrorBody, V1Refusals};
use crate::ssrf::{HostResolver, SystemResolver, webhook_client};

/// How long a receiver has to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhooks family's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(rotate_secret, list, show, redeliver),
    components(schemas(
        schemas::WebhookSecret,
        schemas::Delivery,
        schemas::DeliveryAttempt,
        schemas::DeliveryList
    ))
)]
pub struct WebhooksApi;

/// How webhooks are checked, signed and sent.
#[derive(Clone)]
pub struct WebhookSettings {
    /// What URLs may be (https only, private networks).
    pub rules: WebhookRules,
    /// The key secrets are derived from.
    pub key: WebhookKey,
    /// How host names are resolved (the system's DNS, or a fixed table in tests).
    pub resolver: Arc<dyn HostResolver>,
    /// How long a receiver has to answer.
    pub timeout: Duration,
    /// The HTTP client: no redirects, no proxy, the timeout, and the guarded resolver.
    pub client: reqwest::Client,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("rules", &self.rules)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookSettings {
    /// Settings with the system's DNS and the 10 s timeout.
    pub fn new(rules: WebhookRules, key: WebhookKey) -> Self {
        Self::with(rules, key, Arc::new(SystemResolver), DEFAULT_TIMEOUT)
    }

    /// Settings with a resolver and timeout of the caller's.
    pub fn with(rules: WebhookRules, key: WebhookKey, resolver: Arc<dyn HostResolver>, timeout: Duration) -> Self {
        let client = webhook_client(resolver.clone(), rules.allow_private, timeout);
        Self {
            rules,
            key,
            resolver,
            timeout,
            client,
        }
    }
}

/// The family's routes.
pub fn router(state: V1State) -> Router {
    let routes = Router::new()
        .route("/api/v1/webhooks/secret", post(rotate_secret))
        .route("/api/v1/webhooks/deliveries", get(list))
        .route("/api/v1/webhooks/deliveries/{delivery_id}", get(show))
        .route("/api/v1/webhooks/deliveries/{delivery_id}/redeliver", post(redeliver));
    protected(routes, state)
}

/// Makes a new webhook signing secret, shown this once; the previous one keeps signing for 24
/// hours.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/secret",
    tag = "webhooks",
    operation_id = "rotate_webhook_secret",
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 201, description = "The new secret.", body = schemas::WebhookSecret),
        (status = 409, description = "Another rotation happened at the same moment; try again.", body = ErrorBody),
        V1Refusals,
    )
)]
async fn rotate_secret(
    State(state): State<V1State>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<TenantRecord>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require(&principal, Scope::JobsWrite)?;
    let now = state.now();
    let record = state
        .events
        .rotate_webhook_secret(&tenant.id, &secret::new_salt(), now, secret::ROTATION_OVERLAP_SECONDS)
        .await
        .map_err(|error| match error {
            tessera_store::StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                "another rotation happened at the same moment; try again",
                Value::Null,
            ),
            other => other.into(),
        })?;
    tracing::info!(tenant = %tenant.id, version = record.version, "webhook secret rotated");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "secret": state.webhook.key.secret(&tenant.id, &record.salt),
            "created_at": timestamp(record.created_at),
            "previous_secret_expires_at": record.previous_expires_at.map(timestamp),
        })),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    job_id: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// The tenant's webhook deliveries, newest first, each with its attempt log.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/deliveries",
    tag = "webhooks",
    operation_id = "list_webhook_deliveries",
    params(
        ("job_id" = Option<String>, Query, description = "Only deliveries of this job.", example = "job_abc123def456"),
        ("status" = Option<String>, Query, description = "Only deliveries in this state: pending, retrying, delivered or failed."),
        ("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20).", minimum = 1, maximum = 100),
        ("offset" = Option<u64>, Query, description = "Rows to skip (default 0).", minimum = 0),
    ),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 200, description = "One page.", body = schemas::DeliveryList),
        (status = 400, description = "`INVALID_PARAMS`: a filter or bound is not valid.", body = ErrorBody),
        V1Refusals,
    )
)]
async fn list(
    State(state): State<V1State>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<TenantRecord>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    require(&principal, Scope::JobsRead)?;
    let Query(query) = query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let status = query
        .status
        .as_deref()
        .map(|raw| {
            DeliveryStatus::ALL
                .into_iter()
                .find(|status| status.as_str() == raw)
                .ok_or_else(|| ApiError::invalid("status", "expected pending, delivered or failed"))
        })
        .transpose()?;
    let job = query
        .job_id
        .as_deref()
        .map(|raw| {
            JobId::parse(raw).map_err(|_| ApiError::invalid("job_id", "expected a job id, e.g. job_abc123def456"))
        })
        .transpose()?;
    let bounds = page_bounds(query.limit.as_deref(), query.offset.as_deref())?;
    let deliveries: Vec<DeliveryRecord> = state
        .events
        .deliveries_for(&tenant.id, job.as_ref())
        .await?
        .into_iter()
        .filter(|delivery| status.is_none_or(|wanted| delivery.status == wanted))
        .collect();
    Ok(Json(page_of("deliveries", &deliveries, bounds, delivery_view)))
}

/// One delivery, with its attempt log.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/deliveries/{delivery_id}",
    tag = "webhooks",
    operation_id = "get_webhook_delivery",
    params(("delivery_id" = String, Path, description = "The delivery's id.", example = "dlv_abc123def456")),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 200, description = "The delivery.", body = schemas::Delivery),
        (status = 404, description = "No such delivery for this tenant.", body = ErrorBody),
        V1Refusals,
    )
)]
async fn show(
    State(state): State<V1State>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<TenantRecord>,
    Path(delivery_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require(&principal, Scope::JobsRead)?;
    let delivery = tenant_delivery(&state, &tenant, &delivery_id).await?;
    Ok(Json(delivery_view(&delivery)))
}

/// Sends a delivery's event again, as a new delivery with the same event id and body.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/deliveries/{delivery_id}/redeliver",
    tag = "webhooks",
    operation_id = "redeliver_webhook",
    params(("delivery_id" = String, Path, description = "The delivery's id.", example = "dlv_abc123def456")),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 202, description = "The new delivery, queued.", body = schemas::Delivery),
        (status = 404, description = "No such delivery for this tenant.", body = ErrorBody),
        V1Refusals,
    )
)]
async fn redeliver(
    State(state): State<V1State>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<TenantRecord>,
    Path(delivery_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require(&principal, Scope::JobsWrite)?;
    let original = tenant_delivery(&state, &tenant, &delivery_id).await?;
    let now = state.now();
    let delivery = DeliveryRecord {
        delivery_id: DeliveryId::generate(state.ids.as_ref() as &dyn IdSource),
        status: DeliveryStatus::Pending,
        attempts: Vec::new(),
        attempt_count: 0,
        next_attempt_at: Some(now),
        created_at: now,
        redelivery_of: Some(original.delivery_id.clone()),
        ..original
    };
    state.events.create_delivery(&delivery).await?;
    dispatch::queue_attempt(&state, &delivery.delivery_id, 0, 0).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery_view(&delivery))))
}

/// The tenant's delivery with this id; 404 for a malformed, missing or foreign id alike.
async fn tenant_delivery(state: &V1State, tenant: &TenantRecord, raw_id: &str) -> Result<DeliveryRecord, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "Delivery not found", Value::Null);
    let id = DeliveryId::parse(raw_id).map_err(|_| not_found())?;
    state
        .events
        .delivery(&id)
        .await?
        .filter(|delivery| delivery.tenant_id == tenant.id)
        .ok_or_else(not_found)
}

/// A delivery as the API shows it.
fn delivery_view(delivery: &DeliveryRecord) -> Value {
    let attempts: Vec<Value> = delivery
        .attempts
        .iter()
        .map(|attempt| {
            json!({
                "number": attempt.number,
                "at": timestamp(attempt.at),
                "status_code": attempt.status_code,
                "latency_ms": attempt.latency_ms,
                "error": attempt.error,
                "response_excerpt": attempt.response_excerpt,
            })
        })
        .collect();
    json!({
        "delivery_id": delivery.delivery_id,
        "event_id": delivery.event_id,
        "event": delivery.event,
        "job_id": delivery.job_id,
        "url": delivery.url,
        "status": delivery.status.as_str(),
        "attempts": attempts,
        "next_attempt_at": delivery.next_attempt_at.map(timestamp),
        "created_at": timestamp(delivery.created_at),
        "redelivery_of": delivery.redelivery_of,
    })
}

/// The `webhook` object of a job with a webhook URL, for `GET /api/v1/jobs/{id}`: `waiting`
/// until the job is final, then its latest delivery's state.
pub async fn job_webhook_state(
    state: &V1State,
    job: &tessera_store::jobs::JobRecord,
) -> Result<Option<Value>, ApiError> {
    let Some(url) = &job.webhook_url else {
        return Ok(None);
    };
    if !job.status.is_final() {
        return Ok(Some(json!({ "url": url, "status": "waiting", "attempts": 0 })));
    }
    let latest = state
        .events
        .deliveries_for(&job.tenant_id, Some(&job.job_id))
        .await?
        .into_iter()
        .next();
    Ok(Some(match latest {
        None => json!({ "url": url, "status": "pending", "attempts": 0 }),
        Some(delivery) => {
            let last = delivery.attempts.last();
            json!({
                "url": url,
                "status": delivery.status.as_str(),
                "delivery_id": delivery.delivery_id,
                "attempts": delivery.attempt_count,
                "last_attempt_at": last.map(|attempt| timestamp(attempt.at)),
                "last_status_code": last.and_then(|attempt| attempt.status_code),
                "last_error": last.and_then(|attempt| attempt.error.clone()),
                "next_attempt_at": delivery.next_attempt_at.map(timestamp),
            })
        }
    }))
}

/// The dev server's webhook consumer: long-polls the webhook queue and handles each message,
/// deleting it unless it must come back. Runs until the task is dropped.
pub async fn consume(state: V1State) {
    let queue = webhook_queue();
    loop {
        let request = ReceiveRequest {
            max_messages: 10,
            wait: Duration::from_secs(20),
            visibility_timeout: Some(Duration::from_secs(60)),
        };
        let messages = match state.queue.receive(&queue, request).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "webhook queue unavailable; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let handled = messages.iter().map(|message| handle_one(&state, &queue, message));
        futures::future::join_all(handled).await;
    }
}

async fn handle_one(state: &V1State, queue: &tessera_store::QueueDef, message: &tessera_store::ReceivedMessage) {
    match handle(state, &message.body).await {
        Ok(_) => {
            if let Err(error) = state.queue.delete(queue, &message.receipt).await {
                tracing::warn!(%error, "webhook message not deleted: it will be handled again");
            }
        }
        Err(error) => tracing::info!(%error, "webhook message left for a later try"),
    }
}
