//! The queue port: SQS-shaped message queues with delays, visibility timeouts, long polls,
//! dead-letter queues, and FIFO queues with message groups and deduplication ids.
//!
//! Times are whole seconds, as SQS counts them.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::{StoreError, StoreResult};

/// The longest delay of a message (SQS: 15 minutes).
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// The longest visibility timeout (SQS: 12 hours).
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// The longest long-poll wait (SQS: 20 seconds).
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// The most messages one receive returns.
pub const MAX_RECEIVE: u32 = 10;
/// The largest message body (SQS: 256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long a FIFO queue remembers a deduplication id (SQS: 5 minutes).
pub const DEDUPLICATION_WINDOW: Duration = Duration::from_secs(5 * 60);

/// A queue: its logical name (the physical one adds the deployment prefix) and behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDef {
    /// Logical name; a FIFO queue's ends with `.fifo`.
    pub name: String,
    /// First-in-first-out within a message group, with deduplication.
    pub fifo: bool,
    /// Visibility timeout when a receive does not give one.
    pub visibility_timeout: Duration,
    /// Where messages go after too many receives.
    pub dead_letter: Option<DeadLetter>,
}

/// A redrive policy: after `max_receives` receives, the next receive moves the message to
/// `queue` instead of returning it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead-letter queue; FIFO exactly when the source queue is.
    pub queue: Box<QueueDef>,
    /// How many times a message may be received before it is dead-lettered.
    pub max_receives: u32,
}

impl QueueDef {
    /// A standard queue with a 30 s visibility timeout and no dead-letter queue.
    pub fn standard(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            fifo: false,
            visibility_timeout: Duration::from_secs(30),
            dead_letter: None,
        }
    }

    /// A FIFO queue (`name` must end with `.fifo`) with a 30 s visibility timeout.
    pub fn fifo(name: impl Into<String>) -> Self {
        Self {
            fifo: true,
            ..Self::standard(name)
        }
    }

    /// The same queue, with a dead-letter queue after `max_receives` receives.
    pub fn with_dead_letter(mut self, queue: QueueDef, max_receives: u32) -> Self {
        self.dead_letter = Some(DeadLetter {
            queue: Box::new(queue),
            max_receives,
        });
        self
    }

    /// Checks the name, FIFO suffix, timeouts and dead-letter pairing.
    pub fn validate(&self) -> StoreResult<()> {
        let stem = self.name.strip_suffix(".fifo").unwrap_or(&self.name);
        let valid_name = !stem.is_empty()
            && self.name.len() <= 60
            && stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name || self.fifo != self.name.ends_with(".fifo") {
            return Err(StoreError::InvalidInput(format!(
                "'{}' is not a valid {} queue name",
                self.name,
                if self.fifo { "FIFO" } else { "standard" }
            )));
        }
        whole_seconds("visibility timeout", self.visibility_timeout, MAX_VISIBILITY_TIMEOUT)?;
        if let Some(dead_letter) = &self.dead_letter {
            dead_letter.queue.validate()?;
            if dead_letter.queue.fifo != self.fifo || dead_letter.queue.dead_letter.is_some() {
                return Err(StoreError::InvalidInput(format!(
                    "the dead-letter queue of '{}' must be of the same kind and have none itself",
                    self.name
                )));
            }
            if !(1..=1000).contains(&dead_letter.max_receives) {
                return Err(StoreError::InvalidInput(
                    "max_receives must be between 1 and 1000".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The body, 1 byte to 256 KiB of text.
    pub body: String,
    /// How long the message stays invisible after sending (standard queues only), up to 15 min.
    pub delay: Duration,
    /// FIFO only, and required there: messages of one group are delivered in order, one
    /// in flight at a time.
    pub group_id: Option<String>,
    /// FIFO only: a second message with the same id within 5 minutes is accepted and dropped.
    /// Without it, the SHA-256 of the body is the id.
    pub deduplication_id: Option<String>,
}

impl OutgoingMessage {
    /// A message with `body` and nothing else.
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    /// Checks the message against the queue's kind and the size limits.
    pub fn validate_for(&self, queue: &QueueDef) -> StoreResult<()> {
        if self.body.is_empty() || self.body.len() > MAX_BODY_BYTES {
            return Err(StoreError::InvalidInput(format!(
                "a message body is 1 to {MAX_BODY_BYTES} bytes, not {}",
                self.body.len()
            )));
        }
        whole_seconds("delay", self.delay, MAX_DELAY)?;
        if queue.fifo {
            if self.group_id.as_deref().is_none_or(|group| !valid_token(group)) {
                return Err(StoreError::InvalidInput(
                    "a FIFO message needs a group id of 1 to 128 printable characters".into(),
                ));
            }
            if self.deduplication_id.as_deref().is_some_and(|id| !valid_token(id)) {
                return Err(StoreError::InvalidInput(
                    "a deduplication id is 1 to 128 printable characters".into(),
                ));
            }
            if !self.delay.is_zero() {
                return Err(StoreError::InvalidInput("FIFO queues take no per-message delay".into()));
            }
        } else if self.group_id.is_some() || self.deduplication_id.is_some() {
            return Err(StoreError::InvalidInput(
                "group and deduplication ids are for FIFO queues only".into(),
            ));
        }
        Ok(())
    }
}

fn valid_token(token: &str) -> bool {
    (1..=128).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic())
}

fn whole_seconds(what: &str, duration: Duration, max: Duration) -> StoreResult<()> {
    if duration.subsec_nanos() != 0 || duration > max {
        return Err(StoreError::InvalidInput(format!(
            "a {what} is whole seconds up to {} s",
            max.as_secs()
        )));
    }
    Ok(())
}

/// What a receive asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveRequest {
    /// 1 to 10 messages.
    pub max_messages: u32,
    /// How long received messages stay invisible; `None` for the queue's default.
    pub visibility_timeout: Option<Duration>,
    /// Long poll: wait up to this long for a message (0 to 20 s), returning as soon as one is there.
    pub wait: Duration,
}

impl ReceiveRequest {
    /// Up to `max_messages`, with the queue's visibility timeout, waiting up to `wait`.
    pub fn new(max_messages: u32, wait: Duration) -> Self {
        Self {
            max_messages,
            visibility_timeout: None,
            wait,
        }
    }

    /// Checks the count and times.
    pub fn validate(&self) -> StoreResult<()> {
        if !(1..=MAX_RECEIVE).contains(&self.max_messages) {
            return Err(StoreError::InvalidInput(format!(
                "a receive takes 1 to {MAX_RECEIVE} messages"
            )));
        }
        if let Some(timeout) = self.visibility_timeout {
            whole_seconds("visibility timeout", timeout, MAX_VISIBILITY_TIMEOUT)?;
        }
        whole_seconds("wait", self.wait, MAX_WAIT)
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The id given at send time.
    pub message_id: String,
    /// The body as sent.
    pub body: String,
    /// The handle that deletes it or changes its visibility; valid for this receive only.
    pub receipt: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// Its FIFO group, if any.
    pub group_id: Option<String>,
}

/// Approximate message counts of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Ready to be received.
    pub visible: u64,
    /// Received and not yet deleted or visible again.
    pub in_flight: u64,
    /// Sent with a delay that has not passed yet.
    pub delayed: u64,
}

/// The queue port.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends a message; returns its id. On a FIFO queue a duplicate (same deduplication id
    /// within 5 minutes) is accepted, returns the first message's id, and is not delivered.
    async fn send(&self, queue: &QueueDef, message: OutgoingMessage) -> StoreResult<String>;

    /// Receives up to `max_messages` visible messages, hiding them for the visibility timeout;
    /// waits up to `wait` for the first one.
    async fn receive(&self, queue: &QueueDef, request: ReceiveRequest) -> StoreResult<Vec<ReceivedMessage>>;

    /// Makes an in-flight message visible again after `timeout` from now (0: at once).
    async fn change_visibility(&self, queue: &QueueDef, receipt: &str, timeout: Duration) -> StoreResult<()>;

    /// Deletes a received message for good.
    async fn delete(&self, queue: &QueueDef, receipt: &str) -> StoreResult<()>;

    /// Approximate visible, in-flight and delayed counts.
    async fn counts(&self, queue: &QueueDef) -> StoreResult<QueueCounts>;

    /// Checks that the backend answers.
    async fn ping(&self) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_must_match_their_kind() {
        assert!(QueueDef::standard("jobs-image-normal").validate().is_ok());
        assert!(QueueDef::fifo("notify-telegram.fifo").validate().is_ok());
        assert!(QueueDef::standard("jobs.fifo").validate().is_err());
        assert!(QueueDef::fifo("notify").validate().is_err());
        assert!(QueueDef::standard("bad name").validate().is_err());
        let mixed = QueueDef::standard("a").with_dead_letter(QueueDef::fifo("b.fifo"), 3);
        assert!(mixed.validate().is_err());
    }

    #[test]
    fn messages_must_fit_their_queue() {
        let standard = QueueDef::standard("a");
        let fifo = QueueDef::fifo("b.fifo");
        assert!(OutgoingMessage::new("x").validate_for(&standard).is_ok());
        assert!(OutgoingMessage::new("").validate_for(&standard).is_err());
        assert!(OutgoingMessage::new("x").validate_for(&fifo).is_err());
        let grouped = OutgoingMessage {
            group_id: Some("chat-1".into()),
            ..OutgoingMessage::new("x")
        };
        assert!(grouped.validate_for(&fifo).is_ok());
        assert!(grouped.validate_for(&standard).is_err());
        let late = OutgoingMessage {
            delay: Duration::from_secs(901),
            ..OutgoingMessage::new("x")
        };
        assert!(late.validate_for(&standard).is_err());
        let fractional = OutgoingMessage {
            delay: Duration::from_millis(1500),
            ..OutgoingMessage::new("x")
        };
        assert!(fractional.validate_for(&standard).is_err());
    }

    #[test]
    fn receive_requests_are_bounded() {
        assert!(ReceiveRequest::new(10, Duration::from_secs(20)).validate().is_ok());
        assert!(ReceiveRequest::new(0, Duration::ZERO).validate().is_err());
        assert!(ReceiveRequest::new(11, Duration::ZERO).validate().is_err());
        assert!(ReceiveRequest::new(1, Duration::from_secs(21)).validate().is_err());
    }
}
