//! Runs one claimed job on ComfyUI: binds the workflow, submits it with a prompt id of its own,
//! follows the WebSocket (falling back to `/history` if the socket drops), reports progress at
//! most every 500 ms (which also tells it about a cancel), stores every output with a thumbnail
//! for images, and completes or fails the job.

use std::io::Cursor;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use tessera_store::BlobStore;
use tessera_store::definitions::artifacts_bucket;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::api::{ApiClient, ApiError, Artifact, JobFailure, WorkOrder};
use crate::comfy::{Message, OutputFile, ProgressTracker, output_files};
use crate::workflow::{RunParams, Workflows};

/// How often progress is reported (and a cancel noticed).
pub const REPORT_EVERY: Duration = Duration::from_millis(500);
/// The long side of an image thumbnail.
pub const THUMBNAIL_PIXELS: u32 = 256;

/// How a job ended for this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// Completed with this many artifacts.
    Completed(usize),
    /// Failed (recorded with the API).
    Failed(&'static str),
    /// Cancelled or taken over: interrupted and dropped.
    Dropped,
    /// ComfyUI did not answer: the job was not touched and should go back to the queue.
    ComfyUnavailable(String),
}

/// Talks to one ComfyUI server.
#[derive(Debug, Clone)]
pub struct ComfyClient {
    http: reqwest::Client,
    base: String,
}

impl ComfyClient {
    /// A client of the ComfyUI at `base` (e.g. `http://127.0.0.1:8188`).
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Whether ComfyUI answers `GET /system_stats`.
    pub async fn is_up(&self) -> bool {
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

    async fn interrupt(&self, prompt_id: &str) {
        let request = self
            .http
            .post(format!("{}/interrupt", self.base))
            .json(&json!({ "prompt_id": prompt_id }));
        if let Err(error) = request.send().await {
            tracing::warn!(%error, prompt_id, "interrupt failed");
        }
    }

    async fn history(&self, prompt_id: &str) -> Option<Value> {
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

    async fn view(&self, file: &OutputFile) -> Result<Bytes, String> {
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

/// Everything a run needs.
pub struct Runner<'a> {
    /// ComfyUI.
    pub comfy: &'a ComfyClient,
    /// The API.
    pub api: &'a ApiClient,
    /// Where artifacts go.
    pub blobs: &'a dyn BlobStore,
    /// The workflows.
    pub workflows: &'a Workflows,
    /// This worker's cap on a job's run time, below the job's own timeout.
    pub max_job_time: Option<Duration>,
}

impl Runner<'_> {
    /// Runs the job to its end.
    pub async fn run(&self, attempt: u32, order: &WorkOrder) -> JobEnd {
        let workflow = match self.workflows.get(&order.workflow_id) {
            Ok(workflow) => workflow,
            Err(error) => {
                return self
                    .fail(
                        order,
                        attempt,
                        failure(
                            "MODEL_NOT_FOUND",
                            "no workflow for this model",
                            error.to_string(),
                            false,
                        ),
                    )
                    .await;
            }
        };
        let params = RunParams {
            prompt: order.params.prompt.clone(),
            negative_prompt: order.params.negative_prompt.clone(),
            width: order.params.width,
            height: order.params.height,
            steps: order.params.steps,
            cfg_scale: None,
            seed: order.params.seed,
            checkpoint: None,
        };
        let graph = workflow.apply(&params);
        let prompt_id = tessera_core::ids::random_uuid();
        let client_id = format!("{}-{prompt_id}", self.api.worker_id);
        let socket_url = format!("{}/ws?clientId={client_id}", self.comfy.base.replacen("http", "ws", 1));
        let mut socket = match tokio_tungstenite::connect_async(&socket_url).await {
            Ok((socket, _)) => Some(socket),
            Err(error) => return JobEnd::ComfyUnavailable(error.to_string()),
        };
        let submitted = self
            .comfy
            .http
            .post(format!("{}/prompt", self.comfy.base))
            .json(&json!({ "prompt": graph, "client_id": client_id, "prompt_id": prompt_id }))
            .send()
            .await;
        let response = match submitted {
            Ok(response) => response,
            Err(error) => return JobEnd::ComfyUnavailable(error.to_string()),
        };
        if response.status().as_u16() == 400 {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return self.fail(order, attempt, validation_failure(&body)).await;
        }
        if !response.status().is_success() {
            return JobEnd::ComfyUnavailable(format!("POST /prompt answered {}", response.status()));
        }

        let mut tracker = ProgressTracker::new(&prompt_id, workflow.node_count());
        let mut files: Vec<OutputFile> = Vec::new();
        let allowed = Duration::from_secs(order.timeout_seconds.max(1));
        let allowed = self.max_job_time.map_or(allowed, |cap| cap.min(allowed));
        let deadline = Instant::now() + allowed;
        let mut tick = tokio::time::interval(REPORT_EVERY);
        let outcome = loop {
            tokio::select! {
                frame = next_frame(&mut socket) => match frame {
                    Some(Frame::Text(text)) => {
                        let Some(message) = Message::parse(&text) else { continue };
                        tracker.observe(&message);
                        if let Message::Executed { output: Some(output), prompt_id: id, .. } = &message && *id == prompt_id {
                            files.extend(output_files(output));
                        }
                        if message.ends(&prompt_id) {
                            break message;
                        }
                    }
                    Some(_) => {}
                    None => {
                        // The socket dropped: poll the history until the prompt ends.
                        socket = None;
                    }
                },
                _ = tick.tick() => {
                    if Instant::now() > deadline {
                        self.comfy.interrupt(&prompt_id).await;
                        let timeout = failure("WORKER_TIMEOUT", "the job ran past its timeout", format!("{:.0} s", allowed.as_secs_f64()), true);
                        return self.fail(order, attempt, timeout).await;
                    }
                    match self.api.progress(&order.job_id, attempt, tracker.percent()).await {
                        Err(ApiError::Superseded { cancelled }) => {
                            tracing::info!(job = %order.job_id, cancelled, "job cancelled or taken over: interrupting");
                            self.comfy.interrupt(&prompt_id).await;
                            return JobEnd::Dropped;
                        }
                        Err(error) => tracing::warn!(job = %order.job_id, %error, "progress report failed"),
                        Ok(()) => {}
                    }
                    if socket.is_none() && let Some(ended) = self.ended_in_history(&prompt_id, &mut files).await {
                        break ended;
                    }
                }
            }
        };
        match outcome {
            Message::ExecutionSuccess { .. } => self.store_and_complete(order, attempt, &files).await,
            error @ Message::ExecutionError { .. } => {
                let (code, retryable) = if error.is_out_of_memory() {
                    ("OOM", true)
                } else {
                    ("EXECUTION_ERROR", false)
                };
                let details = match &error {
                    Message::ExecutionError {
                        node_type,
                        exception_message,
                        ..
                    } => {
                        format!("{}: {exception_message}", node_type.as_deref().unwrap_or("?"))
                    }
                    _ => String::new(),
                };
                self.fail(
                    order,
                    attempt,
                    failure(code, "ComfyUI failed while running the workflow", details, retryable),
                )
                .await
            }
            _ => JobEnd::Dropped,
        }
    }

    /// The prompt's end from `/history`, once it is there (collecting its outputs).
    async fn ended_in_history(&self, prompt_id: &str, files: &mut Vec<OutputFile>) -> Option<Message> {
        let record = self.comfy.history(prompt_id).await?;
        let status = record["status"]["status_str"].as_str()?;
        if let Some(outputs) = record["outputs"].as_object() {
            files.clear();
            for output in outputs.values().filter_map(Value::as_object) {
                files.extend(output_files(output));
            }
        }
        let prompt_id = prompt_id.to_owned();
        Some(match status {
            "success" => Message::ExecutionSuccess { prompt_id },
            _ => Message::ExecutionError {
                prompt_id,
                node_id: None,
                node_type: None,
                exception_message: "the run failed (seen in /history after the socket dropped)".into(),
                exception_type: String::new(),
            },
        })
    }

    async fn store_and_complete(&self, order: &WorkOrder, attempt: u32, files: &[OutputFile]) -> JobEnd {
        let mut artifacts = Vec::new();
        for (index, file) in files.iter().enumerate() {
            match self.store(order, index, file).await {
                Ok(artifact) => artifacts.push(artifact),
                Err(error) => {
                    let lost = failure("EXECUTION_ERROR", "an output could not be stored", error, true);
                    return self.fail(order, attempt, lost).await;
                }
            }
        }
        match self.api.complete(&order.job_id, attempt, &artifacts).await {
            Ok(()) => JobEnd::Completed(artifacts.len()),
            Err(ApiError::Superseded { .. }) => JobEnd::Dropped,
            Err(error) => {
                tracing::error!(job = %order.job_id, %error, "could not complete");
                JobEnd::Dropped
            }
        }
    }

    async fn store(&self, order: &WorkOrder, index: usize, file: &OutputFile) -> Result<Artifact, String> {
        let bytes = self.comfy.view(file).await?;
        let format = file.filename.rsplit('.').next().unwrap_or("bin").to_lowercase();
        let key = format!("outputs/{}/{}", order.job_id, file.filename);
        let bucket = artifacts_bucket();
        let size = bytes.len() as u64;
        let mut artifact = Artifact {
            id: format!("artifact_{:012}", index + 1),
            kind: media_kind(&file.kind, &format).into(),
            key: key.clone(),
            thumbnail_key: None,
            format: format.clone(),
            width: None,
            height: None,
            file_size_bytes: size,
        };
        let mut thumbnail = None;
        if artifact.kind == "image"
            && let Ok(image) = image::load_from_memory(&bytes)
        {
            artifact.width = Some(image.width());
            artifact.height = Some(image.height());
            let small = image.thumbnail(THUMBNAIL_PIXELS, THUMBNAIL_PIXELS).to_rgb8();
            let mut jpeg = Cursor::new(Vec::new());
            small
                .write_to(&mut jpeg, image::ImageFormat::Jpeg)
                .map_err(|error| error.to_string())?;
            let thumbnail_key = format!("outputs/{}/thumb_{}.jpg", order.job_id, index + 1);
            artifact.thumbnail_key = Some(thumbnail_key.clone());
            thumbnail = Some((thumbnail_key, Bytes::from(jpeg.into_inner())));
        }
        // Both writes at once: each is made durable before it answers.
        let original = self.blobs.put(&bucket, &key, bytes, content_type(&format));
        let thumbnail = async {
            match thumbnail {
                Some((key, jpeg)) => self.blobs.put(&bucket, &key, jpeg, "image/jpeg").await,
                None => Ok(()),
            }
        };
        let (original, thumbnail) = tokio::join!(original, thumbnail);
        original.and(thumbnail).map_err(|error| error.to_string())?;
        Ok(artifact)
    }

    async fn fail(&self, order: &WorkOrder, attempt: u32, failure: JobFailure) -> JobEnd {
        tracing::info!(job = %order.job_id, code = failure.code, "job failed");
        match self.api.fail(&order.job_id, attempt, &failure).await {
            Ok(()) | Err(ApiError::Superseded { .. }) => JobEnd::Failed(failure.code),
            Err(error) => {
                tracing::error!(job = %order.job_id, %error, "could not record the failure");
                JobEnd::Failed(failure.code)
            }
        }
    }
}

async fn next_frame<S>(socket: &mut Option<S>) -> Option<Frame>
where
    S: futures::Stream<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match socket {
        Some(socket) => match socket.next().await {
            Some(Ok(frame)) => Some(frame),
            _ => None,
        },
        None => std::future::pending().await,
    }
}

fn failure(code: &'static str, message: &str, details: String, retryable: bool) -> JobFailure {
    JobFailure {
        code,
        message: message.to_owned(),
        details,
        retryable,
    }
}

/// A 400 from `POST /prompt`: a missing model file is `MODEL_NOT_FOUND`, the rest
/// `INVALID_PARAMS`, with the node errors as details.
fn validation_failure(body: &Value) -> JobFailure {
    let node_errors = body["node_errors"].as_object().cloned().unwrap_or_default();
    let missing_model = node_errors.values().any(|node| {
        node["errors"].as_array().is_some_and(|errors| {
            errors.iter().any(|error| {
                error["type"] == "value_not_in_list"
                    && ["ckpt_name", "unet_name", "vae_name", "lora_name"]
                        .contains(&error["extra_info"]["input_name"].as_str().unwrap_or_default())
            })
        })
    });
    let details = json!({ "error": body["error"], "node_errors": Value::Object(node_errors) }).to_string();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("ComfyUI refused the workflow")
        .to_owned();
    if missing_model {
        failure("MODEL_NOT_FOUND", &message, details, false)
    } else {
        failure("INVALID_PARAMS", &message, details, false)
    }
}

fn media_kind(listed_as: &str, format: &str) -> &'static str {
    match (listed_as, format) {
        (_, "mp4" | "webm" | "mov") | ("videos", _) => "video",
        (_, "flac" | "wav" | "mp3" | "ogg") | ("audio", _) => "audio",
        (_, "gif") | ("gifs", _) => "video",
        _ => "image",
    }
}

fn content_type(format: &str) -> &'static str {
    match format {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}
