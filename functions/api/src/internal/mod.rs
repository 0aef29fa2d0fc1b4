//! The `internal` family: what GPU workers call, with a service credential only.
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `POST /api/internal/jobs` | the spec's body (`frontend`, `bot_id`, `capability`, `user_ref`, `reply_context`, `params`, optional `priority`, optional `guild`: the chat server whose settings apply); `Idempotency-Key` | the public create's answer plus `tokens_remaining_today` |
//! | `POST /api/internal/heartbeat` | the spec's heartbeat | `{"status": "ok", "next_heartbeat_seconds": 30}` |
//! | `POST /api/internal/jobs/{id}/claim` | `{worker_id}` | `{"action": "run", "attempt", "job"}` or `{"action": "drop", "reason"}` |
//! | `POST /api/internal/jobs/{id}/progress` | `{worker_id, attempt, percent, stage?}` | `{"cancelled": bool}` |
//! | `POST /api/internal/jobs/{id}/complete` | `{worker_id, attempt, artifacts[]}` | `{"status": "COMPLETED", "cancelled": false}` |
//! | `POST /api/internal/jobs/{id}/fail` | `{worker_id, attempt, code, message, details?, retryable}` | `{"status": "FAILED", "cancelled": false}` |
//! | `POST /api/internal/jobs/{id}/release` | `{worker_id, attempt, reason?}` | `{"status": "QUEUED", "cancelled": false}`: the attempt gave the job back unfinished (ComfyUI went away, or the worker is stopping); it is queued again and the attempt is not counted |
//!
//! The chat bots' questions about their users (usage, active jobs, cancel) are in [`chat`].
//!
//! Every lifecycle call is a conditional transition on the job's state, worker and attempt. When
//! the attempt is no longer the job's (cancelled, finished, or re-claimed by another worker) the
//! answer is 409 with `cancelled` telling the worker to interrupt and drop it.

pub mod chat;
pub mod schemas;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tessera_core::{JobId, JobStatus};
use tessera_store::StoreError;
use tessera_store::item::Update;
use tessera_store::jobs::{ArtifactRecord, Claimed, JobError, JobOrigin, JobRecord};

use crate::auth::layer::authenticate;
use crate::auth::{Accepts, Guard};
use crate::openapi::ErrorBody;
use crate::v1::error::service_style;
use crate::v1::webhooks::dispatch;
use crate::v1::{ApiError, V1State};

/// How long a claim (or a progress report) holds a job for its worker, in seconds.
pub const LEASE_SECONDS: i64 = 120;
/// How long a worker's heartbeat keeps it listed as live, in seconds.
pub const WORKER_TTL_SECONDS: i64 = 90;
/// How long a job may run before the worker interrupts it, unless the model says otherwise.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 300;

/// The internal family's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create_for_chat_user, heartbeat, claim, progress, complete, fail, release),
    components(schemas(
        Heartbeat,
        ClaimRequest,
        ProgressRequest,
        CompleteRequest,
        FailRequest,
        ReleaseRequest,
        schemas::ChatFrontend,
        schemas::QueuedStatus,
        schemas::CompletedStatus,
        schemas::FailedStatus,
        schemas::InternalJobRequest,
        schemas::InternalJobParams,
        schemas::InternalJobCreated,
        schemas::HeartbeatStatus,
        schemas::HeartbeatAck,
        schemas::WorkOrder,
        schemas::WorkParams,
        schemas::DropReason,
        schemas::ClaimAnswer,
        schemas::ProgressAck,
        schemas::CompletedAck,
        schemas::FailedAck,
        schemas::ReleasedAck,
        schemas::AttemptSuperseded,
        schemas::WorkerArtifact,
    ))
)]
pub struct InternalApi;

/// A JSON request body whose rejections (bad JSON, wrong content type, a missing or mistyped
/// field, too large) answer in this family's `{"error": ...}` style, with axum's status.
pub(crate) struct ServiceJson<T>(pub T);

impl<T, S> FromRequest<S> for ServiceJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(body_refused(rejection.status(), rejection.body_text())),
        }
    }
}

/// A request body refused before its fields are read.
fn body_refused(status: StatusCode, reason: String) -> ApiError {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        _ => "INVALID_PARAMS",
    };
    ApiError::new(
        status,
        code,
        "Invalid request body",
        json!({ "field": "body", "reason": reason }),
    )
}

/// The family's routes, behind the service-credential layer.
pub fn router(state: V1State) -> Router {
    let guard = Guard {
        service: state.auth.clone(),
        accepts: Accepts::Services,
        render: service_style,
    };
    Router::new()
        .route("/api/internal/jobs", post(create_for_chat_user))
        .route("/api/internal/heartbeat", post(heartbeat))
        .route("/api/internal/jobs/{job_id}/claim", post(claim))
        .route("/api/internal/jobs/{job_id}/progress", post(progress))
        .route("/api/internal/jobs/{job_id}/complete", post(complete))
        .route("/api/internal/jobs/{job_id}/fail", post(fail))
        .route("/api/internal/jobs/{job_id}/release", post(release))
        .merge(chat::routes())
        .layer(from_fn_with_state(guard, authenticate))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatJob {
    frontend: String,
    bot_id: String,
    capability: Value,
    user_ref: String,
    reply_context: Value,
    params: Value,
    #[serde(default)]
    priority: Option<Value>,
    /// The chat server it came from (`discord:<guild id>`), whose settings apply.
    #[serde(default)]
    guild: Option<String>,
}

/// A job for a chat user.
///
/// A bot's job for a chat user (their account is made on first sight), under the same quotas as
/// the public API (the user's plan: requests per minute, concurrent jobs, daily tokens) and the
/// chat server's settings when `guild` is given; the job keeps where it came from so its events
/// go back to the chat. An `Idempotency-Key` reused with the same body answers the first answer.
#[utoipa::path(
    post,
    path = "/api/internal/jobs",
    tag = "internal",
    operation_id = "internal_create_job",
    request_body = schemas::InternalJobRequest,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$",
        description = "Makes retries safe: 1 to 255 visible ASCII characters, kept 24 hours.",
        example = "tg-987654321")),
    security(("service_key" = [])),
    responses(
        (status = 201, description = "Queued (or the first answer again, for a reused `Idempotency-Key`).",
            body = schemas::InternalJobCreated,
            headers(("Idempotent-Replayed" = String, description = "`true` when the answer repeats an earlier one."))),
        (status = 400, description = "`INVALID_PARAMS` (the field and why in `details`) or `INVALID_PROMPT` (content policy).",
            body = ErrorBody,
            example = json!({"error": {"code": "INVALID_PARAMS", "message": "Invalid parameters",
                "details": {"field": "user_ref", "reason": "expected telegram:<user id>"}}})),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 402, description = "`QUOTA_EXCEEDED`: the job would exceed the user's daily tokens.", body = ErrorBody,
            example = json!({"error": {"code": "QUOTA_EXCEEDED", "message": "User out of tokens",
                "details": "This job costs 1 tokens and would exceed your daily limit of 10. The quota resets at 00:00 UTC."}})),
        (status = 403, description = "`MODEL_NOT_ON_PLAN`: the model is not on the user's plan.", body = ErrorBody),
        (status = 404, description = "`MODEL_NOT_FOUND`: no such model for the capability.", body = ErrorBody),
        (status = 409, description = "`IDEMPOTENCY_KEY_REUSED`: the key came with another body.", body = ErrorBody),
        (status = 413, description = "The body is over 2 MiB (`PAYLOAD_TOO_LARGE`).", body = ErrorBody),
        (status = 429, description = "`RATE_LIMITED` (the plan's requests per minute, or its concurrent jobs) or `DAILY_CAP_REACHED` (the chat server's jobs per member per day); `retry_after` says when to try again.",
            body = ErrorBody, headers(("Retry-After" = i64, description = "Seconds to wait."))),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn create_for_chat_user(
    State(state): State<V1State>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<crate::v1::jobs::Answer, ApiError> {
    let body = body.map_err(|rejection| body_refused(rejection.status(), rejection.body_text()))?;
    let request: ChatJob =
        serde_json::from_slice(&body).map_err(|error| ApiError::invalid("body", error.to_string()))?;
    let frontend = match request.frontend.as_str() {
        "telegram" | "discord" => request.frontend.clone(),
        _ => return Err(ApiError::invalid("frontend", "expected telegram or discord")),
    };
    let user_ref = checked_user_ref(&request.user_ref, &frontend)?;
    let bot_id = checked_worker(&request.bot_id)
        .map_err(|_| ApiError::invalid("bot_id", "1 to 100 letters, digits, '-', '_', '.', ':'"))?;
    if !request.reply_context.is_object() {
        return Err(ApiError::invalid("reply_context", "expected an object"));
    }
    let (user, tenant) = state.auth.chat_account(&user_ref).await?;
    let plan = state.catalog.plan(tenant.plan);
    let rule = crate::rate_limit::Rule::new("v1", plan.requests_per_minute, 60);
    let decision = state.auth.limiter().hit(rule, tenant.id.as_str()).await?;
    if !decision.allowed {
        let details = format!(
            "You can make {} requests per minute. Retry after {} seconds.",
            rule.limit, decision.retry_after
        );
        return Err(ApiError::rate_limited(
            "Rate limit exceeded",
            details,
            decision.retry_after,
        ));
    }
    let cap = match &request.guild {
        Some(guild) => {
            chat::apply_guild_settings(
                &state,
                guild,
                &frontend,
                &user_ref,
                &request.capability,
                &request.params,
            )
            .await?
        }
        None => None,
    };
    let submission = crate::v1::jobs::Submission {
        tenant: &tenant,
        user_id: user.id.clone(),
        origin: Some(JobOrigin {
            frontend,
            bot_id,
            user_ref,
            reply_context: request.reply_context.clone(),
        }),
        idempotency: crate::v1::jobs::Idempotency::of(&headers, &body)?,
        cap,
    };
    let mut answer = match submission.replay(&state).await? {
        Some(replayed) => replayed,
        None => {
            let mut public = json!({ "capability": request.capability, "params": request.params });
            if let Some(priority) = request.priority {
                public["priority"] = priority;
            }
            submission.submit(&state, &public).await?
        }
    };
    // A replay (a bot retrying a chat update) tells the tokens left now: the record kept for
    // the key is the public create's answer, written before the charge was known.
    let used = state.tokens_used_today(&tenant.id).await?;
    let limit = tessera_core::Tokens::whole(plan.daily_token_limit).0;
    answer.body["tokens_remaining_today"] = json!(tessera_core::Tokens(limit.saturating_sub(used)));
    Ok(answer)
}

/// `<platform>:<id>`, the platform being the job's frontend.
fn checked_user_ref(raw: &str, frontend: &str) -> Result<String, ApiError> {
    let valid = raw.split_once(':').is_some_and(|(platform, id)| {
        platform == frontend
            && !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid("user_ref", format!("expected {frontend}:<user id>")))
    }
}

/// `POST /api/internal/heartbeat`: a worker's state, every 30 seconds.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = WorkerHeartbeat, example = json!({
    "worker_id": "worker-gpu-0",
    "status": "idle",
    "capabilities": ["image", "video"],
    "loaded_models": ["sdxl-1.0"],
    "gpu_memory_used_mb": 8000,
    "gpu_memory_total_mb": 16000,
    "uptime_seconds": 3600,
    "jobs_completed": 42
}))]
struct Heartbeat {
    /// The worker: 1 to 100 letters, digits, `-`, `_`, `.`, `:`.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,100}$")]
    worker_id: String,
    /// What it is doing (`idle`, `busy`, ...), as it says.
    status: String,
    /// What it can produce (`image`, `video`, ...).
    capabilities: Vec<String>,
    /// The models it has loaded (`sdxl-1.0`).
    loaded_models: Vec<String>,
    /// GPU memory in use, in MB, if known.
    gpu_memory_used_mb: Option<u64>,
    /// GPU memory in all, in MB, if known.
    gpu_memory_total_mb: Option<u64>,
    /// Seconds since it started.
    uptime_seconds: u64,
    /// Jobs it finished since it started.
    jobs_completed: u64,
}

/// A worker's heartbeat.
///
/// Keeps the worker listed as live for 90 seconds (the queue's time estimates count live
/// workers).
#[utoipa::path(
    post,
    path = "/api/internal/heartbeat",
    tag = "internal",
    operation_id = "internal_heartbeat",
    request_body = Heartbeat,
    security(("service_key" = [])),
    responses(
        (status = 200, description = "Recorded.", body = schemas::HeartbeatAck),
        (status = 400, description = "Malformed JSON, or an invalid `worker_id` (`INVALID_PARAMS`).", body = ErrorBody),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 413, description = "The body is over 2 MiB (`PAYLOAD_TOO_LARGE`).", body = ErrorBody),
        (status = 415, description = "The body is not `Content-Type: application/json` (`UNSUPPORTED_MEDIA_TYPE`).", body = ErrorBody),
        (status = 422, description = "A field is missing or of the wrong type (`INVALID_PARAMS`, field `body`).", body = ErrorBody),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn heartbeat(
    State(state): State<V1State>,
    ServiceJson(beat): ServiceJson<Heartbeat>,
) -> Result<Json<Value>, ApiError> {
    let worker_id = checked_worker(&beat.worker_id)?;
    let update = Update::set("status", beat.status.as_str())
        .and_set("capabilities", json!(beat.capabilities))
        .and_set("loaded_models", json!(beat.loaded_models))
        .and_set("gpu_memory_used_mb", json!(beat.gpu_memory_used_mb))
        .and_set("gpu_memory_total_mb", json!(beat.gpu_memory_total_mb))
        .and_set("uptime_seconds", beat.uptime_seconds)
        .and_set("jobs_completed", beat.jobs_completed);
    state
        .jobs
        .record_heartbeat(&worker_id, update, state.now(), WORKER_TTL_SECONDS)
        .await?;
    Ok(Json(json!({ "status": "ok", "next_heartbeat_seconds": 30 })))
}

/// `POST /api/internal/jobs/{job_id}/claim`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"worker_id": "worker-gpu-0"}))]
struct ClaimRequest {
    /// The worker: 1 to 100 letters, digits, `-`, `_`, `.`, `:`.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,100}$")]
    worker_id: String,
}

/// Claims a job for a worker.
///
/// A queued job (or a running one whose worker's lease ran out) becomes this worker's, with a
/// lease of 120 seconds that progress reports extend; otherwise the answer says to drop it.
#[utoipa::path(
    post,
    path = "/api/internal/jobs/{job_id}/claim",
    tag = "internal",
    operation_id = "internal_claim_job",
    params(("job_id" = String, Path, description = "The job's id (`job_` and 12 lowercase letters or digits; any other id answers 404).",
        pattern = "^job_[a-z0-9]{12}$", example = "job_abc123def456")),
    request_body = ClaimRequest,
    security(("service_key" = [])),
    responses(
        (status = 200, description = "Run it (`action: run`, with the work order) or drop it (`action: drop`, with the reason).",
            body = schemas::ClaimAnswer),
        (status = 400, description = "Malformed JSON, or an invalid `worker_id` (`INVALID_PARAMS`).", body = ErrorBody),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 404, description = "`NOT_FOUND`: a malformed job id.", body = ErrorBody),
        (status = 413, description = "The body is over 2 MiB (`PAYLOAD_TOO_LARGE`).", body = ErrorBody),
        (status = 415, description = "The body is not `Content-Type: application/json` (`UNSUPPORTED_MEDIA_TYPE`).", body = ErrorBody),
        (status = 422, description = "A field is missing or of the wrong type (`INVALID_PARAMS`, field `body`).", body = ErrorBody),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn claim(
    State(state): State<V1State>,
    job_id: Result<Path<String>, PathRejection>,
    ServiceJson(request): ServiceJson<ClaimRequest>,
) -> Result<Json<Value>, ApiError> {
    let worker = checked_worker(&request.worker_id)?;
    let id = job_id_of(&path_text(job_id))?;
    match state.jobs.claim(&id, &worker, state.now(), LEASE_SECONDS).await? {
        Claimed::Run(job) => {
            tracing::info!(job = %job.job_id, worker = %worker, attempt = job.attempt, "job claimed");
            dispatch::notify_started(&state, &job).await;
            Ok(Json(
                json!({ "action": "run", "attempt": job.attempt, "job": work_order(&job) }),
            ))
        }
        Claimed::Drop(job) => {
            let reason = match job.as_ref().map(|job| job.status) {
                None => "not_found",
                Some(JobStatus::Cancelled) => "cancelled",
                Some(JobStatus::Completed) => "completed",
                Some(JobStatus::Failed) => "failed",
                Some(JobStatus::Running) => "running_elsewhere",
                Some(JobStatus::Queued) => "lost_race",
            };
            Ok(Json(json!({ "action": "drop", "reason": reason })))
        }
    }
}

/// What a worker needs to run the job.
fn work_order(job: &JobRecord) -> Value {
    let (width, height) = job
        .params
        .resolution
        .as_deref()
        .and_then(|resolution| tessera_core::Resolution::parse(resolution).ok())
        .map_or((None, None), |resolution| {
            (Some(resolution.width), Some(resolution.height))
        });
    json!({
        "job_id": job.job_id,
        "capability": job.capability,
        "model_id": job.model_version,
        "workflow_id": tessera_core::Catalog::active()
            .model(&job.model)
            .map_or_else(|| format!("txt2img_{}", job.model), tessera_core::ModelSpec::workflow_id),
        "params": {
            "prompt": job.params.prompt,
            "negative_prompt": job.params.negative_prompt,
            "width": width,
            "height": height,
            "steps": job.params.steps,
            "seed": job.params.seed,
        },
        "timeout_seconds": DEFAULT_TIMEOUT_SECONDS,
    })
}

/// `POST /api/internal/jobs/{job_id}/progress`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"worker_id": "worker-gpu-0", "attempt": 1, "percent": 45}))]
struct ProgressRequest {
    /// The worker that claimed the job.
    worker_id: String,
    /// The attempt number of the claim.
    attempt: u32,
    /// Percent done, 0 to 100 (a lower value than the last one only extends the lease).
    #[schema(minimum = 0, maximum = 100)]
    percent: u8,
}

/// Reports a job's progress.
///
/// Records the percent (never backwards) and extends the worker's lease by 120 seconds.
#[utoipa::path(
    post,
    path = "/api/internal/jobs/{job_id}/progress",
    tag = "internal",
    operation_id = "internal_job_progress",
    params(("job_id" = String, Path, description = "The job's id (`job_` and 12 lowercase letters or digits; any other id answers 404).",
        pattern = "^job_[a-z0-9]{12}$", example = "job_abc123def456")),
    request_body = ProgressRequest,
    security(("service_key" = [])),
    responses(
        (status = 200, description = "Recorded; carry on.", body = schemas::ProgressAck),
        (status = 400, description = "Malformed JSON, or `percent` over 100 (`INVALID_PARAMS`).", body = ErrorBody),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 404, description = "`NOT_FOUND`: a malformed job id.", body = ErrorBody),
        (status = 409, description = "This attempt is no longer the job's running one (cancelled, finished, or re-claimed): interrupt and drop it.",
            body = schemas::AttemptSuperseded),
        (status = 413, description = "The body is over 2 MiB (`PAYLOAD_TOO_LARGE`).", body = ErrorBody),
        (status = 415, description = "The body is not `Content-Type: application/json` (`UNSUPPORTED_MEDIA_TYPE`).", body = ErrorBody),
        (status = 422, description = "A field is missing or of the wrong type (`INVALID_PARAMS`, field `body`).", body = ErrorBody),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn progress(
    State(state): State<V1State>,
    job_id: Result<Path<String>, PathRejection>,
    ServiceJson(request): ServiceJson<ProgressRequest>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let id = job_id_of(&path_text(job_id)).map_err(rejected)?;
    if request.percent > 100 {
        return Err(rejected(ApiError::invalid("percent", "expected 0 to 100")));
    }
    let outcome = state
        .jobs
        .progress(
            &id,
            &request.worker_id,
            request.attempt,
            request.percent,
            state.now(),
            LEASE_SECONDS,
        )
        .await;
    let job = settle(&state, &id, outcome).await?;
    dispatch::notify_progress(&state, &job, request.attempt, request.percent).await;
    Ok(Json(json!({ "cancelled": false })))
}

/// `POST /api/internal/jobs/{job_id}/complete`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "worker_id": "worker-gpu-0",
    "attempt": 1,
    "artifacts": [{
        "id": "artifact_abc123def456",
        "type": "image",
        "key": "outputs/job_abc123def456/output.png",
        "format": "png",
        "width": 1024,
        "height": 1024,
        "file_size_bytes": 2048576
    }]
}))]
struct CompleteRequest {
    /// The worker that claimed the job.
    worker_id: String,
    /// The attempt number of the claim.
    attempt: u32,
    /// The files uploaded, every key under `outputs/<job_id>/`.
    #[schema(value_type = Vec<schemas::WorkerArtifact>)]
    artifacts: Vec<ArtifactRecord>,
}

/// Completes a job with its artifacts.
///
/// The job becomes `COMPLETED` and its webhook and chat are told.
#[utoipa::path(
    post,
    path = "/api/internal/jobs/{job_id}/complete",
    tag = "internal",
    operation_id = "internal_complete_job",
    params(("job_id" = String, Path, description = "The job's id (`job_` and 12 lowercase letters or digits; any other id answers 404).",
        pattern = "^job_[a-z0-9]{12}$", example = "job_abc123def456")),
    request_body = CompleteRequest,
    security(("service_key" = [])),
    responses(
        (status = 200, description = "Completed.", body = schemas::CompletedAck),
        (status = 400, description = "Malformed JSON, or an artifact key outside `outputs/<job_id>/` (`INVALID_PARAMS`).", body = ErrorBody),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 404, description = "`NOT_FOUND`: no such job.", body = ErrorBody),
        (status = 409, description = "This attempt is no longer the job's running one (cancelled, finished, or re-claimed): interrupt and drop it.",
            body = schemas::AttemptSuperseded),
        (status = 413, description = "The body is over 2 MiB (`PAYLOAD_TOO_LARGE`).", body = ErrorBody),
        (status = 415, description = "The body is not `Content-Type: application/json` (`UNSUPPORTED_MEDIA_TYPE`).", body = ErrorBody),
        (status = 422, description = "A field is missing or of the wrong type (`INVALID_PARAMS`, field `body`).", body = ErrorBody),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn complete(
    State(state): State<V1State>,
    job_id: Result<Path<String>, PathRejection>,
    ServiceJson(request): ServiceJson<CompleteRequest>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let job = owned_job(&state, &path_text(job_id)).await?;
    let prefix = format!("outputs/{}/", job.job_id);
    let outside = request.artifacts.iter().any(|artifact| {
        !artifact.key.starts_with(&prefix)
            || artifact
                .thumbnail_key
                .as_ref()
                .is_some_and(|key| !key.starts_with(&prefix))
    });
    if outside {
        return Err(rejected(ApiError::invalid(
            "artifacts",
            format!("keys must start with {prefix}"),
        )));
    }
    let outcome = state
        .jobs
        .complete(
            &job,
            &request.worker_id,
            request.attempt,
            &request.artifacts,
            state.now(),
        )
        .await;
    settle(&state, &job.job_id, outcome).await?;
    tracing::info!(job = %job.job_id, worker = %request.worker_id, "job completed");
    dispatch::dispatch_job(&state, &job).await;
    Ok(Json(json!({ "status": JobStatus::Completed, "cancelled": false })))
}

/// `POST /api/internal/jobs/{job_id}/fail`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "worker_id": "worker-gpu-0",
    "attempt": 1,
    "code": "OOM",
    "message": "Out of memory",
    "details": "CUDA out of memory while sampling at 2048x2048",
    "retryable": false
}))]
struct FailRequest {
    /// The worker that claimed the job.
    worker_id: String,
    /// The attempt number of the claim.
    attempt: u32,
    /// The error code (`OOM`, `WORKER_TIMEOUT`, `INVALID_PARAMS`, `MODEL_NOT_FOUND`,
    /// `EXECUTION_ERROR`, ...).
    code: String,
    /// One sentence.
    message: String,
    /// More, if known.
    #[serde(default)]
    details: String,
    /// Whether running it again may succeed (the job shows it as `retry_available`).
    retryable: bool,
}

/// Fails a job.
///
/// The job becomes `FAILED` with the worker's error, its tokens are refunded, and its webhook
/// and chat are told.
#[utoipa::path(
    post,
    path = "/api/internal/jobs/{job_id}/fail",
    tag = "internal",
    operation_id = "internal_fail_job",
    params(("job_id" = String, Path, description = "The job's id (`job_` and 12 lowercase letters or digits; any other id answers 404).",
        pattern = "^job_[a-z0-9]{12}$", example = "job_abc123def456")),
    request_body = FailRequest,
    security(("service_key" = [])),
    responses(
        (status = 200, description = "Recorded.", body = schemas::FailedAck),
        (status = 400, description = "Malformed JSON (`INVALID_PARAMS`).", body = ErrorBody),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 404, description = "`NOT_FOUND`: no such job.", body = ErrorBody),
        (status = 409, description = "This attempt is no longer the job's running one (cancelled, finished, or re-claimed): interrupt and drop it.",
            body = schemas::AttemptSuperseded),
        (status = 413, description = "The body is over 2 MiB (`PAYLOAD_TOO_LARGE`).", body = ErrorBody),
        (status = 415, description = "The body is not `Content-Type: application/json` (`UNSUPPORTED_MEDIA_TYPE`).", body = ErrorBody),
        (status = 422, description = "A field is missing or of the wrong type (`INVALID_PARAMS`, field `body`).", body = ErrorBody),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn fail(
    State(state): State<V1State>,
    job_id: Result<Path<String>, PathRejection>,
    ServiceJson(request): ServiceJson<FailRequest>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let job = owned_job(&state, &path_text(job_id)).await?;
    let error = JobError {
        code: request.code,
        message: request.message,
        details: request.details,
    };
    let worker = Some((request.worker_id.as_str(), request.attempt));
    let outcome = state
        .jobs
        .fail(&job, worker, &error, request.retryable, state.now())
        .await;
    settle(&state, &job.job_id, outcome).await?;
    tracing::info!(job = %job.job_id, worker = %request.worker_id, code = %error.code, "job failed");
    dispatch::dispatch_job(&state, &job).await;
    Ok(Json(json!({ "status": JobStatus::Failed, "cancelled": false })))
}

/// `POST /api/internal/jobs/{job_id}/release`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"worker_id": "worker-gpu-0", "attempt": 1, "reason": "worker stopping"}))]
struct ReleaseRequest {
    /// The worker that claimed the job.
    worker_id: String,
    /// The attempt number of the claim.
    attempt: u32,
    /// Why, for the log.
    #[serde(default)]
    reason: String,
}

/// Gives a job back unfinished.
///
/// The attempt gave up without a verdict (ComfyUI went away, or the worker is stopping): the job
/// is queued again and the attempt is not counted.
#[utoipa::path(
    post,
    path = "/api/internal/jobs/{job_id}/release",
    tag = "internal",
    operation_id = "internal_release_job",
    params(("job_id" = String, Path, description = "The job's id (`job_` and 12 lowercase letters or digits; any other id answers 404).",
        pattern = "^job_[a-z0-9]{12}$", example = "job_abc123def456")),
    request_body = ReleaseRequest,
    security(("service_key" = [])),
    responses(
        (status = 200, description = "Queued again.", body = schemas::ReleasedAck),
        (status = 400, description = "Malformed JSON (`INVALID_PARAMS`).", body = ErrorBody),
        (status = 401, description = "No service key, or one that does not verify.", body = ErrorBody,
            example = json!({"error": {"code": "UNAUTHORIZED", "message": "this route needs a service credential",
                "details": "send Authorization: Bearer <API key or access token>"}})),
        (status = 404, description = "`NOT_FOUND`: no such job.", body = ErrorBody),
        (status = 409, description = "This attempt is no longer the job's running one (cancelled, finished, or re-claimed): interrupt and drop it.",
            body = schemas::AttemptSuperseded),
        (status = 413, description = "The body is over 2 MiB (`PAYLOAD_TOO_LARGE`).", body = ErrorBody),
        (status = 415, description = "The body is not `Content-Type: application/json` (`UNSUPPORTED_MEDIA_TYPE`).", body = ErrorBody),
        (status = 422, description = "A field is missing or of the wrong type (`INVALID_PARAMS`, field `body`).", body = ErrorBody),
        (status = 503, description = "The store did not answer; retry later.", body = ErrorBody,
            example = json!({"error": {"code": "SERVICE_UNAVAILABLE", "message": "service temporarily unavailable; retry later", "details": null}})),
    )
)]
async fn release(
    State(state): State<V1State>,
    job_id: Result<Path<String>, PathRejection>,
    ServiceJson(request): ServiceJson<ReleaseRequest>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let job = owned_job(&state, &path_text(job_id)).await?;
    let outcome = state.jobs.release(&job, &request.worker_id, request.attempt).await;
    settle(&state, &job.job_id, outcome).await?;
    tracing::info!(job = %job.job_id, worker = %request.worker_id, reason = %request.reason, "job released unfinished");
    Ok(Json(json!({ "status": JobStatus::Queued, "cancelled": false })))
}

async fn owned_job(state: &V1State, job_id: &str) -> Result<JobRecord, (StatusCode, Json<Value>)> {
    let id = job_id_of(job_id).map_err(rejected)?;
    state
        .jobs
        .get(&id)
        .await
        .map_err(|error| rejected(error.into()))?
        .ok_or_else(|| rejected(ApiError::job_not_found()))
}

/// Turns a lost conditional transition into 409 with `cancelled` (and the job's status).
async fn settle<T>(
    state: &V1State,
    id: &JobId,
    outcome: Result<T, StoreError>,
) -> Result<T, (StatusCode, Json<Value>)> {
    match outcome {
        Ok(value) => Ok(value),
        Err(StoreError::Conflict(_)) => {
            let current = state.jobs.get(id).await.map_err(|error| rejected(error.into()))?;
            let status = current.as_ref().map(|job| job.status);
            Err((
                StatusCode::CONFLICT,
                Json(json!({
                    "error": {
                        "code": "CONFLICT",
                        "message": "this attempt is no longer the job's running one; interrupt and drop it",
                        "details": null,
                    },
                    "cancelled": status == Some(JobStatus::Cancelled),
                    "status": status,
                })),
            ))
        }
        Err(other) => Err(rejected(other.into())),
    }
}

fn rejected(error: ApiError) -> (StatusCode, Json<Value>) {
    let status = error.status;
    let body = json!({ "error": { "code": error.code, "message": error.message, "details": error.details } });
    (status, Json(body))
}

/// A path segment as text; one that does not decode (not UTF-8) reads as empty, which names
/// nothing.
fn path_text(segment: Result<Path<String>, PathRejection>) -> String {
    segment.map(|Path(text)| text).unwrap_or_default()
}

fn job_id_of(raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).map_err(|_| ApiError::job_not_found())
}

fn checked_worker(raw: &str) -> Result<String, ApiError> {
    let ok =
        !raw.is_empty() && raw.len() <= 100 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid(
            "worker_id",
            "1 to 100 letters, digits, '-', '_', '.', ':'",
        ))
    }
}
