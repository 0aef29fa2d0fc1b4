//! A fake Telegram Bot API: a loopback HTTP server that speaks the real wire protocol
//! (<https://core.telegram.org/bots/api>) well enough for a bot built on teloxide to run against
//! it. Every method lives at `POST` (or `GET`) `/bot<token>/<method>`; parameters may come as a
//! JSON body, `application/x-www-form-urlencoded`, a query string or `multipart/form-data` (file
//! uploads, referenced by `attach://<part>` the way teloxide sends them, or sent directly as a
//! part named after the parameter). Answers are `{"ok": true, "result": ...}` or
//! `{"ok": false, "error_code": N, "description": "..."}` with the matching HTTP status and
//! Telegram's own descriptions, so that teloxide maps them to the same `ApiError`s.
//!
//! The fake keeps what a test needs to inspect: every call ([`ApiCall`], with uploaded files'
//! bytes), each chat's messages (text, caption, inline keyboard, deleted or not), the webhook
//! and a queue of updates that a test pushes ([`FakeTelegram::push_update`] and the builders
//! [`FakeTelegram::message_update`] and [`FakeTelegram::callback_update`]) and the bot fetches
//! with `getUpdates` (long polling, capped at 2 s).
//!
//! Methods: `getMe`, `getUpdates`, `setWebhook`, `deleteWebhook`, `getWebhookInfo`,
//! `sendMessage`, `editMessageText`, `editMessageCaption`, `editMessageReplyMarkup`,
//! `sendPhoto`, `sendVideo`, `sendAudio`, `sendDocument`, `sendChatAction`,
//! `answerCallbackQuery`, `deleteMessage`, `setMyCommands`, `getMyCommands`,
//! `deleteMyCommands`. Any other method answers `404 Not Found` (and is still recorded).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The first `message_id` in every chat (messages sent by the bot and messages in built
/// updates share one counter per chat, as in a private chat on Telegram).
const FIRST_MESSAGE_ID: i32 = 1000;

/// The longest a `getUpdates` long poll waits, whatever `timeout` the bot asks for.
const MAX_LONG_POLL: Duration = Duration::from_secs(2);

/// The bot's `username`.
const BOT_USERNAME: &str = "tessera_test_bot";

/// The bot's `first_name`.
const BOT_FIRST_NAME: &str = "Tessera Test Bot";

/// The bot's user id when the token does not start with `<digits>:` (real tokens do).
const DEFAULT_BOT_ID: u64 = 7_000_000_001;

/// The largest request body accepted (Telegram allows 50 MB uploads).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The description Telegram sends (after `Bad Request: `) when an edit changes nothing.
const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply markup are \
                            exactly the same as a current content and reply markup of the message";

/// One Bot API request the fake answered (with the right token), in arrival order.
#[derive(Debug, Clone)]
pub struct ApiCall {
    /// The method name as the client wrote it in the path (`sendMessage`).
    pub method: String,
    /// Every parameter as a JSON object, from the query string and the body together (the body
    /// wins). Values sent as text (form, query, multipart) are normalised: fields that hold JSON
    /// (`reply_markup`, `reply_parameters`, `entities`, `allowed_updates`, ...) are decoded,
    /// numeric ids and counts (`chat_id`, `message_id`, `offset`, ...) become numbers when they
    /// are numeric, and flags (`show_alert`, `drop_pending_updates`, ...) become booleans. A file
    /// sent as an upload keeps its reference text (`"attach://<part>"`) or is absent when it came
    /// as a part named after the parameter; its bytes are in [`ApiCall::files`].
    pub params: Value,
    /// The uploaded file parts of a `multipart/form-data` request.
    pub files: Vec<UploadedFile>,
    /// When the request arrived.
    pub at: SystemTime,
}

/// One file part of a `multipart/form-data` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The parameter the file belongs to (`photo`): the field that referenced it as
    /// `attach://<part>` (how teloxide uploads), or else the part's own name.
    pub field: String,
    /// The file name the client gave the part, if any (an empty name counts as none).
    pub file_name: Option<String>,
    /// The file's exact bytes.
    pub bytes: Vec<u8>,
}

/// A message the fake knows about, as a Bot API `Message` object.
#[derive(Debug, Clone)]
struct StoredMessage {
    /// The `Message` JSON (current text, caption and markup).
    json: Value,
    /// Whether `deleteMessage` removed it.
    deleted: bool,
}

/// An update waiting for `getUpdates`.
#[derive(Debug, Clone)]
struct PendingUpdate {
    /// Its `update_id`.
    id: i64,
    /// The `Update` JSON.
    update: Value,
    /// Pushed by [`FakeTelegram::repeat_update`]: delivered once even when its id is below the
    /// confirmed offset.
    redelivery: bool,
    /// Whether a `getUpdates` answer already contained it.
    delivered: bool,
}

/// What the fake remembers about a file it handed out a `file_id` for.
#[derive(Debug, Clone)]
struct FileInfo {
    /// The `file_unique_id`.
    unique_id: String,
    /// The size in bytes.
    size: u64,
    /// Pixel size for images (decoded from uploads when possible).
    dimensions: Option<(u32, u32)>,
    /// The uploaded file name, if any.
    file_name: Option<String>,
}

/// The mutable state the server and the test share.
#[derive(Debug)]
struct Inner {
    /// Every recorded call.
    calls: Vec<ApiCall>,
    /// Updates not yet confirmed by an offset, in push order.
    pending: Vec<PendingUpdate>,
    /// The next `update_id` to hand out.
    next_update_id: i64,
    /// The next `message_id` per chat.
    next_message_id: HashMap<i64, i32>,
    /// Every known message by `(chat_id, message_id)`.
    messages: HashMap<(i64, i32), StoredMessage>,
    /// The webhook `(url, secret_token)` while one is set.
    webhook: Option<(String, Option<String>)>,
    /// Files by `file_id`.
    files: HashMap<String, FileInfo>,
    /// A counter for file ids.
    next_file: u64,
    /// A counter for callback query ids.
    next_callback: u64,
    /// Callback query ids that exist (built or pushed).
    callback_ids: HashSet<String>,
    /// The commands from the last `setMyCommands`.
    commands: Value,
}

impl Inner {
    /// Hands out the next `update_id`.
    fn take_update_id(&mut self) -> i64 {
        let id = self.next_update_id;
        self.next_update_id += 1;
        id
    }

    /// Hands out the next `message_id` in `chat_id`.
    fn take_message_id(&mut self, chat_id: i64) -> i32 {
        let next = self.next_message_id.entry(chat_id).or_insert(FIRST_MESSAGE_ID);
        let id = *next;
        *next += 1;
        id
    }

    /// Remembers a message from an update (or overwrites it, for `edited_message`).
    fn store_message(&mut self, message: &Value) {
        let chat_id = message.pointer("/chat/id").and_then(Value::as_i64);
        let message_id = message
            .get("message_id")
            .and_then(Value::as_i64)
            .and_then(|id| i32::try_from(id).ok());
        if let (Some(chat_id), Some(message_id)) = (chat_id, message_id) {
            self.messages.insert(
                (chat_id, message_id),
                StoredMessage {
                    json: message.clone(),
                    deleted: false,
                },
            );
            let next = self.next_message_id.entry(chat_id).or_insert(FIRST_MESSAGE_ID);
            *next = (*next).max(message_id.saturating_add(1));
        }
    }

    /// The live (not deleted) message, if known.
    fn live_message(&self, chat_id: i64, message_id: i32) -> Option<&Value> {
        self.messages
            .get(&(chat_id, message_id))
            .filter(|stored| !stored.deleted)
            .map(|stored| &stored.json)
    }

    /// Hands out a new `file_id` and remembers the file.
    fn new_file(&mut self, kind: &str, size: u64, dimensions: Option<(u32, u32)>, file_name: Option<String>) -> String {
        self.next_file += 1;
        let n = self.next_file;
        let file_id = format!("fake-{kind}-{n:06}");
        let info = FileInfo {
            unique_id: format!("fakeu{n:06}"),
            size,
            dimensions,
            file_name,
        };
        self.files.insert(file_id.clone(), info);
        file_id
    }
}

/// The server's state: fixed identity, the shared state and counters that waiters watch.
#[derive(Debug)]
struct Shared {
    /// The only token accepted.
    token: String,
    /// The bot's user id.
    bot_id: u64,
    /// The mutable state.
    inner: Mutex<Inner>,
    /// How many calls have been recorded; bumped after each one.
    calls_seen: watch::Sender<usize>,
    /// How many updates have been pushed; bumped after each one (wakes long polls).
    updates_seen: watch::Sender<u64>,
}

impl Shared {
    /// Locks the state (a panic elsewhere while holding it does not hide it).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The bot as a `User` object (as in a message's `from`).
    fn bot_user(&self) -> Value {
        json!({"id": self.bot_id, "is_bot": true, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME})
    }

    /// Queues an update (assigning an `update_id` when it has none) and wakes long polls.
    fn push(&self, mut update: Value, redelivery: bool) {
        let Some(object) = update.as_object_mut() else {
            panic!("a Telegram update must be a JSON object, got {update}");
        };
        {
            let mut inner = self.lock();
            let id = match object.get("update_id").and_then(Value::as_i64) {
                Some(id) => id,
                None if redelivery => panic!("repeat_update needs an update with an update_id, got {update}"),
                None => {
                    let id = inner.take_update_id();
                    object.insert("update_id".to_owned(), json!(id));
                    id
                }
            };
            inner.next_update_id = inner.next_update_id.max(id + 1);
            if !redelivery {
                for key in [
                    "message",
                    "edited_message",
                    "channel_post",
                    "edited_channel_post",
                    "business_message",
                    "edited_business_message",
                ] {
                    if let Some(message) = object.get(key) {
                        inner.store_message(message);
                    }
                }
            }
            if let Some(query_id) = object.get("callback_query").and_then(|query| query.get("id")) {
                let query_id = query_id.as_str().map_or_else(|| query_id.to_string(), str::to_owned);
                inner.callback_ids.insert(query_id);
            }
            inner.pending.push(PendingUpdate {
                id,
                update,
                redelivery,
                delivered: false,
            });
        }
        self.updates_seen.send_modify(|seen| *seen += 1);
    }

    /// Records one answered call and wakes waiters.
    fn record(&self, call: ApiCall) {
        self.lock().calls.push(call);
        self.calls_seen.send_modify(|seen| *seen += 1);
    }
}

/// A loopback Telegram Bot API server on `127.0.0.1:<random port>` for one bot token. Point a
/// teloxide `Bot` at it with `Bot::new(token).set_api_url(fake.api_url().parse()?)`. The server
/// stops when this value is dropped.
#[derive(Debug)]
pub struct FakeTelegram {
    /// Where the server listens.
    address: SocketAddr,
    /// The state shared with the server task.
    shared: Arc<Shared>,
    /// The background server task, aborted on drop.
    task: JoinHandle<()>,
}

impl FakeTelegram {
    /// Binds `127.0.0.1:0` and serves the Bot API for `token` in a background tokio task (call
    /// inside a tokio runtime). Requests with any other token get `401 Unauthorized`. The bot's
    /// user id is the token's numeric prefix (`123456:ABC` gives 123456), or 7000000001.
    pub async fn start(token: &str) -> FakeTelegram {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the fake Telegram Bot API to 127.0.0.1:0");
        let address = listener
            .local_addr()
            .expect("read the fake Telegram Bot API's bound address");
        let bot_id = token
            .split_once(':')
            .and_then(|(id, _)| id.parse::<u64>().ok())
            .filter(|id| *id > 0)
            .unwrap_or(DEFAULT_BOT_ID);
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            bot_id,
            inner: Mutex::new(Inner {
                calls: Vec::new(),
                pending: Vec::new(),
                next_update_id: 1,
                next_message_id: HashMap::new(),
                messages: HashMap::new(),
                webhook: None,
                files: HashMap::new(),
                next_file: 0,
                next_callback: 0,
                callback_ids: HashSet::new(),
                commands: json!([]),
            }),
            calls_seen: watch::Sender::new(0),
            updates_seen: watch::Sender::new(0),
        });
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serve the fake Telegram Bot API");
        });
        FakeTelegram { address, shared, task }
    }

    /// `http://127.0.0.1:<port>`, what teloxide's `Bot::set_api_url` takes (with or without a
    /// trailing slash: teloxide appends the path segments `bot<token>` and `<method>`).
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.address.port())
    }

    /// The bot's user id (what `getMe` answers and what the bot's messages have in `from`).
    pub fn bot_user_id(&self) -> u64 {
        self.shared.bot_id
    }

    /// The bot's username, `tessera_test_bot`.
    pub fn bot_username(&self) -> &str {
        BOT_USERNAME
    }

    /// Queues an `Update` for `getUpdates` and wakes a waiting long poll. An update without
    /// `update_id` gets the next one; a message in it (`message`, `edited_message`, ...) is
    /// remembered, so that replies to it carry `reply_to_message` and callbacks can show it.
    /// Panics when `update` is not a JSON object.
    pub fn push_update(&self, update: Value) {
        self.shared.push(update, false);
    }

    /// Pushes `update` again with the same `update_id`, as Telegram does when it redelivers:
    /// the next `getUpdates` returns it even if the bot already confirmed that id (then it is
    /// dropped like any confirmed update). Panics when it has no `update_id`.
    pub fn repeat_update(&self, update: &Value) {
        self.shared.push(update.clone(), true);
    }

    /// Builds (does not push) a `message` update from user `user_id` in chat `chat_id` with
    /// the next `update_id` and the chat's next `message_id`. The chat is private when
    /// `chat_id > 0`, a supergroup otherwise; `from` is `{"id": user_id, "is_bot": false,
    /// "first_name": "User<id>", "username": "user<id>"}`. Text starting with `/` gets a
    /// `bot_command` entity over its first word, as Telegram adds.
    pub fn message_update(&self, chat_id: i64, user_id: u64, text: &str) -> Value {
        let mut inner = self.shared.lock();
        let update_id = inner.take_update_id();
        let message_id = inner.take_message_id(chat_id);
        let mut message = json!({
            "message_id": message_id,
            "from": user_json(user_id),
            "chat": chat_json(chat_id),
            "date": unix_now(),
            "text": text,
        });
        if text.starts_with('/') {
            let command = text.split_whitespace().next().unwrap_or(text);
            message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]);
        }
        json!({"update_id": update_id, "message": message})
    }

    /// Builds (does not push) a `callback_query` update: user `user_id` pressed a button with
    /// callback data `data` under message `message_id` of chat `chat_id`. `message` is the
    /// fake's current copy of that message, or an inaccessible one (`"date": 0`) when the fake
    /// does not know it or it was deleted. The query id is unique and `answerCallbackQuery`
    /// accepts it.
    pub fn callback_update(&self, user_id: u64, chat_id: i64, message_id: i32, data: &str) -> Value {
        let mut inner = self.shared.lock();
        let update_id = inner.take_update_id();
        inner.next_callback += 1;
        let query_id = format!("{}{:08}", self.shared.bot_id, inner.next_callback);
        inner.callback_ids.insert(query_id.clone());
        let message = match inner.live_message(chat_id, message_id) {
            Some(message) => message.clone(),
            None => json!({"message_id": message_id, "chat": chat_json(chat_id), "date": 0}),
        };
        json!({
            "update_id": update_id,
            "callback_query": {
                "id": query_id,
                "from": user_json(user_id),
                "message": message,
                "chat_instance": format!("{}", chat_id.unsigned_abs().wrapping_mul(2_654_435_761)),
                "data": data,
            },
        })
    }

    /// Every call answered so far (with the right token), in arrival order.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.shared.lock().calls.clone()
    }

    /// The calls of one method (`sendMessage`; compared case-insensitively), in arrival order.
    pub fn calls_of(&self, method: &str) -> Vec<ApiCall> {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|call| call.method.eq_ignore_ascii_case(method))
            .cloned()
            .collect()
    }

    /// Waits until at least `count` calls of `method` (case-insensitive) have been answered and
    /// returns them all (it may be more than `count`); panics listing every call seen when
    /// `timeout` passes first. A call is recorded after the fake applied it, so the state it
    /// changed is already visible.
    pub async fn wait_for(&self, method: &str, count: usize, timeout: Duration) -> Vec<ApiCall> {
        let mut seen = self.shared.calls_seen.subscribe();
        let enough = |_: &usize| self.count_of(method) >= count;
        match tokio::time::timeout(timeout, seen.wait_for(enough)).await {
            Ok(Ok(_)) => self.calls_of(method),
            Ok(Err(_)) => unreachable!("the fake holds the call counter's sender"),
            Err(_) => {
                let summary: Vec<String> = self
                    .calls()
                    .iter()
                    .map(|call| format!("{} {}", call.method, call.params))
                    .collect();
                panic!(
                    "fake Telegram on port {}: waited {timeout:?} for {count} {method} call(s), got {}; all calls: \
                     {summary:#?}",
                    self.address.port(),
                    self.count_of(method)
                )
            }
        }
    }

    /// How many calls of `method` were recorded.
    fn count_of(&self, method: &str) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|call| call.method.eq_ignore_ascii_case(method))
            .count()
    }

    /// The current state of message `message_id` in chat `chat_id` as a `Message` object (text,
    /// caption, `reply_markup` after edits; `edit_date` once edited), with `"deleted": true`
    /// added when it was deleted (no `deleted` key otherwise); `None` if it never existed.
    pub fn message(&self, chat_id: i64, message_id: i32) -> Option<Value> {
        self.shared.lock().messages.get(&(chat_id, message_id)).map(stored_view)
    }

    /// Every message the fake knows in chat `chat_id` (sent by the bot or pushed in updates),
    /// ordered by `message_id`, in the same form as [`FakeTelegram::message`].
    pub fn messages(&self, chat_id: i64) -> Vec<Value> {
        let inner = self.shared.lock();
        let mut ids: Vec<i32> = inner
            .messages
            .keys()
            .filter(|(chat, _)| *chat == chat_id)
            .map(|(_, id)| *id)
            .collect();
        ids.sort_unstable();
        ids.iter()
            .filter_map(|id| inner.messages.get(&(chat_id, *id)))
            .map(stored_view)
            .collect()
    }

    /// The webhook set by `setWebhook` as `(url, secret_token)`, or `None` when none is set.
    pub fn webhook(&self) -> Option<(String, Option<String>)> {
        self.shared.lock().webhook.clone()
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A stored message as [`FakeTelegram::message`] shows it.
fn stored_view(stored: &StoredMessage) -> Value {
    let mut json = stored.json.clone();
    if stored.deleted {
        json["deleted"] = Value::Bool(true);
    }
    json
}

/// A user `{"id", "is_bot": false, "first_name": "User<id>", "username": "user<id>"}`.
fn user_json(user_id: u64) -> Value {
    json!({"id": user_id, "is_bot": false, "first_name": format!("User{user_id}"), "username": format!("user{user_id}")})
}

/// A chat: private for positive ids, a supergroup otherwise.
fn chat_json(chat_id: i64) -> Value {
    if chat_id > 0 {
        json!({"id": chat_id, "type": "private", "first_name": format!("User{chat_id}"), "username": format!("user{chat_id}")})
    } else {
        json!({"id": chat_id, "type": "supergroup", "title": format!("Group {chat_id}")})
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Length in UTF-16 code units (how Telegram measures entity offsets and lengths).
fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// A failed call: HTTP status and Telegram's description.
#[derive(Debug)]
struct Failure {
    /// The HTTP status (also the `error_code`).
    status: StatusCode,
    /// The `description`.
    description: String,
}

/// `400 Bad Request: <what>`.
fn bad_request(what: impl std::fmt::Display) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        description: format!("Bad Request: {what}"),
    }
}

/// What a method answers.
type Outcome = Result<Value, Failure>;

/// The JSON response for an outcome.
fn json_reply(outcome: Outcome) -> Response {
    match outcome {
        Ok(result) => Json(json!({"ok": true, "result": result})).into_response(),
        Err(Failure { status, description }) => (
            status,
            Json(json!({"ok": false, "error_code": status.as_u16(), "description": description})),
        )
            .into_response(),
    }
}

/// Answers every request: checks the path and token, reads the parameters, runs the method and
/// records the call.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let at = SystemTime::now();
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    let (token, method) = match segments[..] {
        [bot_token, method] => match bot_token.strip_prefix("bot") {
            Some(token) => (token, method.to_owned()),
            None => return not_found(),
        },
        _ => return not_found(),
    };
    if token != shared.token {
        return json_reply(Err(Failure {
            status: StatusCode::UNAUTHORIZED,
            description: "Unauthorized".to_owned(),
        }));
    }
    let outcome = match read_params(request).await {
        Ok((params, files)) => {
            let outcome = run_method(&shared, &method, &params, &files).await;
            shared.record(ApiCall {
                method,
                params: Value::Object(params),
                files,
                at,
            });
            outcome
        }
        Err(failure) => {
            shared.record(ApiCall {
                method,
                params: json!({}),
                files: Vec::new(),
                at,
            });
            Err(failure)
        }
    };
    json_reply(outcome)
}

/// `404 Not Found` in the Bot API's shape.
fn not_found() -> Response {
    json_reply(Err(Failure {
        status: StatusCode::NOT_FOUND,
        description: "Not Found".to_owned(),
    }))
}

/// Reads the query string and the body (JSON, form or multipart) into one parameter object and
/// the uploaded files.
async fn read_params(request: Request) -> Result<(Map<String, Value>, Vec<UploadedFile>), Failure> {
    let mut params = Map::new();
    if let Some(query) = request.uri().query() {
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = decode_text(&name, value.into_owned());
            params.insert(name.into_owned(), value);
        }
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut files = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|rejection| bad_request(format!("can't parse multipart body: {}", rejection.body_text())))?;
        let mut texts = Vec::new();
        loop {
            let field = multipart
                .next_field()
                .await
                .map_err(|error| bad_request(format!("can't parse multipart body: {}", error.body_text())))?;
            let Some(field) = field else { break };
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let bytes = field
                .bytes()
                .await
                .map_err(|error| bad_request(format!("can't read multipart part {name}: {}", error.body_text())))?;
            match file_name {
                Some(file_name) => files.push(UploadedFile {
                    field: name,
                    file_name: Some(file_name).filter(|file_name| !file_name.is_empty()),
                    bytes: bytes.to_vec(),
                }),
                None => texts.push((name, String::from_utf8_lossy(&bytes).into_owned())),
            }
        }
        for (name, text) in texts {
            let attached = text
                .strip_prefix("attach://")
                .and_then(|part| files.iter_mut().find(|file| file.field == part));
            if let Some(file) = attached {
                file.field = name.clone();
            }
            let value = decode_text(&name, text);
            params.insert(name, value);
        }
    } else {
        let body = axum::body::to_bytes(request.into_body(), BODY_LIMIT)
            .await
            .map_err(|error| bad_request(format!("can't read the request body: {error}")))?;
        if content_type.starts_with("application/json") {
            if !body.iter().all(u8::is_ascii_whitespace) {
                let parsed: Value = serde_json::from_slice(&body)
                    .map_err(|error| bad_request(format!("can't parse JSON body: {error}")))?;
                let Value::Object(object) = parsed else {
                    return Err(bad_request("the JSON body must be an object"));
                };
                for (name, value) in object {
                    let value = match value {
                        Value::String(text) => decode_text(&name, text),
                        other => other,
                    };
                    params.insert(name, value);
                }
            }
        } else if !body.is_empty() {
            for (name, value) in url::form_urlencoded::parse(&body) {
                let value = decode_text(&name, value.into_owned());
                params.insert(name.into_owned(), value);
            }
        }
    }
    Ok((params, files))
}

/// Parameters whose text value is JSON.
const JSON_FIELDS: &[&str] = &[
    "reply_markup",
    "reply_parameters",
    "entities",
    "caption_entities",
    "link_preview_options",
    "allowed_updates",
    "commands",
    "scope",
    "media",
    "results",
    "reaction",
    "options",
    "explanation_entities",
    "question_entities",
];

/// Parameters whose text value is an integer.
const INT_FIELDS: &[&str] = &[
    "chat_id",
    "from_chat_id",
    "message_id",
    "reply_to_message_id",
    "message_thread_id",
    "user_id",
    "offset",
    "limit",
    "timeout",
    "width",
    "height",
    "duration",
    "cache_time",
    "max_connections",
];

/// Parameters whose text value is a boolean.
const BOOL_FIELDS: &[&str] = &[
    "disable_notification",
    "protect_content",
    "allow_sending_without_reply",
    "show_alert",
    "drop_pending_updates",
    "disable_web_page_preview",
    "has_spoiler",
    "supports_streaming",
    "show_caption_above_media",
    "allow_paid_broadcast",
];

/// Turns a parameter sent as text into the JSON value it stands for (see [`ApiCall::params`]).
fn decode_text(name: &str, text: String) -> Value {
    let json = JSON_FIELDS
        .contains(&name)
        .then(|| serde_json::from_str::<Value>(&text).ok())
        .flatten();
    if let Some(value) = json {
        return value;
    }
    let number = INT_FIELDS
        .contains(&name)
        .then(|| text.trim().parse::<i64>().ok())
        .flatten();
    if let Some(number) = number {
        return json!(number);
    }
    if BOOL_FIELDS.contains(&name) {
        match text.as_str() {
            "true" | "True" | "1" => return Value::Bool(true),
            "false" | "False" | "0" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(text)
}

/// An optional integer parameter (a number or numeric text).
fn opt_int(params: &Map<String, Value>, name: &str) -> Result<Option<i64>, Failure> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad_request(format!("invalid {name} specified"))),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad_request(format!("invalid {name} specified"))),
        Some(_) => Err(bad_request(format!("invalid {name} specified"))),
    }
}

/// A required `chat_id` (numeric; `@username` chats do not exist here).
fn chat_id(params: &Map<String, Value>) -> Result<i64, Failure> {
    match params.get("chat_id") {
        None | Some(Value::Null) => Err(bad_request("chat_id is empty")),
        Some(Value::String(text)) if text.is_empty() => Err(bad_request("chat_id is empty")),
        Some(_) => match opt_int(params, "chat_id") {
            Ok(Some(id)) if id != 0 => Ok(id),
            _ => Err(bad_request("chat not found")),
        },
    }
}

/// A required `message_id`.
fn message_id(params: &Map<String, Value>) -> Result<i32, Failure> {
    match opt_int(params, "message_id")? {
        None => Err(bad_request("message identifier is not specified")),
        Some(id) => i32::try_from(id).map_err(|_| bad_request("message identifier is invalid")),
    }
}

/// An optional text parameter (numbers and booleans are written out).
fn opt_text(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// An optional boolean parameter.
fn flag(params: &Map<String, Value>, name: &str) -> bool {
    match params.get(name) {
        Some(Value::Bool(value)) => *value,
        Some(Value::String(text)) => text == "true" || text == "1",
        Some(Value::Number(number)) => number.as_i64() == Some(1),
        _ => false,
    }
}

/// The inline keyboard a message would show for this `reply_markup` parameter (other reply
/// markups are not part of a `Message`; an empty keyboard is no keyboard).
fn inline_markup(params: &Map<String, Value>) -> Result<Option<Value>, Failure> {
    let markup = match params.get("reply_markup") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) if text.is_empty() => return Ok(None),
        Some(Value::String(_)) => return Err(bad_request("can't parse reply keyboard markup JSON object")),
        Some(markup) => markup,
    };
    match markup.get("inline_keyboard") {
        None => Ok(None),
        Some(Value::Array(rows)) if rows.iter().all(|row| row.as_array().is_some_and(Vec::is_empty)) => Ok(None),
        Some(Value::Array(rows)) if rows.iter().all(Value::is_array) => Ok(Some(markup.clone())),
        Some(_) => Err(bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object",
        )),
    }
}

/// Runs one method (matched case-insensitively).
async fn run_method(shared: &Shared, method: &str, params: &Map<String, Value>, files: &[UploadedFile]) -> Outcome {
    match method.to_ascii_lowercase().as_str() {
        "getme" => {
            let mut me = shared.bot_user();
            me["can_join_groups"] = json!(true);
            me["can_read_all_group_messages"] = json!(false);
            me["supports_inline_queries"] = json!(false);
            me["can_connect_to_business"] = json!(false);
            me["has_main_web_app"] = json!(false);
            Ok(me)
        }
        "getupdates" => get_updates(shared, params).await,
        "setwebhook" => {
            let url = opt_text(params, "url").unwrap_or_default();
            let secret = opt_text(params, "secret_token").filter(|secret| !secret.is_empty());
            let mut inner = shared.lock();
            if flag(params, "drop_pending_updates") {
                inner.pending.clear();
            }
            inner.webhook = if url.is_empty() { None } else { Some((url, secret)) };
            Ok(json!(true))
        }
        "deletewebhook" => {
            let mut inner = shared.lock();
            if flag(params, "drop_pending_updates") {
                inner.pending.clear();
            }
            inner.webhook = None;
            Ok(json!(true))
        }
        "getwebhookinfo" => {
            let inner = shared.lock();
            let url = inner.webhook.as_ref().map(|(url, _)| url.clone()).unwrap_or_default();
            Ok(json!({"url": url, "has_custom_certificate": false, "pending_update_count": inner.pending.len()}))
        }
        "sendmessage" => send_message(shared, params),
        "editmessagetext" => edit_message(shared, params, Edit::Text),
        "editmessagecaption" => edit_message(shared, params, Edit::Caption),
        "editmessagereplymarkup" => edit_message(shared, params, Edit::Markup),
        "sendphoto" => send_media(shared, params, files, Media::Photo),
        "sendvideo" => send_media(shared, params, files, Media::Video),
        "sendaudio" => send_media(shared, params, files, Media::Audio),
        "senddocument" => send_media(shared, params, files, Media::Document),
        "sendchataction" => {
            chat_id(params)?;
            match opt_text(params, "action") {
                Some(action) if !action.is_empty() => Ok(json!(true)),
                _ => Err(bad_request("wrong parameter action in request")),
            }
        }
        "answercallbackquery" => {
            let Some(query_id) = opt_text(params, "callback_query_id").filter(|id| !id.is_empty()) else {
                return Err(bad_request("query_id is empty"));
            };
            if shared.lock().callback_ids.contains(&query_id) {
                Ok(json!(true))
            } else {
                Err(bad_request(
                    "query is too old and response timeout expired or query id is invalid",
                ))
            }
        }
        "deletemessage" => {
            let chat_id = chat_id(params)?;
            let message_id = message_id(params)?;
            let mut inner = shared.lock();
            match inner.messages.get_mut(&(chat_id, message_id)) {
                Some(stored) if !stored.deleted => {
                    stored.deleted = true;
                    Ok(json!(true))
                }
                _ => Err(bad_request("message to delete not found")),
            }
        }
        "setmycommands" => {
            let commands = params.get("commands").cloned().unwrap_or_else(|| json!([]));
            if !commands.is_array() {
                return Err(bad_request("can't parse commands JSON object"));
            }
            shared.lock().commands = commands;
            Ok(json!(true))
        }
        "getmycommands" => Ok(shared.lock().commands.clone()),
        "deletemycommands" => {
            shared.lock().commands = json!([]);
            Ok(json!(true))
        }
        _ => Err(Failure {
            status: StatusCode::NOT_FOUND,
            description: "Not Found".to_owned(),
        }),
    }
}

/// `getUpdates`: confirms updates below `offset`, then answers the pending ones at once or
/// waits (up to `timeout`, capped at [`MAX_LONG_POLL`]) for one to be pushed.
async fn get_updates(shared: &Shared, params: &Map<String, Value>) -> Outcome {
    let offset = opt_int(params, "offset")?.unwrap_or(0);
    let limit = opt_int(params, "limit")?.unwrap_or(100).clamp(1, 100);
    let limit = usize::try_from(limit).unwrap_or(100);
    let timeout = opt_int(params, "timeout")?.unwrap_or(0).max(0);
    let wait = Duration::from_secs(u64::try_from(timeout).unwrap_or(0)).min(MAX_LONG_POLL);
    let deadline = Instant::now() + wait;
    let mut pushed = shared.updates_seen.subscribe();
    loop {
        {
            let mut inner = shared.lock();
            if inner.webhook.is_some() {
                return Err(Failure {
                    status: StatusCode::CONFLICT,
                    description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to \
                                  delete the webhook first"
                        .to_owned(),
                });
            }
            if offset > 0 {
                inner
                    .pending
                    .retain(|pending| pending.id >= offset || (pending.redelivery && !pending.delivered));
            }
            let mut ready = Vec::new();
            for pending in &mut inner.pending {
                if ready.len() == limit {
                    break;
                }
                if pending.id >= offset || (pending.redelivery && !pending.delivered) {
                    pending.delivered = true;
                    ready.push(pending.update.clone());
                }
            }
            if !ready.is_empty() || Instant::now() >= deadline {
                return Ok(Value::Array(ready));
            }
        }
        // Woken by a push, or timed out: either way look again (the deadline check answers).
        let remaining = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(remaining, pushed.changed()).await;
    }
}

/// The common part of a message the bot sends to `chat_id`: id, `from`, `chat`, `date`, the
/// replied-to message when known, and the inline keyboard.
fn new_bot_message(
    shared: &Shared,
    inner: &mut Inner,
    chat_id: i64,
    params: &Map<String, Value>,
) -> Result<Value, Failure> {
    let markup = inline_markup(params)?;
    let (reply_chat, reply_id) = match params.get("reply_parameters") {
        Some(Value::Object(reply)) => {
            let reply_chat = opt_int(reply, "chat_id").ok().flatten().unwrap_or(chat_id);
            (reply_chat, opt_int(reply, "message_id")?)
        }
        Some(Value::String(text)) if !text.is_empty() => {
            return Err(bad_request("can't parse reply parameters JSON object"));
        }
        _ => (chat_id, opt_int(params, "reply_to_message_id")?),
    };
    let message_id = inner.take_message_id(chat_id);
    let mut message = json!({
        "message_id": message_id,
        "from": shared.bot_user(),
        "chat": chat_json(chat_id),
        "date": unix_now(),
    });
    let replied = reply_id
        .and_then(|id| i32::try_from(id).ok())
        .and_then(|id| inner.live_message(reply_chat, id));
    if let Some(replied) = replied {
        let mut replied = replied.clone();
        if let Some(replied) = replied.as_object_mut() {
            // Telegram does not nest replies more than one level.
            replied.remove("reply_to_message");
        }
        message["reply_to_message"] = replied;
    }
    if let Some(markup) = markup {
        message["reply_markup"] = markup;
    }
    Ok(message)
}

/// `sendMessage`.
fn send_message(shared: &Shared, params: &Map<String, Value>) -> Outcome {
    let chat_id = chat_id(params)?;
    let text = opt_text(params, "text").unwrap_or_default();
    if text.trim().is_empty() {
        return Err(bad_request("message text is empty"));
    }
    let mut inner = shared.lock();
    let mut message = new_bot_message(shared, &mut inner, chat_id, params)?;
    message["text"] = json!(text);
    inner.store_message(&message);
    Ok(message)
}

/// Which part of a message an edit method changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    /// `editMessageText`.
    Text,
    /// `editMessageCaption`.
    Caption,
    /// `editMessageReplyMarkup`.
    Markup,
}

/// `editMessageText`, `editMessageCaption` and `editMessageReplyMarkup`.
fn edit_message(shared: &Shared, params: &Map<String, Value>, edit: Edit) -> Outcome {
    if params.get("chat_id").is_none() && opt_text(params, "inline_message_id").is_some_and(|id| !id.is_empty()) {
        // Inline messages are not tracked; Telegram answers `true` for them.
        return Ok(json!(true));
    }
    let chat_id = chat_id(params)?;
    let message_id = message_id(params)?;
    let markup = inline_markup(params)?;
    let new_text = match edit {
        Edit::Text => {
            let text = opt_text(params, "text").unwrap_or_default();
            if text.trim().is_empty() {
                return Err(bad_request("message text is empty"));
            }
            Some(text)
        }
        Edit::Caption => opt_text(params, "caption").filter(|caption| !caption.is_empty()),
        Edit::Markup => None,
    };
    let mut inner = shared.lock();
    let bot_id = shared.bot_id;
    let Some(stored) = inner
        .messages
        .get_mut(&(chat_id, message_id))
        .filter(|stored| !stored.deleted)
    else {
        return Err(bad_request("message to edit not found"));
    };
    let message = &mut stored.json;
    if message.pointer("/from/id").and_then(Value::as_u64) != Some(bot_id) {
        return Err(bad_request("message can't be edited"));
    }
    let key = match edit {
        Edit::Text if message.get("text").is_none() => {
            return Err(bad_request("there is no text in the message to edit"));
        }
        Edit::Caption if message.get("text").is_some() => {
            return Err(bad_request("there is no caption in the message to edit"));
        }
        Edit::Text => Some("text"),
        Edit::Caption => Some("caption"),
        Edit::Markup => None,
    };
    let text_same = key.is_none_or(|key| message.get(key).and_then(Value::as_str) == new_text.as_deref());
    let markup_same = message.get("reply_markup") == markup.as_ref();
    if text_same && markup_same {
        return Err(bad_request(NOT_MODIFIED));
    }
    let object = message.as_object_mut().expect("stored messages are objects");
    if let Some(key) = key {
        match new_text {
            Some(text) => object.insert(key.to_owned(), json!(text)),
            None => object.remove(key),
        };
    }
    match markup {
        Some(markup) => object.insert("reply_markup".to_owned(), markup),
        None => object.remove("reply_markup"),
    };
    object.insert("edit_date".to_owned(), json!(unix_now()));
    Ok(message.clone())
}

/// The media kinds of the `send*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    /// `sendPhoto` (`photo`).
    Photo,
    /// `sendVideo` (`video`).
    Video,
    /// `sendAudio` (`audio`).
    Audio,
    /// `sendDocument` (`document`).
    Document,
}

impl Media {
    /// The parameter (and `Message` field) name.
    fn field(self) -> &'static str {
        match self {
            Media::Photo => "photo",
            Media::Video => "video",
            Media::Audio => "audio",
            Media::Document => "document",
        }
    }
}

/// `sendPhoto`, `sendVideo`, `sendAudio` and `sendDocument`: an uploaded file part, or a
/// `file_id` the fake handed out before, or an `http(s)` URL.
fn send_media(shared: &Shared, params: &Map<String, Value>, files: &[UploadedFile], media: Media) -> Outcome {
    let chat_id = chat_id(params)?;
    let field = media.field();
    let mut inner = shared.lock();
    let file_id = match files.iter().find(|file| file.field == field) {
        Some(upload) => {
            let dimensions = match media {
                Media::Photo => image_dimensions(&upload.bytes),
                _ => None,
            };
            let size = u64::try_from(upload.bytes.len()).unwrap_or(u64::MAX);
            inner.new_file(field, size, dimensions, upload.file_name.clone())
        }
        None => match opt_text(params, field).filter(|value| !value.is_empty()) {
            None => return Err(bad_request(format!("there is no {field} in the request"))),
            Some(reference) if inner.files.contains_key(&reference) => reference,
            Some(reference) if reference.starts_with("http://") || reference.starts_with("https://") => {
                let file_name = reference
                    .rsplit('/')
                    .next()
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned);
                inner.new_file(field, 0, None, file_name)
            }
            Some(_) => return Err(bad_request("wrong file identifier/HTTP URL specified")),
        },
    };
    let info = inner.files[&file_id].clone();
    let mut file = json!({"file_id": file_id, "file_unique_id": info.unique_id, "file_size": info.size});
    let int_param = |name: &str, default: i64| opt_int(params, name).ok().flatten().unwrap_or(default);
    match media {
        Media::Photo => {
            let (width, height) = info.dimensions.unwrap_or((800, 600));
            file["width"] = json!(width);
            file["height"] = json!(height);
        }
        Media::Video => {
            let (width, height) = info.dimensions.unwrap_or((640, 360));
            file["width"] = json!(int_param("width", i64::from(width)));
            file["height"] = json!(int_param("height", i64::from(height)));
            file["duration"] = json!(int_param("duration", 1));
        }
        Media::Audio => {
            file["duration"] = json!(int_param("duration", 1));
            for name in ["performer", "title"] {
                if let Some(value) = opt_text(params, name) {
                    file[name] = json!(value);
                }
            }
        }
        Media::Document => {}
    }
    if let Some(file_name) = info.file_name.as_ref().filter(|_| media != Media::Photo) {
        file["file_name"] = json!(file_name);
        if let Some(mime) = mime_for(file_name) {
            file["mime_type"] = json!(mime);
        }
    }
    let mut message = new_bot_message(shared, &mut inner, chat_id, params)?;
    message[field] = if media == Media::Photo { json!([file]) } else { file };
    if let Some(caption) = opt_text(params, "caption").filter(|caption| !caption.is_empty()) {
        message["caption"] = json!(caption);
    }
    inner.store_message(&message);
    Ok(message)
}

/// The pixel size of an image the `image` crate can read (PNG, JPEG).
fn image_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// A MIME type guessed from a file name's extension.
fn mime_for(file_name: &str) -> Option<&'static str> {
    let (_, extension) = file_name.rsplit_once('.')?;
    let mime = match extension.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "m4a" => "audio/mp4",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "json" => "application/json",
        "txt" => "text/plain",
        _ => return None,
    };
    Some(mime)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use teloxide::payloads::setters::*;
    use teloxide::prelude::*;
    use teloxide::types::{
        FileId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageId, ReplyParameters, UpdateId, UpdateKind,
    };
    use teloxide::{ApiError, RequestError};

    use super::*;

    /// The token every test uses (its prefix is the bot's id).
    const TOKEN: &str = "123456789:AAFakeTokenForTesseraTests";

    /// A teloxide bot pointed at the fake.
    fn bot(fake: &FakeTelegram) -> Bot {
        Bot::new(TOKEN).set_api_url(fake.api_url().parse().expect("the fake's URL parses"))
    }

    /// A small real PNG of `width` x `height`.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 90]))
            .write_to(&mut bytes, image::ImageFormat::Png)
            .expect("encode a PNG");
        bytes.into_inner()
    }

    /// A one-button inline keyboard.
    fn keyboard(text: &str, data: &str) -> InlineKeyboardMarkup {
        InlineKeyboardMarkup::new([[InlineKeyboardButton::callback(text, data)]])
    }

    /// The only update in `updates`, as a message.
    fn only_message(updates: &[Update]) -> &Message {
        assert_eq!(updates.len(), 1, "expected one update, got {updates:#?}");
        match &updates[0].kind {
            UpdateKind::Message(message) => message,
            other => panic!("expected a message update, got {other:#?}"),
        }
    }

    #[tokio::test]
    async fn get_me_answers_the_bot_user() {
        let fake = FakeTelegram::start(TOKEN).await;
        let me = bot(&fake).get_me().await.expect("getMe");
        assert_eq!(me.id, UserId(123_456_789));
        assert_eq!(fake.bot_user_id(), 123_456_789);
        assert!(me.is_bot);
        assert_eq!(me.username(), "tessera_test_bot");
        assert_eq!(fake.bot_username(), "tessera_test_bot");
        assert_eq!(fake.calls_of("GETME").len(), 1);
        assert_eq!(fake.calls()[0].method, "GetMe");
    }

    #[tokio::test]
    async fn api_url_works_with_and_without_a_trailing_slash() {
        let fake = FakeTelegram::start(TOKEN).await;
        assert!(!fake.api_url().ends_with('/'));
        let with_slash = Bot::new(TOKEN).set_api_url(format!("{}/", fake.api_url()).parse().expect("URL"));
        with_slash.get_me().await.expect("getMe with a trailing slash");
        bot(&fake).get_me().await.expect("getMe without a trailing slash");
        assert_eq!(fake.calls_of("getMe").len(), 2);
    }

    #[tokio::test]
    async fn get_updates_returns_a_pushed_message_that_teloxide_parses() {
        let fake = FakeTelegram::start(TOKEN).await;
        let update = fake.message_update(42, 42, "/imagine a red fox");
        let update_id = update["update_id"].as_i64().expect("update_id");
        let message_id = update["message"]["message_id"].as_i64().expect("message_id");
        assert_eq!(message_id, 1000);
        fake.push_update(update);
        let updates = bot(&fake).get_updates().await.expect("getUpdates");
        assert_eq!(updates[0].id, UpdateId(u32::try_from(update_id).expect("small id")));
        let message = only_message(&updates);
        assert_eq!(message.text(), Some("/imagine a red fox"));
        assert_eq!(message.from.as_ref().map(|user| user.id), Some(UserId(42)));
        assert_eq!(
            message.from.as_ref().and_then(|user| user.username.clone()).as_deref(),
            Some("user42")
        );
        assert_eq!(message.chat.id, ChatId(42));
        assert!(message.chat.is_private());
        assert_eq!(message.id, MessageId(1000));
        let entities = message.entities().expect("entities");
        assert_eq!(entities.len(), 1);
        assert_eq!(entities[0].kind, teloxide::types::MessageEntityKind::BotCommand);
        assert_eq!((entities[0].offset, entities[0].length), (0, "/imagine".len()));
        // The pushed message is known to the fake.
        assert_eq!(fake.message(42, 1000).expect("stored")["text"], "/imagine a red fox");

        // A group chat is a supergroup; plain text has no entities.
        fake.push_update(fake.message_update(-100_777, 7, "hello"));
        let updates = bot(&fake)
            .get_updates()
            .offset(i32::try_from(update_id + 1).expect("small"))
            .await
            .expect("getUpdates");
        let message = only_message(&updates);
        assert!(message.chat.is_supergroup());
        assert_eq!(message.chat.id, ChatId(-100_777));
        assert!(message.entities().is_none_or(<[_]>::is_empty));
    }

    #[tokio::test]
    async fn long_poll_times_out_empty_and_wakes_on_push() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        let started = Instant::now();
        let updates = bot.get_updates().timeout(1).await.expect("getUpdates");
        let waited = started.elapsed();
        assert!(updates.is_empty());
        assert!(waited >= Duration::from_millis(900), "returned after {waited:?}");
        assert!(waited < Duration::from_secs(5), "returned after {waited:?}");

        // A huge timeout is capped at 2 s.
        let started = Instant::now();
        assert!(bot.get_updates().timeout(600).await.expect("getUpdates").is_empty());
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(1900), "returned after {waited:?}");
        assert!(waited < Duration::from_secs(5), "returned after {waited:?}");

        // A push during the poll answers it at once.
        let poll = tokio::spawn({
            let bot = bot.clone();
            async move { bot.get_updates().timeout(30).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        fake.push_update(fake.message_update(5, 5, "wake up"));
        let updates = poll.await.expect("join").expect("getUpdates");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "returned after {:?}",
            started.elapsed()
        );
        assert_eq!(only_message(&updates).text(), Some("wake up"));
    }

    #[tokio::test]
    async fn offset_confirms_and_drops_updates() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        fake.push_update(fake.message_update(1, 1, "one"));
        fake.push_update(fake.message_update(1, 1, "two"));
        fake.push_update(fake.message_update(1, 1, "three"));
        let first = bot.get_updates().limit(2).await.expect("getUpdates");
        assert_eq!(first.len(), 2);
        // Not confirmed yet: asked again, they come again.
        let again = bot.get_updates().await.expect("getUpdates");
        assert_eq!(again.len(), 3);
        let next = i32::try_from(first[1].id.0 + 1).expect("small");
        let rest = bot.get_updates().offset(next).await.expect("getUpdates");
        assert_eq!(rest.len(), 1);
        assert_eq!(only_message(&rest).text(), Some("three"));
        // The first two were dropped: even without an offset they do not come back.
        let after = bot.get_updates().await.expect("getUpdates");
        assert_eq!(after.len(), 1);
        let done = i32::try_from(after[0].id.0 + 1).expect("small");
        assert!(bot.get_updates().offset(done).await.expect("getUpdates").is_empty());
        assert!(bot.get_updates().await.expect("getUpdates").is_empty());
        assert_eq!(fake.calls_of("getUpdates")[2].params["offset"], json!(next));
    }

    #[tokio::test]
    async fn repeat_update_redelivers_the_same_id() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        let update = fake.message_update(9, 9, "/start");
        fake.push_update(update.clone());
        let first = bot.get_updates().await.expect("getUpdates");
        let id = first[0].id;
        let next = i32::try_from(id.0 + 1).expect("small");
        assert!(bot.get_updates().offset(next).await.expect("getUpdates").is_empty());
        fake.repeat_update(&update);
        let redelivered = bot.get_updates().offset(next).await.expect("getUpdates");
        assert_eq!(redelivered.len(), 1);
        assert_eq!(redelivered[0].id, id);
        assert_eq!(only_message(&redelivered).text(), Some("/start"));
        // Confirmed again, it is gone.
        assert!(bot.get_updates().offset(next).await.expect("getUpdates").is_empty());
    }

    #[tokio::test]
    async fn send_message_with_a_reply_and_an_inline_keyboard() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        fake.push_update(fake.message_update(42, 42, "/imagine a cat"));
        let sent = bot
            .send_message(ChatId(42), "Queued: a cat")
            .reply_parameters(ReplyParameters::new(MessageId(1000)))
            .reply_markup(keyboard("Cancel", "cancel:job1"))
            .await
            .expect("sendMessage");
        assert_eq!(sent.id, MessageId(1001));
        assert_eq!(sent.chat.id, ChatId(42));
        assert_eq!(sent.text(), Some("Queued: a cat"));
        assert_eq!(sent.from.as_ref().map(|user| user.id), Some(UserId(123_456_789)));
        assert!(sent.from.as_ref().is_some_and(|user| user.is_bot));
        let replied = sent.reply_to_message().expect("reply_to_message");
        assert_eq!(replied.id, MessageId(1000));
        assert_eq!(replied.text(), Some("/imagine a cat"));
        let markup = sent.reply_markup().expect("reply_markup");
        assert_eq!(markup.inline_keyboard[0][0].text, "Cancel");

        let call = &fake.calls_of("sendMessage")[0];
        assert_eq!(call.params["chat_id"], 42);
        assert_eq!(call.params["reply_parameters"]["message_id"], 1000);
        assert_eq!(
            call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
            "cancel:job1"
        );
        let stored = fake.message(42, 1001).expect("stored");
        assert_eq!(stored["text"], "Queued: a cat");
        assert_eq!(stored["reply_markup"]["inline_keyboard"][0][0]["text"], "Cancel");
        assert!(stored.get("deleted").is_none());
        assert!(fake.message(42, 1002).is_none());
        assert_eq!(fake.messages(42).len(), 2);

        // The legacy reply_to_message_id works too, and a second chat counts from 1000.
        let raw = reqwest::Client::new()
            .post(format!("{}/bot{TOKEN}/sendMessage", fake.api_url()))
            .json(&json!({"chat_id": 42, "text": "again", "reply_to_message_id": 1001}))
            .send()
            .await
            .expect("send")
            .json::<Value>()
            .await
            .expect("JSON");
        assert_eq!(raw["result"]["reply_to_message"]["message_id"], 1001);
        assert!(raw["result"]["reply_to_message"].get("reply_to_message").is_none());
        let other = bot.send_message(ChatId(-1005), "group").await.expect("sendMessage");
        assert_eq!(other.id, MessageId(1000));
        assert!(other.chat.is_supergroup());

        let empty = bot.send_message(ChatId(42), "").await.expect_err("empty text");
        assert!(
            matches!(empty, RequestError::Api(ApiError::MessageTextIsEmpty)),
            "{empty:?}"
        );
    }

    #[tokio::test]
    async fn edit_message_text_then_the_same_text_is_not_modified() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        let sent = bot
            .send_message(ChatId(42), "Rendering 10%")
            .reply_markup(keyboard("Cancel", "cancel:1"))
            .await
            .expect("sendMessage");
        let edited = bot
            .edit_message_text(ChatId(42), sent.id, "Rendering 50%")
            .reply_markup(keyboard("Cancel", "cancel:1"))
            .await
            .expect("editMessageText");
        assert_eq!(edited.text(), Some("Rendering 50%"));
        assert!(edited.edit_date().is_some());
        let same = bot
            .edit_message_text(ChatId(42), sent.id, "Rendering 50%")
            .reply_markup(keyboard("Cancel", "cancel:1"))
            .await
            .expect_err("same content");
        assert!(
            matches!(same, RequestError::Api(ApiError::MessageNotModified)),
            "{same:?}"
        );
        // Same text without the keyboard is a change (the keyboard goes away).
        let bare = bot
            .edit_message_text(ChatId(42), sent.id, "Rendering 50%")
            .await
            .expect("editMessageText");
        assert!(bare.reply_markup().is_none());
        let stored = fake.message(42, sent.id.0).expect("stored");
        assert_eq!(stored["text"], "Rendering 50%");
        assert!(stored.get("reply_markup").is_none());

        // The keyboard alone.
        let with_keyboard = bot
            .edit_message_reply_markup(ChatId(42), sent.id)
            .reply_markup(keyboard("Again", "again:1"))
            .await
            .expect("editMessageReplyMarkup");
        assert_eq!(
            with_keyboard.reply_markup().expect("markup").inline_keyboard[0][0].text,
            "Again"
        );
        let same = bot
            .edit_message_reply_markup(ChatId(42), sent.id)
            .reply_markup(keyboard("Again", "again:1"))
            .await
            .expect_err("same markup");
        assert!(
            matches!(same, RequestError::Api(ApiError::MessageNotModified)),
            "{same:?}"
        );

        let missing = bot
            .edit_message_text(ChatId(42), MessageId(999_999), "x")
            .await
            .expect_err("missing message");
        assert!(
            matches!(missing, RequestError::Api(ApiError::MessageToEditNotFound)),
            "{missing:?}"
        );
        assert_eq!(fake.calls_of("editMessageText").len(), 4);
    }

    #[tokio::test]
    async fn send_photo_records_the_exact_bytes() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        let bytes = png(64, 48);
        let sent = bot
            .send_photo(ChatId(42), InputFile::memory(bytes.clone()).file_name("x.png"))
            .caption("a red fox")
            .reply_markup(keyboard("Upscale", "upscale:1"))
            .await
            .expect("sendPhoto");
        let sizes = sent.photo().expect("photo");
        let largest = sizes.last().expect("a size");
        assert_eq!((largest.width, largest.height), (64, 48));
        assert_eq!(largest.file.size as usize, bytes.len());
        assert_eq!(sent.caption(), Some("a red fox"));
        assert_eq!(
            sent.reply_markup().expect("markup").inline_keyboard[0][0].text,
            "Upscale"
        );

        let call = &fake.calls_of("sendPhoto")[0];
        assert_eq!(
            call.files,
            vec![UploadedFile {
                field: "photo".to_owned(),
                file_name: Some("x.png".to_owned()),
                bytes: bytes.clone(),
            }]
        );
        assert_eq!(call.params["chat_id"], 42);
        assert_eq!(call.params["caption"], "a red fox");
        assert_eq!(
            call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
            "upscale:1"
        );
        let stored = fake.message(42, sent.id.0).expect("stored");
        assert_eq!(stored["caption"], "a red fox");

        // The file_id can be sent again without uploading.
        let file_id = largest.file.id.clone();
        let again = bot
            .send_photo(ChatId(42), InputFile::file_id(file_id.clone()))
            .await
            .expect("sendPhoto by file_id");
        let size = again.photo().expect("photo").last().expect("a size").clone();
        assert_eq!(size.file.id, file_id);
        assert_eq!((size.width, size.height), (64, 48));
        let unknown = bot
            .send_photo(ChatId(42), InputFile::file_id(FileId("nope".to_owned())))
            .await
            .expect_err("unknown file_id");
        assert!(matches!(unknown, RequestError::Api(_)), "{unknown:?}");

        // A caption edit on the photo.
        let recaptioned = bot
            .edit_message_caption(ChatId(42), sent.id)
            .caption("a blue fox")
            .await
            .expect("editMessageCaption");
        assert_eq!(recaptioned.caption(), Some("a blue fox"));
    }

    #[tokio::test]
    async fn send_video_and_audio_answer_media_messages() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        let video = bot
            .send_video(ChatId(42), InputFile::memory(vec![0_u8, 1, 2, 3]).file_name("clip.mp4"))
            .width(320)
            .height(240)
            .duration(3)
            .caption("clip")
            .await
            .expect("sendVideo");
        let meta = video.video().expect("video");
        assert_eq!((meta.width, meta.height, meta.duration.seconds()), (320, 240, 3));
        assert_eq!(meta.file_name.as_deref(), Some("clip.mp4"));
        assert_eq!(
            meta.mime_type.as_ref().map(ToString::to_string).as_deref(),
            Some("video/mp4")
        );
        assert_eq!(fake.calls_of("sendVideo")[0].files[0].bytes, vec![0_u8, 1, 2, 3]);
        assert_eq!(fake.calls_of("sendVideo")[0].files[0].field, "video");

        let audio = bot
            .send_audio(ChatId(42), InputFile::memory(b"ID3fake".to_vec()).file_name("song.mp3"))
            .title("Song")
            .await
            .expect("sendAudio");
        let meta = audio.audio().expect("audio");
        assert_eq!(meta.title.as_deref(), Some("Song"));
        assert_eq!(meta.file.size, 7);
        assert_eq!(fake.calls_of("sendAudio")[0].files[0].field, "audio");
    }

    #[tokio::test]
    async fn callback_update_is_parsed_and_answered() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        let sent = bot
            .send_message(ChatId(42), "Done")
            .reply_markup(keyboard("Again", "again:1"))
            .await
            .expect("sendMessage");
        fake.push_update(fake.callback_update(42, 42, sent.id.0, "again:1"));
        // One for a message the fake never saw: an inaccessible message.
        fake.push_update(fake.callback_update(42, 42, 5, "old"));
        let updates = bot.get_updates().await.expect("getUpdates");
        assert_eq!(updates.len(), 2);
        let UpdateKind::CallbackQuery(query) = &updates[0].kind else {
            panic!("expected a callback query, got {:#?}", updates[0]);
        };
        assert_eq!(query.data.as_deref(), Some("again:1"));
        assert_eq!(query.from.id, UserId(42));
        let message = query.regular_message().expect("a regular message");
        assert_eq!(message.id, sent.id);
        assert_eq!(message.text(), Some("Done"));
        assert_eq!(
            message.reply_markup().expect("markup").inline_keyboard[0][0].text,
            "Again"
        );
        let UpdateKind::CallbackQuery(old) = &updates[1].kind else {
            panic!("expected a callback query, got {:#?}", updates[1]);
        };
        assert!(old.regular_message().is_none());
        assert_eq!(old.message.as_ref().map(|message| message.id()), Some(MessageId(5)));

        bot.answer_callback_query(query.id.clone())
            .text("Queued again")
            .await
            .expect("answerCallbackQuery");
        let call = &fake.calls_of("answerCallbackQuery")[0];
        assert_eq!(call.params["callback_query_id"], json!(query.id.0));
        assert_eq!(call.params["text"], "Queued again");
        let unknown = bot
            .answer_callback_query(teloxide::types::CallbackQueryId("nope".to_owned()))
            .await
            .expect_err("unknown query");
        assert!(
            matches!(unknown, RequestError::Api(ApiError::InvalidQueryId)),
            "{unknown:?}"
        );
    }

    #[tokio::test]
    async fn delete_message_marks_it_deleted() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        let sent = bot.send_message(ChatId(42), "bye").await.expect("sendMessage");
        bot.delete_message(ChatId(42), sent.id).await.expect("deleteMessage");
        let stored = fake.message(42, sent.id.0).expect("still known");
        assert_eq!(stored["deleted"], true);
        assert_eq!(stored["text"], "bye");
        let again = bot
            .delete_message(ChatId(42), sent.id)
            .await
            .expect_err("already deleted");
        assert!(
            matches!(again, RequestError::Api(ApiError::MessageToDeleteNotFound)),
            "{again:?}"
        );
        let edit = bot
            .edit_message_text(ChatId(42), sent.id, "hello")
            .await
            .expect_err("deleted");
        assert!(
            matches!(edit, RequestError::Api(ApiError::MessageToEditNotFound)),
            "{edit:?}"
        );
    }

    #[tokio::test]
    async fn webhook_and_chat_action() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        assert_eq!(fake.webhook(), None);
        bot.set_webhook("https://tessera.example/telegram".parse().expect("URL"))
            .secret_token("s3cret")
            .await
            .expect("setWebhook");
        assert_eq!(
            fake.webhook(),
            Some(("https://tessera.example/telegram".to_owned(), Some("s3cret".to_owned())))
        );
        let info = bot.get_webhook_info().await.expect("getWebhookInfo");
        assert_eq!(
            info.url.map(|url| url.to_string()).as_deref(),
            Some("https://tessera.example/telegram")
        );
        let conflict = bot.get_updates().await.expect_err("webhook is active");
        assert!(matches!(conflict, RequestError::Api(_)), "{conflict:?}");
        bot.delete_webhook().await.expect("deleteWebhook");
        assert_eq!(fake.webhook(), None);
        bot.send_chat_action(ChatId(42), teloxide::types::ChatAction::UploadPhoto)
            .await
            .expect("sendChatAction");
        assert_eq!(fake.calls_of("sendChatAction")[0].params["action"], "upload_photo");
    }

    #[tokio::test]
    async fn wrong_token_is_unauthorized() {
        let fake = FakeTelegram::start(TOKEN).await;
        let wrong = Bot::new("123456789:WRONG").set_api_url(fake.api_url().parse().expect("URL"));
        let error = wrong.get_me().await.expect_err("wrong token");
        assert!(matches!(error, RequestError::Api(ApiError::InvalidToken)), "{error:?}");
        let response = reqwest::get(format!("{}/bot123456789:WRONG/getMe", fake.api_url()))
            .await
            .expect("GET");
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
        );
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn raw_http_unknown_method_form_and_query() {
        let fake = FakeTelegram::start(TOKEN).await;
        let client = reqwest::Client::new();
        let response = client
            .post(format!("{}/bot{TOKEN}/sendTelepathy", fake.api_url()))
            .json(&json!({"chat_id": 1}))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 404, "description": "Not Found"})
        );
        assert_eq!(fake.calls_of("sendTelepathy").len(), 1);
        let response = client
            .get(format!("{}/nothing", fake.api_url()))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 404);

        // GET with a query string.
        let response = client
            .get(format!("{}/bot{TOKEN}/getMe?x=1", fake.api_url()))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["ok"], true);
        assert_eq!(body["result"]["is_bot"], true);
        assert_eq!(body["result"]["can_join_groups"], true);
        assert_eq!(body["result"]["supports_inline_queries"], false);

        // A form body with a JSON-encoded keyboard.
        let markup = r#"{"inline_keyboard":[[{"text":"Go","callback_data":"go"}]]}"#;
        let response = client
            .post(format!("{}/bot{TOKEN}/sendMessage", fake.api_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "chat_id=-100200&text={}&reply_markup={}",
                "caf%C3%A9+%26+co",
                url::form_urlencoded::byte_serialize(markup.as_bytes()).collect::<String>()
            ))
            .send()
            .await
            .expect("POST");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["result"]["text"], "café & co");
        assert_eq!(
            body["result"]["chat"],
            json!({"id": -100_200, "type": "supergroup", "title": "Group -100200"})
        );
        assert_eq!(
            body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
            "go"
        );
        let call = &fake.calls_of("sendmessage")[0];
        assert_eq!(call.params["chat_id"], -100_200);
        assert_eq!(call.params["reply_markup"]["inline_keyboard"][0][0]["text"], "Go");

        // A missing parameter.
        let response = client
            .post(format!("{}/bot{TOKEN}/sendMessage", fake.api_url()))
            .json(&json!({"text": "hi"}))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error_code"], 400);
        assert_eq!(body["description"], "Bad Request: chat_id is empty");
    }

    #[tokio::test]
    async fn wait_for_sees_calls_made_later() {
        let fake = FakeTelegram::start(TOKEN).await;
        let bot = bot(&fake);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            bot.send_message(ChatId(1), "one").await.expect("sendMessage");
            bot.send_message(ChatId(1), "two").await.expect("sendMessage");
        });
        let calls = fake.wait_for("SENDMESSAGE", 2, Duration::from_secs(10)).await;
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].params["text"], "two");
        // Recorded after being applied: the state is already there.
        assert_eq!(fake.message(1, 1001).expect("stored")["text"], "two");
        sender.await.expect("join");
    }

    #[tokio::test]
    #[should_panic(expected = "waited")]
    async fn wait_for_panics_with_the_calls_seen() {
        let fake = FakeTelegram::start(TOKEN).await;
        bot(&fake).get_me().await.expect("getMe");
        fake.wait_for("sendMessage", 1, Duration::from_millis(200)).await;
    }

    #[tokio::test]
    async fn a_teloxide_dispatcher_polls_and_replies() {
        let fake = FakeTelegram::start(TOKEN).await;
        let handler = Update::filter_message().endpoint(|bot: Bot, message: Message| async move {
            let text = format!("echo: {}", message.text().unwrap_or_default());
            bot.send_message(message.chat.id, text)
                .reply_parameters(ReplyParameters::new(message.id))
                .await?;
            respond(())
        });
        let mut dispatcher = Dispatcher::builder(bot(&fake), handler).build();
        let running = tokio::spawn(async move { dispatcher.dispatch().await });
        fake.push_update(fake.message_update(77, 77, "hello"));
        let calls = fake.wait_for("sendMessage", 1, Duration::from_secs(20)).await;
        assert_eq!(calls[0].params["text"], "echo: hello");
        let reply = fake.message(77, 1001).expect("the reply");
        assert_eq!(reply["reply_to_message"]["text"], "hello");
        assert!(!fake.calls_of("getMe").is_empty());
        running.abort();
    }
}
