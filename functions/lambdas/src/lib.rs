//! The wiring shared by the Lambda binaries (`src/bin/<family>.rs`): configuration from the
//! environment, the AWS backend, JSON logs, and the client IP taken from the API Gateway request
//! context. Each binary is thin: it builds its family's router and hands it to `lambda_http::run`.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use axum::Router;
use axum::extract::Request;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use tessera_api::auth::{AuthConfig, AuthService};
use tessera_api::client_ip::ClientIp;
use tessera_api::v1::{V1State, WebhookKey, WebhookSettings};
use tessera_core::{RandomIds, SystemClock};
use tessera_store::Ports;
use tessera_store::aws::AwsStore;
use tessera_store::definitions::Naming;

/// Logs as JSON lines (CloudWatch), filtered by `RUST_LOG` (default `info`).
pub fn init_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
}

/// Installs the catalog file named by `TESSERA_CATALOG`, if set (packaged with the function).
pub fn install_catalog() -> anyhow::Result<()> {
    let Ok(path) = std::env::var("TESSERA_CATALOG") else {
        return Ok(());
    };
    tessera_core::Catalog::install(tessera_core::Catalog::load(path.as_ref())?);
    Ok(())
}

/// The AWS backend named by `TESSERA_RESOURCE_PREFIX` (default `tessera`).
pub async fn aws_ports() -> anyhow::Result<Ports> {
    let naming = match std::env::var("TESSERA_RESOURCE_PREFIX") {
        Ok(prefix) if !prefix.is_empty() => {
            Naming::new(&prefix).with_context(|| format!("TESSERA_RESOURCE_PREFIX={prefix:?} is invalid"))?
        }
        _ => Naming::default(),
    };
    let store = AwsStore::from_env(naming, Arc::new(SystemClock))
        .await
        .context("configuring the AWS clients")?;
    Ok(Ports::from_backend(Arc::new(store), "aws"))
}

/// The auth service over `ports`, with the auth settings of the environment (on Lambda,
/// `TESSERA_JWT_KEYS` is required).
pub fn auth_service(ports: &Ports) -> anyhow::Result<AuthService> {
    let config = AuthConfig::from_lookup(|name| std::env::var(name).ok(), None)
        .map_err(|(variable, reason)| anyhow::anyhow!("{variable} is invalid: {reason}"))?;
    Ok(AuthService::new(
        ports,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        config,
    ))
}

/// The `/api/v1` state over `ports`, with the webhook settings and catalog of the environment
/// (`TESSERA_WEBHOOK_KEY` is required).
pub fn v1_state(ports: &Ports, auth: AuthService) -> anyhow::Result<V1State> {
    install_catalog()?;
    let rules = tessera_api::v1::webhook_rules(|name| std::env::var(name).ok())
        .map_err(|(variable, reason)| anyhow::anyhow!("{variable} is invalid: {reason}"))?;
    let key = std::env::var("TESSERA_WEBHOOK_KEY").context("TESSERA_WEBHOOK_KEY is not set")?;
    let key = WebhookKey::parse(&key).map_err(|reason| anyhow::anyhow!("TESSERA_WEBHOOK_KEY is invalid: {reason}"))?;
    Ok(V1State::new(
        ports,
        auth,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        WebhookSettings::new(rules, key),
    ))
}

/// The `/api/v1` state of this function, from its environment (AWS backend, auth settings,
/// webhook rules, catalog).
pub async fn v1_from_env() -> anyhow::Result<V1State> {
    let ports = aws_ports().await?;
    let auth = auth_service(&ports)?;
    v1_state(&ports, auth)
}

/// Handles one SQS batch of webhook messages (the `webhook-sender` function): each message
/// makes its attempt; the ones that must come back later are reported as failures
/// (`ReportBatchItemFailures`), so SQS returns only those.
pub async fn webhook_batch(state: &V1State, event: SqsEvent) -> SqsBatchResponse {
    let handled = event.records.into_iter().map(|record| async move {
        let body = record.body.unwrap_or_default();
        match tessera_api::v1::webhooks::handle(state, &body).await {
            Ok(_) => None,
            Err(error) => {
                tracing::info!(%error, "webhook message left for a later try");
                Some(record.message_id.unwrap_or_default())
            }
        }
    });
    let mut response = SqsBatchResponse::default();
    response.set_failures(futures::future::join_all(handled).await.into_iter().flatten());
    response
}

/// Runs one family that lives on the `/api/v1` state as this Lambda's handler.
pub async fn serve_v1(family: fn(V1State) -> Router) -> Result<(), lambda_http::Error> {
    init_logs();
    let state = v1_from_env().await?;
    lambda_http::run(lambda_router(family(state))).await
}

/// `router` as a Lambda serves it: the caller's IP comes from the API Gateway (or ALB) request
/// context, never from a client header.
pub fn lambda_router(router: Router) -> Router {
    router.layer(axum::middleware::map_request(with_client_ip))
}

async fn with_client_ip(mut request: Request) -> Request {
    if let Some(ip) = source_ip(&request) {
        request.extensions_mut().insert(ClientIp(ip));
    }
    request
}

fn source_ip(request: &Request) -> Option<IpAddr> {
    let raw = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.clone(),
        RequestContext::ApiGatewayV1(context) => context.identity.source_ip.clone(),
        _ => None,
    }?;
    raw.parse().ok()
}
