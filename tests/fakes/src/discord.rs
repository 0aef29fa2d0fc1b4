//! A fake Discord REST API: a loopback HTTP server that speaks Discord's HTTP API v10 wire
//! protocol (<https://discord.com/developers/docs>) well enough for a bot built on serenity 0.12's
//! `Http` to run against it. Point serenity at it with
//! `HttpBuilder::new(token).proxy(fake.base_url()).ratelimiter_disabled(true)
//! .application_id(fake.application_id().into()).build()`: serenity builds every URL as
//! `https://discord.com/api/v10/...` and, with a proxy, replaces `https://discord.com` by the
//! proxy (trailing slashes trimmed), so requests arrive here as `/api/v10/...`. The rate limiter
//! must be disabled: serenity's rate limiter sends straight to discord.com, ignoring the proxy.
//!
//! Routes (all under `/api/v10`; bodies are JSON, or `multipart/form-data` with a `payload_json`
//! part and file parts `files[n]`, as Discord takes them):
//!
//! - interaction tokens, no `Authorization` needed (as on Discord):
//!   `POST /interactions/{interaction_id}/{token}/callback` (`204 No Content`, or the
//!   interaction callback response with `?with_response=true`);
//!   `GET|PATCH|DELETE /webhooks/{application_id}/{token}/messages/@original`;
//!   `POST /webhooks/{application_id}/{token}` (follow-up);
//!   `GET|PATCH|DELETE /webhooks/{application_id}/{token}/messages/{message_id}`.
//! - bot token (`Authorization: Bot <token>`, else `401 {"message": "401: Unauthorized", "code":
//!   0}`): `POST|GET /channels/{channel_id}/messages`,
//!   `GET|PATCH|DELETE /channels/{channel_id}/messages/{message_id}` (also non-ephemeral
//!   interaction responses and follow-ups, which are channel messages on Discord too),
//!   `POST /channels/{channel_id}/typing`, `PUT|GET|POST /applications/{application_id}/commands`,
//!   `GET|DELETE /applications/{application_id}/commands/{command_id}` and the same under
//!   `/applications/{application_id}/guilds/{guild_id}/commands`, `GET /users/@me`,
//!   `GET /applications/@me` and `GET /oauth2/applications/@me`.
//!
//! Errors are Discord's `{"message": "...", "code": N}` with its HTTP status: `404 Unknown
//! Message` (10008, also for `@original` before any callback), `404 Unknown Webhook` (10015),
//! `404 Unknown interaction` (10062, a callback on an expired token), `400 Interaction has already
//! been acknowledged.` (40060), `401 Invalid Webhook Token` (50027, any webhook call with a token
//! whose 15 minutes since the callback are over, or after [`FakeDiscord::expire_interaction_tokens`]),
//! `400 Cannot send an empty message` (50006), `400 Invalid Form Body` (50035, with the `errors`
//! tree), `400 The request body contains invalid JSON.` (50109), `403 Missing Access` (50001, another
//! application's commands), `404: Not Found` and `405: Method Not Allowed` (code 0).
//!
//! Messages are full Message objects (string snowflakes counting up from 1300000000000000000,
//! `author`, `content`, `embeds` with `type: "rich"` and `attachment://<name>` resolved to the
//! upload's CDN URL, `components`, `attachments` with CDN URLs, sizes, content types and image
//! sizes, `mentions` parsed from `<@id>` under `allowed_mentions`, RFC 3339 timestamps, ...).
//! Every request is recorded ([`DiscordCall`], with the uploaded files' bytes), including the
//! failed ones.

use std::collections::HashMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The channel that interaction responses and follow-ups are in unless a test named one with
/// [`FakeDiscord::set_interaction_channel`] (the fake never sees the interaction itself).
pub const DEFAULT_INTERACTION_CHANNEL_ID: u64 = 1_250_000_000_000_000_001;

/// The first snowflake the fake hands out (messages, attachments, commands, versions).
const FIRST_SNOWFLAKE: u64 = 1_300_000_000_000_000_000;

/// How long an interaction token works after the callback.
const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The largest request body accepted.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Every route lives under this prefix.
const API_PREFIX: &str = "/api/v10";

/// The bot user's `username`.
const BOT_USERNAME: &str = "tessera-test-bot";

/// The bot user's `global_name`.
const BOT_GLOBAL_NAME: &str = "Tessera Test Bot";

/// The application's `name`.
const APPLICATION_NAME: &str = "Tessera Test";

/// The application owner's user id.
const OWNER_ID: u64 = 1_100_000_000_000_000_001;

/// The longest message `content` Discord accepts, in characters.
const MAX_CONTENT: usize = 2000;

/// The most embeds in one message.
const MAX_EMBEDS: usize = 10;

/// Message flag `SUPPRESS_EMBEDS`.
const SUPPRESS_EMBEDS: u64 = 1 << 2;

/// Message flag `EPHEMERAL`.
const EPHEMERAL: u64 = 1 << 6;

/// Message flag `LOADING` (a deferred interaction response).
const LOADING: u64 = 1 << 7;

/// Message flag `SUPPRESS_NOTIFICATIONS`.
const SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;

/// Message flag `IS_COMPONENTS_V2`.
const IS_COMPONENTS_V2: u64 = 1 << 15;

/// One request the fake answered, in arrival order (failed ones included).
#[derive(Debug, Clone)]
pub struct DiscordCall {
    /// The HTTP method, upper case (`POST`).
    pub method: String,
    /// The request path without the query string (`/api/v10/channels/1/messages`).
    pub path: String,
    /// The JSON body; for `multipart/form-data` the `payload_json` part parsed (with any other
    /// text parts added as strings); `Value::Null` when there was no body.
    pub body: Value,
    /// The file parts of a `multipart/form-data` request, in order.
    pub files: Vec<DiscordFile>,
    /// The `Authorization` header as sent (`Bot <token>`), if any.
    pub authorization: Option<String>,
    /// The HTTP status the fake answered (`204`, `401`, ...).
    pub status: u16,
    /// When the request arrived.
    pub at: SystemTime,
}

/// One file part of a `multipart/form-data` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordFile {
    /// The part's name (`files[0]`).
    pub field: String,
    /// The file name the client gave the part, if any (an empty name counts as none).
    pub filename: Option<String>,
    /// The file's exact bytes.
    pub bytes: Vec<u8>,
}

/// An uploaded file with the content type its part declared.
#[derive(Debug, Clone)]
struct Upload {
    /// The file as recorded.
    file: DiscordFile,
    /// The part's `Content-Type`, if any.
    content_type: Option<String>,
}

/// What the fake knows about one interaction token.
#[derive(Debug, Clone)]
struct Interaction {
    /// When the callback arrived (the token works for 15 minutes from then).
    acknowledged: Instant,
    /// Set by [`FakeDiscord::expire_interaction_tokens`].
    expired: bool,
    /// The channel its messages are in.
    channel_id: u64,
    /// Whether the test named the channel ([`FakeDiscord::set_interaction_channel`]) or a channel
    /// route found one of its messages there; otherwise `channel_id` is a placeholder.
    channel_known: bool,
    /// The original response, while it exists.
    original: Option<Value>,
    /// The live follow-up messages, in creation order.
    followups: Vec<Value>,
}

impl Interaction {
    /// Whether the token no longer works.
    fn is_expired(&self, now: Instant) -> bool {
        self.expired || now.duration_since(self.acknowledged) >= TOKEN_LIFETIME
    }
}

/// The snowflake counter.
#[derive(Debug)]
struct Ids(u64);

impl Ids {
    /// Hands out the next snowflake.
    fn next(&mut self) -> u64 {
        let id = self.0;
        self.0 += 1;
        id
    }
}

/// The mutable state the server and the test share.
#[derive(Debug)]
struct Inner {
    /// Every recorded call.
    calls: Vec<DiscordCall>,
    /// The snowflake counter.
    ids: Ids,
    /// Interactions by token.
    interactions: HashMap<String, Interaction>,
    /// Channels named by [`FakeDiscord::set_interaction_channel`] by token.
    interaction_channels: HashMap<String, u64>,
    /// The live messages of each channel, in creation order.
    channels: HashMap<u64, Vec<Value>>,
    /// The global commands.
    global_commands: Vec<Value>,
    /// The commands of each guild.
    guild_commands: HashMap<u64, Vec<Value>>,
}

/// The server's state: the fixed identity and the shared state.
#[derive(Debug)]
struct Shared {
    /// The only `Authorization` header accepted on bot routes (`Bot <token>`).
    authorization: String,
    /// The application id.
    application_id: u64,
    /// The bot user's id.
    bot_user_id: u64,
    /// The mutable state.
    inner: Mutex<Inner>,
    /// How many calls have been recorded; bumped after each one.
    calls_seen: watch::Sender<usize>,
}

impl Shared {
    /// Locks the state (a panic elsewhere while holding it does not hide it).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one answered call and wakes waiters.
    fn record(&self, call: DiscordCall) {
        self.lock().calls.push(call);
        self.calls_seen.send_modify(|seen| *seen += 1);
    }

    /// The bot as a User object (the author of channel messages).
    fn bot_user(&self) -> Value {
        json!({
            "id": self.bot_user_id.to_string(),
            "username": BOT_USERNAME,
            "discriminator": "0",
            "global_name": BOT_GLOBAL_NAME,
            "avatar": null,
            "bot": true,
            "public_flags": 0,
        })
    }

    /// The author of interaction responses and follow-ups: the application's user.
    fn webhook_author(&self) -> Value {
        json!({
            "id": self.application_id.to_string(),
            "username": BOT_USERNAME,
            "discriminator": "0",
            "global_name": BOT_GLOBAL_NAME,
            "avatar": null,
            "bot": true,
            "public_flags": 0,
        })
    }

    /// A mentioned user (the bot, or a made-up `user<id>`).
    fn user(&self, id: u64) -> Value {
        if id == self.bot_user_id {
            return self.bot_user();
        }
        json!({
            "id": id.to_string(),
            "username": format!("user{id}"),
            "discriminator": "0",
            "global_name": null,
            "avatar": null,
            "public_flags": 0,
        })
    }

    /// The application's `verify_key`: 64 hex digits derived from the application id (not the
    /// public half of a key the fake signs with; the fake signs nothing).
    fn verify_key(&self) -> String {
        hex::encode(Sha256::digest(format!("tessera-fake-discord-{}", self.application_id)))
    }

    /// The Application object (`GET /applications/@me`).
    fn application(&self) -> Value {
        json!({
            "id": self.application_id.to_string(),
            "name": APPLICATION_NAME,
            "icon": null,
            "description": "",
            "summary": "",
            "type": null,
            "hook": true,
            "bot_public": true,
            "bot_require_code_grant": false,
            "verify_key": self.verify_key(),
            "flags": 0,
            "owner": {
                "id": OWNER_ID.to_string(),
                "username": "tessera-owner",
                "discriminator": "0",
                "global_name": null,
                "avatar": null,
                "public_flags": 0,
                "flags": 0,
            },
            "team": null,
            "bot": self.bot_user(),
            "redirect_uris": [],
            "interactions_endpoint_url": null,
            "approximate_guild_count": 1,
        })
    }
}

/// A loopback Discord REST API on `127.0.0.1:<random port>` for one bot token and application.
/// Give [`FakeDiscord::base_url`] to serenity's `HttpBuilder::proxy` (with the rate limiter
/// disabled). The server stops when this value is dropped.
#[derive(Debug)]
pub struct FakeDiscord {
    /// Where the server listens.
    address: SocketAddr,
    /// The state shared with the server task.
    shared: Arc<Shared>,
    /// The background server task, aborted on drop.
    task: JoinHandle<()>,
}

impl FakeDiscord {
    /// Binds `127.0.0.1:0` and serves the API in a background tokio task (call inside a tokio
    /// runtime). Bot routes accept only `Authorization: Bot <bot_token>` (a `Bot ` prefix on
    /// `bot_token` itself is ignored). The bot user's id is what a real token's first segment
    /// encodes (base64 of the user id), or `application_id` when it encodes none.
    pub async fn start(bot_token: &str, application_id: u64) -> FakeDiscord {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the fake Discord API to 127.0.0.1:0");
        let address = listener
            .local_addr()
            .expect("read the fake Discord API's bound address");
        let token = bot_token.trim();
        let token = token.strip_prefix("Bot ").unwrap_or(token);
        let shared = Arc::new(Shared {
            authorization: format!("Bot {token}"),
            application_id,
            bot_user_id: user_id_from_token(token).unwrap_or(application_id),
            inner: Mutex::new(Inner {
                calls: Vec::new(),
                ids: Ids(FIRST_SNOWFLAKE),
                interactions: HashMap::new(),
                interaction_channels: HashMap::new(),
                channels: HashMap::new(),
                global_commands: Vec::new(),
                guild_commands: HashMap::new(),
            }),
            calls_seen: watch::Sender::new(0),
        });
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve the fake Discord API");
        });
        FakeDiscord { address, shared, task }
    }

    /// `http://127.0.0.1:<port>`, what serenity's `HttpBuilder::proxy` takes (serenity turns
    /// `https://discord.com/api/v10/...` into `<this>/api/v10/...`). Raw clients call
    /// `<this>/api/v10/...` themselves.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.address.port())
    }

    /// The application id given to [`FakeDiscord::start`].
    pub fn application_id(&self) -> u64 {
        self.shared.application_id
    }

    /// The bot user's id (`GET /users/@me`, the author of channel messages).
    pub fn bot_user_id(&self) -> u64 {
        self.shared.bot_user_id
    }

    /// Every call answered so far, in arrival order.
    pub fn calls(&self) -> Vec<DiscordCall> {
        self.shared.lock().calls.clone()
    }

    /// The calls whose method is `method` (case-insensitive; an empty `method` matches any) and
    /// whose path contains `path_contains`, in arrival order.
    pub fn calls_to(&self, method: &str, path_contains: &str) -> Vec<DiscordCall> {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|call| call_matches(call, method, path_contains))
            .cloned()
            .collect()
    }

    /// Waits until at least `count` calls match as in [`FakeDiscord::calls_to`] and returns them
    /// all (it may be more than `count`); panics listing every call seen when `timeout` passes
    /// first. A call is recorded after the fake applied it, so the state it changed is visible.
    pub async fn wait_for(
        &self,
        method: &str,
        path_contains: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<DiscordCall> {
        let mut seen = self.shared.calls_seen.subscribe();
        let enough = |_: &usize| self.calls_to(method, path_contains).len() >= count;
        match tokio::time::timeout(timeout, seen.wait_for(enough)).await {
            Ok(Ok(_)) => self.calls_to(method, path_contains),
            Ok(Err(_)) => unreachable!("the fake holds the call counter's sender"),
            Err(_) => {
                let summary: Vec<String> = self
                    .calls()
                    .iter()
                    .map(|call| format!("{} {} -> {} {}", call.method, call.path, call.status, call.body))
                    .collect();
                panic!(
                    "fake Discord on port {}: waited {timeout:?} for {count} call(s) of {method} *{path_contains}*, got \
                     {}; all calls: {summary:#?}",
                    self.address.port(),
                    self.calls_to(method, path_contains).len()
                )
            }
        }
    }

    /// The current original response of the interaction with `token` as a Message object;
    /// `None` before the callback, for callback types without a message (1, 8, 9, ...) and after
    /// it was deleted. A deferred response (type 5) is `"content": ""` with the `LOADING` flag
    /// (128) until edited.
    pub fn original_response(&self, token: &str) -> Option<Value> {
        self.shared
            .lock()
            .interactions
            .get(token)
            .and_then(|interaction| interaction.original.clone())
    }

    /// The live (not deleted) follow-up messages of the interaction with `token`, oldest first.
    pub fn followups(&self, token: &str) -> Vec<Value> {
        self.shared
            .lock()
            .interactions
            .get(token)
            .map(|interaction| interaction.followups.clone())
            .unwrap_or_default()
    }

    /// The live (not deleted) messages the bot posted in `channel_id` through the channel routes,
    /// oldest first, as Message objects (edits applied).
    pub fn channel_messages(&self, channel_id: u64) -> Vec<Value> {
        self.shared
            .lock()
            .channels
            .get(&channel_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The registered commands: global ones for `None`, else those of the guild.
    pub fn commands(&self, guild_id: Option<u64>) -> Vec<Value> {
        let inner = self.shared.lock();
        match guild_id {
            None => inner.global_commands.clone(),
            Some(guild_id) => inner.guild_commands.get(&guild_id).cloned().unwrap_or_default(),
        }
    }

    /// Puts the messages of the interaction with `token` in `channel_id` (their `channel_id`;
    /// the fake never sees the interaction itself), before or after the callback. Otherwise they
    /// are in [`DEFAULT_INTERACTION_CHANNEL_ID`] until a channel route
    /// (`GET|PATCH|DELETE /channels/{channel_id}/messages/{message_id}`) addresses one of them,
    /// which moves them to that channel.
    pub fn set_interaction_channel(&self, token: &str, channel_id: u64) {
        let mut inner = self.shared.lock();
        inner.interaction_channels.insert(token.to_owned(), channel_id);
        if let Some(interaction) = inner.interactions.get_mut(token) {
            move_interaction(interaction, channel_id);
        }
    }

    /// Expires every interaction token the fake knows now, as if 15 minutes had passed: later
    /// webhook calls with them answer `401 {"message": "Invalid Webhook Token", "code": 50027}`
    /// (and a callback `404 Unknown interaction`). Tokens first used later are not affected.
    pub fn expire_interaction_tokens(&self) {
        for interaction in self.shared.lock().interactions.values_mut() {
            interaction.expired = true;
        }
    }
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `call` matches a [`FakeDiscord::calls_to`] filter.
fn call_matches(call: &DiscordCall, method: &str, path_contains: &str) -> bool {
    (method.is_empty() || call.method.eq_ignore_ascii_case(method)) && call.path.contains(path_contains)
}

/// The user id a real bot token's first segment encodes (base64 of the decimal id).
fn user_id_from_token(token: &str) -> Option<u64> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let first = token.split('.').next()?;
    [STANDARD_NO_PAD, STANDARD, URL_SAFE_NO_PAD, URL_SAFE]
        .iter()
        .find_map(|engine| engine.decode(first).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|text| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|id| *id > 0)
}

/// A failed call: the HTTP status and Discord's JSON error body.
#[derive(Debug)]
struct Failure {
    /// The HTTP status.
    status: StatusCode,
    /// `{"message", "code"}` (and `errors` for form errors).
    body: Value,
}

impl Failure {
    /// `{"message": message, "code": code}` with `status`.
    fn new(status: StatusCode, message: &str, code: u64) -> Failure {
        Failure {
            status,
            body: json!({"message": message, "code": code}),
        }
    }

    /// `401 Unauthorized` for a missing or wrong bot token.
    fn unauthorized() -> Failure {
        Failure::new(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0)
    }

    /// `404` for a route Discord does not have.
    fn no_route() -> Failure {
        Failure::new(StatusCode::NOT_FOUND, "404: Not Found", 0)
    }

    /// `405` for a known route with another method.
    fn method_not_allowed() -> Failure {
        Failure::new(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed", 0)
    }

    /// `404 Unknown Message` (10008).
    fn unknown_message() -> Failure {
        Failure::new(StatusCode::NOT_FOUND, "Unknown Message", 10008)
    }

    /// `404 Unknown Webhook` (10015).
    fn unknown_webhook() -> Failure {
        Failure::new(StatusCode::NOT_FOUND, "Unknown Webhook", 10015)
    }

    /// `404 Unknown interaction` (10062).
    fn unknown_interaction() -> Failure {
        Failure::new(StatusCode::NOT_FOUND, "Unknown interaction", 10062)
    }

    /// `404 Unknown application command` (10063).
    fn unknown_command() -> Failure {
        Failure::new(StatusCode::NOT_FOUND, "Unknown application command", 10063)
    }

    /// `400 Interaction has already been acknowledged.` (40060).
    fn already_acknowledged() -> Failure {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "Interaction has already been acknowledged.",
            40060,
        )
    }

    /// `401 Invalid Webhook Token` (50027): an expired interaction token.
    fn invalid_webhook_token() -> Failure {
        Failure::new(StatusCode::UNAUTHORIZED, "Invalid Webhook Token", 50027)
    }

    /// `403 Missing Access` (50001).
    fn missing_access() -> Failure {
        Failure::new(StatusCode::FORBIDDEN, "Missing Access", 50001)
    }

    /// `400 Cannot send an empty message` (50006).
    fn empty_message() -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, "Cannot send an empty message", 50006)
    }

    /// `400 The request body contains invalid JSON.` (50109).
    fn invalid_json() -> Failure {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "The request body contains invalid JSON.",
            50109,
        )
    }

    /// `400 Invalid Form Body` (50035) with one error at the dot-separated `path` (empty: the
    /// body itself), as Discord nests them: `{"errors": {"data": {"content": {"_errors":
    /// [{"code", "message"}]}}}}`.
    fn invalid_form(path: &str, code: &str, message: &str) -> Failure {
        let mut errors = json!({"_errors": [{"code": code, "message": message}]});
        for segment in path.rsplit('.').filter(|segment| !segment.is_empty()) {
            errors = json!({ segment: errors });
        }
        Failure {
            status: StatusCode::BAD_REQUEST,
            body: json!({"message": "Invalid Form Body", "code": 50035, "errors": errors}),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// A successful answer.
#[derive(Debug)]
enum Reply {
    /// A JSON body with a status.
    Json(StatusCode, Value),
    /// `204 No Content`.
    NoContent,
}

impl Reply {
    /// `200 OK` with `body`.
    fn ok(body: Value) -> Reply {
        Reply::Json(StatusCode::OK, body)
    }
}

/// What a route answers.
type Outcome = Result<Reply, Failure>;

/// One request, read.
#[derive(Debug)]
struct Incoming<'a> {
    /// The method.
    method: &'a Method,
    /// The query string, if any.
    query: Option<&'a str>,
    /// The `Authorization` header, if any.
    authorization: Option<&'a str>,
    /// The JSON body (or `payload_json`), `Null` when there was none.
    body: &'a Value,
    /// The uploaded files.
    uploads: &'a [Upload],
}

/// Answers every request: reads the body, routes it and records the call.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let at = SystemTime::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let (body, uploads, outcome) = match read_body(request).await {
        Ok((body, uploads)) => {
            let incoming = Incoming {
                method: &method,
                query: query.as_deref(),
                authorization: authorization.as_deref(),
                body: &body,
                uploads: &uploads,
            };
            let outcome = route(&shared, &path, &incoming);
            (body, uploads, outcome)
        }
        Err(failure) => (Value::Null, Vec::new(), Err(failure)),
    };
    let response = match outcome {
        Ok(Reply::Json(status, body)) => (status, axum::Json(body)).into_response(),
        Ok(Reply::NoContent) => StatusCode::NO_CONTENT.into_response(),
        Err(failure) => failure.into_response(),
    };
    shared.record(DiscordCall {
        method: method.as_str().to_owned(),
        path,
        body,
        files: uploads.into_iter().map(|upload| upload.file).collect(),
        authorization,
        status: response.status().as_u16(),
        at,
    });
    response
}

/// Reads a JSON or `multipart/form-data` body.
async fn read_body(request: Request) -> Result<(Value, Vec<Upload>), Failure> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let bad = || Failure::new(StatusCode::BAD_REQUEST, "400: Bad Request", 0);
        let mut multipart = Multipart::from_request(request, &()).await.map_err(|_| bad())?;
        let mut payload = None;
        let mut texts = Vec::new();
        let mut uploads = Vec::new();
        while let Some(field) = multipart.next_field().await.map_err(|_| bad())? {
            let name = field.name().unwrap_or_default().to_owned();
            let filename = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(str::to_owned);
            let bytes = field.bytes().await.map_err(|_| bad())?;
            if let Some(filename) = filename {
                uploads.push(Upload {
                    file: DiscordFile {
                        field: name,
                        filename: Some(filename).filter(|filename| !filename.is_empty()),
                        bytes: bytes.to_vec(),
                    },
                    content_type,
                });
            } else if name == "payload_json" {
                let parsed: Value = serde_json::from_slice(&bytes).map_err(|_| Failure::invalid_json())?;
                payload = Some(parsed);
            } else {
                texts.push((name, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
        let mut body = payload.unwrap_or_else(|| Value::Object(Map::new()));
        if let Value::Object(object) = &mut body {
            for (name, text) in texts {
                object.entry(name).or_insert(Value::String(text));
            }
        }
        Ok((body, uploads))
    } else {
        let bytes = axum::body::to_bytes(request.into_body(), BODY_LIMIT)
            .await
            .map_err(|_| Failure::new(StatusCode::PAYLOAD_TOO_LARGE, "413: Request Entity Too Large", 0))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((Value::Null, Vec::new()));
        }
        let body = serde_json::from_slice(&bytes).map_err(|_| Failure::invalid_json())?;
        Ok((body, Vec::new()))
    }
}

/// Parses a snowflake path segment, or answers Discord's form error for it.
fn snowflake(name: &str, text: &str) -> Result<u64, Failure> {
    text.parse::<u64>().map_err(|_| {
        Failure::invalid_form(
            name,
            "NUMBER_TYPE_COERCE",
            &format!("Value \"{text}\" is not snowflake."),
        )
    })
}

/// Routes a request to its handler.
fn route(shared: &Shared, path: &str, incoming: &Incoming<'_>) -> Outcome {
    let Some(rest) = path.strip_prefix(API_PREFIX).filter(|rest| rest.starts_with('/')) else {
        return Err(Failure::no_route());
    };
    let segments: Vec<&str> = rest.split('/').filter(|segment| !segment.is_empty()).collect();
    let method = incoming.method;
    match segments[..] {
        ["interactions", interaction_id, token, "callback"] => {
            only(method, &[Method::POST])?;
            interaction_callback(shared, interaction_id, token, incoming)
        }
        ["webhooks", application_id, token] => {
            only(method, &[Method::POST])?;
            create_followup(shared, application_id, token, incoming)
        }
        ["webhooks", application_id, token, "messages", "@original"] => {
            only(method, &[Method::GET, Method::PATCH, Method::DELETE])?;
            original_message(shared, application_id, token, incoming)
        }
        ["webhooks", application_id, token, "messages", message_id] => {
            only(method, &[Method::GET, Method::PATCH, Method::DELETE])?;
            followup_message(shared, application_id, token, message_id, incoming)
        }
        ["channels", channel_id, "messages"] => {
            only(method, &[Method::GET, Method::POST])?;
            authorize(shared, incoming)?;
            channel_messages(shared, snowflake("channel_id", channel_id)?, incoming)
        }
        ["channels", channel_id, "messages", message_id] => {
            only(method, &[Method::GET, Method::PATCH, Method::DELETE])?;
            authorize(shared, incoming)?;
            let channel_id = snowflake("channel_id", channel_id)?;
            let message_id = snowflake("message_id", message_id)?;
            channel_message(shared, channel_id, message_id, incoming)
        }
        ["channels", channel_id, "typing"] => {
            only(method, &[Method::POST])?;
            authorize(shared, incoming)?;
            snowflake("channel_id", channel_id)?;
            Ok(Reply::NoContent)
        }
        ["users", "@me"] => {
            only(method, &[Method::GET])?;
            authorize(shared, incoming)?;
            let mut user = shared.bot_user();
            if let Value::Object(object) = &mut user {
                for (key, value) in [
                    ("verified", json!(true)),
                    ("mfa_enabled", json!(false)),
                    ("flags", json!(0)),
                    ("locale", json!("en-US")),
                    ("email", Value::Null),
                    ("premium_type", json!(0)),
                    ("banner", Value::Null),
                    ("accent_color", Value::Null),
                    ("bio", json!("")),
                ] {
                    object.insert(key.to_owned(), value);
                }
            }
            Ok(Reply::ok(user))
        }
        ["applications", "@me"] | ["oauth2", "applications", "@me"] => {
            only(method, &[Method::GET])?;
            authorize(shared, incoming)?;
            Ok(Reply::ok(shared.application()))
        }
        ["applications", application_id, "commands"] => {
            only(method, &[Method::GET, Method::PUT, Method::POST])?;
            authorize(shared, incoming)?;
            own_application(shared, application_id)?;
            commands(shared, None, incoming)
        }
        ["applications", application_id, "commands", command_id] => {
            only(method, &[Method::GET, Method::DELETE])?;
            authorize(shared, incoming)?;
            own_application(shared, application_id)?;
            command(shared, None, snowflake("command_id", command_id)?, incoming)
        }
        ["applications", application_id, "guilds", guild_id, "commands"] => {
            only(method, &[Method::GET, Method::PUT, Method::POST])?;
            authorize(shared, incoming)?;
            own_application(shared, application_id)?;
            commands(shared, Some(snowflake("guild_id", guild_id)?), incoming)
        }
        [
            "applications",
            application_id,
            "guilds",
            guild_id,
            "commands",
            command_id,
        ] => {
            only(method, &[Method::GET, Method::DELETE])?;
            authorize(shared, incoming)?;
            own_application(shared, application_id)?;
            let guild_id = snowflake("guild_id", guild_id)?;
            command(shared, Some(guild_id), snowflake("command_id", command_id)?, incoming)
        }
        _ => Err(Failure::no_route()),
    }
}

/// `405` unless `method` is one of `allowed`.
fn only(method: &Method, allowed: &[Method]) -> Result<(), Failure> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(Failure::method_not_allowed())
    }
}

/// `401` unless the request carries the bot token.
fn authorize(shared: &Shared, incoming: &Incoming<'_>) -> Result<(), Failure> {
    if incoming.authorization.map(str::trim) == Some(shared.authorization.as_str()) {
        Ok(())
    } else {
        Err(Failure::unauthorized())
    }
}

/// `403 Missing Access` unless `application_id` is the fake's application.
fn own_application(shared: &Shared, application_id: &str) -> Result<(), Failure> {
    if snowflake("application_id", application_id)? == shared.application_id {
        Ok(())
    } else {
        Err(Failure::missing_access())
    }
}

/// The body as a JSON object (an absent body counts as `{}`), or a form error.
fn body_object<'a>(body: &'a Value, empty: &'a Map<String, Value>) -> Result<&'a Map<String, Value>, Failure> {
    match body {
        Value::Object(object) => Ok(object),
        Value::Null => Ok(empty),
        _ => Err(Failure::invalid_form(
            "",
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        )),
    }
}

/// Whether the query string has `name=true`.
fn query_flag(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .any(|(key, value)| key == name && value.eq_ignore_ascii_case("true"))
    })
}

/// `POST /interactions/{interaction_id}/{token}/callback`.
fn interaction_callback(shared: &Shared, interaction_id: &str, token: &str, incoming: &Incoming<'_>) -> Outcome {
    let interaction_id = snowflake("interaction_id", interaction_id)?;
    let now = Instant::now();
    let mut guard = shared.lock();
    let inner = &mut *guard;
    if let Some(known) = inner.interactions.get(token) {
        return Err(if known.is_expired(now) {
            Failure::unknown_interaction()
        } else {
            Failure::already_acknowledged()
        });
    }
    let empty = Map::new();
    let body = body_object(incoming.body, &empty)?;
    let Some(kind) = body.get("type") else {
        return Err(Failure::invalid_form(
            "type",
            "BASE_TYPE_REQUIRED",
            "This field is required",
        ));
    };
    let kind = kind
        .as_u64()
        .filter(|kind| [1, 4, 5, 6, 7, 8, 9, 10, 12].contains(kind))
        .ok_or_else(|| {
            Failure::invalid_form(
                "type",
                "BASE_TYPE_CHOICES",
                "Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}.",
            )
        })?;
    let data = match body.get("data") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(data)) => data,
        Some(_) => {
            return Err(Failure::invalid_form(
                "data",
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            ));
        }
    };
    let named_channel = inner.interaction_channels.get(token).copied();
    let channel_id = named_channel.unwrap_or(DEFAULT_INTERACTION_CHANNEL_ID);
    let original = match kind {
        4 | 7 => {
            let context = MessageContext::webhook(shared, channel_id);
            Some(new_message(
                shared,
                &mut inner.ids,
                &context,
                data,
                incoming.uploads,
                "data.",
            )?)
        }
        5 | 6 => {
            let ephemeral = data.get("flags").and_then(Value::as_u64).unwrap_or(0) & EPHEMERAL;
            let flags = if kind == 5 { ephemeral | LOADING } else { ephemeral };
            let context = MessageContext::webhook(shared, channel_id);
            let mut message = message_base(&mut inner.ids, &context);
            message.insert("flags".to_owned(), json!(flags));
            Some(Value::Object(message))
        }
        _ => None,
    };
    let reply = if query_flag(incoming.query, "with_response") {
        let mut resource = json!({"type": kind});
        if let Some(message) = &original {
            resource["message"] = message.clone();
        }
        let flags = original
            .as_ref()
            .and_then(|message| message.get("flags"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Reply::ok(json!({
            "interaction": {
                "id": interaction_id.to_string(),
                "type": 2,
                "activity_instance_id": null,
                "response_message_id": original.as_ref().and_then(|message| message.get("id")).cloned(),
                "response_message_loading": flags & LOADING != 0,
                "response_message_ephemeral": flags & EPHEMERAL != 0,
            },
            "resource": resource,
        }))
    } else {
        Reply::NoContent
    };
    inner.interactions.insert(
        token.to_owned(),
        Interaction {
            acknowledged: now,
            expired: false,
            channel_id,
            channel_known: named_channel.is_some(),
            original,
            followups: Vec::new(),
        },
    );
    Ok(reply)
}

/// Finds the live interaction behind a webhook route: `404 Unknown Webhook` for another
/// application, `missing` for an unknown token, `401 Invalid Webhook Token` for an expired one.
fn webhook_interaction<'a>(
    shared: &Shared,
    interactions: &'a mut HashMap<String, Interaction>,
    application_id: &str,
    token: &str,
    missing: fn() -> Failure,
) -> Result<&'a mut Interaction, Failure> {
    if snowflake("webhook_id", application_id)? != shared.application_id {
        return Err(Failure::unknown_webhook());
    }
    match interactions.get_mut(token) {
        None => Err(missing()),
        Some(interaction) if interaction.is_expired(Instant::now()) => Err(Failure::invalid_webhook_token()),
        Some(interaction) => Ok(interaction),
    }
}

/// `POST /webhooks/{application_id}/{token}`: a follow-up message.
fn create_followup(shared: &Shared, application_id: &str, token: &str, incoming: &Incoming<'_>) -> Outcome {
    let mut guard = shared.lock();
    let Inner { ids, interactions, .. } = &mut *guard;
    let interaction = webhook_interaction(shared, interactions, application_id, token, Failure::unknown_webhook)?;
    let empty = Map::new();
    let data = body_object(incoming.body, &empty)?;
    let context = MessageContext::webhook(shared, interaction.channel_id);
    let message = new_message(shared, ids, &context, data, incoming.uploads, "")?;
    interaction.followups.push(message.clone());
    Ok(Reply::ok(message))
}

/// `GET|PATCH|DELETE /webhooks/{application_id}/{token}/messages/@original`.
fn original_message(shared: &Shared, application_id: &str, token: &str, incoming: &Incoming<'_>) -> Outcome {
    let mut guard = shared.lock();
    let Inner { ids, interactions, .. } = &mut *guard;
    let interaction = webhook_interaction(shared, interactions, application_id, token, Failure::unknown_message)?;
    let Some(original) = &mut interaction.original else {
        return Err(Failure::unknown_message());
    };
    match *incoming.method {
        Method::PATCH => {
            let empty = Map::new();
            let data = body_object(incoming.body, &empty)?;
            *original = edit_message(shared, ids, original, data, incoming.uploads)?;
            Ok(Reply::ok(original.clone()))
        }
        Method::DELETE => {
            interaction.original = None;
            Ok(Reply::NoContent)
        }
        _ => Ok(Reply::ok(original.clone())),
    }
}

/// `GET|PATCH|DELETE /webhooks/{application_id}/{token}/messages/{message_id}`: a follow-up (or
/// the original response addressed by its id).
fn followup_message(
    shared: &Shared,
    application_id: &str,
    token: &str,
    message_id: &str,
    incoming: &Incoming<'_>,
) -> Outcome {
    let message_id = snowflake("message_id", message_id)?;
    let mut guard = shared.lock();
    let Inner { ids, interactions, .. } = &mut *guard;
    let interaction = webhook_interaction(shared, interactions, application_id, token, Failure::unknown_webhook)?;
    let id_text = message_id.to_string();
    let is_original = interaction
        .original
        .as_ref()
        .is_some_and(|original| original["id"] == id_text.as_str());
    let index = interaction
        .followups
        .iter()
        .position(|followup| followup["id"] == id_text.as_str());
    let slot = match (is_original, index) {
        (true, _) => interaction.original.as_mut(),
        (false, Some(index)) => interaction.followups.get_mut(index),
        (false, None) => None,
    };
    let Some(message) = slot else {
        return Err(Failure::unknown_message());
    };
    match *incoming.method {
        Method::PATCH => {
            let empty = Map::new();
            let data = body_object(incoming.body, &empty)?;
            *message = edit_message(shared, ids, message, data, incoming.uploads)?;
            Ok(Reply::ok(message.clone()))
        }
        Method::DELETE => {
            match index {
                Some(index) if !is_original => {
                    interaction.followups.remove(index);
                }
                _ => interaction.original = None,
            }
            Ok(Reply::NoContent)
        }
        _ => Ok(Reply::ok(message.clone())),
    }
}

/// `POST|GET /channels/{channel_id}/messages`.
fn channel_messages(shared: &Shared, channel_id: u64, incoming: &Incoming<'_>) -> Outcome {
    let mut guard = shared.lock();
    let Inner { ids, channels, .. } = &mut *guard;
    let messages = channels.entry(channel_id).or_default();
    if *incoming.method == Method::GET {
        let limit = incoming
            .query
            .and_then(|query| {
                url::form_urlencoded::parse(query.as_bytes())
                    .find(|(key, _)| key == "limit")
                    .and_then(|(_, value)| value.parse::<usize>().ok())
            })
            .unwrap_or(50)
            .clamp(1, 100);
        let newest_first: Vec<Value> = messages.iter().rev().take(limit).cloned().collect();
        return Ok(Reply::ok(Value::Array(newest_first)));
    }
    let empty = Map::new();
    let data = body_object(incoming.body, &empty)?;
    let context = MessageContext {
        channel_id,
        author: shared.bot_user(),
        webhook: None,
    };
    let mut message = new_message(shared, ids, &context, data, incoming.uploads, "")?;
    if let Some(reference) = data.get("message_reference").filter(|reference| !reference.is_null()) {
        let referenced_id = reference.get("message_id").and_then(|id| {
            id.as_str()
                .map(str::to_owned)
                .or_else(|| id.as_u64().map(|id| id.to_string()))
        });
        let referenced = referenced_id
            .as_deref()
            .and_then(|id| messages.iter().find(|message| message["id"] == id));
        match referenced {
            Some(referenced) => {
                message["type"] = json!(19);
                message["message_reference"] = json!({
                    "type": 0,
                    "channel_id": channel_id.to_string(),
                    "message_id": referenced["id"],
                });
                message["referenced_message"] = referenced.clone();
            }
            None if reference.get("fail_if_not_exists") != Some(&Value::Bool(false)) => {
                return Err(Failure::invalid_form(
                    "message_reference",
                    "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                    "Unknown message",
                ));
            }
            None => {}
        }
    }
    messages.push(message.clone());
    Ok(Reply::ok(message))
}

/// `GET|PATCH|DELETE /channels/{channel_id}/messages/{message_id}`: a message posted through
/// the channel routes, or a non-ephemeral interaction response or follow-up (real channel
/// messages on Discord too) in that channel. An interaction whose channel the test did not name
/// takes the channel of the first such request.
fn channel_message(shared: &Shared, channel_id: u64, message_id: u64, incoming: &Incoming<'_>) -> Outcome {
    let mut guard = shared.lock();
    let Inner {
        ids,
        channels,
        interactions,
        ..
    } = &mut *guard;
    let id_text = message_id.to_string();
    let messages = channels.entry(channel_id).or_default();
    if let Some(index) = messages.iter().position(|message| message["id"] == id_text.as_str()) {
        return match *incoming.method {
            Method::PATCH => {
                let empty = Map::new();
                let data = body_object(incoming.body, &empty)?;
                let edited = edit_message(shared, ids, &messages[index], data, incoming.uploads)?;
                messages[index] = edited.clone();
                Ok(Reply::ok(edited))
            }
            Method::DELETE => {
                messages.remove(index);
                Ok(Reply::NoContent)
            }
            _ => Ok(Reply::ok(messages[index].clone())),
        };
    }
    let visible =
        |message: &Value| message["id"] == id_text.as_str() && message["flags"].as_u64().unwrap_or(0) & EPHEMERAL == 0;
    let found = interactions.iter().find_map(|(token, interaction)| {
        if interaction.channel_known && interaction.channel_id != channel_id {
            return None;
        }
        if interaction.original.as_ref().is_some_and(visible) {
            return Some((token.clone(), None));
        }
        let index = interaction.followups.iter().position(visible)?;
        Some((token.clone(), Some(index)))
    });
    let Some((interaction, index)) = found.and_then(|(token, index)| Some((interactions.get_mut(&token)?, index)))
    else {
        return Err(Failure::unknown_message());
    };
    if !interaction.channel_known {
        move_interaction(interaction, channel_id);
    }
    if *incoming.method == Method::DELETE {
        match index {
            None => interaction.original = None,
            Some(index) => {
                interaction.followups.remove(index);
            }
        }
        return Ok(Reply::NoContent);
    }
    let slot = match index {
        None => interaction.original.as_mut(),
        Some(index) => interaction.followups.get_mut(index),
    };
    let Some(message) = slot else {
        return Err(Failure::unknown_message());
    };
    if *incoming.method == Method::PATCH {
        let empty = Map::new();
        let data = body_object(incoming.body, &empty)?;
        *message = edit_message(shared, ids, message, data, incoming.uploads)?;
    }
    Ok(Reply::ok(message.clone()))
}

/// Puts an interaction's messages in `channel_id`.
fn move_interaction(interaction: &mut Interaction, channel_id: u64) {
    interaction.channel_known = true;
    interaction.channel_id = channel_id;
    let channel = json!(channel_id.to_string());
    for message in interaction.original.iter_mut().chain(interaction.followups.iter_mut()) {
        message["channel_id"] = channel.clone();
    }
}

/// Who a new message is from and where it goes.
#[derive(Debug)]
struct MessageContext {
    /// Its `channel_id`.
    channel_id: u64,
    /// Its `author`.
    author: Value,
    /// The application id for interaction messages (sets `webhook_id` and `application_id`,
    /// allows the `EPHEMERAL` flag).
    webhook: Option<u64>,
}

impl MessageContext {
    /// An interaction response or follow-up in `channel_id`.
    fn webhook(shared: &Shared, channel_id: u64) -> MessageContext {
        MessageContext {
            channel_id,
            author: shared.webhook_author(),
            webhook: Some(shared.application_id),
        }
    }
}

/// A message with a new id and every field at its default (empty content).
fn message_base(ids: &mut Ids, context: &MessageContext) -> Map<String, Value> {
    let mut message = Map::new();
    for (key, value) in [
        ("id", json!(ids.next().to_string())),
        ("type", json!(0)),
        ("channel_id", json!(context.channel_id.to_string())),
        ("author", context.author.clone()),
        ("content", json!("")),
        ("timestamp", json!(timestamp(SystemTime::now()))),
        ("edited_timestamp", Value::Null),
        ("tts", json!(false)),
        ("mention_everyone", json!(false)),
        ("mentions", json!([])),
        ("mention_roles", json!([])),
        ("attachments", json!([])),
        ("embeds", json!([])),
        ("components", json!([])),
        ("pinned", json!(false)),
        ("flags", json!(0)),
    ] {
        message.insert(key.to_owned(), value);
    }
    if let Some(application_id) = context.webhook {
        message.insert("webhook_id".to_owned(), json!(application_id.to_string()));
        message.insert("application_id".to_owned(), json!(application_id.to_string()));
    }
    message
}

/// Builds a new message from a create body (`content`, `embeds`, `components`, `attachments`,
/// `flags`, `tts`, `allowed_mentions`, `nonce`) and the uploads. `prefix` goes before field names
/// in form errors (`data.` for callbacks).
fn new_message(
    shared: &Shared,
    ids: &mut Ids,
    context: &MessageContext,
    data: &Map<String, Value>,
    uploads: &[Upload],
    prefix: &str,
) -> Result<Value, Failure> {
    let mut message = message_base(ids, context);
    let mut flag_mask = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2;
    if context.webhook.is_some() {
        flag_mask |= EPHEMERAL;
    }
    let flags = data.get("flags").and_then(Value::as_u64).unwrap_or(0) & flag_mask;
    message.insert("flags".to_owned(), json!(flags));
    if let Some(tts) = data.get("tts").and_then(Value::as_bool) {
        message.insert("tts".to_owned(), json!(tts));
    }
    if let Some(nonce) = data.get("nonce").filter(|nonce| !nonce.is_null()) {
        message.insert("nonce".to_owned(), nonce.clone());
    }
    apply_fields(shared, ids, &mut message, data, uploads, prefix, true)?;
    let has_extras = ["sticker_ids", "poll"].iter().any(|key| match data.get(*key) {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    });
    if is_empty_message(&message) && !has_extras {
        return Err(Failure::empty_message());
    }
    Ok(Value::Object(message))
}

/// Applies an edit body to `existing`: fields present replace the old ones, `attachments` lists
/// the attachments to keep and the new ones (others are dropped), new uploads are added, the
/// `LOADING` flag goes and `edited_timestamp` is set.
fn edit_message(
    shared: &Shared,
    ids: &mut Ids,
    existing: &Value,
    data: &Map<String, Value>,
    uploads: &[Upload],
) -> Result<Value, Failure> {
    let mut message = existing.as_object().cloned().unwrap_or_default();
    let old_flags = message.get("flags").and_then(Value::as_u64).unwrap_or(0);
    let flags = match data.get("flags").and_then(Value::as_u64) {
        Some(given) => {
            (old_flags & (EPHEMERAL | SUPPRESS_NOTIFICATIONS)) | (given & (SUPPRESS_EMBEDS | IS_COMPONENTS_V2))
        }
        None => old_flags & !LOADING,
    };
    message.insert("flags".to_owned(), json!(flags & !LOADING));
    apply_fields(shared, ids, &mut message, data, uploads, "", false)?;
    if is_empty_message(&message) {
        return Err(Failure::empty_message());
    }
    message.insert("edited_timestamp".to_owned(), json!(timestamp(SystemTime::now())));
    Ok(Value::Object(message))
}

/// Whether a message has nothing to show.
fn is_empty_message(message: &Map<String, Value>) -> bool {
    let blank = |key: &str| match message.get(key) {
        Some(Value::String(text)) => text.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        _ => true,
    };
    ["content", "embeds", "attachments", "components"]
        .iter()
        .all(|key| blank(key))
}

/// Applies `content`, `attachments` (and uploads), `embeds`, `components` and the mentions.
fn apply_fields(
    shared: &Shared,
    ids: &mut Ids,
    message: &mut Map<String, Value>,
    data: &Map<String, Value>,
    uploads: &[Upload],
    prefix: &str,
    creating: bool,
) -> Result<(), Failure> {
    let channel_id = message
        .get("channel_id")
        .and_then(Value::as_str)
        .unwrap_or("0")
        .to_owned();
    let ephemeral = message.get("flags").and_then(Value::as_u64).unwrap_or(0) & EPHEMERAL != 0;
    let content_changed = data.contains_key("content");
    if let Some(content) = data.get("content") {
        let content = match content {
            Value::String(text) => text.clone(),
            Value::Null => String::new(),
            other => {
                return Err(Failure::invalid_form(
                    &format!("{prefix}content"),
                    "BASE_TYPE_STRING",
                    &format!("Could not interpret \"{other}\" as string."),
                ));
            }
        };
        if content.chars().count() > MAX_CONTENT {
            return Err(Failure::invalid_form(
                &format!("{prefix}content"),
                "BASE_TYPE_MAX_LENGTH",
                &format!("Must be {MAX_CONTENT} or fewer in length."),
            ));
        }
        message.insert("content".to_owned(), Value::String(content));
    }

    let existing: Vec<Value> = match message.get("attachments") {
        Some(Value::Array(items)) if !creating => items.clone(),
        _ => Vec::new(),
    };
    let mut used = vec![false; uploads.len()];
    let mut attachments = Vec::new();
    match data.get("attachments") {
        Some(Value::Array(items)) => {
            for item in items {
                let id = match item.get("id") {
                    Some(Value::String(id)) => id.clone(),
                    Some(Value::Number(id)) => id.to_string(),
                    _ => continue,
                };
                let filename = item.get("filename").and_then(Value::as_str);
                let description = item.get("description").and_then(Value::as_str);
                if let Some(kept) = existing.iter().find(|attachment| attachment["id"] == id.as_str()) {
                    let mut kept = kept.clone();
                    if let Some(description) = description {
                        kept["description"] = json!(description);
                    }
                    attachments.push(kept);
                    continue;
                }
                let field = format!("files[{id}]");
                let found = uploads
                    .iter()
                    .enumerate()
                    .find(|(index, upload)| !used[*index] && upload.file.field == field);
                if let Some((index, upload)) = found {
                    used[index] = true;
                    attachments.push(attachment_json(
                        ids.next(),
                        &channel_id,
                        upload,
                        filename,
                        description,
                        ephemeral,
                    ));
                }
            }
        }
        None | Some(Value::Null) => attachments = existing,
        Some(_) => {
            return Err(Failure::invalid_form(
                &format!("{prefix}attachments"),
                "BASE_TYPE_LIST",
                "Must be a list.",
            ));
        }
    }
    for (index, upload) in uploads.iter().enumerate() {
        if !used[index] {
            attachments.push(attachment_json(ids.next(), &channel_id, upload, None, None, ephemeral));
        }
    }
    message.insert("attachments".to_owned(), Value::Array(attachments));

    match data.get("embeds") {
        Some(Value::Array(embeds)) => {
            if embeds.len() > MAX_EMBEDS {
                return Err(Failure::invalid_form(
                    &format!("{prefix}embeds"),
                    "BASE_TYPE_MAX_LENGTH",
                    &format!("Must be {MAX_EMBEDS} or fewer in length."),
                ));
            }
            let attachments = message.get("attachments").cloned().unwrap_or_else(|| json!([]));
            let embeds = embeds
                .iter()
                .map(|embed| normalize_embed(embed, &attachments))
                .collect();
            message.insert("embeds".to_owned(), Value::Array(embeds));
        }
        Some(Value::Null) => {
            message.insert("embeds".to_owned(), json!([]));
        }
        _ => {}
    }

    match data.get("components") {
        Some(Value::Array(components)) => {
            message.insert("components".to_owned(), Value::Array(components.clone()));
        }
        Some(Value::Null) => {
            message.insert("components".to_owned(), json!([]));
        }
        _ => {}
    }

    if creating || content_changed {
        let content = message.get("content").and_then(Value::as_str).unwrap_or_default();
        let (users, roles, everyone) = mentions(content, data.get("allowed_mentions"));
        let users: Vec<Value> = users.into_iter().map(|id| shared.user(id)).collect();
        let roles: Vec<Value> = roles.into_iter().map(|id| json!(id.to_string())).collect();
        message.insert("mentions".to_owned(), Value::Array(users));
        message.insert("mention_roles".to_owned(), Value::Array(roles));
        message.insert("mention_everyone".to_owned(), json!(everyone));
    }
    Ok(())
}

/// The users, roles and `@everyone` mentioned in `content` (`<@id>`, `<@!id>`, `<@&id>`,
/// `@everyone`, `@here`) that `allowed_mentions` lets through (all of them without it).
fn mentions(content: &str, allowed: Option<&Value>) -> (Vec<u64>, Vec<u64>, bool) {
    let allowed = allowed.filter(|allowed| allowed.is_object());
    let parse: Vec<&str> = allowed
        .and_then(|allowed| allowed.get("parse"))
        .and_then(Value::as_array)
        .map(|parse| parse.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let listed = |key: &str, id: u64| {
        allowed
            .and_then(|allowed| allowed.get(key))
            .and_then(Value::as_array)
            .is_some_and(|ids| {
                ids.iter()
                    .any(|listed| listed.as_str() == Some(id.to_string().as_str()) || listed.as_u64() == Some(id))
            })
    };
    let user_ok = |id: u64| allowed.is_none() || parse.contains(&"users") || listed("users", id);
    let role_ok = |id: u64| allowed.is_none() || parse.contains(&"roles") || listed("roles", id);
    let mut users = Vec::new();
    let mut roles = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let (is_role, digits) = match rest.as_bytes().first() {
            Some(b'&') => (true, &rest[1..]),
            Some(b'!') => (false, &rest[1..]),
            _ => (false, rest),
        };
        let Some(end) = digits.find('>') else { break };
        let Ok(id) = digits[..end].parse::<u64>() else { continue };
        if is_role {
            if role_ok(id) && !roles.contains(&id) {
                roles.push(id);
            }
        } else if user_ok(id) && !users.contains(&id) {
            users.push(id);
        }
    }
    let everyone_ok = allowed.is_none() || parse.contains(&"everyone");
    let everyone = everyone_ok && (content.contains("@everyone") || content.contains("@here"));
    (users, roles, everyone)
}

/// An embed as Discord answers it: `type` `rich` by default, no null fields, and
/// `attachment://<filename>` URLs resolved to the attachment's CDN URL (with `proxy_url`, and
/// the image's size for `image` and `thumbnail`).
fn normalize_embed(embed: &Value, attachments: &Value) -> Value {
    let Value::Object(object) = embed else {
        return embed.clone();
    };
    let mut object: Map<String, Value> = object
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    object
        .entry("type".to_owned())
        .or_insert_with(|| Value::String("rich".to_owned()));
    let find = |url: &str| {
        let name = url.strip_prefix("attachment://")?;
        attachments
            .as_array()?
            .iter()
            .find(|attachment| attachment["filename"] == name)
            .cloned()
    };
    for (key, url_key, proxy_key) in [
        ("image", "url", "proxy_url"),
        ("thumbnail", "url", "proxy_url"),
        ("author", "icon_url", "proxy_icon_url"),
        ("footer", "icon_url", "proxy_icon_url"),
    ] {
        let Some(Value::Object(part)) = object.get_mut(key) else {
            continue;
        };
        let Some(attachment) = part.get(url_key).and_then(Value::as_str).and_then(find) else {
            continue;
        };
        part.insert(url_key.to_owned(), attachment["url"].clone());
        part.insert(proxy_key.to_owned(), attachment["proxy_url"].clone());
        if key == "image" || key == "thumbnail" {
            for size in ["width", "height"] {
                if let Some(value) = attachment.get(size) {
                    part.insert(size.to_owned(), value.clone());
                }
            }
        }
    }
    Value::Object(object)
}

/// An Attachment object for an upload: CDN `url` and `proxy_url` (with the signed-URL query
/// Discord adds), `size`, `content_type` (guessed from the file name like Discord, else the
/// part's), `width` and `height` for images, `description` when given, `ephemeral` for
/// ephemeral messages.
fn attachment_json(
    id: u64,
    channel_id: &str,
    upload: &Upload,
    filename: Option<&str>,
    description: Option<&str>,
    ephemeral: bool,
) -> Value {
    let filename = filename
        .or(upload.file.filename.as_deref())
        .unwrap_or(upload.file.field.as_str())
        .replace(' ', "_");
    let issued = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let signature = hex::encode(Sha256::digest(format!("{id}/{filename}/{issued}")));
    let query = format!("?ex={:x}&is={issued:x}&hm={signature}&", issued + 24 * 60 * 60);
    let mut attachment = json!({
        "id": id.to_string(),
        "filename": filename,
        "size": upload.file.bytes.len(),
        "url": format!("https://cdn.discordapp.com/attachments/{channel_id}/{id}/{filename}{query}"),
        "proxy_url": format!("https://media.discordapp.net/attachments/{channel_id}/{id}/{filename}{query}"),
    });
    let content_type = content_type_for(&filename).map(str::to_owned).or_else(|| {
        upload
            .content_type
            .clone()
            .filter(|content_type| content_type != "application/octet-stream")
    });
    if let Some(content_type) = content_type {
        attachment["content_type"] = json!(content_type);
    }
    let dimensions = image::ImageReader::new(Cursor::new(&upload.file.bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_dimensions().ok());
    if let Some((width, height)) = dimensions {
        attachment["width"] = json!(width);
        attachment["height"] = json!(height);
    }
    if let Some(description) = description {
        attachment["description"] = json!(description);
    }
    if ephemeral {
        attachment["ephemeral"] = json!(true);
    }
    attachment
}

/// The content type Discord gives a file by its extension.
fn content_type_for(filename: &str) -> Option<&'static str> {
    let extension = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "txt" => "text/plain; charset=utf-8",
        "json" => "application/json; charset=utf-8",
        "zip" => "application/zip",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// A timestamp the way Discord writes them (`2024-05-01T12:34:56.789000+00:00`).
fn timestamp(at: SystemTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00");
    time::OffsetDateTime::from(at)
        .format(format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000+00:00".to_owned())
}

/// `GET|PUT|POST /applications/{application_id}[/guilds/{guild_id}]/commands`.
fn commands(shared: &Shared, guild_id: Option<u64>, incoming: &Incoming<'_>) -> Outcome {
    let mut guard = shared.lock();
    let Inner {
        ids,
        global_commands,
        guild_commands,
        ..
    } = &mut *guard;
    let list = match guild_id {
        None => global_commands,
        Some(guild_id) => guild_commands.entry(guild_id).or_default(),
    };
    match *incoming.method {
        Method::PUT => {
            let Value::Array(items) = incoming.body else {
                return Err(Failure::invalid_form("", "BASE_TYPE_LIST", "Must be a list."));
            };
            let mut replaced: Vec<Value> = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let command = build_command(shared, ids, guild_id, item, &format!("{index}."), list)?;
                let duplicate = replaced
                    .iter()
                    .any(|other| other["name"] == command["name"] && other["type"] == command["type"]);
                if duplicate {
                    return Err(Failure::invalid_form(
                        &format!("{index}.name"),
                        "APPLICATION_COMMANDS_DUPLICATE_NAME",
                        "Application command names must be unique",
                    ));
                }
                replaced.push(command);
            }
            *list = replaced.clone();
            Ok(Reply::ok(Value::Array(replaced)))
        }
        Method::POST => {
            let command = build_command(shared, ids, guild_id, incoming.body, "", list)?;
            let position = list
                .iter()
                .position(|other| other["name"] == command["name"] && other["type"] == command["type"]);
            match position {
                Some(position) => {
                    list[position] = command.clone();
                    Ok(Reply::ok(command))
                }
                None => {
                    list.push(command.clone());
                    Ok(Reply::Json(StatusCode::CREATED, command))
                }
            }
        }
        _ => Ok(Reply::ok(Value::Array(list.clone()))),
    }
}

/// `GET|DELETE /applications/{application_id}[/guilds/{guild_id}]/commands/{command_id}`.
fn command(shared: &Shared, guild_id: Option<u64>, command_id: u64, incoming: &Incoming<'_>) -> Outcome {
    let mut guard = shared.lock();
    let inner = &mut *guard;
    let list = match guild_id {
        None => &mut inner.global_commands,
        Some(guild_id) => inner.guild_commands.entry(guild_id).or_default(),
    };
    let id_text = command_id.to_string();
    let Some(index) = list.iter().position(|command| command["id"] == id_text.as_str()) else {
        return Err(Failure::unknown_command());
    };
    if *incoming.method == Method::DELETE {
        list.remove(index);
        Ok(Reply::NoContent)
    } else {
        Ok(Reply::ok(list[index].clone()))
    }
}

/// Whether `name` is a valid CHAT_INPUT command or option name (1-32 lower-case letters, digits,
/// `-` and `_`).
fn valid_chat_input_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=32).contains(&count)
        && name
            .chars()
            .all(|c| c == '-' || c == '_' || (c.is_alphanumeric() && !c.is_uppercase()))
}

/// Validates one command of a create or overwrite body and answers it as Discord does: `id`
/// (kept when a command with the same name and type exists), `application_id`, `version` (new
/// when anything changed), `type` (default 1), `guild_id` for guild commands, the defaults
/// Discord fills in. `prefix` goes before field names in form errors.
fn build_command(
    shared: &Shared,
    ids: &mut Ids,
    guild_id: Option<u64>,
    item: &Value,
    prefix: &str,
    existing: &[Value],
) -> Result<Value, Failure> {
    let field = |name: &str| format!("{prefix}{name}");
    let Value::Object(object) = item else {
        return Err(Failure::invalid_form(
            prefix.trim_end_matches('.'),
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        ));
    };
    let kind = match object.get("type") {
        None | Some(Value::Null) => 1,
        Some(kind) => kind.as_u64().filter(|kind| (1..=4).contains(kind)).ok_or_else(|| {
            Failure::invalid_form(
                &field("type"),
                "BASE_TYPE_CHOICES",
                "Value must be one of {1, 2, 3, 4}.",
            )
        })?,
    };
    let Some(name) = object.get("name").and_then(Value::as_str) else {
        return Err(Failure::invalid_form(
            &field("name"),
            "BASE_TYPE_REQUIRED",
            "This field is required",
        ));
    };
    let name_ok = if kind == 1 {
        valid_chat_input_name(name)
    } else {
        (1..=32).contains(&name.chars().count())
    };
    if !name_ok {
        return Err(Failure::invalid_form(
            &field("name"),
            "APPLICATION_COMMAND_INVALID_NAME",
            "Command name is invalid",
        ));
    }
    let description = object.get("description").and_then(Value::as_str).unwrap_or_default();
    if kind == 1 && !(1..=100).contains(&description.chars().count()) {
        return Err(Failure::invalid_form(
            &field("description"),
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 100 in length.",
        ));
    }
    let description = if kind == 1 { description } else { "" };
    let or = |key: &str, default: Value| {
        object
            .get(key)
            .filter(|value| !value.is_null())
            .cloned()
            .unwrap_or(default)
    };
    let mut command = json!({
        "type": kind,
        "application_id": shared.application_id.to_string(),
        "name": name,
        "name_localizations": or("name_localizations", Value::Null),
        "description": description,
        "description_localizations": or("description_localizations", Value::Null),
        "default_member_permissions": or("default_member_permissions", Value::Null),
        "nsfw": or("nsfw", json!(false)),
        "integration_types": or("integration_types", json!([0])),
        "contexts": or("contexts", Value::Null),
    });
    match guild_id {
        Some(guild_id) => command["guild_id"] = json!(guild_id.to_string()),
        None => command["dm_permission"] = or("dm_permission", json!(true)),
    }
    if let Some(options) = object.get("options").filter(|options| !options.is_null()) {
        command["options"] = options.clone();
    }
    if let Some(handler) = object.get("handler").filter(|handler| !handler.is_null()) {
        command["handler"] = handler.clone();
    }
    let previous = existing
        .iter()
        .find(|other| other["name"] == name && other["type"] == kind);
    let (id, version) = match previous {
        Some(previous) => {
            let mut unchanged = previous.clone();
            if let Value::Object(unchanged) = &mut unchanged {
                unchanged.remove("id");
                unchanged.remove("version");
            }
            let version = if unchanged == command {
                previous["version"].clone()
            } else {
                json!(ids.next().to_string())
            };
            (previous["id"].clone(), version)
        }
        None => (json!(ids.next().to_string()), json!(ids.next().to_string())),
    };
    command["id"] = id;
    command["version"] = version;
    Ok(command)
}

#[cfg(test)]
mod tests {
    use serenity::builder::{
        Builder, CreateActionRow, CreateAllowedMentions, CreateAttachment, CreateButton, CreateCommand,
        CreateCommandOption, CreateEmbed, CreateInteractionResponse, CreateInteractionResponseFollowup,
        CreateInteractionResponseMessage, CreateMessage, EditInteractionResponse, EditMessage,
    };
    use serenity::http::{Http, HttpBuilder, HttpError};
    use serenity::model::application::{ActionRowComponent, Command, CommandOptionType, CommandType};
    use serenity::model::channel::MessageFlags;
    use serenity::model::id::{ApplicationId, ChannelId, GuildId, InteractionId, UserId};

    use super::*;

    /// A bot token in Discord's shape: its first segment is base64 of the bot's user id.
    const TOKEN: &str = "MTIwMDAwMDAwMDAwMDAwMDAwNw.GfakeT.tessera-fake-discord-token-signature";

    /// The bot user id `TOKEN` encodes.
    const BOT_ID: u64 = 1_200_000_000_000_000_007;

    /// The application id every test uses.
    const APP_ID: u64 = 1_200_000_000_000_000_001;

    /// An interaction token.
    const ITOKEN: &str = "aW50ZXJhY3Rpb246MTI4NjE1MTA4OTg2MzMzODAwMDpmYWtl";

    /// A channel id.
    const CHANNEL: u64 = 1_210_000_000_000_000_042;

    /// How long a test waits for anything.
    const WAIT: Duration = Duration::from_secs(5);

    /// serenity's `Http` pointed at the fake through its proxy setting.
    fn http(fake: &FakeDiscord, token: &str) -> Http {
        HttpBuilder::new(token)
            .proxy(fake.base_url())
            .ratelimiter_disabled(true)
            .application_id(ApplicationId::new(fake.application_id()))
            .build()
    }

    /// A small real PNG of `width` x `height`.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image::RgbImage::from_pixel(width, height, image::Rgb([20, 120, 200]))
            .write_to(&mut bytes, image::ImageFormat::Png)
            .expect("encode a PNG");
        bytes.into_inner()
    }

    /// The status and Discord error code of a failed serenity call.
    fn failure<T: std::fmt::Debug>(result: serenity::Result<T>) -> (u16, isize, String) {
        match result {
            Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(response))) => (
                response.status_code.as_u16(),
                response.error.code,
                response.error.message,
            ),
            other => panic!("expected an unsuccessful request, got {other:?}"),
        }
    }

    /// `<base>/api/v10<path>`.
    fn url(fake: &FakeDiscord, path: &str) -> String {
        format!("{}/api/v10{path}", fake.base_url())
    }

    /// A raw request's status and JSON body (`Null` for an empty body).
    async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("reach the fake");
        let status = response.status().as_u16();
        let text = response.text().await.expect("read the body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("a JSON body")
        };
        (status, body)
    }

    #[tokio::test]
    async fn serenity_defers_edits_with_an_attachment_and_follows_up() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        assert_eq!(fake.bot_user_id(), BOT_ID);
        let http = http(&fake, TOKEN);
        let interaction = InteractionId::new(1_286_151_089_863_338_000);

        CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new())
            .execute(&http, (interaction, ITOKEN))
            .await
            .expect("defer");
        let calls = fake.calls_to("POST", "/callback");
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls[0].path,
            format!("/api/v10/interactions/{}/{ITOKEN}/callback", interaction.get())
        );
        assert_eq!(calls[0].status, 204);
        assert_eq!(calls[0].body["type"], 5);
        let deferred = fake.original_response(ITOKEN).expect("a deferred original response");
        assert_eq!(deferred["content"], "");
        assert_eq!(deferred["flags"], LOADING);

        let image = png(64, 48);
        let edited = EditInteractionResponse::new()
            .content("Here is your picture")
            .embed(CreateEmbed::new().title("imagine: a fox").image("attachment://x.png"))
            .components(vec![CreateActionRow::Buttons(vec![
                CreateButton::new("again").label("Again"),
            ])])
            .new_attachment(CreateAttachment::bytes(image.clone(), "x.png"))
            .execute(&http, ITOKEN)
            .await
            .expect("edit the original response");
        assert_eq!(edited.content, "Here is your picture");
        assert_eq!(edited.author.id.get(), APP_ID);
        assert!(edited.author.bot);
        assert_eq!(edited.webhook_id.map(|id| id.get()), Some(APP_ID));
        assert_eq!(edited.channel_id.get(), DEFAULT_INTERACTION_CHANNEL_ID);
        assert!(edited.edited_timestamp.is_some());
        assert!(!edited.flags.unwrap_or_default().contains(MessageFlags::LOADING));
        let attachment = &edited.attachments[0];
        assert_eq!(edited.attachments.len(), 1);
        assert_eq!(attachment.filename, "x.png");
        assert_eq!(attachment.size as usize, image.len());
        assert_eq!(attachment.content_type.as_deref(), Some("image/png"));
        assert_eq!(attachment.dimensions(), Some((64, 48)));
        assert!(
            attachment.url.starts_with("https://cdn.discordapp.com/attachments/"),
            "{}",
            attachment.url
        );
        let embed_image = edited.embeds[0].image.as_ref().expect("the embed image");
        assert_eq!(embed_image.url, attachment.url);
        assert_eq!(edited.embeds[0].title.as_deref(), Some("imagine: a fox"));
        assert_eq!(edited.embeds[0].kind.as_deref(), Some("rich"));
        match &edited.components[0].components[0] {
            ActionRowComponent::Button(button) => assert_eq!(button.label.as_deref(), Some("Again")),
            other => panic!("expected a button, got {other:?}"),
        }

        let patch = fake.wait_for("PATCH", "/messages/@original", 1, WAIT).await;
        assert_eq!(
            patch[0].path,
            format!("/api/v10/webhooks/{APP_ID}/{ITOKEN}/messages/@original")
        );
        assert_eq!(
            patch[0].files,
            vec![DiscordFile {
                field: "files[0]".to_owned(),
                filename: Some("x.png".to_owned()),
                bytes: image.clone(),
            }]
        );
        assert_eq!(patch[0].body["content"], "Here is your picture");
        assert_eq!(patch[0].body["attachments"][0]["filename"], "x.png");
        assert_eq!(patch[0].authorization.as_deref(), Some(format!("Bot {TOKEN}").as_str()));

        let fetched = http
            .get_original_interaction_response(ITOKEN)
            .await
            .expect("get the original");
        assert_eq!(fetched.id, edited.id);
        assert_eq!(fetched.attachments[0].id, attachment.id);
        let stored = fake.original_response(ITOKEN).expect("the original response");
        assert_eq!(stored["attachments"][0]["size"], image.len());

        let followup = CreateInteractionResponseFollowup::new()
            .content("One more thing")
            .ephemeral(true)
            .add_file(CreateAttachment::bytes(b"log line\n".to_vec(), "log.txt"))
            .execute(&http, (None, ITOKEN))
            .await
            .expect("send a follow-up");
        assert_eq!(followup.content, "One more thing");
        assert!(followup.flags.unwrap_or_default().contains(MessageFlags::EPHEMERAL));
        assert_eq!(followup.attachments[0].filename, "log.txt");
        assert_eq!(
            followup.attachments[0].content_type.as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_ne!(followup.id, edited.id);
        let post = fake.calls_to("POST", &format!("/webhooks/{APP_ID}/{ITOKEN}"));
        assert_eq!(post[0].files[0].bytes, b"log line\n");

        let changed = CreateInteractionResponseFollowup::new()
            .content("One more thing, edited")
            .execute(&http, (Some(followup.id), ITOKEN))
            .await
            .expect("edit the follow-up");
        assert_eq!(changed.content, "One more thing, edited");
        // serenity's follow-up builder always sends `"attachments": []`, which drops them, as on
        // Discord.
        assert!(changed.attachments.is_empty());
        assert_eq!(fake.followups(ITOKEN).len(), 1);
        http.delete_followup_message(ITOKEN, followup.id)
            .await
            .expect("delete the follow-up");
        assert!(fake.followups(ITOKEN).is_empty());

        http.delete_original_interaction_response(ITOKEN)
            .await
            .expect("delete the original");
        assert_eq!(fake.original_response(ITOKEN), None);
        let (status, code, _) = failure(http.get_original_interaction_response(ITOKEN).await);
        assert_eq!((status, code), (404, 10008));
    }

    #[tokio::test]
    async fn a_message_callback_with_a_file_creates_the_original_response() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        fake.set_interaction_channel(ITOKEN, CHANNEL);
        let http = http(&fake, TOKEN);
        let image = png(8, 8);
        CreateInteractionResponse::Message(
            CreateInteractionResponseMessage::new()
                .content("Queued")
                .ephemeral(true)
                .add_file(CreateAttachment::bytes(image.clone(), "queued image.png")),
        )
        .execute(&http, (InteractionId::new(77), ITOKEN))
        .await
        .expect("respond with a message");
        let call = &fake.calls_to("POST", "/callback")[0];
        assert_eq!(call.body["type"], 4);
        assert_eq!(call.files[0].bytes, image);
        let original = fake.original_response(ITOKEN).expect("the original response");
        assert_eq!(original["content"], "Queued");
        assert_eq!(original["flags"], EPHEMERAL);
        assert_eq!(original["channel_id"], CHANNEL.to_string());
        assert_eq!(original["attachments"][0]["filename"], "queued_image.png");
        assert_eq!(original["attachments"][0]["ephemeral"], true);

        let message = http.get_original_interaction_response(ITOKEN).await.expect("get it");
        assert_eq!(message.channel_id.get(), CHANNEL);

        let again = CreateInteractionResponse::Acknowledge
            .execute(&http, (InteractionId::new(77), ITOKEN))
            .await;
        assert_eq!(
            failure(again),
            (400, 40060, "Interaction has already been acknowledged.".to_owned())
        );

        let (status, code, _) = failure(
            CreateInteractionResponse::Message(CreateInteractionResponseMessage::new())
                .execute(&http, (InteractionId::new(78), "another-token"))
                .await,
        );
        assert_eq!((status, code), (400, 50006));
    }

    #[tokio::test]
    async fn channel_routes_reach_public_interaction_messages() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        let http = http(&fake, TOKEN);
        CreateInteractionResponse::Message(CreateInteractionResponseMessage::new().content("public"))
            .execute(&http, (InteractionId::new(11), ITOKEN))
            .await
            .expect("respond");
        CreateInteractionResponse::Message(
            CreateInteractionResponseMessage::new()
                .content("secret")
                .ephemeral(true),
        )
        .execute(&http, (InteractionId::new(12), "ephemeral-token"))
        .await
        .expect("respond ephemerally");
        let public = http.get_original_interaction_response(ITOKEN).await.expect("public");
        let secret = http
            .get_original_interaction_response("ephemeral-token")
            .await
            .expect("secret");
        assert_eq!(public.channel_id.get(), DEFAULT_INTERACTION_CHANNEL_ID);

        let channel = ChannelId::new(CHANNEL);
        let (status, code, _) = failure(channel.delete_message(&http, secret.id).await);
        assert_eq!(
            (status, code),
            (404, 10008),
            "ephemeral messages are not in the channel"
        );
        let fetched = channel
            .message(&http, public.id)
            .await
            .expect("fetch through the channel");
        assert_eq!(fetched.channel_id, channel, "the interaction took the channel");
        assert_eq!(
            fake.original_response(ITOKEN).expect("still there")["channel_id"],
            CHANNEL.to_string()
        );
        let (status, code, _) = failure(ChannelId::new(CHANNEL + 1).message(&http, public.id).await);
        assert_eq!((status, code), (404, 10008), "not in another channel");
        channel
            .delete_message(&http, public.id)
            .await
            .expect("delete through the channel");
        assert_eq!(fake.original_response(ITOKEN), None);
    }

    #[tokio::test]
    async fn editing_before_any_callback_is_an_unknown_message() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        let http = http(&fake, TOKEN);
        let result = EditInteractionResponse::new()
            .content("too early")
            .execute(&http, ITOKEN)
            .await;
        assert_eq!(failure(result), (404, 10008, "Unknown Message".to_owned()));
        let followup = CreateInteractionResponseFollowup::new()
            .content("too early")
            .execute(&http, (None, ITOKEN))
            .await;
        assert_eq!(failure(followup), (404, 10015, "Unknown Webhook".to_owned()));
        assert_eq!(fake.calls().len(), 2, "failed calls are recorded too");
        assert_eq!(fake.calls()[0].status, 404);
    }

    #[tokio::test]
    async fn expired_tokens_answer_invalid_webhook_token() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        let http = http(&fake, TOKEN);
        CreateInteractionResponse::Message(CreateInteractionResponseMessage::new().content("hi"))
            .execute(&http, (InteractionId::new(5), ITOKEN))
            .await
            .expect("respond");
        fake.expire_interaction_tokens();

        let edit = EditInteractionResponse::new()
            .content("late")
            .execute(&http, ITOKEN)
            .await;
        let (status, code, message) = failure(edit);
        assert_eq!((status, code, message.as_str()), (401, 50027, "Invalid Webhook Token"));
        let followup = CreateInteractionResponseFollowup::new()
            .content("late")
            .execute(&http, (None, ITOKEN))
            .await;
        assert_eq!(failure(followup).1, 50027);
        let callback = CreateInteractionResponse::Acknowledge
            .execute(&http, (InteractionId::new(5), ITOKEN))
            .await;
        assert_eq!(failure(callback), (404, 10062, "Unknown interaction".to_owned()));
        assert_eq!(fake.original_response(ITOKEN).expect("kept")["content"], "hi");

        CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new())
            .execute(&http, (InteractionId::new(6), "a-fresh-token"))
            .await
            .expect("a new interaction still works");
        EditInteractionResponse::new()
            .content("fresh")
            .execute(&http, "a-fresh-token")
            .await
            .expect("edit with a fresh token");
    }

    #[tokio::test]
    async fn serenity_posts_edits_and_deletes_channel_messages() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        let http = http(&fake, TOKEN);
        let channel = ChannelId::new(CHANNEL);
        let user = UserId::new(1_190_000_000_000_000_555);
        let image = png(32, 32);
        let sent = channel
            .send_message(
                &http,
                CreateMessage::new()
                    .content(format!("<@{user}> here you go"))
                    .embed(CreateEmbed::new().title("result").image("attachment://result.png"))
                    .add_file(CreateAttachment::bytes(image.clone(), "result.png")),
            )
            .await
            .expect("send a message");
        assert_eq!(sent.channel_id, channel);
        assert_eq!(sent.author.id.get(), BOT_ID);
        assert!(sent.author.bot);
        assert_eq!(sent.author.name, "tessera-test-bot");
        assert_eq!(sent.mentions.len(), 1);
        assert_eq!(sent.mentions[0].id, user);
        assert!(!sent.pinned && !sent.tts && !sent.mention_everyone);
        assert_eq!(sent.attachments[0].size as usize, image.len());
        assert_eq!(sent.attachments[0].dimensions(), Some((32, 32)));
        assert!(sent.attachments[0].url.contains(&format!("/attachments/{CHANNEL}/")));
        assert_eq!(
            sent.embeds[0].image.as_ref().map(|image| image.url.clone()),
            Some(sent.attachments[0].url.clone())
        );
        assert!(sent.webhook_id.is_none());
        let call = &fake.calls_to("POST", &format!("/channels/{CHANNEL}/messages"))[0];
        assert_eq!(call.files[0].field, "files[0]");
        assert_eq!(call.files[0].bytes, image);
        assert_eq!(fake.channel_messages(CHANNEL).len(), 1);

        let quiet = channel
            .send_message(
                &http,
                CreateMessage::new()
                    .content(format!("<@{user}> quietly"))
                    .allowed_mentions(CreateAllowedMentions::new()),
            )
            .await
            .expect("send without pings");
        assert!(quiet.mentions.is_empty());

        let edited = channel
            .edit_message(&http, sent.id, EditMessage::new().content("edited"))
            .await
            .expect("edit the message");
        assert_eq!(edited.content, "edited");
        assert!(edited.edited_timestamp.is_some());
        assert_eq!(edited.attachments.len(), 1);
        assert!(edited.mentions.is_empty());
        assert_eq!(fake.channel_messages(CHANNEL)[0]["content"], "edited");

        channel
            .delete_message(&http, sent.id)
            .await
            .expect("delete the message");
        let left = fake.channel_messages(CHANNEL);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["id"], quiet.id.to_string());
        let (status, code, _) = failure(channel.delete_message(&http, sent.id).await);
        assert_eq!((status, code), (404, 10008));
        let (status, code, _) = failure(channel.send_message(&http, CreateMessage::new()).await);
        assert_eq!((status, code), (400, 50006));
    }

    #[tokio::test]
    async fn a_missing_or_wrong_bot_token_is_unauthorized() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        let wrong = http(&fake, "MTIz.wrong.token");
        let result = ChannelId::new(CHANNEL)
            .send_message(&wrong, CreateMessage::new().content("hi"))
            .await;
        assert_eq!(failure(result), (401, 0, "401: Unauthorized".to_owned()));
        assert!(fake.channel_messages(CHANNEL).is_empty());

        let client = reqwest::Client::new();
        let (status, body) = send(
            client
                .post(url(&fake, &format!("/channels/{CHANNEL}/messages")))
                .json(&json!({"content": "hi"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (401, json!({"message": "401: Unauthorized", "code": 0}))
        );
        let recorded = &fake.calls()[1];
        assert_eq!(recorded.authorization, None);
        assert_eq!(recorded.status, 401);

        // Interaction routes need no Authorization header.
        let (status, body) = send(
            client
                .post(url(&fake, &format!("/interactions/1/{ITOKEN}/callback")))
                .json(&json!({"type": 5})),
        )
        .await;
        assert_eq!((status, body), (204, Value::Null));
        let (status, body) = send(
            client
                .patch(url(&fake, &format!("/webhooks/{APP_ID}/{ITOKEN}/messages/@original")))
                .json(&json!({"content": "done"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["content"], "done");
    }

    #[tokio::test]
    async fn serenity_registers_global_and_guild_commands() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        let http = http(&fake, TOKEN);
        let imagine = || {
            CreateCommand::new("imagine").description("Draw a picture").add_option(
                CreateCommandOption::new(CommandOptionType::String, "prompt", "What to draw").required(true),
            )
        };
        let registered =
            Command::set_global_commands(&http, vec![imagine(), CreateCommand::new("help").description("How to")])
                .await
                .expect("register global commands");
        assert_eq!(registered.len(), 2);
        assert_eq!(registered[0].name, "imagine");
        assert_eq!(registered[0].application_id.get(), APP_ID);
        assert_eq!(registered[0].kind, CommandType::ChatInput);
        assert_eq!(registered[0].options[0].name, "prompt");
        assert!(registered[0].options[0].required);
        assert_eq!(registered[0].guild_id, None);
        let stored = fake.commands(None);
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0]["id"], registered[0].id.to_string());
        let put = fake
            .wait_for("PUT", &format!("/applications/{APP_ID}/commands"), 1, WAIT)
            .await;
        assert_eq!(put[0].body[0]["name"], "imagine");

        let again = Command::set_global_commands(&http, vec![imagine()])
            .await
            .expect("overwrite global commands");
        assert_eq!(again.len(), 1);
        assert_eq!(
            again[0].id, registered[0].id,
            "an overwrite keeps the id of a same-name command"
        );
        assert_eq!(again[0].version, registered[0].version, "nothing changed");
        assert_eq!(fake.commands(None).len(), 1);
        let listed = http.get_global_commands().await.expect("list global commands");
        assert_eq!(listed.len(), 1);

        let guild = GuildId::new(1_230_000_000_000_000_001);
        let guild_commands = guild
            .set_commands(&http, vec![imagine()])
            .await
            .expect("register guild commands");
        assert_eq!(guild_commands[0].guild_id, Some(guild));
        assert_ne!(guild_commands[0].id, registered[0].id);
        assert_eq!(fake.commands(Some(guild.get())).len(), 1);
        assert_eq!(
            http.get_guild_commands(guild).await.expect("list guild commands").len(),
            1
        );

        let invalid = Command::set_global_commands(&http, vec![CreateCommand::new("Imagine!").description("x")]).await;
        let (status, code, message) = failure(invalid);
        assert_eq!((status, code, message.as_str()), (400, 50035, "Invalid Form Body"));
        assert_eq!(fake.commands(None).len(), 1, "a rejected overwrite changes nothing");
    }

    #[tokio::test]
    async fn serenity_reads_the_bot_user_and_the_application() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        let http = http(&fake, TOKEN);
        let user = http.get_current_user().await.expect("get the bot user");
        assert_eq!(user.id.get(), BOT_ID);
        assert!(user.bot);
        let application = http.get_current_application_info().await.expect("get the application");
        assert_eq!(application.id.get(), APP_ID);
        assert_eq!(application.verify_key.len(), 64);
        assert!(application.verify_key.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_eq!(fake.calls_to("GET", "/oauth2/applications/@me").len(), 1);
    }

    #[tokio::test]
    async fn raw_json_shapes() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        let client = reqwest::Client::new();
        let auth = format!("Bot {TOKEN}");

        let (status, me) = send(client.get(url(&fake, "/users/@me")).header("Authorization", &auth)).await;
        assert_eq!(status, 200);
        assert_eq!(me["id"], BOT_ID.to_string());
        assert_eq!(me["bot"], true);
        assert_eq!(me["username"], "tessera-test-bot");

        let (status, app) = send(
            client
                .get(url(&fake, "/applications/@me"))
                .header("Authorization", &auth),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(app["id"], APP_ID.to_string());
        assert_eq!(app["name"], "Tessera Test");
        assert_eq!(app["verify_key"].as_str().map(str::len), Some(64));

        let (status, body) = send(
            client
                .post(url(&fake, "/interactions/9/tok-9/callback?with_response=true"))
                .json(&json!({"type": 4, "data": {"content": "hello <@&55> @everyone", "flags": 64}})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["interaction"]["id"], "9");
        assert_eq!(body["interaction"]["response_message_ephemeral"], true);
        assert_eq!(body["resource"]["type"], 4);
        assert_eq!(body["resource"]["message"]["mention_roles"], json!(["55"]));
        assert_eq!(body["resource"]["message"]["mention_everyone"], true);

        let original_url = url(&fake, &format!("/webhooks/{APP_ID}/tok-9/messages/@original"));
        let (status, original) = send(client.get(&original_url)).await;
        assert_eq!(status, 200);
        for key in [
            "id",
            "type",
            "channel_id",
            "author",
            "content",
            "timestamp",
            "edited_timestamp",
            "tts",
            "mention_everyone",
            "mentions",
            "mention_roles",
            "attachments",
            "embeds",
            "components",
            "pinned",
            "flags",
            "webhook_id",
            "application_id",
        ] {
            assert!(original.get(key).is_some(), "the Message lacks {key}: {original}");
        }
        assert_eq!(original["type"], 0);
        assert_eq!(original["author"]["id"], APP_ID.to_string());
        assert_eq!(original["edited_timestamp"], Value::Null);
        let timestamp = original["timestamp"].as_str().expect("a timestamp");
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
            .expect("an RFC 3339 timestamp");
        assert!(
            original["id"]
                .as_str()
                .expect("a string id")
                .parse::<u64>()
                .expect("a snowflake")
                >= FIRST_SNOWFLAKE
        );

        let form = reqwest::multipart::Form::new()
            .text(
                "payload_json",
                json!({"content": "with a file", "attachments": [{"id": 0, "description": "a dot"}]}).to_string(),
            )
            .part(
                "files[0]",
                reqwest::multipart::Part::bytes(png(2, 3))
                    .file_name("dot.png")
                    .mime_str("image/png")
                    .expect("a mime type"),
            );
        let (status, edited) = send(client.patch(&original_url).multipart(form)).await;
        assert_eq!(status, 200);
        assert_eq!(edited["attachments"][0]["description"], "a dot");
        assert_eq!(edited["attachments"][0]["width"], 2);
        assert_eq!(edited["attachments"][0]["height"], 3);
        assert!(
            edited["attachments"][0]["proxy_url"]
                .as_str()
                .is_some_and(|proxy| proxy.starts_with("https://media.discordapp.net/attachments/"))
        );
        let (status, kept) = send(
            client
                .patch(&original_url)
                .json(&json!({"attachments": [{"id": edited["attachments"][0]["id"]}], "content": "kept"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(kept["attachments"][0]["id"], edited["attachments"][0]["id"]);
        let (status, cleared) = send(client.patch(&original_url).json(&json!({"attachments": []}))).await;
        assert_eq!(status, 200);
        assert_eq!(cleared["attachments"], json!([]));
        assert_eq!(cleared["content"], "kept");

        let (status, followup) = send(
            client
                .post(url(&fake, &format!("/webhooks/{APP_ID}/tok-9")))
                .json(&json!({"content": "follow"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(followup["webhook_id"], APP_ID.to_string());
        let followup_url = url(
            &fake,
            &format!(
                "/webhooks/{APP_ID}/tok-9/messages/{}",
                followup["id"].as_str().expect("an id")
            ),
        );
        let (status, _) = send(client.delete(&followup_url)).await;
        assert_eq!(status, 204);
        let (status, body) = send(client.get(&followup_url)).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Unknown Message", "code": 10008}))
        );
        let (status, body) = send(client.get(url(&fake, "/webhooks/42/tok-9/messages/@original"))).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Unknown Webhook", "code": 10015}))
        );

        let (status, message) = send(
            client
                .post(url(&fake, &format!("/channels/{CHANNEL}/messages")))
                .header("Authorization", &auth)
                .json(&json!({"content": "plain", "nonce": "n1"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(message["author"]["id"], BOT_ID.to_string());
        assert_eq!(message["channel_id"], CHANNEL.to_string());
        assert_eq!(message["nonce"], "n1");
        assert!(message.get("webhook_id").is_none());
        let (status, reply) = send(
            client
                .post(url(&fake, &format!("/channels/{CHANNEL}/messages")))
                .header("Authorization", &auth)
                .json(&json!({"content": "a reply", "message_reference": {"message_id": message["id"]}})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(reply["type"], 19);
        assert_eq!(reply["referenced_message"]["id"], message["id"]);
        let (status, listed) = send(
            client
                .get(url(&fake, &format!("/channels/{CHANNEL}/messages")))
                .header("Authorization", &auth),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(listed[0]["id"], reply["id"], "newest first");

        let (status, commands) = send(
            client
                .put(url(&fake, &format!("/applications/{APP_ID}/guilds/77/commands")))
                .header("Authorization", &auth)
                .json(&json!([{"name": "ping", "description": "Ping"}, {"name": "Open image", "type": 3}])),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(commands[0]["type"], 1);
        assert_eq!(commands[0]["guild_id"], "77");
        assert_eq!(commands[0]["application_id"], APP_ID.to_string());
        assert!(commands[0]["version"].is_string());
        assert_eq!(commands[1]["type"], 3);
        assert_eq!(commands[1]["description"], "");
        let (status, listed) = send(
            client
                .get(url(&fake, &format!("/applications/{APP_ID}/guilds/77/commands")))
                .header("Authorization", &auth),
        )
        .await;
        assert_eq!((status, listed), (200, commands));
        let (status, body) = send(
            client
                .put(url(&fake, &format!("/applications/{APP_ID}/commands")))
                .header("Authorization", &auth)
                .json(&json!([{"name": "imagine"}])),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["code"], 50035);
        assert_eq!(
            body["errors"]["0"]["description"]["_errors"][0]["code"],
            "BASE_TYPE_BAD_LENGTH"
        );
        let (status, body) = send(
            client
                .get(url(&fake, "/applications/999/commands"))
                .header("Authorization", &auth),
        )
        .await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Missing Access", "code": 50001}))
        );

        let (status, body) = send(client.get(url(&fake, "/nowhere"))).await;
        assert_eq!((status, body), (404, json!({"message": "404: Not Found", "code": 0})));
        let (status, body) = send(
            client
                .post(url(&fake, "/channels/abc/messages"))
                .header("Authorization", &auth)
                .json(&json!({"content": "x"})),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"]["channel_id"]["_errors"][0]["code"], "NUMBER_TYPE_COERCE");
        let (status, body) = send(
            client
                .post(url(&fake, &format!("/channels/{CHANNEL}/messages")))
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .body("{not json"),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                400,
                json!({"message": "The request body contains invalid JSON.", "code": 50109})
            )
        );
    }

    #[tokio::test]
    async fn wait_for_sees_calls_made_later() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        let http = http(&fake, TOKEN);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ChannelId::new(CHANNEL)
                .send_message(&http, CreateMessage::new().content("later"))
                .await
                .expect("send")
        });
        let calls = fake.wait_for("post", "/messages", 1, WAIT).await;
        assert_eq!(calls[0].body["content"], "later");
        sender.await.expect("the sender finishes");
    }

    #[tokio::test]
    #[should_panic(expected = "waited")]
    async fn wait_for_panics_on_timeout() {
        let fake = FakeDiscord::start(TOKEN, APP_ID).await;
        fake.wait_for("POST", "/messages", 1, Duration::from_millis(50)).await;
    }
}
