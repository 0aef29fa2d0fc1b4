//! The `jobs` family: create (with quotas and `Idempotency-Key`), get, list and cancel.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_core::request::{JobRequest, parse_job_request};
use tessera_core::{Capability, JobId, JobStatus, Principal, Scope, Tokens};
use tessera_store::accounts::TenantRecord;
use tessera_store::definitions::artifacts_bucket;
use tessera_store::jobs::{CreateRefused, DailyCap, IdempotencyRecord, JobOrigin, JobParams, JobRecord, Quota};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ApiError, V1State, protected, schemas};
use crate::auth::routes::timestamp;
use crate::openapi::{ErrorBody, V1Refusals};

/// How long artifact URLs stay valid after completion (the artifacts bucket's lifecycle).
const ARTIFACT_DAYS: i64 = 7;
/// The longest `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The jobs family's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, list, show, cancel, events),
    components(schemas(
        schemas::CreateJob,
        schemas::JobParamsInput,
        schemas::JobCreated,
        schemas::JobView,
        schemas::QueuedJob,
        schemas::RunningJob,
        schemas::CompletedJob,
        schemas::FailedJob,
        schemas::CancelledJob,
        schemas::Artifact,
        schemas::JobMetadata,
        schemas::JobFailure,
        schemas::JobWebhook,
        schemas::JobCancelled,
        schemas::JobList,
        schemas::JobSummary,
        schemas::JobStatusEvent,
        schemas::CapabilityName,
        schemas::PriorityName,
        schemas::JobStatusName,
    ))
)]
pub struct JobsApi;

/// The family's routes.
pub fn router(state: V1State) -> Router {
    let routes = Router::new()
        .route("/api/v1/jobs", post(create).get(list))
        .route("/api/v1/jobs/{job_id}", get(show).delete(cancel))
        .route("/api/v1/jobs/{job_id}/events", get(events));
    protected(routes, state)
}

pub(crate) fn require(principal: &Principal, scope: Scope) -> Result<(), ApiError> {
    if principal.has_scope(scope) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            format!("this credential lacks the {scope} scope"),
            json!({ "required_scope": scope }),
        ))
    }
}

/// Creates a job: validates it, charges its tokens and reserves a concurrent-job slot in one
/// transaction, and queues it. With `Idempotency-Key`, a retry answers the first response.
#[utoipa::path(
    post,
    path = "/api/v1/jobs",
    tag = "jobs",
    operation_id = "create_job",
    request_body = schemas::CreateJob,
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 255 printable characters; kept 24 hours. The same key with the same body answers the first response; with another body, 409.")),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 201, description = "Queued (or the first answer to this Idempotency-Key).", body = schemas::JobCreated),
        (status = 400, description = "`INVALID_PARAMS` (`details.field` names the field) or `INVALID_PROMPT`.", body = ErrorBody),
        (status = 402, description = "`QUOTA_EXCEEDED`: not enough tokens left today.", body = ErrorBody),
        (status = 404, description = "`MODEL_NOT_FOUND`.", body = ErrorBody),
        (status = 409, description = "The Idempotency-Key was used with another body.", body = ErrorBody),
        V1Refusals,
    )
)]
async fn create(
    State(state): State<V1State>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<TenantRecord>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Answer, ApiError> {
    require(&principal, Scope::JobsWrite)?;
    let user_id = principal
        .user_id()
        .cloned()
        .ok_or_else(|| ApiError::from(crate::auth::AuthError::Forbidden("no user".into())))?;
    let submission = Submission {
        tenant: &tenant,
        user_id,
        origin: None,
        idempotency: Idempotency::of(&headers, &body)?,
        cap: None,
    };
    let body: Value = match submission.replay(&state).await? {
        Some(replayed) => return Ok(replayed),
        None => {
            serde_json::from_slice(&body).map_err(|error| ApiError::invalid("body", format!("not JSON: {error}")))?
        }
    };
    submission.submit(&state, &body).await
}

/// One job creation, as the public API and the internal (bot) endpoint make it.
pub struct Submission<'a> {
    /// The tenant it is for.
    pub tenant: &'a TenantRecord,
    /// The user it is for.
    pub user_id: tessera_core::UserId,
    /// The chat it came from (internal creations).
    pub origin: Option<JobOrigin>,
    /// The client's `Idempotency-Key` and its request's hash, if a key was sent.
    pub idempotency: Option<Idempotency>,
    /// A chat server's per-member daily cap (internal creations from a server).
    pub cap: Option<DailyCap>,
}

impl Submission<'_> {
    /// The first answer, when the idempotency key was used already (409 for another body).
    pub async fn replay(&self, state: &V1State) -> Result<Option<Answer>, ApiError> {
        let Some(idempotency) = &self.idempotency else {
            return Ok(None);
        };
        match state.jobs.idempotency(&self.tenant.id, &idempotency.key).await? {
            Some(record) => replay(&record, &idempotency.request_hash).map(Some),
            None => Ok(None),
        }
    }

    /// Validates `body` (the public create's shape), reserves the quota with the job in one
    /// transaction, sends the queue message, and answers 201 (or the replayed first answer).
    pub async fn submit(&self, state: &V1State, body: &Value) -> Result<Answer, ApiError> {
        let plan = state.catalog.plan(self.tenant.plan);
        let request = parse_job_request(body, plan, state.catalog, state.webhook.rules, rand::rng().random())?;
        if let Some(url) = &request.webhook_url {
            let (allow_private, resolver) = (state.webhook.rules.allow_private, state.webhook.resolver.as_ref());
            crate::ssrf::check_destination(url, allow_private, resolver)
                .await
                .map_err(|reason| ApiError::invalid("webhook_url", reason))?;
        }
        let mut job = new_job(state, self.tenant, self.user_id.clone(), &request, state.now_micros());
        let now = job.created_at;
        job.origin = self.origin.clone();
        let ahead = state.jobs.queued_ahead(&job).await?;
        let answer = json!({
            "job_id": job.job_id,
            "status": JobStatus::Queued,
            "estimated_time_seconds": eta(&job, ahead, state.jobs.live_workers(job.capability, state.now()).await?),
            "cost_tokens": Tokens(job.cost),
            "queue_position": ahead + 1,
            "created_at": timestamp(now),
        });
        let record = self.idempotency.as_ref().map(|idempotency| IdempotencyRecord {
            request_hash: idempotency.request_hash.clone(),
            status: StatusCode::CREATED.as_u16(),
            body: answer.to_string(),
        });
        let quota = Quota {
            daily_tokens: Tokens::whole(plan.daily_token_limit).0,
            concurrent_jobs: plan.concurrent_jobs,
        };
        let idempotency = self
            .idempotency
            .as_ref()
            .zip(record.as_ref())
            .map(|(idempotency, record)| (idempotency.key.as_str(), record, now));
        let created = match state.jobs.create(&job, quota, idempotency, self.cap.as_ref()).await {
            Ok(created) => created,
            Err(CreateRefused::Cap) => {
                let limit = self.cap.as_ref().map_or(0, |cap| cap.limit);
                let now = state.now();
                let wait = now - now.rem_euclid(86_400) + 86_400 - now;
                return Err(ApiError {
                    retry_after: Some(wait),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "DAILY_CAP_REACHED",
                        "This server's daily job limit is reached",
                        format!("This server allows {limit} job(s) per member per day; it resets at 00:00 UTC."),
                    )
                });
            }
            Err(CreateRefused::Replay(existing)) => {
                let request_hash = self
                    .idempotency
                    .as_ref()
                    .map(|idempotency| idempotency.request_hash.as_str());
                return replay(&existing, request_hash.unwrap_or_default());
            }
            Err(CreateRefused::Quota) => return Err(quota_exceeded(plan.daily_token_limit, job.cost)),
            Err(CreateRefused::Concurrency) => {
                let details = format!(
                    "Your plan runs {} job(s) at once. Retry when one finishes.",
                    plan.concurrent_jobs
                );
                let wait = i64::from(job.estimated_time_seconds.max(1));
                return Err(ApiError::rate_limited("Too many concurrent jobs", details, wait));
            }
            Err(CreateRefused::Store(error)) => return Err(error.into()),
        };
        if !created.enqueued {
            super::sweep::send(state, &job).await;
        }
        tracing::info!(job = %job.job_id, tenant = %self.tenant.id, cost = job.cost, "job created");
        Ok(Answer {
            status: StatusCode::CREATED,
            body: answer,
            replayed: false,
        })
    }
}

fn new_job(
    state: &V1State,
    tenant: &TenantRecord,
    user_id: tessera_core::UserId,
    request: &JobRequest,
    now_micros: i64,
) -> JobRecord {
    let now = now_micros.div_euclid(1_000_000);
    JobRecord {
        job_id: JobId::generate(state.ids.as_ref()),
        tenant_id: tenant.id.clone(),
        user_id,
        capability: request.capability,
        model: request.model.id.clone(),
        model_version: request.model.versioned_id(),
        params: JobParams {
            prompt: request.prompt.clone(),
            negative_prompt: request.negative_prompt.clone(),
            resolution: request.resolution.map(|resolution| resolution.to_string()),
            steps: request.steps,
            seed: request.seed,
        },
        priority: request.priority,
        status: JobStatus::Queued,
        cost: request.cost.0,
        usage_day: utc_day(now),
        webhook_url: request.webhook_url.clone(),
        estimated_time_seconds: request.model.estimated_time_seconds,
        created_at: now,
        created_at_micros: Some(now_micros),
        started_at: None,
        completed_at: None,
        failed_at: None,
        cancelled_at: None,
        progress: 0,
        attempt: 0,
        error: None,
        retry_available: false,
        artifacts: Vec::new(),
        enqueued: false,
        worker_id: None,
        lease_until: None,
        origin: None,
    }
}

/// The UTC day of `unix` seconds, `yyyy-mm-dd`.
pub fn utc_day(unix: i64) -> String {
    let date = OffsetDateTime::from_unix_timestamp(unix).map_or(OffsetDateTime::UNIX_EPOCH.date(), |time| time.date());
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// Seconds until the job should finish: the jobs ahead and itself, shared by the live workers
/// of its capability (one when none reported in: the job waits for the first).
fn eta(job: &JobRecord, ahead: u64, workers: u64) -> u64 {
    (ahead + 1).div_ceil(workers.max(1)) * u64::from(job.estimated_time_seconds)
}

fn quota_exceeded(daily_limit: u64, cost: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYMENT_REQUIRED,
        "QUOTA_EXCEEDED",
        "User out of tokens",
        format!(
            "This job costs {} tokens and would exceed your daily limit of {daily_limit}. The quota resets at 00:00 UTC.",
            Tokens(cost)
        ),
    )
}

/// A client's `Idempotency-Key` with the hash of the body it came with: the key's first answer
/// is replayed only to a request with the same body.
pub struct Idempotency {
    /// The key, checked.
    pub key: String,
    /// Hex SHA-256 of the raw request body.
    pub request_hash: String,
}

impl Idempotency {
    /// The request's idempotency, `None` when it sent no key (its body is then not hashed).
    pub fn of(headers: &HeaderMap, body: &[u8]) -> Result<Option<Self>, ApiError> {
        Ok(idempotency_key(headers)?.map(|key| Self {
            key,
            request_hash: hex_sha256(body),
        }))
    }
}

/// The request's `Idempotency-Key`, checked.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY && key.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::invalid("Idempotency-Key", "1 to 255 visible ASCII characters"))?;
    Ok(Some(key.to_owned()))
}

/// A create's answer: fresh, or replayed for a reused `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status (201).
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
    /// Whether it repeats an earlier answer (sent with `Idempotent-Replayed: true`).
    pub replayed: bool,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.replayed {
            response
                .headers_mut()
                .insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
        }
        response
    }
}

/// The first answer for this key, or 409 when the key came with another body.
fn replay(record: &IdempotencyRecord, request_hash: &str) -> Result<Answer, ApiError> {
    if record.request_hash != request_hash {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "IDEMPOTENCY_KEY_REUSED",
            "This Idempotency-Key was used with a different request body",
            json!({ "field": "Idempotency-Key" }),
        ));
    }
    Ok(Answer {
        status: StatusCode::from_u16(record.status).unwrap_or(StatusCode::CREATED),
        body: serde_json::from_str(&record.body).unwrap_or(Value::Null),
        replayed: true,
    })
}

/// Hex SHA-256 of a request body.
fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The tenant's job with this id; 404 for a malformed, missing or foreign id alike.
async fn tenant_job(state: &V1State, tenant: &TenantRecord, raw_id: &str) -> Result<JobRecord, ApiError> {
    let id = JobId::parse(raw_id).map_err(|_| ApiError::job_not_found())?;
    state
        .jobs
        .get_for(&tenant.id, &id)
        .await?
        .ok_or_else(ApiError::job_not_found)
}

/// The job, in the shape of its state.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{job_id}",
    tag = "jobs",
    operation_id = "get_job",
    params(("job_id" = String, Path, description = "The job's id.", example = "job_abc123def456")),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 200, description = "The job.", body = schemas::JobView),
        (status = 404, description = "No such job for this tenant.", body = ErrorBody),
        V1Refusals,
    )
)]
async fn show(
    State(state): State<V1State>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<TenantRecord>,
    Path(job_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require(&principal, Scope::JobsRead)?;
    let job = tenant_job(&state, &tenant, &job_id).await?;
    let mut view = job_view(&state, &job).await?;
    if let Some(webhook) = super::webhooks::job_webhook_state(&state, &job).await? {
        view["webhook"] = webhook;
    }
    Ok(Json(view))
}

/// How often the event stream looks at the job (every Lambda instance can serve it, so it polls
/// the store rather than waiting on an in-process channel).
const EVENTS_POLL: Duration = Duration::from_millis(500);
/// A comment line this often keeps proxies from closing a quiet stream.
const EVENTS_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /api/v1/jobs/{id}/events`: Server-Sent Events, one `status` event (the job as `GET`
/// shows it) whenever its status or progress changes, ending after a final state.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{job_id}/events",
    tag = "jobs",
    operation_id = "job_events",
    params(("job_id" = String, Path, description = "The job's id.", example = "job_abc123def456")),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 200, description = "A stream of `status` events, each `data` a job as `GET /api/v1/jobs/{job_id}` shows it; it ends after a final state.", content_type = "text/event-stream", body = schemas::JobStatusEvent),
        (status = 404, description = "No such job for this tenant.", body = ErrorBody),
        V1Refusals,
    )
)]
async fn events(
    State(state): State<V1State>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<TenantRecord>,
    Path(job_id): Path<String>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    require(&principal, Scope::JobsRead)?;
    let first = tenant_job(&state, &tenant, &job_id).await?;
    let watch = Watch {
        state,
        tenant: tenant.id,
        job_id: first.job_id.clone(),
        job: Some(first),
        last: None,
    };
    let stream = futures::stream::unfold(watch, |mut watch| async move {
        let event = watch.next_event().await?;
        Some((Ok(event), watch))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(EVENTS_KEEP_ALIVE)))
}

/// The state of one event stream: the job as last read, and what was last sent.
struct Watch {
    state: V1State,
    tenant: tessera_core::TenantId,
    job_id: JobId,
    job: Option<JobRecord>,
    last: Option<(JobStatus, u8)>,
}

impl Watch {
    /// Waits for the next change and renders it; `None` once a final state was sent (or the
    /// job is gone).
    async fn next_event(&mut self) -> Option<Event> {
        if self.last.is_some_and(|(status, _)| is_final(status)) {
            return None;
        }
        loop {
            let job = match self.job.take() {
                Some(job) => job,
                None => {
                    tokio::time::sleep(EVENTS_POLL).await;
                    match self.state.jobs.get_for(&self.tenant, &self.job_id).await {
                        Ok(Some(job)) => job,
                        Ok(None) => return None,
                        Err(error) => {
                            tracing::warn!(%error, "event stream: store read failed; retrying");
                            continue;
                        }
                    }
                }
            };
            let seen = (job.status, job.progress);
            if self.last == Some(seen) {
                continue;
            }
            self.last = Some(seen);
            let view = job_view(&self.state, &job)
                .await
                .unwrap_or_else(|_| json!({"job_id": job.job_id, "status": job.status}));
            return Some(Event::default().event("status").json_data(view).unwrap_or_default());
        }
    }
}

fn is_final(status: JobStatus) -> bool {
    matches!(status, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
}

/// The spec's shape for the job's state.
pub(crate) async fn job_view(state: &V1State, job: &JobRecord) -> Result<Value, ApiError> {
    Ok(match job.status {
        JobStatus::Queued => {
            let ahead = state.jobs.queued_ahead(job).await?;
            json!({
                "job_id": job.job_id,
                "status": job.status,
                "queue_position": ahead + 1,
                "estimated_time_seconds": eta(job, ahead, state.jobs.live_workers(job.capability, state.now()).await?),
                "created_at": timestamp(job.created_at),
            })
        }
        JobStatus::Running => json!({
            "job_id": job.job_id,
            "status": job.status,
            "progress": job.progress,
            "started_at": job.started_at.map(timestamp),
        }),
        JobStatus::Completed => completed_view(state, job).await?,
        JobStatus::Failed => json!({
            "job_id": job.job_id,
            "status": job.status,
            "error": job.error,
            "created_at": timestamp(job.created_at),
            "failed_at": job.failed_at.map(timestamp),
            "retry_available": job.retry_available,
        }),
        JobStatus::Cancelled => json!({
            "job_id": job.job_id,
            "status": job.status,
            "created_at": timestamp(job.created_at),
            "cancelled_at": job.cancelled_at.map(timestamp),
        }),
    })
}

async fn completed_view(state: &V1State, job: &JobRecord) -> Result<Value, ApiError> {
    let completed_at = job.completed_at.unwrap_or(job.created_at);
    let expires_at = completed_at + ARTIFACT_DAYS * 24 * 60 * 60;
    let remaining = (expires_at - state.now()).clamp(1, ARTIFACT_DAYS * 24 * 60 * 60);
    let valid_for = Duration::from_secs(u64::try_from(remaining).unwrap_or(1));
    let bucket = artifacts_bucket();
    let mut artifacts = Vec::new();
    for artifact in &job.artifacts {
        let url = state.blobs.signed_url(&bucket, &artifact.key, valid_for).await?;
        let thumbnail_url = match &artifact.thumbnail_key {
            Some(key) => Some(state.blobs.signed_url(&bucket, key, valid_for).await?),
            None => None,
        };
        artifacts.push(json!({
            "id": artifact.id,
            "type": artifact.kind,
            "url": url,
            "thumbnail_url": thumbnail_url,
            "format": artifact.format,
            "width": artifact.width,
            "height": artifact.height,
            "file_size_bytes": artifact.file_size_bytes,
            "expires_at": timestamp(expires_at),
        }));
    }
    Ok(json!({
        "job_id": job.job_id,
        "status": job.status,
        "created_at": timestamp(job.created_at),
        "started_at": job.started_at.map(timestamp),
        "completed_at": timestamp(completed_at),
        "execution_time_seconds": job.started_at.map(|started| completed_at - started),
        "artifacts": artifacts,
        "metadata": {
            "seed": job.params.seed,
            "model_used": job.model_version,
            "actual_steps": job.params.steps,
        },
    }))
}

/// Cancels a `QUEUED` or `RUNNING` job and refunds its tokens; the worker is told.
#[utoipa::path(
    delete,
    path = "/api/v1/jobs/{job_id}",
    tag = "jobs",
    operation_id = "cancel_job",
    params(("job_id" = String, Path, description = "The job's id.", example = "job_abc123def456")),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 200, description = "Cancelled and refunded.", body = schemas::JobCancelled),
        (status = 404, description = "No such job for this tenant.", body = ErrorBody),
        (status = 409, description = "The job is already final (`details.status`).", body = ErrorBody),
        V1Refusals,
    )
)]
async fn cancel(
    State(state): State<V1State>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<TenantRecord>,
    Path(job_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require(&principal, Scope::JobsWrite)?;
    let job = tenant_job(&state, &tenant, &job_id).await?;
    cancel_job(&state, &tenant, job).await.map(Json)
}

/// Cancels the tenant's job and refunds it, once: the answer of `DELETE /api/v1/jobs/{id}`, or
/// 409 when the job is already final.
pub(crate) async fn cancel_job(state: &V1State, tenant: &TenantRecord, job: JobRecord) -> Result<Value, ApiError> {
    let id = job.job_id.clone();
    let now = state.now();
    match state.jobs.cancel(&job, now).await {
        Ok(()) => {}
        Err(tessera_store::StoreError::Conflict(_)) => {
            let current = state
                .jobs
                .get_for(&tenant.id, &id)
                .await?
                .ok_or_else(ApiError::job_not_found)?;
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                format!("the job is already {}", current.status.as_str()),
                json!({ "status": current.status }),
            ));
        }
        Err(error) => return Err(error.into()),
    }
    tracing::info!(job = %id, tenant = %tenant.id, refund = job.cost, "job cancelled");
    super::webhooks::dispatch::dispatch_job(state, &job).await;
    Ok(json!({
        "job_id": job.job_id,
        "status": JobStatus::Cancelled,
        "cancelled_at": timestamp(now),
        "refund_tokens": Tokens(job.cost),
    }))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    capability: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    since: Option<String>,
}

/// The tenant's jobs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    operation_id = "list_jobs",
    params(
        ("status" = Option<schemas::JobStatusName>, Query, description = "Only jobs in this state."),
        ("capability" = Option<schemas::CapabilityName>, Query, description = "Only jobs of this capability."),
        ("since" = Option<String>, Query, description = "Only jobs created after this ISO 8601 time.", example = "2025-12-17T20:00:00Z"),
        ("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20).", minimum = 1, maximum = 100),
        ("offset" = Option<u64>, Query, description = "Rows to skip (default 0).", minimum = 0),
    ),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 200, description = "One page.", body = schemas::JobList),
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
            JobStatus::ALL
                .into_iter()
                .find(|status| status.as_str() == raw)
                .ok_or_else(|| ApiError::invalid("status", "expected QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED"))
        })
        .transpose()?;
    let capability = query
        .capability
        .as_deref()
        .map(|raw| {
            raw.parse::<Capability>()
                .map_err(|error| ApiError::invalid("capability", error.to_string()))
        })
        .transpose()?;
    let bounds = page_bounds(query.limit.as_deref(), query.offset.as_deref())?;
    let since = query
        .since
        .as_deref()
        .map(|raw| {
            OffsetDateTime::parse(raw, &Rfc3339)
                .map(|time| time.unix_timestamp())
                .map_err(|_| ApiError::invalid("since", "expected an ISO 8601 timestamp, e.g. 2025-12-17T20:00:00Z"))
        })
        .transpose()?;
    let jobs: Vec<JobRecord> = state
        .jobs
        .list_for(&tenant.id, since)
        .await?
        .into_iter()
        .filter(|job| status.is_none_or(|wanted| job.status == wanted))
        .filter(|job| capability.is_none_or(|wanted| job.capability == wanted))
        .collect();
    Ok(Json(page_of("jobs", &jobs, bounds, summary)))
}

/// `limit` (1–100, default 20) and `offset` (default 0) of a list request.
pub(crate) fn page_bounds(limit: Option<&str>, offset: Option<&str>) -> Result<(u64, u64), ApiError> {
    Ok((
        bounded(limit, "limit", 20, 1, 100)?,
        bounded(offset, "offset", 0, 0, u64::MAX)?,
    ))
}

/// One page of `rows`, rendered, under `name`, with the spec's `pagination` object.
pub(crate) fn page_of<T>(name: &str, rows: &[T], (limit, offset): (u64, u64), render: impl Fn(&T) -> Value) -> Value {
    let total = rows.len() as u64;
    let page: Vec<Value> = rows
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(100))
        .map(render)
        .collect();
    json!({
        name: page,
        "pagination": {
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": offset.saturating_add(limit) < total,
        },
    })
}

fn summary(job: &JobRecord) -> Value {
    let mut row = json!({
        "job_id": job.job_id,
        "capability": job.capability,
        "status": job.status,
        "created_at": timestamp(job.created_at),
    });
    if let Some(completed_at) = job.completed_at {
        row["completed_at"] = json!(timestamp(completed_at));
    }
    row
}

fn bounded(raw: Option<&str>, field: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|value| (min..=max).contains(value))
            .ok_or_else(|| ApiError::invalid(field, format!("expected an integer from {min} to {max}"))),
    }
}
