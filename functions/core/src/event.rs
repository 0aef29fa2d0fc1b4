//! Job events: the final event every job with a listener emits (`job.completed`, `job.failed`,
//! `job.cancelled`), the live milestones chat frontends get, the webhook signature, and the
//! webhook retry schedule.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::JobStatus;
use crate::error::DomainError;

/// The header that carries a webhook's signature.
pub const SIGNATURE_HEADER: &str = "X-Tessera-Signature";

/// How far a signature's timestamp may be from the receiver's clock before it is refused.
pub const SIGNATURE_TOLERANCE_SECONDS: i64 = 5 * 60;

/// The waits between one failed delivery attempt and the next (1 min, 5 min, 30 min, 2 h, 6 h,
/// 12 h: about 21 hours in all), each with ±10 % jitter. After the last, the delivery is failed.
pub const RETRY_DELAYS_SECONDS: [i64; 6] = [60, 300, 1800, 7200, 21_600, 43_200];

/// Every attempt a delivery gets: the first and one per retry delay.
pub const MAX_DELIVERY_ATTEMPTS: u32 = RETRY_DELAYS_SECONDS.len() as u32 + 1;

/// How much of the schedule's delay the jitter may add or take away (10 %).
const JITTER: f64 = 0.1;

/// The final event of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The job finished with artifacts.
    #[serde(rename = "job.completed")]
    Completed,
    /// The job failed.
    #[serde(rename = "job.failed")]
    Failed,
    /// The job was cancelled.
    #[serde(rename = "job.cancelled")]
    Cancelled,
}

impl EventKind {
    /// Every final event.
    pub const ALL: [EventKind; 3] = [Self::Completed, Self::Failed, Self::Cancelled];

    /// The wire name, e.g. `job.completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "job.completed",
            Self::Failed => "job.failed",
            Self::Cancelled => "job.cancelled",
        }
    }

    /// The event a job in `status` emitted, if that status is final.
    pub fn for_status(status: JobStatus) -> Option<Self> {
        match status {
            JobStatus::Completed => Some(Self::Completed),
            JobStatus::Failed => Some(Self::Failed),
            JobStatus::Cancelled => Some(Self::Cancelled),
            JobStatus::Queued | JobStatus::Running => None,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| DomainError::InvalidInput(format!("unknown event '{raw}'")))
    }
}

/// A chat frontend that creates jobs through the internal API and hears back on its own
/// notify queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frontend {
    /// The Telegram bot.
    Telegram,
    /// The Discord bot.
    Discord,
}

impl Frontend {
    /// Every frontend.
    pub const ALL: [Frontend; 2] = [Self::Telegram, Self::Discord];

    /// The wire name, e.g. `telegram`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telegram => "telegram",
            Self::Discord => "discord",
        }
    }
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Frontend {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|frontend| frontend.as_str() == raw)
            .ok_or_else(|| DomainError::InvalidInput(format!("unknown frontend '{raw}'")))
    }
}

/// What a notify message tells a chat frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotifyEvent {
    /// A worker took the job.
    #[serde(rename = "job.started")]
    Started,
    /// The job moved on (at most every 10 %, at most every 2 s).
    #[serde(rename = "job.progress")]
    Progress,
    /// The job finished with artifacts.
    #[serde(rename = "job.completed")]
    Completed,
    /// The job failed.
    #[serde(rename = "job.failed")]
    Failed,
    /// The job was cancelled.
    #[serde(rename = "job.cancelled")]
    Cancelled,
}

impl From<EventKind> for NotifyEvent {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::Completed => Self::Completed,
            EventKind::Failed => Self::Failed,
            EventKind::Cancelled => Self::Cancelled,
        }
    }
}

/// The body of a message on a frontend's notify queue: what happened to which job, and where
/// in the chat to say so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyMessage {
    /// Stable per event (a milestone's adds its percent and attempt), so that a consumer can
    /// drop a duplicate.
    pub event_id: String,
    /// What happened.
    pub event: NotifyEvent,
    /// The job.
    pub job_id: String,
    /// The bot that created it.
    pub bot_id: String,
    /// The chat user, e.g. `telegram:123456789`.
    pub user_ref: String,
    /// Where to reply, as the bot sent it.
    pub reply_context: Value,
    /// Percent done, for `job.started` and `job.progress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// The job as `GET /api/v1/jobs/{id}` shows it (artifact URLs included once completed).
    pub job: Value,
    /// When it happened, RFC 3339.
    pub timestamp: String,
}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<seconds>,v1=<hex>[,v1=<hex>...]`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is further from now than the tolerance.
    #[error("signature timestamp outside the tolerance")]
    Stale,
    /// No `v1` entry matches a known secret.
    #[error("no signature matches")]
    Mismatch,
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// The `X-Tessera-Signature` value: `t=<timestamp>`, then one `v1=` entry per secret (two
/// while a rotated secret still signs).
pub fn signature_header(timestamp: i64, secrets: &[&str], body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&sign(secret, timestamp, body));
    }
    header
}

/// Checks a signature header against the receiver's secrets, in constant time per comparison,
/// refusing timestamps more than `tolerance_seconds` from `now`.
pub fn verify_signature(
    header: &str,
    secrets: &[&str],
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", value)) => signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?),
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(timestamp) > tolerance_seconds.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let matches = secrets.iter().any(|secret| {
        signatures
            .iter()
            .any(|signature| mac(secret, timestamp, body).verify_slice(signature).is_ok())
    });
    matches.then_some(()).ok_or(SignatureError::Mismatch)
}

/// The wait after `failed_attempts` failed attempts (1 or more), jittered by `jitter` in
/// `[-1, 1]` (±10 %); `None` when the delivery has had all its attempts.
pub fn retry_delay_seconds(failed_attempts: u32, jitter: f64) -> Option<i64> {
    let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
    let base = *RETRY_DELAYS_SECONDS.get(index)?;
    let spread = (base as f64 * JITTER * jitter.clamp(-1.0, 1.0)).round() as i64;
    Some(base + spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_either_secret_of_a_rotation() {
        let body = br#"{"event":"job.completed"}"#;
        let header = signature_header(1_700_000_000, &["whsec_old", "whsec_new"], body);
        assert_eq!(header.matches("v1=").count(), 2);
        for secret in ["whsec_old", "whsec_new"] {
            verify_signature(&header, &[secret], body, 1_700_000_100, 300).expect(secret);
        }
        assert_eq!(
            verify_signature(&header, &["whsec_other"], body, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tampering_staleness_and_garbage_are_refused() {
        let body = b"{}";
        let header = signature_header(1_700_000_000, &["s"], body);
        assert_eq!(
            verify_signature(&header, &["s"], b"{ }", 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&header, &["s"], body, 1_700_000_301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(&header, &["s"], body, 1_699_999_699, 300),
            Err(SignatureError::Stale)
        );
        for garbage in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "nonsense"] {
            assert_eq!(
                verify_signature(garbage, &["s"], body, 1, 300),
                Err(SignatureError::Malformed),
                "{garbage}"
            );
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2, with the message split as "<t>.<body>".
        assert_eq!(
            sign("Jefe", 0, b"what do ya want for nothing?").len(),
            64,
            "hex of 32 bytes"
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"12.body");
        assert_eq!(hex::encode(mac.finalize().into_bytes()), sign("Jefe", 12, b"body"));
    }

    #[test]
    fn the_retry_schedule_spans_about_a_day_with_bounded_jitter() {
        let plain: Vec<i64> = (1..MAX_DELIVERY_ATTEMPTS)
            .map(|failed| retry_delay_seconds(failed, 0.0).expect("delay"))
            .collect();
        assert_eq!(plain, RETRY_DELAYS_SECONDS);
        assert_eq!(retry_delay_seconds(MAX_DELIVERY_ATTEMPTS, 0.0), None);
        assert_eq!(retry_delay_seconds(0, 0.0), None);
        assert_eq!(retry_delay_seconds(1, 1.0), Some(66));
        assert_eq!(retry_delay_seconds(1, -1.0), Some(54));
        assert_eq!(retry_delay_seconds(2, 7.0), Some(330), "jitter is clamped");
        let total: i64 = RETRY_DELAYS_SECONDS.iter().sum();
        assert!((20 * 3600..=24 * 3600).contains(&total), "{total}");
    }

    #[test]
    fn names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().expect("kind"), kind);
            assert_eq!(serde_json::to_value(kind).expect("json"), kind.as_str());
        }
        for frontend in Frontend::ALL {
            assert_eq!(frontend.as_str().parse::<Frontend>().expect("frontend"), frontend);
        }
        assert_eq!(EventKind::for_status(JobStatus::Failed), Some(EventKind::Failed));
        assert_eq!(EventKind::for_status(JobStatus::Running), None);
    }
}
