//! The Telegram bot's notify-queue consumer as an SQS-triggered Lambda on
//! `notify-telegram.fifo` (`ReportBatchItemFailures`): each job event becomes its chat message.
//! A failed one is reported, and SQS brings it (and the rest of its chat's group) back in order.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use tessera_core::NotifyMessage;
use tessera_telegram::config::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt().json().without_time().init();
    let config = Config::from_env()?;
    let state = Arc::new(tessera_telegram::state(&config).await?);
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let mut response = SqsBatchResponse::default();
        let mut failed = false;
        for record in event.payload.records {
            let id = record.message_id.clone().unwrap_or_default();
            // In a FIFO batch, once one message fails the rest of the batch must wait for it.
            if failed {
                response.add_failure(id);
                continue;
            }
            let Ok(notice) = serde_json::from_str::<NotifyMessage>(record.body.as_deref().unwrap_or_default()) else {
                continue;
            };
            if let Err(error) = tessera_telegram::notify::on_notice(state, &notice).await {
                tracing::warn!(%error, "notice not shown; SQS brings it back");
                failed = true;
                response.add_failure(id);
            }
        }
        Ok::<SqsBatchResponse, lambda_http::Error>(response)
    }))
    .await
}
