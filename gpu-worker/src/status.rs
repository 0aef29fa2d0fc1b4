//! The worker's own HTTP endpoints: `GET /worker/health` (status, current job, loaded models, GPU
//! temperature, utilisation and memory from NVML, or from ComfyUI's `/system_stats` without
//! NVML, uptime) and `GET /worker/capabilities` (engine, version, the catalog models it has
//! workflows for, hardware), in the spec's shapes; and `GET /metrics`, in the Prometheus
//! (OpenMetrics) text format.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tessera_core::{Capability, Catalog};

use crate::client::ComfyClient;
use crate::telemetry::{Gpu, GpuTelemetry};

/// How many recently run models a worker reports as loaded.
const LOADED_MODELS: usize = 3;

/// What the daemon is doing and what its GPU reads, shared with the endpoints.
#[derive(Debug, Clone)]
pub struct WorkerStatus {
    state: Arc<Mutex<Activity>>,
    gpu: Gpu,
}

#[derive(Debug, Default)]
struct Activity {
    current_job: Option<String>,
    recent_models: VecDeque<String>,
}

impl Default for WorkerStatus {
    fn default() -> Self {
        Self::with_gpu(Gpu::without_nvml())
    }
}

impl WorkerStatus {
    /// A status whose GPU readings come from `gpu` (NVML when it has it, else ComfyUI).
    pub fn with_gpu(gpu: Gpu) -> Self {
        Self {
            state: Arc::default(),
            gpu,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the job in hand (`None` when idle).
    pub fn set_current_job(&self, job: Option<String>) {
        self.state().current_job = job;
    }

    /// The job in hand.
    pub fn current_job(&self) -> Option<String> {
        self.state().current_job.clone()
    }

    /// Records that a job of `model_id` ran: ComfyUI keeps its weights loaded for the next one.
    pub fn ran_model(&self, model_id: &str) {
        let mut state = self.state();
        state.recent_models.retain(|model| model != model_id);
        state.recent_models.push_front(model_id.to_owned());
        state.recent_models.truncate(LOADED_MODELS);
    }

    /// The models run most recently, newest first: those ComfyUI most likely still holds.
    pub fn loaded_models(&self) -> Vec<String> {
        self.state().recent_models.iter().cloned().collect()
    }

    /// A reading of the GPU: NVML's, else what ComfyUI's `/system_stats` says.
    pub async fn gpu_sample(&self, system_stats: Option<&Value>) -> GpuTelemetry {
        let gpu = self.gpu.clone();
        let stats = system_stats.cloned();
        tokio::task::spawn_blocking(move || gpu.sample(stats.as_ref()))
            .await
            .unwrap_or_default()
    }
}

/// What the endpoints report.
#[derive(Clone)]
pub struct StatusInfo {
    /// The daemon's shared status.
    pub status: WorkerStatus,
    /// The worker's id.
    pub worker_id: String,
    /// What it serves.
    pub capabilities: Vec<Capability>,
    /// The workflows it has.
    pub workflow_ids: Vec<String>,
    /// ComfyUI.
    pub comfy: ComfyClient,
    /// When it started.
    pub started: Instant,
}

/// `/worker/health`, `/worker/capabilities` and `/metrics`.
pub fn router(info: StatusInfo) -> Router {
    Router::new()
        .route("/worker/health", get(health))
        .route("/worker/capabilities", get(capabilities))
        .route("/metrics", get(metrics))
        .with_state(info)
}

async fn health(State(info): State<StatusInfo>) -> (StatusCode, Json<Value>) {
    let stats = info.comfy.system_stats().await;
    let gpu = info.status.gpu_sample(stats.as_ref()).await;
    let healthy = stats.is_some();
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "worker_id": info.worker_id,
        "capabilities": info.capabilities,
        "loaded_models": info.status.loaded_models(),
        "current_job": info.status.current_job(),
        "gpu_status": {
            "temperature": gpu.temperature_c,
            "utilization": gpu.utilization_percent,
            "memory_used_mb": gpu.memory_used_mb,
            "memory_total_mb": gpu.memory_total_mb,
        },
        "uptime_seconds": info.started.elapsed().as_secs(),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn capabilities(State(info): State<StatusInfo>) -> Json<Value> {
    let stats = info.comfy.system_stats().await;
    let gpu = info.status.gpu_sample(stats.as_ref()).await;
    let models: Vec<Value> = Catalog::active()
        .models
        .iter()
        .filter(|model| {
            info.capabilities.contains(&model.capability) && info.workflow_ids.contains(&model.workflow_id())
        })
        .map(|model| {
            json!({
                "id": model.id,
                "name": model.name,
                "type": "checkpoint",
                "size_gb": null,
                "max_resolution": model.max_resolution,
            })
        })
        .collect();
    Json(json!({
        "worker_id": info.worker_id,
        "engine": "comfyui",
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": info.capabilities,
        "supported_models": models,
        "hardware": {
            "gpu_name": gpu.name,
            "vram_gb": gpu.memory_total_mb.map(|mb| mb / 1024),
            "cuda_version": gpu.cuda_version,
        },
    }))
}

async fn metrics(State(info): State<StatusInfo>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        info.comfy.metrics().render(),
    )
}
