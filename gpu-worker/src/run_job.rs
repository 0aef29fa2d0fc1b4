//! `POST /worker/run_job`: runs one job on this worker's ComfyUI at once, bypassing the queue and
//! the API, and answers when it has ended, in the spec's shape. It is a diagnostic: it checks a
//! worker, its workflows and its ComfyUI end to end, and its outputs are stored in the blob store
//! under `outputs/{job_id}/` before it answers (an image's thumbnail, `thumb_<n>.jpg`, follows
//! right after the answer, so that storing adds as little as it can to the run). It takes the worker's service key as a bearer token,
//! compared in constant time. Runs may overlap: ComfyUI queues their prompts.
//!
//! Answers: 200 `completed`; 400 `INVALID_PARAMS` (a bad body or parameter, naming the field, or
//! a workflow ComfyUI refused); 401 `UNAUTHORIZED`; 404 `MODEL_NOT_FOUND` (no such workflow, or a
//! missing checkpoint); 500 `WORKER_TIMEOUT`, `OOM` or `EXECUTION_ERROR`; 503
//! `COMFYUI_UNAVAILABLE`. Every failure is `{"status": "failed", "job_id", "error": {"code",
//! "message", "details"}}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tessera_store::BlobStore;

use crate::api::{Artifact, JobFailure};
use crate::client::ComfyClient;
use crate::execution::{Execution, Thumbnails, execute, failure, store_outputs};
use crate::metrics::Outcome;
use crate::workflow::{RunParams, Workflows};

/// A run's time limit when the request names none (the spec's example).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 300;
/// The longest prompt taken, in characters.
const MAX_PROMPT_CHARS: usize = 10_000;

/// What `POST /worker/run_job` runs with.
#[derive(Clone)]
pub struct RunJobState {
    /// ComfyUI.
    pub comfy: ComfyClient,
    /// Where outputs go.
    pub blobs: Arc<dyn BlobStore>,
    /// The workflows.
    pub workflows: Workflows,
    /// The bearer token callers must present: the worker's service key.
    pub service_key: Arc<str>,
    /// The worker's cap on any run's time.
    pub max_job_time: Option<Duration>,
}

/// The spec's request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunJobRequest {
    job_id: String,
    #[serde(default)]
    engine: Option<String>,
    workflow_id: String,
    #[serde(default)]
    model_id: Option<String>,
    params: RunJobParams,
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunJobParams {
    prompt: String,
    #[serde(default)]
    negative_prompt: Option<String>,
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
    #[serde(default)]
    steps: Option<u32>,
    #[serde(default)]
    cfg_scale: Option<f64>,
    #[serde(default)]
    seed: Option<u64>,
}

/// The route.
pub fn router(state: RunJobState) -> axum::Router {
    axum::Router::new()
        .route("/worker/run_job", post(run_job))
        .with_state(state)
}

type Answer = (StatusCode, Json<Value>);

async fn run_job(State(state): State<RunJobState>, headers: HeaderMap, body: Bytes) -> Answer {
    if !authorized(&headers, &state.service_key) {
        let refused = failure(
            "UNAUTHORIZED",
            "a bearer token with the worker's service key is required",
            String::new(),
            false,
        );
        return failed(StatusCode::UNAUTHORIZED, None, &refused, None);
    }
    let request = match parse(&body) {
        Ok(request) => request,
        Err(invalid) => return failed(StatusCode::BAD_REQUEST, None, &invalid, None),
    };
    let job_id = request.job_id.clone();
    tracing::info!(job = %job_id, workflow = %request.workflow_id, model = ?request.model_id, "run_job");
    let workflow = match state.workflows.get(&request.workflow_id) {
        Ok(workflow) => workflow,
        Err(error) => {
            let missing = failure(
                "MODEL_NOT_FOUND",
                "this worker has no such workflow",
                error.to_string(),
                false,
            );
            return failed(StatusCode::NOT_FOUND, Some(&job_id), &missing, None);
        }
    };
    let params = &request.params;
    let graph = workflow.apply(&RunParams {
        prompt: params.prompt.clone(),
        negative_prompt: params.negative_prompt.clone(),
        width: params.width,
        height: params.height,
        steps: params.steps,
        cfg_scale: params.cfg_scale,
        seed: params.seed.unwrap_or_else(rand::random),
        checkpoint: None,
    });
    let allowed = Duration::from_secs(request.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS));
    let allowed = state.max_job_time.map_or(allowed, |cap| cap.min(allowed));
    let started = Instant::now();
    let in_progress = state.comfy.metrics().job_started();
    let ran = execute(&state.comfy, &graph, workflow.node_count(), allowed, |_| async { true }).await;
    let ran_for = started.elapsed();
    let outcome = match ran {
        Execution::Succeeded(files) => {
            store_outputs(&state.comfy, &state.blobs, &job_id, &files, Thumbnails::Afterwards)
                .await
                .map_err(|error| failure("EXECUTION_ERROR", "an output could not be stored", error, true))
        }
        Execution::Failed(failure) => Err(failure),
        Execution::Stopped => Err(failure("EXECUTION_ERROR", "the run was stopped", String::new(), true)),
        Execution::Unavailable(reason) => Err(failure("COMFYUI_UNAVAILABLE", "ComfyUI is not answering", reason, true)),
    };
    in_progress.finish(match &outcome {
        Ok(_) => Outcome::Completed,
        Err(failure) if failure.code == "COMFYUI_UNAVAILABLE" => Outcome::Released,
        Err(_) => Outcome::Failed,
    });
    tracing::debug!(job = %job_id, ran_ms = ran_for.as_secs_f64() * 1e3, stored_ms = (started.elapsed() - ran_for).as_secs_f64() * 1e3, "run_job timings");
    let elapsed = Some(started.elapsed());
    match outcome {
        Ok(artifacts) => (StatusCode::OK, Json(completed(&job_id, &artifacts, started.elapsed()))),
        Err(failure) => failed(status_of(failure.code), Some(&job_id), &failure, elapsed),
    }
}

fn authorized(headers: &HeaderMap, service_key: &str) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    !service_key.is_empty() && bool::from(presented.as_bytes().ct_eq(service_key.as_bytes()))
}

/// The body, checked; an `INVALID_PARAMS` failure naming the field otherwise.
fn parse(body: &[u8]) -> Result<RunJobRequest, JobFailure> {
    let invalid = |field: &str, reason: String| {
        failure(
            "INVALID_PARAMS",
            &format!("invalid {field}"),
            json!({ "field": field, "reason": reason }).to_string(),
            false,
        )
    };
    let request: RunJobRequest = serde_json::from_slice(body).map_err(|error| invalid("body", error.to_string()))?;
    let job_id_ok = (1..=64).contains(&request.job_id.len())
        && request
            .job_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if !job_id_ok {
        return Err(invalid("job_id", "1 to 64 letters, digits, '_' or '-'".into()));
    }
    if request.engine.as_deref().is_some_and(|engine| engine != "comfyui") {
        return Err(invalid("engine", "this worker runs 'comfyui'".into()));
    }
    let params = &request.params;
    if params.prompt.chars().count() > MAX_PROMPT_CHARS
        || params
            .negative_prompt
            .as_ref()
            .is_some_and(|text| text.chars().count() > MAX_PROMPT_CHARS)
    {
        return Err(invalid(
            "params.prompt",
            format!("at most {MAX_PROMPT_CHARS} characters"),
        ));
    }
    for (field, side) in [("params.width", params.width), ("params.height", params.height)] {
        if side.is_some_and(|side| !(8..=8192).contains(&side) || side % 8 != 0) {
            return Err(invalid(field, "a multiple of 8 from 8 to 8192".into()));
        }
    }
    if params.steps.is_some_and(|steps| !(1..=150).contains(&steps)) {
        return Err(invalid("params.steps", "1 to 150".into()));
    }
    if params.cfg_scale.is_some_and(|cfg| !(0.0..=30.0).contains(&cfg)) {
        return Err(invalid("params.cfg_scale", "0 to 30".into()));
    }
    if request
        .timeout_seconds
        .is_some_and(|seconds| !(1..=86_400).contains(&seconds))
    {
        return Err(invalid("timeout_seconds", "1 to 86400".into()));
    }
    Ok(request)
}

fn completed(job_id: &str, artifacts: &[Artifact], elapsed: Duration) -> Value {
    let artifacts: Vec<Value> = artifacts
        .iter()
        .map(|artifact| {
            json!({
                "type": artifact.kind,
                "path": format!("/{}", artifact.key),
                "format": artifact.format,
                "width": artifact.width,
                "height": artifact.height,
                "file_size_bytes": artifact.file_size_bytes,
            })
        })
        .collect();
    json!({
        "status": "completed",
        "job_id": job_id,
        "execution_time_seconds": seconds(elapsed),
        "artifacts": artifacts,
    })
}

fn failed(status: StatusCode, job_id: Option<&str>, failure: &JobFailure, elapsed: Option<Duration>) -> Answer {
    let mut body = json!({
        "status": "failed",
        "job_id": job_id,
        "error": { "code": failure.code, "message": failure.message, "details": failure.details },
    });
    if let Some(elapsed) = elapsed {
        body["execution_time_seconds"] = json!(seconds(elapsed));
    }
    (status, Json(body))
}

/// The spec's status for an error code.
fn status_of(code: &str) -> StatusCode {
    match code {
        "INVALID_PARAMS" => StatusCode::BAD_REQUEST,
        "MODEL_NOT_FOUND" => StatusCode::NOT_FOUND,
        "COMFYUI_UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Seconds, to the millisecond.
fn seconds(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0).round() / 1000.0
}
