//! The jobs repository: jobs, the quota counters they move (daily usage and jobs in flight), and
//! idempotency records. Every state change is one conditional transaction.
//!
//! | item | table | pk | sk | index |
//! | --- | --- | --- | --- | --- |
//! | job | jobs | `JOB#<id>` | `JOB` | gsi1: `TENANT#<id>#JOBS` / `<created>#<id>`; gsi2 while queued: `LANE#<cap>#<prio>` / `<created>#<id>`, while running: `RUNNING` / `<lease end>#<id>` |
//! | event outbox entry | jobs | see [`crate::events`] | | |
//! | idempotency record | jobs | `IDEMPOTENCY#<tenant>#<key>` | `IDEMPOTENCY` | (ttl 24 h) |
//! | worker heartbeat | jobs | `WORKER#<id>` | `WORKER` | gsi1: `WORKERS` / `<id>` (ttl 90 s) |
//! | daily usage | accounts | `USAGE#<tenant>` | `DAY#<yyyy-mm-dd>` | |
//! | a scope's daily cap counter | accounts | `CAP#<scope>` | `DAY#<yyyy-mm-dd>` | (ttl 2 days) |
//! | jobs in flight | accounts | `TENANT#<id>` | `ACTIVE` | |

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_core::{Capability, EventKind, JobId, JobMessage, JobStatus, Priority, TenantId, UserId};

use crate::definitions::{accounts_table, job_queue, jobs_table};
use crate::item::{Cmp, Condition, Item, ItemStore, Key, Query, SortRange, TableDef, Update, Write};
use crate::queue::{OutgoingMessage, QueueDef};
use crate::{StoreError, StoreResult};

/// The most jobs ahead a queue position counts: a position shows at most this plus one,
/// and counting costs at most this many index entries.
pub const QUEUE_COUNT_CAP: usize = 1000;

/// How long an idempotency record is kept, in seconds.
pub const IDEMPOTENCY_SECONDS: i64 = 24 * 60 * 60;

/// The parameters a job runs with, after validation and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobParams {
    /// The prompt.
    pub prompt: String,
    /// What to avoid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    /// `WxH`, for image and video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Sampling steps.
    pub steps: u32,
    /// The seed.
    pub seed: u64,
}

/// Why a job failed, as the spec's `error` object shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// E.g. `WORKER_TIMEOUT`.
    pub code: String,
    /// One sentence.
    pub message: String,
    /// More, if known.
    #[serde(default)]
    pub details: String,
}

/// One output file of a finished job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// `artifact_...`.
    pub id: String,
    /// `image`, `video`, `audio`, `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Blob key in the artifacts bucket.
    pub key: String,
    /// Blob key of the thumbnail, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_key: Option<String>,
    /// File format, e.g. `png`.
    pub format: String,
    /// Pixels across, for images and video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Pixels down, for images and video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Size in bytes.
    pub file_size_bytes: u64,
}

/// A generation job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id.
    pub job_id: JobId,
    /// Whose.
    pub tenant_id: TenantId,
    /// Who created it.
    pub user_id: UserId,
    /// What it produces.
    pub capability: Capability,
    /// The model id, e.g. `sdxl`.
    pub model: String,
    /// The model's versioned id, e.g. `sdxl-1.0`.
    pub model_version: String,
    /// What it runs with.
    pub params: JobParams,
    /// Its queue lane.
    pub priority: Priority,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Tokens reserved, in thousandths.
    pub cost: u64,
    /// The UTC day (`yyyy-mm-dd`) the tokens were charged to.
    pub usage_day: String,
    /// Where to POST the final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Typical run time, from the model.
    pub estimated_time_seconds: u32,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Creation time in microseconds, which orders jobs created within one second (absent
    /// on jobs stored before it was kept: they order by `created_at` and id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_micros: Option<i64>,
    /// When a worker took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
    /// When it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<i64>,
    /// When it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<i64>,
    /// Progress while running, 0 to 100.
    #[serde(default)]
    pub progress: u8,
    /// Runs so far (1 on the first claim).
    #[serde(default)]
    pub attempt: u32,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// Whether a failed job may be retried.
    #[serde(default)]
    pub retry_available: bool,
    /// Its outputs, once completed.
    #[serde(default)]
    pub artifacts: Vec<ArtifactRecord>,
    /// Whether its queue message was sent (the sweep re-sends the others).
    #[serde(default)]
    pub enqueued: bool,
    /// The worker running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Until when the running worker holds it (unix seconds); progress extends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    /// The chat it came from, for jobs created by a bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<JobOrigin>,
}

/// Where a bot's job came from, so that its events go back to the chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOrigin {
    /// `telegram` or `discord`.
    pub frontend: String,
    /// Which bot, e.g. `tg-img-1`.
    pub bot_id: String,
    /// The chat user, e.g. `telegram:123456789`.
    pub user_ref: String,
    /// Where to reply: `platform`, `chat_id`, `message_id` (as the bot sent it).
    pub reply_context: Value,
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claimed {
    /// The worker runs it: this attempt.
    Run(JobRecord),
    /// The worker drops the message: the job is final, running elsewhere, or gone.
    Drop(Option<JobRecord>),
}

/// What a creation must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Tokens per day, in thousandths.
    pub daily_tokens: u64,
    /// Jobs queued or running at once.
    pub concurrent_jobs: u32,
}

/// A cap on one member's jobs per UTC day within a scope (a chat server's per-user daily cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCap {
    /// What is counted, e.g. `discord:<guild id>#discord:<user id>`.
    pub scope: String,
    /// Jobs allowed per UTC day.
    pub limit: u32,
}

/// A stored answer to an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Hex SHA-256 of the request body.
    pub request_hash: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The JSON body answered.
    pub body: String,
}

/// Why a creation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateRefused {
    /// Today's tokens would exceed the plan's.
    #[error("daily token quota exceeded")]
    Quota,
    /// The plan's jobs in flight are all taken.
    #[error("too many jobs in flight")]
    Concurrency,
    /// The scope's daily cap is reached.
    #[error("daily cap reached")]
    Cap,
    /// The idempotency key was used already: here is what it answered.
    #[error("idempotency key already used")]
    Replay(IdempotencyRecord),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Today's counters of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyUsage {
    /// `yyyy-mm-dd`.
    pub date: String,
    /// Tokens charged (net of refunds), in thousandths.
    pub tokens_used: i64,
    /// Jobs that completed.
    pub jobs_completed: i64,
    /// Jobs that failed.
    pub jobs_failed: i64,
    /// Tokens per capability, in thousandths.
    pub breakdown: Vec<(Capability, i64)>,
}

/// A job stored by [`Jobs::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    /// Whether its queue message went out with it (and it is recorded as sent); when not, the
    /// caller sends it with [`queue_message`] and [`Jobs::mark_enqueued`].
    pub enqueued: bool,
}

/// The queue message of `job`, and the lane (queue) it goes to.
pub fn queue_message(job: &JobRecord) -> (QueueDef, OutgoingMessage) {
    let message = JobMessage {
        job_id: job.job_id.clone(),
        capability: job.capability,
        priority: job.priority,
    };
    let body = serde_json::to_string(&message).unwrap_or_default();
    (
        job_queue(job.capability, &job.model, job.priority),
        OutgoingMessage::new(body),
    )
}

/// Reads and writes jobs and their counters.
#[derive(Clone)]
pub struct Jobs {
    items: Arc<dyn ItemStore>,
    jobs: TableDef,
    accounts: TableDef,
    /// The last count of live workers per capability, and the second it was taken in.
    live_workers: Arc<Mutex<HashMap<Capability, (i64, u64)>>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl Jobs {
    /// The repository over `items`.
    pub fn new(items: Arc<dyn ItemStore>) -> Self {
        Self {
            items,
            jobs: jobs_table(),
            accounts: accounts_table(),
            live_workers: Arc::default(),
        }
    }

    /// Stores a new `QUEUED` job and reserves its tokens and a slot in flight, all in one
    /// conditional transaction; with an idempotency key, records the answer in it too. Where
    /// the backend can, its queue message goes out in the same transaction (see
    /// [`Created::enqueued`]); otherwise the caller sends it, and the sweep if the caller
    /// cannot.
    pub async fn create(
        &self,
        job: &JobRecord,
        quota: Quota,
        idempotency: Option<(&str, &IdempotencyRecord, i64)>,
        cap: Option<&DailyCap>,
    ) -> Result<Created, CreateRefused> {
        if job.cost > quota.daily_tokens {
            return Err(CreateRefused::Quota);
        }
        let cost = i64::try_from(job.cost).map_err(|_| CreateRefused::Quota)?;
        let headroom = i64::try_from(quota.daily_tokens - job.cost).unwrap_or(i64::MAX);
        let usage = Write::Update {
            table: self.accounts.clone(),
            key: usage_key(&job.tenant_id, &job.usage_day),
            update: Update::set("date", job.usage_day.as_str())
                .and_add("tokens_used", cost)
                .and_add(format!("tokens_{}", job.capability), cost)
                .and_add("jobs_created", 1),
            condition: Some(at_most("tokens_used", headroom)),
        };
        let in_flight = Write::Update {
            table: self.accounts.clone(),
            key: active_key(&job.tenant_id),
            update: Update::set("kind", "active").and_add("active", 1),
            condition: Some(at_most("active", i64::from(quota.concurrent_jobs) - 1)),
        };
        let mut writes = vec![usage, in_flight];
        if let Some(cap) = cap {
            writes.push(Write::Update {
                table: self.accounts.clone(),
                key: cap_key(cap, &job.usage_day),
                update: Update::set("ttl", job.created_at + 2 * 24 * 60 * 60).and_add("jobs", 1),
                condition: Some(at_most("jobs", i64::from(cap.limit) - 1)),
            });
        }
        if let Some((key, record, now)) = idempotency {
            let mut item = to_item(record)?;
            let key = idempotency_key(&job.tenant_id, key);
            item.insert("pk".into(), key.pk.into());
            item.insert("sk".into(), key.sk.into());
            item.insert("ttl".into(), json!(now + IDEMPOTENCY_SECONDS));
            writes.push(Write::Put {
                table: self.jobs.clone(),
                item,
                condition: Some(Condition::NotExists),
            });
        }
        let jobs = self.jobs.clone();
        let with_job = move |sent: bool| -> StoreResult<Vec<Write>> {
            let marked;
            let record = match sent {
                true => {
                    marked = JobRecord {
                        enqueued: true,
                        ..job.clone()
                    };
                    &marked
                }
                false => job,
            };
            let stored = Write::Put {
                table: jobs,
                item: job_item(record)?,
                condition: Some(Condition::NotExists),
            };
            Ok(std::iter::once(stored).chain(writes).collect())
        };
        let (queue, message) = queue_message(job);
        match self.items.transact_and_send(Box::new(with_job), &queue, message).await {
            Ok(enqueued) => Ok(Created { enqueued }),
            Err(StoreError::Conflict(_)) => Err(self
                .why_refused(job, quota, idempotency.map(|(key, ..)| key), cap)
                .await),
            Err(other) => Err(other.into()),
        }
    }

    /// After a refused creation: which condition failed.
    async fn why_refused(
        &self,
        job: &JobRecord,
        quota: Quota,
        idempotency_key: Option<&str>,
        cap: Option<&DailyCap>,
    ) -> CreateRefused {
        if let Some(key) = idempotency_key {
            match self.idempotency(&job.tenant_id, key).await {
                Ok(Some(record)) => return CreateRefused::Replay(record),
                Ok(None) => {}
                Err(error) => return error.into(),
            }
        }
        if let Some(cap) = cap {
            match self.items.get(&self.accounts, &cap_key(cap, &job.usage_day)).await {
                Ok(item) if counter(item.as_ref(), "jobs") >= i64::from(cap.limit) => return CreateRefused::Cap,
                Err(error) => return error.into(),
                Ok(_) => {}
            }
        }
        let active = self.items.get(&self.accounts, &active_key(&job.tenant_id)).await;
        match active {
            Ok(item) if counter(item.as_ref(), "active") >= i64::from(quota.concurrent_jobs) => {
                return CreateRefused::Concurrency;
            }
            Err(error) => return error.into(),
            Ok(_) => {}
        }
        CreateRefused::Quota
    }

    /// The answer recorded for an idempotency key.
    pub async fn idempotency(&self, tenant: &TenantId, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        let item = self.items.get(&self.jobs, &idempotency_key(tenant, key)).await?;
        item.map(from_item).transpose()
    }

    /// Marks the job's queue message as sent.
    pub async fn mark_enqueued(&self, job: &JobId) -> StoreResult<()> {
        let update = Update::set("enqueued", true);
        self.items
            .update(&self.jobs, &job_key(job), update, Some(Condition::Exists))
            .await
            .map(drop)
    }

    /// The job with this id, if it belongs to `tenant`.
    pub async fn get_for(&self, tenant: &TenantId, id: &JobId) -> StoreResult<Option<JobRecord>> {
        Ok(self.get(id).await?.filter(|job| job.tenant_id == *tenant))
    }

    /// The job with this id.
    pub async fn get(&self, id: &JobId) -> StoreResult<Option<JobRecord>> {
        self.items
            .get(&self.jobs, &job_key(id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Cancels a `QUEUED` or `RUNNING` job of `tenant` and refunds its tokens, once: `Conflict`
    /// when it is no longer cancellable (or not the tenant's).
    pub async fn cancel(&self, job: &JobRecord, now: i64) -> StoreResult<()> {
        let cost = i64::try_from(job.cost).unwrap_or(i64::MAX);
        let cancellable = Condition::All(vec![
            Condition::equals("tenant_id", job.tenant_id.as_str()),
            Condition::Any(vec![
                Condition::equals("status", JobStatus::Queued.as_str()),
                Condition::equals("status", JobStatus::Running.as_str()),
            ]),
        ]);
        let update = Update::set("status", JobStatus::Cancelled.as_str())
            .and_set("cancelled_at", now)
            .and_remove("gsi2pk")
            .and_remove("gsi2sk")
            .and_remove("lease_until");
        let refund = Update::set("date", job.usage_day.as_str())
            .and_add("tokens_used", -cost)
            .and_add(format!("tokens_{}", job.capability), -cost)
            .and_add("jobs_cancelled", 1);
        self.finish(job, EventKind::Cancelled, now, cancellable, update, refund)
            .await
    }

    /// A tenant's jobs, newest first, created after `since` (unix seconds) when given.
    pub async fn list_for(&self, tenant: &TenantId, since: Option<i64>) -> StoreResult<Vec<JobRecord>> {
        let mut query = Query::partition(format!("TENANT#{tenant}#JOBS"));
        query.index = Some("gsi1".into());
        query.descending = true;
        query.limit = 1000;
        if let Some(since) = since {
            // Above every key of that second: `<seconds>#<id>` and `<seconds><micros>#<id>`.
            query.range = SortRange::Gt(format!("{:020}999999#~", since.max(0)));
        }
        self.collect(query).await
    }

    /// How many jobs wait in the job's lane ahead of it, counted by the store up to
    /// [`QUEUE_COUNT_CAP`] (a longer backlog reads as that many).
    pub async fn queued_ahead(&self, job: &JobRecord) -> StoreResult<u64> {
        let mut query = Query::partition(lane_key(job.capability, job.priority));
        query.index = Some("gsi2".into());
        query.range = SortRange::Lt(creation_order(job));
        query.limit = QUEUE_COUNT_CAP;
        self.items.count(&self.jobs, query).await
    }

    /// Claims a job for `worker`: `QUEUED -> RUNNING`, or a re-claim of a `RUNNING` job whose
    /// lease ran out (its worker vanished), as long as attempts remain. Every path is one
    /// conditional write; a lost race answers `Drop` with the job as it now is.
    pub async fn claim(&self, id: &JobId, worker: &str, now: i64, lease_seconds: i64) -> StoreResult<Claimed> {
        let Some(job) = self.get(id).await? else {
            return Ok(Claimed::Drop(None));
        };
        let condition = match job.status {
            JobStatus::Queued => Condition::equals("status", JobStatus::Queued.as_str()),
            JobStatus::Running
                if job.lease_until.is_some_and(|until| until < now)
                    && job.attempt < tessera_core::job::MAX_ATTEMPTS =>
            {
                Condition::All(vec![
                    Condition::equals("status", JobStatus::Running.as_str()),
                    Condition::equals("attempt", job.attempt),
                ])
            }
            _ => return Ok(Claimed::Drop(Some(job))),
        };
        let lease_until = now + lease_seconds;
        let update = Update::set("status", JobStatus::Running.as_str())
            .and_set("worker_id", worker)
            .and_set("started_at", job.started_at.unwrap_or(now))
            .and_set("lease_until", lease_until)
            .and_set("gsi2pk", RUNNING_PARTITION)
            .and_set("gsi2sk", order_key(lease_until, &job.job_id))
            .and_add("attempt", 1);
        match self
            .items
            .update(&self.jobs, &job_key(id), update, Some(condition))
            .await
        {
            Ok(item) => Ok(Claimed::Run(from_item(item)?)),
            Err(StoreError::Conflict(_)) => Ok(Claimed::Drop(self.get(id).await?)),
            Err(other) => Err(other),
        }
    }

    /// Records progress of the worker's attempt (never backwards) and extends its lease; answers
    /// the job as it now is, or `Conflict` when the attempt is no longer the job's running one.
    pub async fn progress(
        &self,
        job: &JobId,
        worker: &str,
        attempt: u32,
        percent: u8,
        now: i64,
        lease_seconds: i64,
    ) -> StoreResult<JobRecord> {
        let lease_until = now + lease_seconds;
        let update = Update::set("lease_until", lease_until).and_set("gsi2sk", order_key(lease_until, job));
        let update = update.and_set("progress", percent);
        let condition = Condition::All(vec![
            running_attempt(worker, attempt),
            Condition::Any(vec![
                Condition::AttributeNotExists("progress".into()),
                Condition::Compare("progress".into(), Cmp::Le, json!(percent)),
            ]),
        ]);
        match self
            .items
            .update(&self.jobs, &job_key(job), update, Some(condition))
            .await
        {
            Ok(item) => from_item(item),
            Err(StoreError::Conflict(reason)) => match self.get(job).await? {
                // A report that would move progress back only extends the lease.
                Some(current)
                    if current.status == JobStatus::Running
                        && current.attempt == attempt
                        && current.worker_id.as_deref() == Some(worker) =>
                {
                    let lease = Update::set("lease_until", lease_until).and_set("gsi2sk", order_key(lease_until, job));
                    let item = self
                        .items
                        .update(&self.jobs, &job_key(job), lease, Some(running_attempt(worker, attempt)))
                        .await?;
                    from_item(item)
                }
                _ => Err(StoreError::Conflict(reason)),
            },
            Err(other) => Err(other),
        }
    }

    /// Takes the right to announce a milestone of attempt `attempt` at `percent` to the job's
    /// chat: `true` when it is due (a higher tenth than the last one announced, or a later
    /// attempt, and at least `min_gap_ms` after the last announcement). Of racing callers,
    /// one wins.
    pub async fn announce_progress(
        &self,
        job: &JobId,
        attempt: u32,
        percent: u8,
        now_ms: i64,
        min_gap_ms: i64,
    ) -> StoreResult<bool> {
        let mark = i64::from(attempt) * 100 + i64::from(percent / 10) * 10;
        let condition = Condition::All(vec![
            Condition::equals("status", JobStatus::Running.as_str()),
            Condition::equals("attempt", attempt),
            Condition::Any(vec![
                Condition::AttributeNotExists("announced".into()),
                Condition::Compare("announced".into(), Cmp::Lt, json!(mark)),
            ]),
            Condition::Any(vec![
                Condition::AttributeNotExists("announced_at_ms".into()),
                Condition::Compare("announced_at_ms".into(), Cmp::Le, json!(now_ms - min_gap_ms)),
            ]),
        ]);
        let update = Update::set("announced", mark).and_set("announced_at_ms", now_ms);
        match self
            .items
            .update(&self.jobs, &job_key(job), update, Some(condition))
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// `RUNNING -> QUEUED` for the worker's attempt, which did not run it to an end (ComfyUI went
    /// away, or the worker is stopping): the job goes back to its lane, the attempt is not
    /// counted, and its queue message (which the worker gives back) brings it to a worker again.
    /// `Conflict` when the attempt is no longer the job's running one.
    pub async fn release(&self, job: &JobRecord, worker: &str, attempt: u32) -> StoreResult<()> {
        let update = Update::set("status", JobStatus::Queued.as_str())
            .and_set("gsi2pk", lane_key(job.capability, job.priority))
            .and_set("gsi2sk", creation_order(job))
            .and_add("attempt", -1)
            .and_remove("started_at")
            .and_remove("worker_id")
            .and_remove("lease_until")
            .and_remove("progress");
        self.items
            .update(
                &self.jobs,
                &job_key(&job.job_id),
                update,
                Some(running_attempt(worker, attempt)),
            )
            .await
            .map(drop)
    }

    /// `RUNNING -> COMPLETED` for the worker's attempt, with its artifacts; frees the slot in
    /// flight and counts the completion, all in one transaction.
    pub async fn complete(
        &self,
        job: &JobRecord,
        worker: &str,
        attempt: u32,
        artifacts: &[ArtifactRecord],
        now: i64,
    ) -> StoreResult<()> {
        let artifacts = serde_json::to_value(artifacts).map_err(|error| StoreError::Internal(error.to_string()))?;
        let update = Update::set("status", JobStatus::Completed.as_str())
            .and_set("completed_at", now)
            .and_set("progress", 100)
            .and_set("artifacts", artifacts)
            .and_remove("gsi2pk")
            .and_remove("gsi2sk")
            .and_remove("lease_until");
        let usage = Update::set("date", job.usage_day.as_str()).and_add("jobs_completed", 1);
        self.finish(
            job,
            EventKind::Completed,
            now,
            running_attempt(worker, attempt),
            update,
            usage,
        )
        .await
    }

    /// `RUNNING -> FAILED` (by the worker's attempt, or by the sweep when `worker` is `None`);
    /// refunds the tokens, frees the slot in flight and counts the failure, in one transaction.
    pub async fn fail(
        &self,
        job: &JobRecord,
        worker: Option<(&str, u32)>,
        error: &JobError,
        retry_available: bool,
        now: i64,
    ) -> StoreResult<()> {
        let condition = match worker {
            Some((worker, attempt)) => running_attempt(worker, attempt),
            None => Condition::All(vec![
                Condition::equals("status", JobStatus::Running.as_str()),
                Condition::equals("attempt", job.attempt),
            ]),
        };
        self.fail_where(job, condition, error, retry_available, now).await
    }

    /// `QUEUED -> FAILED`, for a job no worker took in time (the sweep): refunds the tokens,
    /// frees the slot in flight and counts the failure, in one transaction; `Conflict` when the
    /// job is no longer queued (a worker claimed it, or it was cancelled, meanwhile).
    pub async fn fail_queued(&self, job: &JobRecord, error: &JobError, now: i64) -> StoreResult<()> {
        let condition = Condition::equals("status", JobStatus::Queued.as_str());
        self.fail_where(job, condition, error, true, now).await
    }

    /// A job's move to `FAILED` where `condition` holds on it, with its refund.
    async fn fail_where(
        &self,
        job: &JobRecord,
        condition: Condition,
        error: &JobError,
        retry_available: bool,
        now: i64,
    ) -> StoreResult<()> {
        let error = serde_json::to_value(error).map_err(|error| StoreError::Internal(error.to_string()))?;
        let update = Update::set("status", JobStatus::Failed.as_str())
            .and_set("failed_at", now)
            .and_set("error", error)
            .and_set("retry_available", retry_available)
            .and_remove("gsi2pk")
            .and_remove("gsi2sk")
            .and_remove("lease_until");
        let cost = i64::try_from(job.cost).unwrap_or(i64::MAX);
        let usage = Update::set("date", job.usage_day.as_str())
            .and_add("tokens_used", -cost)
            .and_add(format!("tokens_{}", job.capability), -cost)
            .and_add("jobs_failed", 1);
        self.finish(job, EventKind::Failed, now, condition, update, usage).await
    }

    /// Moves a job to a final state: the job's conditional update, its usage counters, the
    /// release of its slot in flight and (when anyone listens) its event's outbox entry, in one
    /// transaction.
    async fn finish(
        &self,
        job: &JobRecord,
        event: EventKind,
        now: i64,
        condition: Condition,
        update: Update,
        usage: Update,
    ) -> StoreResult<()> {
        let mut writes = vec![
            Write::Update {
                table: self.jobs.clone(),
                key: job_key(&job.job_id),
                update,
                condition: Some(condition),
            },
            Write::Update {
                table: self.accounts.clone(),
                key: usage_key(&job.tenant_id, &job.usage_day),
                update: usage,
                condition: None,
            },
            Write::Update {
                table: self.accounts.clone(),
                key: active_key(&job.tenant_id),
                update: Update::set("kind", "active").and_add("active", -1),
                condition: None,
            },
        ];
        writes.extend(crate::events::outbox_write(job, event, now)?);
        self.items.transact(writes).await
    }

    /// `RUNNING` jobs whose lease ended before `before` (their worker is gone).
    pub async fn lapsed(&self, before: i64) -> StoreResult<Vec<JobRecord>> {
        let mut query = Query::partition(RUNNING_PARTITION);
        query.index = Some("gsi2".into());
        query.range = SortRange::Lt(format!("{:020}#", before.max(0)));
        query.limit = 1000;
        self.collect(query).await
    }

    /// `QUEUED` jobs of one lane whose queue message was never recorded as sent, created from
    /// `since` up to `before` (unix seconds; `before` excluded), oldest first.
    pub async fn unqueued(
        &self,
        capability: Capability,
        priority: Priority,
        since: i64,
        before: i64,
    ) -> StoreResult<Vec<JobRecord>> {
        let mut query = lane_before(capability, priority, before, 1000);
        query.range = SortRange::Between(format!("{:020}", since.max(0)), format!("{:020}", before.max(0)));
        let jobs = self.collect(query).await?;
        Ok(jobs
            .into_iter()
            .filter(|job| !job.enqueued && job.status == JobStatus::Queued)
            .collect())
    }

    /// Up to `limit` `QUEUED` jobs of one lane created before `before` (unix seconds), oldest
    /// first: one page of the lane's index, however long the lane.
    pub async fn queued_before(
        &self,
        capability: Capability,
        priority: Priority,
        before: i64,
        limit: usize,
    ) -> StoreResult<Vec<JobRecord>> {
        let query = lane_before(capability, priority, before, limit);
        let page = self.items.query(&self.jobs, query).await?;
        let jobs = page
            .items
            .into_iter()
            .map(from_item)
            .collect::<StoreResult<Vec<JobRecord>>>()?;
        Ok(jobs.into_iter().filter(|job| job.status == JobStatus::Queued).collect())
    }

    /// How many workers serving `capability` sent a heartbeat within their TTL, at `now` (unix
    /// seconds). Counting reads every live worker's item, so a count is reused for the rest of
    /// the second it was taken in (every create and every status poll of a queued job asks, for
    /// its ETA), and dropped when this repository records a heartbeat.
    pub async fn live_workers(&self, capability: Capability, now: i64) -> StoreResult<u64> {
        if let Some(&(at, live)) = self.live_workers_cache().get(&capability)
            && at == now
        {
            return Ok(live);
        }
        let live = self.count_live_workers(capability).await?;
        self.live_workers_cache().insert(capability, (now, live));
        Ok(live)
    }

    fn live_workers_cache(&self) -> std::sync::MutexGuard<'_, HashMap<Capability, (i64, u64)>> {
        self.live_workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn count_live_workers(&self, capability: Capability) -> StoreResult<u64> {
        let mut query = Query::partition(WORKERS_PARTITION);
        query.index = Some("gsi1".into());
        query.limit = 100;
        let mut live = 0;
        loop {
            let page = self.items.query(&self.jobs, query.clone()).await?;
            live += page
                .items
                .iter()
                .filter(|worker| {
                    worker
                        .get("capabilities")
                        .and_then(Value::as_array)
                        .is_some_and(|capabilities| {
                            capabilities.iter().any(|c| c.as_str() == Some(capability.as_str()))
                        })
                })
                .count() as u64;
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(live),
            }
        }
    }

    /// Records a worker's heartbeat: listed as live for `ttl_seconds`.
    pub async fn record_heartbeat(
        &self,
        worker_id: &str,
        heartbeat: Update,
        now: i64,
        ttl_seconds: i64,
    ) -> StoreResult<()> {
        let update = heartbeat
            .and_set("seen_at", now)
            .and_set("gsi1pk", WORKERS_PARTITION)
            .and_set("gsi1sk", worker_id)
            .and_set("ttl", now + ttl_seconds);
        let key = Key::new(format!("WORKER#{worker_id}"), "WORKER");
        self.items.update(&self.jobs, &key, update, None).await?;
        self.live_workers_cache().clear();
        Ok(())
    }

    /// The tenant's jobs in flight.
    pub async fn active(&self, tenant: &TenantId) -> StoreResult<i64> {
        let item = self.items.get(&self.accounts, &active_key(tenant)).await?;
        Ok(counter(item.as_ref(), "active"))
    }

    /// The tenant's counters for each day from `start` to `end` (`yyyy-mm-dd`, both included);
    /// days without activity are absent.
    pub async fn usage(&self, tenant: &TenantId, start: &str, end: &str) -> StoreResult<Vec<DailyUsage>> {
        let mut query = Query::partition(format!("USAGE#{tenant}"));
        query.range = SortRange::Between(format!("DAY#{start}"), format!("DAY#{end}"));
        query.limit = 1000;
        let mut days = Vec::new();
        loop {
            let page = self.items.query(&self.accounts, query.clone()).await?;
            days.extend(page.items.iter().map(daily_usage));
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(days),
            }
        }
    }

    async fn collect(&self, mut query: Query) -> StoreResult<Vec<JobRecord>> {
        let mut jobs = Vec::new();
        loop {
            let page = self.items.query(&self.jobs, query.clone()).await?;
            for item in page.items {
                jobs.push(from_item(item)?);
            }
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(jobs),
            }
        }
    }
}

/// `attribute <= limit`, or the attribute does not exist yet (a counter at zero).
fn at_most(attribute: &str, limit: i64) -> Condition {
    if limit < 0 {
        return Condition::Compare(attribute.into(), Cmp::Lt, json!(i64::MIN));
    }
    Condition::Any(vec![
        Condition::AttributeNotExists(attribute.into()),
        Condition::Compare(attribute.into(), Cmp::Le, json!(limit)),
    ])
}

fn counter(item: Option<&Item>, attribute: &str) -> i64 {
    item.and_then(|item| item.get(attribute))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn daily_usage(item: &Item) -> DailyUsage {
    let breakdown = tessera_core::Capability::ALL
        .into_iter()
        .filter_map(|capability| {
            let used = counter(Some(item), &format!("tokens_{capability}"));
            (used != 0).then_some((capability, used))
        })
        .collect();
    DailyUsage {
        date: item.get("date").and_then(Value::as_str).unwrap_or_default().to_owned(),
        tokens_used: counter(Some(item), "tokens_used"),
        jobs_completed: counter(Some(item), "jobs_completed"),
        jobs_failed: counter(Some(item), "jobs_failed"),
        breakdown,
    }
}

fn job_key(id: &JobId) -> Key {
    Key::new(format!("JOB#{id}"), "JOB")
}

fn usage_key(tenant: &TenantId, day: &str) -> Key {
    Key::new(format!("USAGE#{tenant}"), format!("DAY#{day}"))
}

fn cap_key(cap: &DailyCap, day: &str) -> Key {
    Key::new(format!("CAP#{}", cap.scope), format!("DAY#{day}"))
}

fn active_key(tenant: &TenantId) -> Key {
    Key::new(format!("TENANT#{tenant}"), "ACTIVE")
}

fn idempotency_key(tenant: &TenantId, key: &str) -> Key {
    Key::new(format!("IDEMPOTENCY#{tenant}#{key}"), "IDEMPOTENCY")
}

/// The index partition of live workers (their heartbeat items).
const WORKERS_PARTITION: &str = "WORKERS";

/// The index partition of running jobs, sorted by the end of their lease.
const RUNNING_PARTITION: &str = "RUNNING";

/// The job is running this worker's attempt.
fn running_attempt(worker: &str, attempt: u32) -> Condition {
    Condition::All(vec![
        Condition::equals("status", JobStatus::Running.as_str()),
        Condition::equals("worker_id", worker),
        Condition::equals("attempt", attempt),
    ])
}

/// The jobs of a lane created before `before` (unix seconds), oldest first, `limit` a page.
fn lane_before(capability: Capability, priority: Priority, before: i64, limit: usize) -> Query {
    let mut query = Query::partition(lane_key(capability, priority));
    query.index = Some("gsi2".into());
    query.range = SortRange::Lt(format!("{:020}#", before.max(0)));
    query.limit = limit;
    query
}

fn lane_key(capability: Capability, priority: Priority) -> String {
    format!("LANE#{capability}#{priority}")
}

fn order_key(created_at: i64, id: &JobId) -> String {
    format!("{:020}#{id}", created_at.max(0))
}

/// The job's place in its tenant's list and its lane: its creation instant, to the microsecond,
/// then its id. The microseconds' 26 digits are the seconds' 20 then 6 more, so the key of a job
/// stored before microseconds were kept (`<seconds>#<id>`) sorts before every newer key of its
/// second, and after every key of the seconds before.
fn creation_order(job: &JobRecord) -> String {
    match job.created_at_micros {
        Some(micros) => format!("{:026}#{}", micros.max(0), job.job_id),
        None => order_key(job.created_at, &job.job_id),
    }
}

fn job_item(job: &JobRecord) -> StoreResult<Item> {
    let mut item = to_item(job)?;
    let key = job_key(&job.job_id);
    item.insert("pk".into(), key.pk.into());
    item.insert("sk".into(), key.sk.into());
    item.insert("gsi1pk".into(), format!("TENANT#{}#JOBS", job.tenant_id).into());
    let order = creation_order(job);
    if job.status == JobStatus::Queued {
        item.insert("gsi2pk".into(), lane_key(job.capability, job.priority).into());
        item.insert("gsi2sk".into(), order.clone().into());
    }
    item.insert("gsi1sk".into(), order.into());
    Ok(item)
}

pub(crate) fn to_item<T: Serialize>(record: &T) -> StoreResult<Item> {
    match serde_json::to_value(record) {
        Ok(Value::Object(item)) => Ok(item),
        Ok(_) => Err(StoreError::Internal("a record must serialise to an object".into())),
        Err(error) => Err(StoreError::Internal(error.to_string())),
    }
}

pub(crate) fn from_item<T: serde::de::DeserializeOwned>(item: Item) -> StoreResult<T> {
    serde_json::from_value(Value::Object(item))
        .map_err(|error| StoreError::Internal(format!("a job item does not read back: {error}")))
}
