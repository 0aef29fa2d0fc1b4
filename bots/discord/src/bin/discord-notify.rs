//! The Discord bot's notify-queue consumer as an SQS-triggered Lambda on `notify-discord.fifo`
//! (`ReportBatchItemFailures`): each job event edits its interaction response or posts to the
//! channel.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use tessera_discord::config::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_chat::notify::init_logs(true);
    let config = Config::from_env()?;
    let state = Arc::new(tessera_discord::state(&config));
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let show = |notice| async move { tessera_discord::notify::on_notice(state, &notice).await };
        Ok::<SqsBatchResponse, lambda_http::Error>(tessera_chat::lambda::notify_batch(event.payload, show).await)
    }))
    .await
}
