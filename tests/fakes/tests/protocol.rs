//! The fake ComfyUI against a raw client, checked against what the recordings of a real ComfyUI
//! show: message order, previews, cache hits, validation errors, runtime errors, interrupts,
//! dropped sockets, history and `/view`.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tessera_fakes::{Failure, FakeComfy, FakeConfig};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(fake: &FakeComfy, client: &str) -> Socket {
    let url = format!("{}/ws?clientId={client}", fake.base_url.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.expect("websocket").0
}

fn canary(color: u32) -> Value {
    json!({"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": color}},
           "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "tessera"}}})
}

fn sampler() -> Value {
    json!({"5": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
           "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4, "latent_image": ["5", 0]}},
           "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "tessera"}}})
}

async fn post(fake: &FakeComfy, graph: &Value, client: &str, prompt_id: &str) -> (u16, String) {
    let body = json!({"prompt": graph, "client_id": client, "prompt_id": prompt_id});
    let response = reqwest::Client::new()
        .post(format!("{}/prompt", fake.base_url))
        .json(&body)
        .send()
        .await
        .expect("post");
    (response.status().as_u16(), response.text().await.expect("body"))
}

/// Text frames (as JSON) and the number of binary frames, until a terminal message for
/// `prompt_id` or the socket closes.
async fn until_end(socket: &mut Socket, prompt_id: &str) -> (Vec<Value>, usize, bool) {
    let (mut texts, mut binaries) = (Vec::new(), 0);
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame in time");
        match frame {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text).expect("json frame");
                let terminal = ["execution_success", "execution_error", "execution_interrupted"]
                    .contains(&message["type"].as_str().unwrap_or_default())
                    && message["data"]["prompt_id"] == prompt_id;
                texts.push(message);
                if terminal {
                    return (texts, binaries, false);
                }
            }
            Some(Ok(Message::Binary(bytes))) => {
                assert_eq!(&bytes[..8], &[0, 0, 0, 1, 0, 0, 0, 2], "preview image, PNG");
                binaries += 1;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (texts, binaries, true),
        }
    }
}

fn kinds(texts: &[Value]) -> Vec<String> {
    texts
        .iter()
        .map(|message| message["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_run_follows_the_recorded_order_and_serves_its_png() {
    let fake = FakeComfy::start(FakeConfig::default()).await;
    let mut socket = connect(&fake, "c1").await;
    let (status, body) = post(&fake, &canary(0xff0000), "c1", "11111111-2222-3333-4444-555555555555").await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (answer["prompt_id"].clone(), answer["node_errors"].clone()),
        (json!("11111111-2222-3333-4444-555555555555"), json!({}))
    );
    let (texts, _, dropped) = until_end(&mut socket, "11111111-2222-3333-4444-555555555555").await;
    assert!(!dropped);
    let order: Vec<String> = kinds(&texts).into_iter().filter(|kind| kind != "status").collect();
    assert_eq!(
        &order[..4],
        ["execution_start", "execution_cached", "progress_state", "executing"]
    );
    assert_eq!(order.last().map(String::as_str), Some("execution_success"));
    assert_eq!(texts[0]["data"]["sid"], "c1", "the first frame names the session");
    let executed = texts
        .iter()
        .find(|message| message["type"] == "executed")
        .expect("executed");
    let filename = executed["data"]["output"]["images"][0]["filename"]
        .as_str()
        .expect("file")
        .to_owned();

    let history: Value = reqwest::get(format!(
        "{}/history/11111111-2222-3333-4444-555555555555",
        fake.base_url
    ))
    .await
    .expect("history")
    .json()
    .await
    .expect("json");
    let record = &history["11111111-2222-3333-4444-555555555555"];
    assert_eq!(
        (
            record["status"]["status_str"].clone(),
            record["status"]["completed"].clone()
        ),
        (json!("success"), json!(true))
    );
    assert_eq!(record["outputs"]["2"]["images"][0]["filename"], filename.as_str());
    let png = reqwest::get(format!(
        "{}/view?filename={filename}&subfolder=&type=output",
        fake.base_url
    ))
    .await
    .expect("view")
    .bytes()
    .await
    .expect("bytes");
    let image = image::load_from_memory(&png).expect("a PNG").to_rgb8();
    assert_eq!(
        (image.width(), image.height(), image.get_pixel(0, 0).0),
        (64, 48, [255, 0, 0])
    );
    let unknown: Value = reqwest::get(format!("{}/history/nope", fake.base_url))
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(unknown, json!({}));
}

#[tokio::test]
async fn a_sampler_reports_steps_with_previews_and_a_repeat_is_served_from_cache() {
    let fake = FakeComfy::start(FakeConfig {
        steps: 4,
        ..FakeConfig::default()
    })
    .await;
    let mut socket = connect(&fake, "c2").await;
    post(&fake, &sampler(), "c2", "p-1").await;
    let (texts, previews, _) = until_end(&mut socket, "p-1").await;
    let steps: Vec<i64> = texts
        .iter()
        .filter(|m| m["type"] == "progress")
        .map(|m| m["data"]["value"].as_i64().expect("value"))
        .collect();
    assert_eq!(steps, [0, 1, 2, 3, 4]);
    assert_eq!(previews, 5, "a preview after each progress");
    let first_file = texts.iter().find(|m| m["type"] == "executed").expect("executed")["data"]["output"].clone();

    post(&fake, &sampler(), "c2", "p-2").await;
    let (again, previews, _) = until_end(&mut socket, "p-2").await;
    let cached = again.iter().find(|m| m["type"] == "execution_cached").expect("cached");
    assert_eq!(
        cached["data"]["nodes"].as_array().map(Vec::len),
        Some(3),
        "every node from cache"
    );
    assert_eq!(previews, 0);
    let executed = again
        .iter()
        .find(|m| m["type"] == "executed")
        .expect("executed still names the file");
    assert_eq!(executed["data"]["output"], first_file, "the old file, no new one");
}

#[tokio::test]
async fn validation_errors_have_the_recorded_shapes() {
    let fake = FakeComfy::start(FakeConfig::default()).await;
    let unknown = json!({"1": {"class_type": "NoSuchNode", "inputs": {}}});
    let (status, body) = post(&fake, &unknown, "c", "a").await;
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!((status, body["error"]["type"].clone()), (400, json!("invalid_prompt")));
    assert_eq!(
        body["error"]["message"],
        "Cannot execute because node NoSuchNode does not exist."
    );

    let missing = json!({"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": tessera_fakes::comfy::MISSING_CHECKPOINT}},
                         "9": {"class_type": "SaveImage", "inputs": {"images": ["4", 0]}}});
    let (status, body) = post(&fake, &missing, "c", "b").await;
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (status, body["error"]["type"].clone()),
        (400, json!("prompt_outputs_failed_validation"))
    );
    assert_eq!(body["node_errors"]["4"]["errors"][0]["type"], "value_not_in_list");

    let no_output = json!({"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}});
    let (_, body) = post(&fake, &no_output, "c", "c").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["error"]["type"],
        "prompt_no_outputs"
    );

    let not_json = reqwest::Client::new()
        .post(format!("{}/prompt", fake.base_url))
        .body("{ nope")
        .send()
        .await
        .expect("post");
    assert_eq!(not_json.status(), 500);
    assert!(fake.prompts().is_empty(), "nothing was queued");
}

#[tokio::test]
async fn runtime_errors_interrupts_and_dropped_sockets_behave_as_recorded() {
    let fake = FakeComfy::start(FakeConfig::default()).await;
    let mut socket = connect(&fake, "c3").await;
    fake.fail_next(Failure::Runtime { oom: true });
    post(&fake, &canary(1), "c3", "oom").await;
    let (texts, _, _) = until_end(&mut socket, "oom").await;
    let error = texts.last().expect("terminal");
    assert_eq!(
        (error["type"].clone(), error["data"]["exception_type"].clone()),
        (json!("execution_error"), json!("torch.OutOfMemoryError"))
    );
    let history: Value = reqwest::get(format!("{}/history/oom", fake.base_url))
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(history["oom"]["status"]["status_str"], "error");

    fake.fail_next(Failure::Hang);
    post(&fake, &canary(2), "c3", "hang").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queue: Value = reqwest::get(format!("{}/queue", fake.base_url))
        .await
        .expect("queue")
        .json()
        .await
        .expect("json");
    assert_eq!(queue["queue_running"][0][1], "hang");
    reqwest::Client::new()
        .post(format!("{}/interrupt", fake.base_url))
        .json(&json!({"prompt_id": "hang"}))
        .send()
        .await
        .expect("interrupt");
    let (texts, _, _) = until_end(&mut socket, "hang").await;
    assert_eq!(texts.last().expect("terminal")["type"], "execution_interrupted");
    assert_eq!(fake.interrupts(), ["hang"]);

    fake.fail_next(Failure::DropSocket);
    post(&fake, &canary(3), "c3", "drop").await;
    let (_, _, dropped) = until_end(&mut socket, "drop").await;
    assert!(dropped, "the socket closed before the end");
    let mut finished = Value::Null;
    for _ in 0..100 {
        let history: Value = reqwest::get(format!("{}/history/drop", fake.base_url))
            .await
            .expect("history")
            .json()
            .await
            .expect("json");
        if !history["drop"].is_null() {
            finished = history["drop"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        finished["status"]["status_str"], "success",
        "the run completed; history has it"
    );
    let stats: Value = reqwest::get(format!("{}/system_stats", fake.base_url))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["system"]["comfyui_version"], "0.3.64");
}
