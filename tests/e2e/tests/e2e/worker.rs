//! The GPU worker end to end, on both backends: `POST /api/v1/jobs` → queue → worker → fake
//! ComfyUI → artifacts in the blob store → `COMPLETED`, and the worker's failure paths.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::{Capability, PlanTier, Priority, TenantId};
use tessera_fakes::{Failure, FakeComfy, FakeConfig};
use tessera_worker::api::ApiClient;
use tessera_worker::daemon::{Tally, Worker};
use tessera_worker::runner::ComfyClient;
use tessera_worker::workflow::Workflows;
use tokio::sync::oneshot;

use crate::conformance;
use crate::support::{Backend, TestApp};

conformance!(
    a_job_runs_on_the_worker_and_its_artifact_and_thumbnail_download,
    jobs_wait_while_comfyui_is_down_and_run_when_it_is_back,
    an_out_of_memory_run_fails_the_job_with_oom,
    a_cancel_while_running_interrupts_comfyui,
    a_run_past_its_time_is_interrupted_and_fails_with_worker_timeout,
);

/// The image/high lane is shared by the worker tests of one process on the emulator (their
/// resource prefix is per process): they take turns, so that no worker takes another test's job.
static LANE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A Pro user, a service key, a fake ComfyUI and a worker serving only the image/high lane
/// (no other test queues there, so the worker never takes a job of another test).
struct Rig {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    app: TestApp,
    token: String,
    fake: FakeComfy,
    stop: oneshot::Sender<()>,
    worker: tokio::task::JoinHandle<Tally>,
    /// The worker's own endpoints (`/worker/*`).
    endpoints: String,
}

async fn rig(backend: Backend, config: FakeConfig) -> Rig {
    let fake = FakeComfy::start(config).await;
    let comfy_url = fake.base_url.clone();
    rig_with(backend, fake, &comfy_url, None).await
}

/// A rig whose worker talks to ComfyUI at `comfy_url` (which `fake` may or may not serve).
async fn rig_with(backend: Backend, fake: FakeComfy, comfy_url: &str, max_job_time: Option<Duration>) -> Rig {
    let turn = LANE.lock().await;
    let app = TestApp::spawn(backend).await;
    let (_, _, body) = app.signup().await;
    let tenant = TenantId::parse(body["tenant"]["id"].as_str().expect("tenant")).expect("id");
    app.auth
        .accounts()
        .set_plan(&tenant, PlanTier::Pro)
        .await
        .expect("plan");
    let key = app
        .auth
        .create_service_key("gpu-worker")
        .await
        .expect("service key")
        .key;
    let workflows =
        Workflows::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gpu-worker/workflows")).expect("workflows");
    let status = tessera_worker::status::WorkerStatus::default();
    let info = tessera_worker::status::StatusInfo {
        status: status.clone(),
        worker_id: "rig-worker".into(),
        capabilities: vec![Capability::Image],
        workflow_ids: workflows.ids().map(str::to_owned).collect(),
        comfy: ComfyClient::new(comfy_url),
        started: std::time::Instant::now(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoints = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, tessera_worker::status::router(info)).await });
    let worker = Worker {
        api: ApiClient::new(&app.base, &key, &format!("worker-{}", rand::random::<u32>())),
        comfy: ComfyClient::new(comfy_url),
        queue: app.backend.queue.clone(),
        blobs: app.backend.blobs.clone(),
        workflows,
        capabilities: vec![Capability::Image],
        priorities: vec![Priority::High],
        poll_wait: Duration::from_millis(200),
        status,
        max_job_time,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    Rig {
        endpoints,
        _turn: turn,
        token: body["tokens"]["access_token"].as_str().expect("token").to_owned(),
        app,
        fake,
        stop,
        worker,
    }
}

impl Rig {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self) -> String {
        let body = json!({"capability": "image", "priority": "high",
                          "params": {"prompt": "a red square", "resolution": "256x128", "steps": 4, "seed": 42}});
        let (status, created) = self.call(Method::POST, "/api/v1/jobs", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["job_id"].as_str().expect("id").to_owned()
    }

    /// Polls the job until `done` holds (20 s at most).
    async fn wait_for(&self, job: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let (_, state) = self.call(Method::GET, &format!("/api/v1/jobs/{job}"), None).await;
            if done(&state) {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {job} did not get there");
    }

    async fn stop(self) -> Tally {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.worker)
            .await
            .expect("the worker stops")
            .expect("worker")
    }
}

async fn a_job_runs_on_the_worker_and_its_artifact_and_thumbnail_download(backend: Backend) {
    let rig = rig(backend, FakeConfig::default()).await;
    let job = rig.create().await;
    let done = rig.wait_for(&job, |state| state["status"] == "COMPLETED").await;
    assert_eq!(done["metadata"]["seed"], 42);
    let artifact = &done["artifacts"][0];
    assert_eq!(
        (artifact["type"].clone(), artifact["format"].clone()),
        (json!("image"), json!("png"))
    );
    assert_eq!(
        (artifact["width"].clone(), artifact["height"].clone()),
        (json!(256), json!(128))
    );

    let graph = &rig.fake.prompts()[0];
    assert_eq!(graph["6"]["inputs"]["text"], "a red square", "the prompt was bound");
    assert_eq!(graph["3"]["inputs"]["seed"], 42);
    let served = rig.fake.file("tessera_00001_.png").expect("the fake's output");
    let downloaded = reqwest::get(artifact["url"].as_str().expect("url"))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(
        downloaded.as_ref(),
        served.as_slice(),
        "the artifact is the bytes ComfyUI served"
    );
    assert_eq!(artifact["file_size_bytes"], served.len());
    let thumbnail = reqwest::get(artifact["thumbnail_url"].as_str().expect("thumbnail"))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    let thumbnail = image::load_from_memory(&thumbnail).expect("a JPEG");
    assert_eq!(
        (thumbnail.width(), thumbnail.height()),
        (256, 128),
        "256 px on the long side"
    );

    // A duplicate delivery of the finished job is dropped, not run.
    let message = json!({"job_id": job, "capability": "image", "priority": "high"}).to_string();
    let lane = tessera_store::definitions::job_queue(Capability::Image, Priority::High);
    rig.app
        .backend
        .queue
        .send(&lane, tessera_store::OutgoingMessage::new(message))
        .await
        .expect("send");
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let counts = rig.app.backend.queue.counts(&lane).await.expect("counts");
        if counts.visible + counts.in_flight + counts.delayed == 0 {
            break;
        }
    }
    assert_eq!(rig.fake.prompts().len(), 1, "ComfyUI ran it once");

    let tally = rig.stop().await;
    assert_eq!((tally.completed, tally.dropped), (1, 1), "{tally:?}");
}

async fn jobs_wait_while_comfyui_is_down_and_run_when_it_is_back(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let elsewhere = FakeComfy::start(FakeConfig::default()).await;
    let rig = rig_with(backend, elsewhere, &format!("http://{port}"), None).await;
    let job = rig.create().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, state) = rig.call(Method::GET, &format!("/api/v1/jobs/{job}"), None).await;
    assert_eq!(state["status"], "QUEUED", "not failed while ComfyUI is down");
    let back = FakeComfy::start_on(port, FakeConfig::default()).await;
    rig.wait_for(&job, |state| state["status"] == "COMPLETED").await;
    assert_eq!(back.prompts().len(), 1, "run once ComfyUI was back");
    let tally = rig.stop().await;
    assert!(tally.released >= 1, "{tally:?}");
    assert_eq!(tally.completed, 1);
}

async fn an_out_of_memory_run_fails_the_job_with_oom(backend: Backend) {
    let rig = rig(backend, FakeConfig::default()).await;
    rig.fake.fail_next(Failure::Runtime { oom: true });
    let job = rig.create().await;
    let failed = rig.wait_for(&job, |state| state["status"] == "FAILED").await;
    assert_eq!(failed["error"]["code"], "OOM");
    assert_eq!(failed["retry_available"], true);
    assert_eq!(rig.stop().await.failed, 1);
}

async fn a_cancel_while_running_interrupts_comfyui(backend: Backend) {
    let rig = rig(backend, FakeConfig::default()).await;
    rig.fake.fail_next(Failure::Hang);
    let job = rig.create().await;
    rig.wait_for(&job, |state| state["status"] == "RUNNING").await;
    let health: Value = reqwest::get(format!("{}/worker/health", rig.endpoints))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (health["status"].clone(), health["current_job"].clone()),
        (json!("healthy"), json!(job))
    );
    assert_eq!(health["capabilities"], json!(["image"]));
    assert!(
        health["gpu_status"]["memory_total_mb"].is_u64(),
        "from ComfyUI's system_stats: {health}"
    );
    for field in ["worker_id", "loaded_models", "uptime_seconds"] {
        assert!(health.get(field).is_some(), "{field}: {health}");
    }
    let capabilities: Value = reqwest::get(format!("{}/worker/capabilities", rig.endpoints))
        .await
        .expect("caps")
        .json()
        .await
        .expect("json");
    assert_eq!(capabilities["engine"], "comfyui");
    let models: Vec<&str> = capabilities["supported_models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        models,
        ["sdxl", "canary", "flux-schnell"],
        "the catalog's image models it has workflows for"
    );
    assert_eq!(capabilities["hardware"]["gpu_name"], "cpu");
    let (status, _) = rig.call(Method::DELETE, &format!("/api/v1/jobs/{job}"), None).await;
    assert_eq!(status, 200);
    for _ in 0..50 {
        if !rig.fake.interrupts().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rig.fake.interrupts().len(), 1, "ComfyUI was told to stop");
    let (_, state) = rig.call(Method::GET, &format!("/api/v1/jobs/{job}"), None).await;
    assert_eq!(state["status"], "CANCELLED");
    assert_eq!(rig.stop().await.dropped, 1);
}

async fn a_run_past_its_time_is_interrupted_and_fails_with_worker_timeout(backend: Backend) {
    let fake = FakeComfy::start(FakeConfig::default()).await;
    fake.fail_next(Failure::Hang);
    let comfy_url = fake.base_url.clone();
    let rig = rig_with(backend, fake, &comfy_url, Some(Duration::from_secs(1))).await;
    let job = rig.create().await;
    let failed = rig.wait_for(&job, |state| state["status"] == "FAILED").await;
    assert_eq!(failed["error"]["code"], "WORKER_TIMEOUT");
    assert_eq!(failed["retry_available"], true);
    assert_eq!(rig.fake.interrupts().len(), 1, "ComfyUI was told to stop the prompt");
    assert_eq!(rig.stop().await.failed, 1);
}
