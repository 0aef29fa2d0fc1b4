//! A fake ComfyUI that speaks the real wire protocol (as recorded from ComfyUI 0.3.64): `POST
//! /prompt` with its validation errors, the WebSocket lifecycle (`execution_start`,
//! `execution_cached`, `executing`, `progress` with binary previews, `progress_state`,
//! `executed`, `execution_success` / `execution_error` / `execution_interrupted`), `GET
//! /history/{id}`, `GET /view`, `GET`/`POST /queue`, `POST /interrupt` and `GET /system_stats`.
//! Tests choose how long a job takes and which failure comes next.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc};

/// What the recorded server answers to `GET /system_stats`.
const SYSTEM_STATS: &str = include_str!("system_stats.json");
/// Node classes this fake knows (others are refused as the real server refuses them).
const KNOWN_NODES: [&str; 12] = [
    "EmptyImage",
    "SaveImage",
    "SaveImageWebsocket",
    "ImageBlur",
    "ImageScale",
    "CheckpointLoaderSimple",
    "EmptyLatentImage",
    "EmptySD3LatentImage",
    "CLIPTextEncode",
    "KSampler",
    "VAEDecode",
    "SaveAudio",
];
/// The checkpoint name the fake treats as missing (`value_not_in_list`).
pub const MISSING_CHECKPOINT: &str = "missing.safetensors";

/// What the next prompt does instead of succeeding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An `execution_error` at the output node (`oom`: a CUDA out-of-memory error).
    Runtime {
        /// Whether it is an out-of-memory error.
        oom: bool,
    },
    /// Every WebSocket is closed half-way through; the run itself completes (history has it).
    DropSocket,
    /// The run does not progress until it is interrupted.
    Hang,
    /// The run succeeds, but its `execution_success` message is never sent (history has it).
    LoseEnd,
    /// `POST /prompt` fails with the server's bare 500, as ComfyUI does when it is in trouble
    /// (the prompt is not queued).
    RefusePrompt,
}

/// Settings of a fake.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// How long one run takes in all.
    pub job_duration: Duration,
    /// Sampler steps reported as `progress` (each followed by a preview frame).
    pub steps: u32,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            job_duration: Duration::from_millis(50),
            steps: 4,
        }
    }
}

#[derive(Default)]
struct Shared {
    sockets: HashMap<String, Vec<mpsc::UnboundedSender<WsMessage>>>,
    next_failure: Option<Failure>,
    number: u64,
    pending: Vec<(String, Value)>,
    running: Option<String>,
    interrupted: Vec<String>,
    interrupt_running: bool,
    history: Map<String, Value>,
    files: HashMap<String, Vec<u8>>,
    done_graphs: Vec<(Value, Map<String, Value>)>,
    prompts: Vec<Value>,
    timeline: Vec<(std::time::Instant, Option<std::time::Instant>)>,
    file_counter: u64,
    connections: usize,
}

/// A running fake ComfyUI on a loopback port.
#[derive(Clone)]
pub struct FakeComfy {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    config: FakeConfig,
}

impl FakeComfy {
    /// Starts a fake with `config` on a free loopback port.
    pub async fn start(config: FakeConfig) -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("address"), config).await
    }

    /// Starts a fake with `config` on `address` (to bring a "down" ComfyUI back on its port).
    pub async fn start_on(address: SocketAddr, config: FakeConfig) -> Self {
        let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
        let address: SocketAddr = listener.local_addr().expect("address");
        let fake = Self {
            base_url: format!("http://{address}"),
            shared: Arc::default(),
            wake: Arc::new(Notify::new()),
            config,
        };
        let app = Router::new()
            .route("/prompt", post(submit))
            .route("/ws", get(socket))
            .route("/history/{prompt_id}", get(history))
            .route("/view", get(view))
            .route("/queue", get(queue).post(edit_queue))
            .route("/interrupt", post(interrupt))
            .route(
                "/system_stats",
                get(|| async { ([("content-type", "application/json")], SYSTEM_STATS) }),
            )
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        tokio::spawn(fake.clone().run_queue());
        fake
    }

    /// Makes the next prompt fail this way.
    pub fn fail_next(&self, failure: Failure) {
        self.lock().next_failure = Some(failure);
    }

    /// The prompt ids `POST /interrupt` named (or the running one, for a bare interrupt).
    pub fn interrupts(&self) -> Vec<String> {
        self.lock().interrupted.clone()
    }

    /// Every graph accepted by `POST /prompt`, in order.
    pub fn prompts(&self) -> Vec<Value> {
        self.lock().prompts.clone()
    }

    /// When each accepted prompt arrived and when its run ended, in arrival order (for measuring
    /// a client's idle gaps).
    pub fn timeline(&self) -> Vec<(std::time::Instant, Option<std::time::Instant>)> {
        self.lock().timeline.clone()
    }

    /// How many WebSocket connections were opened.
    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    /// The bytes of an output file, as `/view` serves them.
    pub fn file(&self, filename: &str) -> Option<Vec<u8>> {
        self.lock().files.get(filename).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn send_to(&self, client_id: &str, message: WsMessage) {
        if let Some(sockets) = self.lock().sockets.get_mut(client_id) {
            sockets.retain(|socket| socket.send(message.clone()).is_ok());
        }
    }

    fn send_json(&self, client_id: &str, kind: &str, data: Value) {
        let text = json!({ "type": kind, "data": data }).to_string();
        self.send_to(client_id, WsMessage::Text(text.into()));
    }

    fn broadcast_status(&self) {
        let remaining = {
            let shared = self.lock();
            shared.pending.len() + usize::from(shared.running.is_some())
        };
        let text =
            json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}}}).to_string();
        let mut shared = self.lock();
        for sockets in shared.sockets.values_mut() {
            sockets.retain(|socket| socket.send(WsMessage::Text(text.clone().into())).is_ok());
        }
    }

    async fn run_queue(self) {
        loop {
            let next = {
                let mut shared = self.lock();
                if shared.pending.is_empty() {
                    None
                } else {
                    let (id, entry) = shared.pending.remove(0);
                    shared.running = Some(id.clone());
                    shared.interrupt_running = false;
                    Some((id, entry))
                }
            };
            match next {
                Some((prompt_id, entry)) => {
                    self.execute(&prompt_id, &entry).await;
                    self.lock().running = None;
                    self.broadcast_status();
                }
                None => self.wake.notified().await,
            }
        }
    }

    fn interrupted_now(&self) -> bool {
        self.lock().interrupt_running
    }

    async fn execute(&self, prompt_id: &str, entry: &Value) {
        let client = entry["client_id"].as_str().unwrap_or_default().to_owned();
        let graph = entry["prompt"].as_object().cloned().unwrap_or_default();
        let failure = self.lock().next_failure.take();
        let stamp = || {
            json!(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            )
        };
        self.send_json(
            &client,
            "execution_start",
            json!({"prompt_id": prompt_id, "timestamp": stamp()}),
        );
        let cached_outputs = {
            let shared = self.lock();
            shared
                .done_graphs
                .iter()
                .find(|(done, _)| *done == Value::Object(graph.clone()))
                .map(|(_, outputs)| outputs.clone())
        };
        if let Some(outputs) = cached_outputs {
            let nodes: Vec<&String> = graph.keys().collect();
            self.send_json(
                &client,
                "execution_cached",
                json!({"nodes": nodes, "prompt_id": prompt_id, "timestamp": stamp()}),
            );
            for (node, output) in &outputs {
                self.send_json(
                    &client,
                    "executed",
                    json!({"node": node, "display_node": node, "output": output, "prompt_id": prompt_id}),
                );
            }
            self.finish(prompt_id, &client, entry, outputs, "success");
            self.send_json(
                &client,
                "execution_success",
                json!({"prompt_id": prompt_id, "timestamp": stamp()}),
            );
            return;
        }
        self.send_json(
            &client,
            "execution_cached",
            json!({"nodes": [], "prompt_id": prompt_id, "timestamp": stamp()}),
        );
        let order: Vec<String> = graph.keys().cloned().collect();
        let pause = self.config.job_duration / (order.len() as u32).max(1);
        // Each wait ends at an instant reckoned from the start, so the run takes the configured
        // time, not that time plus the timer's rounding at every step.
        let began = tokio::time::Instant::now();
        let mut planned = Duration::ZERO;
        let mut states = Map::new();
        let mut outputs = Map::new();
        for (index, node) in order.iter().enumerate() {
            let class = graph[node]["class_type"].as_str().unwrap_or_default().to_owned();
            states.insert(node.clone(), node_state(prompt_id, node, 0.0, 1.0, "running"));
            self.send_json(
                &client,
                "progress_state",
                json!({"prompt_id": prompt_id, "nodes": states}),
            );
            self.send_json(
                &client,
                "executing",
                json!({"node": node, "display_node": node, "prompt_id": prompt_id}),
            );
            if index == order.len() / 2 && failure == Some(Failure::DropSocket) {
                self.lock().sockets.clear();
            }
            if failure == Some(Failure::Hang) {
                while !self.interrupted_now() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            if self.interrupted_now() {
                self.send_json(&client, "execution_interrupted", json!({"prompt_id": prompt_id, "node_id": node, "node_type": class, "executed": [], "timestamp": stamp()}));
                self.finish(prompt_id, &client, entry, Map::new(), "error");
                return;
            }
            if class == "KSampler" || class == "SaveImageWebsocket" {
                for step in 0..=self.config.steps {
                    self.send_json(
                        &client,
                        "progress",
                        json!({"value": step, "max": self.config.steps, "prompt_id": prompt_id, "node": node}),
                    );
                    let mut preview = vec![0, 0, 0, 1, 0, 0, 0, 2];
                    preview.extend(png(8, 8, 0x00ff00));
                    self.send_to(&client, WsMessage::Binary(preview.into()));
                    planned += pause / (self.config.steps + 1);
                    tokio::time::sleep_until(began + planned).await;
                }
            } else {
                planned += pause;
                tokio::time::sleep_until(began + planned).await;
            }
            let is_output = class.starts_with("Save");
            if is_output && let Some(Failure::Runtime { oom }) = &failure {
                let (message, kind) = if *oom {
                    (
                        "CUDA out of memory. Tried to allocate 2.00 GiB",
                        "torch.OutOfMemoryError",
                    )
                } else {
                    (
                        "**** ERROR: Saving image outside the output folder is not allowed.",
                        "Exception",
                    )
                };
                self.send_json(&client, "execution_error", json!({"prompt_id": prompt_id, "node_id": node, "node_type": class, "executed": [],
                    "exception_message": message, "exception_type": kind, "traceback": [], "current_inputs": {}, "current_outputs": {}, "timestamp": stamp()}));
                self.finish(prompt_id, &client, entry, Map::new(), "error");
                return;
            }
            if class == "SaveImage" {
                let (width, height, color) = image_size(&graph);
                let filename = {
                    let mut shared = self.lock();
                    shared.file_counter += 1;
                    let name = format!("tessera_{:05}_.png", shared.file_counter);
                    shared.files.insert(name.clone(), png(width, height, color));
                    name
                };
                let output = json!({"images": [{"filename": filename, "subfolder": "", "type": "output"}]});
                outputs.insert(node.clone(), output.clone());
                self.send_json(
                    &client,
                    "executed",
                    json!({"node": node, "display_node": node, "output": output, "prompt_id": prompt_id}),
                );
            }
            states.insert(node.clone(), node_state(prompt_id, node, 1.0, 1.0, "finished"));
            self.send_json(
                &client,
                "progress_state",
                json!({"prompt_id": prompt_id, "nodes": states}),
            );
        }
        self.lock()
            .done_graphs
            .push((Value::Object(graph.clone()), outputs.clone()));
        self.finish(prompt_id, &client, entry, outputs, "success");
        if failure != Some(Failure::LoseEnd) {
            self.send_json(
                &client,
                "execution_success",
                json!({"prompt_id": prompt_id, "timestamp": stamp()}),
            );
        }
        let late = self.clone();
        let prompt = prompt_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            late.send_json(&client, "executing", json!({"node": null, "prompt_id": prompt}));
        });
    }

    fn finish(&self, prompt_id: &str, _client: &str, entry: &Value, outputs: Map<String, Value>, status: &str) {
        if let Some(number) = entry["number"].as_u64()
            && let Some(slot) = self.lock().timeline.get_mut(number as usize)
        {
            slot.1 = Some(std::time::Instant::now());
        }
        let record = json!({
            "prompt": [entry["number"], prompt_id, entry["prompt"], {"client_id": entry["client_id"]}, []],
            "outputs": outputs,
            "status": {"status_str": status, "completed": status == "success", "messages": []},
            "meta": {},
        });
        self.lock().history.insert(prompt_id.to_owned(), record);
    }
}

fn node_state(prompt_id: &str, node: &str, value: f64, max: f64, state: &str) -> Value {
    json!({"value": value, "max": max, "state": state, "node_id": node, "prompt_id": prompt_id,
           "display_node_id": node, "parent_node_id": null, "real_node_id": node})
}

/// The output size and colour: from an `EmptyImage` (`width`, `height`, `color`) or a latent.
fn image_size(graph: &Map<String, Value>) -> (u32, u32, u32) {
    let input = |name: &str| {
        graph.values().find_map(|node| {
            let class = node["class_type"].as_str().unwrap_or_default();
            (class.starts_with("Empty"))
                .then(|| node["inputs"][name].as_u64())
                .flatten()
        })
    };
    let side = |name: &str| input(name).map_or(64, |value| value.clamp(1, 4096) as u32);
    (
        side("width"),
        side("height"),
        input("color").unwrap_or(0) as u32 & 0xff_ffff,
    )
}

/// A PNG of one colour.
fn png(width: u32, height: u32, color: u32) -> Vec<u8> {
    let [_, red, green, blue] = color.to_be_bytes();
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([red, green, blue]));
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).expect("encode png");
    bytes.into_inner()
}

fn validation_error(kind: &str, message: &str, details: &str, node_errors: Value) -> Response {
    let body = json!({"error": {"type": kind, "message": message, "details": details, "extra_info": {}}, "node_errors": node_errors});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// The 400 the real server answers for this graph, if any.
fn refusal(graph: &Map<String, Value>) -> Option<Response> {
    for (id, node) in graph {
        let Some(class) = node.get("class_type").and_then(Value::as_str) else {
            return Some(validation_error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                &format!("Node ID '#{id}'"),
                json!({}),
            ));
        };
        if !KNOWN_NODES.contains(&class) {
            return Some(validation_error(
                "invalid_prompt",
                &format!("Cannot execute because node {class} does not exist."),
                &format!("Node ID '#{id}'"),
                json!({}),
            ));
        }
    }
    if !graph.values().any(|node| {
        node["class_type"]
            .as_str()
            .is_some_and(|class| class.starts_with("Save"))
    }) {
        return Some(validation_error(
            "prompt_no_outputs",
            "Prompt has no outputs",
            "",
            json!({}),
        ));
    }
    for (id, node) in graph {
        if node["inputs"]["ckpt_name"].as_str() == Some(MISSING_CHECKPOINT) {
            let errors = json!({id: {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
                "details": format!("ckpt_name: '{MISSING_CHECKPOINT}' not in []"), "extra_info": {"input_name": "ckpt_name", "received_value": MISSING_CHECKPOINT}}],
                "dependent_outputs": [], "class_type": node["class_type"]}});
            return Some(validation_error(
                "prompt_outputs_failed_validation",
                "Prompt outputs failed validation",
                "",
                errors,
            ));
        }
    }
    None
}

async fn submit(State(fake): State<FakeComfy>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error\n\nServer got itself in trouble",
        )
            .into_response();
    };
    let Some(graph) = body.get("prompt").and_then(Value::as_object) else {
        return validation_error("no_prompt", "No prompt provided", "No prompt provided", json!({}));
    };
    if let Some(refusal) = refusal(graph) {
        return refusal;
    }
    {
        let mut shared = fake.lock();
        if shared.next_failure == Some(Failure::RefusePrompt) {
            shared.next_failure = None;
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n\nServer got itself in trouble",
            )
                .into_response();
        }
    }
    let prompt_id = body["prompt_id"]
        .as_str()
        .map_or_else(tessera_core::ids::random_uuid, str::to_owned);
    let number = {
        let mut shared = fake.lock();
        let number = shared.number;
        shared.number += 1;
        let entry = json!({"prompt": graph, "client_id": body["client_id"], "number": number});
        shared.prompts.push(Value::Object(graph.clone()));
        shared.timeline.push((std::time::Instant::now(), None));
        shared.pending.push((prompt_id.clone(), entry));
        number
    };
    fake.broadcast_status();
    fake.wake.notify_one();
    axum::Json(json!({"prompt_id": prompt_id, "number": number, "node_errors": {}})).into_response()
}

async fn socket(
    State(fake): State<FakeComfy>,
    Query(query): Query<BTreeMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client = query
        .get("clientId")
        .cloned()
        .unwrap_or_else(tessera_core::ids::random_uuid);
    upgrade.on_upgrade(move |socket| serve_socket(fake, client, socket))
}

async fn serve_socket(fake: FakeComfy, client: String, mut socket: WebSocket) {
    let (sender, mut outbox) = mpsc::unbounded_channel();
    let hello =
        json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client}}).to_string();
    let _ = sender.send(WsMessage::Text(hello.into()));
    {
        let mut shared = fake.lock();
        shared.connections += 1;
        shared.sockets.entry(client).or_default().push(sender);
    }
    loop {
        tokio::select! {
            outgoing = outbox.recv() => match outgoing {
                Some(message) => if socket.send(message).await.is_err() { return },
                None => { let _ = socket.send(WsMessage::Close(None)).await; return }
            },
            incoming = socket.recv() => if !matches!(incoming, Some(Ok(_))) { return },
        }
    }
}

async fn history(State(fake): State<FakeComfy>, Path(prompt_id): Path<String>) -> axum::Json<Value> {
    let shared = fake.lock();
    match shared.history.get(&prompt_id) {
        Some(record) => axum::Json(json!({ prompt_id: record })),
        None => axum::Json(json!({})),
    }
}

async fn view(State(fake): State<FakeComfy>, Query(query): Query<BTreeMap<String, String>>) -> Response {
    let name = query.get("filename").cloned().unwrap_or_default();
    match fake.file(&name) {
        Some(bytes) => ([("content-type", "image/png")], bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn queue(State(fake): State<FakeComfy>) -> axum::Json<Value> {
    let shared = fake.lock();
    let pending: Vec<Value> = shared
        .pending
        .iter()
        .map(|(id, entry)| json!([entry["number"], id, entry["prompt"], {"client_id": entry["client_id"]}, []]))
        .collect();
    let running: Vec<Value> = shared.running.iter().map(|id| json!([0, id, {}, {}, []])).collect();
    axum::Json(json!({"queue_running": running, "queue_pending": pending}))
}

async fn edit_queue(State(fake): State<FakeComfy>, axum::Json(body): axum::Json<Value>) -> StatusCode {
    let doomed: Vec<String> = body["delete"]
        .as_array()
        .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    fake.lock().pending.retain(|(id, _)| !doomed.contains(id));
    StatusCode::OK
}

async fn interrupt(State(fake): State<FakeComfy>, body: Bytes) -> StatusCode {
    let wanted = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| body["prompt_id"].as_str().map(str::to_owned));
    let mut shared = fake.lock();
    let running = shared.running.clone();
    if let Some(running) = running.filter(|running| wanted.as_ref().is_none_or(|wanted| wanted == running)) {
        shared.interrupted.push(running);
        shared.interrupt_running = true;
    }
    StatusCode::OK
}
