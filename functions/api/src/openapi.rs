//! The OpenAPI 3.1 document of every family, generated from the code: each family declares its
//! operations next to its handlers (`#[utoipa::path]`) and its shapes as schemas; this module
//! merges them, adds the credentials, and names the two error styles.

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{self, InfoBuilder, OpenApiBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// The security scheme of a user's credential: `Authorization: Bearer` with an access token
/// (from `/api/auth/login`) or an API key.
pub const BEARER: &str = "bearer";
/// The security scheme of an API key sent in `X-Tesserra-Api-Key`.
pub const API_KEY_HEADER: &str = "api_key_header";
/// The security scheme of the internal family: `Authorization: Bearer <service key>`.
pub const SERVICE_KEY: &str = "service_key";

/// The platform families' error body (`/api/auth/*`, `/api/api-keys`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"detail": "invalid email or password"}))]
pub struct Problem {
    /// What went wrong, in one sentence.
    pub detail: String,
}

/// The generation API's error body (`/api/v1/*`, `/api/internal/*`), spec section 7.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {
    "code": "RATE_LIMITED",
    "message": "Rate limit exceeded",
    "details": "You can make 10 requests per minute. Retry after 45 seconds.",
    "retry_after": 45
}}))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The error object inside [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// A stable code: `INVALID_PARAMS`, `INVALID_PROMPT`, `UNAUTHORIZED`, `FORBIDDEN`,
    /// `NOT_FOUND`, `MODEL_NOT_FOUND`, `CONFLICT`, `QUOTA_EXCEEDED`, `RATE_LIMITED`,
    /// `DAILY_CAP_REACHED`, `PAYLOAD_TOO_LARGE`, `SERVICE_UNAVAILABLE`, `INTERNAL_ERROR`, ...
    pub code: String,
    /// One sentence for people.
    pub message: String,
    /// More: an object naming the field at fault and why, a sentence (rate limits), or null.
    pub details: Value,
    /// Seconds to wait before trying again (429 only).
    pub retry_after: Option<i64>,
}

/// The spec's pagination object of a list.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"total": 145, "limit": 20, "offset": 0, "has_more": true}))]
pub struct Pagination {
    /// How many rows match, over all pages.
    pub total: u64,
    /// The page size asked for.
    pub limit: u64,
    /// Rows skipped.
    pub offset: u64,
    /// Whether another page follows.
    pub has_more: bool,
}

/// The refusals every `/api/v1` route can answer, from the credential and plan layers.
#[derive(utoipa::IntoResponses)]
pub enum V1Refusals {
    /// No credential, or one that is not valid (`UNAUTHORIZED`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The credential lacks the scope, or the plan the feature (`FORBIDDEN`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Over the plan's requests per minute (`RATE_LIMITED`, with `retry_after` and `Retry-After`).
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// A store did not answer; try again.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Adds the security schemes.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, document: &mut openapi::OpenApi) {
        let components = document.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An access token from /api/auth/login, or an API key (tsk_...)."))
            .build();
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
        components.add_security_scheme(
            API_KEY_HEADER,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Tesserra-Api-Key",
                "An API key, as an alternative to Authorization: Bearer.",
            ))),
        );
        let service = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A service key (workers and bots), made by `tessera admin create-service-key`.",
            ))
            .build();
        components.add_security_scheme(SERVICE_KEY, SecurityScheme::Http(service));
    }
}

/// The shared parts: the error styles, pagination and credentials.
#[derive(OpenApi)]
#[openapi(
    components(schemas(Problem, ErrorBody, ErrorObject, Pagination)),
    modifiers(&Credentials),
    tags(
        (name = "auth", description = "Sign-up, login, tokens, the signed-in account."),
        (name = "api-keys", description = "The tenant's API keys."),
        (name = "jobs", description = "Generation jobs: create, follow, list, cancel."),
        (name = "users", description = "The caller's plan, today's usage and its history."),
        (name = "models", description = "The model catalog."),
        (name = "webhooks", description = "The webhook signing secret and the delivery log."),
        (name = "internal", description = "For GPU workers and chat bots; a service key only."),
        (name = "health", description = "Liveness of the server and its stores."),
    )
)]
struct Shared;

/// The whole document: every operation of every family.
pub fn document() -> openapi::OpenApi {
    let info = InfoBuilder::new()
        .title("Tessera API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "AI generation jobs on GPUs: the generation API (/api/v1), accounts and API keys \
             (/api/auth, /api/api-keys), and the internal API for workers and bots \
             (/api/internal). Errors come in two styles: {\"detail\"} on the platform families, \
             {\"error\": {code, message, details}} on the generation and internal APIs.",
        ))
        .build();
    let mut document = OpenApiBuilder::new().info(info).build();
    for part in [
        Shared::openapi(),
        crate::health::HealthApi::openapi(),
        crate::auth::routes::AuthApi::openapi(),
        crate::v1::jobs::JobsApi::openapi(),
        crate::v1::users::UsersApi::openapi(),
        crate::v1::models::ModelsApi::openapi(),
        crate::v1::webhooks::WebhooksApi::openapi(),
        crate::internal::InternalApi::openapi(),
        crate::internal::chat::ChatApi::openapi(),
    ] {
        document.merge(part);
    }
    name_the_catalog_models(&mut document);
    document
}

/// Lists the catalog's model ids as the values `params.model` takes (the catalog is this
/// deployment's, so the document is built when the server starts).
fn name_the_catalog_models(document: &mut openapi::OpenApi) {
    let ids: Vec<Value> = tessera_core::Catalog::active()
        .models
        .iter()
        .map(|model| Value::from(model.id.clone()))
        .collect();
    let Some(components) = document.components.as_mut() else {
        return;
    };
    let params = components.schemas.get_mut("JobParamsInput");
    if let Some(openapi::RefOr::T(openapi::schema::Schema::Object(params))) = params
        && let Some(openapi::RefOr::T(openapi::schema::Schema::Object(model))) = params.properties.get_mut("model")
    {
        model.enum_values = Some(ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_parameter_lists_the_catalog() {
        let document = serde_json::to_value(document()).expect("json");
        let model = &document["components"]["schemas"]["JobParamsInput"]["properties"]["model"];
        let ids: Vec<&str> = model["enum"]
            .as_array()
            .expect("enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(ids.contains(&"sdxl") && ids.contains(&"flux-schnell"), "{model}");
    }

    #[test]
    fn every_operation_has_an_id_a_tag_and_a_documented_error() {
        let document = document();
        let mut count = 0;
        for (path, item) in &document.paths.paths {
            for (method, operation) in operations(item) {
                count += 1;
                assert!(operation.operation_id.is_some(), "{method} {path} has no operationId");
                assert!(
                    operation.tags.as_ref().is_some_and(|tags| !tags.is_empty()),
                    "{method} {path} has no tag"
                );
                let codes: Vec<&String> = operation.responses.responses.keys().collect();
                assert!(
                    path == "/health" || codes.iter().any(|code| code.starts_with('4')),
                    "{method} {path} documents no client error: {codes:?}"
                );
            }
        }
        assert!(count >= 30, "only {count} operations");
    }

    fn operations(item: &openapi::PathItem) -> Vec<(&'static str, &openapi::path::Operation)> {
        [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ]
        .into_iter()
        .filter_map(|(method, operation)| operation.as_ref().map(|operation| (method, operation)))
        .collect()
    }
}
