//! The generation API (`/api/v1`) over HTTP on both backends: the spec's response shapes, quotas
//! under concurrency, cancellation, idempotency, queue positions, validation and isolation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_api::v1::sweep::{FULL_SWEEP_SECONDS, GRACE_SECONDS, QUEUED_TTL_SECONDS, expire_waiting, sweep};
use tessera_core::{Capability, JobId, JobMessage, JobStatus, PlanTier, Priority, TenantId};
use tessera_store::definitions::{accounts_table, artifacts_bucket, job_queue, jobs_table};
use tessera_store::item::{Condition, Item, Key, Page, Query, TableDef, Update, Write};
use tessera_store::queue::{OutgoingMessage, QueueCounts, ReceiveRequest, ReceivedMessage};
use tessera_store::{ItemStore, Queue, QueueDef, StoreError, StoreResult};

use crate::conformance;
use crate::support::{Backend, TestApp, assert_hidden_from_stranger};

conformance!(
    every_response_has_the_shape_of_the_spec_example,
    fifty_parallel_creates_never_exceed_concurrency_or_daily_tokens,
    a_cancel_sent_twice_at_once_refunds_exactly_once,
    an_idempotency_key_replays_the_first_answer_and_creates_one_job,
    queue_position_and_eta_move_as_jobs_ahead_leave,
    jobs_created_within_one_second_keep_their_order,
    invalid_requests_answer_the_spec_error_object_and_create_nothing,
    another_tenants_job_answers_404,
    the_plan_request_limit_answers_429_with_retry_after,
    the_sweep_sends_the_message_of_a_job_whose_send_failed,
    a_job_no_worker_takes_within_a_day_fails_refunded,
    the_event_stream_follows_a_job_until_it_ends,
    the_daily_quota_resets_at_midnight_utc,
);

/// A signed-up user with their tenant.
struct Account {
    token: String,
    tenant: TenantId,
    email: String,
}

async fn account(app: &TestApp, plan: PlanTier) -> Account {
    let (email, _, body) = app.signup().await;
    let tenant = TenantId::parse(body["tenant"]["id"].as_str().expect("tenant")).expect("id");
    app.auth.accounts().set_plan(&tenant, plan).await.expect("plan");
    Account {
        token: body["tokens"]["access_token"].as_str().expect("token").to_owned(),
        tenant,
        email,
    }
}

fn spec_job() -> Value {
    json!({
        "capability": "image",
        "params": {
            "prompt": "a beautiful sunset over mountains",
            "negative_prompt": "ugly, blurry",
            "resolution": "1024x1024",
            "steps": 20,
            "model": "sdxl",
            "seed": 42
        },
        "priority": "normal",
        "webhook_url": "https://your-app.com/webhook"
    })
}

async fn send(app: &TestApp, method: Method, path: &str, token: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create(app: &TestApp, token: &str, body: &Value) -> (StatusCode, Value) {
    send(app, Method::POST, "/api/v1/jobs", token, Some(body)).await
}

/// A job as `GET` shows it, less the `webhook` object that Tessera adds for a job with a
/// webhook URL (checked here: the spec's example has one).
fn spec_view(mut view: Value) -> Value {
    let webhook = view.as_object_mut().and_then(|fields| fields.remove("webhook"));
    let status = webhook.as_ref().map(|webhook| webhook["status"].clone());
    assert!(
        status.as_ref().is_some_and(Value::is_string),
        "a job with a webhook_url shows its webhook state: {webhook:?}"
    );
    view
}

/// Same keys, recursively, and the same JSON kinds (any number matches any number).
fn assert_same_shape(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            let keys = |object: &serde_json::Map<String, Value>| object.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(actual), keys(expected), "fields of {path}");
            for (name, value) in expected {
                assert_same_shape(&actual[name], value, &format!("{path}.{name}"));
            }
        }
        (Value::Array(actual), Value::Array(expected)) => {
            if let Some(first) = expected.first() {
                assert!(!actual.is_empty(), "{path} is empty");
                for item in actual {
                    assert_same_shape(item, first, &format!("{path}[]"));
                }
            }
        }
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => {}
        (actual, expected) => panic!("{path}: {actual} is not shaped like {expected}"),
    }
}

/// Moves a job as a worker would, through the store.
async fn set_job(backend: &Backend, job_id: &str, update: Update) {
    let update = update.and_remove("gsi2pk").and_remove("gsi2sk");
    backend
        .items
        .update(&jobs_table(), &Key::new(format!("JOB#{job_id}"), "JOB"), update, None)
        .await
        .expect("update job");
}

async fn usage_today(backend: &Backend, tenant: &TenantId) -> i64 {
    let today = tessera_api::v1::jobs::utc_day(time::OffsetDateTime::now_utc().unix_timestamp());
    let item = backend
        .items
        .get(
            &accounts_table(),
            &Key::new(format!("USAGE#{tenant}"), format!("DAY#{today}")),
        )
        .await
        .expect("usage");
    item.and_then(|item| item.get("tokens_used").and_then(Value::as_i64))
        .unwrap_or(0)
}

async fn every_response_has_the_shape_of_the_spec_example(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pro = account(&app, PlanTier::Pro).await;
    let (status, created) = create(&app, &pro.token, &spec_job()).await;
    assert_eq!(status, 201, "{created}");
    assert_same_shape(
        &created,
        &json!({"job_id": "job_abc123def456", "status": "QUEUED", "estimated_time_seconds": 30,
                "cost_tokens": 1.0, "queue_position": 5, "created_at": "2025-12-17T20:00:00Z"}),
        "create",
    );
    assert_eq!(created["cost_tokens"], json!(1.0));
    let id = created["job_id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("job_") && id.len() == 16, "{id}");
    let path = format!("/api/v1/jobs/{id}");

    let queued = spec_view(send(&app, Method::GET, &path, &pro.token, None).await.1);
    assert_same_shape(
        &queued,
        &json!({"job_id": "j", "status": "QUEUED", "queue_position": 3, "estimated_time_seconds": 20,
                "created_at": "t"}),
        "queued",
    );

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    set_job(
        &app.backend,
        &id,
        Update::set("status", "RUNNING")
            .and_set("progress", 45)
            .and_set("started_at", now),
    )
    .await;
    let running = spec_view(send(&app, Method::GET, &path, &pro.token, None).await.1);
    assert_same_shape(
        &running,
        &json!({"job_id": "j", "status": "RUNNING", "progress": 45, "started_at": "t"}),
        "running",
    );
    assert_eq!(running["progress"], 45);

    let key = format!("outputs/{id}/output.png");
    app.backend
        .blobs
        .put(&artifacts_bucket(), &key, Bytes::from_static(b"png bytes"), "image/png")
        .await
        .expect("put");
    let artifact = json!([{"id": "artifact_000000000001", "type": "image", "key": key,
        "thumbnail_key": key, "format": "png", "width": 1024, "height": 1024, "file_size_bytes": 9}]);
    set_job(
        &app.backend,
        &id,
        Update::set("status", "COMPLETED")
            .and_set("completed_at", now + 18)
            .and_set("artifacts", artifact),
    )
    .await;
    let completed = spec_view(send(&app, Method::GET, &path, &pro.token, None).await.1);
    assert!(completed.get("error").is_none(), "{completed}");
    assert_same_shape(
        &completed,
        &json!({
            "job_id": "j", "status": "COMPLETED", "created_at": "t", "started_at": "t", "completed_at": "t",
            "execution_time_seconds": 18,
            "artifacts": [{"id": "a", "type": "image", "url": "u", "thumbnail_url": "u", "format": "png",
                           "width": 1024, "height": 1024, "file_size_bytes": 2048576, "expires_at": "t"}],
            "metadata": {"seed": 42, "model_used": "sdxl-1.0", "actual_steps": 20}
        }),
        "completed",
    );
    assert_eq!(
        completed["metadata"],
        json!({"seed": 42, "model_used": "sdxl-1.0", "actual_steps": 20})
    );
    assert_eq!(completed["execution_time_seconds"], 18);

    set_job(
        &app.backend,
        &id,
        Update::set("status", "FAILED")
            .and_set("failed_at", now + 150)
            .and_set("retry_available", true)
            .and_set(
                "error",
                json!({"code": "WORKER_TIMEOUT", "message": "Worker became unresponsive during execution",
                   "details": "GPU hang detected, job will be retried"}),
            ),
    )
    .await;
    let failed = spec_view(send(&app, Method::GET, &path, &pro.token, None).await.1);
    assert_same_shape(
        &failed,
        &json!({"job_id": "j", "status": "FAILED", "error": {"code": "c", "message": "m", "details": "d"},
                "created_at": "t", "failed_at": "t", "retry_available": true}),
        "failed",
    );

    let (status, second) = create(&app, &pro.token, &spec_job()).await;
    assert_eq!(status, 201, "{second}");
    let second_path = format!("/api/v1/jobs/{}", second["job_id"].as_str().expect("id"));
    let (status, cancelled) = send(&app, Method::DELETE, &second_path, &pro.token, None).await;
    assert_eq!(status, 200);
    assert_same_shape(
        &cancelled,
        &json!({"job_id": "j", "status": "CANCELLED", "cancelled_at": "t", "refund_tokens": 1.0}),
        "cancel",
    );

    let (_, listed) = send(&app, Method::GET, "/api/v1/jobs?status=CANCELLED", &pro.token, None).await;
    assert_same_shape(
        &listed,
        &json!({"jobs": [{"job_id": "j", "capability": "image", "status": "CANCELLED", "created_at": "t"}],
                "pagination": {"total": 145, "limit": 20, "offset": 0, "has_more": true}}),
        "list",
    );
    assert_eq!(
        listed["pagination"],
        json!({"total": 1, "limit": 20, "offset": 0, "has_more": false})
    );

    let (_, me) = send(&app, Method::GET, "/api/v1/user/me", &pro.token, None).await;
    assert_same_shape(
        &me,
        &json!({"user_id": "u", "email": "e", "plan": {"name": "Pro", "tier": "pro", "daily_token_limit": 300, "priority": 2},
                "usage": {"tokens_used_today": 45, "tokens_remaining_today": 255, "reset_at": "t"},
                "created_at": "t"}),
        "me",
    );
    assert_eq!(
        me["plan"],
        json!({"name": "Pro", "tier": "pro", "daily_token_limit": 300, "priority": 2})
    );
    assert_eq!(
        me["usage"]["tokens_used_today"],
        json!(1.0),
        "the cancelled job was refunded"
    );

    let (_, usage) = send(&app, Method::GET, "/api/v1/user/usage", &pro.token, None).await;
    assert_same_shape(
        &usage,
        &json!({"usage": [{"date": "d", "tokens_used": 45, "jobs_completed": 42, "jobs_failed": 3,
                           "breakdown": {"image": 30}}],
                "total": {"tokens_used": 850, "jobs_completed": 812, "average_tokens_per_day": 42.5}}),
        "usage",
    );

    let (_, models) = send(&app, Method::GET, "/api/v1/models?capability=image", &pro.token, None).await;
    let ids: Vec<&str> = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        ["sdxl", "canary", "flux-schnell"],
        "the spec's two, and the diagnostic canary"
    );
    let spec_models: Vec<Value> = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter(|m| m["id"] != "canary")
        .cloned()
        .collect();
    assert_eq!(
        json!({"models": spec_models}),
        json!({"models": [
            {"id": "sdxl", "name": "Stable Diffusion XL", "version": "1.0", "capability": "image",
             "description": "High quality image generation", "max_resolution": "2048x2048",
             "available_on_plan": ["free", "starter", "pro"], "estimated_time_seconds": 20, "cost_multiplier": 1.0},
            {"id": "flux-schnell", "name": "Flux Schnell", "version": "1.0", "capability": "image",
             "description": "Fast image generation", "max_resolution": "1024x1024",
             "available_on_plan": ["pro"], "estimated_time_seconds": 8, "cost_multiplier": 0.5}
        ]})
    );
}

async fn fifty_parallel_creates_never_exceed_concurrency_or_daily_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let free = account(&app, PlanTier::Free).await;
    let job = spec_job();
    let attempts = (0..50).map(|_| create(&app, &free.token, &job));
    let answers = join_all(attempts).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "Free runs one job at once");
    for (status, body) in &answers {
        assert!([201, 429].contains(&status.as_u16()), "{status}: {body}");
    }
    assert_eq!(
        usage_today(&app.backend, &free.tenant).await,
        1000,
        "reserved equals charged"
    );

    let pro = account(&app, PlanTier::Pro).await;
    let today = tessera_api::v1::jobs::utc_day(time::OffsetDateTime::now_utc().unix_timestamp());
    app.backend
        .items
        .update(
            &accounts_table(),
            &Key::new(format!("USAGE#{}", pro.tenant), format!("DAY#{today}")),
            Update::set("date", today.as_str()).and_add("tokens_used", 297_000),
            None,
        )
        .await
        .expect("earlier usage");
    let answers = join_all((0..50).map(|_| create(&app, &pro.token, &job))).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert!(created <= 3, "300 tokens a day, 297 spent: {created} created");
    assert!(
        answers
            .iter()
            .any(|(status, body)| *status == 402 && body["error"]["code"] == "QUOTA_EXCEEDED")
    );
    assert_eq!(
        usage_today(&app.backend, &pro.tenant).await,
        297_000 + 1000 * created as i64
    );
}

async fn a_cancel_sent_twice_at_once_refunds_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = account(&app, PlanTier::Pro).await;
    let (_, created) = create(&app, &user.token, &spec_job()).await;
    let path = format!("/api/v1/jobs/{}", created["job_id"].as_str().expect("id"));
    assert_eq!(usage_today(&app.backend, &user.tenant).await, 1000);
    let (first, second) = tokio::join!(
        send(&app, Method::DELETE, &path, &user.token, None),
        send(&app, Method::DELETE, &path, &user.token, None)
    );
    let mut statuses = [first.0.as_u16(), second.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let conflict = if first.0 == 409 { &first.1 } else { &second.1 };
    assert_eq!(conflict["error"]["code"], "CONFLICT");
    assert_eq!(usage_today(&app.backend, &user.tenant).await, 0, "refunded once");
    let (status, _) = send(&app, Method::DELETE, &path, &user.token, None).await;
    assert_eq!(status, 409, "a final job cannot be cancelled");
}

async fn an_idempotency_key_replays_the_first_answer_and_creates_one_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = account(&app, PlanTier::Pro).await;
    let post = |key: &'static str, body: Value| {
        let request = app
            .client
            .post(app.url("/api/v1/jobs"))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", key)
            .json(&body);
        async move {
            let response = request.send().await.expect("post");
            (response.status(), response.json::<Value>().await.expect("json"))
        }
    };
    let answers = join_all((0..5).map(|_| post("deploy-42", spec_job()))).await;
    let first = &answers[0].1;
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body, first, "every answer is the first one");
    }
    let (status, again) = post("deploy-42", spec_job()).await;
    assert_eq!((status.as_u16(), &again), (201, first));
    let mut other = spec_job();
    other["params"]["steps"] = json!(30);
    let (status, reused) = post("deploy-42", other).await;
    assert_eq!(status, 409);
    assert_eq!(reused["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
    let (_, listed) = send(&app, Method::GET, "/api/v1/jobs", &user.token, None).await;
    assert_eq!(listed["pagination"]["total"], 1, "one job");
    assert_eq!(usage_today(&app.backend, &user.tenant).await, 1000, "charged once");
}

async fn queue_position_and_eta_move_as_jobs_ahead_leave(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = account(&app, PlanTier::Pro).await;
    let video = json!({"capability": "video", "params": {"prompt": "waves", "model": "svd"}, "priority": "low"});
    let mut ids = Vec::new();
    for expected in 1..=3 {
        let (status, created) = create(&app, &user.token, &video).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["queue_position"], expected);
        assert_eq!(created["estimated_time_seconds"], 90 * expected);
        ids.push(created["job_id"].as_str().expect("id").to_owned());
        app.backend.clock.advance(time::Duration::seconds(1));
    }
    let position = |id: String| {
        let token = user.token.clone();
        let app = &app;
        async move {
            let (_, job) = send(app, Method::GET, &format!("/api/v1/jobs/{id}"), &token, None).await;
            (job["queue_position"].clone(), job["estimated_time_seconds"].clone())
        }
    };
    assert_eq!(position(ids[2].clone()).await, (json!(3), json!(270)));
    send(
        &app,
        Method::DELETE,
        &format!("/api/v1/jobs/{}", ids[0]),
        &user.token,
        None,
    )
    .await;
    assert_eq!(position(ids[2].clone()).await, (json!(2), json!(180)));
    set_job(&app.backend, &ids[1], Update::set("status", "RUNNING")).await;
    assert_eq!(position(ids[2].clone()).await, (json!(1), json!(90)));
}

/// Jobs order by the instant they were created, finer than the second the API shows: within
/// one second, each new job queues behind the earlier ones and lists before them, and `since`
/// still means after that whole second. (Its lane, video at normal priority, is no other
/// test's: the AWS backend's tables are shared by the tests that run at once.)
async fn jobs_created_within_one_second_keep_their_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = account(&app, PlanTier::Pro).await;
    let video = json!({"capability": "video", "params": {"prompt": "waves", "model": "svd"}, "priority": "normal"});
    let now = tessera_core::Clock::now(&app.backend.clock);
    app.backend
        .clock
        .advance(time::Duration::seconds(1) - time::Duration::nanoseconds(i64::from(now.nanosecond())));
    let mut ids = Vec::new();
    let mut seconds = Vec::new();
    for expected in 1..=3 {
        let (status, created) = create(&app, &user.token, &video).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["queue_position"], expected, "{created}");
        ids.push(created["job_id"].as_str().expect("id").to_owned());
        seconds.push(created["created_at"].as_str().expect("created_at").to_owned());
    }
    assert!(
        seconds.iter().all(|second| *second == seconds[0]),
        "the three creates took over a second: {seconds:?}"
    );
    let (_, listed) = send(&app, Method::GET, "/api/v1/jobs", &user.token, None).await;
    let listed: Vec<&str> = listed["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| job["job_id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, [&ids[2], &ids[1], &ids[0]], "newest first");
    let since = |at: time::OffsetDateTime| {
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format");
        format!("/api/v1/jobs?since={}", at.replace('+', "%2B"))
    };
    let created = time::OffsetDateTime::parse(&seconds[0], &time::format_description::well_known::Rfc3339)
        .expect("created_at is RFC 3339");
    let (_, same_second) = send(&app, Method::GET, &since(created), &user.token, None).await;
    assert_eq!(same_second["pagination"]["total"], 0, "{same_second}");
    let before = created - time::Duration::seconds(1);
    let (_, second_before) = send(&app, Method::GET, &since(before), &user.token, None).await;
    assert_eq!(second_before["pagination"]["total"], 3, "{second_before}");
}

async fn invalid_requests_answer_the_spec_error_object_and_create_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let free = account(&app, PlanTier::Free).await;
    let with = |change: fn(&mut Value)| {
        let mut body = spec_job();
        change(&mut body);
        body
    };
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            with(|b| b["capability"] = json!("smell")),
            400,
            "INVALID_PARAMS",
            "capability",
        ),
        (
            with(|b| b["params"]["steps"] = json!(151)),
            400,
            "INVALID_PARAMS",
            "params.steps",
        ),
        (
            with(|b| b["params"]["steps"] = json!("20")),
            400,
            "INVALID_PARAMS",
            "params.steps",
        ),
        (
            with(|b| b["params"]["resolution"] = json!("1020x1024")),
            400,
            "INVALID_PARAMS",
            "params.resolution",
        ),
        (
            with(|b| b["params"]["seed"] = json!(-5)),
            400,
            "INVALID_PARAMS",
            "params.seed",
        ),
        (
            with(|b| b["priority"] = json!("high")),
            400,
            "INVALID_PARAMS",
            "priority",
        ),
        (
            with(|b| b["webhook_url"] = json!("ftp://x.com/h")),
            400,
            "INVALID_PARAMS",
            "webhook_url",
        ),
        (
            with(|b| b["params"]["model"] = json!("dalle")),
            404,
            "MODEL_NOT_FOUND",
            "params.model",
        ),
        (
            with(|b| b["params"]["model"] = json!("flux-schnell")),
            403,
            "MODEL_NOT_ON_PLAN",
            "params.model",
        ),
        (
            with(|b| b["params"]["prompt"] = json!("beheading video")),
            400,
            "INVALID_PROMPT",
            "params.prompt",
        ),
    ];
    for (body, status, code, field) in cases {
        let (actual, answer) = create(&app, &free.token, &body).await;
        assert_eq!(actual.as_u16(), status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
        assert!(answer["error"]["message"].is_string());
        app.backend.clock.advance(time::Duration::seconds(61));
    }
    let not_json = app
        .client
        .post(app.url("/api/v1/jobs"))
        .bearer_auth(&free.token)
        .body("{ not json")
        .send()
        .await
        .expect("post");
    assert_eq!(not_json.status(), 400);
    let answer: Value = not_json.json().await.expect("json");
    assert_eq!(answer["error"]["code"], "INVALID_PARAMS");
    assert_eq!(usage_today(&app.backend, &free.tenant).await, 0, "nothing was charged");
    let (_, listed) = send(&app, Method::GET, "/api/v1/jobs", &free.token, None).await;
    assert_eq!(listed["pagination"]["total"], 0);
    let (status, unauthenticated) = send(&app, Method::GET, "/api/v1/jobs", "nope", None).await;
    assert_eq!(
        (status.as_u16(), &unauthenticated["error"]["code"]),
        (401, &json!("UNAUTHORIZED"))
    );
}

async fn another_tenants_job_answers_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = account(&app, PlanTier::Pro).await;
    let stranger = account(&app, PlanTier::Pro).await;
    let (_, created) = create(&app, &owner.token, &spec_job()).await;
    let path = format!("/api/v1/jobs/{}", created["job_id"].as_str().expect("id"));
    for method in [Method::GET, Method::DELETE] {
        assert_hidden_from_stranger(&app, &stranger.token, method, &path, "/api/v1/jobs/job_000000000000").await;
    }
    let (status, job) = send(&app, Method::GET, &path, &owner.token, None).await;
    assert_eq!((status.as_u16(), &job["status"]), (200, &json!("QUEUED")), "untouched");
}

async fn the_plan_request_limit_answers_429_with_retry_after(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let free = account(&app, PlanTier::Free).await;
    let plan = tessera_core::Catalog::active().plan(PlanTier::Free);
    let rule = tessera_api::rate_limit::Rule::new("v1", plan.requests_per_minute, 60);
    app.backend.clock.clear_of_window_end(rule, 20);
    for remaining in (0..5).rev() {
        let response = app
            .client
            .get(app.url("/api/v1/models"))
            .bearer_auth(&free.token)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit"], "5");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            remaining.to_string().as_str()
        );
    }
    let refused = app
        .client
        .get(app.url("/api/v1/jobs"))
        .bearer_auth(&free.token)
        .send()
        .await
        .expect("get");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert_eq!(body["error"]["message"], "Rate limit exceeded");
    let retry_after = body["error"]["retry_after"].as_i64().expect("retry_after");
    assert!((1..=60).contains(&retry_after), "{body}");
    assert!(
        body["error"]["details"]
            .as_str()
            .expect("details")
            .starts_with("You can make 5 requests per minute.")
    );
    app.backend.clock.advance(time::Duration::seconds(61));
    let again = app
        .client
        .get(app.url("/api/v1/jobs"))
        .bearer_auth(&free.token)
        .send()
        .await
        .expect("get");
    assert_eq!(again.status(), 200, "a new minute, a new window");
}

/// A queue whose sends fail, as if the process died between storing a job and sending its
/// message; everything else goes to the real queue.
struct SendsFail(Arc<dyn Queue>);

#[async_trait::async_trait]
impl Queue for SendsFail {
    async fn send(&self, _: &QueueDef, _: OutgoingMessage) -> StoreResult<String> {
        Err(StoreError::Unavailable(
            "injected: the process died before the send".into(),
        ))
    }
    async fn receive(&self, queue: &QueueDef, request: ReceiveRequest) -> StoreResult<Vec<ReceivedMessage>> {
        self.0.receive(queue, request).await
    }
    async fn change_visibility(&self, queue: &QueueDef, receipt: &str, timeout: Duration) -> StoreResult<()> {
        self.0.change_visibility(queue, receipt, timeout).await
    }
    async fn delete(&self, queue: &QueueDef, receipt: &str) -> StoreResult<()> {
        self.0.delete(queue, receipt).await
    }
    async fn counts(&self, queue: &QueueDef) -> StoreResult<QueueCounts> {
        self.0.counts(queue).await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.0.ping().await
    }
}

/// The items of a backend whose queue lives elsewhere, as on AWS: a job's message never goes
/// out in the job's own transaction (the embedded store sends it there, and could not fail so).
struct QueueElsewhere(Arc<dyn ItemStore>);

#[async_trait::async_trait]
impl ItemStore for QueueElsewhere {
    async fn get(&self, table: &TableDef, key: &Key) -> StoreResult<Option<Item>> {
        self.0.get(table, key).await
    }
    async fn put(&self, table: &TableDef, item: Item, condition: Option<Condition>) -> StoreResult<()> {
        self.0.put(table, item, condition).await
    }
    async fn update(
        &self,
        table: &TableDef,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> StoreResult<Item> {
        self.0.update(table, key, update, condition).await
    }
    async fn delete(&self, table: &TableDef, key: &Key, condition: Option<Condition>) -> StoreResult<()> {
        self.0.delete(table, key, condition).await
    }
    async fn query(&self, table: &TableDef, query: Query) -> StoreResult<Page> {
        self.0.query(table, query).await
    }
    async fn count(&self, table: &TableDef, query: Query) -> StoreResult<u64> {
        self.0.count(table, query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> StoreResult<()> {
        self.0.transact(writes).await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.0.ping().await
    }
}

async fn the_sweep_sends_the_message_of_a_job_whose_send_failed(mut backend: Backend) {
    let _alone = crate::support::sweeping_alone().await;
    let real_queue = backend.queue.clone();
    backend.items = Arc::new(QueueElsewhere(backend.items.clone()));
    let app = TestApp::spawn_with_queue(backend, Arc::new(SendsFail(real_queue.clone()))).await;
    let user = account(&app, PlanTier::Pro).await;
    let audio = json!({"capability": "audio", "params": {"prompt": "rain on a tin roof"}, "priority": "high"});
    let (status, created) = create(&app, &user.token, &audio).await;
    assert_eq!(
        status, 201,
        "the job is accepted even though its send failed: {created}"
    );
    let job_id = created["job_id"].as_str().expect("id").to_owned();
    let lane = job_queue(Capability::Audio, "stable-audio", Priority::High);
    let ours = |messages: Vec<ReceivedMessage>| {
        messages
            .into_iter()
            .filter(|message| message.body.contains(&job_id))
            .collect::<Vec<_>>()
    };
    let peek = ReceiveRequest::new(10, Duration::ZERO);
    assert!(ours(real_queue.receive(&lane, peek).await.expect("receive")).is_empty());

    let mut state = app.v1.clone();
    state.queue = real_queue.clone();
    sweep(&state).await.expect("sweep");
    assert!(
        ours(real_queue.receive(&lane, peek).await.expect("receive")).is_empty(),
        "within the grace"
    );

    app.backend.clock.advance(time::Duration::seconds(GRACE_SECONDS + 1));
    let report = sweep(&state).await.expect("sweep");
    assert!(report.resent >= 1, "{report:?}");
    let received = ours(real_queue.receive(&lane, peek).await.expect("receive"));
    assert_eq!(received.len(), 1, "the sweep sent the message");
    let message: JobMessage = serde_json::from_str(&received[0].body).expect("a job message");
    assert_eq!(
        (message.capability, message.priority),
        (Capability::Audio, Priority::High)
    );

    sweep(&state).await.expect("sweep");
    real_queue
        .change_visibility(&lane, &received[0].receipt, Duration::ZERO)
        .await
        .expect("release");
    let again = ours(real_queue.receive(&lane, peek).await.expect("receive"));
    assert_eq!(again.len(), 1, "sent once: the job is recorded as enqueued");
}

/// On the embedded backend only: the marks are the API's, the same over both backends (whose
/// lane query `the_sweep_sends_the_message_of_a_job_whose_send_failed` runs on both), and on the
/// emulator every test of the process shares the lanes, where another test's sweep would send
/// this one's unsent jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_reads_each_lane_from_where_it_stopped_and_in_full_every_hour() {
    let mut backend = Backend::embedded().await;
    let real_queue = backend.queue.clone();
    backend.items = Arc::new(QueueElsewhere(backend.items.clone()));
    let app = TestApp::spawn_with_queue(backend, Arc::new(SendsFail(real_queue.clone()))).await;
    let user = account(&app, PlanTier::Pro).await;
    let audio = json!({"capability": "audio", "params": {"prompt": "rain on a tin roof"}, "priority": "high"});
    let lane = job_queue(Capability::Audio, "stable-audio", Priority::High);
    let sent = |job_id: String| {
        let real_queue = real_queue.clone();
        let lane = lane.clone();
        async move {
            let peek = ReceiveRequest::new(10, Duration::ZERO);
            let messages = real_queue.receive(&lane, peek).await.expect("receive");
            messages.iter().filter(|message| message.body.contains(&job_id)).count()
        }
    };
    let clock = &app.backend.clock;
    let id = |created: &Value| created["job_id"].as_str().expect("id").to_owned();

    let (status, first) = create(&app, &user.token, &audio).await;
    assert_eq!(status, 201, "{first}");
    clock.advance(time::Duration::seconds(GRACE_SECONDS + 1));
    let report = sweep(&app.v1).await.expect("a sweep whose sends fail too");
    assert!(report.failed >= 1, "{report:?}");
    let mut state = app.v1.clone();
    state.queue = real_queue.clone();
    sweep(&state).await.expect("sweep");
    assert_eq!(
        sent(id(&first)).await,
        1,
        "a failed resend leaves the lane's mark at the job: the next sweep sends it"
    );

    // A job whose creation time is before the lane's mark (a create that committed more than
    // the grace after its creation time, then failed to send) waits for the full sweep.
    clock.advance(time::Duration::seconds(-2 * GRACE_SECONDS));
    let (status, late) = create(&app, &user.token, &audio).await;
    assert_eq!(status, 201, "{late}");
    clock.advance(time::Duration::seconds(2 * GRACE_SECONDS + 1));
    sweep(&state).await.expect("sweep");
    assert_eq!(sent(id(&late)).await, 0, "a sweep reads only what came after its mark");
    clock.advance(time::Duration::seconds(FULL_SWEEP_SECONDS));
    let report = sweep(&state).await.expect("sweep");
    assert!(report.resent >= 1, "{report:?}");
    assert_eq!(sent(id(&late)).await, 1, "the hourly sweep reads every lane in full");
}

async fn the_event_stream_follows_a_job_until_it_ends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = account(&app, PlanTier::Pro).await;
    let (_, created) = create(&app, &user.token, &spec_job()).await;
    let job_id = created["job_id"].as_str().expect("id").to_owned();
    let mut response = app
        .client
        .get(app.url(&format!("/api/v1/jobs/{job_id}/events")))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    });
    let hold = || tokio::time::sleep(Duration::from_millis(1500));
    hold().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    set_job(
        &app.backend,
        &job_id,
        Update::set("status", "RUNNING")
            .and_set("progress", 45)
            .and_set("started_at", now),
    )
    .await;
    hold().await;
    set_job(&app.backend, &job_id, Update::set("progress", 80)).await;
    hold().await;
    set_job(
        &app.backend,
        &job_id,
        Update::set("status", "COMPLETED").and_set("completed_at", now + 3),
    )
    .await;
    let text = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("the stream ends after the final state")
        .expect("reader");
    let events: Vec<Value> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("json data"))
        .collect();
    let seen: Vec<(String, Value)> = events
        .iter()
        .map(|event| {
            (
                event["status"].as_str().expect("status").to_owned(),
                event["progress"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("QUEUED".to_owned(), Value::Null),
            ("RUNNING".to_owned(), json!(45)),
            ("RUNNING".to_owned(), json!(80)),
            ("COMPLETED".to_owned(), Value::Null),
        ],
        "{text}"
    );
    assert!(text.contains("event: status"));
}

async fn a_job_no_worker_takes_within_a_day_fails_refunded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = account(&app, PlanTier::Pro).await;
    let video = json!({"capability": "video", "params": {"prompt": "a slow tide", "model": "svd"}, "priority": "high"});
    let (status, created) = create(&app, &user.token, &video).await;
    assert_eq!(status, 201, "{created}");
    let job_id = JobId::parse(created["job_id"].as_str().expect("id")).expect("id");
    let day = tessera_api::v1::jobs::utc_day(app.backend.clock_now());
    let tokens_used = || async {
        let days = app.v1.jobs.usage(&user.tenant, &day, &day).await.expect("usage");
        days.first().map_or(0, |usage| usage.tokens_used)
    };
    let in_flight = || async {
        let key = Key::new(format!("TENANT#{}", user.tenant), "ACTIVE");
        let item = app.backend.items.get(&accounts_table(), &key).await.expect("read");
        item.and_then(|item| item["active"].as_i64()).unwrap_or(0)
    };
    let charged = tokens_used().await;
    assert!(charged > 0);
    assert_eq!(in_flight().await, 1);
    let expire = || expire_waiting(&app.v1, Some(&user.tenant));

    app.backend
        .clock
        .advance(time::Duration::seconds(QUEUED_TTL_SECONDS - 60));
    assert_eq!(expire().await.expect("sweep"), 0, "a day is not up yet");
    let job = app.v1.jobs.get(&job_id).await.expect("get").expect("job");
    assert_eq!(job.status, JobStatus::Queued);

    app.backend.clock.advance(time::Duration::seconds(61));
    assert_eq!(expire().await.expect("sweep"), 1);
    let job = app.v1.jobs.get(&job_id).await.expect("get").expect("job");
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.error.as_ref().map(|error| error.code.as_str()),
        Some("WORKER_TIMEOUT")
    );
    assert!(job.retry_available, "the client may send it again");
    assert_eq!(tokens_used().await, 0, "its tokens are refunded");
    assert_eq!(in_flight().await, 0, "its slot in flight is free");
    assert_eq!(expire().await.expect("sweep"), 0, "a failed job is failed once");
}

async fn the_daily_quota_resets_at_midnight_utc(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let free = account(&app, PlanTier::Free).await;
    let now = app.backend.clock_now();
    let today = tessera_api::v1::jobs::utc_day(now);
    app.backend
        .items
        .update(
            &accounts_table(),
            &Key::new(format!("USAGE#{}", free.tenant), format!("DAY#{today}")),
            Update::set("date", today.as_str()).and_add("tokens_used", 9_500),
            None,
        )
        .await
        .expect("earlier usage");
    let (status, refused) = create(&app, &free.token, &spec_job()).await;
    assert_eq!(status, 402, "{refused}");
    assert_eq!(refused["error"]["code"], "QUOTA_EXCEEDED");
    let (_, me) = send(&app, Method::GET, "/api/v1/user/me", &free.token, None).await;
    assert_eq!(me["usage"]["tokens_remaining_today"], json!(0.5));
    let midnight = now - now.rem_euclid(86_400) + 86_400;
    assert_eq!(me["usage"]["reset_at"], tessera_api::auth::routes::timestamp(midnight));

    app.backend.clock.advance(time::Duration::seconds(midnight - now + 1));
    let fresh = app
        .auth
        .login(&free.email, "correct horse battery staple")
        .await
        .expect("login");
    let (status, created) = create(&app, &fresh.access_token, &spec_job()).await;
    assert_eq!(status, 201, "a new UTC day, a new quota: {created}");
}
