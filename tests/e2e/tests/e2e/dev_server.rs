//! The dev server over HTTP on both backends, and the embedded store across restarts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tessera_core::SystemClock;
use tessera_dev::{BackendKind, Config};
use tessera_store::definitions::{artifacts_bucket, jobs_table, webhook_queue};
use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tessera_store::item::Key;
use tessera_store::queue::{OutgoingMessage, ReceiveRequest};
use tessera_store::{BlobStore, ItemStore, Queue};

use crate::support::{Backend, test_prefix, unique};

/// A dev server on a free loopback port; stops when the returned sender is dropped or fired.
async fn spawn_app(config: Config) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        tessera_dev::serve(&config, listener, async move {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    (base, stop, server)
}

fn config(backend: BackendKind, dir: &std::path::Path) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("defaults");
    config.backend = backend;
    config.data_dir = dir.to_owned();
    config.worker = false;
    config
}

#[tokio::test]
async fn health_reports_ok_with_the_embedded_backends_state() {
    let dir = tempfile::tempdir().expect("dir");
    let (base, stop, server) = spawn_app(config(BackendKind::Embedded, dir.path())).await;
    let response = reqwest::get(format!("{base}/health")).await.expect("health");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"status": "ok", "backend": "embedded", "checks": {"items": "ok", "queue": "ok", "blobs": "ok"},
               "pipeline": "off (set TESSERA_CANARY_SECONDS)"})
    );
    assert!(
        dir.path().join("store.sqlite3").exists(),
        "the store lives in the data dir"
    );
    stop.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("graceful stop")
        .expect("server");
}

#[tokio::test]
async fn health_reports_ok_on_the_aws_backend() {
    let _emulator = Backend::aws().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = config(BackendKind::Aws, dir.path());
    config.naming = tessera_store::definitions::Naming::new(test_prefix()).expect("prefix");
    let (base, _stop, _server) = spawn_app(config).await;
    let body: Value = reqwest::get(format!("{base}/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["backend"], "aws");
}

#[tokio::test]
async fn unknown_routes_answer_404_not_500() {
    let dir = tempfile::tempdir().expect("dir");
    let (base, _stop, _server) = spawn_app(config(BackendKind::Embedded, dir.path())).await;
    for path in [
        "/nope",
        "/blobs/artifacts",
        "/blobs/artifacts/x?expires=abc&signature=zz",
    ] {
        let status = reqwest::get(format!("{base}{path}"))
            .await
            .expect("get")
            .status()
            .as_u16();
        assert!(matches!(status, 403 | 404), "{path}: {status}");
    }
}

fn open(dir: &std::path::Path) -> EmbeddedStore {
    EmbeddedStore::open(EmbeddedConfig {
        dir: dir.to_owned(),
        public_url: "http://127.0.0.1:8000".into(),
        clock: Arc::new(SystemClock),
    })
    .expect("open")
}

#[tokio::test]
async fn the_embedded_store_keeps_items_messages_and_blobs_across_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let key = Key::new(unique("job#"), "meta");
    let queue = webhook_queue();
    let blob_key = format!("outputs/{}/output.png", unique("job_"));
    {
        let store = open(dir.path());
        let item = json!({"pk": key.pk, "sk": key.sk, "status": "QUEUED"})
            .as_object()
            .cloned()
            .expect("object");
        ItemStore::put(&store, &jobs_table(), item, None).await.expect("put");
        store.send(&queue, OutgoingMessage::new("event")).await.expect("send");
        BlobStore::put(
            &store,
            &artifacts_bucket(),
            &blob_key,
            Bytes::from_static(b"png"),
            "image/png",
        )
        .await
        .expect("put blob");
    }
    let reopened = open(dir.path());
    let item = ItemStore::get(&reopened, &jobs_table(), &key)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(item["status"], "QUEUED");
    let messages = reopened
        .receive(&queue, ReceiveRequest::new(10, Duration::ZERO))
        .await
        .expect("receive");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, "event");
    let blob = BlobStore::get(&reopened, &artifacts_bucket(), &blob_key)
        .await
        .expect("get blob")
        .expect("kept");
    assert_eq!(blob.body, Bytes::from_static(b"png"));
}

/// `cargo run` runs a worker in process: a job goes from `POST /api/v1/jobs` to `COMPLETED`
/// through the embedded queue and a (fake) ComfyUI at `COMFYUI_URL`.
#[tokio::test]
async fn the_dev_server_runs_jobs_on_its_in_process_worker() {
    let fake = tessera_fakes::FakeComfy::start(tessera_fakes::FakeConfig::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = config(BackendKind::Embedded, dir.path());
    config.worker = true;
    config.comfyui_url = fake.base_url.clone();
    config.workflows_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gpu-worker/workflows");
    let (base, stop, server) = spawn_app(config).await;
    let client = reqwest::Client::new();
    let email = format!("{}@example.com", unique("dev"));
    let signup: Value = client
        .post(format!("{base}/api/auth/signup"))
        .json(&json!({"email": email, "password": "correct horse battery staple", "name": "Dev"}))
        .send()
        .await
        .expect("signup")
        .json()
        .await
        .expect("json");
    let token = signup["tokens"]["access_token"].as_str().expect("token").to_owned();
    let created: Value = client
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(&token)
        .json(&json!({"capability": "image", "params": {"prompt": "a dev run", "resolution": "64x64", "steps": 2}}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let job = created["job_id"].as_str().expect("id").to_owned();
    // Follow the job on its event stream (one request: the Free plan allows 5 a minute).
    let mut events = client
        .get(format!("{base}/api/v1/jobs/{job}/events"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("events");
    let mut text = String::new();
    let streamed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = events.chunk().await.expect("chunk") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(streamed.is_ok(), "the job ended: {text}");
    let last = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .next_back()
        .expect("an event");
    let state: Value = serde_json::from_str(last).expect("json");
    assert_eq!(state["status"], "COMPLETED", "{state}");
    let url = state["artifacts"][0]["url"].as_str().expect("url");
    let png = reqwest::get(url).await.expect("download").bytes().await.expect("bytes");
    assert_eq!(
        png.as_ref(),
        fake.file("tessera_00001_.png").expect("served").as_slice()
    );
    assert!(dir.path().join("worker.key").exists(), "the worker's key is kept");
    stop.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful stop")
        .expect("server");
}

#[tokio::test]
async fn the_dev_server_delivers_a_signed_webhook_with_its_own_consumer() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = config(BackendKind::Embedded, dir.path());
    config.webhooks.allow_http = true;
    config.webhooks.allow_private = true;
    let (base, _stop, _server) = spawn_app(config).await;
    let receiver = tessera_fakes::webhook::WebhookReceiver::start().await;
    let client = reqwest::Client::new();
    let signup = json!({"email": format!("{}@example.com", unique("hooks")), "password": "correct horse battery staple", "name": "H"});
    let session: Value = client
        .post(format!("{base}/api/auth/signup"))
        .json(&signup)
        .send()
        .await
        .expect("signup")
        .json()
        .await
        .expect("json");
    let token = session["tokens"]["access_token"].as_str().expect("token");
    let secret: Value = client
        .post(format!("{base}/api/v1/webhooks/secret"))
        .bearer_auth(token)
        .send()
        .await
        .expect("secret")
        .json()
        .await
        .expect("json");
    let secret = secret["secret"].as_str().expect("secret");
    let body = json!({"capability": "image", "params": {"prompt": "a red fox"}, "webhook_url": receiver.url("/fox")});
    let created: Value = client
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let job = created["job_id"].as_str().expect("job id");
    let cancelled = client
        .delete(format!("{base}/api/v1/jobs/{job}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancelled.status(), 200);

    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received[0].json()["event"], "job.cancelled");
    let header = received[0].header("x-tessera-signature").expect("signed");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(
        tessera_fakes::webhook::verify_signature(header, &[secret], received[0].body.as_bytes(), now, 300),
        Ok(0)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("webhook.key"))
            .expect("the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the webhook key is readable by its owner only");
    }
}
