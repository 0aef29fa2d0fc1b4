//! The GPU worker that `cargo run` runs in process: the same daemon as `tessera-worker`, over the
//! embedded queue and blob store, talking to this server's API with a service key of its own
//! (kept in `<data dir>/worker.key`).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use tessera_api::auth::{Accepts, AuthService};
use tessera_api::health::ExtraCheck;
use tessera_core::{Capability, Priority};
use tessera_worker::api::ApiClient;
use tessera_worker::client::ComfyClient;
use tessera_worker::daemon::{Tally, Worker};
use tessera_worker::workflow::Workflows;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{Backend, Config};

const KEY_FILE: &str = "worker.key";
/// How long the in-process worker long-polls (short, so Ctrl-C is quick).
const POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// How long Ctrl-C lets the job in hand finish before it is given back to the queue.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the worker; `None` (with the reason logged) when it cannot run.
pub async fn spawn(
    config: &Config,
    backend: &Backend,
    auth: &AuthService,
    api_url: String,
    stop: oneshot::Receiver<()>,
) -> Option<JoinHandle<Tally>> {
    let workflows = match Workflows::load(&config.workflows_dir) {
        Ok(workflows) => workflows,
        Err(error) => {
            tracing::warn!(%error, dir = %config.workflows_dir.display(), "no in-process worker: its workflows do not load (set TESSERA_WORKFLOWS_DIR)");
            return None;
        }
    };
    let key = match service_key(&config.data_dir, auth).await {
        Ok(key) => key,
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "no in-process worker: no service key");
            return None;
        }
    };
    let comfy = ComfyClient::new(&config.comfyui_url);
    if !comfy.is_up().await {
        tracing::warn!(url = %config.comfyui_url, "ComfyUI is not answering: image jobs wait QUEUED until it does (set COMFYUI_URL)");
    }
    let worker = Worker {
        api: ApiClient::new(&api_url, &key, "dev-worker"),
        comfy,
        queue: backend.ports.queue.clone(),
        blobs: backend.ports.blobs.clone(),
        workflows,
        capabilities: vec![Capability::Image],
        priorities: Priority::ALL.to_vec(),
        poll_wait: POLL,
        status: Default::default(),
        max_job_time: None,
        drain_grace: DRAIN,
        concurrency: 1,
    };
    tracing::info!(comfyui = %config.comfyui_url, "in-process worker started");
    Some(tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stop.await;
            })
            .await
    }))
}

/// The worker's service key: the one saved in the data folder while the store still knows it,
/// else a new one (saved, readable by the owner only).
async fn service_key(dir: &Path, auth: &AuthService) -> anyhow::Result<String> {
    let path = dir.join(KEY_FILE);
    if let Ok(saved) = std::fs::read_to_string(&path)
        && auth.authenticate(saved.trim(), Accepts::Services).await.is_ok()
    {
        return Ok(saved.trim().to_owned());
    }
    let created = auth.create_service_key("dev-worker").await?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(created.key.as_bytes())?;
    Ok(created.key)
}

/// `/health`'s word on the in-process worker's ComfyUI.
pub struct ComfyCheck {
    comfy: ComfyClient,
}

impl ComfyCheck {
    /// A check of the ComfyUI at `url`.
    pub fn new(url: &str) -> Self {
        Self {
            comfy: ComfyClient::new(url),
        }
    }
}

impl ExtraCheck for ComfyCheck {
    fn name(&self) -> &'static str {
        "comfyui"
    }

    fn check(&self) -> futures::future::BoxFuture<'_, serde_json::Value> {
        Box::pin(async move {
            if self.comfy.is_up().await {
                "ok".into()
            } else {
                format!(
                    "not answering at {}: image jobs wait QUEUED until it does (set COMFYUI_URL)",
                    self.comfy.base_url()
                )
                .into()
            }
        })
    }
}
