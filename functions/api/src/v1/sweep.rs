//! The repair sweep: a job is stored before its queue message is sent, so a crash (or a failed
//! send) between the two leaves a `QUEUED` job that no worker will see. The sweep finds those
//! jobs in every lane and sends their messages. It runs on a timer in the dev server and as a
//! scheduled Lambda on AWS. A message sent twice is harmless: claiming a job is conditional.
//! It also fails, with `WORKER_TIMEOUT` and `retry_available`, running jobs whose worker stopped
//! renewing its lease long ago (and refunds them), fails (and refunds) jobs that waited in their
//! lane longer than [`QUEUED_TTL_SECONDS`] without a worker taking them, dispatches job events
//! a crash left in the outbox, and, when the canary is on, runs a canary job on its schedule
//! (see [`super::canary`]).

use tessera_core::{Capability, Priority, TenantId};
use tessera_store::StoreResult;
use tessera_store::jobs::{JobError, JobRecord, queue_message};

use super::V1State;

/// How old an unsent job must be before the sweep sends it (the API sends within milliseconds;
/// this keeps the sweep from racing a request still in flight).
pub const GRACE_SECONDS: i64 = 30;

/// How long after its lease ended a running job is failed with `WORKER_TIMEOUT` (its message
/// comes back within the 60 s visibility timeout and a live worker re-claims it long before).
pub const LAPSE_SECONDS: i64 = 600;

/// How long a job may wait in its lane for a worker: after that the sweep fails it with
/// `WORKER_TIMEOUT` and `retry_available`, and refunds it, rather than let it wait (holding its
/// tokens and its slot in flight) for a worker that may never come. A day, well inside SQS's
/// retention of the lanes' messages (4 days), so that a job never outlives its message.
pub const QUEUED_TTL_SECONDS: i64 = 24 * 60 * 60;

/// The most jobs of one lane a sweep fails for waiting too long (the next sweep takes the rest).
const EXPIRED_PER_LANE: usize = 100;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Messages sent for jobs that had none.
    pub resent: usize,
    /// Sends that failed again (left for the next sweep).
    pub failed: usize,
    /// Running jobs failed with `WORKER_TIMEOUT` because their worker vanished.
    pub timed_out: usize,
    /// Queued jobs failed with `WORKER_TIMEOUT` because no worker took them in time.
    pub expired: usize,
    /// Job events whose dispatch had not finished (a crash, or a queue that was down).
    pub events: usize,
    /// The pipeline's health from the canary (when it is on).
    pub pipeline: Option<&'static str>,
}

/// How often a sweep reads every lane from its start again, not only the jobs created since
/// the last sweep (see [`SweepMarks`]).
pub const FULL_SWEEP_SECONDS: i64 = 60 * 60;

/// Where the last sweep of each lane stopped: every job of the lane created before its mark
/// was found sent, or sent by that sweep, so the next sweep reads only the jobs created since
/// (not the whole backlog of a lane that waits out a GPU outage, at every sweep). The marks
/// live in the process's memory: a restart (a Lambda's cold start) reads every lane in full
/// once, and so does a sweep every [`FULL_SWEEP_SECONDS`], for a job whose create committed
/// more than [`GRACE_SECONDS`] after its creation time and then failed to send.
#[derive(Debug, Default)]
pub struct SweepMarks(std::sync::Mutex<Marks>);

/// The marks, and when a sweep last read every lane in full.
#[derive(Debug, Default)]
struct Marks {
    lanes: std::collections::HashMap<(Capability, Priority), i64>,
    full_at: Option<i64>,
}

impl SweepMarks {
    fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a sweep at `now` reads every lane in full.
    fn full_due(&self, now: i64) -> bool {
        self.marks().full_at.is_none_or(|at| now - at >= FULL_SWEEP_SECONDS)
    }

    /// Where a sweep of `lane` starts (unix seconds); 0 for a full one.
    fn start(&self, lane: (Capability, Priority), full: bool) -> i64 {
        if full {
            return 0;
        }
        self.marks().lanes.get(&lane).copied().unwrap_or(0)
    }

    /// Records where the next sweep of `lane` starts.
    fn stopped(&self, lane: (Capability, Priority), at: i64) {
        self.marks().lanes.insert(lane, at);
    }

    /// Records a full sweep, at `now`.
    fn swept_in_full(&self, now: i64) {
        self.marks().full_at = Some(now);
    }
}

/// Sends the message of every `QUEUED` job older than [`GRACE_SECONDS`] whose message was never
/// recorded as sent (reading each lane from where the last sweep stopped: [`SweepMarks`]).
pub async fn sweep(state: &V1State) -> StoreResult<SweepReport> {
    let now = state.now();
    let before = now - GRACE_SECONDS;
    let full = state.sweep_marks.full_due(now);
    let mut report = SweepReport::default();
    for capability in Capability::ALL {
        for priority in Priority::ALL {
            let lane = (capability, priority);
            let since = state.sweep_marks.start(lane, full);
            if since >= before {
                // The clock stepped back past the mark: nothing new to read yet.
                continue;
            }
            let mut next = before;
            for job in state.jobs.unqueued(capability, priority, since, before).await? {
                if send(state, &job).await {
                    report.resent += 1;
                } else {
                    report.failed += 1;
                    next = next.min(job.created_at);
                }
            }
            state.sweep_marks.stopped(lane, next);
        }
    }
    if full {
        state.sweep_marks.swept_in_full(now);
    }
    report.timed_out = time_out_lapsed(state, None).await?;
    report.expired = expire_waiting(state, None).await?;
    report.events = super::webhooks::dispatch::dispatch_stale(state).await?;
    if let Some(every) = state.canary_every {
        match super::canary::run(state, every).await {
            Ok(health) => {
                if health.status == "unhealthy" {
                    tracing::warn!(
                        reason = health.reason.as_deref().unwrap_or_default(),
                        "the pipeline is unhealthy"
                    );
                }
                report.pipeline = Some(health.status);
            }
            Err(error) => tracing::warn!(?error, "the canary could not run"),
        }
    }
    if report.resent + report.failed + report.timed_out + report.expired + report.events > 0 {
        tracing::info!(
            resent = report.resent,
            failed = report.failed,
            timed_out = report.timed_out,
            expired = report.expired,
            events = report.events,
            "sweep"
        );
    }
    Ok(report)
}

/// Fails, with `WORKER_TIMEOUT` and `retry_available` (refunded), the running jobs whose lease
/// ended more than [`LAPSE_SECONDS`] ago: all of them, or one tenant's. Answers how many.
pub async fn time_out_lapsed(state: &V1State, tenant: Option<&TenantId>) -> StoreResult<usize> {
    let now = state.now();
    let mut timed_out = 0;
    for job in state.jobs.lapsed(now - LAPSE_SECONDS).await? {
        if tenant.is_some_and(|tenant| *tenant != job.tenant_id) {
            continue;
        }
        let error = JobError {
            code: "WORKER_TIMEOUT".into(),
            message: "Worker became unresponsive during execution".into(),
            details: format!(
                "no word from worker {} since its lease ended",
                job.worker_id.as_deref().unwrap_or("?")
            ),
        };
        let outcome = state.jobs.fail(&job, None, &error, true, now).await;
        timed_out += usize::from(announce_failure(state, &job, outcome).await?);
    }
    Ok(timed_out)
}

/// Fails, with `WORKER_TIMEOUT` and `retry_available` (refunded), the jobs that have waited in
/// their lane longer than [`QUEUED_TTL_SECONDS`]: all of them, or one tenant's. Answers how many.
pub async fn expire_waiting(state: &V1State, tenant: Option<&TenantId>) -> StoreResult<usize> {
    let now = state.now();
    let mut expired = 0;
    for capability in Capability::ALL {
        for priority in Priority::ALL {
            let waiting = state
                .jobs
                .queued_before(capability, priority, now - QUEUED_TTL_SECONDS, EXPIRED_PER_LANE)
                .await?;
            for job in waiting {
                if tenant.is_some_and(|tenant| *tenant != job.tenant_id) {
                    continue;
                }
                let error = JobError {
                    code: "WORKER_TIMEOUT".into(),
                    message: "No worker took the job in time".into(),
                    details: format!(
                        "queued for more than {} hours: no live worker serves {}",
                        QUEUED_TTL_SECONDS / 3600,
                        job.model
                    ),
                };
                let outcome = state.jobs.fail_queued(&job, &error, now).await;
                expired += usize::from(announce_failure(state, &job, outcome).await?);
            }
        }
    }
    Ok(expired)
}

/// After the sweep tried to fail `job`: dispatches its event when it did (`true`); `false` when
/// the job had moved on meanwhile (a conflict), the error otherwise.
async fn announce_failure(state: &V1State, job: &JobRecord, outcome: StoreResult<()>) -> StoreResult<bool> {
    match outcome {
        Ok(()) => {
            super::webhooks::dispatch::dispatch_job(state, job).await;
            Ok(true)
        }
        Err(tessera_store::StoreError::Conflict(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Sends the job's queue message and records it; `false` when the send failed.
pub async fn send(state: &V1State, job: &JobRecord) -> bool {
    let (lane, message) = queue_message(job);
    if let Err(error) = state.queue.send(&lane, message).await {
        tracing::error!(job = %job.job_id, %error, "queue send failed: left for the sweep");
        return false;
    }
    if let Err(error) = state.jobs.mark_enqueued(&job.job_id).await {
        tracing::warn!(job = %job.job_id, %error, "sent, but not recorded as sent");
    }
    true
}
