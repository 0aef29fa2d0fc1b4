//! The Telegram bot's notify-queue consumer as an SQS-triggered Lambda on
//! `notify-telegram.fifo` (`ReportBatchItemFailures`): each job event becomes its chat message.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use tessera_telegram::config::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_chat::notify::init_logs(true);
    let config = Config::from_env()?;
    let state = Arc::new(tessera_telegram::state(&config).await?);
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let show = |notice| async move { tessera_telegram::notify::on_notice(state, &notice).await };
        Ok::<SqsBatchResponse, lambda_http::Error>(tessera_chat::lambda::notify_batch(event.payload, show).await)
    }))
    .await
}
