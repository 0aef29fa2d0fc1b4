//! Webhook mode: Telegram POSTs each update to our HTTPS endpoint with the secret token given to
//! `setWebhook` in `X-Telegram-Bot-Api-Secret-Token`. The route checks it in constant time
//! (401 without it, and nothing else happens), then handles the update before answering, so
//! that it also works as a Lambda (`lambda_http`), which freezes after the answer.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use subtle::ConstantTimeEq;
use teloxide::types::Update;

use crate::handler::{BotState, handle_update};

/// The path Telegram POSTs updates to.
pub const WEBHOOK_PATH: &str = "/telegram/webhook";

/// The header that carries the secret token.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

#[derive(Clone)]
struct Hook {
    state: Arc<BotState>,
    secret: Arc<str>,
}

/// The webhook route over `state`, accepting only requests that carry `secret`.
pub fn router(state: Arc<BotState>, secret: &str) -> Router {
    let hook = Hook {
        state,
        secret: Arc::from(secret),
    };
    Router::new().route(WEBHOOK_PATH, post(receive)).with_state(hook)
}

async fn receive(State(hook): State<Hook>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let given = headers
        .get(SECRET_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if !bool::from(given.ct_eq(hook.secret.as_bytes())) {
        tracing::warn!("a webhook update without the right secret token: refused");
        return StatusCode::UNAUTHORIZED;
    }
    match serde_json::from_slice::<Update>(&body) {
        Ok(update) => {
            handle_update(&hook.state, update).await;
            StatusCode::OK
        }
        Err(error) => {
            // Telegram would retry a non-2xx answer forever; an update we can't read is dropped.
            tracing::warn!(%error, "an update that does not parse: dropped");
            StatusCode::OK
        }
    }
}
