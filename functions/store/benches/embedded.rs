//! Throughput of the embedded backend on one core: item gets, conditional puts, queue cycles
//! and 1 MB blob round trips. `--quick` (or `BENCH_QUICK=1`) runs a few operations of each, as
//! a smoke test.

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tessera_core::SystemClock;
use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tessera_store::{
    BlobStore, BucketDef, Condition, Item, ItemStore, Key, OutgoingMessage, Queue, QueueDef, ReceiveRequest,
    StoreResult, TableDef,
};

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// How long each metric runs in a full run.
const RUN_FOR: Duration = Duration::from_secs(2);
/// How many operations each metric runs in a quick run.
const QUICK_OPS: u64 = 50;
/// How many items the get benchmark reads from.
const ITEMS: u64 = 1000;
/// The blob size of the blob benchmark.
const BLOB_BYTES: usize = 1_048_576;

fn main() -> BenchResult<()> {
    let quick =
        std::env::args().any(|arg| arg == "--quick") || std::env::var("BENCH_QUICK").is_ok_and(|value| value == "1");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(quick))
}

async fn run(quick: bool) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(EmbeddedConfig {
        dir: dir.path().to_owned(),
        public_url: "http://localhost:8080".into(),
        clock: Arc::new(SystemClock),
    })?;
    let bench = Bench { store, quick };
    bench.gets().await?;
    bench.conditional_puts().await?;
    bench.queue_cycles().await?;
    bench.blob_round_trips().await?;
    Ok(())
}

struct Bench {
    store: EmbeddedStore,
    quick: bool,
}

impl Bench {
    /// Runs `op` with 0, 1, 2, ... for [`RUN_FOR`] (or [`QUICK_OPS`] times) and prints its rate.
    async fn measure<F, Fut>(&self, name: &str, mut op: F) -> BenchResult<()>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = StoreResult<()>>,
    {
        let started = Instant::now();
        let mut done = 0;
        loop {
            for _ in 0..QUICK_OPS {
                op(done).await?;
                done += 1;
            }
            if self.quick || started.elapsed() >= RUN_FOR {
                break;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "embedded {name}: {:.0} ops/s ({done} ops in {elapsed:.2} s)",
            done as f64 / elapsed
        );
        Ok(())
    }

    async fn gets(&self) -> BenchResult<()> {
        let table = table();
        for n in 0..ITEMS {
            ItemStore::put(&self.store, &table, job(&format!("get#{n}")), None).await?;
        }
        let keys: Vec<Key> = (0..ITEMS).map(|n| Key::new(format!("get#{n}"), "meta")).collect();
        self.measure("get", |n| {
            let key = &keys[(n % ITEMS) as usize];
            let table = &table;
            async move {
                let found = ItemStore::get(&self.store, table, key).await?;
                assert!(found.is_some(), "the item is there");
                Ok(())
            }
        })
        .await
    }

    async fn conditional_puts(&self) -> BenchResult<()> {
        let table = table();
        self.measure("conditional put", |n| {
            let item = job(&format!("put#{n}"));
            let table = &table;
            async move { ItemStore::put(&self.store, table, item, Some(Condition::NotExists)).await }
        })
        .await
    }

    async fn queue_cycles(&self) -> BenchResult<()> {
        let queue = QueueDef::standard("bench");
        let request = ReceiveRequest::new(1, Duration::ZERO);
        self.measure("queue send+receive+delete", |n| {
            let queue = &queue;
            async move {
                self.store.send(queue, OutgoingMessage::new(format!("job#{n}"))).await?;
                let received = self.store.receive(queue, request).await?;
                assert_eq!(received.len(), 1, "the message just sent comes back");
                Queue::delete(&self.store, queue, &received[0].receipt).await
            }
        })
        .await
    }

    async fn blob_round_trips(&self) -> BenchResult<()> {
        let bucket = BucketDef {
            name: "bench".into(),
            expire_after_days: None,
        };
        let body = Bytes::from(vec![7u8; BLOB_BYTES]);
        self.measure("blob put+get 1 MB", |n| {
            let (bucket, body) = (&bucket, body.clone());
            async move {
                let key = format!("outputs/{}.bin", n % 16);
                BlobStore::put(&self.store, bucket, &key, body, "application/octet-stream").await?;
                let blob = BlobStore::get(&self.store, bucket, &key).await?;
                assert_eq!(blob.map(|blob| blob.body.len()), Some(BLOB_BYTES));
                Ok(())
            }
        })
        .await
    }
}

fn table() -> TableDef {
    TableDef {
        name: "jobs".into(),
        indexes: vec![].into(),
    }
}

/// A job-like item of a few hundred bytes.
fn job(pk: &str) -> Item {
    let value = json!({
        "pk": pk,
        "sk": "meta",
        "status": "QUEUED",
        "capability": "image",
        "priority": "normal",
        "tenant": "tenant_abc123def456",
        "attempts": 0,
        "created_at": "2025-12-17T20:00:00Z",
        "input": {"prompt": "a lighthouse at dusk, oil on canvas", "width": 1024, "height": 1024},
    });
    value.as_object().cloned().unwrap_or_default()
}
