//! Cold starts of every Lambda function (this crate's nine and, when built, the bots' four),
//! measured the way Lambda measures them: the benchmark is the Lambda Runtime API (the loopback
//! HTTP interface a function's `bootstrap` polls, as `cargo lambda watch` and AWS provide it),
//! starts each function as a fresh process, and hands it one real event: for this crate's, the
//! one in `infra/events/` with working credentials, over the AWS emulator; for the bots', a
//! Telegram update, a signed Discord `PING`, or a notice batch.
//!
//!   export AWS_ENDPOINT_URL=$(infra/moto.sh) AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
//!   cargo build --profile bench -p tessera-telegram -p tessera-discord --bins   (the bots' four, optional)
//!   cargo bench -p tessera-lambdas --bench cold_start              10 cold starts per function
//!   cargo bench -p tessera-lambdas --bench cold_start -- --quick   2
//!
//! For each function it prints:
//! - init: from `spawn` to the function's first `GET /runtime/invocation/next` (what Lambda's
//!   REPORT line calls Init Duration: process start, configuration, AWS clients, router);
//! - first invoke: from handing over the event to the function's response (the first request
//!   pays for the first connection to DynamoDB);
//! - peak RSS: the process's `VmHWM` after that response;
//! - the answer: the HTTP status of an API Gateway response, or the event function's result.
//!
//! Every run gets its own user and API key (a Free plan allows one job in flight), on tables
//! of a resource prefix of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tessera_api::auth::{AuthConfig, AuthService, JwtKeys};
use tessera_core::{IdSource, RandomIds, SystemClock};
use tessera_store::aws::AwsStore;
use tessera_store::definitions::{Definitions, Naming};
use tokio::sync::oneshot;

/// The JWT signing keys the functions get (`TESSERA_JWT_KEYS`).
const JWT_KEYS: &str = "bench1:cold-start-bench-secret-0123456789abcdef";
/// The webhook signing key the functions get (`TESSERA_WEBHOOK_KEY`).
const WEBHOOK_KEY: &str = "cold-start-bench-webhook-key-0123456789";
/// The password of every user the benchmark signs up.
const PASSWORD: &str = "correct horse battery staple";
/// Logins sent so far (each gets its own source address).
static LOGINS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
/// How long a function gets to start and answer before the run counts as failed.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// A function: its name (binary and, for this crate's, event file) and its built executable.
struct Function {
    name: &'static str,
    executable: PathBuf,
}

/// Every binary of `tessera-lambdas`, in the order of the template.
fn own_functions() -> Vec<Function> {
    [
        ("auth", env!("CARGO_BIN_EXE_auth")),
        ("jobs", env!("CARGO_BIN_EXE_jobs")),
        ("users", env!("CARGO_BIN_EXE_users")),
        ("models", env!("CARGO_BIN_EXE_models")),
        ("webhooks", env!("CARGO_BIN_EXE_webhooks")),
        ("internal", env!("CARGO_BIN_EXE_internal")),
        ("docs", env!("CARGO_BIN_EXE_docs")),
        ("sweep", env!("CARGO_BIN_EXE_sweep")),
        ("webhook-sender", env!("CARGO_BIN_EXE_webhook-sender")),
    ]
    .into_iter()
    .map(|(name, executable)| Function {
        name,
        executable: executable.into(),
    })
    .collect()
}

/// The bots' Lambda functions, where `cargo build --profile bench -p tessera-telegram -p
/// tessera-discord` put them: next to this benchmark's own binaries.
fn bot_functions() -> Vec<Function> {
    let Some(folder) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_owned))
    else {
        return Vec::new();
    };
    [
        "telegram-webhook",
        "telegram-notify",
        "discord-interactions",
        "discord-notify",
    ]
    .into_iter()
    .map(|name| Function {
        name,
        executable: folder.join(name),
    })
    .filter(|function| function.executable.is_file())
    .collect()
}

/// What one cold start measured.
struct Sample {
    init: Duration,
    first_invoke: Duration,
    peak_rss_kib: u64,
    answer: String,
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick") || std::env::var_os("BENCH_QUICK").is_some();
    let runs = if quick { 2 } else { 10 };
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        eprintln!(
            "AWS_ENDPOINT_URL is not set: export AWS_ENDPOINT_URL=$(infra/moto.sh) AWS_ACCESS_KEY_ID=test \
             AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1"
        );
        std::process::exit(2);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let accounts = Accounts::bootstrap().await;
        println!(
            "cold starts: {runs} per function, emulator {endpoint}, {} CPUs, prefix {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            accounts.prefix
        );
        println!(
            "{:<20} {:>10} {:>10} {:>13} {:>11}  answer",
            "function", "init p50", "init max", "1st inv p50", "RSS max MB"
        );
        for function in own_functions() {
            let mut samples = Vec::new();
            for _ in 0..runs {
                let event = accounts.event(function.name).await;
                samples.push(cold_start(&function, &accounts.prefix, &event).await);
            }
            report(&function, &samples);
        }
        let bots = bot_functions();
        if bots.is_empty() {
            println!(
                "(the bots' functions were not built: `cargo build --profile bench -p tessera-telegram \
                 -p tessera-discord --bins` first to measure them too)"
            );
        }
        for function in bots {
            let mut samples = Vec::new();
            for _ in 0..runs {
                let event = bots::event(function.name);
                samples.push(cold_start(&function, &accounts.prefix, &event).await);
            }
            report(&function, &samples);
        }
    });
}

/// Prints one function's row.
fn report(function: &Function, samples: &[Sample]) {
    let median = |mut values: Vec<Duration>| {
        values.sort();
        values[values.len() / 2]
    };
    let init = median(samples.iter().map(|sample| sample.init).collect());
    let init_max = samples.iter().map(|sample| sample.init).max().unwrap_or_default();
    let invoke = median(samples.iter().map(|sample| sample.first_invoke).collect());
    let rss = samples
        .iter()
        .map(|sample| sample.peak_rss_kib)
        .max()
        .unwrap_or_default();
    let mut answers: Vec<&str> = samples.iter().map(|sample| sample.answer.as_str()).collect();
    answers.dedup();
    println!(
        "{:<20} {:>7.1} ms {:>7.1} ms {:>10.1} ms {:>11.1}  {}",
        function.name,
        millis(init),
        millis(init_max),
        millis(invoke),
        rss as f64 / 1024.0,
        answers.join(", ")
    );
}

/// A duration in milliseconds, fractional.
fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The bench's own tables on the emulator, and the credentials the events carry.
struct Accounts {
    prefix: String,
    auth: AuthService,
    service_key: String,
}

impl Accounts {
    /// Creates the tables, queues and bucket under a fresh prefix, and a service key.
    async fn bootstrap() -> Self {
        let prefix = format!("cs{}", RandomIds.next_suffix());
        let naming = Naming::new(&prefix).expect("prefix");
        let store = AwsStore::from_env(naming, Arc::new(SystemClock))
            .await
            .expect("AWS clients");
        store
            .bootstrap(&Definitions::tessera())
            .await
            .expect("bootstrap on the emulator");
        let ports = tessera_store::Ports::from_backend(Arc::new(store), "aws");
        let config = AuthConfig {
            jwt: JwtKeys::parse(JWT_KEYS, "tessera", "tessera-api").expect("JWT keys"),
            trust_forwarded_for: false,
        };
        let auth = AuthService::new(&ports, Arc::new(SystemClock), Arc::new(RandomIds), config);
        let service_key = auth
            .create_service_key("cold-start-bench")
            .await
            .expect("service key")
            .key;
        Self {
            prefix,
            auth,
            service_key,
        }
    }

    /// A new user (admin of a new Free tenant), its e-mail and an API key with the job scopes.
    async fn user(&self) -> (String, String) {
        let email = format!("bench-{}@example.com", RandomIds.next_suffix());
        let (user, _) = self.auth.signup(&email, PASSWORD, "Cold Start").await.expect("signup");
        let scopes = ["jobs:read".to_owned(), "jobs:write".to_owned()];
        let key = self
            .auth
            .create_api_key_for(&user, "cold-start", &scopes)
            .await
            .expect("API key")
            .key;
        (email, key)
    }

    /// The function's event from `infra/events/`, with real credentials in place of the
    /// placeholders.
    async fn event(&self, function: &str) -> Value {
        let path = workspace_root().join("infra/events").join(format!("{function}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let mut event: Value = serde_json::from_str(&text).expect("event JSON");
        let Some(headers) = event.get_mut("headers").and_then(Value::as_object_mut) else {
            return event;
        };
        let (email, key) = self.user().await;
        if headers.contains_key("x-tesserra-api-key") {
            headers.insert("x-tesserra-api-key".into(), key.into());
        }
        if headers.contains_key("authorization") {
            headers.insert("authorization".into(), format!("Bearer {}", self.service_key).into());
        }
        if function == "auth" {
            let body = json!({"email": email, "password": PASSWORD}).to_string();
            headers.insert("content-length".into(), body.len().to_string().into());
            event["body"] = body.into();
            // Each login from an address of its own: logins are limited per client address.
            let run = LOGINS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 250;
            event["requestContext"]["http"]["sourceIp"] = format!("198.51.100.{}", run + 1).into();
        }
        event
    }
}

/// The workspace root (the events live in `infra/events/`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_owned()
}

/// One cold start: a Runtime API for one invocation, the function started fresh, its init and
/// first invocation timed, its peak RSS read, then the process stopped.
async fn cold_start(function: &Function, prefix: &str, event: &Value) -> Sample {
    let (api, polled, answered) = RuntimeApi::start(event.to_string()).await;
    let log = tempfile::NamedTempFile::new().expect("log file");
    let spawned = Instant::now();
    let mut child = spawn(function, prefix, &api, &log);
    let outcome = tokio::time::timeout(RUN_LIMIT, async {
        let first_poll = polled.await.ok()?;
        let (answered_at, answer) = answered.await.ok()?;
        Some((first_poll, answered_at, answer))
    })
    .await
    .ok()
    .flatten();
    let peak_rss_kib = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let Some((first_poll, answered_at, answer)) = outcome else {
        let output = std::fs::read_to_string(log.path()).unwrap_or_default();
        panic!(
            "{}: no answer within {RUN_LIMIT:?}; its output:\n{output}",
            function.name
        );
    };
    Sample {
        init: first_poll - spawned,
        first_invoke: answered_at - first_poll,
        peak_rss_kib,
        answer,
    }
}

/// Starts the function's executable as Lambda does: the Runtime API's address and the function's
/// identity in the environment, plus the settings every Tessera function reads.
fn spawn(function: &Function, prefix: &str, api: &str, log: &tempfile::NamedTempFile) -> Child {
    let output = || Stdio::from(log.reopen().expect("log file"));
    Command::new(&function.executable)
        .envs(bots::environment(api))
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", function.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", function.name))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start-bench")
        .env("TESSERA_RESOURCE_PREFIX", prefix)
        .env("TESSERA_JWT_KEYS", JWT_KEYS)
        .env("TESSERA_WEBHOOK_KEY", WEBHOOK_KEY)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(output())
        .stderr(output())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {}: {error}", function.executable.display()))
}

/// The process's peak resident set (`VmHWM` of `/proc/<pid>/status`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The Lambda Runtime API for a single invocation: the first `next` hands over the event, the
/// later ones wait forever (the process is stopped by then).
#[derive(Clone)]
struct RuntimeApi {
    event: Arc<str>,
    polled: Arc<Mutex<Option<oneshot::Sender<Instant>>>>,
    answered: Arc<Mutex<Option<oneshot::Sender<Answer>>>>,
}

/// When the function answered, and what (summarized for the table).
type Answer = (Instant, String);

/// The request id of the benchmark's one invocation.
const REQUEST_ID: &str = "cold-start-0001";

impl RuntimeApi {
    /// Serves the API on a loopback port; answers its `host:port`, when the first `next` came,
    /// and when (and with what) the function answered.
    async fn start(event: String) -> (String, oneshot::Receiver<Instant>, oneshot::Receiver<(Instant, String)>) {
        let (polled_tx, polled) = oneshot::channel();
        let (answered_tx, answered) = oneshot::channel();
        let api = Self {
            event: event.into(),
            polled: Arc::new(Mutex::new(Some(polled_tx))),
            answered: Arc::new(Mutex::new(Some(answered_tx))),
        };
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(error))
            .fallback(bots::telegram_bot_api)
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (address, polled, answered)
    }

    /// Reports an answer (the first one counts).
    fn answer(&self, answer: String) -> StatusCode {
        if let Some(sender) = self.answered.lock().expect("lock").take() {
            let _ = sender.send((Instant::now(), answer));
        }
        StatusCode::ACCEPTED
    }
}

/// `GET /runtime/invocation/next`: the event with its headers, once.
async fn next(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    let Some(sender) = api.polled.lock().expect("lock").take() else {
        return std::future::pending().await;
    };
    let _ = sender.send(Instant::now());
    let deadline = std::time::SystemTime::now() + RUN_LIMIT;
    let deadline_ms = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_static(REQUEST_ID));
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline_ms.to_string()).expect("header"),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:cold-start"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (headers, api.event.to_string())
}

/// `POST /runtime/invocation/{id}/response`: the function's result; for an API Gateway
/// response, its status code.
async fn response(State(api): State<RuntimeApi>, body: String) -> StatusCode {
    let answer = match serde_json::from_str::<Value>(&body) {
        Ok(value) => match value.get("statusCode") {
            Some(status) => format!("HTTP {status}"),
            None => truncate(&value.to_string()),
        },
        Err(_) => truncate(&body),
    };
    api.answer(answer)
}

/// `POST /runtime/invocation/{id}/error` and `/runtime/init/error`: the function failed.
async fn error(State(api): State<RuntimeApi>, body: String) -> StatusCode {
    api.answer(format!("error: {}", truncate(&body)))
}

/// At most 60 characters of `text`, for the table.
fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}

/// The bots' functions: their settings, their events, and the one Bot API call a Telegram
/// function makes while it starts (`getMe`), answered by the benchmark's loopback server.
mod bots {
    use axum::Json;
    use axum::http::Uri;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::{Value, json};

    /// The Telegram webhook's secret token.
    const WEBHOOK_SECRET: &str = "cold-start-webhook-secret";
    /// The Discord application's signing key (fixed: the benchmark signs its own interactions).
    const DISCORD_KEY: [u8; 32] = [7; 32];

    /// What the bots' functions read, pointing their Bot API and Discord API at the benchmark's
    /// loopback server (`api`) and their Tessera API at an address nothing answers.
    pub fn environment(api: &str) -> Vec<(&'static str, String)> {
        let public_key = hex::encode(SigningKey::from_bytes(&DISCORD_KEY).verifying_key().as_bytes());
        vec![
            ("TESSERA_API_URL", "http://127.0.0.1:9".into()),
            (
                "TESSERA_SERVICE_KEY",
                "tessera_svc_bench0000_0123456789abcdefghijklmnopqrstuv".into(),
            ),
            ("TELEGRAM_BOT_TOKEN", "123456:cold-start-bench-token".into()),
            ("TELEGRAM_API_URL", format!("http://{api}")),
            ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
            (
                "TELEGRAM_CALLBACK_SECRET",
                "cold-start-callback-secret-0123456789".into(),
            ),
            ("DISCORD_APPLICATION_ID", "123456789012345678".into()),
            ("DISCORD_PUBLIC_KEY", public_key),
            ("DISCORD_BOT_TOKEN", "cold-start-bench-token".into()),
            ("DISCORD_API_URL", format!("http://{api}")),
        ]
    }

    /// The function's event: an update with nothing to answer (Telegram webhook), a signed
    /// `PING` (Discord interactions), or one notice the consumer cannot deliver (notify).
    pub fn event(function: &str) -> Value {
        match function {
            "telegram-webhook" => super::http_event(
                "/telegram/webhook",
                json!({"x-telegram-bot-api-secret-token": WEBHOOK_SECRET}),
                json!({"update_id": 1}).to_string(),
            ),
            "discord-interactions" => {
                let body =
                    json!({"id": "1", "application_id": "123456789012345678", "type": 1, "token": "t", "version": 1})
                        .to_string();
                let timestamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_secs()
                    .to_string();
                let signature = SigningKey::from_bytes(&DISCORD_KEY).sign(format!("{timestamp}{body}").as_bytes());
                super::http_event(
                    "/discord/interactions",
                    json!({"x-signature-ed25519": hex::encode(signature.to_bytes()), "x-signature-timestamp": timestamp}),
                    body,
                )
            }
            _ => json!({"Records": [{
                "messageId": "cold-start-1",
                "receiptHandle": "cold-start",
                "body": "{\"job_id\":\"job_000000000000\"}",
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1"
            }]}),
        }
    }

    /// The Telegram Bot API as far as a starting bot needs it: `getMe` answers a bot; any
    /// other method answers `ok`.
    pub async fn telegram_bot_api(uri: Uri) -> Json<Value> {
        if uri.path().to_ascii_lowercase().ends_with("/getme") {
            Json(json!({"ok": true, "result": {
                "id": 123456, "is_bot": true, "first_name": "Bench", "username": "bench_bot",
                "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
                "can_connect_to_business": false, "has_main_web_app": false
            }}))
        } else {
            Json(json!({"ok": true, "result": true}))
        }
    }
}

/// An API Gateway HTTP API event (`infra/events/docs.json`'s shape): `POST path` with the
/// given extra headers and body.
fn http_event(path: &str, headers: Value, body: String) -> Value {
    let file = workspace_root().join("infra/events/docs.json");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
    let mut event: Value = serde_json::from_str(&text).expect("event JSON");
    event["rawPath"] = path.into();
    event["routeKey"] = format!("POST {path}").into();
    event["requestContext"]["routeKey"] = format!("POST {path}").into();
    event["requestContext"]["http"]["method"] = "POST".into();
    event["requestContext"]["http"]["path"] = path.into();
    if let (Some(all), Some(extra)) = (event["headers"].as_object_mut(), headers.as_object()) {
        all.insert("content-type".into(), "application/json".into());
        all.insert("content-length".into(), body.len().to_string().into());
        all.extend(extra.clone());
    }
    event["body"] = body.into();
    event
}
