//! The canary: the sweep runs a `canary` job on its schedule under a system account, and the
//! pipeline's health is what the newest telling canary says.

use std::time::Duration;

use tessera_api::v1::canary::{self, PipelineHealth};
use tessera_core::{JobId, JobStatus};
use tessera_store::jobs::{Claimed, JobError, JobRecord};

use crate::conformance;
use crate::support::{Backend, TestApp};

conformance!(the_canary_runs_on_its_schedule_and_tells_the_pipelines_health,);

const EVERY: Duration = Duration::from_secs(300);

async fn the_canary_runs_on_its_schedule_and_tells_the_pipelines_health(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut v1 = app.v1.clone();
    v1.canary_every = Some(EVERY);

    let first = canary::run(&v1, EVERY).await.expect("run");
    assert_eq!((first.status, first.job_status), ("pending", Some(JobStatus::Queued)));
    let first_job = JobId::parse(first.job_id.as_deref().expect("job")).expect("id");
    let job = v1.jobs.get(&first_job).await.expect("get").expect("stored");
    assert_eq!(
        (job.model.as_str(), job.cost),
        ("canary", 0),
        "the free diagnostic model"
    );
    assert_eq!(
        canary::run(&v1, EVERY).await.expect("again").job_id,
        first.job_id,
        "one canary at a time"
    );

    let done = run_as_worker(&v1, &first_job).await;
    v1.jobs
        .complete(&done, "canary-worker", done.attempt, &[], v1.now())
        .await
        .expect("complete");
    let healthy = canary::health(&v1, EVERY).await.expect("health");
    assert_eq!(healthy.status, "healthy", "{healthy:?}");
    assert_eq!(
        canary::run(&v1, EVERY).await.expect("run").job_id,
        first.job_id,
        "not due yet"
    );

    app.backend.clock.advance(time::Duration::seconds(301));
    let second: PipelineHealth = canary::run(&v1, EVERY).await.expect("due");
    assert_eq!(second.status, "healthy", "a young canary defers to the one before it");
    let canary_user = app.auth.chat_account(canary::CANARY_USER).await.expect("account").1;
    let jobs = v1.jobs.list_for(&canary_user.id, None).await.expect("list");
    assert_eq!(jobs.len(), 2, "a second canary, once due");
    let second_job = jobs[0].job_id.clone();

    app.backend
        .clock
        .advance(time::Duration::seconds(canary::STUCK_SECONDS + 1));
    let stuck = canary::health(&v1, EVERY).await.expect("health");
    assert_eq!(stuck.status, "unhealthy");
    assert!(
        stuck
            .reason
            .as_deref()
            .is_some_and(|reason| reason.contains("no worker took it")),
        "{stuck:?}"
    );

    let running = run_as_worker(&v1, &second_job).await;
    let oom = JobError {
        code: "OOM".into(),
        message: "CUDA out of memory".into(),
        details: String::new(),
    };
    v1.jobs
        .fail(&running, Some(("canary-worker", running.attempt)), &oom, true, v1.now())
        .await
        .expect("fail");
    let failed = canary::health(&v1, EVERY).await.expect("health");
    assert_eq!(
        (failed.status, failed.job_id.clone()),
        ("unhealthy", Some(second_job.to_string()))
    );
    assert!(
        failed.reason.as_deref().is_some_and(|reason| reason.contains("OOM")),
        "{failed:?}"
    );
}

/// Claims the job as a worker would.
async fn run_as_worker(v1: &tessera_api::v1::V1State, job: &JobId) -> JobRecord {
    match v1.jobs.claim(job, "canary-worker", v1.now(), 120).await.expect("claim") {
        Claimed::Run(job) => job,
        Claimed::Drop(job) => panic!("not claimable: {job:?}"),
    }
}
