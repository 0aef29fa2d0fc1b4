//! `GET /health`: whether the service and each of its storage backends answer.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tessera_store::{Ports, StoreResult};

/// How long one backend may take to answer before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The health report: `status` is `ok` when every backend answered, else `degraded`.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// Which backend serves the ports (`embedded` or `aws`).
    pub backend: &'static str,
    /// One entry per port: `ok`, or the error it answered.
    pub checks: Checks,
}

/// The state of each port.
#[derive(Debug, Serialize)]
pub struct Checks {
    /// The item store.
    pub items: String,
    /// The queues.
    pub queue: String,
    /// The blob store.
    pub blobs: String,
}

/// The health route, over the ports.
pub fn router(ports: Ports) -> Router {
    Router::new().route("/health", get(health)).with_state(ports)
}

async fn health(State(ports): State<Ports>) -> (StatusCode, Json<HealthReport>) {
    let (items, queue, blobs) = tokio::join!(
        check(ports.items.ping()),
        check(ports.queue.ping()),
        check(ports.blobs.ping()),
    );
    let healthy = [&items, &queue, &blobs].iter().all(|state| *state == "ok");
    let report = HealthReport {
        status: if healthy { "ok" } else { "degraded" },
        backend: ports.backend,
        checks: Checks { items, queue, blobs },
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

async fn check(ping: impl Future<Output = StoreResult<()>>) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check failed");
            format!("error: {error}")
        }
        Err(_) => format!("error: no answer within {} s", CHECK_TIMEOUT.as_secs()),
    }
}
