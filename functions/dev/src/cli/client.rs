//! The HTTP client of a Tessera API: sends the credential, renews a session's access token
//! (before it expires, and once more on a 401), keeps the rotated tokens in the config file, and
//! turns every answer into JSON or a [`CliError`].

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::config_file::{ConfigFile, Credential, Session, Target};
use super::error::{ApiFailure, CliError};

/// How long a request may take (not an event stream, not a download).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An access token this close to its expiry is renewed first.
const EXPIRY_MARGIN_SECONDS: i64 = 30;

/// One request, kept so that it can be sent again after a session renewal.
#[derive(Debug, Clone)]
pub struct Call {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
    timeout: Option<Duration>,
}

impl Call {
    /// A request of `method` to `path` (below the API's base URL).
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
            timeout: Some(REQUEST_TIMEOUT),
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// `POST path` with a JSON body.
    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::POST, path).json(body)
    }

    /// `DELETE path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// With a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// With a query parameter, when `value` is given.
    pub fn query(mut self, name: &str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.query.push((name.to_owned(), value.to_string()));
        }
        self
    }

    /// With a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Without a time limit (an event stream).
    pub fn without_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }
}

/// A client of one API with one credential.
pub struct ApiClient {
    api_url: String,
    http: reqwest::Client,
    credential: Credential,
    /// Where a renewed session is kept (`None`: nowhere).
    config_path: Option<PathBuf>,
}

impl ApiClient {
    /// A client of `target`; renewed session tokens are written to `config_path`.
    pub fn new(target: Target, config_path: Option<PathBuf>) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("tessera-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CliError::local("starting the HTTP client", std::io::Error::other(error)))?;
        Ok(Self {
            api_url: target.api_url,
            http,
            credential: target.credential,
            config_path,
        })
    }

    /// The API's base URL.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The credential in use.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Sends `call` and answers its JSON body (`null` for an empty one), or the API's error.
    pub async fn json(&mut self, call: Call) -> Result<Value, CliError> {
        let what = format!("{} {}", call.method, call.path);
        let response = self.send(call).await?;
        read_json(response, &what).await
    }

    /// Sends `call` and answers the response once its status says success (the body unread).
    pub async fn send(&mut self, call: Call) -> Result<reqwest::Response, CliError> {
        if matches!(&self.credential, Credential::None) && !is_public(&call.path) {
            return Err(CliError::NoCredential {
                api_url: self.api_url.clone(),
            });
        }
        let expiring = match &self.credential {
            Credential::Session(session) => session.access_expires_at - EXPIRY_MARGIN_SECONDS <= now_unix(),
            _ => false,
        };
        if expiring {
            self.renew_session().await?;
        }
        let response = self.send_once(&call).await?;
        if response.status() == StatusCode::UNAUTHORIZED && matches!(self.credential, Credential::Session(_)) {
            self.renew_session().await?;
            return checked(self.send_once(&call).await?).await;
        }
        checked(response).await
    }

    /// Downloads `url` (a signed URL: no credential is sent) and answers the response.
    pub async fn download(&self, url: &str) -> Result<reqwest::Response, CliError> {
        let absolute = if url.starts_with('/') {
            format!("{}{url}", self.api_url)
        } else {
            url.to_owned()
        };
        let response = self
            .http
            .get(&absolute)
            .send()
            .await
            .map_err(|error| unreachable(&absolute, &error))?;
        checked(response).await
    }

    async fn send_once(&self, call: &Call) -> Result<reqwest::Response, CliError> {
        let url = format!("{}{}", self.api_url, call.path);
        let mut request = self.http.request(call.method.clone(), &url).query(&call.query);
        if let Some(timeout) = call.timeout {
            request = request.timeout(timeout);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        match &self.credential {
            Credential::None => {}
            Credential::ApiKey(key) => request = request.bearer_auth(key),
            Credential::Session(session) => request = request.bearer_auth(&session.access_token),
        }
        request.send().await.map_err(|error| unreachable(&url, &error))
    }

    /// Trades the session's refresh token for a new pair and keeps it (refresh tokens are
    /// single use, so the new one is written before anything else happens).
    async fn renew_session(&mut self) -> Result<(), CliError> {
        let Credential::Session(session) = &self.credential else {
            return Ok(());
        };
        let url = format!("{}/api/auth/refresh", self.api_url);
        let response = self
            .http
            .post(&url)
            .timeout(REQUEST_TIMEOUT)
            .json(&json!({ "refresh_token": session.refresh_token }))
            .send()
            .await
            .map_err(|error| unreachable(&url, &error))?;
        let pair = match checked(response).await {
            Ok(response) => read_json(response, "POST /api/auth/refresh").await?,
            Err(CliError::Api(failure)) if failure.status == 401 => {
                return Err(CliError::Api(ApiFailure {
                    message: "the session has ended: run `tessera login` again".into(),
                    ..failure
                }));
            }
            Err(error) => return Err(error),
        };
        let session = session_from(&pair, "POST /api/auth/refresh")?;
        self.credential = Credential::Session(session.clone());
        if let Some(path) = &self.config_path {
            let mut file = ConfigFile::load(path)?;
            file.session = Some(session);
            file.save(path)?;
        }
        Ok(())
    }
}

/// Routes that take no credential.
fn is_public(path: &str) -> bool {
    matches!(path, "/api/auth/login" | "/api/auth/refresh" | "/api/auth/signup")
}

/// A session from a token pair (`access_token`, `refresh_token`, `expires_in`).
pub fn session_from(pair: &Value, what: &str) -> Result<Session, CliError> {
    let text = |field: &str| {
        pair.get(field)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| CliError::BadAnswer {
                what: what.to_owned(),
                reason: format!("no {field}"),
            })
    };
    let expires_in = pair.get("expires_in").and_then(Value::as_i64).unwrap_or(0);
    Ok(Session {
        refresh_token: text("refresh_token")?,
        access_token: text("access_token")?,
        access_expires_at: now_unix().saturating_add(expires_in),
    })
}

/// Now, in unix seconds.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// The response when its status is a success; else the API's error, read from its body.
async fn checked(response: reqwest::Response) -> Result<reqwest::Response, CliError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok());
    let body = response.bytes().await.unwrap_or_default();
    Err(CliError::Api(ApiFailure::from_body(
        status.as_u16(),
        &body,
        retry_after,
    )))
}

/// The body as JSON; an empty body is `null`.
async fn read_json(response: reqwest::Response, what: &str) -> Result<Value, CliError> {
    let bad = |reason: String| CliError::BadAnswer {
        what: what.to_owned(),
        reason,
    };
    let body = response.bytes().await.map_err(|error| bad(describe(&error)))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|error| bad(format!("not JSON ({error})")))
}

/// A transport failure.
fn unreachable(url: &str, error: &reqwest::Error) -> CliError {
    CliError::Unreachable {
        url: url.to_owned(),
        reason: describe(error),
    }
}

/// An error with its causes, `outer: inner: innermost`.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
