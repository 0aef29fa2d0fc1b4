//! Job events on both backends: signed webhooks to a real loopback receiver, their retries on
//! the injected clock, the delivery log and redelivery, secret rotation, the SSRF guard, the
//! outbox surviving a crash, and the bots' notify queues, duplicates included.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_api::ssrf::StaticResolver;
use tessera_api::v1::webhooks::dispatch::dispatch;
use tessera_api::v1::webhooks::{DeliveryMessage, Handled, handle};
use tessera_core::request::WebhookRules;
use tessera_core::{DeliveryId, EventId, Frontend, JobId, NotifyEvent, NotifyMessage, PlanTier, TenantId};
use tessera_fakes::webhook::{Reply, WebhookReceiver, check_event_shape, verify_signature};
use tessera_store::definitions::{notify_queue, webhook_queue};
use tessera_store::events::DeliveryStatus;
use tessera_store::queue::ReceiveRequest;

use crate::conformance;
use crate::support::{Backend, TestApp, unique, webhook_settings};

conformance!(
    every_final_event_reaches_the_webhook_signed_and_in_the_spec_shape,
    a_failing_receiver_is_retried_on_the_backoff_schedule_and_every_attempt_is_logged,
    a_delivery_that_never_succeeds_is_failed_after_seven_attempts_over_a_day,
    a_huge_answer_is_read_only_up_to_a_mebibyte,
    a_redirect_is_not_followed_but_logged_as_a_failure_and_can_be_redelivered,
    the_ssrf_guard_refuses_private_destinations_at_create_and_at_send_time,
    after_a_rotation_both_secrets_sign_for_a_day,
    a_crash_after_the_final_state_still_delivers_through_the_sweep,
    duplicate_deliveries_send_one_webhook_and_one_notify_message,
    bots_hear_start_progress_milestones_and_the_end_on_their_notify_queue,
    the_webhook_queue_carries_each_attempt_and_the_lambda_reports_only_retries,
    deliveries_are_hidden_from_other_tenants,
);

/// One tenant with a user's API key (it does not expire when a test moves the clock a day on), a
/// service key, and a receiver.
struct World {
    app: TestApp,
    user: String,
    service: String,
    receiver: WebhookReceiver,
}

async fn world(app: TestApp) -> World {
    let (_, _, body) = app.signup().await;
    let tenant = TenantId::parse(body["tenant"]["id"].as_str().expect("tenant")).expect("id");
    app.auth
        .accounts()
        .set_plan(&tenant, PlanTier::Pro)
        .await
        .expect("plan");
    let service = app
        .auth
        .create_service_key("gpu-worker")
        .await
        .expect("service key")
        .key;
    let token = body["tokens"]["access_token"].as_str().expect("token");
    let response = app
        .client
        .post(app.url("/api/api-keys"))
        .bearer_auth(token)
        .json(&json!({"name": "webhooks", "scopes": ["jobs:read", "jobs:write"]}))
        .send()
        .await
        .expect("create a key");
    assert_eq!(response.status(), 201);
    let key: Value = response.json().await.expect("json");
    World {
        user: key["key"].as_str().expect("key").to_owned(),
        service,
        receiver: WebhookReceiver::start().await,
        app,
    }
}

impl World {
    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.app.client.request(method, self.app.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A new job whose webhook is the receiver's `path`.
    async fn job_with_webhook(&self, path: &str) -> String {
        let body = json!({
            "capability": "image",
            "params": {"prompt": "a lighthouse", "seed": 7},
            "webhook_url": self.receiver.url(path),
        });
        let (status, created) = self.call(Method::POST, "/api/v1/jobs", &self.user, Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["job_id"].as_str().expect("id").to_owned()
    }

    async fn worker(&self, job: &str, step: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/api/internal/jobs/{job}/{step}");
        self.call(Method::POST, &path, &self.service, Some(body)).await
    }

    /// Claims the job as worker `w1` and completes it with one stored artifact.
    async fn complete(&self, job: &str) {
        let (status, claimed) = self.worker(job, "claim", json!({"worker_id": "w1"})).await;
        assert_eq!((status.as_u16(), &claimed["action"]), (200, &json!("run")), "{claimed}");
        self.complete_claimed(job, claimed["attempt"].clone()).await;
    }

    /// Completes worker `w1`'s `attempt` of the job with one stored artifact.
    async fn complete_claimed(&self, job: &str, attempt: Value) {
        let key = format!("outputs/{job}/output.png");
        self.app
            .backend
            .blobs
            .put(
                &tessera_store::definitions::artifacts_bucket(),
                &key,
                bytes::Bytes::from_static(b"png"),
                "image/png",
            )
            .await
            .expect("put");
        let artifact = json!({"id": "artifact_000000000001", "type": "image", "key": key, "format": "png",
                              "width": 1024, "height": 1024, "file_size_bytes": 3});
        let body = json!({"worker_id": "w1", "attempt": attempt, "artifacts": [artifact]});
        let (status, done) = self.worker(job, "complete", body).await;
        assert_eq!(status, 200, "{done}");
    }

    /// Claims the job as worker `w1` and fails it for good.
    async fn fail(&self, job: &str) {
        let (_, claimed) = self.worker(job, "claim", json!({"worker_id": "w1"})).await;
        let body = json!({"worker_id": "w1", "attempt": claimed["attempt"], "code": "OOM",
                          "message": "Out of memory", "retryable": false});
        let (status, failed) = self.worker(job, "fail", body).await;
        assert_eq!(status, 200, "{failed}");
    }

    async fn cancel(&self, job: &str) {
        let (status, body) = self
            .call(Method::DELETE, &format!("/api/v1/jobs/{job}"), &self.user, None)
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Makes the next attempt of the job's first delivery, as the queue consumer would.
    async fn attempt(&self, job: &str) -> Handled {
        handle(&self.app.v1, &first_delivery_message(job))
            .await
            .expect("handled")
    }

    async fn delivery(&self, job: &str) -> Value {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/api/v1/webhooks/deliveries/{}", first_delivery(job)),
                &self.user,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn rotate_secret(&self) -> Value {
        let (status, body) = self
            .call(Method::POST, "/api/v1/webhooks/secret", &self.user, None)
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    fn now(&self) -> i64 {
        self.app.backend.clock_now()
    }

    fn advance(&self, seconds: i64) {
        self.app.backend.clock.advance(time::Duration::seconds(seconds));
    }
}

fn first_delivery(job: &str) -> DeliveryId {
    DeliveryId::first_of(&EventId::for_job(&JobId::parse(job).expect("job id")))
}

fn first_delivery_message(job: &str) -> String {
    serde_json::to_string(&DeliveryMessage {
        delivery_id: first_delivery(job),
        attempt_count: 0,
    })
    .expect("json")
}

async fn every_final_event_reaches_the_webhook_signed_and_in_the_spec_shape(backend: Backend) {
    let world = world(TestApp::spawn(backend).await).await;
    let secret = world.rotate_secret().await["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let completed = world.job_with_webhook("/completed").await;
    let failed = world.job_with_webhook("/failed").await;
    let cancelled = world.job_with_webhook("/cancelled").await;
    let (_, waiting) = world
        .call(Method::GET, &format!("/api/v1/jobs/{completed}"), &world.user, None)
        .await;
    assert_eq!(waiting["webhook"]["status"], "waiting", "{waiting}");
    world.complete(&completed).await;
    world.fail(&failed).await;
    world.cancel(&cancelled).await;

    for job in [&completed, &failed, &cancelled] {
        assert_eq!(world.attempt(job).await, Handled::Attempted(DeliveryStatus::Delivered));
    }
    let received = world.receiver.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 3, "exactly one POST per event");
    for (webhook, (job, event, status)) in received.iter().zip([
        (&completed, "job.completed", "COMPLETED"),
        (&failed, "job.failed", "FAILED"),
        (&cancelled, "job.cancelled", "CANCELLED"),
    ]) {
        let body = webhook.json();
        check_event_shape(&body).unwrap_or_else(|problem| panic!("{problem}: {body}"));
        assert_eq!(
            (&body["event"], &body["job_id"], &body["status"]),
            (&json!(event), &json!(job), &json!(status))
        );
        assert_eq!(webhook.header("content-type"), Some("application/json"));
        assert_eq!(webhook.header("x-tessera-event"), Some(event));
        let signature = webhook.header("x-tessera-signature").expect("signed");
        assert_eq!(
            verify_signature(signature, &[&secret], webhook.body.as_bytes(), world.now(), 300),
            Ok(0),
            "{signature}"
        );
        assert_eq!(
            crate::verify_snippet::verify_webhook(&secret, signature, webhook.body.as_bytes(), world.now()),
            Ok(()),
            "the README's Rust snippet accepts what the dispatcher sends"
        );
        crate::verify_snippet::python_accepts(&secret, signature, &webhook.body, world.now());
    }
    let completed_body = received[0].json();
    assert_eq!(completed_body["data"]["job"]["status"], "COMPLETED");
    let url = completed_body["data"]["artifacts"][0]["url"]
        .as_str()
        .expect("artifact url");
    assert_eq!(
        reqwest::get(url).await.expect("download").bytes().await.expect("bytes"),
        "png"
    );
    assert_eq!(received[1].json()["data"]["job"]["error"]["code"], "OOM");

    let (_, shown) = world
        .call(Method::GET, &format!("/api/v1/jobs/{completed}"), &world.user, None)
        .await;
    assert_eq!(shown["webhook"]["status"], "delivered", "{shown}");
    assert_eq!(shown["webhook"]["attempts"], 1);
    assert_eq!(shown["webhook"]["last_status_code"], 200);
    let (_, log) = world
        .call(
            Method::GET,
            "/api/v1/webhooks/deliveries?status=delivered&limit=2",
            &world.user,
            None,
        )
        .await;
    assert_eq!(log["pagination"]["total"], 3, "{log}");
    assert_eq!(log["deliveries"].as_array().expect("page").len(), 2);
    assert_eq!(log["pagination"]["has_more"], true);
    let (_, one_job) = world
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/deliveries?job_id={failed}"),
            &world.user,
            None,
        )
        .await;
    assert_eq!(one_job["pagination"]["total"], 1);
    assert_eq!(one_job["deliveries"][0]["event"], "job.failed");
    let (status, bad) = world
        .call(
            Method::GET,
            "/api/v1/webhooks/deliveries?status=lost",
            &world.user,
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), &bad["error"]["code"]),
        (400, &json!("INVALID_PARAMS"))
    );
}

async fn a_failing_receiver_is_retried_on_the_backoff_schedule_and_every_attempt_is_logged(backend: Backend) {
    let world = world(TestApp::spawn(backend).await).await;
    world
        .receiver
        .script([Reply::Status(500), Reply::Hang(Duration::from_secs(3)), Reply::Accept]);
    let job = world.job_with_webhook("/flaky").await;
    world.complete(&job).await;

    assert_eq!(world.attempt(&job).await, Handled::Attempted(DeliveryStatus::Pending));
    let first = world.delivery(&job).await;
    let after_first = due_in(&first);
    assert!(
        (54..=66).contains(&after_first),
        "1 min ± 10 %: {after_first} s\n{first}"
    );
    assert_eq!(first["attempts"][0]["status_code"], 500);
    assert_eq!(world.attempt(&job).await, Handled::Deferred, "not due yet");
    assert_eq!(world.receiver.received().len(), 1);

    world.advance(after_first + 1);
    assert_eq!(world.attempt(&job).await, Handled::Attempted(DeliveryStatus::Pending));
    let second = world.delivery(&job).await;
    let error = second["attempts"][1]["error"].as_str().expect("error");
    assert!(error.contains("no answer within 1 s"), "{error}");
    assert_eq!(second["attempts"][1]["status_code"], Value::Null);
    let after_second = due_in(&second);
    assert!((270..=330).contains(&after_second), "5 min ± 10 %: {after_second} s");

    world.advance(after_second + 1);
    assert_eq!(world.attempt(&job).await, Handled::Attempted(DeliveryStatus::Delivered));
    let log = world.delivery(&job).await;
    let attempts = log["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "{log}");
    for (number, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["number"], number + 1);
        assert!(attempt["at"].is_string() && attempt["latency_ms"].is_u64(), "{attempt}");
    }
    assert!(attempts[1]["latency_ms"].as_u64().expect("latency") >= 1000);
    assert_eq!(attempts[2]["status_code"], 200);
    assert_eq!(log["status"], "delivered");
    assert_eq!(log["next_attempt_at"], Value::Null);
    assert_eq!(world.receiver.received().len(), 3);
}

async fn a_delivery_that_never_succeeds_is_failed_after_seven_attempts_over_a_day(backend: Backend) {
    let world = world(TestApp::spawn(backend).await).await;
    world.receiver.script(std::iter::repeat_n(Reply::Status(413), 7));
    let job = world.job_with_webhook("/too-small").await;
    world.fail(&job).await;
    let mut waited = Vec::new();
    for _ in 0..6 {
        assert_eq!(world.attempt(&job).await, Handled::Attempted(DeliveryStatus::Pending));
        let wait = due_in(&world.delivery(&job).await);
        waited.push(wait);
        world.advance(wait + 1);
    }
    assert_eq!(world.attempt(&job).await, Handled::Attempted(DeliveryStatus::Failed));
    for (wait, base) in waited.iter().zip(tessera_core::event::RETRY_DELAYS_SECONDS) {
        assert!(
            (base * 9 / 10..=base * 11 / 10).contains(wait),
            "{wait} s for a {base} s step"
        );
    }
    let log = world.delivery(&job).await;
    assert_eq!(log["status"], "failed");
    assert_eq!(log["attempts"].as_array().expect("attempts").len(), 7);
    assert!(
        log["attempts"]
            .as_array()
            .expect("attempts")
            .iter()
            .all(|a| a["status_code"] == 413)
    );
    let (_, shown) = world
        .call(Method::GET, &format!("/api/v1/jobs/{job}"), &world.user, None)
        .await;
    assert_eq!(
        (&shown["webhook"]["status"], &shown["webhook"]["attempts"]),
        (&json!("failed"), &json!(7))
    );
    assert_eq!(
        world.attempt(&job).await,
        Handled::Dropped,
        "nothing after the last attempt"
    );
    assert_eq!(world.receiver.received().len(), 7);
}

async fn a_huge_answer_is_read_only_up_to_a_mebibyte(backend: Backend) {
    let world = world(TestApp::spawn(backend).await).await;
    world.receiver.script([Reply::Large(8 * 1024 * 1024)]);
    let job = world.job_with_webhook("/chatty").await;
    world.cancel(&job).await;
    assert_eq!(world.attempt(&job).await, Handled::Attempted(DeliveryStatus::Delivered));
    let log = world.delivery(&job).await;
    let excerpt = log["attempts"][0]["response_excerpt"].as_str().expect("excerpt");
    assert_eq!(excerpt.len(), 512, "the log keeps the start of the answer");
}

/// Seconds from a delivery's last attempt to its next one.
fn due_in(delivery: &Value) -> i64 {
    let at = |value: &Value| {
        time::OffsetDateTime::parse(
            value.as_str().expect("time"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("rfc 3339")
        .unix_timestamp()
    };
    let attempts = delivery["attempts"].as_array().expect("attempts");
    at(&delivery["next_attempt_at"]) - at(&attempts.last().expect("an attempt")["at"])
}

async fn a_redirect_is_not_followed_but_logged_as_a_failure_and_can_be_redelivered(backend: Backend) {
    let world = world(TestApp::spawn(backend).await).await;
    let elsewhere = WebhookReceiver::start().await;
    world.receiver.script([Reply::Redirect(elsewhere.url("/moved"))]);
    let job = world.job_with_webhook("/old").await;
    world.complete(&job).await;
    assert_eq!(world.attempt(&job).await, Handled::Attempted(DeliveryStatus::Pending));
    let log = world.delivery(&job).await;
    assert_eq!(log["attempts"][0]["status_code"], 302);
    let error = log["attempts"][0]["error"].as_str().expect("error");
    assert!(error.contains("redirects are not followed"), "{error}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(elsewhere.received().is_empty(), "the redirect was not followed");

    let path = format!("/api/v1/webhooks/deliveries/{}/redeliver", first_delivery(&job));
    let (status, again) = world.call(Method::POST, &path, &world.user, None).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["redelivery_of"], json!(first_delivery(&job)));
    assert_eq!(again["status"], "pending");
    let message = json!({"delivery_id": again["delivery_id"], "attempt_count": 0}).to_string();
    assert_eq!(
        handle(&world.app.v1, &message).await.expect("handled"),
        Handled::Attempted(DeliveryStatus::Delivered)
    );
    let received = world.receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, received[1].body, "a redelivery sends the same event");
    let (_, all) = world
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/deliveries?job_id={job}"),
            &world.user,
            None,
        )
        .await;
    assert_eq!(all["pagination"]["total"], 2, "{all}");
}

async fn the_ssrf_guard_refuses_private_destinations_at_create_and_at_send_time(backend: Backend) {
    let public: IpAddr = "93.184.216.34".parse().expect("ip");
    let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
    let resolver = Arc::new(StaticResolver::new([
        ("sneaky.example", vec![loopback]),
        ("rebinding.example", vec![public]),
        ("hooks.example", vec![public]),
    ]));
    let closed = WebhookRules {
        allow_http: false,
        allow_private: false,
    };
    let app = TestApp::spawn_with_webhooks(backend, webhook_settings(closed, resolver.clone())).await;
    let world = world(app).await;
    let create = |url: &str| {
        let body = json!({"capability": "image", "params": {"prompt": "a lighthouse"}, "webhook_url": url});
        world.call(Method::POST, "/api/v1/jobs", &world.user, Some(body))
    };
    for url in [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://169.254.10.10/hook",
        "https://224.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://[fe80::1]/hook",
        "https://[ff02::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://localhost/hook",
        "https://sneaky.example/hook",
        "https://nowhere.example/hook",
        "http://hooks.example/hook",
    ] {
        let (status, body) = create(url).await;
        assert_eq!(status, 400, "{url} must be refused: {body}");
        assert_eq!(body["error"]["code"], "INVALID_PARAMS");
        assert_eq!(body["error"]["details"]["field"], "webhook_url", "{body}");
    }
    let (status, created) = create("https://rebinding.example/hook").await;
    assert_eq!(status, 201, "{created}");
    let job = created["job_id"].as_str().expect("id").to_owned();
    resolver.set("rebinding.example", vec![loopback]);
    world.complete(&job).await;
    assert_eq!(world.attempt(&job).await, Handled::Attempted(DeliveryStatus::Pending));
    let log = world.delivery(&job).await;
    let error = log["attempts"][0]["error"].as_str().expect("error");
    assert!(
        error.contains("loopback"),
        "refused at send time after DNS changed: {error}"
    );
    assert_eq!(log["attempts"][0]["status_code"], Value::Null);
}

async fn after_a_rotation_both_secrets_sign_for_a_day(backend: Backend) {
    let world = world(TestApp::spawn(backend).await).await;
    let first = world.rotate_secret().await;
    assert_eq!(first["previous_secret_expires_at"], Value::Null);
    let old = first["secret"].as_str().expect("secret").to_owned();
    let jobs = [
        world.job_with_webhook("/before").await,
        world.job_with_webhook("/during").await,
        world.job_with_webhook("/after").await,
    ];
    world.complete(&jobs[0]).await;
    world.attempt(&jobs[0]).await;

    let second = world.rotate_secret().await;
    let new = second["secret"].as_str().expect("secret").to_owned();
    assert_ne!(old, new);
    assert!(second["previous_secret_expires_at"].is_string(), "{second}");
    world.complete(&jobs[1]).await;
    world.attempt(&jobs[1]).await;

    world.advance(24 * 60 * 60 + 1);
    world.complete(&jobs[2]).await;
    world.attempt(&jobs[2]).await;

    let received = world.receiver.wait_for(3, Duration::from_secs(5)).await;
    let signed_at = |index: usize| {
        let webhook = &received[index];
        let header = webhook.header("x-tessera-signature").expect("signed").to_owned();
        (header, webhook.body.clone())
    };
    let now = world.now();
    let (header, body) = signed_at(0);
    assert_eq!(header.matches("v1=").count(), 1);
    assert_eq!(verify_signature(&header, &[&old], body.as_bytes(), now, 90_000), Ok(0));
    let (header, body) = signed_at(1);
    assert_eq!(
        header.matches("v1=").count(),
        2,
        "both secrets sign during the overlap: {header}"
    );
    assert_eq!(verify_signature(&header, &[&old], body.as_bytes(), now, 90_000), Ok(0));
    assert_eq!(verify_signature(&header, &[&new], body.as_bytes(), now, 90_000), Ok(0));
    let (header, body) = signed_at(2);
    assert_eq!(header.matches("v1=").count(), 1, "the old secret stopped after a day");
    assert!(verify_signature(&header, &[&old], body.as_bytes(), now, 300).is_err());
    assert_eq!(verify_signature(&header, &[&new], body.as_bytes(), now, 300), Ok(0));
}

async fn a_crash_after_the_final_state_still_delivers_through_the_sweep(backend: Backend) {
    let _alone = crate::support::sweeping_alone().await;
    let world = world(TestApp::spawn(backend).await).await;
    let job = world.job_with_webhook("/after-crash").await;
    let (_, claimed) = world.worker(&job, "claim", json!({"worker_id": "w1"})).await;
    let record = world
        .app
        .v1
        .jobs
        .get(&JobId::parse(&job).expect("id"))
        .await
        .expect("read")
        .expect("job");
    // The final transition, then a crash: the process dies before it dispatches the event.
    world
        .app
        .v1
        .jobs
        .fail(
            &record,
            Some(("w1", claimed["attempt"].as_u64().expect("attempt") as u32)),
            &tessera_store::jobs::JobError {
                code: "OOM".into(),
                message: "Out of memory".into(),
                details: String::new(),
            },
            false,
            world.now(),
        )
        .await
        .expect("failed");
    let event = EventId::for_job(&record.job_id);
    assert!(
        world.app.v1.events.outbox(&event).await.expect("read").is_some(),
        "in the outbox"
    );
    assert!(
        world
            .app
            .v1
            .events
            .delivery(&first_delivery(&job))
            .await
            .expect("read")
            .is_none(),
        "not dispatched yet"
    );

    world.advance(31);
    let report = tessera_api::v1::sweep::sweep(&world.app.v1).await.expect("sweep");
    assert!(report.events >= 1, "{report:?}");
    assert!(
        world.app.v1.events.outbox(&event).await.expect("read").is_none(),
        "dispatched"
    );
    assert_eq!(world.attempt(&job).await, Handled::Attempted(DeliveryStatus::Delivered));
    let received = world.receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received[0].json()["event"], "job.failed");
}

/// A job created by a Telegram bot for a chat user of its own, with a webhook too.
async fn bot_job(world: &World, user_ref: &str) -> String {
    let body = json!({
        "frontend": "telegram",
        "bot_id": "tg-img-1",
        "capability": "image",
        "user_ref": user_ref,
        "reply_context": {"platform": "telegram", "chat_id": "123456789", "message_id": "987654321"},
        "params": {"prompt": "a beautiful sunset", "resolution": "1024x1024", "steps": 20}
    });
    let (status, created) = world
        .call(Method::POST, "/api/internal/jobs", &world.service, Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    created["job_id"].as_str().expect("id").to_owned()
}

/// The notify messages of `user_ref`'s chat on the Telegram queue, received until `count`
/// arrived or `patience` ran out (others' messages are left alone).
async fn notify_messages(world: &World, user_ref: &str, count: usize, patience: Duration) -> Vec<NotifyMessage> {
    let queue = notify_queue(Frontend::Telegram);
    let mut mine = Vec::new();
    let deadline = tokio::time::Instant::now() + patience;
    while mine.len() < count && tokio::time::Instant::now() < deadline {
        let request = ReceiveRequest {
            max_messages: 10,
            wait: Duration::from_secs(1),
            visibility_timeout: Some(Duration::from_secs(30)),
        };
        for message in world.app.backend.queue.receive(&queue, request).await.expect("receive") {
            if message.group_id.as_deref() != Some(user_ref) {
                continue;
            }
            world
                .app
                .backend
                .queue
                .delete(&queue, &message.receipt)
                .await
                .expect("delete");
            mine.push(serde_json::from_str(&message.body).expect("a notify message"));
        }
    }
    mine
}

async fn duplicate_deliveries_send_one_webhook_and_one_notify_message(backend: Backend) {
    let world = world(TestApp::spawn(backend).await).await;
    let job = world.job_with_webhook("/once").await;
    world.receiver.script([Reply::Hang(Duration::from_millis(300))]);
    world.complete(&job).await;
    let message = first_delivery_message(&job);
    let (a, b) = tokio::join!(handle(&world.app.v1, &message), handle(&world.app.v1, &message));
    let outcomes = [a, b];
    assert_eq!(
        outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Ok(Handled::Attempted(_))))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        world.attempt(&job).await,
        Handled::Dropped,
        "a late duplicate finds it delivered"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.receiver.received().len(), 1, "one webhook");

    let user_ref = format!("telegram:{}", rand::random::<u32>());
    let chat_job = bot_job(&world, &user_ref).await;
    let (_, claimed) = world.worker(&chat_job, "claim", json!({"worker_id": "w1"})).await;
    let outbox_before = {
        let id = JobId::parse(&chat_job).expect("id");
        let record = world.app.v1.jobs.get(&id).await.expect("read").expect("job");
        let error = tessera_store::jobs::JobError {
            code: "OOM".into(),
            message: "Out of memory".into(),
            details: String::new(),
        };
        let attempt = claimed["attempt"].as_u64().expect("attempt") as u32;
        world
            .app
            .v1
            .jobs
            .fail(&record, Some(("w1", attempt)), &error, false, world.now())
            .await
            .expect("fail");
        world
            .app
            .v1
            .events
            .outbox(&EventId::for_job(&id))
            .await
            .expect("read")
            .expect("outbox")
    };
    // The API's own dispatch and the sweep's, racing on the same outbox entry.
    let (first, second) = tokio::join!(
        dispatch(&world.app.v1, &outbox_before),
        dispatch(&world.app.v1, &outbox_before)
    );
    first.expect("dispatch");
    second.expect("dispatch");
    // Room for a third message, which must not come.
    let messages = notify_messages(&world, &user_ref, 3, Duration::from_secs(3)).await;
    assert_eq!(messages.len(), 2, "the start and the end: {messages:?}");
    let finals: Vec<&NotifyMessage> = messages.iter().filter(|m| m.event == NotifyEvent::Failed).collect();
    assert_eq!(finals.len(), 1, "one notify message for the event: {messages:?}");
    assert_eq!(
        finals[0].event_id,
        EventId::for_job(&JobId::parse(&chat_job).expect("id")).to_string()
    );
}

async fn bots_hear_start_progress_milestones_and_the_end_on_their_notify_queue(backend: Backend) {
    let world = world(TestApp::spawn(backend).await).await;
    let user_ref = format!("telegram:{}", rand::random::<u32>());
    let job = bot_job(&world, &user_ref).await;
    let (_, claimed) = world.worker(&job, "claim", json!({"worker_id": "w1"})).await;
    let attempt = claimed["attempt"].clone();
    let progress = |percent: u8| {
        world.worker(
            &job,
            "progress",
            json!({"worker_id": "w1", "attempt": attempt, "percent": percent}),
        )
    };
    for (percent, wait) in [(5, 0), (12, 0), (18, 0), (25, 1), (31, 2), (47, 0), (55, 3)] {
        world.advance(wait);
        assert_eq!(progress(percent).await.0, 200);
    }
    world.complete_claimed(&job, attempt.clone()).await;
    let messages = notify_messages(&world, &user_ref, 5, Duration::from_secs(10)).await;
    let seen: Vec<(NotifyEvent, Option<u8>)> = messages.iter().map(|m| (m.event, m.progress)).collect();
    assert_eq!(
        seen,
        vec![
            (NotifyEvent::Started, Some(0)),
            (NotifyEvent::Progress, Some(12)),
            (NotifyEvent::Progress, Some(31)),
            (NotifyEvent::Progress, Some(55)),
            (NotifyEvent::Completed, None),
        ],
        "every 10 %, at most every 2 s, in order"
    );
    let done = &messages[4];
    assert_eq!(
        (done.bot_id.as_str(), done.user_ref.as_str()),
        ("tg-img-1", user_ref.as_str())
    );
    assert_eq!(done.reply_context["chat_id"], "123456789");
    assert_eq!(done.job["status"], "COMPLETED");
    assert!(done.job["artifacts"][0]["url"].is_string(), "{}", done.job);
}

async fn the_webhook_queue_carries_each_attempt_and_the_lambda_reports_only_retries(backend: Backend) {
    let world = world(TestApp::spawn(backend).await).await;
    let job = world.job_with_webhook("/queued").await;
    world.complete(&job).await;
    let delivery = first_delivery(&job);
    let queue = webhook_queue();
    let mut found = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while found.is_none() && tokio::time::Instant::now() < deadline {
        let request = ReceiveRequest {
            max_messages: 10,
            wait: Duration::from_secs(1),
            visibility_timeout: Some(Duration::from_secs(30)),
        };
        for message in world.app.backend.queue.receive(&queue, request).await.expect("receive") {
            let parsed: DeliveryMessage = serde_json::from_str(&message.body).expect("a delivery message");
            if parsed.delivery_id == delivery {
                found = Some(message);
            }
        }
    }
    let message = found.expect("the dispatcher queued the first attempt");

    // Another consumer holds the attempt: the Lambda reports the message as a failure, so that
    // SQS brings it back; a malformed message is dropped, not retried forever.
    let now = world.now();
    assert!(
        world
            .app
            .v1
            .events
            .claim_attempt(&delivery, 0, now, now + 45)
            .await
            .expect("claim")
    );
    let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(json!({"Records": [
        sqs_record("m-held", &message.body),
        sqs_record("m-garbage", "{\"not\": \"a delivery\"}"),
    ]}))
    .expect("an SQS event");
    let response = tessera_lambdas::webhook_batch(&world.app.v1, event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["m-held"]);
    assert!(world.receiver.received().is_empty());

    world.advance(46);
    let event: aws_lambda_events::sqs::SqsEvent =
        serde_json::from_value(json!({"Records": [sqs_record("m-again", &message.body)]})).expect("event");
    let response = tessera_lambdas::webhook_batch(&world.app.v1, event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.receiver.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    world
        .app
        .backend
        .queue
        .delete(&queue, &message.receipt)
        .await
        .expect("delete");
}

/// One SQS record as Lambda delivers it.
fn sqs_record(id: &str, body: &str) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": unique("rh"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795550400000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tessera-webhooks",
        "awsRegion": "us-east-1"
    })
}

async fn deliveries_are_hidden_from_other_tenants(backend: Backend) {
    let world = world(TestApp::spawn(backend).await).await;
    let job = world.job_with_webhook("/mine").await;
    world.complete(&job).await;
    world.attempt(&job).await;
    let stranger = world.app.user_token().await;
    let id = first_delivery(&job);
    crate::support::assert_hidden_from_stranger(
        &world.app,
        &stranger,
        Method::GET,
        &format!("/api/v1/webhooks/deliveries/{id}"),
        "/api/v1/webhooks/deliveries/dlv_000000000000",
    )
    .await;
    crate::support::assert_hidden_from_stranger(
        &world.app,
        &stranger,
        Method::POST,
        &format!("/api/v1/webhooks/deliveries/{id}/redeliver"),
        "/api/v1/webhooks/deliveries/dlv_000000000000/redeliver",
    )
    .await;
    let (_, theirs) = world
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/deliveries?job_id={job}"),
            &stranger,
            None,
        )
        .await;
    assert_eq!(theirs["pagination"]["total"], 0, "{theirs}");
    assert_eq!(world.receiver.received().len(), 1);
}
