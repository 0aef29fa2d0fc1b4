//! The repair sweep of `/api/v1` as a scheduled Lambda (EventBridge, every minute): sends the
//! queue messages of jobs whose first send never happened, fails jobs whose worker vanished and
//! jobs no worker took within a day,
//! dispatches job events a crash left in the outbox, and runs a canary job every
//! `TESSERA_CANARY_SECONDS` (60–86400; unset: no canary).

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_lambdas::init_logs();
    let mut state = tessera_lambdas::v1_from_env().await?;
    state.canary_every = canary_every()?;
    let state = &state;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let report = tessera_api::v1::sweep::sweep(state).await?;
        Ok::<Value, lambda_http::Error>(json!({
            "resent": report.resent,
            "failed": report.failed,
            "timed_out": report.timed_out,
            "expired": report.expired,
            "events": report.events,
            "pipeline": report.pipeline,
        }))
    }))
    .await
}

/// `TESSERA_CANARY_SECONDS`, checked.
fn canary_every() -> Result<Option<std::time::Duration>, lambda_http::Error> {
    let Ok(raw) = std::env::var("TESSERA_CANARY_SECONDS") else {
        return Ok(None);
    };
    match raw.trim().parse::<u64>() {
        Ok(seconds) if (60..=86_400).contains(&seconds) => Ok(Some(std::time::Duration::from_secs(seconds))),
        _ => Err(format!("TESSERA_CANARY_SECONDS={raw:?} is invalid: expected 60 to 86400").into()),
    }
}
