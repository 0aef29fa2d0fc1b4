//! ComfyUI's HTTP API, and one WebSocket that every run of this worker shares.
//!
//! The socket is opened on the first run and kept: each run subscribes to its own prompt id
//! before submitting the prompt, and a reader task hands each message to the run it names. When
//! the socket drops, every run in flight is told (its subscription ends, and it follows
//! `/history` instead), and the next run opens a new one. Keeping the socket saves each job the
//! WebSocket handshake that RunPod's worker pays every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::comfy::{Message, OutputFile};
use crate::metrics::{ComfyErrorKind, Metrics};

/// Talks to one ComfyUI server, over HTTP and one shared WebSocket; clones share both, and the
/// worker's metrics.
#[derive(Debug, Clone)]
pub struct ComfyClient {
    http: reqwest::Client,
    base: String,
    client_id: String,
    socket: Arc<SocketHub>,
    metrics: Metrics,
}

/// Who waits for which prompt's messages, and whether the socket is open.
#[derive(Debug, Default)]
struct SocketHub {
    routes: Mutex<Routes>,
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Routes {
    connected: bool,
    waiting: HashMap<String, mpsc::UnboundedSender<Message>>,
}

impl SocketHub {
    fn routes(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands a message to the run of its prompt; progress that names no prompt (older
    /// ComfyUI versions) goes to every run, whose trackers ignore what is not theirs.
    fn route(&self, message: Message) {
        if matches!(message, Message::Status {} | Message::Other) {
            return;
        }
        let routes = self.routes();
        match message.prompt_id() {
            Some(prompt_id) => {
                if let Some(waiter) = routes.waiting.get(prompt_id) {
                    let _ = waiter.send(message);
                }
            }
            None => {
                for waiter in routes.waiting.values() {
                    let _ = waiter.send(message.clone());
                }
            }
        }
    }

    /// The socket is gone: every subscription ends. Returns how many there were.
    fn disconnected(&self) -> usize {
        let mut routes = self.routes();
        routes.connected = false;
        let in_flight = routes.waiting.len();
        routes.waiting.clear();
        in_flight
    }
}

/// The messages of one prompt, from the shared socket.
#[derive(Debug)]
pub struct Subscription {
    prompt_id: String,
    messages: mpsc::UnboundedReceiver<Message>,
    hub: Arc<SocketHub>,
}

impl Subscription {
    /// The next message; `None` once the socket has dropped.
    pub async fn next(&mut self) -> Option<Message> {
        self.messages.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.routes().waiting.remove(&self.prompt_id);
    }
}

impl ComfyClient {
    /// A client of the ComfyUI at `base` (e.g. `http://127.0.0.1:8188`).
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            client_id: format!("tessera-{}", tessera_core::ids::random_uuid()),
            socket: Arc::default(),
            metrics: Metrics::new(),
        }
    }

    /// The metrics of this worker: its jobs, and the errors of this ComfyUI.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Whether ComfyUI is up: its WebSocket is open, or it answers `GET /system_stats`.
    pub async fn is_up(&self) -> bool {
        if self.socket.routes().connected {
            return true;
        }
        matches!(self.http.get(format!("{}/system_stats", self.base)).send().await, Ok(response) if response.status().is_success())
    }

    /// `GET /system_stats`.
    pub async fn system_stats(&self) -> Option<Value> {
        self.http
            .get(format!("{}/system_stats", self.base))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// Subscribes to the messages of `prompt_id`, opening the socket if it is not open; an error
    /// when ComfyUI cannot be reached.
    pub async fn subscribe(&self, prompt_id: &str) -> Result<Subscription, String> {
        loop {
            {
                let mut routes = self.socket.routes();
                if routes.connected {
                    let (sender, messages) = mpsc::unbounded_channel();
                    routes.waiting.insert(prompt_id.to_owned(), sender);
                    return Ok(Subscription {
                        prompt_id: prompt_id.to_owned(),
                        messages,
                        hub: self.socket.clone(),
                    });
                }
            }
            let _one_at_a_time = self.socket.connecting.lock().await;
            if self.socket.routes().connected {
                continue;
            }
            let url = format!("{}/ws?clientId={}", self.base.replacen("http", "ws", 1), self.client_id);
            let (stream, _) = tokio_tungstenite::connect_async(&url)
                .await
                .map_err(|error| format!("WebSocket {url}: {error}"))?;
            self.socket.routes().connected = true;
            tokio::spawn(read_frames(stream, self.socket.clone(), self.metrics.clone()));
        }
    }

    /// `POST /prompt` of `graph` under `prompt_id`, for this client's socket.
    pub async fn submit(
        &self,
        graph: &Map<String, Value>,
        prompt_id: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .post(format!("{}/prompt", self.base))
            .json(&json!({ "prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id }))
            .send()
            .await
    }

    /// `POST /interrupt` of one prompt (logged, not returned, when it fails).
    pub async fn interrupt(&self, prompt_id: &str) {
        let request = self
            .http
            .post(format!("{}/interrupt", self.base))
            .json(&json!({ "prompt_id": prompt_id }));
        if let Err(error) = request.send().await {
            tracing::warn!(%error, prompt_id, "interrupt failed");
        }
    }

    /// The prompt's `/history` record, once it has one.
    pub async fn history(&self, prompt_id: &str) -> Option<Value> {
        let answer: Value = self
            .http
            .get(format!("{}/history/{prompt_id}", self.base))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        answer.get(prompt_id).cloned()
    }

    /// An output file's bytes, from `/view`.
    pub async fn view(&self, file: &OutputFile) -> Result<Bytes, String> {
        let response = self
            .http
            .get(format!("{}/view", self.base))
            .query(&[
                ("filename", &file.filename),
                ("subfolder", &file.subfolder),
                ("type", &file.folder_type),
            ])
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if !response.status().is_success() {
            return Err(format!("/view {} answered {}", file.filename, response.status()));
        }
        response.bytes().await.map_err(|error| error.to_string())
    }
}

/// Reads the socket until it closes, routing each message (binary preview frames are not used).
async fn read_frames<S>(mut stream: S, hub: Arc<SocketHub>, metrics: Metrics)
where
    S: futures::Stream<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(Ok(frame)) = stream.next().await {
        if let Frame::Text(text) = frame
            && let Some(message) = Message::parse(&text)
        {
            hub.route(message);
        }
    }
    if hub.disconnected() > 0 {
        tracing::warn!("ComfyUI's WebSocket dropped mid-run: the runs in flight follow /history");
        metrics.comfy_error(ComfyErrorKind::LostSocket);
    } else {
        tracing::info!("ComfyUI's WebSocket closed; the next run opens a new one");
    }
}
