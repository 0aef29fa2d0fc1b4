//! The shapes of `/api/v1` as the OpenAPI document describes them: requests as the validators
//! accept them, answers as the handlers build them. The examples are the spec's.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::openapi::Pagination;

/// What a job produces.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CapabilityName {
    /// Images.
    Image,
    /// Videos.
    Video,
    /// Text.
    Text,
    /// Audio.
    Audio,
}

/// A job's queue lane.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PriorityName {
    /// After everything else.
    Low,
    /// The default.
    Normal,
    /// Before everything else (plans that allow it).
    High,
}

/// A job's state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatusName {
    /// Waiting for a worker.
    Queued,
    /// On a worker.
    Running,
    /// Done, with artifacts.
    Completed,
    /// Ended with an error.
    Failed,
    /// Cancelled by the client.
    Cancelled,
}

/// `POST /api/v1/jobs`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "capability": "image",
    "params": {
        "prompt": "a beautiful sunset over mountains",
        "negative_prompt": "ugly, blurry",
        "resolution": "1024x1024",
        "steps": 20,
        "model": "sdxl",
        "seed": 42
    },
    "priority": "normal",
    "webhook_url": "https://your-app.com/webhook"
}))]
pub struct CreateJob {
    /// What to generate.
    pub capability: CapabilityName,
    /// The generation parameters.
    pub params: JobParamsInput,
    /// The queue lane (default `normal`; `high` only on plans that allow it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<PriorityName>,
    /// Where to POST the job's final event: https (http only where the server allows it), never
    /// a private network.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048, example = "https://your-app.com/webhook")]
    pub webhook_url: Option<String>,
}

/// The generation parameters of a job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobParamsInput {
    /// What to generate (at most 2,000 characters; the content policy applies).
    #[schema(min_length = 1, max_length = 2000)]
    pub prompt: String,
    /// What to avoid (at most 2,000 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2000)]
    pub negative_prompt: Option<String>,
    /// `WxH`, both multiples of 8, within the model's `max_resolution` (default 1024x1024).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9]+x[0-9]+$", example = "1024x1024")]
    pub resolution: Option<String>,
    /// Sampling steps, 1 to 150 (default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 150)]
    pub steps: Option<u32>,
    /// A model of the capability on the caller's plan (default: the capability's first).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "sdxl")]
    pub model: Option<String>,
    /// The seed (random when omitted, and always reported back).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 18446744073709551615_u64)]
    pub seed: Option<u64>,
}

/// 201 of `POST /api/v1/jobs`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "job_abc123def456",
    "status": "QUEUED",
    "estimated_time_seconds": 30,
    "cost_tokens": 1.0,
    "queue_position": 5,
    "created_at": "2025-12-17T20:00:00Z"
}))]
pub struct JobCreated {
    /// The job's id.
    pub job_id: String,
    /// `QUEUED`.
    pub status: JobStatusName,
    /// Seconds until it should be done, from the queue ahead and the live workers.
    pub estimated_time_seconds: u64,
    /// The tokens charged (refunded on failure or cancel).
    pub cost_tokens: f64,
    /// 1 for the next job to run.
    pub queue_position: u64,
    /// When it was accepted.
    pub created_at: String,
}

/// A job, in the shape of its state (spec section 2: queued, running, completed, failed; and
/// cancelled).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum JobView {
    /// Waiting for a worker.
    Queued(QueuedJob),
    /// On a worker.
    Running(RunningJob),
    /// Done.
    Completed(CompletedJob),
    /// Ended with an error.
    Failed(FailedJob),
    /// Cancelled.
    Cancelled(CancelledJob),
}

/// A `QUEUED` job.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "job_abc123def456",
    "status": "QUEUED",
    "queue_position": 3,
    "estimated_time_seconds": 20,
    "created_at": "2025-12-17T20:00:00Z"
}))]
pub struct QueuedJob {
    /// The job's id.
    pub job_id: String,
    /// `QUEUED`.
    #[schema(pattern = "^QUEUED$")]
    pub status: String,
    /// 1 for the next job of its lane to run.
    pub queue_position: u64,
    /// Seconds until it should be done.
    pub estimated_time_seconds: u64,
    /// When it was accepted.
    pub created_at: String,
    /// Its webhook's delivery state (`GET` of a job with a `webhook_url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<JobWebhook>,
}

/// A `RUNNING` job.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "job_abc123def456",
    "status": "RUNNING",
    "progress": 45,
    "started_at": "2025-12-17T20:00:15Z"
}))]
pub struct RunningJob {
    /// The job's id.
    pub job_id: String,
    /// `RUNNING`.
    #[schema(pattern = "^RUNNING$")]
    pub status: String,
    /// Percent done, 0 to 100, never going back.
    #[schema(minimum = 0, maximum = 100)]
    pub progress: u8,
    /// When a worker took it.
    pub started_at: Option<String>,
    /// Its webhook's delivery state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<JobWebhook>,
}

/// A `COMPLETED` job.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "job_abc123def456",
    "status": "COMPLETED",
    "created_at": "2025-12-17T20:00:00Z",
    "started_at": "2025-12-17T20:00:15Z",
    "completed_at": "2025-12-17T20:00:33Z",
    "execution_time_seconds": 18,
    "artifacts": [{
        "id": "artifact_xyz789",
        "type": "image",
        "url": "https://cdn.tessera.ai/outputs/job_abc123/output.png",
        "thumbnail_url": "https://cdn.tessera.ai/outputs/job_abc123/thumb.jpg",
        "format": "png",
        "width": 1024,
        "height": 1024,
        "file_size_bytes": 2048576,
        "expires_at": "2025-12-24T20:00:33Z"
    }],
    "metadata": {"seed": 42, "model_used": "sdxl-1.0", "actual_steps": 20}
}))]
pub struct CompletedJob {
    /// The job's id.
    pub job_id: String,
    /// `COMPLETED`.
    #[schema(pattern = "^COMPLETED$")]
    pub status: String,
    /// When it was accepted.
    pub created_at: String,
    /// When a worker took it.
    pub started_at: Option<String>,
    /// When it finished.
    pub completed_at: String,
    /// Seconds on the worker.
    pub execution_time_seconds: Option<i64>,
    /// Every output, with signed URLs.
    pub artifacts: Vec<Artifact>,
    /// How it was made.
    pub metadata: JobMetadata,
    /// Its webhook's delivery state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<JobWebhook>,
}

/// One output of a completed job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Artifact {
    /// The artifact's id.
    pub id: String,
    /// `image`, `video`, `audio` or `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A signed URL of the file, valid until `expires_at`.
    pub url: String,
    /// A signed URL of a JPEG thumbnail (images).
    pub thumbnail_url: Option<String>,
    /// The file format, e.g. `png`.
    pub format: String,
    /// Pixels across (images and videos).
    pub width: Option<u32>,
    /// Pixels down (images and videos).
    pub height: Option<u32>,
    /// The file's size.
    pub file_size_bytes: u64,
    /// When the file is deleted (7 days after completion).
    pub expires_at: String,
}

/// How a completed job was made.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobMetadata {
    /// The seed used.
    pub seed: u64,
    /// The model and version that ran.
    pub model_used: Option<String>,
    /// The steps run.
    pub actual_steps: u32,
}

/// A `FAILED` job.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "job_abc123def456",
    "status": "FAILED",
    "error": {
        "code": "WORKER_TIMEOUT",
        "message": "Worker became unresponsive during execution",
        "details": "GPU hang detected, job will be retried"
    },
    "created_at": "2025-12-17T20:00:00Z",
    "failed_at": "2025-12-17T20:02:30Z",
    "retry_available": true
}))]
pub struct FailedJob {
    /// The job's id.
    pub job_id: String,
    /// `FAILED`.
    #[schema(pattern = "^FAILED$")]
    pub status: String,
    /// Why it failed.
    pub error: Option<JobFailure>,
    /// When it was accepted.
    pub created_at: String,
    /// When it failed.
    pub failed_at: Option<String>,
    /// Whether sending the same request again may succeed.
    pub retry_available: bool,
    /// Its webhook's delivery state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<JobWebhook>,
}

/// Why a job failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobFailure {
    /// E.g. `WORKER_TIMEOUT`, `OOM`, `INVALID_PARAMS`, `MODEL_NOT_FOUND`.
    pub code: String,
    /// One sentence.
    pub message: String,
    /// More, if known.
    pub details: String,
}

/// A `CANCELLED` job.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelledJob {
    /// The job's id.
    pub job_id: String,
    /// `CANCELLED`.
    #[schema(pattern = "^CANCELLED$")]
    pub status: String,
    /// When it was accepted.
    pub created_at: String,
    /// When it was cancelled.
    pub cancelled_at: Option<String>,
    /// Its webhook's delivery state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<JobWebhook>,
}

/// One Server-Sent Event of `GET /api/v1/jobs/{job_id}/events` (OpenAPI 3.1 describes an event
/// stream by its events).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "event": "status",
    "data": "{\"job_id\":\"job_abc123def456\",\"status\":\"RUNNING\",\"progress\":45,\"started_at\":\"2025-12-17T20:00:15Z\"}"
}))]
pub struct JobStatusEvent {
    /// Always `status`.
    #[schema(pattern = "^status$")]
    pub event: String,
    /// The job as `GET /api/v1/jobs/{job_id}` shows it ([`JobView`]), as JSON text.
    pub data: String,
}

/// The delivery state of a job's webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobWebhook {
    /// The job's `webhook_url`.
    pub url: String,
    /// `waiting` (the job is not final), `pending`, `retrying`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// The delivery's id, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// When the last attempt was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Option<String>>,
    /// What the receiver answered last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status_code: Option<Option<u16>>,
    /// The last attempt's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Option<String>>,
    /// When the next attempt is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Option<String>>,
}

/// 200 of `DELETE /api/v1/jobs/{job_id}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "job_id": "job_abc123def456",
    "status": "CANCELLED",
    "cancelled_at": "2025-12-17T20:00:45Z",
    "refund_tokens": 1.0
}))]
pub struct JobCancelled {
    /// The job's id.
    pub job_id: String,
    /// `CANCELLED`.
    pub status: JobStatusName,
    /// When.
    pub cancelled_at: String,
    /// The tokens given back.
    pub refund_tokens: f64,
}

/// 200 of `GET /api/v1/jobs`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "jobs": [{
        "job_id": "job_abc123",
        "capability": "image",
        "status": "COMPLETED",
        "created_at": "2025-12-17T20:00:00Z",
        "completed_at": "2025-12-17T20:00:33Z"
    }],
    "pagination": {"total": 145, "limit": 20, "offset": 0, "has_more": true}
}))]
pub struct JobList {
    /// One page of jobs, newest first.
    pub jobs: Vec<JobSummary>,
    /// Where the page is.
    pub pagination: Pagination,
}

/// A job in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobSummary {
    /// The job's id.
    pub job_id: String,
    /// What it generates.
    pub capability: CapabilityName,
    /// Its state.
    pub status: JobStatusName,
    /// When it was accepted.
    pub created_at: String,
    /// When it finished (completed jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

/// A plan as the spec shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// Display name.
    pub name: String,
    /// `free`, `starter` or `pro`.
    pub tier: String,
    /// Tokens per UTC day.
    pub daily_token_limit: u64,
    /// Queue priority, 0 to 2.
    pub priority: u8,
}

/// 200 of `GET /api/v1/user/me`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "user_id": "user_123",
    "email": "user@example.com",
    "plan": {"name": "Pro", "tier": "pro", "daily_token_limit": 300, "priority": 2},
    "usage": {"tokens_used_today": 45, "tokens_remaining_today": 255, "reset_at": "2025-12-18T00:00:00Z"},
    "created_at": "2025-11-01T12:00:00Z"
}))]
pub struct UserMe {
    /// The user's id.
    pub user_id: String,
    /// The user's e-mail.
    pub email: String,
    /// The tenant's plan.
    pub plan: PlanView,
    /// Today's tokens (UTC).
    pub usage: TodayUsage,
    /// When the user signed up.
    pub created_at: String,
}

/// Today's tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TodayUsage {
    /// Charged today.
    pub tokens_used_today: f64,
    /// Left today.
    pub tokens_remaining_today: f64,
    /// The next 00:00 UTC.
    pub reset_at: String,
}

/// 200 of `GET /api/v1/user/usage`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "usage": [{
        "date": "2025-12-17",
        "tokens_used": 45,
        "jobs_completed": 42,
        "jobs_failed": 3,
        "breakdown": {"image": 30, "video": 10, "text": 5}
    }],
    "total": {"tokens_used": 850, "jobs_completed": 812, "average_tokens_per_day": 42.5}
}))]
pub struct UsageHistory {
    /// One row per day with activity, oldest first.
    pub usage: Vec<UsageDay>,
    /// Over the range.
    pub total: UsageTotal,
}

/// One day of usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Tokens charged, net of refunds.
    pub tokens_used: f64,
    /// Jobs completed.
    pub jobs_completed: i64,
    /// Jobs failed.
    pub jobs_failed: i64,
    /// Tokens by capability.
    #[schema(value_type = Object, additional_properties)]
    pub breakdown: Value,
}

/// Usage over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageTotal {
    /// Tokens charged.
    pub tokens_used: f64,
    /// Jobs completed.
    pub jobs_completed: i64,
    /// Tokens per day of the range.
    pub average_tokens_per_day: f64,
}

/// 200 of `GET /api/v1/models`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"models": [{
    "id": "sdxl",
    "name": "Stable Diffusion XL",
    "version": "1.0",
    "capability": "image",
    "description": "High quality image generation",
    "max_resolution": "2048x2048",
    "available_on_plan": ["free", "starter", "pro"],
    "estimated_time_seconds": 20,
    "cost_multiplier": 1.0
}]}))]
pub struct ModelList {
    /// The models.
    pub models: Vec<ModelView>,
}

/// A model of the catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    /// The id clients name, e.g. `sdxl`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version.
    pub version: String,
    /// What it produces.
    pub capability: CapabilityName,
    /// One line about it.
    pub description: String,
    /// The largest output (`WxH`), for image and video models.
    pub max_resolution: Option<String>,
    /// The plans that may use it.
    pub available_on_plan: Vec<String>,
    /// Typical run time of one job.
    pub estimated_time_seconds: u32,
    /// Price factor.
    pub cost_multiplier: f64,
}

/// 201 of `POST /api/v1/webhooks/secret`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "secret": "whsec_2v8f...",
    "created_at": "2025-12-17T20:00:00Z",
    "previous_secret_expires_at": "2025-12-18T20:00:00Z"
}))]
pub struct WebhookSecret {
    /// The new signing secret, shown this once.
    pub secret: String,
    /// When it was made.
    pub created_at: String,
    /// Until when the previous secret also signs (24 hours), if there was one.
    pub previous_secret_expires_at: Option<String>,
}

/// One webhook delivery: one event to one URL, with every attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    /// The delivery's id.
    pub delivery_id: String,
    /// The event's id (the same for redeliveries).
    pub event_id: String,
    /// `job.completed`, `job.failed` or `job.cancelled`.
    pub event: String,
    /// The job.
    pub job_id: String,
    /// Where it is sent.
    pub url: String,
    /// `pending`, `retrying`, `delivered` or `failed`.
    pub status: String,
    /// Every attempt, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
    /// When the next attempt is due.
    pub next_attempt_at: Option<String>,
    /// When the delivery was made.
    pub created_at: String,
    /// The delivery this one repeats.
    pub redelivery_of: Option<String>,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    /// 1 for the first.
    pub number: u32,
    /// When.
    pub at: String,
    /// What the receiver answered.
    pub status_code: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// What went wrong, if it did.
    pub error: Option<String>,
    /// The start of the receiver's answer (512 characters).
    pub response_excerpt: Option<String>,
}

/// 200 of `GET /api/v1/webhooks/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// One page, newest first.
    pub deliveries: Vec<Delivery>,
    /// Where the page is.
    pub pagination: Pagination,
}
