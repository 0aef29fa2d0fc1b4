//! Reading a job as the API shows it (`GET /api/v1/jobs/{id}`, the event stream, the create
//! answer), whatever the server put in it: a missing or odd field reads as absent.

use serde_json::Value;

/// The job's id (`?` when absent).
pub fn id(view: &Value) -> &str {
    view.get("job_id").and_then(Value::as_str).unwrap_or("?")
}

/// The job's status, e.g. `QUEUED` (`UNKNOWN` when absent).
pub fn status(view: &Value) -> &str {
    view.get("status").and_then(Value::as_str).unwrap_or("UNKNOWN")
}

/// Whether the job is `COMPLETED`, `FAILED` or `CANCELLED`.
pub fn is_final(view: &Value) -> bool {
    matches!(status(view), "COMPLETED" | "FAILED" | "CANCELLED")
}

/// The progress of a running job, 0–100.
pub fn progress(view: &Value) -> u8 {
    view.get("progress")
        .and_then(Value::as_u64)
        .map_or(0, |progress| u8::try_from(progress.min(100)).unwrap_or(100))
}

/// A failed job's error, `CODE: message`.
pub fn failure(view: &Value) -> Option<String> {
    let error = view.get("error")?;
    let code = error.get("code").and_then(Value::as_str);
    let message = error.get("message").and_then(Value::as_str);
    match (code, message) {
        (Some(code), Some(message)) => Some(format!("{code}: {message}")),
        (Some(text), None) | (None, Some(text)) => Some(text.to_owned()),
        (None, None) => None,
    }
}

/// The state in a few words: `queued, position 2, about 40 s`, `running`, `completed in 3 s`.
pub fn short_state(view: &Value) -> String {
    let number = |field: &str| view.get(field).and_then(Value::as_u64);
    match status(view) {
        "QUEUED" => {
            let mut text = "queued".to_owned();
            if let Some(position) = number("queue_position") {
                text.push_str(&format!(", position {position}"));
            }
            if let Some(seconds) = number("estimated_time_seconds") {
                text.push_str(&format!(", about {seconds} s"));
            }
            text
        }
        "RUNNING" => "running".to_owned(),
        "COMPLETED" => match view.get("execution_time_seconds").and_then(Value::as_i64) {
            Some(seconds) => format!("completed in {seconds} s"),
            None => "completed".to_owned(),
        },
        "FAILED" => match failure(view) {
            Some(reason) => format!("failed: {reason}"),
            None => "failed".to_owned(),
        },
        "CANCELLED" => "cancelled".to_owned(),
        other => other.to_lowercase(),
    }
}

/// One line about the job: `job_abc queued, position 1, about 20 s`, `job_abc running 40%`.
pub fn describe(view: &Value) -> String {
    let state = short_state(view);
    match status(view) {
        "RUNNING" => format!("{} {state} {}%", id(view), progress(view)),
        _ => format!("{} {state}", id(view)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_state_reads_in_a_few_words() {
        let queued = json!({"job_id": "job_a", "status": "QUEUED", "queue_position": 2, "estimated_time_seconds": 40});
        assert_eq!(describe(&queued), "job_a queued, position 2, about 40 s");
        let running = json!({"job_id": "job_a", "status": "RUNNING", "progress": 40});
        assert_eq!(describe(&running), "job_a running 40%");
        let failed =
            json!({"job_id": "job_a", "status": "FAILED", "error": {"code": "OOM", "message": "out of memory"}});
        assert_eq!(describe(&failed), "job_a failed: OOM: out of memory");
        assert!(is_final(&failed));
    }

    #[test]
    fn odd_answers_read_as_absent_fields() {
        let odd = json!({"status": 7, "progress": 900, "error": "boom"});
        assert_eq!(describe(&odd), "? unknown");
        assert_eq!(progress(&odd), 100);
        assert_eq!(failure(&odd), None);
        assert!(!is_final(&json!(null)));
    }
}
