//! The Lambda binaries as `cargo lambda watch` serves them, over the AWS emulator: real HTTP
//! requests through its function URLs (`/lambda-url/<function>/<path>`), so the whole chain runs
//! as on AWS: the HTTP request becomes a Lambda event, `lambda_http` parses it, the family's
//! router answers on DynamoDB/SQS/S3.
//!
//! The executable comes from `TESSERA_CARGO_LAMBDA` (`infra/test.sh` installs it). The watch
//! compiles each function with `cargo run -p tessera-lambdas --bin <function>` on its first
//! request, in the workspace's own `target/` (debug profile), so the first answer may take
//! minutes on a cold target.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::NamedTempFile;
use tessera_api::auth::{AuthConfig, AuthService, JwtKeys};
use tessera_core::RandomIds;

use crate::support::{Backend, TEST_JWT_KID, TEST_JWT_SECRET, TEST_WEBHOOK_KEY, test_prefix, unique};

/// How long one answer may take: the first request of a function compiles it.
const FIRST_ANSWER: Duration = Duration::from_secs(15 * 60);
/// How long the watch gets to stop on SIGTERM (it stops its functions) before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Through the watch's function URLs: a job created with an API key (201), read back (200,
/// `QUEUED`), refused without a key (401), and the models listed by another function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_models_answer_through_cargo_lambda_watch() {
    let cargo_lambda = cargo_lambda();
    let backend = Backend::aws().await;
    let key = api_key(&backend).await;
    let watch = Watch::start(&cargo_lambda);
    let client = reqwest::Client::new();

    let job = json!({
        "capability": "image",
        "params": {"prompt": "a lighthouse at dusk", "model": "canary", "resolution": "512x512", "seed": 7}
    });
    let (status, created) = watch
        .send(&client, Method::POST, "jobs", "/api/v1/jobs", Some(&key), Some(&job))
        .await;
    assert_eq!(status, StatusCode::CREATED, "POST /api/v1/jobs: {created}");
    let job_id = created["job_id"].as_str().expect("a job_id").to_owned();
    assert!(job_id.starts_with("job_"), "{created}");
    assert_eq!(created["status"], "QUEUED", "{created}");

    let path = format!("/api/v1/jobs/{job_id}");
    let (status, fetched) = watch.send(&client, Method::GET, "jobs", &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {fetched}");
    assert_eq!(fetched["job_id"], job_id.as_str(), "{fetched}");
    assert_eq!(fetched["status"], "QUEUED", "{fetched}");

    let (status, refused) = watch
        .send(&client, Method::POST, "jobs", "/api/v1/jobs", None, Some(&job))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "POST without a key: {refused}");
    assert_eq!(refused["error"]["code"], "UNAUTHORIZED", "{refused}");

    let (status, models) = watch
        .send(&client, Method::GET, "models", "/api/v1/models", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "GET /api/v1/models: {models}");
    assert!(
        models.to_string().contains("\"canary\""),
        "the catalog's models are listed: {models}"
    );
}

/// The cargo-lambda executable named by `TESSERA_CARGO_LAMBDA`; the test fails without it.
fn cargo_lambda() -> PathBuf {
    const HOW: &str = "this test runs `cargo lambda watch`: run it through `infra/test.sh`, or \
                       `export TESSERA_CARGO_LAMBDA=$(infra/tools.sh cargo-lambda)` before `cargo test`";
    let path = std::env::var_os("TESSERA_CARGO_LAMBDA")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("TESSERA_CARGO_LAMBDA is not set: {HOW}"));
    assert!(
        path.is_file(),
        "TESSERA_CARGO_LAMBDA={} is not a file: {HOW}",
        path.display()
    );
    path
}

/// A new user (admin of a new Free tenant) on the emulator's tables, and an API key of theirs
/// with the job scopes.
async fn api_key(backend: &Backend) -> String {
    let keys = JwtKeys::parse(&format!("{TEST_JWT_KID}:{TEST_JWT_SECRET}"), "tessera", "tessera-api").expect("keys");
    let auth = AuthService::new(
        &backend.ports(),
        Arc::new(backend.clock.clone()),
        Arc::new(RandomIds),
        AuthConfig {
            jwt: keys,
            trust_forwarded_for: false,
        },
    );
    let email = format!("{}@example.com", unique("watch"));
    let (user, _) = auth
        .signup(&email, "correct horse battery staple", "Watch Test")
        .await
        .expect("signup");
    let scopes = ["jobs:read".to_owned(), "jobs:write".to_owned()];
    auth.create_api_key_for(&user, "lambda-watch", &scopes)
        .await
        .expect("API key")
        .key
}

/// A free loopback port (released at once, for the watch to bind).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The workspace root, where `cargo lambda watch` finds `Cargo.toml`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
        .to_owned()
}

/// A running `cargo lambda watch`, in a process group of its own, its output in a file. Dropping
/// it stops it, its cargo builds and its functions, whatever the test's outcome.
struct Watch {
    child: Child,
    base: String,
    log: NamedTempFile,
}

impl Watch {
    /// Starts `cargo lambda watch` in the workspace root on a free loopback port, with the
    /// environment the functions read: the emulator, credentials, region, this test process's
    /// resource prefix, the JWT keys and the webhook key.
    fn start(cargo_lambda: &Path) -> Self {
        let port = free_port();
        let log = NamedTempFile::new().expect("log file");
        let output = |file: &NamedTempFile| Stdio::from(file.reopen().expect("log file"));
        let from_env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL, checked by Backend::aws");
        let child = Command::new(cargo_lambda)
            .args(["lambda", "watch", "--ignore-changes", "-p", "tessera-lambdas"])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(workspace_root())
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", from_env("AWS_ACCESS_KEY_ID", "test"))
            .env("AWS_SECRET_ACCESS_KEY", from_env("AWS_SECRET_ACCESS_KEY", "test"))
            .env("AWS_REGION", from_env("AWS_REGION", "us-east-1"))
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("TESSERA_RESOURCE_PREFIX", test_prefix())
            .env("TESSERA_JWT_KEYS", format!("{TEST_JWT_KID}:{TEST_JWT_SECRET}"))
            .env("TESSERA_WEBHOOK_KEY", TEST_WEBHOOK_KEY)
            .env("RUST_LOG", "info")
            .env("CARGO_TERM_COLOR", "never")
            .stdin(Stdio::null())
            .stdout(output(&log))
            .stderr(output(&log))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", cargo_lambda.display()));
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Sends a request to `function` through its function URL and answers the status and JSON
    /// body (`null` when it is not JSON). Until the watch listens, a refused connection is tried
    /// again; the first answer of a function may take minutes (it compiles).
    async fn send(
        &self,
        client: &reqwest::Client,
        method: Method,
        function: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}/lambda-url/{function}{path}", self.base);
        let deadline = Instant::now() + FIRST_ANSWER;
        loop {
            let mut request = client
                .request(method.clone(), &url)
                .timeout(deadline.saturating_duration_since(Instant::now()));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if status.is_server_error() {
                        panic!("{method} {url}: {status} {text}\n{}", self.log_tail());
                    }
                    return (status, body);
                }
                Err(error) if error.is_connect() && Instant::now() < deadline => {
                    self.assert_running();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("{method} {url}: {error}\n{}", self.log_tail()),
            }
        }
    }

    /// Fails the test with the watch's log when it has exited.
    fn assert_running(&self) {
        let pid = self.child.id();
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // A zombie (`Z`) has exited but has not been waited for yet.
        let alive = state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
        assert!(alive, "cargo lambda watch exited\n{}", self.log_tail());
    }

    /// The last lines of the watch's output (its own log, cargo's, the functions').
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        format!("--- cargo lambda watch, last lines of its output ---\n{tail}")
    }
}

impl Drop for Watch {
    /// Stops the watch: SIGTERM to its group (it stops the builds and functions it started, each
    /// in a session of its own), then SIGKILL to the group and to every descendant still there.
    fn drop(&mut self) {
        let pid = self.child.id();
        let descendants = descendants(pid);
        signal("-TERM", &format!("-{pid}"));
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal("-KILL", &format!("-{pid}"));
        for descendant in descendants.into_iter().chain(self::descendants(pid)) {
            signal("-KILL", &descendant.to_string());
        }
        let _ = self.child.wait();
    }
}

/// Sends `signal` to `target` (a pid, or `-<pgid>` for a group) with kill(1); a target that is
/// already gone is fine.
fn signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Every live descendant of `root`, read from `/proc` (parents before children).
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        next += 1;
    }
    found.remove(0);
    found
}
