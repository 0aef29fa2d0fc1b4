//! The canary: a job of the diagnostic `canary` model (no weights, cost 0) that the sweep creates
//! on a schedule under a system account, so that the whole pipeline (API, queue, worker, ComfyUI,
//! blob store) is checked end to end without a GPU model. Its newest outcome is the pipeline's
//! health, which `/health` reports.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tessera_core::JobStatus;
use tessera_store::accounts::{TenantRecord, UserRecord};
use tessera_store::jobs::JobRecord;

use super::jobs::{Idempotency, Submission};
use super::{ApiError, V1State};

/// The system account that owns canary jobs (a chat-style user of its own, on the Free plan).
pub const CANARY_USER: &str = "tessera:canary";
/// How long a canary may wait or run before the pipeline counts as unhealthy.
pub const STUCK_SECONDS: i64 = 120;

/// The pipeline's health, from the newest canary job that says something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PipelineHealth {
    /// `healthy` (the canary completed), `unhealthy` (it failed, or waited or ran past
    /// [`STUCK_SECONDS`]), `pending` (the first canary is on its way) or `unknown` (none yet).
    pub status: &'static str,
    /// The canary job.
    pub job_id: Option<String>,
    /// Its status.
    pub job_status: Option<JobStatus>,
    /// Seconds from its creation to its end (or until now, while it waits or runs).
    pub seconds: Option<i64>,
    /// Why it is unhealthy, in plain words.
    pub reason: Option<String>,
}

/// Creates a canary job when the newest is final (or there is none) and at least `every` old;
/// answers the pipeline's health. Two sweeps at once create one job: the job's idempotency key
/// is the schedule's slot.
pub async fn run(state: &V1State, every: Duration) -> Result<PipelineHealth, ApiError> {
    let canaries = Canaries::of(state, every).await?;
    let due = canaries
        .recent
        .first()
        .is_none_or(|newest| newest.status.is_final() && canaries.now - newest.created_at >= canaries.every_seconds);
    if due {
        let submission = Submission {
            tenant: &canaries.tenant,
            user_id: canaries.user.id.clone(),
            origin: None,
            idempotency: Some(Idempotency {
                key: format!("canary-{}", canaries.now / canaries.every_seconds),
                request_hash: "canary".into(),
            }),
            cap: None,
        };
        if submission.replay(state).await?.is_none() {
            let body = json!({"capability": "image", "params": {"prompt": "canary", "model": "canary", "resolution": "64x64"}});
            let created = submission.submit(state, &body).await?;
            tracing::info!(job = %created.body["job_id"], "canary job created");
        }
        return health(state, every).await;
    }
    Ok(verdict(&canaries.recent, canaries.now))
}

/// The pipeline's health from the canary jobs of the last while, without creating one.
pub async fn health(state: &V1State, every: Duration) -> Result<PipelineHealth, ApiError> {
    let canaries = Canaries::of(state, every).await?;
    Ok(verdict(&canaries.recent, canaries.now))
}

/// The system account's recent canary jobs, newest first.
struct Canaries {
    user: UserRecord,
    tenant: TenantRecord,
    recent: Vec<JobRecord>,
    now: i64,
    every_seconds: i64,
}

impl Canaries {
    async fn of(state: &V1State, every: Duration) -> Result<Self, ApiError> {
        let every_seconds = i64::try_from(every.as_secs().max(1)).unwrap_or(i64::MAX / 4);
        let (user, tenant) = state.auth.chat_account(CANARY_USER).await?;
        let now = state.now();
        let since = now
            .saturating_sub(every_seconds.saturating_mul(2))
            .saturating_sub(STUCK_SECONDS);
        let recent = state.jobs.list_for(&tenant.id, Some(since)).await?;
        Ok(Self {
            user,
            tenant,
            recent,
            now,
            every_seconds,
        })
    }
}

/// What the canary jobs (newest first) say: a canary still young on its way defers to the one
/// before it.
fn verdict(recent: &[JobRecord], now: i64) -> PipelineHealth {
    let telling = recent
        .iter()
        .find(|job| job.status.is_final() || now - job.created_at > STUCK_SECONDS);
    let Some(job) = telling else {
        let status = if recent.is_empty() { "unknown" } else { "pending" };
        return PipelineHealth {
            status,
            job_id: recent.first().map(|job| job.job_id.to_string()),
            job_status: recent.first().map(|job| job.status),
            seconds: recent.first().map(|job| now - job.created_at),
            reason: None,
        };
    };
    let ended = job.completed_at.or(job.failed_at).or(job.cancelled_at).unwrap_or(now);
    let (status, reason) = match job.status {
        JobStatus::Completed => ("healthy", None),
        JobStatus::Failed => (
            "unhealthy",
            Some(match &job.error {
                Some(error) => format!("the canary failed: {} ({})", error.message, error.code),
                None => "the canary failed".to_owned(),
            }),
        ),
        JobStatus::Cancelled => ("unknown", Some("the canary was cancelled".to_owned())),
        JobStatus::Queued => (
            "unhealthy",
            Some(format!(
                "the canary has waited {} s in the queue: no worker took it (is a worker running, and its ComfyUI?)",
                now - job.created_at
            )),
        ),
        JobStatus::Running => (
            "unhealthy",
            Some(format!(
                "the canary has been running for {} s",
                now - job.started_at.unwrap_or(job.created_at)
            )),
        ),
    };
    PipelineHealth {
        status,
        job_id: Some(job.job_id.to_string()),
        job_status: Some(job.status),
        seconds: Some(ended - job.created_at),
        reason,
    }
}
