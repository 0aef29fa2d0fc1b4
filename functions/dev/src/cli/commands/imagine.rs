//! `tessera imagine`: creates an image job (with an `Idempotency-Key`, so a retried create is
//! never a second job), follows it, and saves its artifacts.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::signal::unix::{SignalKind, signal};

use super::Context;
use crate::cli::args::ImagineArgs;
use crate::cli::client::{ApiClient, Call};
use crate::cli::error::{CliError, ExitStatus};
use crate::cli::output::Outcome;
use crate::cli::progress::Progress;
use crate::cli::{download, follow, job};

/// Attempts at creating the job when the server cannot be reached (same key each time).
const CREATE_ATTEMPTS: u32 = 3;
/// The pause between two attempts.
const CREATE_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Runs `tessera imagine`.
pub async fn imagine(args: ImagineArgs, context: &Context) -> Result<Outcome, CliError> {
    // Listening from the start: a Ctrl-C during the create is handled once the job exists.
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|error| CliError::local("listening for Ctrl-C", error))?;
    let mut client = context.client()?;
    let created = create(&mut client, &job_body(&args), &idempotency_key()).await?;
    let job_id = job::id(&created).to_owned();
    if job_id == "?" {
        return Err(CliError::BadAnswer {
            what: "POST /api/v1/jobs".into(),
            reason: "no job_id".into(),
        });
    }
    let mut progress = Progress::for_stderr();
    if let Some(cost) = created.get("cost_tokens") {
        progress.note(&format!("{job_id} created, cost {cost} tokens"));
    }
    progress.show(&created);
    let view = follow::until_final_or_interrupted(&mut client, &job_id, &mut progress, &mut interrupt).await?;
    progress.clear();
    finish(&client, view, Some(&args.out)).await
}

/// The create request's body: only the parameters given, so the API's defaults apply to the rest.
pub fn job_body(args: &ImagineArgs) -> Value {
    let mut params = Map::new();
    params.insert("prompt".into(), json!(args.prompt));
    let optional = [
        ("model", args.model.as_ref().map(|model| json!(model))),
        (
            "resolution",
            args.resolution.as_ref().map(|resolution| json!(resolution)),
        ),
        ("steps", args.steps.map(|steps| json!(steps))),
        ("seed", args.seed.map(|seed| json!(seed))),
        ("negative_prompt", args.negative_prompt.as_ref().map(|text| json!(text))),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            params.insert(name.into(), value);
        }
    }
    let mut body = json!({"capability": "image", "params": params});
    if let Some(priority) = args.priority {
        body["priority"] = json!(priority.as_str());
    }
    body
}

/// A fresh key for one invocation: a random UUID (version 4).
pub fn idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `POST /api/v1/jobs`, sent again with the same key when the server could not be reached.
async fn create(client: &mut ApiClient, body: &Value, key: &str) -> Result<Value, CliError> {
    let mut attempt = 1;
    loop {
        let call = Call::post("/api/v1/jobs", body.clone()).header("idempotency-key", key);
        match client.json(call).await {
            Err(error) if error.exit_status() == ExitStatus::Unavailable && attempt < CREATE_ATTEMPTS => {
                crate::cli::output::note(&format!("{error}; retrying"));
                tokio::time::sleep(CREATE_RETRY_PAUSE).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The outcome of a final job: a completed job's artifacts saved into `out` (when given) and
/// listed; a failed or cancelled job exits 1 with the job in its JSON.
pub async fn finish(client: &ApiClient, view: Value, out: Option<&Path>) -> Result<Outcome, CliError> {
    if job::status(&view) != "COMPLETED" {
        let ended = CliError::JobEnded {
            job_id: job::id(&view).to_owned(),
            status: job::status(&view).to_lowercase(),
            reason: job::failure(&view),
        };
        let error = ended.to_json()["error"].take();
        return Ok(Outcome {
            json: json!({"job": view, "files": [], "error": error}),
            text: String::new(),
            status: ExitStatus::JobFailed,
        });
    }
    let (files, text) = match out {
        Some(dir) => {
            let files = download::artifacts(client, &view, dir).await?;
            let text = files
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join("\n");
            (files, text)
        }
        None => (Vec::new(), artifact_urls(&view).join("\n")),
    };
    let files: Vec<String> = files.iter().map(|path| path.display().to_string()).collect();
    Ok(Outcome::success(json!({"job": view, "files": files}), text))
}

fn artifact_urls(view: &Value) -> Vec<String> {
    crate::cli::output::rows(view, "artifacts")
        .iter()
        .filter_map(|artifact| artifact.get("url").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::PriorityArg;

    #[test]
    fn the_body_holds_only_what_was_given() {
        let args = ImagineArgs {
            prompt: "a red fox".into(),
            model: Some("canary".into()),
            resolution: None,
            steps: Some(4),
            seed: None,
            negative_prompt: None,
            priority: Some(PriorityArg::Low),
            out: ".".into(),
        };
        assert_eq!(
            job_body(&args),
            json!({"capability": "image", "params": {"prompt": "a red fox", "model": "canary", "steps": 4}, "priority": "low"})
        );
    }

    #[test]
    fn each_invocation_gets_a_fresh_uuid_v4_key() {
        let (first, second) = (idempotency_key(), idempotency_key());
        assert_ne!(first, second);
        assert_eq!(first.len(), 36);
        assert_eq!(first.as_bytes()[14], b'4', "{first}");
        assert!(matches!(first.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{first}");
    }
}
