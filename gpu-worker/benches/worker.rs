//! The worker's own cost: the real `tessera-worker` (release) against a fake ComfyUI that takes a
//! fixed 200 ms per job, with the API in this process on the embedded store.
//!
//!   cargo bench -p tessera-worker --bench worker             60 jobs of each kind
//!   cargo bench -p tessera-worker --bench worker -- --quick  10
//!   BENCH_COMFYUI_URL=http://127.0.0.1:8188 cargo bench ...  against a real ComfyUI instead
//!
//! Prints, side by side in one run, a raw client (WebSocket, `POST /prompt`, wait for
//! `execution_success`, `GET /view`) and the worker's `POST /worker/run_job` (which also stores
//! the image and its thumbnail), alternating on the same ComfyUI with the canary workflow
//! (EmptyImage 512² → SaveImage); then the queued path's overhead per job (create → COMPLETED,
//! minus the 200 ms ComfyUI takes), median and p99; the idle gap ComfyUI sees between
//! back-to-back jobs; and the worker's peak RSS.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_api::auth::{AuthConfig, AuthService, JwtKeys};
use tessera_api::v1::{V1State, WebhookKey, WebhookSettings};
use tessera_core::request::WebhookRules;
use tessera_core::{Catalog, JobId, JobStatus, PlanTier, RandomIds, SystemClock};
use tessera_fakes::{FakeComfy, FakeConfig};
use tessera_store::Ports;
use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};

const COMFY_TIME: Duration = Duration::from_millis(200);
/// The side of the canary image, as the peers were measured.
const SIDE: u64 = 512;

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick") || std::env::var_os("BENCH_QUICK").is_some();
    let jobs = if quick { 10 } else { 60 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(jobs));
}

async fn run(jobs: usize) {
    let mut catalog: Value = serde_json::from_str(tessera_core::catalog::SEED).expect("seed");
    for plan in catalog["plans"].as_array_mut().expect("plans") {
        plan["requests_per_minute"] = json!(1_000_000);
        plan["concurrent_jobs"] = json!(1_000_000);
    }
    Catalog::install(Catalog::parse(&catalog.to_string()).expect("catalog"));
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(
        EmbeddedStore::open(EmbeddedConfig {
            dir: dir.path().to_owned(),
            public_url: "http://127.0.0.1".into(),
            clock: Arc::new(SystemClock),
        })
        .expect("store"),
    );
    let ports = Ports::from_backend(store.clone(), "embedded");
    let keys = JwtKeys::parse("b1:bench-secret-0123456789abcdef0123456789", "tessera", "tessera-api").expect("keys");
    let auth = AuthService::new(
        &ports,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        AuthConfig {
            jwt: keys,
            trust_forwarded_for: false,
        },
    );
    let v1 = V1State::new(
        &ports,
        auth.clone(),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        WebhookSettings::new(
            WebhookRules::default(),
            WebhookKey::parse("bench-webhook-key-0123456789abcdef0").expect("key"),
        ),
    );
    let backend = tessera_dev::Backend {
        ports: ports.clone(),
        embedded: Some(store.clone()),
    };
    let base = tessera_dev::spawn_app(&backend, auth.clone(), v1.clone())
        .await
        .expect("serve");
    let (_, tenant) = auth
        .signup("bench@example.com", "correct horse battery staple", "B")
        .await
        .expect("signup");
    auth.accounts().set_plan(&tenant.id, PlanTier::Pro).await.expect("plan");
    let token = auth
        .login("bench@example.com", "correct horse battery staple")
        .await
        .expect("login")
        .access_token;
    let key = auth.create_service_key("bench-worker").await.expect("key").key;
    let fake = FakeComfy::start(FakeConfig {
        job_duration: COMFY_TIME,
        steps: 4,
    })
    .await;
    let real_comfy = std::env::var("BENCH_COMFYUI_URL").ok();
    let comfy_url = real_comfy.clone().unwrap_or_else(|| fake.base_url.clone());
    let worker_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        probe.local_addr().expect("address")
    };

    let mut worker = Command::new(env!("CARGO_BIN_EXE_tessera-worker"))
        .env("TESSERA_API_URL", &base)
        .env("TESSERA_SERVICE_KEY", &key)
        .env("COMFYUI_URL", &comfy_url)
        .env("TESSERA_WORKER_ADDR", worker_addr.to_string())
        .env("TESSERA_BACKEND", "embedded")
        .env("TESSERA_DATA_DIR", dir.path())
        .env(
            "TESSERA_WORKFLOWS_DIR",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows"),
        )
        .env(
            "RUST_LOG",
            std::env::var("BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(if std::env::var_os("BENCH_WORKER_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start tessera-worker");
    let client = reqwest::Client::new();
    let seeds = std::sync::atomic::AtomicU64::new(1);
    let create = || async {
        // A new seed each time: an identical workflow would be served from ComfyUI's cache.
        let seed = seeds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = json!({"capability": "image", "params": {"prompt": "bench", "model": "canary", "resolution": format!("{SIDE}x{SIDE}"), "seed": seed}});
        let created: Value = client
            .post(format!("{base}/api/v1/jobs"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        JobId::parse(created["job_id"].as_str().expect("id")).expect("id")
    };
    let completed = |job: JobId| {
        let v1 = v1.clone();
        async move {
            loop {
                if v1
                    .jobs
                    .get(&job)
                    .await
                    .expect("get")
                    .is_some_and(|record| record.status == JobStatus::Completed)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };

    // Side by side: a raw client and `POST /worker/run_job`, alternating on the same ComfyUI.
    let run_job_url = format!("http://{worker_addr}/worker/run_job");
    wait_for_worker(&client, &run_job_url).await;
    let (mut raw, mut direct) = (Vec::new(), Vec::new());
    for round in 0..=jobs {
        let seed = 1_000_000 + 2 * round as u64;
        let started = Instant::now();
        raw_run(&client, &comfy_url, seed).await;
        let raw_time = started.elapsed();
        let started = Instant::now();
        let body = json!({"job_id": format!("bench-{round}"), "engine": "comfyui", "workflow_id": "canary", "model_id": "canary",
                          "params": {"prompt": "bench", "width": SIDE, "height": SIDE, "seed": seed + 1}, "timeout_seconds": 60});
        let answer = client
            .post(&run_job_url)
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .expect("run_job");
        assert_eq!(answer.status(), 200, "run_job: {:?}", answer.text().await);
        answer.bytes().await.expect("answer");
        let direct_time = started.elapsed();
        if round > 0 {
            // Round 0 warms both up (connections, ComfyUI's first run).
            raw.push(raw_time);
            direct.push(direct_time);
        }
    }

    // Warm-up: the worker's first long poll, connections.
    completed(create().await).await;
    let mut queued = Vec::new();
    for _ in 0..jobs {
        let started = Instant::now();
        let job = create().await;
        completed(job).await;
        queued.push(started.elapsed());
    }
    let first = fake.timeline().len();
    let batch: Vec<JobId> = futures::future::join_all((0..10).map(|_| create())).await;
    for job in batch {
        completed(job).await;
    }
    let timeline = fake.timeline();
    let gaps: Vec<Duration> = timeline[first..]
        .windows(2)
        .filter_map(|pair| Some(pair[1].0.saturating_duration_since(pair[0].1?)))
        .collect();
    let rss = peak_rss_kib(worker.id());
    let _ = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status();
    let _ = worker.wait();

    queued.sort_unstable();
    let overheads: Vec<Duration> = queued.iter().map(|time| time.saturating_sub(COMFY_TIME)).collect();
    raw.sort_unstable();
    direct.sort_unstable();
    let mut sorted_gaps = gaps.clone();
    sorted_gaps.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |values: &[Duration], q: f64| {
        values[((values.len() as f64 * q).ceil() as usize)
            .saturating_sub(1)
            .min(values.len() - 1)]
    };
    let comfy = match &real_comfy {
        Some(url) => format!("real ComfyUI at {url}"),
        None => format!("fake ComfyUI, fixed {} ms", COMFY_TIME.as_millis()),
    };
    println!("side by side, {jobs} canary jobs each ({SIDE}x{SIDE}) on the {comfy}:");
    println!(
        "  raw client (ws + POST + execution_success + /view): median {:.1} ms, p90 {:.1} ms",
        ms(at(&raw, 0.5)),
        ms(at(&raw, 0.9))
    );
    println!(
        "  POST /worker/run_job (+ image and thumbnail stored): median {:.1} ms, p90 {:.1} ms",
        ms(at(&direct, 0.5)),
        ms(at(&direct, 0.9))
    );
    println!(
        "  run_job over the raw client: median {:+.1} ms, p90 {:+.1} ms",
        ms(at(&direct, 0.5)) - ms(at(&raw, 0.5)),
        ms(at(&direct, 0.9)) - ms(at(&raw, 0.9)),
    );
    let queued = if real_comfy.is_some() {
        format!(
            "median {:.1} ms, p99 {:.1} ms per job (including ComfyUI's own time); the raw client's median is {:.1} ms",
            ms(at(&queued, 0.5)),
            ms(at(&queued, 0.99)),
            ms(at(&raw, 0.5))
        )
    } else {
        format!(
            "overhead median {:.1} ms, p99 {:.1} ms (create → COMPLETED minus {} ms)",
            ms(at(&overheads, 0.5)),
            ms(at(&overheads, 0.99)),
            COMFY_TIME.as_millis()
        )
    };
    println!("queued path ({jobs} sequential jobs through the API, queue and worker): {queued}");
    if let Some(longest) = sorted_gaps.last() {
        println!(
            "idle gap between back-to-back jobs ({} gaps, as the fake saw them): median {:.1} ms, max {:.1} ms",
            sorted_gaps.len(),
            ms(at(&sorted_gaps, 0.5)),
            ms(*longest)
        );
    }
    println!("worker peak RSS: {:.1} MiB", rss as f64 / 1024.0);
}

/// Waits until the worker's endpoints answer.
async fn wait_for_worker(client: &reqwest::Client, run_job_url: &str) {
    for _ in 0..500 {
        if client.post(run_job_url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the worker's endpoints never answered");
}

/// One canary run the plainest way a client can: connect a WebSocket, submit, wait for success,
/// fetch (over a kept-alive HTTP client, as the worker's own).
async fn raw_run(http: &reqwest::Client, base: &str, seed: u64) {
    use futures::StreamExt;
    let client_id = format!("raw-{seed}");
    let url = format!("{}/ws?clientId={client_id}", base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let graph = json!({"1": {"class_type": "EmptyImage", "inputs": {"width": SIDE, "height": SIDE, "batch_size": 1, "color": seed % 16_777_216}},
                       "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "raw"}}});
    let prompt_id = tessera_core::ids::random_uuid();
    http.post(format!("{base}/prompt"))
        .json(&json!({"prompt": graph, "client_id": client_id, "prompt_id": prompt_id}))
        .send()
        .await
        .expect("post");
    let mut file = String::new();
    while let Some(Ok(frame)) = socket.next().await {
        let tokio_tungstenite::tungstenite::Message::Text(text) = frame else {
            continue;
        };
        let message: Value = serde_json::from_str(&text).unwrap_or_default();
        if message["type"] == "executed" {
            file = message["data"]["output"]["images"][0]["filename"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
        if message["type"] == "execution_success" && message["data"]["prompt_id"] == prompt_id.as_str() {
            break;
        }
    }
    http.get(format!("{base}/view?filename={file}&subfolder=&type=output"))
        .send()
        .await
        .expect("view")
        .bytes()
        .await
        .expect("bytes");
}

/// VmHWM of a process, from /proc (0 elsewhere).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}
