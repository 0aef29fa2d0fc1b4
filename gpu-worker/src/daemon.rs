//! The worker's main loop: pull job messages from the lanes of its capabilities (high priority
//! first, long polling), claim each through the API, run it on ComfyUI while keeping the message
//! invisible, and delete the message only once the job is final. A message whose job cannot run
//! because ComfyUI is down goes straight back to the queue; the job is not failed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::json;
use tessera_core::{Capability, JobMessage, Priority};
use tessera_store::definitions::job_queue;
use tessera_store::{BlobStore, Queue, QueueDef, ReceiveRequest, ReceivedMessage};

use crate::api::{ApiClient, Claim};
use crate::client::ComfyClient;
use crate::metrics::Outcome;
use crate::runner::{JobEnd, Runner};
use crate::workflow::Workflows;
use tokio::sync::Semaphore;

/// How long a received message stays hidden; renewed while the job runs.
const VISIBILITY: Duration = Duration::from_secs(60);
/// How long a message taken by a concurrent long poll stays hidden before it is kept.
const RACE_VISIBILITY: Duration = Duration::from_secs(5);
/// How often the hiding is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// The most jobs one worker runs on its ComfyUI at once.
pub const MAX_CONCURRENCY: usize = 8;
/// How often the worker sends a heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);

/// What the worker runs with.
pub struct Worker {
    /// The API.
    pub api: ApiClient,
    /// ComfyUI.
    pub comfy: ComfyClient,
    /// The job queues.
    pub queue: Arc<dyn Queue>,
    /// The artifacts.
    pub blobs: Arc<dyn BlobStore>,
    /// The workflows.
    pub workflows: Workflows,
    /// What it serves.
    pub capabilities: Vec<Capability>,
    /// The priorities it takes (all, most urgent first, unless dedicated).
    pub priorities: Vec<Priority>,
    /// The longest long poll.
    pub poll_wait: Duration,
    /// What it is doing, for `/worker/health`.
    pub status: crate::status::WorkerStatus,
    /// A cap on any job's run time (the job's own timeout applies when shorter).
    pub max_job_time: Option<Duration>,
    /// How long a stopping worker lets the job in hand finish before it interrupts it and gives
    /// it back to the queue.
    pub drain_grace: Duration,
    /// How many jobs it runs on ComfyUI at once (1 to [`MAX_CONCURRENCY`]): ComfyUI queues the
    /// prompts, so more than 1 keeps the next prompt waiting inside ComfyUI.
    pub concurrency: usize,
}

/// What the worker has done, for heartbeats and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Jobs completed.
    pub completed: u64,
    /// Jobs failed.
    pub failed: u64,
    /// Jobs dropped (cancelled, duplicates, taken over).
    pub dropped: u64,
    /// Messages given back to the queue: ComfyUI was down, or the worker was stopping.
    pub released: u64,
}

impl Tally {
    fn record(&mut self, end: &JobEnd) {
        match end {
            JobEnd::Completed(_) => self.completed += 1,
            JobEnd::Failed(_) => self.failed += 1,
            JobEnd::Dropped => self.dropped += 1,
            JobEnd::ComfyUnavailable(_) | JobEnd::GivenBack => self.released += 1,
            JobEnd::Retry => {}
        }
    }
}

/// What the jobs in hand share: turns on ComfyUI (closed when the worker stops, so a job not
/// yet started is given back), and the signal that the grace period for stopping is over.
struct Turns {
    comfy: Semaphore,
    give_back: AtomicBool,
}

/// A received message and its lane.
type Delivery = (QueueDef, ReceivedMessage);

/// A boxed future the main loop polls.
type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A claimed job's end, as the metrics count it.
fn outcome(end: &JobEnd) -> Outcome {
    match end {
        JobEnd::Completed(_) => Outcome::Completed,
        JobEnd::Failed(_) => Outcome::Failed,
        JobEnd::Dropped => Outcome::Dropped,
        JobEnd::ComfyUnavailable(_) | JobEnd::GivenBack | JobEnd::Retry => Outcome::Released,
    }
}

/// Polls the future while there is one; pending forever otherwise.
async fn maybe<F: Future + Unpin>(future: &mut Option<F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

impl Worker {
    /// The lanes, most urgent first; within a priority, the lanes of the models it ran last
    /// (which ComfyUI keeps loaded) before the others (model affinity). Only the catalog models
    /// of its capabilities that it has a workflow for.
    fn lanes(&self) -> Vec<QueueDef> {
        let loaded = self.status.loaded_models();
        let catalog = tessera_core::Catalog::active();
        let mut models: Vec<&tessera_core::catalog::ModelSpec> = catalog
            .models
            .iter()
            .filter(|model| self.capabilities.contains(&model.capability))
            .filter(|model| self.workflows.get(&model.workflow_id()).is_ok())
            .collect();
        models.sort_by_key(|model| {
            let versioned = model.versioned_id();
            loaded.iter().position(|name| *name == versioned).unwrap_or(usize::MAX)
        });
        self.priorities
            .iter()
            .flat_map(|priority| {
                models
                    .iter()
                    .map(move |model| job_queue(model.capability, &model.id, *priority))
            })
            .collect()
    }

    /// Runs until `shutdown` resolves; then stops receiving, gives back a job not yet started,
    /// lets the job in hand finish for up to `drain_grace` (then interrupts it and gives it back
    /// to the queue), and returns.
    ///
    /// While a job runs, the next message is received and kept hidden; its handling starts at
    /// once and waits for ComfyUI, so the next prompt is submitted as soon as the current one
    /// ends on ComfyUI, while the current job's outputs are still being stored.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Tally {
        let mut tally = Tally::default();
        let started = Instant::now();
        // The jobs on ComfyUI at once, and one more received and waiting for its turn.
        let concurrency = self.concurrency.clamp(1, MAX_CONCURRENCY);
        let turns = Turns {
            comfy: Semaphore::new(concurrency),
            give_back: AtomicBool::new(false),
        };
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        let mut in_hand: FuturesUnordered<Pending<'_, JobEnd>> = FuturesUnordered::new();
        let mut receiving: Option<Pending<'_, Option<Delivery>>> = None;
        let mut stopping = false;
        let grace_ends = tokio::time::sleep(Duration::MAX);
        tokio::pin!(shutdown, grace_ends);
        loop {
            if stopping && in_hand.is_empty() {
                return tally;
            }
            if !stopping && receiving.is_none() && in_hand.len() < concurrency + 1 {
                receiving = Some(Box::pin(self.next_message()));
            }
            tokio::select! {
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    receiving = None;
                    // A job waiting for its turn is not started: its message goes back.
                    turns.comfy.close();
                    grace_ends.as_mut().reset(tokio::time::Instant::now() + self.drain_grace);
                }
                () = &mut grace_ends, if stopping && !turns.give_back.load(Ordering::Relaxed) => {
                    tracing::warn!("the grace period is over: the job in hand is interrupted and given back");
                    turns.give_back.store(true, Ordering::Relaxed);
                }
                received = maybe(&mut receiving) => {
                    receiving = None;
                    if let Some((lane, message)) = received {
                        let turns = &turns;
                        in_hand.push(Box::pin(async move { self.handle(&lane, &message, turns).await }));
                    }
                }
                Some(end) = in_hand.next(), if !in_hand.is_empty() => tally.record(&end),
                _ = beat.tick() => self.heartbeat(&tally, started).await,
            }
        }
    }

    /// The next message of the most urgent lane that has one: a quick pass over the lanes in
    /// order, then a long poll on all of them at once (up to `poll_wait`), so a job in any lane
    /// is seen as soon as it is sent. The long polls hide what they take only briefly, so a
    /// message taken by a poll that loses the race comes back within seconds.
    async fn next_message(&self) -> Option<Delivery> {
        let lanes = self.lanes();
        for lane in &lanes {
            let request = ReceiveRequest {
                visibility_timeout: Some(VISIBILITY),
                ..ReceiveRequest::new(1, Duration::ZERO)
            };
            if let Ok(mut messages) = self.queue.receive(lane, request).await
                && let Some(message) = messages.pop()
            {
                return Some((lane.clone(), message));
            }
        }
        if lanes.is_empty() {
            return None;
        }
        let polls = lanes.iter().map(|lane| {
            let request = ReceiveRequest {
                visibility_timeout: Some(RACE_VISIBILITY),
                ..ReceiveRequest::new(1, self.poll_wait)
            };
            Box::pin(async move { (lane, self.queue.receive(lane, request).await) })
        });
        let ((lane, received), _, _) = futures::future::select_all(polls).await;
        match received {
            Ok(mut messages) => {
                let message = messages.pop()?;
                if let Err(error) = self.queue.change_visibility(lane, &message.receipt, VISIBILITY).await {
                    tracing::warn!(%error, "could not keep a received message hidden");
                }
                Some((lane.clone(), message))
            }
            Err(error) => {
                tracing::warn!(%error, "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                None
            }
        }
    }

    /// Handles one message: waits for ComfyUI to be free (keeping the message hidden), claims the
    /// job, runs it, and deletes the message once the job is final.
    async fn handle(&self, lane: &QueueDef, message: &ReceivedMessage, turns: &Turns) -> JobEnd {
        let renew = async {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if let Err(error) = self.queue.change_visibility(lane, &message.receipt, VISIBILITY).await {
                    tracing::warn!(%error, "could not keep the message hidden");
                }
            }
        };
        // `renew` never ends; the handling does.
        let end = tokio::select! {
            end = self.claim_and_run(lane, message, turns) => end,
            () = renew => JobEnd::Dropped,
        };
        match &end {
            JobEnd::ComfyUnavailable(reason) => {
                tracing::warn!(reason, "ComfyUI is not answering: the message goes back to the queue");
                let _ = self
                    .queue
                    .change_visibility(lane, &message.receipt, Duration::ZERO)
                    .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            JobEnd::GivenBack => {
                let _ = self
                    .queue
                    .change_visibility(lane, &message.receipt, Duration::ZERO)
                    .await;
            }
            JobEnd::Retry => {}
            JobEnd::Completed(_) | JobEnd::Failed(_) | JobEnd::Dropped => self.delete(lane, message).await,
        }
        end
    }

    async fn claim_and_run(&self, lane: &QueueDef, message: &ReceivedMessage, turns: &Turns) -> JobEnd {
        let Ok(job) = serde_json::from_str::<JobMessage>(&message.body) else {
            tracing::error!(lane = %lane.name, body = %message.body, "not a job message: dropped");
            return JobEnd::Dropped;
        };
        let Ok(turn) = turns.comfy.acquire().await else {
            return JobEnd::GivenBack;
        };
        if !self.comfy.is_up().await {
            return JobEnd::ComfyUnavailable(format!("job {} not started", job.job_id));
        }
        let claiming = Instant::now();
        let (attempt, order) = match self.api.claim(job.job_id.as_str()).await {
            Ok(Claim::Run { attempt, order }) => (attempt, order),
            Ok(Claim::Drop(reason)) => {
                tracing::info!(job = %job.job_id, reason, "not running it");
                return JobEnd::Dropped;
            }
            Err(error) => {
                tracing::warn!(job = %job.job_id, %error, "claim failed: the message comes back later");
                return JobEnd::Retry;
            }
        };
        let runner = Runner {
            comfy: &self.comfy,
            api: &self.api,
            blobs: &self.blobs,
            workflows: &self.workflows,
            max_job_time: self.max_job_time,
            give_back: &turns.give_back,
        };
        tracing::debug!(job = %order.job_id, claim_ms = claiming.elapsed().as_secs_f64() * 1e3, "claimed");
        self.status.set_current_job(Some(order.job_id.clone()));
        let in_progress = self.comfy.metrics().job_started();
        let end = runner.run(attempt, &order, turn).await;
        in_progress.finish(outcome(&end));
        if matches!(end, JobEnd::Completed(_)) {
            self.status.ran_model(&order.model_id);
        }
        self.status.set_current_job(None);
        end
    }

    async fn delete(&self, lane: &QueueDef, message: &ReceivedMessage) {
        if let Err(error) = self.queue.delete(lane, &message.receipt).await {
            tracing::warn!(%error, "could not delete a message (it will come back and be dropped)");
        }
    }

    async fn heartbeat(&self, tally: &Tally, started: Instant) {
        let stats = self.comfy.system_stats().await;
        let gpu = self.status.gpu_sample(stats.as_ref()).await;
        let status = match (&stats, self.status.current_job()) {
            (None, _) => "unhealthy",
            (Some(_), Some(_)) => "busy",
            (Some(_), None) => "idle",
        };
        let body = json!({
            "worker_id": self.api.worker_id,
            "status": status,
            "capabilities": self.capabilities,
            "loaded_models": self.status.loaded_models(),
            "gpu_memory_used_mb": gpu.memory_used_mb,
            "gpu_memory_total_mb": gpu.memory_total_mb,
            "uptime_seconds": started.elapsed().as_secs(),
            "jobs_completed": tally.completed,
        });
        if let Err(error) = self.api.heartbeat(body).await {
            tracing::warn!(%error, "heartbeat failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tessera_core::{Catalog, SystemClock};
    use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};

    use super::*;

    fn worker(dir: &Path) -> Worker {
        let store = Arc::new(
            EmbeddedStore::open(EmbeddedConfig {
                dir: dir.to_owned(),
                public_url: "http://127.0.0.1".into(),
                clock: Arc::new(SystemClock),
            })
            .expect("store"),
        );
        Worker {
            api: ApiClient::new("http://127.0.0.1:9", "tessera_svc_x_y", "lanes"),
            comfy: ComfyClient::new("http://127.0.0.1:9"),
            queue: store.clone(),
            blobs: store,
            workflows: Workflows::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")).expect("workflows"),
            capabilities: vec![Capability::Image],
            priorities: vec![Priority::High, Priority::Normal],
            poll_wait: Duration::from_secs(1),
            status: crate::status::WorkerStatus::default(),
            max_job_time: None,
            drain_grace: Duration::from_secs(1),
            concurrency: 1,
        }
    }

    fn names(lanes: &[QueueDef]) -> Vec<&str> {
        lanes.iter().map(|lane| lane.name.as_str()).collect()
    }

    #[test]
    fn lanes_go_by_priority_then_the_loaded_models_first() {
        let dir = tempfile::tempdir().expect("dir");
        let worker = worker(dir.path());
        assert_eq!(
            names(&worker.lanes()),
            [
                "jobs-image-sdxl-high",
                "jobs-image-canary-high",
                "jobs-image-flux-schnell-high",
                "jobs-image-sdxl-normal",
                "jobs-image-canary-normal",
                "jobs-image-flux-schnell-normal",
            ],
            "the catalog's image models it has workflows for"
        );
        let flux = Catalog::active().model("flux-schnell").expect("flux").versioned_id();
        worker.status.ran_model(&flux);
        assert_eq!(
            names(&worker.lanes()),
            [
                "jobs-image-flux-schnell-high",
                "jobs-image-sdxl-high",
                "jobs-image-canary-high",
                "jobs-image-flux-schnell-normal",
                "jobs-image-sdxl-normal",
                "jobs-image-canary-normal",
            ],
            "a loaded model's lanes come first within each priority"
        );
    }
}
