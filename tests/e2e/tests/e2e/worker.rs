//! The GPU worker end to end, on both backends: `POST /api/v1/jobs` → queue → worker → fake
//! ComfyUI → artifacts in the blob store → `COMPLETED`, and the worker's failure paths.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::{Capability, PlanTier, Priority, TenantId};
use tessera_fakes::{Failure, FakeComfy, FakeConfig};
use tessera_store::ReceiveRequest;
use tessera_worker::api::ApiClient;
use tessera_worker::client::ComfyClient;
use tessera_worker::daemon::{Tally, Worker};
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
    the_worker_keeps_one_socket_and_a_lost_end_message_does_not_hang_a_job,
    stopping_finishes_the_running_job_and_gives_back_the_held_one,
    a_job_that_outlasts_the_grace_period_is_interrupted_and_queued_again,
    a_job_comfyui_refuses_after_its_claim_is_given_back_and_runs_again,
    with_a_concurrency_of_two_the_next_prompt_waits_inside_comfyui,
    run_job_runs_a_workflow_at_once_and_answers_in_the_spec_shape,
    run_job_refuses_bad_calls_and_reports_failures_with_their_codes,
    run_job_answers_503_while_comfyui_is_down,
);

/// The image/high lane is shared by the worker tests of one process on the emulator (their
/// resource prefix is per process): they take turns, so that no worker takes another test's job.
static LANE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A Pro user, a service key, a fake ComfyUI and a worker serving only the image/high lane
/// (no other test queues there, so the worker never takes a job of another test).
pub(crate) struct Rig {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    pub(crate) app: TestApp,
    token: String,
    pub(crate) fake: FakeComfy,
    stop: Option<oneshot::Sender<()>>,
    worker: tokio::task::JoinHandle<Tally>,
    /// The worker's own endpoints (`/worker/*`).
    endpoints: String,
    /// The worker's service key.
    pub(crate) key: String,
}

async fn rig(backend: Backend, config: FakeConfig) -> Rig {
    let fake = FakeComfy::start(config).await;
    let comfy_url = fake.base_url.clone();
    rig_with(backend, fake, &comfy_url, LIMITS).await
}

/// A rig whose worker talks to ComfyUI at `comfy_url` (which `fake` may or may not serve).
/// A worker's limits in a rig.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_job_time: Option<Duration>,
    pub(crate) drain_grace: Duration,
    pub(crate) concurrency: usize,
    /// The lanes the worker serves (image/high only by default: no other test queues there).
    pub(crate) lanes: &'static [Priority],
}

pub(crate) const LIMITS: Limits = Limits {
    max_job_time: None,
    drain_grace: Duration::from_secs(10),
    concurrency: 1,
    lanes: &[Priority::High],
};

pub(crate) async fn rig_with(backend: Backend, fake: FakeComfy, comfy_url: &str, limits: Limits) -> Rig {
    let Limits {
        max_job_time,
        drain_grace,
        concurrency,
        lanes,
    } = limits;
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
    let comfy = ComfyClient::new(comfy_url);
    let status = tessera_worker::status::WorkerStatus::default();
    let info = tessera_worker::status::StatusInfo {
        status: status.clone(),
        worker_id: "rig-worker".into(),
        capabilities: vec![Capability::Image],
        workflow_ids: workflows.ids().map(str::to_owned).collect(),
        comfy: comfy.clone(),
        started: std::time::Instant::now(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoints = format!("http://{}", listener.local_addr().expect("address"));
    let run_job = tessera_worker::run_job::RunJobState {
        comfy: comfy.clone(),
        blobs: app.backend.blobs.clone(),
        workflows: workflows.clone(),
        service_key: key.as_str().into(),
        max_job_time,
    };
    let endpoints_router = tessera_worker::status::router(info).merge(tessera_worker::run_job::router(run_job));
    tokio::spawn(async move { axum::serve(listener, endpoints_router).await });
    let worker = Worker {
        api: ApiClient::new(&app.base, &key, &format!("worker-{}", rand::random::<u32>())),
        comfy: comfy.clone(),
        queue: app.backend.queue.clone(),
        blobs: app.backend.blobs.clone(),
        workflows,
        capabilities: vec![Capability::Image],
        priorities: lanes.to_vec(),
        poll_wait: Duration::from_millis(200),
        status,
        max_job_time,
        drain_grace,
        concurrency,
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
        key,
        _turn: turn,
        token: body["tokens"]["access_token"].as_str().expect("token").to_owned(),
        app,
        fake,
        stop: Some(stop),
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
        self.create_seeded(42).await
    }

    /// Creates a job; a seed of its own keeps ComfyUI from serving it from its cache.
    async fn create_seeded(&self, seed: u64) -> String {
        let body = json!({"capability": "image", "priority": "high",
                          "params": {"prompt": "a red square", "resolution": "256x128", "steps": 4, "seed": seed}});
        let (status, created) = self.call(Method::POST, "/api/v1/jobs", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["job_id"].as_str().expect("id").to_owned()
    }

    /// Polls the job until `done` holds (20 s at most).
    async fn wait_for(&self, job: &str, done: impl Fn(&Value) -> bool) -> Value {
        // The store is watched, and the API asked only when the job moved (its rate limit holds).
        let id = tessera_core::JobId::parse(job).expect("job id");
        let mut seen = None;
        let mut state = Value::Null;
        for _ in 0..400 {
            let now = self
                .app
                .v1
                .jobs
                .get(&id)
                .await
                .expect("get")
                .map(|job| (job.status, job.progress));
            if now != seen {
                seen = now;
                state = self.call(Method::GET, &format!("/api/v1/jobs/{job}"), None).await.1;
                if done(&state) {
                    return state;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {job} did not get there: {state}");
    }

    async fn stop(mut self) -> Tally {
        self.stop_worker().await
    }

    /// Stops the worker (it drains) and waits for it, keeping the rest of the rig.
    async fn stop_worker(&mut self) -> Tally {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.worker)
            .await
            .expect("the worker stops")
            .expect("worker")
    }

    /// The worker's `/worker/health`.
    async fn health(&self) -> Value {
        reqwest::get(format!("{}/worker/health", self.endpoints))
            .await
            .expect("health")
            .json()
            .await
            .expect("json")
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
    let lane = tessera_store::definitions::job_queue(Capability::Image, "sdxl", Priority::High);
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

    let metrics = rig.metrics().await;
    assert_sample(&metrics, "tessera_worker_jobs_total{outcome=\"completed\"} 1");
    assert_sample(
        &metrics,
        "tessera_worker_job_duration_seconds_count{outcome=\"completed\"} 1",
    );
    assert_sample(&metrics, "tessera_worker_jobs_in_progress 0");
    let health = rig.health().await;
    assert_eq!(health["loaded_models"], json!(["sdxl-1.0"]), "the model it ran");

    let tally = rig.stop().await;
    assert_eq!((tally.completed, tally.dropped), (1, 1), "{tally:?}");
}

async fn jobs_wait_while_comfyui_is_down_and_run_when_it_is_back(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let elsewhere = FakeComfy::start(FakeConfig::default()).await;
    let rig = rig_with(backend, elsewhere, &format!("http://{port}"), LIMITS).await;
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
    let metrics = rig.metrics().await;
    assert_sample(&metrics, "tessera_worker_comfyui_errors_total{kind=\"oom\"} 1");
    assert_sample(&metrics, "tessera_worker_jobs_total{outcome=\"failed\"} 1");
    assert_eq!(rig.stop().await.failed, 1);
}

async fn a_cancel_while_running_interrupts_comfyui(backend: Backend) {
    let rig = rig(backend, FakeConfig::default()).await;
    rig.fake.fail_next(Failure::Hang);
    let job = rig.create().await;
    rig.wait_for(&job, |state| state["status"] == "RUNNING").await;
    let health = rig.health().await;
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
    let rig = rig_with(
        backend,
        fake,
        &comfy_url,
        Limits {
            max_job_time: Some(Duration::from_secs(1)),
            ..LIMITS
        },
    )
    .await;
    let job = rig.create().await;
    let failed = rig.wait_for(&job, |state| state["status"] == "FAILED").await;
    assert_eq!(failed["error"]["code"], "WORKER_TIMEOUT");
    assert_eq!(failed["retry_available"], true);
    assert_eq!(rig.fake.interrupts().len(), 1, "ComfyUI was told to stop the prompt");
    assert_eq!(rig.stop().await.failed, 1);
}

async fn the_worker_keeps_one_socket_and_a_lost_end_message_does_not_hang_a_job(backend: Backend) {
    let rig = rig(backend, FakeConfig::default()).await;
    let first = rig.create().await;
    rig.wait_for(&first, |state| state["status"] == "COMPLETED").await;
    rig.fake.fail_next(Failure::LoseEnd);
    let started = std::time::Instant::now();
    let lost = rig.create_seeded(43).await;
    let done = rig.wait_for(&lost, |state| state["status"] == "COMPLETED").await;
    assert!(
        started.elapsed() >= tessera_worker::execution::QUIET,
        "found in /history once the socket was quiet"
    );
    assert_eq!(
        done["artifacts"].as_array().map(Vec::len),
        Some(1),
        "outputs read from /history"
    );
    let third = rig.create_seeded(44).await;
    rig.wait_for(&third, |state| state["status"] == "COMPLETED").await;
    assert_eq!(rig.fake.connections(), 1, "one WebSocket for every job");
    assert_eq!(rig.stop().await.completed, 3);
}

async fn stopping_finishes_the_running_job_and_gives_back_the_held_one(backend: Backend) {
    let mut rig = rig(
        backend,
        FakeConfig {
            job_duration: Duration::from_millis(1500),
            steps: 4,
        },
    )
    .await;
    let running = rig.create().await;
    let held = rig.create().await;
    rig.wait_for(&running, |state| state["status"] == "RUNNING").await;
    let lane = tessera_store::definitions::job_queue(Capability::Image, "sdxl", Priority::High);
    for _ in 0..100 {
        if rig.app.backend.queue.counts(&lane).await.expect("counts").visible == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = rig.app.backend.queue.counts(&lane).await.expect("counts");
    assert_eq!(
        (counts.visible, counts.in_flight),
        (0, 2),
        "the next job is received while one runs"
    );
    let tally = rig.stop_worker().await;
    assert_eq!((tally.completed, tally.released), (1, 1), "{tally:?}");
    let (_, state) = rig.call(Method::GET, &format!("/api/v1/jobs/{running}"), None).await;
    assert_eq!(state["status"], "COMPLETED", "the running job was finished");
    let (_, state) = rig.call(Method::GET, &format!("/api/v1/jobs/{held}"), None).await;
    assert_eq!(state["status"], "QUEUED", "the held job was not started");
    let counts = rig.app.backend.queue.counts(&lane).await.expect("counts");
    assert_eq!(
        (counts.visible, counts.in_flight),
        (1, 0),
        "its message is back in the queue"
    );
    assert_eq!(rig.fake.prompts().len(), 1);
    // The held job's message would reach the next test's worker on a shared emulator queue.
    let leftovers = ReceiveRequest::new(10, Duration::ZERO);
    for message in rig.app.backend.queue.receive(&lane, leftovers).await.expect("receive") {
        rig.app
            .backend
            .queue
            .delete(&lane, &message.receipt)
            .await
            .expect("delete");
    }
}

async fn a_job_that_outlasts_the_grace_period_is_interrupted_and_queued_again(backend: Backend) {
    let fake = FakeComfy::start(FakeConfig::default()).await;
    let comfy_url = fake.base_url.clone();
    let grace = Duration::from_millis(500);
    let limits = Limits {
        drain_grace: grace,
        ..LIMITS
    };
    let mut rig = rig_with(backend, fake, &comfy_url, limits).await;
    rig.fake.fail_next(Failure::Hang);
    let job = rig.create().await;
    rig.wait_for(&job, |state| state["status"] == "RUNNING").await;
    let stopping = std::time::Instant::now();
    let tally = rig.stop_worker().await;
    assert!(stopping.elapsed() >= grace, "the job had its grace period");
    assert_eq!((tally.completed, tally.released), (0, 1), "{tally:?}");
    assert_eq!(rig.fake.interrupts().len(), 1, "ComfyUI was interrupted");
    let id = tessera_core::JobId::parse(&job).expect("id");
    let record = rig.app.v1.jobs.get(&id).await.expect("get").expect("job");
    assert_eq!(
        (record.status, record.attempt, record.worker_id),
        (tessera_core::JobStatus::Queued, 0, None),
        "queued again, the attempt not counted"
    );
    let lane = tessera_store::definitions::job_queue(Capability::Image, "sdxl", Priority::High);
    let back = rig
        .app
        .backend
        .queue
        .receive(&lane, ReceiveRequest::new(10, Duration::ZERO))
        .await
        .expect("receive");
    assert_eq!(back.len(), 1, "its message is back in the queue");
    rig.app
        .backend
        .queue
        .delete(&lane, &back[0].receipt)
        .await
        .expect("delete");
}

async fn a_job_comfyui_refuses_after_its_claim_is_given_back_and_runs_again(backend: Backend) {
    let rig = rig(backend, FakeConfig::default()).await;
    rig.fake.fail_next(Failure::RefusePrompt);
    let job = rig.create().await;
    rig.wait_for(&job, |state| state["status"] == "COMPLETED").await;
    let id = tessera_core::JobId::parse(&job).expect("id");
    let record = rig.app.v1.jobs.get(&id).await.expect("get").expect("job");
    assert_eq!(record.attempt, 1, "the refused attempt was given back, not counted");
    assert_eq!(rig.fake.prompts().len(), 1, "run once");
    let metrics = rig.metrics().await;
    assert_sample(&metrics, "tessera_worker_comfyui_errors_total{kind=\"unreachable\"} 1");
    let tally = rig.stop().await;
    assert_eq!((tally.completed, tally.released), (1, 1), "{tally:?}");
}

async fn with_a_concurrency_of_two_the_next_prompt_waits_inside_comfyui(backend: Backend) {
    // Long enough that the second job's creation lands inside the first run on a loaded machine.
    let fake = FakeComfy::start(FakeConfig {
        job_duration: Duration::from_millis(1500),
        steps: 2,
    })
    .await;
    let comfy_url = fake.base_url.clone();
    let limits = Limits {
        concurrency: 2,
        ..LIMITS
    };
    let rig = rig_with(backend, fake, &comfy_url, limits).await;
    let jobs = [rig.create_seeded(1).await, rig.create_seeded(2).await];
    for job in &jobs {
        rig.wait_for(job, |state| state["status"] == "COMPLETED").await;
    }
    let timeline = rig.fake.timeline();
    assert_eq!(timeline.len(), 2);
    let first_ended = timeline[0].1.expect("the first run ended");
    assert!(
        timeline[1].0 < first_ended,
        "the second prompt was submitted while the first ran"
    );
    assert_eq!(rig.stop().await.completed, 2);
}

/// Checks that `/metrics` has the sample line `sample`.
fn assert_sample(metrics: &str, sample: &str) {
    assert!(metrics.lines().any(|line| line == sample), "{sample} in {metrics}");
}

impl Rig {
    /// The worker's `/metrics`, checked to be OpenMetrics text.
    async fn metrics(&self) -> String {
        let response = reqwest::get(format!("{}/metrics", self.endpoints))
            .await
            .expect("metrics");
        let content_type = response.headers()["content-type"].to_str().expect("type").to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = response.text().await.expect("text");
        assert!(text.ends_with("# EOF\n"), "{text}");
        text
    }

    async fn run_job(&self, key: &str, body: &Value) -> (u16, Value) {
        let response = self
            .app
            .client
            .post(format!("{}/worker/run_job", self.endpoints))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("run_job");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }
}

fn canary_run(job_id: &str) -> Value {
    json!({"job_id": job_id, "engine": "comfyui", "workflow_id": "canary", "model_id": "canary",
           "params": {"prompt": "check", "width": 96, "height": 64, "seed": 7}, "timeout_seconds": 30})
}

async fn run_job_runs_a_workflow_at_once_and_answers_in_the_spec_shape(backend: Backend) {
    let rig = rig(backend, FakeConfig::default()).await;
    let job_id = format!("diag-{}", rand::random::<u32>());
    let (status, answer) = rig.run_job(&rig.key, &canary_run(&job_id)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["job_id"], job_id.as_str());
    assert!(
        answer["execution_time_seconds"]
            .as_f64()
            .is_some_and(|seconds| seconds > 0.0)
    );
    let artifacts = answer["artifacts"].as_array().expect("artifacts");
    assert_eq!(artifacts.len(), 1);
    let artifact = &artifacts[0];
    let served = rig.fake.file("tessera_00001_.png").expect("the fake's output");
    assert_eq!(
        artifact,
        &json!({"type": "image", "path": format!("/outputs/{job_id}/tessera_00001_.png"),
                "format": "png", "width": 96, "height": 64, "file_size_bytes": served.len()})
    );
    let bucket = tessera_store::definitions::artifacts_bucket();
    let stored = rig
        .app
        .backend
        .blobs
        .get(&bucket, &format!("outputs/{job_id}/tessera_00001_.png"))
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        stored.body.as_ref(),
        served.as_slice(),
        "the stored bytes are ComfyUI's"
    );
    assert_eq!(stored.meta.content_type, "image/png");
    let thumbnail_key = format!("outputs/{job_id}/thumb_1.jpg");
    let mut thumbnail = None;
    for _ in 0..100 {
        thumbnail = rig.app.backend.blobs.get(&bucket, &thumbnail_key).await.expect("get");
        if thumbnail.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let thumbnail = thumbnail.expect("the thumbnail follows the answer");
    let small = image::load_from_memory(&thumbnail.body).expect("a JPEG");
    assert_eq!((small.width(), small.height()), (96, 64));
    assert_eq!(
        rig.fake.prompts()[0]["1"]["inputs"]["width"],
        96,
        "the params were bound"
    );
    rig.stop().await;
}

async fn run_job_refuses_bad_calls_and_reports_failures_with_their_codes(backend: Backend) {
    let rig = rig(backend, FakeConfig::default()).await;
    let body = canary_run("diag-refused");
    let (status, answer) = rig.run_job("tessera_svc_not_the_key", &body).await;
    assert_eq!((status, answer["error"]["code"].clone()), (401, json!("UNAUTHORIZED")));
    for (field, bad) in [
        ("job_id", json!({"job_id": "../etc"})),
        ("params.steps", json!({"params": {"prompt": "x", "steps": 151}})),
        ("params.width", json!({"params": {"prompt": "x", "width": 100}})),
        ("engine", json!({"engine": "a1111"})),
        ("body", json!({"surprise": true})),
    ] {
        let mut request = body.clone();
        for (name, value) in bad.as_object().expect("object") {
            request[name] = value.clone();
        }
        let (status, answer) = rig.run_job(&rig.key, &request).await;
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (400, json!("INVALID_PARAMS")),
            "{field}: {answer}"
        );
        let details: Value = serde_json::from_str(answer["error"]["details"].as_str().expect("details")).expect("json");
        assert_eq!(details["field"], field, "{answer}");
    }
    let mut unknown = body.clone();
    unknown["workflow_id"] = json!("txt2img_nothing");
    let (status, answer) = rig.run_job(&rig.key, &unknown).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (404, json!("MODEL_NOT_FOUND"))
    );
    rig.fake.fail_next(Failure::Runtime { oom: true });
    let (status, answer) = rig.run_job(&rig.key, &body).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (500, json!("OOM")),
        "{answer}"
    );
    assert_eq!(answer["status"], "failed");
    assert!(rig.fake.prompts().len() == 1, "only the OOM run reached ComfyUI");
    rig.stop().await;
}

async fn run_job_answers_503_while_comfyui_is_down(backend: Backend) {
    let body = canary_run("diag-down");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let elsewhere = FakeComfy::start(FakeConfig::default()).await;
    let rig = rig_with(backend, elsewhere, &format!("http://{port}"), LIMITS).await;
    let (status, answer) = rig.run_job(&rig.key, &body).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (503, json!("COMFYUI_UNAVAILABLE")),
        "{answer}"
    );
    rig.stop().await;
}
