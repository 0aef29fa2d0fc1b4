//! The `models` family: `GET /api/v1/models?capability=`.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::Capability;

use super::{ApiError, V1State, protected, schemas};
use crate::openapi::{ErrorBody, V1Refusals};

/// The models family's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list), components(schemas(schemas::ModelList, schemas::ModelView)))]
pub struct ModelsApi;

/// The family's routes.
pub fn router(state: V1State) -> Router {
    protected(Router::new().route("/api/v1/models", get(list)), state)
}

#[derive(Deserialize)]
struct Filter {
    capability: Option<String>,
}

/// The model catalog, optionally of one capability.
#[utoipa::path(
    get,
    path = "/api/v1/models",
    tag = "models",
    operation_id = "list_models",
    params(("capability" = Option<schemas::CapabilityName>, Query, description = "Only models of this capability.")),
    security(("bearer" = []), ("api_key_header" = [])),
    responses(
        (status = 200, description = "The models.", body = schemas::ModelList),
        (status = 400, description = "`INVALID_PARAMS`: unknown capability.", body = ErrorBody),
        V1Refusals,
    )
)]
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
