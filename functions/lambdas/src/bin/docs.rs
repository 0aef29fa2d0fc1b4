//! The API's documentation on AWS Lambda: `/api/openapi.json`, Swagger UI at `/api/docs` and
//! Redoc at `/api/redoc`, all from assets built into the binary (no AWS resource, no internet).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_lambdas::init_logs();
    lambda_http::run(tessera_api::docs::router()).await
}
