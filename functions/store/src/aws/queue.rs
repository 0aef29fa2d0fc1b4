//! The queue on SQS. Queue URLs are looked up once per queue and kept.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
use aws_sdk_sqs::operation::delete_message::DeleteMessageError;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use sha2::{Digest, Sha256};

use super::AwsStore;
use super::errors::store_error;
use crate::error::{StoreError, StoreResult};
use crate::queue::{
    DEDUPLICATION_WINDOW, OutgoingMessage, Queue, QueueCounts, QueueDef, ReceiveRequest, ReceivedMessage,
};

/// The ids of the FIFO messages this store sent within the deduplication window, by physical
/// queue name and deduplication id. SQS accepts and drops a duplicate, and the port promises
/// the first message's id for it; moto answers a duplicate with a fresh id, so the store keeps
/// the first one itself.
#[derive(Debug, Default)]
pub(super) struct SentMessages {
    ids: HashMap<(String, String), (String, i64)>,
}

impl SentMessages {
    /// The id to answer for a message sent with `key` at `now` that SQS gave `message_id`.
    fn answer(&mut self, key: (String, String), message_id: String, now: i64) -> String {
        let window = i64::try_from(DEDUPLICATION_WINDOW.as_secs()).unwrap_or(i64::MAX);
        self.ids.retain(|_, (_, sent_at)| now - *sent_at < window);
        self.ids.entry(key).or_insert((message_id, now)).0.clone()
    }
}

#[async_trait]
impl Queue for AwsStore {
    async fn send(&self, queue: &QueueDef, message: OutgoingMessage) -> StoreResult<String> {
        message.validate_for(queue)?;
        let url = self.queue_url(queue).await?;
        let deduplication = queue.fifo.then(|| (self.queue_name(queue), deduplication_id(&message)));
        // Only sent when set: FIFO queues take no per-message delay.
        let delay = (!message.delay.is_zero()).then(|| seconds(message.delay));
        let output = self
            .sqs
            .send_message()
            .queue_url(&url)
            .message_body(message.body)
            .set_delay_seconds(delay)
            .set_message_group_id(message.group_id)
            .set_message_deduplication_id(message.deduplication_id)
            .send()
            .await
            .map_err(|error| store_error(&format!("SendMessage {}", queue.name), error))?;
        let message_id = output
            .message_id()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Internal("SendMessage returned no message id".into()))?;
        Ok(match deduplication {
            Some(key) => {
                let mut sent = self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                sent.answer(key, message_id, self.now())
            }
            None => message_id,
        })
    }

    async fn receive(&self, queue: &QueueDef, request: ReceiveRequest) -> StoreResult<Vec<ReceivedMessage>> {
        request.validate()?;
        let url = self.queue_url(queue).await?;
        let visibility = request.visibility_timeout.unwrap_or(queue.visibility_timeout);
        let output = self
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(i32::try_from(request.max_messages).unwrap_or(i32::MAX))
            .visibility_timeout(seconds(visibility))
            .wait_time_seconds(seconds(request.wait))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|error| store_error(&format!("ReceiveMessage {}", queue.name), error))?;
        output.messages().iter().map(received).collect()
    }

    async fn change_visibility(&self, queue: &QueueDef, receipt: &str, timeout: Duration) -> StoreResult<()> {
        // The port's own check of a visibility timeout, as a receive would make it.
        ReceiveRequest {
            visibility_timeout: Some(timeout),
            ..ReceiveRequest::new(1, Duration::ZERO)
        }
        .validate()?;
        validate_receipt(receipt)?;
        let url = self.queue_url(queue).await?;
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds(timeout))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(
                    ChangeMessageVisibilityError::MessageNotInflight(_)
                    | ChangeMessageVisibilityError::ReceiptHandleIsInvalid(_),
                ) => Err(StoreError::NotFound(format!(
                    "no message in flight on {} has this receipt",
                    queue.name
                ))),
                _ => Err(store_error(&format!("ChangeMessageVisibility {}", queue.name), error)),
            },
        }
    }

    async fn delete(&self, queue: &QueueDef, receipt: &str) -> StoreResult<()> {
        validate_receipt(receipt)?;
        let url = self.queue_url(queue).await?;
        let result = self
            .sqs
            .delete_message()
            .queue_url(&url)
            .receipt_handle(receipt)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A stale receipt (message deleted, dead-lettered or received again) is not an error:
            // deleting is idempotent, as it is on SQS for an already deleted message.
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(DeleteMessageError::ReceiptHandleIsInvalid(_))
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(store_error(&format!("DeleteMessage {}", queue.name), error)),
        }
    }

    async fn counts(&self, queue: &QueueDef) -> StoreResult<QueueCounts> {
        let url = self.queue_url(queue).await?;
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|error| store_error(&format!("GetQueueAttributes {}", queue.name), error))?;
        let count = |name: QueueAttributeName| -> StoreResult<u64> {
            let value = output.attributes().and_then(|attributes| attributes.get(&name));
            value.and_then(|value| value.parse().ok()).ok_or_else(|| {
                StoreError::Internal(format!(
                    "GetQueueAttributes {} returned no number for {name}",
                    queue.name
                ))
            })
        };
        Ok(QueueCounts {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages)?,
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed)?,
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        self.sqs
            .list_queues()
            .max_results(1)
            .send()
            .await
            .map_err(|error| store_error("ListQueues", error))?;
        Ok(())
    }
}

impl AwsStore {
    /// The URL of `queue`, from the cache or `GetQueueUrl`; `NotFound` when it does not exist.
    pub(super) async fn queue_url(&self, queue: &QueueDef) -> StoreResult<String> {
        let name = self.queue_name(queue);
        if let Some(url) = self.cached_queue_url(&name) {
            return Ok(url);
        }
        let output = self
            .sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map_err(|error| store_error(&format!("GetQueueUrl {name}"), error))?;
        let url = output
            .queue_url()
            .ok_or_else(|| StoreError::Internal(format!("GetQueueUrl {name} returned no URL")))?;
        self.remember_queue_url(name, url);
        Ok(url.to_owned())
    }

    fn cached_queue_url(&self, name: &str) -> Option<String> {
        let urls = self.queue_urls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        urls.get(name).cloned()
    }

    /// Keeps the URL of the queue with physical name `name`.
    pub(super) fn remember_queue_url(&self, name: String, url: &str) {
        let mut urls = self.queue_urls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        urls.insert(name, url.to_owned());
    }
}

fn received(message: &Message) -> StoreResult<ReceivedMessage> {
    let missing = |what: &str| StoreError::Internal(format!("ReceiveMessage returned a message without {what}"));
    let attribute =
        |name: MessageSystemAttributeName| message.attributes().and_then(|attributes| attributes.get(&name));
    let receive_count = attribute(MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|count| count.parse().ok())
        .ok_or_else(|| missing("a receive count"))?;
    Ok(ReceivedMessage {
        message_id: message.message_id().ok_or_else(|| missing("an id"))?.to_owned(),
        body: message.body().unwrap_or_default().to_owned(),
        receipt: message
            .receipt_handle()
            .ok_or_else(|| missing("a receipt handle"))?
            .to_owned(),
        receive_count,
        group_id: attribute(MessageSystemAttributeName::MessageGroupId).cloned(),
    })
}

/// The deduplication id SQS uses: the given one, or (content-based) the body's SHA-256.
fn deduplication_id(message: &OutgoingMessage) -> String {
    match &message.deduplication_id {
        Some(id) => id.clone(),
        None => hex::encode(Sha256::digest(message.body.as_bytes())),
    }
}

fn validate_receipt(receipt: &str) -> StoreResult<()> {
    if receipt.is_empty() {
        return Err(StoreError::InvalidInput("a receipt handle must not be empty".into()));
    }
    Ok(())
}

/// Whole seconds of a validated duration, as SQS takes them.
fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_receive_count_and_group() {
        let message = Message::builder()
            .message_id("m1")
            .body("hello")
            .receipt_handle("r1")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .attributes(MessageSystemAttributeName::MessageGroupId, "chat-1")
            .build();
        let expected = ReceivedMessage {
            message_id: "m1".into(),
            body: "hello".into(),
            receipt: "r1".into(),
            receive_count: 3,
            group_id: Some("chat-1".into()),
        };
        assert_eq!(received(&message).expect("message"), expected);
        let bare = Message::builder().message_id("m1").receipt_handle("r1").build();
        assert!(matches!(received(&bare), Err(StoreError::Internal(_))));
    }

    #[test]
    fn duplicates_within_the_window_answer_the_first_id() {
        let mut sent = SentMessages::default();
        let key = |id: &str| ("q.fifo".to_owned(), id.to_owned());
        assert_eq!(sent.answer(key("d1"), "m1".into(), 1000), "m1");
        assert_eq!(sent.answer(key("d1"), "m2".into(), 1299), "m1");
        assert_eq!(sent.answer(key("d2"), "m3".into(), 1299), "m3");
        assert_eq!(sent.answer(key("d1"), "m4".into(), 1300), "m4");
        let body = OutgoingMessage::new("same body");
        assert_eq!(deduplication_id(&body).len(), 64);
        let explicit = OutgoingMessage {
            deduplication_id: Some("job_1:completed".into()),
            ..body
        };
        assert_eq!(deduplication_id(&explicit), "job_1:completed");
    }

    #[test]
    fn durations_become_whole_seconds() {
        assert_eq!(seconds(Duration::from_secs(20)), 20);
        assert_eq!(seconds(Duration::from_secs(u64::MAX)), i32::MAX);
    }
}
