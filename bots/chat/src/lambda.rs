//! A bot's notify-queue consumer as an SQS-triggered Lambda (`ReportBatchItemFailures`) on its
//! FIFO notify queue: each message is shown in order; once one fails, it and the rest of the
//! batch are reported, so that SQS brings them back in order.

use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tessera_core::NotifyMessage;

/// Shows each notice of `event` with `show`, and answers the failures to retry.
pub async fn notify_batch<F, Fut>(event: SqsEvent, show: F) -> SqsBatchResponse
where
    F: Fn(NotifyMessage) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut response = SqsBatchResponse::default();
    let mut failed = false;
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        if failed {
            response.add_failure(id);
            continue;
        }
        let Ok(notice) = serde_json::from_str::<NotifyMessage>(record.body.as_deref().unwrap_or_default()) else {
            tracing::warn!("not a notify message: dropped");
            continue;
        };
        if let Err(error) = show(notice).await {
            tracing::warn!(%error, "notice not shown; SQS brings it back");
            failed = true;
            response.add_failure(id);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    fn record(id: &str, job: &str) -> serde_json::Value {
        let notice = json!({"event_id": format!("evt_{job}"), "event": "job.completed", "job_id": job,
            "bot_id": "b", "user_ref": "telegram:1", "reply_context": {}, "job": {}, "timestamp": "t"});
        json!({"messageId": id, "body": notice.to_string(), "attributes": {}, "messageAttributes": {}})
    }

    #[tokio::test]
    async fn after_a_failure_the_rest_of_the_batch_waits_for_it() {
        let event: SqsEvent = serde_json::from_value(json!({"Records": [
            record("m1", "job_a"),
            {"messageId": "m2", "body": "garbage", "attributes": {}, "messageAttributes": {}},
            record("m3", "job_b"),
            record("m4", "job_c"),
        ]}))
        .expect("event");
        let shown = Mutex::new(Vec::new());
        let response = notify_batch(event, |notice| {
            shown.lock().expect("lock").push(notice.job_id.clone());
            async move {
                if notice.job_id == "job_b" {
                    anyhow::bail!("Discord is down")
                }
                Ok(())
            }
        })
        .await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|failure| failure.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m3", "m4"]);
        assert_eq!(*shown.lock().expect("lock"), ["job_a", "job_b"]);
    }
}
