//! The `jobs` family of the generation API on AWS Lambda.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_lambdas::serve_v1(tessera_api::v1::jobs::router).await
}
