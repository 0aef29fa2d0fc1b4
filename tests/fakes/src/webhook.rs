//! A fake webhook receiver: a loopback HTTP server standing in for a customer's `webhook_url`.
//! It records every `POST` it gets (path, headers, raw body, arrival time and the reply it
//! chose), answers from a script of [`Reply`]s (accept, fail with a status, hang, redirect, or
//! send an oversized body) and lets a test wait until enough deliveries have arrived. Next to it
//! are two test oracles written independently of `tessera-core`: [`verify_signature`], which
//! checks an `X-Tessera-Signature` header (`t=<unix seconds>,v1=<hex HMAC-SHA256>` with one
//! `v1=` entry per secret during a rotation), and [`check_event_shape`], which checks a job
//! event body field by field.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the receiver answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `200 OK` with the body `ok`.
    Accept,
    /// That HTTP status with a short plain-text body (it must be a valid status code, 100..=999).
    Status(u16),
    /// Sleep this long, then answer `200 OK` with the body `ok`.
    Hang(Duration),
    /// `302 Found` with this `Location` header.
    Redirect(String),
    /// `200 OK` with a body of exactly this many bytes.
    Large(usize),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct ReceivedWebhook {
    /// The request path, with its query string if there was one (`/hooks/a?x=1`).
    pub path: String,
    /// Every header as `(lowercase name, value)`, in the order received; a repeated header
    /// appears once per value. Values that are not UTF-8 are converted lossily.
    pub headers: Vec<(String, String)>,
    /// The raw body (converted lossily if it was not UTF-8).
    pub body: String,
    /// When the request arrived (before any [`Reply::Hang`] delay).
    pub received_at: SystemTime,
    /// The reply the receiver chose for this request.
    pub reply: Reply,
}

impl ReceivedWebhook {
    /// The first value of the header `name` (matched case-insensitively), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON; panics with the body in the message when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("webhook body to {} is not JSON ({error}): {:?}", self.path, self.body))
    }
}

/// What the server task and the test share.
#[derive(Debug, Default)]
struct Inner {
    /// Replies still to use, first one next.
    script: VecDeque<Reply>,
    /// Every `POST` so far, in arrival order.
    received: Vec<ReceivedWebhook>,
}

/// The server's state: the shared log plus a counter that waiters watch.
#[derive(Debug, Clone)]
struct Shared {
    /// The script and the log.
    inner: Arc<Mutex<Inner>>,
    /// How many requests have been recorded; bumped after each one is logged.
    count: Arc<watch::Sender<usize>>,
}

impl Shared {
    /// Locks the script and log (a panic elsewhere while holding it does not hide the log).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A loopback HTTP server on `127.0.0.1:<random port>` that plays a customer's webhook
/// endpoint. It accepts `POST` on any path (other methods get `405`), records each request and
/// answers from its script. The server stops when this value is dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    /// Where the server listens.
    address: SocketAddr,
    /// The script, the log and the arrival counter.
    shared: Shared,
    /// The background server task, aborted on drop.
    task: JoinHandle<()>,
}

impl WebhookReceiver {
    /// Binds `127.0.0.1:0` and serves in a background tokio task (call inside a tokio runtime).
    pub async fn start() -> WebhookReceiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the fake webhook receiver to 127.0.0.1:0");
        let address = listener
            .local_addr()
            .expect("read the fake webhook receiver's bound address");
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner::default())),
            count: Arc::new(watch::Sender::new(0)),
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serve the fake webhook receiver");
        });
        WebhookReceiver { address, shared, task }
    }

    /// `http://127.0.0.1:<port><path>`; `path` should start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.address.port())
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Queues replies, used in order, one per request (after any still queued); once the
    /// script is used up every request gets [`Reply::Accept`].
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().script.extend(replies);
    }

    /// Every `POST` so far (including ones still hanging or that were redirected), in arrival
    /// order.
    pub fn received(&self) -> Vec<ReceivedWebhook> {
        self.shared.lock().received.clone()
    }

    /// Waits until at least `count` requests have arrived and answers them all (it may be more
    /// than `count`); panics with what did arrive when `timeout` passes first.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedWebhook> {
        let mut arrivals = self.shared.count.subscribe();
        let waited = tokio::time::timeout(timeout, arrivals.wait_for(|seen| *seen >= count)).await;
        match waited {
            Ok(Ok(_)) => self.received(),
            Ok(Err(_)) => unreachable!("the receiver holds the arrival counter's sender"),
            Err(_) => {
                let received = self.received();
                let summary: Vec<String> = received
                    .iter()
                    .map(|hook| format!("{} -> {:?}", hook.path, hook.reply))
                    .collect();
                panic!(
                    "fake webhook receiver on port {}: waited {timeout:?} for {count} request(s), \
                     got {}: {summary:?}",
                    self.port(),
                    received.len()
                )
            }
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers every request: records `POST`s and replies from the script, `405` otherwise.
async fn handle(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            "only POST is accepted",
        )
            .into_response();
    }
    let received_at = SystemTime::now();
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let headers = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = String::from_utf8_lossy(&body).into_owned();
    let reply = {
        let mut inner = shared.lock();
        let reply = inner.script.pop_front().unwrap_or(Reply::Accept);
        inner.received.push(ReceivedWebhook {
            path,
            headers,
            body,
            received_at,
            reply: reply.clone(),
        });
        reply
    };
    shared.count.send_modify(|count| *count += 1);
    answer(reply).await
}

/// Builds the response for one scripted reply (sleeping first for [`Reply::Hang`]).
async fn answer(reply: Reply) -> Response {
    match reply {
        Reply::Accept => (StatusCode::OK, "ok").into_response(),
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code)
                .unwrap_or_else(|error| panic!("Reply::Status({code}) is not a valid HTTP status: {error}"));
            (status, format!("scripted status {code}")).into_response()
        }
        Reply::Hang(delay) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, "ok").into_response()
        }
        Reply::Redirect(location) => {
            let location = HeaderValue::from_str(&location)
                .unwrap_or_else(|error| panic!("Reply::Redirect({location:?}) is not a valid header value: {error}"));
            (StatusCode::FOUND, [(header::LOCATION, location)], "").into_response()
        }
        Reply::Large(size) => (StatusCode::OK, vec![b'x'; size]).into_response(),
    }
}

/// Checks an `X-Tessera-Signature` header value against `secrets`, independently of
/// `tessera-core`.
///
/// The header must be comma-separated `key=value` entries with no spaces: exactly one
/// `t=<unix seconds>` (ASCII digits) and at least one `v1=<64 lowercase hex digits>`; any other
/// entry is refused. Each `v1` is an HMAC-SHA256 under one secret of `"<t>.<body>"` (with `t`
/// exactly as written in the header). The timestamp may be at most `tolerance_seconds` away
/// from `now_unix` in either direction. Answers the index in `secrets` of the first secret that
/// matches any `v1` entry (compared in constant time), or a readable reason for refusing.
pub fn verify_signature(
    header: &str,
    secrets: &[&str],
    body: &[u8],
    now_unix: i64,
    tolerance_seconds: i64,
) -> Result<usize, String> {
    if secrets.is_empty() {
        return Err("no secrets to verify the signature against".to_owned());
    }
    if header.is_empty() {
        return Err("the signature header is empty".to_owned());
    }
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for (position, entry) in header.split(',').enumerate() {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!(
                "entry {position} of the signature header ({entry:?}) is not key=value"
            ));
        };
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err("the signature header has more than one t= entry".to_owned());
                }
                if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
                    return Err(format!(
                        "the signature timestamp t={value:?} is not unix seconds in digits"
                    ));
                }
                timestamp = Some(value);
            }
            "v1" => {
                let well_formed = value.len() == 64
                    && value
                        .bytes()
                        .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
                if !well_formed {
                    return Err(format!(
                        "the signature v1={value:?} is not 64 lowercase hex digits (HMAC-SHA256)"
                    ));
                }
                let mac =
                    hex::decode(value).map_err(|error| format!("the signature v1={value:?} is not hex: {error}"))?;
                signatures.push(mac);
            }
            other => {
                return Err(format!(
                    "the signature header has an unknown entry {other:?} (expected t and v1)"
                ));
            }
        }
    }
    let Some(timestamp) = timestamp else {
        return Err("the signature header has no t= entry".to_owned());
    };
    if signatures.is_empty() {
        return Err("the signature header has no v1= entry".to_owned());
    }
    let signed_at: i64 = timestamp
        .parse()
        .map_err(|error| format!("the signature timestamp t={timestamp} is out of range: {error}"))?;
    let skew = i128::from(now_unix) - i128::from(signed_at);
    if skew.abs() > i128::from(tolerance_seconds) {
        return Err(format!(
            "the signature timestamp t={signed_at} is {skew} s from now ({now_unix}), beyond the \
             tolerance of {tolerance_seconds} s"
        ));
    }
    for (index, secret) in secrets.iter().enumerate() {
        for signature in &signatures {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC-SHA256 takes a key of any length");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            if mac.verify_slice(signature).is_ok() {
                return Ok(index);
            }
        }
    }
    Err(format!(
        "none of the {} v1 signature(s) matches any of the {} secret(s) for this body",
        signatures.len(),
        secrets.len()
    ))
}

/// Checks a job event body field by field: `event` is `job.completed`, `job.failed` or
/// `job.cancelled`; `status` is the matching `COMPLETED`, `FAILED` or `CANCELLED`; `event_id`
/// starts with `evt_` and `job_id` with `job_`; `timestamp` is RFC 3339 in UTC; `data.job` is
/// an object whose `job_id` and `status` equal the top-level ones; `data.artifacts` is an array,
/// non-empty for `job.completed` with a string `url` in each entry. Answers the first problem
/// found.
pub fn check_event_shape(body: &Value) -> Result<(), String> {
    let top = body
        .as_object()
        .ok_or_else(|| format!("the event body is not a JSON object: {body}"))?;
    let string_field = |name: &str| -> Result<&str, String> {
        match top.get(name) {
            None => Err(format!("the event has no {name:?} field")),
            Some(Value::String(value)) => Ok(value.as_str()),
            Some(other) => Err(format!("the event's {name:?} is not a string: {other}")),
        }
    };
    let event = string_field("event")?;
    let expected_status = match event {
        "job.completed" => "COMPLETED",
        "job.failed" => "FAILED",
        "job.cancelled" => "CANCELLED",
        other => {
            return Err(format!(
                "the event {other:?} is not job.completed, job.failed or job.cancelled"
            ));
        }
    };
    let event_id = string_field("event_id")?;
    if !event_id.starts_with("evt_") || event_id.len() == "evt_".len() {
        return Err(format!("the event_id {event_id:?} does not look like evt_..."));
    }
    let job_id = string_field("job_id")?;
    if !job_id.starts_with("job_") || job_id.len() == "job_".len() {
        return Err(format!("the job_id {job_id:?} does not look like job_..."));
    }
    let status = string_field("status")?;
    if status != expected_status {
        return Err(format!(
            "the event {event} has status {status:?}, expected {expected_status:?}"
        ));
    }
    let timestamp = string_field("timestamp")?;
    let parsed = OffsetDateTime::parse(timestamp, &Rfc3339)
        .map_err(|error| format!("the timestamp {timestamp:?} is not RFC 3339: {error}"))?;
    if !parsed.offset().is_utc() {
        return Err(format!("the timestamp {timestamp:?} is not in UTC"));
    }
    let data = match top.get("data") {
        None => return Err("the event has no \"data\" field".to_owned()),
        Some(Value::Object(data)) => data,
        Some(other) => return Err(format!("the event's data is not an object: {other}")),
    };
    let job = match data.get("job") {
        None => return Err("the event has no data.job field".to_owned()),
        Some(Value::Object(job)) => job,
        Some(other) => return Err(format!("the event's data.job is not an object: {other}")),
    };
    match job.get("job_id") {
        Some(Value::String(inner)) if inner == job_id => {}
        Some(other) => {
            return Err(format!(
                "data.job.job_id is {other}, but the event's job_id is {job_id:?}"
            ));
        }
        None => return Err("the event has no data.job.job_id field".to_owned()),
    }
    match job.get("status") {
        Some(Value::String(inner)) if inner == status => {}
        Some(other) => {
            return Err(format!(
                "data.job.status is {other}, but the event's status is {status:?}"
            ));
        }
        None => return Err("the event has no data.job.status field".to_owned()),
    }
    let artifacts = match data.get("artifacts") {
        None => return Err("the event has no data.artifacts field".to_owned()),
        Some(Value::Array(artifacts)) => artifacts,
        Some(other) => return Err(format!("the event's data.artifacts is not an array: {other}")),
    };
    if event == "job.completed" {
        if artifacts.is_empty() {
            return Err("a job.completed event has no data.artifacts".to_owned());
        }
        for (index, artifact) in artifacts.iter().enumerate() {
            if !matches!(artifact.get("url"), Some(Value::String(_))) {
                return Err(format!("data.artifacts[{index}] has no string \"url\": {artifact}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use super::*;

    /// A client that shows redirects instead of following them.
    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("build a reqwest client")
    }

    /// `v1` for `secret` over `"<t>.<body>"`, computed here with hmac directly.
    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    /// A well-formed event body for `event`.
    fn event_body(event: &str, status: &str) -> Value {
        let artifacts = if event == "job.completed" {
            json!([{"url": "https://cdn.example/a.png", "kind": "image"}])
        } else {
            json!([])
        };
        json!({
            "event": event,
            "event_id": "evt_01JF",
            "job_id": "job_42",
            "status": status,
            "timestamp": "2025-12-17T20:00:33Z",
            "data": {
                "job": {"job_id": "job_42", "status": status, "progress": 1.0},
                "artifacts": artifacts,
            },
        })
    }

    #[tokio::test]
    async fn answers_the_script_in_order_then_accepts() {
        let receiver = WebhookReceiver::start().await;
        receiver.script([
            Reply::Status(503),
            Reply::Redirect("https://elsewhere.example/hook".to_owned()),
            Reply::Large(100_000),
            Reply::Accept,
        ]);
        let client = client();
        let mut answers = Vec::new();
        for n in 0..6 {
            let response = client
                .post(receiver.url(&format!("/hooks/{n}")))
                .header("Content-Type", "application/json")
                .header("X-Tessera-Signature", "t=1,v1=ab")
                .body(format!("{{\"n\":{n}}}"))
                .send()
                .await
                .expect("send a webhook");
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .map(|value| value.to_str().expect("ascii location").to_owned());
            let body = response.bytes().await.expect("read the reply");
            answers.push((status, location, body.len()));
        }
        assert_eq!(answers[0].0, 503);
        assert_eq!(answers[1], (302, Some("https://elsewhere.example/hook".to_owned()), 0));
        assert_eq!(answers[2], (200, None, 100_000));
        assert_eq!(answers[3], (200, None, 2));
        assert_eq!(answers[4], (200, None, 2));
        assert_eq!(answers[5], (200, None, 2));

        let received = receiver.received();
        assert_eq!(received.len(), 6);
        let replies: Vec<Reply> = received.iter().map(|hook| hook.reply.clone()).collect();
        assert_eq!(
            replies,
            [
                Reply::Status(503),
                Reply::Redirect("https://elsewhere.example/hook".to_owned()),
                Reply::Large(100_000),
                Reply::Accept,
                Reply::Accept,
                Reply::Accept,
            ]
        );
        for (n, hook) in received.iter().enumerate() {
            assert_eq!(hook.path, format!("/hooks/{n}"));
            assert_eq!(hook.header("content-type"), Some("application/json"));
            assert_eq!(hook.header("X-Tessera-Signature"), Some("t=1,v1=ab"));
            assert!(hook.headers.iter().all(|(name, _)| *name == name.to_lowercase()));
            assert_eq!(hook.json(), json!({"n": n}));
        }
        assert!(
            received
                .windows(2)
                .all(|pair| pair[0].received_at <= pair[1].received_at)
        );
        assert_eq!(receiver.url("/x"), format!("http://127.0.0.1:{}/x", receiver.port()));
    }

    #[tokio::test]
    async fn other_methods_are_refused_and_not_recorded() {
        let receiver = WebhookReceiver::start().await;
        let response = client().get(receiver.url("/hook")).send().await.expect("send a GET");
        assert_eq!(response.status().as_u16(), 405);
        assert!(receiver.received().is_empty());
    }

    #[tokio::test]
    async fn hang_delays_the_answer_but_is_recorded_at_once() {
        let receiver = WebhookReceiver::start().await;
        receiver.script([Reply::Hang(Duration::from_millis(400))]);
        let url = receiver.url("/slow");
        let started = Instant::now();
        let request = tokio::spawn(async move {
            client()
                .post(url)
                .body("{}")
                .send()
                .await
                .expect("send a webhook")
                .status()
                .as_u16()
        });
        let seen = receiver.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(seen[0].reply, Reply::Hang(Duration::from_millis(400)));
        assert!(!request.is_finished(), "the hung request answered early");
        let status = request.await.expect("the request task");
        assert_eq!(status, 200);
        assert!(started.elapsed() >= Duration::from_millis(400));
    }

    #[tokio::test]
    #[should_panic(expected = "waited")]
    async fn wait_for_panics_on_timeout() {
        let receiver = WebhookReceiver::start().await;
        receiver.wait_for(1, Duration::from_millis(50)).await;
    }

    #[test]
    fn verify_signature_accepts_a_correct_header() {
        let body = br#"{"event":"job.completed"}"#;
        let header = format!("t=1700000000,v1={}", sign("whsec_a", 1_700_000_000, body));
        assert_eq!(verify_signature(&header, &["whsec_a"], body, 1_700_000_010, 300), Ok(0));
        // A little in the future is fine too.
        assert_eq!(verify_signature(&header, &["whsec_a"], body, 1_699_999_990, 300), Ok(0));
    }

    #[test]
    fn verify_signature_accepts_the_second_secret_of_a_rotation() {
        let body = b"{}";
        let t = 1_700_000_000;
        let header = format!(
            "t={t},v1={},v1={}",
            sign("whsec_old", t, body),
            sign("whsec_new", t, body)
        );
        // The receiver only knows the new secret.
        assert_eq!(verify_signature(&header, &["whsec_new"], body, t, 300), Ok(0));
        // Knowing an unrelated secret first, then the new one, answers index 1.
        assert_eq!(
            verify_signature(&header, &["whsec_other", "whsec_new"], body, t, 300),
            Ok(1)
        );
        assert_eq!(verify_signature(&header, &["whsec_old"], body, t, 300), Ok(0));
    }

    #[test]
    fn verify_signature_rejects_wrong_secret_tampering_and_staleness() {
        let body = br#"{"n":1}"#;
        let t = 1_700_000_000;
        let header = format!("t={t},v1={}", sign("whsec_a", t, body));
        let wrong = verify_signature(&header, &["whsec_b"], body, t, 300);
        assert!(wrong.is_err(), "{wrong:?}");
        let tampered = verify_signature(&header, &["whsec_a"], br#"{"n":2}"#, t, 300);
        assert!(tampered.is_err(), "{tampered:?}");
        let stale = verify_signature(&header, &["whsec_a"], body, t + 301, 300);
        assert!(stale.as_ref().is_err_and(|e| e.contains("tolerance")), "{stale:?}");
        let future = verify_signature(&header, &["whsec_a"], body, t - 301, 300);
        assert!(future.as_ref().is_err_and(|e| e.contains("tolerance")), "{future:?}");
        // Moving the timestamp invalidates the MAC.
        let moved = header.replacen("t=1700000000", "t=1700000001", 1);
        assert!(verify_signature(&moved, &["whsec_a"], body, t, 300).is_err());
    }

    #[test]
    fn verify_signature_rejects_garbage_headers() {
        let body = b"{}";
        let t = 1_700_000_000;
        let good = sign("k", t, body);
        let garbage = [
            String::new(),
            "garbage".to_owned(),
            format!("v1={good}"),
            format!("t={t}"),
            format!("t={t},"),
            format!("t=abc,v1={good}"),
            format!("t=-5,v1={good}"),
            format!("t={t},t={t},v1={good}"),
            format!("t={t},v1=zz"),
            format!("t={t},v1={}", &good[..62]),
            format!("t={t},v1={}", good.to_uppercase()),
            format!("t={t}, v1={good}"),
            format!("t={t},v0={good}"),
            format!("t=99999999999999999999,v1={good}"),
        ];
        for header in &garbage {
            let verdict = verify_signature(header, &["k"], body, t, 300);
            assert!(verdict.is_err(), "{header:?} was accepted");
        }
        assert!(verify_signature(&format!("t={t},v1={good}"), &[], body, t, 300).is_err());
    }

    #[test]
    fn check_event_shape_accepts_each_event() {
        for (event, status) in [
            ("job.completed", "COMPLETED"),
            ("job.failed", "FAILED"),
            ("job.cancelled", "CANCELLED"),
        ] {
            let body = event_body(event, status);
            assert_eq!(check_event_shape(&body), Ok(()), "{event}");
        }
    }

    #[test]
    fn check_event_shape_rejects_bad_bodies() {
        let mismatched = event_body("job.completed", "FAILED");
        assert!(check_event_shape(&mismatched).is_err());

        let mut missing = event_body("job.failed", "FAILED");
        missing.as_object_mut().expect("an object").remove("event_id");
        let error = check_event_shape(&missing).expect_err("event_id is missing");
        assert!(error.contains("event_id"), "{error}");

        let mut inner_status = event_body("job.failed", "FAILED");
        inner_status["data"]["job"]["status"] = json!("RUNNING");
        assert!(check_event_shape(&inner_status).is_err());

        let mut inner_id = event_body("job.failed", "FAILED");
        inner_id["data"]["job"]["job_id"] = json!("job_43");
        assert!(check_event_shape(&inner_id).is_err());

        let mut no_artifacts = event_body("job.completed", "COMPLETED");
        no_artifacts["data"]["artifacts"] = json!([]);
        assert!(check_event_shape(&no_artifacts).is_err());

        let mut no_url = event_body("job.completed", "COMPLETED");
        no_url["data"]["artifacts"] = json!([{"key": "a.png"}]);
        assert!(check_event_shape(&no_url).is_err());

        let mut bad_time = event_body("job.cancelled", "CANCELLED");
        bad_time["timestamp"] = json!("2025-12-17 20:00:33");
        assert!(check_event_shape(&bad_time).is_err());

        let mut bad_id = event_body("job.cancelled", "CANCELLED");
        bad_id["job_id"] = json!("42");
        bad_id["data"]["job"]["job_id"] = json!("42");
        assert!(check_event_shape(&bad_id).is_err());

        let mut unknown = event_body("job.cancelled", "CANCELLED");
        unknown["event"] = json!("job.started");
        assert!(check_event_shape(&unknown).is_err());

        assert!(check_event_shape(&json!([])).is_err());
    }
}
