//! The `webhooks` family of the generation API on AWS Lambda: the webhook secret, the delivery
//! log and redelivery.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_lambdas::serve_v1(tessera_api::v1::webhooks::router).await
}
