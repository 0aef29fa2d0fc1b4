//! The `tessera` command line, run as a subprocess (`assert_cmd`) against a dev server in this
//! process (embedded store in a fresh folder, in-process worker, fake ComfyUI): images saved with
//! the bytes ComfyUI made, `jobs ls` filters, `--json` on every command, the exit statuses, a
//! stored session renewed, Ctrl-C leaving the job running, and stderr free of control characters
//! when it is not a terminal.
//!
//! The binary is the one cargo built beside this test (`cargo test --workspace` builds it; alone,
//! `cargo build -p tessera-dev` first): a missing or outdated one fails the test, never skips it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use assert_cmd::assert::OutputAssertExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tessera_core::{PlanTier, SystemClock, TenantId};
use tessera_dev::{BackendKind, Config};
use tessera_fakes::{Failure, FakeComfy, FakeConfig};
use tessera_store::accounts::Accounts;
use tessera_store::embedded::{EmbeddedConfig, EmbeddedStore};

use crate::support::unique;

/// The `tessera` binary beside this test binary, checked to be newer than its sources.
fn tessera_binary() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let target_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in <target>/<profile>/deps");
    let binary = target_dir.join(format!("tessera{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&binary).and_then(|metadata| metadata.modified());
    let built = built.unwrap_or_else(|_| {
        panic!(
            "the `tessera` binary is not built at {}: run `cargo build -p tessera-dev` first \
             (`cargo test --workspace` builds it)",
            binary.display()
        )
    });
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../functions/dev");
    let newest = newest_change(&sources.join("src")).max(newest_change(&sources.join("Cargo.toml")));
    assert!(
        newest <= built,
        "the `tessera` binary at {} is older than functions/dev's sources: run `cargo build -p tessera-dev`",
        binary.display()
    );
    binary
}

/// The latest modification time of `path` or anything under it.
fn newest_change(path: &Path) -> SystemTime {
    let own = std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let children = std::fs::read_dir(path).into_iter().flatten().flatten();
    children
        .map(|entry| newest_change(&entry.path()))
        .fold(own, SystemTime::max)
}

/// A dev server with the fake ComfyUI, on a fresh embedded store.
struct Stack {
    base: String,
    fake: FakeComfy,
    dir: TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A user of the stack: their sign-in and an API key (`jobs:read`, `jobs:write`).
struct User {
    email: String,
    password: String,
    key: String,
}

impl Stack {
    /// Starts the server; with `worker`, its in-process worker drives the fake ComfyUI.
    async fn start(worker: bool) -> Self {
        let fake = FakeComfy::start(FakeConfig::default()).await;
        let dir = tempfile::tempdir().expect("dir");
        let mut config = Config::from_lookup(|_| None).expect("defaults");
        config.backend = BackendKind::Embedded;
        config.data_dir = dir.path().join("data");
        config.worker = worker;
        config.comfyui_url = fake.base_url.clone();
        config.workflows_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gpu-worker/workflows");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            tessera_dev::serve(&config, listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        Self {
            base,
            fake,
            dir,
            _stop: stop,
        }
    }

    /// Signs up a user, moves their tenant to `plan`, and makes them an API key.
    async fn user(&self, plan: PlanTier) -> User {
        let client = reqwest::Client::new();
        let (email, password) = (format!("{}@example.com", unique("cli")), "correct horse battery staple");
        let signup: Value = client
            .post(format!("{}/api/auth/signup", self.base))
            .json(&json!({"email": email, "password": password, "name": "CLI"}))
            .send()
            .await
            .expect("signup")
            .json()
            .await
            .expect("json");
        let tenant = TenantId::parse(signup["tenant"]["id"].as_str().expect("tenant")).expect("tenant id");
        self.accounts().set_plan(&tenant, plan).await.expect("plan");
        let created: Value = client
            .post(format!("{}/api/api-keys", self.base))
            .bearer_auth(signup["tokens"]["access_token"].as_str().expect("token"))
            .json(&json!({"name": "cli", "scopes": ["jobs:read", "jobs:write"]}))
            .send()
            .await
            .expect("key")
            .json()
            .await
            .expect("json");
        User {
            email,
            password: password.to_owned(),
            key: created["key"].as_str().expect("key").to_owned(),
        }
    }

    /// The accounts repository over the server's store file.
    fn accounts(&self) -> Accounts {
        let store = EmbeddedStore::open(EmbeddedConfig {
            dir: self.dir.path().join("data"),
            public_url: self.base.clone(),
            clock: Arc::new(SystemClock),
        })
        .expect("open the store");
        Accounts::new(Arc::new(store))
    }

    /// The config file the CLI runs use (none until `tessera login` writes it).
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("home").join("tessera").join("config.json")
    }

    /// `tessera <args>` against this server, with `key` (if any) in `TESSERA_API_KEY`.
    fn command(&self, key: Option<&str>, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(tessera_binary());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("TESSERA_API_URL", &self.base)
            .env("TESSERA_CONFIG", self.config_path())
            .env_remove("TESSERA_API_KEY")
            .env_remove("TESSERA_MODEL")
            .stdin(Stdio::null());
        if let Some(key) = key {
            command.env("TESSERA_API_KEY", key);
        }
        command
    }

    /// Runs `tessera <args>` to its end (off the runtime, which serves it meanwhile), with
    /// `stdin` as its input; checks that stdout and stderr hold no control characters.
    async fn run_with_input(&self, key: Option<&str>, args: &[&str], stdin: &str) -> Output {
        let mut command = assert_cmd::Command::from_std(self.command(key, args));
        command.write_stdin(stdin.to_owned()).timeout(Duration::from_secs(120));
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("run tessera");
        assert_plain(&output.stderr, "stderr", args);
        assert_plain(&output.stdout, "stdout", args);
        output
    }

    /// [`Self::run_with_input`] with nothing on stdin.
    async fn run(&self, key: Option<&str>, args: &[&str]) -> Output {
        self.run_with_input(key, args, "").await
    }

    /// Runs `tessera --json <args>` and parses its stdout.
    async fn json(&self, key: Option<&str>, args: &[&str], status: i32) -> Value {
        let args: Vec<&str> = std::iter::once("--json").chain(args.iter().copied()).collect();
        let output = self.run(key, &args).await;
        output.clone().assert().code(status);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "{args:?} printed no JSON ({error}):\n{}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }
}

/// Non-terminal output: text lines only, no `\r`, no escape sequences, no other control byte.
fn assert_plain(bytes: &[u8], stream: &str, args: &[&str]) {
    if let Some(position) = bytes
        .iter()
        .position(|&byte| (byte < 0x20 && byte != b'\n') || byte == 0x7f)
    {
        panic!(
            "`tessera {}` wrote the control byte {:#04x} at {position} of its {stream}:\n{:?}",
            args.join(" "),
            bytes[position],
            String::from_utf8_lossy(bytes)
        );
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The data rows of a `jobs ls` table (its header dropped).
fn table_rows(output: &Output) -> Vec<String> {
    text(&output.stdout)
        .lines()
        .skip(1)
        .filter(|line| line.starts_with("job_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagine_saves_the_image_the_fake_comfyui_made_and_prints_its_path() {
    let stack = Stack::start(true).await;
    let user = stack.user(PlanTier::Free).await;
    let out = stack.dir.path().join("images");
    let out_arg = out.to_str().expect("utf-8 path");
    let args = [
        "imagine",
        "a red fox",
        "--res",
        "64x64",
        "--steps",
        "2",
        "--out",
        out_arg,
    ];
    let output = stack.run(Some(&user.key), &args).await;
    output.clone().assert().success();

    let saved = PathBuf::from(text(&output.stdout).trim());
    assert_eq!(saved.parent(), Some(out.as_path()), "printed: {saved:?}");
    let name = saved.file_name().and_then(|name| name.to_str()).expect("a file name");
    assert!(
        name.starts_with("job_") && name.ends_with(".png"),
        "named <job_id>.png: {name}"
    );
    let served = stack.fake.file("tessera_00001_.png").expect("the fake made the image");
    assert_eq!(std::fs::read(&saved).expect("saved"), served, "the bytes ComfyUI made");
    let stderr = text(&output.stderr);
    let job_id = name.trim_end_matches(".png");
    assert!(
        stderr.contains(&format!("{job_id} queued, position 1")),
        "the queue position: {stderr}"
    );
    assert!(stderr.contains(&format!("{job_id} completed")), "{stderr}");
    assert!(!stderr.contains("polling"), "followed on the event stream: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_ls_filters_by_status_capability_and_limit() {
    let stack = Stack::start(true).await;
    let user = stack.user(PlanTier::Pro).await;
    let key = Some(user.key.as_str());
    let out = stack.dir.path().to_str().expect("utf-8").to_owned();
    let completed = stack
        .json(key, &["imagine", "a calm lake", "--res", "64x64", "--out", &out], 0)
        .await;
    let completed_id = completed["job"]["job_id"].as_str().expect("id").to_owned();
    stack.fake.fail_next(Failure::Runtime { oom: false });
    let failed = stack.json(key, &["imagine", "a storm", "--res", "64x64"], 1).await;
    assert_eq!(failed["job"]["status"], "FAILED", "{failed}");
    let failed_id = failed["job"]["job_id"].as_str().expect("id").to_owned();

    let ls = |filters: &'static [&'static str]| {
        let args: Vec<&str> = ["jobs", "ls"].into_iter().chain(filters.iter().copied()).collect();
        let stack = &stack;
        async move {
            let output = stack.run(key, &args).await;
            output.clone().assert().success();
            let header = text(&output.stdout).lines().next().unwrap_or_default().to_owned();
            assert!(header.starts_with("ID"), "a table: {}", text(&output.stdout));
            table_rows(&output)
        }
    };
    let every = ls(&[]).await;
    assert_eq!(every.len(), 2, "{every:?}");
    let only_completed = ls(&["--status", "completed"]).await;
    assert_eq!(only_completed.len(), 1, "{only_completed:?}");
    assert!(only_completed[0].starts_with(&completed_id) && only_completed[0].contains("COMPLETED"));
    let only_failed = ls(&["--status", "FAILED"]).await;
    assert_eq!(only_failed.len(), 1, "{only_failed:?}");
    assert!(only_failed[0].starts_with(&failed_id));
    assert!(ls(&["--capability", "video"]).await.is_empty());
    assert_eq!(ls(&["--capability", "image"]).await.len(), 2);
    let newest = ls(&["--limit", "1"]).await;
    assert_eq!(newest.len(), 1, "{newest:?}");
    assert!(newest[0].starts_with(&failed_id), "newest first: {newest:?}");
    assert!(ls(&["--since", "2999-01-01T00:00:00Z"]).await.is_empty());

    let page = stack
        .json(key, &["jobs", "ls", "--status", "completed", "--limit", "5"], 0)
        .await;
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["pagination"]["total"], 1);
    let refused = stack.run(key, &["jobs", "ls", "--status", "done"]).await;
    refused.assert().code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_prints_json_that_parses_with_a_stored_session() {
    let stack = Stack::start(true).await;
    let user = stack.user(PlanTier::Pro).await;
    let credentials = format!("{}\n{}\n", user.email, user.password);
    let login = stack.run_with_input(None, &["--json", "login"], &credentials).await;
    login.clone().assert().success();
    let login: Value = serde_json::from_slice(&login.stdout).expect("login JSON");
    assert_eq!(login["credential"], "session", "{login}");
    assert_eq!(login["email"], user.email.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(stack.config_path())
            .expect("config written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the config file is its owner's only");
    }

    let out = stack.dir.path().join("saved");
    let out = out.to_str().expect("utf-8");
    let made = stack
        .json(None, &["imagine", "a lighthouse", "--res", "64x64", "--out", out], 0)
        .await;
    assert_eq!(made["job"]["status"], "COMPLETED", "{made}");
    let file = made["files"][0].as_str().expect("a saved file");
    assert!(Path::new(file).is_file(), "{made}");
    let id = made["job"]["job_id"].as_str().expect("id");

    let shown = stack.json(None, &["jobs", "get", id], 0).await;
    assert_eq!(shown["job_id"], id);
    let waited = stack.json(None, &["jobs", "wait", id], 0).await;
    assert_eq!(waited["job"]["status"], "COMPLETED");
    assert_eq!(waited["files"], json!([]), "nothing is downloaded without --out");
    let listed = stack.json(None, &["jobs", "ls"], 0).await;
    assert_eq!(listed["jobs"][0]["job_id"], id);
    let final_already = stack.json(None, &["jobs", "cancel", id], 2).await;
    assert_eq!(final_already["error"]["http_status"], 409, "{final_already}");
    let models = stack.json(None, &["models", "--capability", "image"], 0).await;
    assert!(
        models["models"]
            .as_array()
            .is_some_and(|models| models.iter().any(|model| model["id"] == "canary"))
    );

    // An access token about to expire is renewed with the refresh token first, and the rotated
    // pair is kept in the config file.
    let mut config: Value = serde_json::from_slice(&std::fs::read(stack.config_path()).expect("config")).expect("json");
    let first_refresh = config["session"]["refresh_token"].clone();
    config["session"]["access_expires_at"] = json!(0);
    std::fs::write(stack.config_path(), config.to_string()).expect("expire the token");
    let usage = stack.json(None, &["usage"], 0).await;
    assert!(usage["usage"].is_array(), "{usage}");
    let renewed: Value = serde_json::from_slice(&std::fs::read(stack.config_path()).expect("config")).expect("json");
    assert_ne!(
        renewed["session"]["refresh_token"], first_refresh,
        "the rotated token is kept"
    );

    let created = stack
        .json(None, &["keys", "create", "ci", "--scope", "jobs:read"], 0)
        .await;
    let key_id = created["id"].as_str().expect("key id").to_owned();
    assert!(created["key"].as_str().is_some_and(|key| key.starts_with("tessera_")));
    let keys = stack.json(None, &["keys", "ls"], 0).await;
    assert!(
        keys["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|key| key["id"] == key_id.as_str()))
    );
    let removed = stack.json(None, &["keys", "rm", &key_id], 0).await;
    assert_eq!(removed, json!({"deleted": key_id}));
    let logged_out = stack.json(None, &["logout"], 0).await;
    assert_eq!(logged_out, json!({"logged_out": true}));
    let signed_out = stack.json(None, &["models"], 3).await;
    assert_eq!(signed_out["error"]["exit_status"], 3, "{signed_out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_statuses_say_bad_key_quota_failed_job_and_bad_usage() {
    let stack = Stack::start(true).await;
    let user = stack.user(PlanTier::Free).await;
    let key = Some(user.key.as_str());

    let bad_key = stack.json(Some("tessera_notakey_0000000000"), &["jobs", "ls"], 3).await;
    assert_eq!(bad_key["error"]["http_status"], 401, "{bad_key}");
    stack.run(None, &["models"]).await.assert().code(3);

    // One job worth 30 tokens, over the Free plan's 10 a day.
    let over_quota = stack
        .json(
            key,
            &["imagine", "a huge fox", "--res", "2048x2048", "--steps", "150"],
            4,
        )
        .await;
    assert_eq!(over_quota["error"]["code"], "QUOTA_EXCEEDED", "{over_quota}");

    stack.fake.fail_next(Failure::Runtime { oom: false });
    let failed = stack.run(key, &["imagine", "a doomed fox", "--res", "64x64"]).await;
    failed.clone().assert().code(1);
    assert!(
        text(&failed.stderr).contains("EXECUTION_ERROR"),
        "the reason: {}",
        text(&failed.stderr)
    );
    assert!(failed.stdout.is_empty(), "no file was saved");

    stack
        .run(key, &["jobs", "get", "job_doesnotexist"])
        .await
        .assert()
        .code(2);
    stack.run(key, &["imagine"]).await.assert().code(2);

    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let unreachable = stack
        .json(key, &["--api-url", &format!("http://{nobody}"), "models"], 5)
        .await;
    assert_eq!(unreachable["error"]["exit_status"], 5, "{unreachable}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_waiting_leaves_the_job_running_and_says_how_to_resume() {
    let stack = Stack::start(false).await;
    let user = stack.user(PlanTier::Free).await;
    let mut child = stack
        .command(Some(&user.key), &["imagine", "a patient fox", "--res", "64x64"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tessera");
    let stderr = child.stderr.take().expect("stderr");
    let pid = child.id();
    let stderr_text = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("line");
            let queued = line.contains("queued, position 1");
            seen.push(line);
            if queued {
                let interrupted = std::process::Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status()
                    .expect("kill -INT");
                assert!(interrupted.success());
                break;
            }
        }
        seen.extend(lines.map_while(Result::ok));
        seen.join("\n")
    })
    .await
    .expect("join");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("exit");
    assert_eq!(output.status.code(), Some(130), "{stderr_text}");
    assert_plain(stderr_text.as_bytes(), "stderr", &["imagine"]);
    let job_id = stderr_text
        .split_whitespace()
        .find(|word| word.starts_with("job_"))
        .expect("the job is named")
        .to_owned();
    assert!(
        stderr_text.contains(&format!("tessera jobs wait {job_id}")),
        "{stderr_text}"
    );
    let job = stack.json(Some(&user.key), &["jobs", "get", &job_id], 0).await;
    assert_eq!(job["status"], "QUEUED", "left running: {job}");
}
