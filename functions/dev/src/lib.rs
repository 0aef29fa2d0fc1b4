//! The `tessera` binary's library: the local all-in-one server that `cargo run` starts (every API
//! family on one port, over the embedded store in `.tessera/`, or over AWS with
//! `TESSERA_BACKEND=aws`), and the command-line client of any Tessera API ([`cli`]).

pub mod accounts;
pub mod cli;
pub mod config;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tessera_api::auth::AuthService;
use tessera_api::health::{ExtraCheck, PipelineCheck};
use tessera_api::problem::Problem;
use tessera_api::v1::{V1State, WebhookKey, WebhookSettings};
use tessera_core::{Clock, RandomIds, SystemClock};
use tessera_store::aws::AwsStore;
use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tessera_store::{Definitions, Ports};
use tokio::net::TcpListener;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use config::{BackendKind, Config};

/// How often the repair sweep runs (a scheduled Lambda does this on AWS).
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// How often the embedded backend applies bucket lifecycle rules (S3 does this itself).
const LIFECYCLE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// The ports of the configured backend, and the embedded store itself when that is the one
/// (its signed blob URLs are served by this server).
pub struct Backend {
    /// The ports.
    pub ports: Ports,
    /// The embedded store, when the backend is embedded.
    pub embedded: Option<Arc<EmbeddedStore>>,
}

/// Opens the configured backend. `public_url` is where this server is reached, for signed URLs.
pub async fn open_backend(config: &Config, public_url: &str) -> anyhow::Result<Backend> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match config.backend {
        BackendKind::Embedded => {
            let store = EmbeddedStore::open(EmbeddedConfig {
                dir: config.data_dir.clone(),
                public_url: public_url.to_owned(),
                clock,
            })
            .with_context(|| format!("opening the embedded store in {}", config.data_dir.display()))?;
            let store = Arc::new(store);
            Ok(Backend {
                ports: Ports::from_backend(store.clone(), "embedded"),
                embedded: Some(store),
            })
        }
        BackendKind::Aws => {
            let store = AwsStore::from_env(config.naming.clone(), clock)
                .await
                .context("configuring the AWS clients")?;
            Ok(Backend {
                ports: Ports::from_backend(Arc::new(store), "aws"),
                embedded: None,
            })
        }
    }
}

/// Every route of the local server, each request logged at `info` with its status and latency;
/// `/health` also reports the pipeline's canary and what `extras` say; the API's documentation
/// is at `/api/docs`, `/api/redoc` and `/api/openapi.json`.
pub fn app(backend: &Backend, auth: AuthService, v1: V1State, extras: Vec<Box<dyn ExtraCheck>>) -> Router {
    let mut checks: Vec<Box<dyn ExtraCheck>> = vec![Box::new(PipelineCheck(v1.clone()))];
    checks.extend(extras);
    let mut app = tessera_api::health::router_with(backend.ports.clone(), checks)
        .merge(tessera_api::auth::router(auth))
        .merge(tessera_api::internal::router(v1.clone()))
        .merge(tessera_api::v1::router(v1))
        .merge(tessera_api::docs::router());
    if let Some(store) = &backend.embedded {
        app = app.merge(tessera_api::blobs::router(store.clone()));
    }
    let request_log = TraceLayer::new_for_http()
        .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    app.fallback(|| async { Problem::new(axum::http::StatusCode::NOT_FOUND, "no such route") })
        .layer(request_log)
}

/// Serves [`app`] on a free loopback port in the background (tests and benchmarks); answers its
/// base URL.
pub async fn spawn_app(backend: &Backend, auth: AuthService, v1: V1State) -> anyhow::Result<String> {
    let app = app(backend, auth, v1, Vec::new()).into_make_service_with_connect_info::<SocketAddr>();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")?;
    let base = format!("http://{}", listener.local_addr().context("reading the bound address")?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// Serves on `listener` until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr().context("reading the bound address")?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{local}"));
    let backend = open_backend(config, &public_url).await?;
    let auth = auth_service(config, &backend)?;
    if let Some(store) = &backend.embedded {
        tokio::spawn(apply_lifecycle(store.clone()));
    }
    if let Err(error) = accounts::ensure_demo_account(&auth).await {
        tracing::warn!(
            error = format!("{error:#}"),
            "no demo account: is the store bootstrapped? (`cargo run -- bootstrap --aws`)"
        );
    }
    tracing::info!(backend = backend.ports.backend, data_dir = %config.data_dir.display(), "listening on http://{local}");
    let mut v1 = V1State::new(
        &backend.ports,
        auth.clone(),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        webhook_settings(config)?,
    );
    v1.canary_every = config.canary_every;
    tokio::spawn(sweep_every(v1.clone(), SWEEP_INTERVAL));
    tokio::spawn(tessera_api::v1::webhooks::consume(v1.clone()));
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = match config.worker {
        true => worker::spawn(config, &backend, &auth, format!("http://{local}"), worker_stopped).await,
        false => None,
    };
    let extras: Vec<Box<dyn ExtraCheck>> = match worker {
        Some(_) => vec![Box::new(worker::ComfyCheck::new(&config.comfyui_url))],
        None => Vec::new(),
    };
    let app = app(&backend, auth, v1, extras).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    let _ = stop_worker.send(());
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The auth service on the real clock, with the configured JWT keys or, when
/// `TESSERA_JWT_KEYS` is unset, the dev server's own key kept in its data folder.
pub fn auth_service(config: &Config, backend: &Backend) -> anyhow::Result<AuthService> {
    let fallback = accounts::local_jwt_keys(&config.data_dir)?;
    let auth_config = config.auth(Some(fallback))?;
    Ok(AuthService::new(
        &backend.ports,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        auth_config,
    ))
}

/// The webhook rules and key of the configuration; without `TESSERA_WEBHOOK_KEY`, the key kept
/// in the data folder.
pub fn webhook_settings(config: &Config) -> anyhow::Result<WebhookSettings> {
    let key = match &config.webhook_key {
        Some(key) => key.clone(),
        None => accounts::local_webhook_key(&config.data_dir)?,
    };
    let key = WebhookKey::parse(&key).map_err(|reason| anyhow::anyhow!("the webhook key is invalid: {reason}"))?;
    Ok(WebhookSettings::new(config.webhooks, key))
}

/// Runs the repair sweep of `/api/v1` every `interval`.
pub async fn sweep_every(v1: V1State, interval: Duration) {
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(error) = tessera_api::v1::sweep::sweep(&v1).await {
            tracing::warn!(%error, "sweep failed; retrying at the next tick");
        }
    }
}

async fn apply_lifecycle(store: Arc<EmbeddedStore>) {
    let mut every = tokio::time::interval(LIFECYCLE_INTERVAL);
    loop {
        every.tick().await;
        for bucket in Definitions::tessera().buckets {
            if bucket.expire_after_days.is_none() {
                continue;
            }
            match store.purge_expired_blobs(&bucket) {
                Ok(0) => {}
                Ok(purged) => tracing::info!(bucket = bucket.name, purged, "expired blobs deleted"),
                Err(error) => tracing::warn!(bucket = bucket.name, %error, "blob lifecycle failed"),
            }
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives early is never the default kill.
/// Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
        Ok(stream) => Some(stream),
        Err(error) => {
            tracing::error!(%error, "cannot listen for {name}");
            None
        }
    };
    let mut interrupt = listen(SignalKind::interrupt(), "Ctrl-C");
    let mut terminate = listen(SignalKind::terminate(), "SIGTERM");
    async move {
        let received = |stream: &mut Option<tokio::signal::unix::Signal>| {
            let stream = stream.take();
            async move {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            () = received(&mut interrupt) => {},
            () = received(&mut terminate) => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
