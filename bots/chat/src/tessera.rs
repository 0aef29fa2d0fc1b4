//! A chat bot's client of Tessera's internal API (service key): create a job for a chat user, and
//! ask about their usage, active jobs, one job, or cancel one. Errors keep the API's code and
//! message so that the chat can say what went wrong in plain words.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

/// An answer that was not a success: the API's error object, or why there was none.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiFailure {
    /// The HTTP status (0 when the API could not be reached).
    pub status: u16,
    /// E.g. `QUOTA_EXCEEDED`, or `UNREACHABLE`.
    pub code: String,
    /// One sentence.
    pub message: String,
    /// The field at fault or the limit, as text.
    pub details: Option<String>,
}

/// A job the API accepted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Created {
    /// Its id.
    pub job_id: String,
    /// Jobs ahead of it, plus one.
    pub queue_position: u64,
    /// Seconds until it is done, roughly.
    pub estimated_time_seconds: u64,
    /// Tokens left today after it (on a replayed answer, when the retry came); absent from an
    /// API that does not say.
    #[serde(default)]
    pub tokens_remaining_today: Option<f64>,
    /// Whether this answer replays an earlier request with the same idempotency key.
    #[serde(skip)]
    pub replayed: bool,
}

/// A job a bot asks for on behalf of a chat user.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// `telegram` or `discord`.
    pub frontend: &'a str,
    /// The bot's `bot_id`.
    pub bot_id: &'a str,
    /// The chat user, e.g. `discord:123`.
    pub user_ref: &'a str,
    /// The chat server it came from (`discord:<guild id>`), whose settings apply.
    pub guild: Option<&'a str>,
    /// Where to reply.
    pub reply_context: Value,
    /// The job's `params`.
    pub params: Value,
}

/// The internal API, as this bot uses it.
#[derive(Debug, Clone)]
pub struct TesseraApi {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl TesseraApi {
    /// A client of the API at `base` with `service_key`.
    pub fn new(base: &str, service_key: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a plain HTTP client builds");
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: service_key.to_owned(),
        }
    }

    /// `POST /api/internal/jobs` for `job`, idempotent by `idempotency_key`.
    pub async fn create_job(&self, job: NewJob<'_>, idempotency_key: &str) -> Result<Created, ApiFailure> {
        let mut body = json!({
            "frontend": job.frontend,
            "bot_id": job.bot_id,
            "capability": "image",
            "user_ref": job.user_ref,
            "reply_context": job.reply_context,
            "params": job.params,
        });
        if let Some(guild) = job.guild {
            body["guild"] = json!(guild);
        }
        let request = self
            .http
            .post(format!("{}/api/internal/jobs", self.base))
            .bearer_auth(&self.key)
            .header("Idempotency-Key", idempotency_key)
            .json(&body);
        let response = request.send().await.map_err(unreachable)?;
        let replayed = response.headers().contains_key("idempotent-replayed");
        let mut created: Created = answer(response).await?;
        created.replayed = replayed;
        Ok(created)
    }

    /// The chat user's plan and today's tokens.
    pub async fn usage(&self, user_ref: &str) -> Result<Value, ApiFailure> {
        self.get(&format!("/api/internal/chat-users/{}/usage", path(user_ref)))
            .await
    }

    /// The chat user's queued and running jobs, newest first.
    pub async fn active_jobs(&self, user_ref: &str) -> Result<Vec<Value>, ApiFailure> {
        let body = self
            .get(&format!("/api/internal/chat-users/{}/jobs", path(user_ref)))
            .await?;
        Ok(body["jobs"].as_array().cloned().unwrap_or_default())
    }

    /// One of the chat user's jobs, with the request it was made from.
    pub async fn job(&self, user_ref: &str, job_id: &str) -> Result<Value, ApiFailure> {
        self.get(&format!(
            "/api/internal/chat-users/{}/jobs/{}",
            path(user_ref),
            path(job_id)
        ))
        .await
    }

    /// Cancels one of the chat user's jobs.
    pub async fn cancel(&self, user_ref: &str, job_id: &str) -> Result<Value, ApiFailure> {
        let url = format!(
            "{}/api/internal/chat-users/{}/jobs/{}",
            self.base,
            path(user_ref),
            path(job_id)
        );
        let response = self
            .http
            .delete(url)
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(unreachable)?;
        answer(response).await
    }

    /// A chat server's settings (`max_steps`, `allowed_models`, `daily_jobs_per_user`).
    pub async fn guild_settings(&self, guild: &str) -> Result<Value, ApiFailure> {
        self.get(&format!("/api/internal/guilds/{}/settings", path(guild)))
            .await
    }

    /// Replaces a chat server's settings.
    pub async fn save_guild_settings(&self, guild: &str, settings: &Value) -> Result<Value, ApiFailure> {
        let url = format!("{}/api/internal/guilds/{}/settings", self.base, path(guild));
        let response = self
            .http
            .put(url)
            .bearer_auth(&self.key)
            .json(settings)
            .send()
            .await
            .map_err(unreachable)?;
        answer(response).await
    }

    /// The models a chat user may be offered.
    pub async fn models(&self) -> Result<Vec<Value>, ApiFailure> {
        let body = self.get("/api/internal/models").await?;
        Ok(body["models"].as_array().cloned().unwrap_or_default())
    }

    /// Downloads an artifact from its signed URL.
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, ApiFailure> {
        let response = self.http.get(url).send().await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(ApiFailure {
                status: response.status().as_u16(),
                code: "DOWNLOAD_FAILED".into(),
                message: format!("the artifact answered {}", response.status()),
                details: None,
            });
        }
        Ok(response.bytes().await.map_err(unreachable)?.to_vec())
    }

    /// An API failure in plain words, with the tokens left when it is about the quota.
    pub async fn failure_text(&self, user_ref: &str, failure: &ApiFailure) -> String {
        let tokens_left = match failure.code.as_str() {
            "QUOTA_EXCEEDED" => self
                .usage(user_ref)
                .await
                .ok()
                .and_then(|usage| usage["tokens_remaining_today"].as_f64()),
            _ => None,
        };
        let quota = crate::text::QuotaState {
            tokens_left,
            now_unix: crate::text::now_unix(),
        };
        crate::text::error_text(&failure.code, &failure.message, failure.details.as_deref(), &quota)
    }

    async fn get(&self, route: &str) -> Result<Value, ApiFailure> {
        let response = self
            .http
            .get(format!("{}{route}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(unreachable)?;
        answer(response).await
    }
}

/// A path segment, percent-encoded where it must be (`telegram:123` stays readable).
fn path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn answer<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, ApiFailure> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return serde_json::from_value(body).map_err(|error| ApiFailure {
            status: status.as_u16(),
            code: "BAD_ANSWER".into(),
            message: error.to_string(),
            details: None,
        });
    }
    let error = &body["error"];
    let details = match &error["details"] {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Object(fields) => fields.get("reason").and_then(Value::as_str).map(|reason| {
            match fields.get("field").and_then(Value::as_str) {
                Some(field) => format!("{field} {reason}"),
                None => reason.to_owned(),
            }
        }),
        other => Some(other.to_string()),
    };
    Err(ApiFailure {
        status: status.as_u16(),
        code: error["code"].as_str().unwrap_or("HTTP_ERROR").to_owned(),
        message: error["message"].as_str().unwrap_or(status.as_str()).to_owned(),
        details,
    })
}

fn unreachable(error: reqwest::Error) -> ApiFailure {
    ApiFailure {
        status: 0,
        code: "UNREACHABLE".into(),
        message: format!("Tessera did not answer: {error}"),
        details: None,
    }
}
