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
        json!({"status": "ok", "backend": "embedded", "checks": {"items": "ok", "queue": "ok", "blobs": "ok"}})
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
