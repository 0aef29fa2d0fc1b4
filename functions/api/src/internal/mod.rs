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

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::{JobId, JobStatus};
use tessera_store::StoreError;
use tessera_store::item::Update;
use tessera_store::jobs::{ArtifactRecord, Claimed, JobError, JobOrigin, JobRecord};

use crate::auth::layer::authenticate;
use crate::auth::{Accepts, Guard};
use crate::problem::JsonBody;
use crate::v1::error::v1_style;
use crate::v1::webhooks::dispatch;
use crate::v1::{ApiError, V1State};

/// How long a claim (or a progress report) holds a job for its worker, in seconds.
pub const LEASE_SECONDS: i64 = 120;
/// How long a worker's heartbeat keeps it listed as live, in seconds.
pub const WORKER_TTL_SECONDS: i64 = 90;
/// How long a job may run before the worker interrupts it, unless the model says otherwise.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 300;

/// The family's routes, behind the service-credential layer.
pub fn router(state: V1State) -> Router {
    let guard = Guard {
        service: state.auth.clone(),
        accepts: Accepts::Services,
        render: v1_style,
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

/// `POST /api/internal/jobs`: a bot's job for a chat user, under the same quotas as the public
/// API; the job keeps where it came from so its events can go back to the chat.
async fn create_for_chat_user(
    State(state): State<V1State>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<crate::v1::jobs::Answer, ApiError> {
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
        idempotency_key: crate::v1::jobs::idempotency_key(&headers)?,
        request_hash: crate::v1::jobs::hex_sha256(&body),
        cap,
    };
    if let Some(replayed) = submission.replay(&state).await? {
        return Ok(replayed);
    }
    let mut public = json!({ "capability": request.capability, "params": request.params });
    if let Some(priority) = request.priority {
        public["priority"] = priority;
    }
    let mut answer = submission.submit(&state, &public).await?;
    if !answer.replayed {
        let used = state.tokens_used_today(&tenant.id).await?;
        let limit = tessera_core::Tokens::whole(plan.daily_token_limit).0;
        answer.body["tokens_remaining_today"] = json!(tessera_core::Tokens(limit.saturating_sub(used)));
    }
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

#[derive(Deserialize)]
struct Heartbeat {
    worker_id: String,
    status: String,
    capabilities: Vec<String>,
    loaded_models: Vec<String>,
    gpu_memory_used_mb: Option<u64>,
    gpu_memory_total_mb: Option<u64>,
    uptime_seconds: u64,
    jobs_completed: u64,
}

async fn heartbeat(State(state): State<V1State>, JsonBody(beat): JsonBody<Heartbeat>) -> Result<Json<Value>, ApiError> {
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

#[derive(Deserialize)]
struct ClaimRequest {
    worker_id: String,
}

async fn claim(
    State(state): State<V1State>,
    Path(job_id): Path<String>,
    JsonBody(request): JsonBody<ClaimRequest>,
) -> Result<Json<Value>, ApiError> {
    let worker = checked_worker(&request.worker_id)?;
    let id = job_id_of(&job_id)?;
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

#[derive(Deserialize)]
struct ProgressRequest {
    worker_id: String,
    attempt: u32,
    percent: u8,
}

async fn progress(
    State(state): State<V1State>,
    Path(job_id): Path<String>,
    JsonBody(request): JsonBody<ProgressRequest>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let id = job_id_of(&job_id).map_err(rejected)?;
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

#[derive(Deserialize)]
struct CompleteRequest {
    worker_id: String,
    attempt: u32,
    artifacts: Vec<ArtifactRecord>,
}

async fn complete(
    State(state): State<V1State>,
    Path(job_id): Path<String>,
    JsonBody(request): JsonBody<CompleteRequest>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let job = owned_job(&state, &job_id).await?;
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

#[derive(Deserialize)]
struct FailRequest {
    worker_id: String,
    attempt: u32,
    code: String,
    message: String,
    #[serde(default)]
    details: String,
    retryable: bool,
}

async fn fail(
    State(state): State<V1State>,
    Path(job_id): Path<String>,
    JsonBody(request): JsonBody<FailRequest>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let job = owned_job(&state, &job_id).await?;
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

#[derive(Deserialize)]
struct ReleaseRequest {
    worker_id: String,
    attempt: u32,
    #[serde(default)]
    reason: String,
}

async fn release(
    State(state): State<V1State>,
    Path(job_id): Path<String>,
    JsonBody(request): JsonBody<ReleaseRequest>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let job = owned_job(&state, &job_id).await?;
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
