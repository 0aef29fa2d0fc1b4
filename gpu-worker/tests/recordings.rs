//! ComfyUI's recorded wire protocol (`tests/recordings/`, copied from a real ComfyUI 0.3.64)
//! through the worker's message types and progress tracker.

use serde_json::Value;
use tessera_worker::comfy::{Message, ProgressTracker, output_files};

/// The complete JSON text frames of a recording, in order (the recordings cut long lines; those
/// are skipped).
fn frames(recording: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/recordings")
        .join(recording);
    let text = std::fs::read_to_string(path).expect("recording");
    text.lines()
        .filter_map(|line| line.find("{\"type\"").map(|start| line[start..].to_owned()))
        .filter(|json| serde_json::from_str::<Value>(json).is_ok())
        .collect()
}

fn prompt_of(frames: &[String]) -> String {
    frames
        .iter()
        .find_map(|frame| match Message::parse(frame) {
            Some(Message::ExecutionStart { prompt_id }) => Some(prompt_id),
            _ => None,
        })
        .expect("an execution_start")
}

#[test]
fn a_successful_run_parses_and_progress_climbs_to_100() {
    let frames = frames("empty_run1.txt");
    let prompt = prompt_of(&frames);
    let mut tracker = ProgressTracker::new(&prompt, 2);
    let mut seen = vec![0];
    let mut files = Vec::new();
    for frame in &frames {
        let message = Message::parse(frame).unwrap_or_else(|| panic!("unparsed: {frame}"));
        if let Some(percent) = tracker.observe(&message) {
            seen.push(percent);
        }
        if let Message::Executed {
            output: Some(output), ..
        } = &message
        {
            files.extend(output_files(output));
        }
        if message.ends(&prompt) {
            break;
        }
    }
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "never backwards: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&100));
    assert!(seen.contains(&50), "half way after the first of two nodes: {seen:?}");
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].kind.as_str(), files[0].filename.as_str()),
        ("images", "tessera_00001_.png")
    );
}

#[test]
fn a_cached_run_reaches_100_too() {
    let frames = frames("empty_run2.txt");
    let prompt = prompt_of(&frames);
    let mut tracker = ProgressTracker::new(&prompt, 2);
    for frame in &frames {
        let message = Message::parse(frame).expect("parses");
        tracker.observe(&message);
        if message.ends(&prompt) {
            break;
        }
    }
    assert_eq!(tracker.percent(), 100);
}

#[test]
fn sampler_steps_move_the_percentage_within_a_node() {
    let frames = frames("wsimg.txt");
    let prompt = prompt_of(&frames);
    let mut tracker = ProgressTracker::new(&prompt, 2);
    let mut seen = Vec::new();
    for frame in &frames {
        if let Some(percent) = tracker.observe(&Message::parse(frame).expect("parses")) {
            seen.push(percent);
        }
    }
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "{seen:?}");
    assert!(
        seen.iter().any(|percent| (51..100).contains(percent)),
        "steps of node 2 count: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&100));
}

#[test]
fn runtime_errors_and_interrupts_end_the_prompt() {
    // The recording cuts the long `execution_error` frame inside its tensor dump; its head, up to
    // the exception message, is kept and closed.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recordings/runtime_error.txt");
    let text = std::fs::read_to_string(path).expect("recording");
    let line = text
        .lines()
        .find(|line| line.contains("\"execution_error\""))
        .expect("the error frame");
    let head = &line[line.find('{').expect("json")..line.find(", \"exception_message\"").expect("message")];
    let error =
        format!("{head}, \"exception_message\": \"Saving image outside the output folder is not allowed.\"}}}}");
    let prompt = prompt_of(&frames("runtime_error.txt"));
    let error = Message::parse(&error).expect("parses");
    assert!(error.ends(&prompt));
    assert!(matches!(&error, Message::ExecutionError { node_type: Some(node), .. } if node == "SaveImage"));
    assert!(!error.is_out_of_memory());

    let interrupted = frames("queue_interrupt.txt")
        .iter()
        .filter_map(|frame| Message::parse(frame))
        .find(|message| matches!(message, Message::ExecutionInterrupted { .. }));
    assert!(interrupted.is_some());
}

#[test]
fn out_of_memory_is_recognised_and_every_media_kind_is_collected() {
    let oom = Message::parse(
        r#"{"type": "execution_error", "data": {"prompt_id": "p", "node_id": "3", "node_type": "KSampler",
            "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB", "exception_type": "torch.OutOfMemoryError"}}"#,
    )
    .expect("parses");
    assert!(oom.is_out_of_memory() && oom.ends("p"));
    let output = serde_json::json!({
        "images": [{"filename": "a.png", "subfolder": "", "type": "output"}],
        "gifs": [{"filename": "b.webp", "subfolder": "anim", "type": "output"}],
        "audio": [{"filename": "c.flac", "subfolder": "", "type": "output"}],
        "text": ["not a file"]
    });
    let files = output_files(output.as_object().expect("object"));
    let kinds: Vec<_> = files.iter().map(|file| file.kind.as_str()).collect();
    assert_eq!(kinds, ["audio", "gifs", "images"]);
    assert_eq!(files[1].subfolder, "anim");
    let preview = [0, 0, 0, 1, 0, 0, 0, 2, 0x89, b'P', b'N', b'G'];
    let parsed = tessera_worker::comfy::parse_preview(&preview).expect("a preview");
    assert_eq!((parsed.format, parsed.image), (2, &preview[8..]));
    assert!(tessera_worker::comfy::parse_preview(&[0, 0, 0, 2, 0, 0, 0, 2]).is_none());
}
