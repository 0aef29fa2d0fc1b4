//! Waiting for a job to end: its event stream (`GET /api/v1/jobs/{id}/events`), or polling `GET
//! /api/v1/jobs/{id}` when the stream cannot be had; and what Ctrl-C does meanwhile.

use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use serde_json::Value;
use tokio::signal::unix::Signal;

use super::client::{ApiClient, Call};
use super::error::{CliError, ExitStatus};
use super::job;
use super::progress::Progress;
use super::sse::SseParser;

/// A stream silent this long is taken as broken (the server comments every 15 s).
const STREAM_SILENCE: Duration = Duration::from_secs(45);
/// The first pause between two polls, and the longest.
const POLL_FIRST: Duration = Duration::from_secs(1);
const POLL_LONGEST: Duration = Duration::from_secs(5);
/// Polls in a row that may fail to reach the server before waiting gives up.
const POLL_FAILURES: u32 = 5;
/// The longest wait a `retry_after` may impose between two polls.
const RETRY_AFTER_LONGEST: u64 = 60;

/// Waits until the job is final and answers its last view; the progress is shown meanwhile.
pub async fn until_final(client: &mut ApiClient, job_id: &str, progress: &mut Progress) -> Result<Value, CliError> {
    match stream(client, job_id, progress).await {
        Ok(Some(view)) => return Ok(view),
        Ok(None) => progress.note("the event stream ended early; polling the job instead"),
        Err(error) if falls_back_to_polling(&error) => {
            progress.note(&format!("no event stream ({error}); polling the job instead"));
        }
        Err(error) => return Err(error),
    }
    poll(client, job_id, progress).await
}

/// Whether a failed event stream is worth replacing by polling (the server or the network, a
/// limit), rather than a refusal polling would meet too.
fn falls_back_to_polling(error: &CliError) -> bool {
    matches!(error.exit_status(), ExitStatus::Unavailable | ExitStatus::Quota)
}

/// Follows the event stream; `Ok(None)` when it ends before a final state.
async fn stream(client: &mut ApiClient, job_id: &str, progress: &mut Progress) -> Result<Option<Value>, CliError> {
    let path = format!("/api/v1/jobs/{job_id}/events");
    let call = Call::get(&path).header("accept", "text/event-stream").without_timeout();
    let mut response = client.send(call).await?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("text/event-stream") {
        return Err(CliError::BadAnswer {
            what: format!("GET {path}"),
            reason: format!("content type {content_type:?}, not text/event-stream"),
        });
    }
    let mut parser = SseParser::default();
    loop {
        let chunk = tokio::time::timeout(STREAM_SILENCE, response.chunk())
            .await
            .map_err(|_| CliError::Unreachable {
                url: path.clone(),
                reason: format!("the event stream was silent for {} s", STREAM_SILENCE.as_secs()),
            })?
            .map_err(|error| CliError::Unreachable {
                url: path.clone(),
                reason: super::client::describe(&error),
            })?;
        let Some(chunk) = chunk else {
            return Ok(None);
        };
        for event in parser.push(&chunk) {
            let Ok(view) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            if event.event != "status" || !view.is_object() {
                continue;
            }
            progress.show(&view);
            if job::is_final(&view) {
                return Ok(Some(view));
            }
        }
    }
}

/// Polls the job until it is final, pausing longer each time (and as long as a 429 asks).
async fn poll(client: &mut ApiClient, job_id: &str, progress: &mut Progress) -> Result<Value, CliError> {
    let mut pause = POLL_FIRST;
    let mut failures = 0;
    loop {
        match client.json(Call::get(format!("/api/v1/jobs/{job_id}"))).await {
            Ok(view) => {
                failures = 0;
                progress.show(&view);
                if job::is_final(&view) {
                    return Ok(view);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 3 / 2).min(POLL_LONGEST);
            }
            Err(CliError::Api(failure)) if failure.status == 429 => {
                let wait = failure.retry_after.unwrap_or(5).clamp(1, RETRY_AFTER_LONGEST);
                progress.note(&format!("rate limited: polling again in {wait} s"));
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            Err(error) if error.exit_status() == ExitStatus::Unavailable && failures + 1 < POLL_FAILURES => {
                failures += 1;
                progress.note(&format!("{error}; retrying"));
                tokio::time::sleep(POLL_LONGEST).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Waits as [`until_final`] does; on Ctrl-C (`interrupt`), asks on a terminal whether to cancel
/// the job, and otherwise leaves it running and says how to follow it again.
pub async fn until_final_or_interrupted(
    client: &mut ApiClient,
    job_id: &str,
    progress: &mut Progress,
    interrupt: &mut Signal,
) -> Result<Value, CliError> {
    let finished = tokio::select! {
        result = until_final(client, job_id, progress) => Some(result),
        _ = interrupt.recv() => None,
    };
    if let Some(result) = finished {
        return result;
    }
    progress.clear();
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(CliError::LeftRunning {
            job_id: job_id.to_owned(),
        });
    }
    if !ask_to_cancel(job_id).await {
        return Err(CliError::LeftRunning {
            job_id: job_id.to_owned(),
        });
    }
    client.json(Call::delete(format!("/api/v1/jobs/{job_id}"))).await?;
    Err(CliError::JobEnded {
        job_id: job_id.to_owned(),
        status: "cancelled".into(),
        reason: Some("at your request".into()),
    })
}

/// Asks on the terminal whether to cancel the job; anything but yes leaves it running.
async fn ask_to_cancel(job_id: &str) -> bool {
    eprint!("Cancel job {job_id}? [y/N] (no leaves it running) ");
    let _ = std::io::Write::flush(&mut std::io::stderr());
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await;
    matches!(answer, Ok(Ok(line)) if matches!(line.trim().to_lowercase().as_str(), "y" | "yes"))
}
