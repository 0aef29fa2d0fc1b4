//! The `internal` family (worker lifecycle and heartbeats, service credentials only) on AWS Lambda.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_lambdas::init_logs();
    let ports = tessera_lambdas::aws_ports().await?;
    let auth = tessera_lambdas::auth_service(&ports)?;
    let state = tessera_lambdas::v1_state(&ports, auth)?;
    let app = tessera_lambdas::lambda_router(tessera_api::internal::router(state));
    lambda_http::run(app).await
}
