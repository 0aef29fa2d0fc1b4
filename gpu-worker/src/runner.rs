//! Runs one claimed job: binds its workflow, executes it on ComfyUI while reporting progress to
//! the API (which also tells it about a cancel), stores every output, and completes or fails the
//! job with the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tessera_store::BlobStore;
use tokio::sync::SemaphorePermit;

use crate::api::{ApiClient, ApiError, JobFailure, WorkOrder};
use crate::client::ComfyClient;
use crate::comfy::OutputFile;
use crate::execution::{Execution, Thumbnails, execute, failure, store_outputs};
use crate::workflow::{RunParams, Workflows};

/// How a job ended for this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// Completed with this many artifacts.
    Completed(usize),
    /// Failed (recorded with the API).
    Failed(&'static str),
    /// Cancelled or taken over: interrupted and dropped.
    Dropped,
    /// ComfyUI did not answer: the job was given back and its message goes back to the queue.
    ComfyUnavailable(String),
    /// The worker is stopping: the job was given back unstarted, or interrupted when the grace
    /// period ran out, and its message goes back to the queue.
    GivenBack,
    /// The API could not be reached: the message comes back when its hiding ends.
    Retry,
}

/// Everything a run needs.
pub struct Runner<'a> {
    /// ComfyUI.
    pub comfy: &'a ComfyClient,
    /// The API.
    pub api: &'a ApiClient,
    /// Where artifacts go.
    pub blobs: &'a Arc<dyn BlobStore>,
    /// The workflows.
    pub workflows: &'a Workflows,
    /// This worker's cap on a job's run time, below the job's own timeout.
    pub max_job_time: Option<Duration>,
    /// Set when the worker's grace period for stopping has run out: the run is interrupted and
    /// the job given back to the queue.
    pub give_back: &'a AtomicBool,
}

impl Runner<'_> {
    /// Runs the job to its end. `comfy_turn` is held while the job runs on ComfyUI, and given back
    /// as soon as ComfyUI is done with it, before the outputs are stored.
    pub async fn run(&self, attempt: u32, order: &WorkOrder, comfy_turn: SemaphorePermit<'_>) -> JobEnd {
        let workflow = match self.workflows.get(&order.workflow_id) {
            Ok(workflow) => workflow,
            Err(error) => {
                let missing = failure(
                    "MODEL_NOT_FOUND",
                    "no workflow for this model",
                    error.to_string(),
                    false,
                );
                return self.fail(order, attempt, missing).await;
            }
        };
        let params = RunParams {
            prompt: order.params.prompt.clone(),
            negative_prompt: order.params.negative_prompt.clone(),
            width: order.params.width,
            height: order.params.height,
            steps: order.params.steps,
            cfg_scale: None,
            seed: order.params.seed,
            checkpoint: None,
        };
        let graph = workflow.apply(&params);
        let allowed = Duration::from_secs(order.timeout_seconds.max(1));
        let allowed = self.max_job_time.map_or(allowed, |cap| cap.min(allowed));
        let report = |percent: u8| async move {
            if self.give_back.load(Ordering::Relaxed) {
                return false;
            }
            match self.api.progress(&order.job_id, attempt, percent).await {
                Err(ApiError::Superseded { cancelled }) => {
                    tracing::info!(job = %order.job_id, cancelled, "job cancelled or taken over: interrupting");
                    false
                }
                Err(error) => {
                    tracing::warn!(job = %order.job_id, %error, "progress report failed");
                    true
                }
                Ok(()) => true,
            }
        };
        let started = Instant::now();
        let execution = execute(self.comfy, &graph, workflow.node_count(), allowed, report).await;
        drop(comfy_turn);
        tracing::debug!(job = %order.job_id, ran_ms = millis(started.elapsed()), "ran on ComfyUI");
        match execution {
            Execution::Succeeded(files) => self.store_and_complete(order, attempt, &files).await,
            Execution::Failed(failure) => self.fail(order, attempt, failure).await,
            Execution::Stopped if self.give_back.load(Ordering::Relaxed) => {
                tracing::info!(job = %order.job_id, "the worker is stopping: job interrupted and given back");
                if let Err(error) = self.api.release(&order.job_id, attempt, "the worker stopped").await {
                    tracing::warn!(job = %order.job_id, %error, "could not give the job back");
                }
                JobEnd::GivenBack
            }
            Execution::Stopped => JobEnd::Dropped,
            Execution::Unavailable(reason) => {
                // Not the job's fault: it goes back to the queue, and this attempt is not counted.
                if let Err(error) = self.api.release(&order.job_id, attempt, &reason).await {
                    tracing::warn!(job = %order.job_id, %error, "could not give the job back");
                }
                JobEnd::ComfyUnavailable(reason)
            }
        }
    }

    /// Stores the outputs, then completes the job with their artifacts.
    async fn store_and_complete(&self, order: &WorkOrder, attempt: u32, files: &[OutputFile]) -> JobEnd {
        let storing = Instant::now();
        let stored = store_outputs(self.comfy, self.blobs, &order.job_id, files, Thumbnails::WithTheOutputs).await;
        let artifacts = match stored {
            Ok(artifacts) => artifacts,
            Err(error) => {
                let lost = failure("EXECUTION_ERROR", "an output could not be stored", error, true);
                return self.fail(order, attempt, lost).await;
            }
        };
        let store_ms = millis(storing.elapsed());
        let completing = Instant::now();
        match self.api.complete(&order.job_id, attempt, &artifacts).await {
            Ok(()) => {
                tracing::debug!(job = %order.job_id, store_ms, complete_ms = millis(completing.elapsed()), "job completed");
                JobEnd::Completed(artifacts.len())
            }
            Err(ApiError::Superseded { .. }) => JobEnd::Dropped,
            Err(error) => {
                tracing::error!(job = %order.job_id, %error, "could not complete");
                JobEnd::Dropped
            }
        }
    }

    async fn fail(&self, order: &WorkOrder, attempt: u32, failure: JobFailure) -> JobEnd {
        tracing::info!(job = %order.job_id, code = failure.code, "job failed");
        match self.api.fail(&order.job_id, attempt, &failure).await {
            Ok(()) | Err(ApiError::Superseded { .. }) => JobEnd::Failed(failure.code),
            Err(error) => {
                tracing::error!(job = %order.job_id, %error, "could not record the failure");
                JobEnd::Failed(failure.code)
            }
        }
    }
}

fn millis(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}
