//! The real `tessera` binary, as `cargo run` starts it: it serves, answers health, and
//! stops cleanly on Ctrl-C (SIGINT); `bootstrap --aws` is idempotent against the emulator.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");

/// Reads the child's stdout on a thread, forwarding lines so the test can wait for one.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no line containing {needle:?} within 30 s"));
        if line.contains(needle) {
            return line;
        }
    }
}

/// A started server: the child, its further stdout lines, its base URL, and what it printed
/// before it listened.
type Started = (Child, mpsc::Receiver<String>, String, String);

/// Starts the server on a free port over `dir` with `extra` variables, and waits until it listens.
fn start_server(dir: &std::path::Path, extra: &[(&str, &str)]) -> Started {
    let mut command = Command::new(BINARY);
    command
        .env("TESSERA_ADDR", "127.0.0.1:0")
        .env("TESSERA_DATA_DIR", dir)
        .env("TESSERA_BACKEND", "embedded")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in extra {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start tessera");
    let lines = lines_of(&mut child);
    let mut startup = Vec::new();
    let listening = loop {
        let line = wait_for_line(&lines, "");
        if line.contains("listening on http://") {
            break line;
        }
        startup.push(line);
    };
    let url_start = listening.find("http://").expect("url");
    let base = listening[url_start..]
        .split_whitespace()
        .next()
        .expect("url")
        .to_owned();
    (child, lines, base, startup.join("\n"))
}

#[tokio::test]
async fn cargo_run_serves_health_and_stops_gracefully_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("dir");
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let comfyui = format!("http://{nobody}");
    let workflows = concat!(env!("CARGO_MANIFEST_DIR"), "/../../gpu-worker/workflows");
    let (mut child, lines, base, _) = start_server(
        dir.path(),
        &[
            ("COMFYUI_URL", &comfyui),
            ("TESSERA_WORKFLOWS_DIR", workflows),
            ("TESSERA_CANARY_SECONDS", "60"),
        ],
    );

    let body: serde_json::Value = reqwest::get(format!("{base}/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "ok", "{body}");
    let comfyui_says = body["comfyui"].as_str().expect("the in-process worker's ComfyUI");
    assert!(
        comfyui_says.starts_with(&format!("not answering at {comfyui}")),
        "said plainly: {comfyui_says}"
    );
    assert!(
        ["unknown", "pending"].contains(&body["pipeline"]["status"].as_str().unwrap_or_default()),
        "no canary has run yet: {body}"
    );
    wait_for_line(&lines, "/health");

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    wait_for_line(&lines, "stopped");
    let status = child.wait().expect("exit");
    assert!(status.success(), "exit status {status}");
    assert!(dir.path().join("store.sqlite3").exists());
}

#[test]
fn a_bad_environment_variable_stops_it_with_a_message_naming_the_variable() {
    let output = Command::new(BINARY)
        .env("TESSERA_BACKEND", "postgres")
        .output()
        .expect("run tessera");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TESSERA_BACKEND"), "{stderr}");
}

#[test]
fn bootstrap_aws_creates_everything_once_and_is_idempotent() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL is not set: run `infra/test.sh`, or export AWS_ENDPOINT_URL=$(infra/moto.sh)")
    });
    let prefix = format!("boot{}", std::process::id());
    let run = || {
        let output = Command::new(BINARY)
            .args(["bootstrap", "--aws"])
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("TESSERA_RESOURCE_PREFIX", &prefix)
            .output()
            .expect("run bootstrap");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "bootstrap failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let first = run();
    assert!(first.contains(&format!("{prefix}-jobs")), "{first}");
    let created_first = first.lines().filter(|line| line.starts_with("created ")).count();
    assert!(created_first > 0, "the first run creates the resources: {first}");
    assert!(
        first.contains(&format!("{created_first} created, 0 already there")),
        "{first}"
    );

    let second = run();
    assert!(!second.lines().any(|line| line.starts_with("created ")), "{second}");
    assert!(
        second.contains(&format!("0 created, {created_first} already there")),
        "{second}"
    );
}

/// Runs the real server at `debug` verbosity through a whole account life and checks that no
/// password, token, key or signing secret reaches its output.
#[tokio::test]
async fn no_password_token_or_key_appears_in_the_logs() {
    let dir = tempfile::tempdir().expect("dir");
    let jwt_secret = "log-test-secret-0123456789abcdef0123456789";
    let keys = format!("logs1:{jwt_secret}");
    let (mut child, lines, base, startup) =
        start_server(dir.path(), &[("TESSERA_JWT_KEYS", &keys), ("RUST_LOG", "debug")]);
    let stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());

    let secrets = exercise_every_auth_route(&base).await;

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let mut output = vec![startup];
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) {
        output.push(line);
    }
    child.wait().expect("exit");
    let output = format!("{}\n{}", output.join("\n"), errors.join().expect("stderr"));
    assert!(output.contains("/api/auth/login"), "the requests are logged:\n{output}");
    for (what, secret) in secrets.iter().chain([&("JWT signing secret", jwt_secret.to_owned())]) {
        assert!(!output.contains(secret.as_str()), "the {what} appears in the logs");
    }
}

/// Signs up, logs in (also with a wrong password), refreshes, makes and uses an API key, and
/// logs out; answers every secret that went over the wire.
async fn exercise_every_auth_route(base: &str) -> Vec<(&'static str, String)> {
    use serde_json::{Value, json};
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).json(&body);
    let password = "a long and secret pass phrase";
    let wrong = "a wrong but secret pass phrase";
    let email = "logs@example.com";
    let signup = post(
        "/api/auth/signup",
        json!({"email": email, "password": password, "name": "Logs"}),
    );
    assert_eq!(signup.send().await.expect("signup").status(), 201);
    let refused = post("/api/auth/login", json!({"email": email, "password": wrong}));
    assert_eq!(refused.send().await.expect("login").status(), 401);
    let tokens: Value = post("/api/auth/login", json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let text = |value: &Value| value.as_str().expect("string").to_owned();
    let rotated: Value = post("/api/auth/refresh", json!({"refresh_token": tokens["refresh_token"]}))
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    let access = text(&rotated["access_token"]);
    let key: Value = post("/api/api-keys", json!({"name": "logs", "scopes": ["jobs:read"]}))
        .bearer_auth(&access)
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let api_key = text(&key["key"]);
    let me = client
        .get(format!("{base}/api/auth/me"))
        .header("X-Tesserra-Api-Key", &api_key)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200);
    let logout = client
        .post(format!("{base}/api/auth/logout"))
        .bearer_auth(&access)
        .send();
    assert_eq!(logout.await.expect("logout").status(), 204);
    vec![
        ("password", password.to_owned()),
        ("wrong password", wrong.to_owned()),
        ("first access token", text(&tokens["access_token"])),
        ("first refresh token", text(&tokens["refresh_token"])),
        ("second access token", access),
        ("second refresh token", text(&rotated["refresh_token"])),
        (
            "API key secret",
            api_key.splitn(3, '_').nth(2).expect("secret").to_owned(),
        ),
    ]
}

#[tokio::test]
async fn admin_commands_create_a_platform_admin_who_can_log_in_and_a_service_key() {
    let dir = tempfile::tempdir().expect("dir");
    let admin = |args: &[&str]| {
        Command::new(BINARY)
            .arg("admin")
            .args(args)
            .env("TESSERA_DATA_DIR", dir.path())
            .env("TESSERA_BACKEND", "embedded")
            .env("TESSERA_ADMIN_PASSWORD", "operator pass phrase 1")
            .output()
            .expect("run admin")
    };
    let created = admin(&["create-admin", "--email", "ops@example.com"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert!(String::from_utf8_lossy(&created.stdout).contains("platform admin ops@example.com created"));
    let again = admin(&["create-admin", "--email", "OPS@example.com"]);
    assert!(!again.status.success(), "the e-mail is taken");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let service = admin(&["create-service-key", "--name", "gpu-worker"]);
    assert!(service.status.success());
    let printed = String::from_utf8_lossy(&service.stdout).into_owned();
    assert!(
        printed.lines().any(|line| line.starts_with("tessera_svc_")),
        "{printed}"
    );

    let (mut child, _lines, base, startup) = start_server(dir.path(), &[]);
    assert!(
        startup.contains("Demo account created (shown only this once)"),
        "{startup}"
    );
    assert!(startup.contains("tessera_"), "the demo key is printed: {startup}");
    let client = reqwest::Client::new();
    let tokens: serde_json::Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": "ops@example.com", "password": "operator pass phrase 1"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let me: serde_json::Value = client
        .get(format!("{base}/api/auth/me"))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["user"]["role"], "platform_admin");
    child.kill().expect("kill");
    child.wait().expect("exit");
}
