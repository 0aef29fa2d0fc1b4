//! The one auth layer every family uses: it reads the credential (`Authorization: Bearer` or
//! `X-Tesserra-Api-Key`), verifies it, and puts the typed [`Principal`] in the request's
//! extensions; and the rate-limit layer that counts per client IP or per principal.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_core::Principal;

use super::error::AuthError;
use super::service::{Accepts, AuthService};
use crate::client_ip::{client_ip, rate_subject};
use crate::problem::Problem;
use crate::rate_limit::{Decision, Rule};

/// The header the platform families accept API keys in (spelled as in the spec).
pub const API_KEY_HEADER: &str = "x-tesserra-api-key";

/// How a family renders an auth refusal in its own error format.
pub type RenderAuthError = fn(AuthError) -> Response;

/// Renders in the platform style, `{"detail": ...}`.
pub fn platform_style(error: AuthError) -> Response {
    error.into_response()
}

/// State of the auth layer: whom it accepts and how it answers a refusal.
#[derive(Clone)]
pub struct Guard {
    /// The service that verifies credentials.
    pub service: AuthService,
    /// Which kind of credential the routes take.
    pub accepts: Accepts,
    /// The family's error format.
    pub render: RenderAuthError,
}

/// Middleware: authenticates the request or answers 401 in the family's format.
pub async fn authenticate(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let Some(credential) = credential(request.headers(), guard.accepts) else {
        let missing = AuthError::Unauthenticated("missing credential: send Authorization: Bearer <token or API key>");
        return (guard.render)(missing);
    };
    match guard.service.authenticate(&credential, guard.accepts).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => (guard.render)(error),
    }
}

fn credential(headers: &HeaderMap, accepts: Accepts) -> Option<String> {
    let bearer = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        });
    let api_key = || {
        (accepts == Accepts::Users)
            .then(|| {
                headers
                    .get(API_KEY_HEADER)?
                    .to_str()
                    .ok()
                    .map(|key| key.trim().to_owned())
            })
            .flatten()
    };
    bearer.or_else(api_key).filter(|credential| !credential.is_empty())
}

/// What a rate limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitBy {
    /// The client's IP address (an IPv6 one by its /64 network: [`rate_subject`]).
    Ip,
    /// The authenticated principal (run inside the auth layer).
    Principal,
}

/// State of a rate-limit layer.
#[derive(Clone)]
pub struct Limit {
    /// The service whose limiter counts.
    pub service: AuthService,
    /// The rule.
    pub rule: Rule,
    /// What it counts by.
    pub by: LimitBy,
}

/// Middleware: counts the request, answers 429 with `Retry-After` over the limit, and adds the
/// `X-RateLimit-*` headers to every answer.
pub async fn rate_limit(State(limit): State<Limit>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let subject = match limit.by {
        LimitBy::Ip => client_ip(&parts, limit.service.config().trust_forwarded_for)
            .map_or_else(|| "unknown".to_owned(), rate_subject),
        LimitBy::Principal => parts
            .extensions
            .get::<Principal>()
            .map_or_else(|| "anonymous".to_owned(), Principal::rate_subject),
    };
    let decision = match limit.service.limiter().hit(limit.rule, &subject).await {
        Ok(decision) => decision,
        Err(error) => {
            tracing::error!(rule = limit.rule.name, %error, "rate limiter unavailable: letting the request through");
            return next.run(Request::from_parts(parts, body)).await;
        }
    };
    let mut response = if decision.allowed {
        next.run(Request::from_parts(parts, body)).await
    } else {
        refusal(limit.rule, &decision)
    };
    decision.write_headers(response.headers_mut());
    response
}

fn refusal(rule: Rule, decision: &Decision) -> Response {
    let detail = format!(
        "rate limit exceeded: {} requests per {} seconds; retry after {} seconds",
        rule.limit, rule.window_seconds, decision.retry_after
    );
    Problem::new(axum::http::StatusCode::TOO_MANY_REQUESTS, detail).into_response()
}
