//! The worker's own HTTP endpoints, in the spec's shapes: `GET /worker/health` (status, current
//! job, GPU memory from ComfyUI's `/system_stats`, uptime) and `GET /worker/capabilities`
//! (engine, version, the catalog models it has workflows for, hardware).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tessera_core::{Capability, Catalog};

use crate::runner::ComfyClient;

/// What the daemon is doing, shared with the endpoints.
#[derive(Debug, Clone, Default)]
pub struct WorkerStatus(Arc<Mutex<Option<String>>>);

impl WorkerStatus {
    /// Records the job in hand (`None` when idle).
    pub fn set_current_job(&self, job: Option<String>) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = job;
    }

    /// The job in hand.
    pub fn current_job(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
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

/// `/worker/health` and `/worker/capabilities`.
pub fn router(info: StatusInfo) -> Router {
    Router::new()
        .route("/worker/health", get(health))
        .route("/worker/capabilities", get(capabilities))
        .with_state(info)
}

fn first_device(stats: Option<&Value>) -> Value {
    stats
        .and_then(|stats| stats["devices"].get(0).cloned())
        .unwrap_or(Value::Null)
}

fn megabytes(bytes: &Value) -> Option<u64> {
    bytes.as_u64().map(|bytes| bytes / (1024 * 1024))
}

async fn health(State(info): State<StatusInfo>) -> (StatusCode, Json<Value>) {
    let stats = info.comfy.system_stats().await;
    let device = first_device(stats.as_ref());
    let total = megabytes(&device["vram_total"]);
    let used = total
        .zip(megabytes(&device["vram_free"]))
        .map(|(total, free)| total.saturating_sub(free));
    let healthy = stats.is_some();
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "worker_id": info.worker_id,
        "capabilities": info.capabilities,
        "loaded_models": [],
        "current_job": info.status.current_job(),
        "gpu_status": {
            "temperature": null,
            "utilization": null,
            "memory_used_mb": used,
            "memory_total_mb": total,
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
    let device = first_device(stats.as_ref());
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
            "gpu_name": device["name"],
            "vram_gb": megabytes(&device["vram_total"]).map(|mb| mb / 1024),
            "cuda_version": null,
        },
    }))
}
