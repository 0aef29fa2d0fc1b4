//! The webhook sender as an SQS-triggered Lambda (`ReportBatchItemFailures`): each message of
//! the webhook queue makes one signed attempt of one delivery, and chains the next on failure.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_lambdas::init_logs();
    let state = tessera_lambdas::v1_from_env().await?;
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_http::Error>(tessera_lambdas::webhook_batch(state, event.payload).await)
    }))
    .await
}
