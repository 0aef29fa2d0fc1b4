//! The `models` family: `GET /api/v1/models?capability=`.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::Capability;

use super::{ApiError, V1State, protected};

/// The family's routes.
pub fn router(state: V1State) -> Router {
    protected(Router::new().route("/api/v1/models", get(list)), state)
}

#[derive(Deserialize)]
struct Filter {
    capability: Option<String>,
}

async fn list(
    State(state): State<V1State>,
    filter: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(filter) = filter.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let capability = filter
        .capability
        .map(|raw| {
            raw.parse::<Capability>()
                .map_err(|error| ApiError::invalid("capability", error.to_string()))
        })
        .transpose()?;
    Ok(Json(json!({ "models": state.catalog.models_for(capability) })))
}
