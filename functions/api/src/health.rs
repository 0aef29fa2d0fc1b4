//! `GET /health`: whether the service and each of its storage backends answer, plus what any
//! extra check says (the pipeline's canary, the dev server's in-process worker).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Map, Value};
use tessera_store::{Ports, StoreResult};

use crate::v1::V1State;

/// How long one backend may take to answer before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The health report: `status` is `ok` when every backend answered, else `degraded`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"status": "ok", "backend": "embedded", "checks": {"items": "ok", "queue": "ok", "blobs": "ok"}}))]
pub struct HealthReport {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// Which backend serves the ports (`embedded` or `aws`).
    pub backend: &'static str,
    /// One entry per port: `ok`, or the error it answered.
    pub checks: Checks,
    /// What each extra check says, under its name; they inform, and do not change `status`.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extras: Map<String, Value>,
}

/// A check beyond the storage backends, reported under its own name.
pub trait ExtraCheck: Send + Sync {
    /// The field it fills in the report.
    fn name(&self) -> &'static str;
    /// What it says now.
    fn check(&self) -> BoxFuture<'_, Value>;
}

/// The pipeline's health from the canary jobs the sweep creates (when the canary is on).
pub struct PipelineCheck(pub V1State);

impl ExtraCheck for PipelineCheck {
    fn name(&self) -> &'static str {
        "pipeline"
    }

    fn check(&self) -> BoxFuture<'_, Value> {
        Box::pin(async move {
            let Some(every) = self.0.canary_every else {
                return Value::from("off (set TESSERA_CANARY_SECONDS)");
            };
            match crate::v1::canary::health(&self.0, every).await {
                Ok(health) => serde_json::to_value(health).unwrap_or(Value::Null),
                Err(error) => Value::from(format!("error: {error:?}")),
            }
        })
    }
}

#[derive(Clone)]
struct HealthState {
    ports: Ports,
    extras: Arc<Vec<Box<dyn ExtraCheck>>>,
}

/// The state of each port.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    router_with(ports, Vec::new())
}

/// The health route, over the ports and the extra checks.
pub fn router_with(ports: Ports, extras: Vec<Box<dyn ExtraCheck>>) -> Router {
    Router::new().route("/health", get(health)).with_state(HealthState {
        ports,
        extras: Arc::new(extras),
    })
}

/// The health route's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health), components(schemas(HealthReport, Checks)))]
pub struct HealthApi;

/// Whether the server and each of its stores answer.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    operation_id = "health",
    responses(
        (status = 200, description = "Every store answered.", body = HealthReport),
        (status = 503, description = "A store did not answer; `checks` says which.", body = HealthReport),
    )
)]
async fn health(State(HealthState { ports, extras }): State<HealthState>) -> (StatusCode, Json<HealthReport>) {
    let (items, queue, blobs) = tokio::join!(
        check(ports.items.ping()),
        check(ports.queue.ping()),
        check(ports.blobs.ping()),
    );
    let healthy = [&items, &queue, &blobs].iter().all(|state| *state == "ok");
    let said = futures::future::join_all(extras.iter().map(|extra| async move {
        let said = tokio::time::timeout(CHECK_TIMEOUT, extra.check()).await;
        let said = said.unwrap_or_else(|_| Value::from(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())));
        (extra.name().to_owned(), said)
    }))
    .await;
    let report = HealthReport {
        status: if healthy { "ok" } else { "degraded" },
        backend: ports.backend,
        checks: Checks { items, queue, blobs },
        extras: said.into_iter().collect(),
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
