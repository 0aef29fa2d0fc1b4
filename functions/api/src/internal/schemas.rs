//! The shapes of `/api/internal/*` as the OpenAPI document describes them: the requests as the
//! handlers accept them, the answers exactly as the handlers build them (`null` where a field
//! can be empty, optional where it can be absent). The examples are the spec's (section 8).

use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::schemas::PlanTierName;
use crate::openapi::ErrorObject;
use crate::v1::schemas::{CapabilityName, JobStatusName, PriorityName};

/// The chat platform a bot serves.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatFrontend {
    /// A Telegram bot.
    Telegram,
    /// A Discord bot.
    Discord,
}

/// The state of a job that is waiting or running.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ActiveJobStatus {
    /// Waiting for a worker.
    Queued,
    /// On a worker.
    Running,
}

/// Always `QUEUED`.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum QueuedStatus {
    /// Waiting for a worker.
    Queued,
}

/// Always `COMPLETED`.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum CompletedStatus {
    /// Done, with artifacts.
    Completed,
}

/// Always `FAILED`.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum FailedStatus {
    /// Ended with an error.
    Failed,
}

/// Always `CANCELLED`.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum CancelledStatus {
    /// Cancelled.
    Cancelled,
}

/// `POST /api/internal/jobs`: a chat user's job, as a bot sends it.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "frontend": "telegram",
    "bot_id": "tg-img-1",
    "capability": "image",
    "user_ref": "telegram:123456789",
    "reply_context": {
        "platform": "telegram",
        "chat_id": "123456789",
        "message_id": "987654321"
    },
    "params": {
        "prompt": "a beautiful sunset",
        "resolution": "1024x1024",
        "steps": 20
    }
}))]
pub struct InternalJobRequest {
    /// The chat platform the job comes from.
    pub frontend: ChatFrontend,
    /// The bot that sends it: 1 to 100 letters, digits, `-`, `_`, `.`, `:`.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,100}$", example = "tg-img-1")]
    pub bot_id: String,
    /// What the job produces.
    pub capability: CapabilityName,
    /// The chat user, `<frontend>:<user id>` (the id: 1 to 64 letters, digits, `_`, `-`); the
    /// platform must be the job's `frontend`. Their account is made on first sight.
    #[schema(pattern = "^(telegram|discord):[A-Za-z0-9_-]{1,64}$", example = "telegram:123456789")]
    pub user_ref: String,
    /// Where the bot answers (chat, message, ...): any object, given back with the job's events.
    #[schema(value_type = Object)]
    pub reply_context: Value,
    /// What to generate, as `params` of `POST /api/v1/jobs`.
    pub params: InternalJobParams,
    /// The queue lane (default `normal`).
    #[serde(default)]
    pub priority: Option<PriorityName>,
    /// The chat server it came from (`discord:<server id>`), on the job's frontend, whose
    /// settings (steps, models, daily jobs per member) apply.
    #[serde(default)]
    #[schema(pattern = "^(discord|telegram):[0-9-]{1,32}$", example = "discord:123456789")]
    pub guild: Option<String>,
}

/// What to generate.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InternalJobParams {
    /// The prompt: 1 to 2000 characters, not blank, within the content policy.
    #[schema(min_length = 1, max_length = 2000, example = "a beautiful sunset")]
    pub prompt: String,
    /// What to avoid: 1 to 2000 characters, not blank.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 2000, example = "ugly, blurry")]
    pub negative_prompt: Option<String>,
    /// `WIDTHxHEIGHT`, both multiples of 8 within the model's `max_resolution` (image and video
    /// only; default up to 1024 per side).
    #[serde(default)]
    #[schema(pattern = "^[1-9][0-9]{0,3}x[1-9][0-9]{0,3}$", example = "1024x1024")]
    pub resolution: Option<String>,
    /// Sampling steps (default 20).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 150, example = 20)]
    pub steps: Option<u32>,
    /// The model id (default: the first model of the capability on the plan).
    #[serde(default)]
    #[schema(example = "sdxl")]
    pub model: Option<String>,
    /// The seed (default: a random one).
    #[serde(default)]
    #[schema(example = 42)]
    pub seed: Option<u64>,
}

/// 201 of `POST /api/internal/jobs`: the public create's answer, and the tokens left today.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "job_id": "job_abc123def456",
    "status": "QUEUED",
    "estimated_time_seconds": 30,
    "cost_tokens": 1.0,
    "queue_position": 5,
    "created_at": "2025-12-17T20:00:00Z",
    "tokens_remaining_today": 9.0
}))]
pub struct InternalJobCreated {
    /// The job's id.
    #[schema(example = "job_abc123def456")]
    pub job_id: String,
    /// Always `QUEUED`.
    pub status: QueuedStatus,
    /// Seconds until it should finish, with the jobs ahead of it.
    pub estimated_time_seconds: u64,
    /// Tokens reserved for it (refunded if it fails or is cancelled).
    pub cost_tokens: f64,
    /// Its place in the queue, from 1.
    pub queue_position: u64,
    /// When it was created (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The user's tokens left today: after this job, or, in a replayed answer
    /// (`Idempotent-Replayed: true`), when the retry came.
    pub tokens_remaining_today: f64,
}

/// Always `ok`.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HeartbeatStatus {
    /// Recorded.
    Ok,
}

/// 200 of `POST /api/internal/heartbeat`.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"status": "ok", "next_heartbeat_seconds": 30}))]
pub struct HeartbeatAck {
    /// Always `ok`.
    pub status: HeartbeatStatus,
    /// When to send the next heartbeat, in seconds (30).
    pub next_heartbeat_seconds: u32,
}

/// What a worker needs to run a job.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "job_id": "job_abc123def456",
    "capability": "image",
    "model_id": "sdxl-1.0",
    "workflow_id": "txt2img_sdxl",
    "params": {
        "prompt": "a beautiful sunset over mountains",
        "negative_prompt": "ugly, blurry",
        "width": 1024,
        "height": 1024,
        "steps": 20,
        "seed": 42
    },
    "timeout_seconds": 300
}))]
pub struct WorkOrder {
    /// The job's id.
    pub job_id: String,
    /// What it produces.
    pub capability: CapabilityName,
    /// The model's versioned id (`sdxl-1.0`).
    pub model_id: String,
    /// The workflow to run (`txt2img_sdxl`).
    pub workflow_id: String,
    /// The generation parameters.
    pub params: WorkParams,
    /// How long the job may run before the worker interrupts it, in seconds.
    pub timeout_seconds: u32,
}

/// A work order's generation parameters.
#[derive(Debug, ToSchema)]
pub struct WorkParams {
    /// The prompt.
    pub prompt: String,
    /// What to avoid, or null.
    #[schema(required = true)]
    pub negative_prompt: Option<String>,
    /// Pixels across, or null (text and audio).
    #[schema(required = true)]
    pub width: Option<u32>,
    /// Pixels down, or null (text and audio).
    #[schema(required = true)]
    pub height: Option<u32>,
    /// Sampling steps.
    pub steps: u32,
    /// The seed.
    pub seed: u64,
}

/// Why a worker must not run the job it tried to claim.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// No such job.
    NotFound,
    /// The job was cancelled.
    Cancelled,
    /// The job is finished already.
    Completed,
    /// The job failed already.
    Failed,
    /// Another worker holds the job (its lease has not run out).
    RunningElsewhere,
    /// Another worker claimed it first.
    LostRace,
}

/// 200 of `POST /api/internal/jobs/{job_id}/claim`: run the job, or drop it.
#[derive(Debug, ToSchema)]
#[serde(tag = "action", rename_all = "lowercase")]
#[schema(example = json!({
    "action": "run",
    "attempt": 1,
    "job": {
        "job_id": "job_abc123def456",
        "capability": "image",
        "model_id": "sdxl-1.0",
        "workflow_id": "txt2img_sdxl",
        "params": {
            "prompt": "a beautiful sunset over mountains",
            "negative_prompt": null,
            "width": 1024,
            "height": 1024,
            "steps": 20,
            "seed": 42
        },
        "timeout_seconds": 300
    }
}))]
pub enum ClaimAnswer {
    /// The job is this worker's: run it, reporting with this attempt number.
    Run {
        /// The attempt number to send with progress, complete, fail and release.
        attempt: u32,
        /// The work order.
        job: WorkOrder,
    },
    /// Do not run the job.
    Drop {
        /// Why.
        reason: DropReason,
    },
}

/// 200 of `POST /api/internal/jobs/{job_id}/progress`.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"cancelled": false}))]
pub struct ProgressAck {
    /// Always false: a cancelled job answers 409 instead.
    pub cancelled: bool,
}

/// 200 of `POST /api/internal/jobs/{job_id}/complete`.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"status": "COMPLETED", "cancelled": false}))]
pub struct CompletedAck {
    /// Always `COMPLETED`.
    pub status: CompletedStatus,
    /// Always false.
    pub cancelled: bool,
}

/// 200 of `POST /api/internal/jobs/{job_id}/fail`.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"status": "FAILED", "cancelled": false}))]
pub struct FailedAck {
    /// Always `FAILED`.
    pub status: FailedStatus,
    /// Always false.
    pub cancelled: bool,
}

/// 200 of `POST /api/internal/jobs/{job_id}/release`.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"status": "QUEUED", "cancelled": false}))]
pub struct ReleasedAck {
    /// Always `QUEUED`: the job waits for a worker again.
    pub status: QueuedStatus,
    /// Always false.
    pub cancelled: bool,
}

/// 409 of the lifecycle calls: this attempt is no longer the job's running one (cancelled,
/// finished, or re-claimed by another worker); interrupt and drop it.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "error": {
        "code": "CONFLICT",
        "message": "this attempt is no longer the job's running one; interrupt and drop it",
        "details": null
    },
    "cancelled": true,
    "status": "CANCELLED"
}))]
pub struct AttemptSuperseded {
    /// The error (`CONFLICT`).
    pub error: ErrorObject,
    /// Whether the job was cancelled.
    pub cancelled: bool,
    /// The job's state now, or null if there is no such job.
    #[schema(required = true)]
    pub status: Option<JobStatusName>,
}

/// An output file a worker uploaded.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "id": "artifact_abc123def456",
    "type": "image",
    "key": "outputs/job_abc123def456/output.png",
    "thumbnail_key": "outputs/job_abc123def456/thumb.webp",
    "format": "png",
    "width": 1024,
    "height": 1024,
    "file_size_bytes": 2048576
}))]
pub struct WorkerArtifact {
    /// The artifact's id (`artifact_...`).
    pub id: String,
    /// `image`, `video`, `audio` or `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its blob key, under `outputs/<job_id>/`.
    pub key: String,
    /// Its thumbnail's blob key, under `outputs/<job_id>/`.
    #[serde(default)]
    pub thumbnail_key: Option<String>,
    /// File format, e.g. `png`.
    pub format: String,
    /// Pixels across (images and video).
    #[serde(default)]
    pub width: Option<u32>,
    /// Pixels down (images and video).
    #[serde(default)]
    pub height: Option<u32>,
    /// Size in bytes.
    pub file_size_bytes: u64,
}

/// A chat user's plan.
#[derive(Debug, ToSchema)]
pub struct ChatUserPlan {
    /// The tier.
    pub id: PlanTierName,
    /// Display name.
    pub name: String,
}

/// 200 of `GET /api/internal/chat-users/{user_ref}/usage`: today's tokens (a user never seen
/// answers the Free plan, unused).
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "plan": {"id": "free", "name": "Free"},
    "tokens_used_today": 1.0,
    "tokens_remaining_today": 9.0,
    "daily_token_limit": 10,
    "reset_at": "2025-12-18T00:00:00Z"
}))]
pub struct ChatUserUsage {
    /// The user's plan.
    pub plan: ChatUserPlan,
    /// Tokens charged today (UTC).
    pub tokens_used_today: f64,
    /// Tokens left today.
    pub tokens_remaining_today: f64,
    /// The plan's tokens per day.
    pub daily_token_limit: u64,
    /// The next 00:00 UTC, when the count starts again.
    #[schema(format = DateTime)]
    pub reset_at: String,
}

/// 200 of `GET /api/internal/chat-users/{user_ref}/jobs`: the user's queued and running jobs,
/// newest first.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"jobs": [{
    "job_id": "job_abc123def456",
    "status": "QUEUED",
    "model": "sdxl",
    "prompt": "a beautiful sunset",
    "progress": 0,
    "created_at": "2025-12-17T20:00:00Z",
    "queue_position": 2
}]}))]
pub struct ChatUserJobs {
    /// The jobs.
    pub jobs: Vec<ChatActiveJob>,
}

/// A queued or running job of a chat user.
#[derive(Debug, ToSchema)]
pub struct ChatActiveJob {
    /// The job's id.
    pub job_id: String,
    /// `QUEUED` or `RUNNING`.
    pub status: ActiveJobStatus,
    /// The model id.
    pub model: String,
    /// The prompt.
    pub prompt: String,
    /// Percent done, 0 to 100.
    #[schema(minimum = 0, maximum = 100)]
    pub progress: u8,
    /// When it was created (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Its place in the queue, from 1 (queued jobs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub queue_position: Option<u64>,
}

/// 200 of `GET /api/internal/chat-users/{user_ref}/jobs/{job_id}`: what the job asked for, to
/// repeat it.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "job_id": "job_abc123def456",
    "status": "COMPLETED",
    "capability": "image",
    "model": "sdxl",
    "params": {
        "prompt": "a beautiful sunset",
        "negative_prompt": null,
        "resolution": "1024x1024",
        "steps": 20,
        "seed": 42,
        "model": "sdxl"
    }
}))]
pub struct ChatUserJob {
    /// The job's id.
    pub job_id: String,
    /// Its state.
    pub status: JobStatusName,
    /// What it produces.
    pub capability: CapabilityName,
    /// The model id.
    pub model: String,
    /// Its parameters, as a new job would take them.
    pub params: ChatJobParams,
}

/// A job's parameters, as `params` of a new job takes them.
#[derive(Debug, ToSchema)]
pub struct ChatJobParams {
    /// The prompt.
    pub prompt: String,
    /// What to avoid, or null.
    #[schema(required = true)]
    pub negative_prompt: Option<String>,
    /// `WIDTHxHEIGHT`, or null (text and audio).
    #[schema(required = true)]
    pub resolution: Option<String>,
    /// Sampling steps.
    pub steps: u32,
    /// The seed it ran with.
    pub seed: u64,
    /// The model id.
    pub model: String,
}

/// 200 of `DELETE /api/internal/chat-users/{user_ref}/jobs/{job_id}`: the public cancel's
/// answer.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "job_id": "job_abc123def456",
    "status": "CANCELLED",
    "cancelled_at": "2025-12-17T20:00:45Z",
    "refund_tokens": 1.0
}))]
pub struct ChatJobCancelled {
    /// The job's id.
    pub job_id: String,
    /// Always `CANCELLED`.
    pub status: CancelledStatus,
    /// When (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub cancelled_at: String,
    /// Tokens given back.
    pub refund_tokens: f64,
}

/// A chat server's settings; null leaves the matter to the plan.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"max_steps": 40, "allowed_models": ["sdxl", "flux-schnell"], "daily_jobs_per_user": 20}))]
pub struct GuildSettingsView {
    /// The most sampling steps a job may ask for, or null.
    #[schema(required = true, minimum = 1, maximum = 150)]
    pub max_steps: Option<u32>,
    /// The model ids jobs may use, or null for any.
    #[schema(required = true)]
    pub allowed_models: Option<Vec<String>>,
    /// Jobs per member per UTC day, or null for no cap.
    #[schema(required = true, minimum = 1, maximum = 10000)]
    pub daily_jobs_per_user: Option<u32>,
}

/// `PUT /api/internal/guilds/{guild_ref}/settings`: the new settings, replacing the old ones; a
/// setting left out or null leaves the matter to the plan.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"max_steps": 40, "allowed_models": ["sdxl", "flux-schnell"], "daily_jobs_per_user": 20}))]
pub struct GuildSettingsInput {
    /// The most sampling steps a job may ask for, 1 to 150.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 150)]
    pub max_steps: Option<u32>,
    /// The model ids jobs may use, each one of the catalog (an empty list allows any).
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Jobs per member per UTC day, 1 to 10000.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub daily_jobs_per_user: Option<u32>,
}
