//! The generation API's error object (spec section 7):
//! `{"error": {"code", "message", "details", "retry_after"?}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tessera_core::request::RequestError;
use tessera_store::StoreError;

use crate::auth::AuthError;

/// An error of `/api/v1`, with its status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The spec's code, e.g. `INVALID_PARAMS`.
    pub code: &'static str,
    /// One sentence.
    pub message: String,
    /// More: the field at fault, or the limit.
    pub details: Value,
    /// Seconds to wait, for 429.
    pub retry_after: Option<i64>,
}

impl ApiError {
    /// An error without `retry_after`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>, details: impl Into<Value>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: details.into(),
            retry_after: None,
        }
    }

    /// 400 `INVALID_PARAMS` about `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMS",
            "Invalid parameters",
            json!({ "field": field, "reason": message }),
        )
    }

    /// 404 `NOT_FOUND` for a job (also for another tenant's).
    pub fn job_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "Job not found", Value::Null)
    }

    /// 429 `RATE_LIMITED` with `retry_after`.
    pub fn rate_limited(message: &str, details: String, retry_after: i64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", message, details)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message, "details": self.details });
        if let Some(retry_after) = self.retry_after {
            error["retry_after"] = json!(retry_after);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(retry_after) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let code = match error.status() {
            StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
            StatusCode::FORBIDDEN => "FORBIDDEN",
            StatusCode::BAD_REQUEST => "INVALID_PARAMS",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::CONFLICT => "CONFLICT",
            StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
            StatusCode::SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
            _ => "INTERNAL_ERROR",
        };
        let status = error.status();
        let mut api = Self::new(status, code, error.public_message(), Value::Null);
        if let AuthError::Locked { retry_after } = error {
            api.retry_after = Some(retry_after);
        }
        if status == StatusCode::UNAUTHORIZED {
            api.details = json!("send Authorization: Bearer <API key or access token>");
        }
        api
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        AuthError::from(error).into()
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Invalid { field, message } => Self::invalid(&field, message),
            RequestError::ModelNotFound(model) => Self::new(
                StatusCode::NOT_FOUND,
                "MODEL_NOT_FOUND",
                "Requested model unavailable",
                json!({ "field": "params.model", "model": model }),
            ),
            not_on_plan @ RequestError::NotOnPlan { .. } => Self::new(
                StatusCode::FORBIDDEN,
                "MODEL_NOT_ON_PLAN",
                not_on_plan.to_string(),
                json!({ "field": "params.model" }),
            ),
            RequestError::Prompt(message) => Self::new(
                StatusCode::BAD_REQUEST,
                "INVALID_PROMPT",
                "Prompt violates content policy",
                json!({ "field": "params.prompt", "reason": message }),
            ),
        }
    }
}

/// Renders an auth refusal in the v1 format (for the shared auth layer).
pub fn v1_style(error: AuthError) -> Response {
    ApiError::from(error).into_response()
}

/// Renders an auth refusal of the internal family: the v1 format, with a hint that names the
/// credential those routes take.
pub fn service_style(error: AuthError) -> Response {
    let mut api = ApiError::from(error);
    if api.status == StatusCode::UNAUTHORIZED {
        api.details = json!("send Authorization: Bearer <service key>");
    }
    api.into_response()
}
