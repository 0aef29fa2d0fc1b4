//! The `auth` family on AWS Lambda: `/api/auth/*` and `/api/api-keys`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_lambdas::init_logs();
    let ports = tessera_lambdas::aws_ports().await?;
    let auth = tessera_lambdas::auth_service(&ports)?;
    let app = tessera_lambdas::lambda_router(tessera_api::auth::router(auth));
    lambda_http::run(app).await
}
