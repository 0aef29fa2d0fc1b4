//! What can go wrong in a client command, and the exit status each failure ends the program with.

use serde_json::{Value, json};

/// The exit statuses of the client commands (also listed by `tessera --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the command did what was asked.
    Success,
    /// 1: the job ended `FAILED` or `CANCELLED`.
    JobFailed,
    /// 2: bad usage: a flag clap refused, or a request the API refused as wrong (400, 404, 409, 422).
    Usage,
    /// 3: authentication: no credential, a bad or expired one, or one without the right (401, 403).
    Auth,
    /// 4: a quota or rate limit (402, 429).
    Quota,
    /// 5: the server could not be reached, failed (5xx) or answered something unreadable.
    Unavailable,
    /// 6: a local problem: the config file, the output folder, the terminal.
    Local,
    /// 130: Ctrl-C while waiting, the job left running.
    Interrupted,
}

impl ExitStatus {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::JobFailed => 1,
            Self::Usage => 2,
            Self::Auth => 3,
            Self::Quota => 4,
            Self::Unavailable => 5,
            Self::Local => 6,
            Self::Interrupted => 130,
        }
    }

    /// The status an HTTP error answer maps to.
    pub fn of_http(status: u16) -> Self {
        match status {
            401 | 403 => Self::Auth,
            402 | 429 => Self::Quota,
            500.. => Self::Unavailable,
            _ => Self::Usage,
        }
    }
}

/// What `--help` prints after the options: the exit statuses and where the settings come from.
pub const AFTER_HELP: &str = "\
Exit status of the client commands:
  0    success
  1    the job failed or was cancelled
  2    bad usage: a refused flag, or a request the API refused (400, 404, 409, 422)
  3    authentication: no credential, a bad or expired one, or a missing right (401, 403)
  4    a quota or rate limit (402, 429)
  5    the server is unreachable, failed (5xx) or answered something unreadable
  6    a local problem: the config file, the output folder
  130  interrupted (Ctrl-C) while waiting; the job was left running

The API's URL and credential: --api-url/--api-key, else TESSERA_API_URL/TESSERA_API_KEY, else the
config file `tessera login` writes (<config dir>/tessera/config.json, or TESSERA_CONFIG), else
http://127.0.0.1:8000 with no credential.";

/// An error answer of the API, from either error style (`{"error": {...}}` or `{"detail": ...}`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiFailure {
    /// The HTTP status.
    pub status: u16,
    /// The API's code (`/api/v1` style), e.g. `QUOTA_EXCEEDED`.
    pub code: Option<String>,
    /// What the API said, in one line.
    pub message: String,
    /// Seconds to wait before retrying, when the API said so.
    pub retry_after: Option<u64>,
}

impl ApiFailure {
    /// Reads an error answer's body; any body (JSON of either style, text, nothing) gives a
    /// message.
    pub fn from_body(status: u16, body: &[u8], retry_after_header: Option<u64>) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|body| body.get("error"));
        let code = error
            .and_then(|error| error.get("code"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let message = match (error, parsed.as_ref().and_then(|body| body.get("detail"))) {
            (Some(error), _) => v1_message(error),
            (None, Some(detail)) => text_of(detail),
            (None, None) => {
                let text = String::from_utf8_lossy(body).trim().to_owned();
                if text.is_empty() {
                    format!("HTTP {status}")
                } else {
                    text
                }
            }
        };
        let retry_after = error
            .and_then(|error| error.get("retry_after"))
            .and_then(Value::as_u64)
            .or(retry_after_header);
        Self {
            status,
            code,
            message,
            retry_after,
        }
    }
}

/// `message: details` of a `/api/v1` error object.
fn v1_message(error: &Value) -> String {
    let message = error.get("message").map(text_of).unwrap_or_default();
    let details = match error.get("details") {
        None | Some(Value::Null) => String::new(),
        Some(Value::Object(details)) => match (details.get("field"), details.get("reason")) {
            (Some(field), Some(reason)) => format!("{}: {}", text_of(field), text_of(reason)),
            _ => details
                .iter()
                .map(|(name, value)| format!("{name} {}", text_of(value)))
                .collect::<Vec<_>>()
                .join(", "),
        },
        Some(other) => text_of(other),
    };
    match (message.is_empty(), details.is_empty()) {
        (_, true) => message,
        (true, false) => details,
        (false, false) => format!("{message}: {details}"),
    }
}

/// A JSON value as text: a string without its quotes, anything else as JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A client command's failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or its input cannot be used.
    #[error("{0}")]
    Usage(String),
    /// No credential for this API.
    #[error("no credential for {api_url}: run `tessera login` (or `tessera login --api-key`), or set TESSERA_API_KEY")]
    NoCredential {
        /// The API's base URL.
        api_url: String,
    },
    /// The API answered with an error.
    #[error("{}{}", .0.message, .0.code.as_deref().map(|code| format!(" ({code})")).unwrap_or_default())]
    Api(ApiFailure),
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// What was asked for.
        url: String,
        /// Why, with the causes.
        reason: String,
    },
    /// The server answered something this client cannot read.
    #[error("unexpected answer from {what}: {reason}")]
    BadAnswer {
        /// What was asked for.
        what: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A local file or folder could not be used.
    #[error("{context}: {source}")]
    Local {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The job ended without completing.
    #[error("job {job_id} {status}{}", .reason.as_deref().map(|reason| format!(": {reason}")).unwrap_or_default())]
    JobEnded {
        /// The job.
        job_id: String,
        /// `FAILED` or `CANCELLED`, in lowercase.
        status: String,
        /// The job's error, for a failed job.
        reason: Option<String>,
    },
    /// Ctrl-C while waiting; the job goes on.
    #[error("interrupted: job {job_id} is still running; follow it with `tessera jobs wait {job_id}`")]
    LeftRunning {
        /// The job.
        job_id: String,
    },
}

impl CliError {
    /// A local failure of `context`.
    pub fn local(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Local {
            context: context.into(),
            source,
        }
    }

    /// The exit status this failure ends the program with.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Usage(_) => ExitStatus::Usage,
            Self::NoCredential { .. } => ExitStatus::Auth,
            Self::Api(failure) => ExitStatus::of_http(failure.status),
            Self::Unreachable { .. } | Self::BadAnswer { .. } => ExitStatus::Unavailable,
            Self::Local { .. } => ExitStatus::Local,
            Self::JobEnded { .. } => ExitStatus::JobFailed,
            Self::LeftRunning { .. } => ExitStatus::Interrupted,
        }
    }

    /// The failure as `--json` prints it: `{"error": {"message", "exit_status", ...}}`.
    pub fn to_json(&self) -> Value {
        let mut error = json!({
            "message": self.to_string(),
            "exit_status": self.exit_status().code(),
        });
        match self {
            Self::Api(failure) => {
                error["http_status"] = json!(failure.status);
                error["code"] = json!(failure.code);
                if let Some(retry_after) = failure.retry_after {
                    error["retry_after"] = json!(retry_after);
                }
            }
            Self::JobEnded { job_id, status, .. } => {
                error["job_id"] = json!(job_id);
                error["status"] = json!(status);
            }
            Self::LeftRunning { job_id } => error["job_id"] = json!(job_id),
            _ => {}
        }
        json!({ "error": error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_the_documented_exit_statuses() {
        for (status, exit) in [
            (400, 2),
            (404, 2),
            (409, 2),
            (422, 2),
            (401, 3),
            (403, 3),
            (402, 4),
            (429, 4),
            (500, 5),
            (503, 5),
        ] {
            assert_eq!(ExitStatus::of_http(status).code(), exit, "HTTP {status}");
        }
    }

    #[test]
    fn both_error_styles_and_bare_bodies_give_a_message() {
        let v1 = br#"{"error":{"code":"QUOTA_EXCEEDED","message":"User out of tokens","details":"resets at 00:00 UTC","retry_after":7}}"#;
        let failure = ApiFailure::from_body(402, v1, None);
        assert_eq!(failure.code.as_deref(), Some("QUOTA_EXCEEDED"));
        assert_eq!(failure.message, "User out of tokens: resets at 00:00 UTC");
        assert_eq!(failure.retry_after, Some(7));

        let field = br#"{"error":{"code":"INVALID_PARAMS","message":"Invalid parameters","details":{"field":"limit","reason":"expected 1 to 100"}}}"#;
        assert_eq!(
            ApiFailure::from_body(400, field, None).message,
            "Invalid parameters: limit: expected 1 to 100"
        );
        let auth = br#"{"detail":"invalid email or password"}"#;
        assert_eq!(
            ApiFailure::from_body(401, auth, None).message,
            "invalid email or password"
        );
        let conflict = br#"{"error":{"code":"CONFLICT","message":"the job is already CANCELLED","details":{"status":"CANCELLED"}}}"#;
        assert_eq!(
            ApiFailure::from_body(409, conflict, None).message,
            "the job is already CANCELLED: status CANCELLED"
        );
        assert_eq!(ApiFailure::from_body(502, b"", Some(3)).message, "HTTP 502");
        assert_eq!(ApiFailure::from_body(502, b"", Some(3)).retry_after, Some(3));
        assert_eq!(ApiFailure::from_body(500, b"\xff oops", None).message, "\u{fffd} oops");
    }
}
