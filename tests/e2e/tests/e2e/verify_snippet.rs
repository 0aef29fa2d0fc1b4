//! The README's webhook verification snippets, tested: the Rust one is compiled here from the
//! very file the README quotes, and the Python one runs under `python3` against real deliveries.

use std::io::Write;
use std::process::{Command, Stdio};

#[path = "webhook_snippet.rs"]
mod snippet;

pub use snippet::verify_webhook;

const RUST_SNIPPET: &str = include_str!("webhook_snippet.rs");
const PYTHON_SNIPPET: &str = include_str!("webhook_snippet.py");
const README: &str = include_str!("../../../../README.md");

/// Runs the README's Python snippet on one delivery; panics unless it accepts it. The snippet
/// reads the real clock, so `now` must be the real time give or take its tolerance.
pub fn python_accepts(secret: &str, header: &str, body: &str, now: i64) {
    let real = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now - real).abs() < 60,
        "the Python snippet checks against the real clock"
    );
    let program = format!(
        "{PYTHON_SNIPPET}\nimport os, sys\nsys.exit(0 if verify_webhook(os.environ['SECRET'], os.environ['HEADER'], sys.stdin.buffer.read()) else 1)\n"
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(program)
        .env("SECRET", secret)
        .env("HEADER", header)
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3 runs (the test command installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write the body");
    let status = child.wait().expect("python3 finished");
    assert!(status.success(), "the README's Python snippet refused a real delivery");
}

#[test]
fn the_readme_quotes_both_snippets_verbatim() {
    assert!(
        README.contains(&format!("```rust\n{RUST_SNIPPET}```")),
        "README.md must quote tests/e2e/tests/e2e/webhook_snippet.rs verbatim"
    );
    assert!(
        README.contains(&format!("```python\n{PYTHON_SNIPPET}```")),
        "README.md must quote tests/e2e/tests/e2e/webhook_snippet.py verbatim"
    );
}

#[test]
fn the_rust_snippet_refuses_tampering_staleness_and_other_secrets() {
    let body = br#"{"event":"job.completed"}"#;
    let now = 1_800_000_000;
    let header = tessera_core::event::signature_header(now, &["whsec_a", "whsec_b"], body);
    assert_eq!(verify_webhook("whsec_a", &header, body, now), Ok(()));
    assert_eq!(verify_webhook("whsec_b", &header, body, now + 299), Ok(()));
    assert!(verify_webhook("whsec_c", &header, body, now).is_err());
    assert!(verify_webhook("whsec_a", &header, b"{}", now).is_err());
    assert!(verify_webhook("whsec_a", &header, body, now + 301).is_err());
    assert!(verify_webhook("whsec_a", "v1=00", body, now).is_err());
}
