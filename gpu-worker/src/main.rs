//! `tessera-worker`: pulls jobs from the queues of its capabilities, runs them on ComfyUI, stores
//! the outputs, and reports to the API. Configured by environment variables (see the README);
//! SIGTERM or Ctrl-C stops it after the job in hand.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tessera_core::SystemClock;
use tessera_store::Ports;
use tessera_store::aws::AwsStore;
use tessera_store::definitions::Naming;
use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tessera_worker::api::ApiClient;
use tessera_worker::client::ComfyClient;
use tessera_worker::config::WorkerConfig;
use tessera_worker::daemon::Worker;
use tessera_worker::workflow::Workflows;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = WorkerConfig::from_lookup(|name| std::env::var(name).ok())?;
    install_catalog()?;
    let ports = ports().await?;
    let workflows = Workflows::load(&config.workflows_dir)
        .with_context(|| format!("loading the workflows of {}", config.workflows_dir.display()))?;
    let comfy = ComfyClient::new(&config.comfyui_url);
    if !comfy.is_up().await {
        tracing::warn!(url = %config.comfyui_url, "ComfyUI is not answering; jobs wait in the queue until it does");
    }
    let gpu = tokio::task::spawn_blocking(tessera_worker::telemetry::Gpu::detect).await?;
    let status = tessera_worker::status::WorkerStatus::with_gpu(gpu);
    let endpoints = tessera_worker::status::router(tessera_worker::status::StatusInfo {
        status: status.clone(),
        worker_id: config.worker_id.clone(),
        capabilities: config.capabilities.clone(),
        workflow_ids: workflows.ids().map(str::to_owned).collect(),
        comfy: comfy.clone(),
        started: std::time::Instant::now(),
    })
    .merge(tessera_worker::run_job::router(tessera_worker::run_job::RunJobState {
        comfy: comfy.clone(),
        blobs: ports.blobs.clone(),
        workflows: workflows.clone(),
        service_key: config.service_key.as_str().into(),
        max_job_time: config.max_job_time,
    }));
    let listener = tokio::net::TcpListener::bind(config.status_addr)
        .await
        .with_context(|| format!("binding {} (set TESSERA_WORKER_ADDR)", config.status_addr))?;
    tokio::spawn(async move { axum::serve(listener, endpoints).await });
    let worker = Worker {
        api: ApiClient::new(&config.api_url, &config.service_key, &config.worker_id),
        comfy,
        queue: ports.queue,
        blobs: ports.blobs,
        workflows,
        capabilities: config.capabilities,
        priorities: config.priorities,
        poll_wait: config.poll_wait,
        status,
        max_job_time: config.max_job_time,
        drain_grace: config.drain_grace,
        concurrency: config.concurrency,
    };
    tracing::info!(worker = %config.worker_id, "worker started");
    let tally = worker.run(shutdown()).await;
    tracing::info!(?tally, "worker stopped");
    Ok(())
}

/// The catalog file named by `TESSERA_CATALOG`, if set: the same one the API runs with, so that
/// the worker polls the lanes of its models.
fn install_catalog() -> anyhow::Result<()> {
    let Ok(path) = std::env::var("TESSERA_CATALOG") else {
        return Ok(());
    };
    tessera_core::Catalog::install(tessera_core::Catalog::load(path.as_ref())?);
    Ok(())
}

/// The queues and blob store: `TESSERA_BACKEND=aws` (DynamoDB/SQS/S3, `TESSERA_RESOURCE_PREFIX`)
/// or the embedded store in `TESSERA_DATA_DIR` (default `.tessera`), shared with `cargo run`.
async fn ports() -> anyhow::Result<Ports> {
    let backend = std::env::var("TESSERA_BACKEND").unwrap_or_else(|_| "embedded".into());
    match backend.as_str() {
        "aws" => {
            let prefix = std::env::var("TESSERA_RESOURCE_PREFIX").unwrap_or_else(|_| "tessera".into());
            let naming = Naming::new(&prefix).context("TESSERA_RESOURCE_PREFIX is invalid")?;
            let store = AwsStore::from_env(naming, Arc::new(SystemClock)).await?;
            Ok(Ports::from_backend(Arc::new(store), "aws"))
        }
        "embedded" => {
            let dir = std::env::var("TESSERA_DATA_DIR").map_or_else(|_| PathBuf::from(".tessera"), PathBuf::from);
            let store = EmbeddedStore::open(EmbeddedConfig {
                dir,
                public_url: "http://127.0.0.1".into(),
                clock: Arc::new(SystemClock),
            })
            .context("opening the embedded store")?;
            Ok(Ports::from_backend(Arc::new(store), "embedded"))
        }
        other => anyhow::bail!("TESSERA_BACKEND={other:?} is invalid: expected 'embedded' or 'aws'"),
    }
}

/// Resolves on SIGTERM or Ctrl-C; the handlers are installed at once, so an early signal is never
/// the default kill.
fn shutdown() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        let wait = |stream: std::io::Result<tokio::signal::unix::Signal>| async move {
            match stream {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt) => {},
            () = wait(terminate) => {},
        }
        tracing::info!("stopping after the job in hand");
    }
}
