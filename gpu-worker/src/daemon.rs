//! The worker's main loop: pull job messages from the lanes of its capabilities (high priority
//! first, long polling), claim each through the API, run it on ComfyUI while keeping the message
//! invisible, and delete the message only once the job is final. A message whose job cannot run
//! because ComfyUI is down goes straight back to the queue; the job is not failed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_core::{Capability, JobMessage, Priority};
use tessera_store::definitions::job_queue;
use tessera_store::{BlobStore, Queue, QueueDef, ReceiveRequest, ReceivedMessage};

use crate::api::{ApiClient, Claim};
use crate::runner::{ComfyClient, JobEnd, Runner};
use crate::workflow::Workflows;

/// How long a received message stays hidden; renewed while the job runs.
const VISIBILITY: Duration = Duration::from_secs(60);
/// How long a message taken by a concurrent long poll stays hidden before it is kept.
const RACE_VISIBILITY: Duration = Duration::from_secs(5);
/// How often the hiding is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(20);
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
    /// Messages released because ComfyUI was down.
    pub released: u64,
}

impl Worker {
    /// The lanes, most urgent first.
    fn lanes(&self) -> Vec<QueueDef> {
        self.priorities
            .iter()
            .copied()
            .flat_map(|priority| {
                self.capabilities
                    .iter()
                    .map(move |capability| job_queue(*capability, priority))
            })
            .collect()
    }

    /// Runs until `shutdown` resolves; then finishes the job in hand and returns.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Tally {
        let mut tally = Tally::default();
        let started = Instant::now();
        let mut last_beat: Option<Instant> = None;
        tokio::pin!(shutdown);
        loop {
            if last_beat.is_none_or(|beat| beat.elapsed() >= HEARTBEAT_EVERY) {
                self.heartbeat(&tally, started).await;
                last_beat = Some(Instant::now());
            }
            let next = tokio::select! {
                () = &mut shutdown => return tally,
                next = self.next_message() => next,
            };
            let Some((lane, message)) = next else { continue };
            self.handle(&lane, &message, &mut tally).await;
        }
    }

    /// The next message of the most urgent lane that has one: a quick pass over the lanes in
    /// order, then a long poll on all of them at once (up to `poll_wait`), so a job in any lane
    /// is seen as soon as it is sent. The long polls hide what they take only briefly, so a
    /// message taken by a poll that loses the race comes back within seconds.
    async fn next_message(&self) -> Option<(QueueDef, ReceivedMessage)> {
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

    async fn handle(&self, lane: &QueueDef, message: &ReceivedMessage, tally: &mut Tally) {
        let Ok(job) = serde_json::from_str::<JobMessage>(&message.body) else {
            tracing::error!(body = %message.body, "not a job message: dropped");
            self.delete(lane, message).await;
            return;
        };
        if !self.comfy.is_up().await {
            tracing::warn!(job = %job.job_id, "ComfyUI is not answering: the job goes back to the queue");
            tally.released += 1;
            let _ = self
                .queue
                .change_visibility(lane, &message.receipt, Duration::ZERO)
                .await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
        let (attempt, order) = match self.api.claim(job.job_id.as_str()).await {
            Ok(Claim::Run { attempt, order }) => (attempt, order),
            Ok(Claim::Drop(reason)) => {
                tracing::info!(job = %job.job_id, reason, "not running it");
                tally.dropped += 1;
                self.delete(lane, message).await;
                return;
            }
            Err(error) => {
                tracing::warn!(job = %job.job_id, %error, "claim failed: the message comes back later");
                return;
            }
        };
        let runner = Runner {
            comfy: &self.comfy,
            api: &self.api,
            blobs: self.blobs.as_ref(),
            workflows: &self.workflows,
            max_job_time: self.max_job_time,
        };
        let renew = async {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if let Err(error) = self.queue.change_visibility(lane, &message.receipt, VISIBILITY).await {
                    tracing::warn!(%error, "could not keep the message hidden");
                }
            }
        };
        // `renew` never ends; the run does.
        self.status.set_current_job(Some(order.job_id.clone()));
        let end = tokio::select! {
            end = runner.run(attempt, &order) => end,
            () = renew => JobEnd::Dropped,
        };
        self.status.set_current_job(None);
        match end {
            JobEnd::Completed(_) => tally.completed += 1,
            JobEnd::Failed(_) => tally.failed += 1,
            JobEnd::Dropped => tally.dropped += 1,
            JobEnd::ComfyUnavailable(reason) => {
                tracing::warn!(job = %order.job_id, reason, "ComfyUI failed mid-job: released for another try");
                tally.released += 1;
                let _ = self
                    .queue
                    .change_visibility(lane, &message.receipt, Duration::ZERO)
                    .await;
                return;
            }
        }
        self.delete(lane, message).await;
    }

    async fn delete(&self, lane: &QueueDef, message: &ReceivedMessage) {
        if let Err(error) = self.queue.delete(lane, &message.receipt).await {
            tracing::warn!(%error, "could not delete a message (it will come back and be dropped)");
        }
    }

    async fn heartbeat(&self, tally: &Tally, started: Instant) {
        let stats = self.comfy.system_stats().await;
        let device = stats
            .as_ref()
            .and_then(|stats| stats["devices"].get(0).cloned())
            .unwrap_or_default();
        let mb = |bytes: &serde_json::Value| bytes.as_u64().map(|bytes| bytes / (1024 * 1024));
        let used = match (mb(&device["vram_total"]), mb(&device["vram_free"])) {
            (Some(total), Some(free)) => Some(total.saturating_sub(free)),
            _ => None,
        };
        let body = json!({
            "worker_id": self.api.worker_id,
            "status": if stats.is_some() { "idle" } else { "unhealthy" },
            "capabilities": self.capabilities,
            "loaded_models": [],
            "gpu_memory_used_mb": used,
            "gpu_memory_total_mb": mb(&device["vram_total"]),
            "uptime_seconds": started.elapsed().as_secs(),
            "jobs_completed": tally.completed,
        });
        if let Err(error) = self.api.heartbeat(body).await {
            tracing::warn!(%error, "heartbeat failed");
        }
    }
}
