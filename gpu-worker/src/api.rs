//! The worker's client of Tessera's internal API (`/api/internal/*`, service credential).

use serde::Deserialize;
use serde_json::{Value, json};

/// Why a call to the API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API was unreachable or answered 5xx: retry later.
    #[error("the API is unavailable: {0}")]
    Unavailable(String),
    /// The attempt is no longer the job's (409): interrupt and drop it.
    #[error("the job moved on (cancelled: {cancelled})")]
    Superseded {
        /// Whether the job was cancelled.
        cancelled: bool,
    },
    /// Any other refusal.
    #[error("the API refused: {0}")]
    Refused(String),
}

/// The job as a claim hands it over.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkOrder {
    /// The job.
    pub job_id: String,
    /// `sdxl-1.0`.
    pub model_id: String,
    /// The workflow to run, e.g. `txt2img_sdxl`.
    pub workflow_id: String,
    /// Its parameters.
    pub params: WorkParams,
    /// When to give up.
    pub timeout_seconds: u64,
}

/// A job's parameters, as the workflow bindings take them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkParams {
    /// The prompt.
    pub prompt: String,
    /// What to avoid.
    pub negative_prompt: Option<String>,
    /// Output width.
    pub width: Option<u32>,
    /// Output height.
    pub height: Option<u32>,
    /// Steps.
    pub steps: Option<u32>,
    /// Seed.
    pub seed: u64,
}

/// What a claim answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Run it, as this attempt.
    Run {
        /// The attempt number.
        attempt: u32,
        /// The job.
        order: WorkOrder,
    },
    /// Drop the message, for this reason.
    Drop(String),
}

/// One artifact, as `complete` records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Artifact {
    /// `artifact_...`.
    pub id: String,
    /// `image`, `video`, `audio`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Blob key.
    pub key: String,
    /// Thumbnail blob key.
    pub thumbnail_key: Option<String>,
    /// File format.
    pub format: String,
    /// Width, for images.
    pub width: Option<u32>,
    /// Height, for images.
    pub height: Option<u32>,
    /// Size in bytes.
    pub file_size_bytes: u64,
}

/// The internal API, as one worker calls it.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    key: String,
    /// This worker's id.
    pub worker_id: String,
}

impl ApiClient {
    /// A client of the API at `base` with a service key.
    pub fn new(base: &str, key: &str, worker_id: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            worker_id: worker_id.to_owned(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .map_err(|error| ApiError::Unavailable(error.to_string()))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        match status.as_u16() {
            200..=299 => Ok(answer),
            409 => Err(ApiError::Superseded {
                cancelled: answer["cancelled"] == true,
            }),
            500..=599 => Err(ApiError::Unavailable(answer.to_string())),
            _ => Err(ApiError::Refused(answer.to_string())),
        }
    }

    /// Claims a job.
    pub async fn claim(&self, job_id: &str) -> Result<Claim, ApiError> {
        let answer = self
            .post(
                &format!("/api/internal/jobs/{job_id}/claim"),
                json!({ "worker_id": self.worker_id }),
            )
            .await?;
        if answer["action"] == "run" {
            let order =
                serde_json::from_value(answer["job"].clone()).map_err(|error| ApiError::Refused(error.to_string()))?;
            let attempt = answer["attempt"].as_u64().unwrap_or(1) as u32;
            return Ok(Claim::Run { attempt, order });
        }
        Ok(Claim::Drop(answer["reason"].as_str().unwrap_or("unknown").to_owned()))
    }

    /// Reports progress; `Superseded` when the job was cancelled or taken over.
    pub async fn progress(&self, job_id: &str, attempt: u32, percent: u8) -> Result<(), ApiError> {
        let body = json!({ "worker_id": self.worker_id, "attempt": attempt, "percent": percent });
        self.post(&format!("/api/internal/jobs/{job_id}/progress"), body)
            .await
            .map(drop)
    }

    /// Completes the job with its artifacts.
    pub async fn complete(&self, job_id: &str, attempt: u32, artifacts: &[Artifact]) -> Result<(), ApiError> {
        let body = json!({ "worker_id": self.worker_id, "attempt": attempt, "artifacts": artifacts });
        self.post(&format!("/api/internal/jobs/{job_id}/complete"), body)
            .await
            .map(drop)
    }

    /// Fails the job.
    pub async fn fail(&self, job_id: &str, attempt: u32, failure: &JobFailure) -> Result<(), ApiError> {
        let body = json!({
            "worker_id": self.worker_id,
            "attempt": attempt,
            "code": failure.code,
            "message": failure.message,
            "details": failure.details,
            "retryable": failure.retryable,
        });
        self.post(&format!("/api/internal/jobs/{job_id}/fail"), body)
            .await
            .map(drop)
    }

    /// Gives the job back unfinished: it is queued again, and this attempt is not counted.
    pub async fn release(&self, job_id: &str, attempt: u32, reason: &str) -> Result<(), ApiError> {
        let body = json!({ "worker_id": self.worker_id, "attempt": attempt, "reason": reason });
        self.post(&format!("/api/internal/jobs/{job_id}/release"), body)
            .await
            .map(drop)
    }

    /// Sends a heartbeat.
    pub async fn heartbeat(&self, body: Value) -> Result<(), ApiError> {
        self.post("/api/internal/heartbeat", body).await.map(drop)
    }
}

/// Why a job failed, as the API records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// `INVALID_PARAMS`, `MODEL_NOT_FOUND`, `OOM`, `WORKER_TIMEOUT`, `EXECUTION_ERROR`.
    pub code: &'static str,
    /// One sentence.
    pub message: String,
    /// More.
    pub details: String,
    /// Whether running it again may succeed.
    pub retryable: bool,
}
