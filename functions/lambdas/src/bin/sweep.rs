//! The repair sweep of `/api/v1` as a scheduled Lambda (EventBridge, every minute): sends the
//! queue messages of jobs whose first send never happened.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_lambdas::init_logs();
    let state = tessera_lambdas::v1_from_env().await?;
    let state = &state;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let report = tessera_api::v1::sweep::sweep(state).await?;
        Ok::<Value, lambda_http::Error>(json!({
            "resent": report.resent,
            "failed": report.failed,
            "timed_out": report.timed_out,
        }))
    }))
    .await
}
