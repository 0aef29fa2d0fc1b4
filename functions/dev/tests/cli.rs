//! The real `tessera-dev` binary, as `cargo run` starts it: it serves, answers health, and
//! stops cleanly on Ctrl-C (SIGINT); `bootstrap --aws` is idempotent against the emulator.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_tessera-dev");

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

#[tokio::test]
async fn cargo_run_serves_health_and_stops_gracefully_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(BINARY)
        .env("TESSERA_ADDR", "127.0.0.1:0")
        .env("TESSERA_DATA_DIR", dir.path())
        .env("TESSERA_BACKEND", "embedded")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tessera-dev");
    let lines = lines_of(&mut child);
    let listening = wait_for_line(&lines, "listening on http://");
    let url_start = listening.find("http://").expect("url");
    let base = listening[url_start..]
        .split_whitespace()
        .next()
        .expect("url")
        .to_owned();

    let body: serde_json::Value = reqwest::get(format!("{base}/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "ok");
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
        .expect("run tessera-dev");
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
