//! The `internal` family (worker lifecycle and heartbeats, service credentials only) on AWS Lambda.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_lambdas::serve_v1(tessera_api::internal::router).await
}
