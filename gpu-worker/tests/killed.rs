//! The real `tessera-worker` process. Killed mid-job: it takes a job and is killed (SIGKILL) while
//! ComfyUI runs it; once its lease and the message's visibility run out, a second worker
//! re-claims the job, which completes exactly once and is charged once. Misconfigured: it stops
//! at once with a message naming the variable.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tessera_api::auth::{AuthConfig, AuthService, JwtKeys};
use tessera_api::internal::LEASE_SECONDS;
use tessera_api::v1::{V1State, WebhookKey, WebhookSettings};
use tessera_core::request::WebhookRules;
use tessera_core::{Capability, Clock, JobId, JobStatus, PlanTier, Priority, RandomIds};
use tessera_fakes::{Failure, FakeComfy, FakeConfig};
use tessera_store::Ports;
use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tessera_worker::api::ApiClient;
use tessera_worker::client::ComfyClient;
use tessera_worker::daemon::Worker;
use tessera_worker::workflow::Workflows;
use time::OffsetDateTime;

/// Real time plus an offset the test moves forward.
#[derive(Debug, Clone, Default)]
struct ShiftedClock(Arc<Mutex<i64>>);

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(*self.0.lock().expect("clock"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_process_is_killed_completes_once_on_another_worker() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = ShiftedClock::default();
    let store = Arc::new(
        EmbeddedStore::open(EmbeddedConfig {
            dir: dir.path().to_owned(),
            public_url: "http://127.0.0.1".into(),
            clock: Arc::new(clock.clone()),
        })
        .expect("store"),
    );
    let ports = Ports::from_backend(store.clone(), "embedded");
    let keys = JwtKeys::parse("k1:killed-test-secret-0123456789abcdef012", "tessera", "tessera-api").expect("keys");
    let auth = AuthService::new(
        &ports,
        Arc::new(clock.clone()),
        Arc::new(RandomIds),
        AuthConfig {
            jwt: keys,
            trust_forwarded_for: false,
        },
    );
    let v1 = V1State::new(
        &ports,
        auth.clone(),
        Arc::new(clock.clone()),
        Arc::new(RandomIds),
        WebhookSettings::new(
            WebhookRules::default(),
            WebhookKey::parse("killed-webhook-key-0123456789abcdef").expect("key"),
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
        .signup("killed@example.com", "correct horse battery staple", "K")
        .await
        .expect("signup");
    auth.accounts().set_plan(&tenant.id, PlanTier::Pro).await.expect("plan");
    let token = auth
        .login("killed@example.com", "correct horse battery staple")
        .await
        .expect("login")
        .access_token;
    let service_key = auth.create_service_key("gpu-worker").await.expect("key").key;
    let workflows_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");

    let hanging = FakeComfy::start(FakeConfig::default()).await;
    hanging.fail_next(Failure::Hang);
    let mut doomed = Command::new(env!("CARGO_BIN_EXE_tessera-worker"))
        .env("TESSERA_API_URL", &base)
        .env("TESSERA_SERVICE_KEY", &service_key)
        .env("COMFYUI_URL", &hanging.base_url)
        .env("TESSERA_BACKEND", "embedded")
        .env("TESSERA_DATA_DIR", dir.path())
        .env("TESSERA_WORKER_ID", "doomed")
        .env("TESSERA_WORKER_ADDR", "127.0.0.1:0")
        .env("TESSERA_WORKFLOWS_DIR", &workflows_dir)
        .env("TESSERA_WORKER_POLL_SECONDS", "1")
        .stdout(Stdio::null())
        .spawn()
        .expect("start tessera-worker");

    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(&token)
        .json(&json!({"capability": "image", "params": {"prompt": "survive", "resolution": "64x64", "steps": 2}}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let job = JobId::parse(created["job_id"].as_str().expect("id")).expect("id");
    let status = |wanted: JobStatus| {
        let v1 = v1.clone();
        let job = job.clone();
        async move {
            for _ in 0..200 {
                let record = v1.jobs.get(&job).await.expect("get").expect("job");
                if record.status == wanted {
                    return record;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("job never reached {wanted:?}");
        }
    };
    let running = status(JobStatus::Running).await;
    assert_eq!((running.worker_id.as_deref(), running.attempt), (Some("doomed"), 1));
    doomed.kill().expect("kill the worker");
    doomed.wait().expect("reaped");

    *clock.0.lock().expect("clock") += LEASE_SECONDS + 1;
    let healthy = FakeComfy::start(FakeConfig::default()).await;
    let rescuer = Worker {
        api: ApiClient::new(&base, &service_key, "rescuer"),
        comfy: ComfyClient::new(&healthy.base_url),
        queue: ports.queue.clone(),
        blobs: ports.blobs.clone(),
        workflows: Workflows::load(&workflows_dir).expect("workflows"),
        capabilities: vec![Capability::Image],
        priorities: Priority::ALL.to_vec(),
        poll_wait: Duration::from_millis(200),
        status: Default::default(),
        max_job_time: None,
        drain_grace: Duration::from_secs(5),
        concurrency: 1,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rescuing = tokio::spawn(async move {
        rescuer
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    let done = status(JobStatus::Completed).await;
    assert_eq!((done.worker_id.as_deref(), done.attempt), (Some("rescuer"), 2));
    assert_eq!(done.artifacts.len(), 1);
    let _ = stop.send(());
    let tally = rescuing.await.expect("rescuer");
    assert_eq!(tally.completed, 1);
    assert_eq!((hanging.prompts().len(), healthy.prompts().len()), (1, 1));
    // The day the job was charged to (the test's shifted clock may have crossed midnight since).
    let day = &done.usage_day;
    let usage = v1.jobs.usage(&tenant.id, day, day).await.expect("usage");
    let cost = i64::try_from(done.cost).expect("cost");
    assert_eq!(
        (usage[0].tokens_used, usage[0].jobs_completed),
        (cost, 1),
        "charged once, completed once"
    );
}

#[test]
fn a_bad_setting_stops_the_worker_with_a_message_naming_the_variable() {
    let dir = tempfile::tempdir().expect("dir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, r#"{"models": "not a list"}"#).expect("write");
    for (variable, value) in [
        ("TESSERA_CATALOG", catalog.to_str().expect("path")),
        ("TESSERA_WORKER_CONCURRENCY", "0"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_tessera-worker"))
            .env("TESSERA_API_URL", "http://127.0.0.1:9")
            .env("TESSERA_SERVICE_KEY", "tessera_svc_x_y")
            .env("TESSERA_DATA_DIR", dir.path())
            .env(variable, value)
            .output()
            .expect("run tessera-worker");
        assert!(!output.status.success(), "{variable}={value} was accepted");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains(variable), "{variable}: {said}");
    }
}
