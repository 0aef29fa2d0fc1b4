//! The `internal` family over HTTP on both backends: a worker's claim, progress, complete and
//! fail, each a conditional transition that tells the worker when its job was cancelled.

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_api::internal::LEASE_SECONDS;
use tessera_api::v1::sweep::{LAPSE_SECONDS, time_out_lapsed};
use tessera_core::{PlanTier, TenantId};
use tessera_store::definitions::artifacts_bucket;

use crate::conformance;
use crate::support::{Backend, TestApp};

conformance!(
    a_worker_claims_reports_progress_and_completes_a_job,
    a_duplicate_delivery_is_dropped_not_run,
    a_cancel_while_running_tells_the_worker_to_drop_the_job,
    a_vanished_workers_job_is_reclaimed_and_completes_exactly_once,
    a_job_whose_worker_never_returns_fails_with_worker_timeout_and_is_refunded,
    a_worker_failure_records_the_error_and_refunds,
    only_service_credentials_reach_the_internal_routes,
    a_bot_creates_jobs_for_chat_users_under_their_own_quota,
    the_eta_shares_the_queue_among_live_workers,
    a_bot_sees_and_cancels_only_its_chat_users_own_jobs,
    a_chat_servers_settings_bound_steps_models_and_each_members_daily_jobs,
);

struct World {
    app: TestApp,
    user: String,
    tenant: TenantId,
    service: String,
}

async fn world(backend: Backend, plan: PlanTier) -> World {
    let app = TestApp::spawn(backend).await;
    let (_, _, body) = app.signup().await;
    let tenant = TenantId::parse(body["tenant"]["id"].as_str().expect("tenant")).expect("id");
    app.auth.accounts().set_plan(&tenant, plan).await.expect("plan");
    let service = app
        .auth
        .create_service_key("gpu-worker")
        .await
        .expect("service key")
        .key;
    World {
        user: body["tokens"]["access_token"].as_str().expect("token").to_owned(),
        tenant,
        service,
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

    async fn new_job(&self) -> String {
        let body = json!({"capability": "image", "params": {"prompt": "a lighthouse", "seed": 7}});
        let (status, created) = self.call(Method::POST, "/api/v1/jobs", &self.user, Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["job_id"].as_str().expect("id").to_owned()
    }

    async fn worker(&self, job: &str, step: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/api/internal/jobs/{job}/{step}"),
            &self.service,
            Some(body),
        )
        .await
    }

    async fn job(&self, job: &str) -> Value {
        self.call(Method::GET, &format!("/api/v1/jobs/{job}"), &self.user, None)
            .await
            .1
    }

    async fn usage(&self) -> Value {
        self.call(Method::GET, "/api/v1/user/me", &self.user, None).await.1["usage"].clone()
    }
}

async fn a_worker_claims_reports_progress_and_completes_a_job(backend: Backend) {
    let world = world(backend, PlanTier::Free).await;
    let job = world.new_job().await;
    let (status, claimed) = world.worker(&job, "claim", json!({"worker_id": "w1"})).await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["action"], "run");
    assert_eq!(claimed["attempt"], 1);
    assert_eq!(claimed["job"]["model_id"], "sdxl-1.0");
    assert_eq!(claimed["job"]["workflow_id"], "txt2img_sdxl");
    assert_eq!(claimed["job"]["params"]["seed"], 7);
    assert_eq!(
        (
            claimed["job"]["params"]["width"].clone(),
            claimed["job"]["params"]["height"].clone()
        ),
        (json!(1024), json!(1024))
    );

    let (status, answer) = world
        .worker(
            &job,
            "progress",
            json!({"worker_id": "w1", "attempt": 1, "percent": 30}),
        )
        .await;
    assert_eq!((status.as_u16(), answer), (200, json!({"cancelled": false})));
    assert_eq!(world.job(&job).await["progress"], 30);
    let (status, _) = world
        .worker(
            &job,
            "progress",
            json!({"worker_id": "w1", "attempt": 1, "percent": 20}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(world.job(&job).await["progress"], 30, "progress never goes backwards");

    let key = format!("outputs/{job}/output.png");
    let thumbnail = format!("outputs/{job}/thumb.jpg");
    let blobs = &world.app.backend.blobs;
    blobs
        .put(&artifacts_bucket(), &key, Bytes::from_static(b"the png"), "image/png")
        .await
        .expect("put");
    blobs
        .put(
            &artifacts_bucket(),
            &thumbnail,
            Bytes::from_static(b"the jpeg"),
            "image/jpeg",
        )
        .await
        .expect("put");
    let artifact = json!({"id": "artifact_000000000001", "type": "image", "key": key, "thumbnail_key": thumbnail,
                          "format": "png", "width": 1024, "height": 1024, "file_size_bytes": 7});
    let (status, done) = world
        .worker(
            &job,
            "complete",
            json!({"worker_id": "w1", "attempt": 1, "artifacts": [artifact]}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), done),
        (200, json!({"status": "COMPLETED", "cancelled": false}))
    );

    let completed = world.job(&job).await;
    assert_eq!(completed["status"], "COMPLETED");
    let url = completed["artifacts"][0]["url"].as_str().expect("url");
    assert_eq!(
        reqwest::get(url).await.expect("download").bytes().await.expect("bytes"),
        "the png"
    );
    let thumb = completed["artifacts"][0]["thumbnail_url"].as_str().expect("thumbnail");
    assert_eq!(
        reqwest::get(thumb)
            .await
            .expect("download")
            .bytes()
            .await
            .expect("bytes"),
        "the jpeg"
    );
    world.app.backend.clock.advance(time::Duration::seconds(61));
    assert_eq!(world.usage().await["tokens_used_today"], json!(1.0), "charged once");
    let (_, usage) = world.call(Method::GET, "/api/v1/user/usage", &world.user, None).await;
    assert_eq!(usage["total"]["jobs_completed"], 1);
    world.new_job().await;
}

async fn a_duplicate_delivery_is_dropped_not_run(backend: Backend) {
    let world = world(backend, PlanTier::Pro).await;
    let job = world.new_job().await;
    assert_eq!(
        world.worker(&job, "claim", json!({"worker_id": "w1"})).await.1["action"],
        "run"
    );
    let (_, again) = world.worker(&job, "claim", json!({"worker_id": "w2"})).await;
    assert_eq!(again, json!({"action": "drop", "reason": "running_elsewhere"}));
    world
        .worker(
            &job,
            "complete",
            json!({"worker_id": "w1", "attempt": 1, "artifacts": []}),
        )
        .await;
    let (_, after) = world.worker(&job, "claim", json!({"worker_id": "w2"})).await;
    assert_eq!(after, json!({"action": "drop", "reason": "completed"}));
    let (_, missing) = world
        .worker("job_000000000000", "claim", json!({"worker_id": "w2"}))
        .await;
    assert_eq!(missing, json!({"action": "drop", "reason": "not_found"}));
}

async fn a_cancel_while_running_tells_the_worker_to_drop_the_job(backend: Backend) {
    let world = world(backend, PlanTier::Free).await;
    let job = world.new_job().await;
    world.worker(&job, "claim", json!({"worker_id": "w1"})).await;
    let (status, _) = world
        .call(Method::DELETE, &format!("/api/v1/jobs/{job}"), &world.user, None)
        .await;
    assert_eq!(status, 200);
    let (status, answer) = world
        .worker(
            &job,
            "progress",
            json!({"worker_id": "w1", "attempt": 1, "percent": 50}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        (answer["cancelled"].clone(), answer["status"].clone()),
        (json!(true), json!("CANCELLED"))
    );
    let (status, answer) = world
        .worker(
            &job,
            "complete",
            json!({"worker_id": "w1", "attempt": 1, "artifacts": []}),
        )
        .await;
    assert_eq!((status.as_u16(), answer["cancelled"].clone()), (409, json!(true)));
    assert_eq!(world.job(&job).await["status"], "CANCELLED");
    assert_eq!(
        world.usage().await["tokens_used_today"],
        json!(0.0),
        "the cancel refunded, the worker charged nothing"
    );
    world.new_job().await;
}

async fn a_vanished_workers_job_is_reclaimed_and_completes_exactly_once(backend: Backend) {
    let world = world(backend, PlanTier::Free).await;
    let job = world.new_job().await;
    world.worker(&job, "claim", json!({"worker_id": "w1"})).await;
    world
        .app
        .backend
        .clock
        .advance(time::Duration::seconds(LEASE_SECONDS + 1));
    let (_, reclaimed) = world.worker(&job, "claim", json!({"worker_id": "w2"})).await;
    assert_eq!(
        (reclaimed["action"].clone(), reclaimed["attempt"].clone()),
        (json!("run"), json!(2))
    );
    let (status, late) = world
        .worker(
            &job,
            "complete",
            json!({"worker_id": "w1", "attempt": 1, "artifacts": []}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), late["cancelled"].clone()),
        (409, json!(false)),
        "the first worker lost the job"
    );
    let (status, _) = world
        .worker(
            &job,
            "complete",
            json!({"worker_id": "w2", "attempt": 2, "artifacts": []}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = world
        .worker(
            &job,
            "complete",
            json!({"worker_id": "w2", "attempt": 2, "artifacts": []}),
        )
        .await;
    assert_eq!(status, 409, "completed once");
    let user = world.call(Method::GET, "/api/auth/me", &world.user, None).await;
    assert_eq!(user.0, 200);
    let fresh = world.app.auth.accounts().tenant(&world.tenant).await.expect("tenant");
    assert!(fresh.is_some());
    let (_, usage) = world.call(Method::GET, "/api/v1/user/usage", &world.user, None).await;
    assert_eq!(
        (
            usage["total"]["jobs_completed"].clone(),
            usage["total"]["tokens_used"].clone()
        ),
        (json!(1), json!(1.0))
    );
}

async fn a_job_whose_worker_never_returns_fails_with_worker_timeout_and_is_refunded(backend: Backend) {
    let world = world(backend, PlanTier::Free).await;
    let job = world.new_job().await;
    world.worker(&job, "claim", json!({"worker_id": "w1"})).await;
    world
        .app
        .backend
        .clock
        .advance(time::Duration::seconds(LEASE_SECONDS + LAPSE_SECONDS + 1));
    // The sweep's own step, for this test's tenant only: on the emulator the table is shared
    // with tests whose clocks did not jump.
    let timed_out = time_out_lapsed(&world.app.v1, Some(&world.tenant))
        .await
        .expect("sweep");
    assert_eq!(timed_out, 1);
    let failed = world.job(&job).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["error"]["code"], "WORKER_TIMEOUT");
    assert_eq!(failed["retry_available"], true);
    assert_eq!(world.usage().await["tokens_used_today"], json!(0.0), "refunded");
    world.new_job().await;
}

async fn a_worker_failure_records_the_error_and_refunds(backend: Backend) {
    let world = world(backend, PlanTier::Free).await;
    let job = world.new_job().await;
    world.worker(&job, "claim", json!({"worker_id": "w1"})).await;
    let failure = json!({"worker_id": "w1", "attempt": 1, "code": "OOM", "message": "Out of memory",
                         "details": "CUDA out of memory", "retryable": false});
    let (status, answer) = world.worker(&job, "fail", failure.clone()).await;
    assert_eq!(
        (status.as_u16(), answer),
        (200, json!({"status": "FAILED", "cancelled": false}))
    );
    let failed = world.job(&job).await;
    assert_eq!(
        failed["error"],
        json!({"code": "OOM", "message": "Out of memory", "details": "CUDA out of memory"})
    );
    assert_eq!(failed["retry_available"], false);
    assert_eq!(world.usage().await["tokens_used_today"], json!(0.0));
    assert_eq!(world.worker(&job, "fail", failure).await.0, 409, "failed once");
    let (_, usage) = world.call(Method::GET, "/api/v1/user/usage", &world.user, None).await;
    assert_eq!(usage["usage"][0]["jobs_failed"], 1);
}

async fn only_service_credentials_reach_the_internal_routes(backend: Backend) {
    let world = world(backend, PlanTier::Free).await;
    let job = world.new_job().await;
    let path = format!("/api/internal/jobs/{job}/claim");
    let (status, answer) = world
        .call(Method::POST, &path, &world.user, Some(json!({"worker_id": "w1"})))
        .await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["code"], "UNAUTHORIZED");
    let (status, _) = world.call(Method::GET, "/api/v1/jobs", &world.service, None).await;
    assert_eq!(status, 401, "a service key is no user");
    let beat = json!({"worker_id": "worker-gpu-0", "status": "idle", "capabilities": ["audio"],
                      "loaded_models": ["sdxl-1.0"], "gpu_memory_used_mb": 8000, "gpu_memory_total_mb": 16000,
                      "uptime_seconds": 3600, "jobs_completed": 42});
    let (status, answer) = world
        .call(Method::POST, "/api/internal/heartbeat", &world.service, Some(beat))
        .await;
    assert_eq!((status.as_u16(), answer["status"].clone()), (200, json!("ok")));
    let (status, _) = world.worker(&job, "claim", json!({"worker_id": "bad worker id"})).await;
    assert_eq!(status, 400);
}

fn chat_job(user_ref: &str) -> Value {
    json!({
        "frontend": "telegram",
        "bot_id": "tg-img-1",
        "capability": "image",
        "user_ref": user_ref,
        "reply_context": {"platform": "telegram", "chat_id": "123456789", "message_id": "987654321"},
        "params": {"prompt": "a beautiful sunset", "resolution": "1024x1024", "steps": 20}
    })
}

async fn a_bot_creates_jobs_for_chat_users_under_their_own_quota(backend: Backend) {
    let world = world(backend, PlanTier::Free).await;
    let user_ref = format!("telegram:{}", rand::random::<u32>());
    let post = |body: Value, key: Option<&'static str>| {
        let mut request = world
            .app
            .client
            .post(world.app.url("/api/internal/jobs"))
            .bearer_auth(&world.service)
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        async move {
            let response = request.send().await.expect("post");
            (response.status(), response.json::<Value>().await.expect("json"))
        }
    };
    let first_contact = futures::future::join_all((0..5).map(|_| post(chat_job(&user_ref), None))).await;
    let created: Vec<&Value> = first_contact
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(created.len(), 1, "one Free tenant, one job at once: {first_contact:?}");
    assert_eq!(created[0]["tokens_remaining_today"], json!(9.0));
    assert_eq!(created[0]["status"], "QUEUED");
    for (status, body) in &first_contact {
        assert!([201, 429].contains(&status.as_u16()), "{body}");
    }
    let user = world
        .app
        .auth
        .accounts()
        .chat_user(&user_ref)
        .await
        .expect("lookup")
        .expect("the chat user");
    let job_id = tessera_core::JobId::parse(created[0]["job_id"].as_str().expect("id")).expect("id");
    let job = world.app.v1.jobs.get(&job_id).await.expect("get").expect("job");
    assert_eq!(job.user_id, user.id, "every request mapped to the same user");
    let origin = job.origin.expect("origin");
    assert_eq!(
        (origin.frontend.as_str(), origin.bot_id.as_str()),
        ("telegram", "tg-img-1")
    );
    assert_eq!(origin.reply_context["message_id"], "987654321");

    let other_ref = format!("telegram:{}", rand::random::<u32>());
    let (status, first) = post(chat_job(&other_ref), Some("update-42")).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = post(chat_job(&other_ref), Some("update-42")).await;
    assert_eq!(
        (status.as_u16(), again["job_id"].clone()),
        (201, first["job_id"].clone()),
        "the bot's retry is replayed"
    );
    assert_eq!(
        (&first["tokens_remaining_today"], &again["tokens_remaining_today"]),
        (&json!(9.0), &json!(9.0)),
        "a replay tells the tokens left too"
    );

    for (body, field) in [
        (chat_job("discord:1"), "user_ref"),
        (chat_job("telegram:"), "user_ref"),
        (
            {
                let mut body = chat_job(&user_ref);
                body["frontend"] = json!("irc");
                body
            },
            "frontend",
        ),
        (
            {
                let mut body = chat_job(&other_ref);
                body["params"]["steps"] = json!(0);
                body
            },
            "params.steps",
        ),
    ] {
        let (status, answer) = post(body, None).await;
        assert_eq!(
            (status.as_u16(), answer["error"]["details"]["field"].clone()),
            (400, json!(field)),
            "{answer}"
        );
    }
    let (status, _) = world
        .call(
            Method::POST,
            "/api/internal/jobs",
            &world.user,
            Some(chat_job(&user_ref)),
        )
        .await;
    assert_eq!(status, 401);
}

async fn the_eta_shares_the_queue_among_live_workers(backend: Backend) {
    let world = world(backend, PlanTier::Pro).await;
    let text = json!({"capability": "text", "params": {"prompt": "a haiku"}, "priority": "low"});
    let mut last = Value::Null;
    for _ in 0..3 {
        let (status, created) = world
            .call(Method::POST, "/api/v1/jobs", &world.user, Some(text.clone()))
            .await;
        assert_eq!(status, 201, "{created}");
        last = created;
        world.app.backend.clock.advance(time::Duration::seconds(1));
    }
    assert_eq!(
        (last["queue_position"].clone(), last["estimated_time_seconds"].clone()),
        (json!(3), json!(15))
    );
    let job = world.job(last["job_id"].as_str().expect("id")).await;
    assert_eq!(job["estimated_time_seconds"], 15, "no worker yet: one is assumed");
    for worker in ["text-0", "text-1"] {
        let beat = json!({"worker_id": worker, "status": "idle", "capabilities": ["text"], "loaded_models": ["llama-3-8b-3.0"],
                          "gpu_memory_used_mb": null, "gpu_memory_total_mb": null, "uptime_seconds": 1, "jobs_completed": 0});
        let (status, _) = world
            .call(Method::POST, "/api/internal/heartbeat", &world.service, Some(beat))
            .await;
        assert_eq!(status, 200);
    }
    let job = world.job(last["job_id"].as_str().expect("id")).await;
    assert_eq!(
        job["estimated_time_seconds"], 10,
        "3 jobs on 2 workers: 2 rounds of 5 s, as soon as they beat (the count of a second is dropped)"
    );
    world.app.backend.clock.advance(time::Duration::seconds(91));
    let job = world.job(last["job_id"].as_str().expect("id")).await;
    assert_eq!(job["estimated_time_seconds"], 15, "silent workers no longer count");
}

async fn a_bot_sees_and_cancels_only_its_chat_users_own_jobs(backend: Backend) {
    let world = world(backend, PlanTier::Free).await;
    let owner = format!("telegram:{}", rand::random::<u32>());
    let other = format!("telegram:{}", rand::random::<u32>());
    let (status, created) = world
        .call(
            Method::POST,
            "/api/internal/jobs",
            &world.service,
            Some(chat_job(&owner)),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let job = created["job_id"].as_str().expect("id");

    let (status, mine) = world
        .call(
            Method::GET,
            &format!("/api/internal/chat-users/{owner}/jobs/{job}"),
            &world.service,
            None,
        )
        .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["params"]["prompt"], "a beautiful sunset");
    assert_eq!(mine["params"]["resolution"], "1024x1024");
    assert!(mine["params"]["seed"].is_u64());
    let (_, active) = world
        .call(
            Method::GET,
            &format!("/api/internal/chat-users/{owner}/jobs"),
            &world.service,
            None,
        )
        .await;
    assert_eq!(active["jobs"][0]["job_id"], job);
    assert!(
        active["jobs"][0]["queue_position"]
            .as_u64()
            .is_some_and(|position| position >= 1),
        "{active}"
    );

    for method in [Method::GET, Method::DELETE] {
        let path = format!("/api/internal/chat-users/{other}/jobs/{job}");
        let (status, _) = world.call(method.clone(), &path, &world.service, None).await;
        assert_eq!(status, 404, "{method} of another chat user's job");
    }
    let (_, unseen) = world
        .call(
            Method::GET,
            &format!("/api/internal/chat-users/{other}/usage"),
            &world.service,
            None,
        )
        .await;
    assert_eq!(
        (&unseen["plan"]["id"], &unseen["tokens_used_today"]),
        (&json!("free"), &json!(0.0))
    );
    assert!(
        world
            .app
            .auth
            .accounts()
            .chat_user(&other)
            .await
            .expect("read")
            .is_none(),
        "asking creates nothing"
    );
    let (_, usage) = world
        .call(
            Method::GET,
            &format!("/api/internal/chat-users/{owner}/usage"),
            &world.service,
            None,
        )
        .await;
    assert_eq!(
        (&usage["tokens_used_today"], &usage["tokens_remaining_today"]),
        (&json!(1.0), &json!(9.0))
    );

    let path = format!("/api/internal/chat-users/{owner}/jobs/{job}");
    let (status, cancelled) = world.call(Method::DELETE, &path, &world.service, None).await;
    assert_eq!(
        (status.as_u16(), &cancelled["status"]),
        (200, &json!("CANCELLED")),
        "{cancelled}"
    );
    let (status, _) = world.call(Method::DELETE, &path, &world.service, None).await;
    assert_eq!(status, 409, "once");

    let (_, models) = world
        .call(Method::GET, "/api/internal/models", &world.service, None)
        .await;
    let ids: Vec<&str> = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"sdxl") && !ids.contains(&"canary"), "{ids:?}");
    let (status, _) = world.call(Method::GET, "/api/internal/models", &world.user, None).await;
    assert_eq!(status, 401, "user credentials never reach the internal routes");
}

async fn a_chat_servers_settings_bound_steps_models_and_each_members_daily_jobs(backend: Backend) {
    let world = world(backend, PlanTier::Free).await;
    let guild = format!("discord:{}", rand::random::<u32>());
    let path = format!("/api/internal/guilds/{guild}/settings");
    let (status, empty) = world.call(Method::GET, &path, &world.service, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        empty,
        json!({"max_steps": null, "allowed_models": null, "daily_jobs_per_user": null})
    );
    for bad in [
        json!({"max_steps": 0}),
        json!({"max_steps": 151}),
        json!({"allowed_models": ["no-such-model"]}),
        json!({"daily_jobs_per_user": "two"}),
        json!({"colour": "red"}),
    ] {
        let (status, body) = world.call(Method::PUT, &path, &world.service, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let settings = json!({"max_steps": 30, "allowed_models": ["sdxl"], "daily_jobs_per_user": 1});
    let (status, saved) = world
        .call(Method::PUT, &path, &world.service, Some(settings.clone()))
        .await;
    assert_eq!((status.as_u16(), &saved), (200, &settings));
    assert_eq!(world.call(Method::GET, &path, &world.service, None).await.1, settings);

    let member = format!("discord:{}", rand::random::<u32>());
    let job = |params: Value| {
        json!({"frontend": "discord", "bot_id": "dc-1", "capability": "image", "user_ref": member,
               "guild": guild, "reply_context": {"channel_id": "1"}, "params": params})
    };
    let create = |body: Value| world.call(Method::POST, "/api/internal/jobs", &world.service, Some(body));
    let (status, body) = create(job(json!({"prompt": "x", "steps": 31}))).await;
    assert_eq!(
        (status.as_u16(), &body["error"]["details"]["field"]),
        (400, &json!("steps")),
        "{body}"
    );
    let (status, body) = create(job(json!({"prompt": "x", "model": "flux-schnell"}))).await;
    assert_eq!(
        (status.as_u16(), &body["error"]["details"]["field"]),
        (400, &json!("model")),
        "{body}"
    );
    let (status, body) = create(job(json!({"prompt": "x", "steps": 30}))).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = create(job(json!({"prompt": "y"}))).await;
    assert_eq!(
        (status.as_u16(), &body["error"]["code"]),
        (429, &json!("DAILY_CAP_REACHED")),
        "{body}"
    );
    assert!(body["error"]["retry_after"].as_i64().is_some_and(|wait| wait > 0));

    let elsewhere = json!({"frontend": "discord", "bot_id": "dc-1", "capability": "image", "user_ref": member,
                           "reply_context": {}, "params": {"prompt": "z", "steps": 60}});
    let (status, body) = create(elsewhere).await;
    assert_ne!(status, 400, "outside the server its settings do not apply: {body}");
    let (status, _) = world
        .call(
            Method::PUT,
            "/api/internal/guilds/not-a-guild/settings",
            &world.service,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 400);
}
