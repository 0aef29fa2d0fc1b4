//! One run of a bound workflow on ComfyUI, and the storing of its outputs: what a queued job and
//! a `POST /worker/run_job` have in common.
//!
//! A run subscribes to its prompt on the shared socket, submits the prompt with an id of its own,
//! and follows the messages to the prompt's end. Every [`REPORT_EVERY`] it checks its deadline and
//! asks its caller whether to go on (the caller reports progress, and learns of a cancel). When
//! the socket drops, or has said nothing about the prompt for [`QUIET`], it looks the prompt up in
//! `/history`, so a lost message never leaves a job hanging.

use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tessera_store::BlobStore;
use tessera_store::definitions::artifacts_bucket;

use crate::api::{Artifact, JobFailure};
use crate::client::{ComfyClient, Subscription};
use crate::comfy::{Message, OutputFile, ProgressTracker, output_files};
use crate::metrics::ComfyErrorKind;

/// How often progress is reported (and a cancel or the deadline noticed).
pub const REPORT_EVERY: Duration = Duration::from_millis(500);
/// How long a run waits without a word about its prompt before it asks `/history`.
pub const QUIET: Duration = Duration::from_secs(2);
/// The long side of an image thumbnail.
pub const THUMBNAIL_PIXELS: u32 = 256;
/// The JPEG quality of thumbnails.
const THUMBNAIL_QUALITY: u8 = 80;

/// How a run on ComfyUI ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Execution {
    /// The prompt succeeded with these output files.
    Succeeded(Vec<OutputFile>),
    /// It failed, for this reason.
    Failed(JobFailure),
    /// The caller asked to stop: the prompt was interrupted.
    Stopped,
    /// ComfyUI could not be reached: nothing ran.
    Unavailable(String),
}

/// Runs `graph` (with `node_count` nodes) for at most `allowed`. `keep_going` is called with the
/// percentage done every [`REPORT_EVERY`]; `false` interrupts the prompt.
/// ComfyUI's errors are counted in the worker's metrics.
pub async fn execute<F, Fut>(
    comfy: &ComfyClient,
    graph: &Map<String, Value>,
    node_count: usize,
    allowed: Duration,
    keep_going: F,
) -> Execution
where
    F: FnMut(u8) -> Fut,
    Fut: Future<Output = bool>,
{
    let execution = run(comfy, graph, node_count, allowed, keep_going).await;
    let error = match &execution {
        Execution::Unavailable(_) => Some(ComfyErrorKind::Unreachable),
        Execution::Failed(failure) => match failure.code {
            "INVALID_PARAMS" | "MODEL_NOT_FOUND" => Some(ComfyErrorKind::Validation),
            "OOM" => Some(ComfyErrorKind::Oom),
            "WORKER_TIMEOUT" => Some(ComfyErrorKind::Timeout),
            _ => Some(ComfyErrorKind::Execution),
        },
        Execution::Succeeded(_) | Execution::Stopped => None,
    };
    if let Some(kind) = error {
        comfy.metrics().comfy_error(kind);
    }
    execution
}

async fn run<F, Fut>(
    comfy: &ComfyClient,
    graph: &Map<String, Value>,
    node_count: usize,
    allowed: Duration,
    mut keep_going: F,
) -> Execution
where
    F: FnMut(u8) -> Fut,
    Fut: Future<Output = bool>,
{
    let prompt_id = tessera_core::ids::random_uuid();
    let mut subscription = match comfy.subscribe(&prompt_id).await {
        Ok(subscription) => Some(subscription),
        Err(error) => return Execution::Unavailable(error),
    };
    let response = match comfy.submit(graph, &prompt_id).await {
        Ok(response) => response,
        Err(error) => return Execution::Unavailable(error.to_string()),
    };
    if response.status().as_u16() == 400 {
        let body: Value = response.json().await.unwrap_or(Value::Null);
        return Execution::Failed(validation_failure(&body));
    }
    if !response.status().is_success() {
        return Execution::Unavailable(format!("POST /prompt answered {}", response.status()));
    }

    let mut tracker = ProgressTracker::new(&prompt_id, node_count);
    let mut files: Vec<OutputFile> = Vec::new();
    let deadline = Instant::now() + allowed;
    let mut last_heard = Instant::now();
    // The first report comes after one interval: a job shorter than that just completes.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
    let end = loop {
        tokio::select! {
            message = next_message(&mut subscription) => match message {
                Some(message) => {
                    last_heard = Instant::now();
                    tracker.observe(&message);
                    if let Message::Executed { output: Some(output), prompt_id: id, .. } = &message && *id == prompt_id {
                        files.extend(output_files(output));
                    }
                    if message.ends(&prompt_id) {
                        break message;
                    }
                }
                None => subscription = None,
            },
            _ = tick.tick() => {
                if Instant::now() > deadline {
                    comfy.interrupt(&prompt_id).await;
                    let ran = format!("{:.0} s", allowed.as_secs_f64());
                    return Execution::Failed(failure("WORKER_TIMEOUT", "the job ran past its timeout", ran, true));
                }
                if !keep_going(tracker.percent()).await {
                    comfy.interrupt(&prompt_id).await;
                    return Execution::Stopped;
                }
                if (subscription.is_none() || last_heard.elapsed() >= QUIET)
                    && let Some(ended) = ended_in_history(comfy, &prompt_id, &mut files).await
                {
                    break ended;
                }
            }
        }
    };
    match &end {
        Message::ExecutionSuccess { .. } => Execution::Succeeded(files),
        Message::ExecutionError {
            node_type,
            exception_message,
            ..
        } => {
            let (code, retryable) = if end.is_out_of_memory() {
                ("OOM", true)
            } else {
                ("EXECUTION_ERROR", false)
            };
            let details = format!("{}: {exception_message}", node_type.as_deref().unwrap_or("?"));
            Execution::Failed(failure(
                code,
                "ComfyUI failed while running the workflow",
                details,
                retryable,
            ))
        }
        _ => Execution::Failed(failure(
            "EXECUTION_ERROR",
            "the run was interrupted on ComfyUI",
            "someone else interrupted the prompt".into(),
            true,
        )),
    }
}

async fn next_message(subscription: &mut Option<Subscription>) -> Option<Message> {
    match subscription {
        Some(subscription) => subscription.next().await,
        None => std::future::pending().await,
    }
}

/// The prompt's end from `/history`, once it is there (collecting its outputs).
async fn ended_in_history(comfy: &ComfyClient, prompt_id: &str, files: &mut Vec<OutputFile>) -> Option<Message> {
    let record = comfy.history(prompt_id).await?;
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
            exception_message: "the run failed (seen in /history)".into(),
            exception_type: String::new(),
        },
    })
}

/// When an image's thumbnail is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thumbnails {
    /// Before the outputs count as stored: the artifacts name their thumbnails (a job's
    /// results, which clients fetch as soon as they see them).
    WithTheOutputs,
    /// Right after: the artifacts are stored and described (sizes from the image header), and
    /// the thumbnails follow in the background (a diagnostic run, answered sooner).
    Afterwards,
}

/// Stores every output of a job under `outputs/{job_id}/`, all at once, with a JPEG thumbnail
/// (`thumb_<n>.jpg`) for each image; the artifacts in the order of `files`.
pub async fn store_outputs(
    comfy: &ComfyClient,
    blobs: &Arc<dyn BlobStore>,
    job_id: &str,
    files: &[OutputFile],
    thumbnails: Thumbnails,
) -> Result<Vec<Artifact>, String> {
    let stores = files
        .iter()
        .enumerate()
        .map(|(index, file)| store_output(comfy, blobs, job_id, index, file, thumbnails));
    futures::future::try_join_all(stores).await
}

async fn store_output(
    comfy: &ComfyClient,
    blobs: &Arc<dyn BlobStore>,
    job_id: &str,
    index: usize,
    file: &OutputFile,
    thumbnails: Thumbnails,
) -> Result<Artifact, String> {
    let bytes = comfy.view(file).await?;
    let format = file.filename.rsplit('.').next().unwrap_or("bin").to_lowercase();
    let mut artifact = Artifact {
        id: format!("artifact_{:012}", index + 1),
        kind: media_kind(&file.kind, &format).into(),
        key: format!("outputs/{job_id}/{}", file.filename),
        thumbnail_key: None,
        format: format.clone(),
        width: None,
        height: None,
        file_size_bytes: bytes.len() as u64,
    };
    let bucket = artifacts_bucket();
    let original = blobs.put(&bucket, &artifact.key, bytes.clone(), content_type(&format));
    if artifact.kind != "image" {
        original.await.map_err(|error| error.to_string())?;
        return Ok(artifact);
    }
    let thumbnail_key = format!("outputs/{job_id}/thumb_{}.jpg", index + 1);
    if thumbnails == Thumbnails::Afterwards {
        original.await.map_err(|error| error.to_string())?;
        if let Some((width, height)) = image_size(&bytes) {
            (artifact.width, artifact.height) = (Some(width), Some(height));
        }
        let blobs = blobs.clone();
        tokio::spawn(async move {
            if let Err(error) = store_thumbnail(blobs.as_ref(), &thumbnail_key, bytes).await {
                tracing::warn!(%error, key = thumbnail_key, "thumbnail not stored");
            }
        });
        return Ok(artifact);
    }
    // The original is written while the thumbnail is made; each write is durable when it answers.
    let (original, thumbnail) = tokio::join!(original, store_thumbnail(blobs.as_ref(), &thumbnail_key, bytes));
    original.map_err(|error| error.to_string())?;
    if let Some((width, height)) = thumbnail? {
        (artifact.width, artifact.height) = (Some(width), Some(height));
        artifact.thumbnail_key = Some(thumbnail_key);
    }
    Ok(artifact)
}

/// Makes and stores an image's thumbnail; the image's size, or `None` for bytes that are not a
/// readable image (and then no thumbnail).
async fn store_thumbnail(blobs: &dyn BlobStore, key: &str, image: Bytes) -> Result<Option<(u32, u32)>, String> {
    let made = tokio::task::spawn_blocking(move || thumbnail(&image))
        .await
        .map_err(|error| error.to_string())?;
    let Some((width, height, jpeg)) = made else {
        return Ok(None);
    };
    blobs
        .put(&artifacts_bucket(), key, jpeg, "image/jpeg")
        .await
        .map_err(|error| error.to_string())?;
    Ok(Some((width, height)))
}

/// An image's size from its header alone.
fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// An image's size and its JPEG thumbnail (SIMD resizing and encoding: a 512² image takes about
/// a millisecond after decoding); `None` for bytes that are not a readable image.
fn thumbnail(bytes: &[u8]) -> Option<(u32, u32, Bytes)> {
    use fast_image_resize as resize;
    let image = image::load_from_memory(bytes).ok()?.to_rgb8();
    let (width, height) = image.dimensions();
    let (thumb_width, thumb_height) = thumbnail_size(width, height);
    let source = resize::images::ImageRef::new(width, height, image.as_raw(), resize::PixelType::U8x3).ok()?;
    let mut small = resize::images::Image::new(thumb_width, thumb_height, resize::PixelType::U8x3);
    let bilinear =
        resize::ResizeOptions::new().resize_alg(resize::ResizeAlg::Convolution(resize::FilterType::Bilinear));
    resize::Resizer::new().resize(&source, &mut small, &bilinear).ok()?;
    let mut jpeg = Vec::new();
    let side = |pixels: u32| u16::try_from(pixels).ok();
    jpeg_encoder::Encoder::new(&mut jpeg, THUMBNAIL_QUALITY)
        .encode(
            small.buffer(),
            side(thumb_width)?,
            side(thumb_height)?,
            jpeg_encoder::ColorType::Rgb,
        )
        .ok()?;
    Some((width, height, Bytes::from(jpeg)))
}

/// A thumbnail's size: [`THUMBNAIL_PIXELS`] on the long side, never larger than the image.
fn thumbnail_size(width: u32, height: u32) -> (u32, u32) {
    let long = width.max(height).max(1);
    if long <= THUMBNAIL_PIXELS {
        return (width.max(1), height.max(1));
    }
    let scale = |side: u32| {
        ((u64::from(side) * u64::from(THUMBNAIL_PIXELS) + u64::from(long) / 2) / u64::from(long)).max(1) as u32
    };
    (scale(width), scale(height))
}

/// A failure as the API records it.
pub fn failure(code: &'static str, message: &str, details: String, retryable: bool) -> JobFailure {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_are_256_on_the_long_side_and_never_larger() {
        assert_eq!(thumbnail_size(1024, 1024), (256, 256));
        assert_eq!(thumbnail_size(1024, 576), (256, 144));
        assert_eq!(thumbnail_size(576, 1024), (144, 256));
        assert_eq!(thumbnail_size(256, 128), (256, 128));
        assert_eq!(thumbnail_size(64, 64), (64, 64));
        assert_eq!(thumbnail_size(4096, 8), (256, 1));
    }

    #[test]
    fn a_thumbnail_is_a_jpeg_of_the_image() {
        let image = image::RgbImage::from_fn(600, 300, |x, _| image::Rgb([(x % 256) as u8, 40, 200]));
        let mut png = Cursor::new(Vec::new());
        image.write_to(&mut png, image::ImageFormat::Png).expect("png");
        let (width, height, jpeg) = thumbnail(png.get_ref()).expect("a thumbnail");
        assert_eq!((width, height), (600, 300));
        let small = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).expect("a JPEG");
        assert_eq!((small.width(), small.height()), (256, 128));
        let pixel = small.to_rgb8().get_pixel(128, 64).0;
        assert!(pixel[1].abs_diff(40) < 12 && pixel[2].abs_diff(200) < 12, "{pixel:?}");
        assert!(thumbnail(b"not an image").is_none());
    }
}
