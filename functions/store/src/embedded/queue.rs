//! The queue on the `messages` table. A queue is just a name: any queue that passes
//! [`QueueDef::validate`] works without being created. Visibility is kept in milliseconds of the
//! injected clock; long polls wait in real time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::{EmbeddedStore, random_hex};
use crate::error::{StoreError, StoreResult};
use crate::queue::{
    DEDUPLICATION_WINDOW, MAX_VISIBILITY_TIMEOUT, OutgoingMessage, Queue, QueueCounts, QueueDef, ReceiveRequest,
    ReceivedMessage,
};

/// How often a long poll looks again on its own: it sees delayed messages coming due, which no
/// notification announces.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How often a long poll checks whether another process sharing the file has written to it
/// (SQLite's `data_version`, a cheap read): a send from another process is seen within this.
const PEEK_INTERVAL: Duration = Duration::from_millis(1);

/// Moves an in-flight message's visibility (`change_visibility`).
pub(super) const EXTEND_VISIBILITY: &str =
    "UPDATE messages SET visible_at = ?1 WHERE queue = ?2 AND receipt = ?3 AND visible_at > ?4";

/// How many candidate rows one receive reads at a time.
pub(super) const SCAN_BATCH: i64 = 32;

#[async_trait]
impl Queue for EmbeddedStore {
    async fn send(&self, queue: &QueueDef, message: OutgoingMessage) -> StoreResult<String> {
        queue.validate()?;
        message.validate_for(queue)?;
        let now = self.now_ms();
        let id = if queue.fifo {
            let queue = queue.clone();
            self.writer
                .write(move |db| send_fifo(db, &queue, &message, now))
                .await?
        } else {
            let name = queue.name.clone();
            let visible_at = now.saturating_add(millis(message.delay));
            self.writer
                .write(move |db| send_standard(db, &name, &message, visible_at))
                .await?
        };
        self.announce(&queue.name);
        Ok(id)
    }

    async fn receive(&self, queue: &QueueDef, request: ReceiveRequest) -> StoreResult<Vec<ReceivedMessage>> {
        queue.validate()?;
        request.validate()?;
        let visibility = request.visibility_timeout.unwrap_or(queue.visibility_timeout);
        let deadline = tokio::time::Instant::now() + request.wait;
        let arrivals = self.arrivals(&queue.name);
        loop {
            // Registered before looking, so a send between the look and the wait still wakes it.
            let arrival = arrivals.notified();
            tokio::pin!(arrival);
            // The writer may be in a long batch: then the last version any poll read will do.
            let version = match self.data_version_if_idle()? {
                Some(version) => {
                    self.peeked(version);
                    version
                }
                None => self.peek().version,
            };
            let received = self.receive_now(queue, request.max_messages, visibility).await?;
            let now = tokio::time::Instant::now();
            if !received.is_empty() || now >= deadline {
                return Ok(received);
            }
            let look_again = deadline.min(now + POLL_INTERVAL);
            loop {
                let peek = look_again.min(tokio::time::Instant::now() + PEEK_INTERVAL);
                tokio::select! {
                    () = &mut arrival => break,
                    () = tokio::time::sleep_until(peek) => {}
                }
                if tokio::time::Instant::now() >= look_again || self.other_process_wrote(version)? {
                    break;
                }
            }
        }
    }

    async fn change_visibility(&self, queue: &QueueDef, receipt: &str, timeout: Duration) -> StoreResult<()> {
        queue.validate()?;
        validate_receipt(receipt)?;
        if timeout.subsec_nanos() != 0 || timeout > MAX_VISIBILITY_TIMEOUT {
            return Err(StoreError::InvalidInput(format!(
                "a visibility timeout is whole seconds up to {} s",
                MAX_VISIBILITY_TIMEOUT.as_secs()
            )));
        }
        let now = self.now_ms();
        let (name, receipt) = (queue.name.clone(), receipt.to_owned());
        let changed = self
            .writer
            .write(move |db| {
                let mut statement = db.prepare_cached(EXTEND_VISIBILITY)?;
                Ok(statement.execute(params![now.saturating_add(millis(timeout)), name, receipt, now])?)
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!(
                "no message in flight on {} has this receipt",
                queue.name
            )));
        }
        self.announce(&queue.name);
        Ok(())
    }

    async fn delete(&self, queue: &QueueDef, receipt: &str) -> StoreResult<()> {
        queue.validate()?;
        validate_receipt(receipt)?;
        // A stale or unknown receipt deletes nothing, and that is fine, as on SQS.
        let (name, receipt) = (queue.name.clone(), receipt.to_owned());
        self.writer
            .write(move |db| {
                db.prepare_cached("DELETE FROM messages WHERE queue = ?1 AND receipt = ?2")?
                    .execute(params![name, receipt])?;
                Ok(())
            })
            .await
    }

    async fn counts(&self, queue: &QueueDef) -> StoreResult<QueueCounts> {
        queue.validate()?;
        let now = self.now_ms();
        let db = self.pooled_reader()?;
        let mut statement = db.prepare_cached(
            "SELECT COALESCE(SUM(visible_at <= ?1), 0),
                    COALESCE(SUM(visible_at > ?1 AND receive_count > 0), 0),
                    COALESCE(SUM(visible_at > ?1 AND receive_count = 0), 0)
             FROM messages WHERE queue = ?2",
        )?;
        let counts = statement.query_row(params![now, queue.name], |row| {
            Ok(QueueCounts {
                visible: row.get(0)?,
                in_flight: row.get(1)?,
                delayed: row.get(2)?,
            })
        })?;
        Ok(counts)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.check_health()
    }
}

/// The long polls' shared view of other processes' writes.
#[derive(Debug, Default)]
pub(super) struct Peek {
    version: i64,
    at: Option<tokio::time::Instant>,
}

impl EmbeddedStore {
    /// The notification of `queue`'s arrivals.
    fn arrivals(&self, queue: &str) -> Arc<Notify> {
        let mut arrivals = self.arrivals.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match arrivals.get(queue) {
            Some(notify) => notify.clone(),
            None => arrivals.entry(queue.to_owned()).or_default().clone(),
        }
    }

    /// Wakes the long polls of `queue`.
    pub(super) fn announce(&self, queue: &str) {
        let notify = self
            .arrivals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(queue)
            .cloned();
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// Wakes every long poll (another process wrote, or messages moved between queues).
    fn announce_everywhere(&self) {
        let arrivals = self.arrivals.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for notify in arrivals.values() {
            notify.notify_waiters();
        }
    }

    /// SQLite's count of commits made to the file by other connections (as the writer's
    /// connection sees it), or `None` when the writer is busy: a peek never waits for it.
    fn data_version_if_idle(&self) -> StoreResult<Option<i64>> {
        let db = match self.connection.try_lock() {
            Ok(db) => db,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
        };
        Ok(Some(db.query_row("PRAGMA data_version", [], |row| row.get(0))?))
    }

    fn peek(&self) -> std::sync::MutexGuard<'_, Peek> {
        self.peek.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the `data_version` just read.
    fn peeked(&self, version: i64) {
        let mut peek = self.peek();
        peek.version = peek.version.max(version);
        peek.at = Some(tokio::time::Instant::now());
    }

    /// Whether another process has written since `version`: reads `data_version` unless some
    /// poll read it within the last [`PEEK_INTERVAL`] or the writer is busy (the next peek
    /// looks); a change wakes every waiting poll.
    fn other_process_wrote(&self, version: i64) -> StoreResult<bool> {
        let fresh = self.peek().at.is_some_and(|at| at.elapsed() < PEEK_INTERVAL);
        if !fresh && let Some(now) = self.data_version_if_idle()? {
            let changed = now != self.peek().version;
            self.peeked(now);
            if changed {
                self.announce_everywhere();
            }
        }
        Ok(self.peek().version != version)
    }

    /// One look at the queue: takes up to `max` receivable messages, dead-lettering on the way
    /// those received too often.
    async fn receive_now(&self, queue: &QueueDef, max: u32, visibility: Duration) -> StoreResult<Vec<ReceivedMessage>> {
        let now = self.now_ms();
        if !self.any_visible(&queue.name, now)? {
            return Ok(Vec::new());
        }
        let queue = queue.clone();
        let (received, dead_lettered) = self
            .writer
            .write(move |db| {
                let mut scan = Scan {
                    db,
                    queue: &queue,
                    now,
                    visible_at: now.saturating_add(millis(visibility)),
                    blocked: if queue.fifo {
                        blocked_groups(db, &queue.name, now)?
                    } else {
                        HashSet::new()
                    },
                    received: Vec::new(),
                    dead_lettered: false,
                };
                scan.run(usize::try_from(max).unwrap_or(usize::MAX))?;
                Ok((scan.received, scan.dead_lettered))
            })
            .await?;
        if dead_lettered {
            self.announce_everywhere();
        }
        Ok(received)
    }

    /// Whether `queue` holds a message visible at `now`, looked up on a reader: an idle poll
    /// looks without taking the writer.
    fn any_visible(&self, queue: &str, now: i64) -> StoreResult<bool> {
        let reader = self.reader()?;
        let mut statement =
            reader.prepare_cached("SELECT EXISTS (SELECT 1 FROM messages WHERE queue = ?1 AND visible_at <= ?2)")?;
        Ok(statement.query_row(params![queue, now], |row| row.get(0))?)
    }
}

/// A walk over a queue's visible messages in send order, within one write transaction.
struct Scan<'a> {
    db: &'a Connection,
    queue: &'a QueueDef,
    now: i64,
    /// When messages taken now become visible again.
    visible_at: i64,
    /// FIFO groups that must not deliver now: they have a message in flight.
    blocked: HashSet<String>,
    received: Vec<ReceivedMessage>,
    dead_lettered: bool,
}

/// A visible message, as a receive first sees it.
struct Candidate {
    seq: i64,
    group: Option<String>,
    receive_count: u32,
}

impl Scan<'_> {
    fn run(&mut self, max: usize) -> StoreResult<()> {
        let mut after = 0;
        while self.received.len() < max {
            let batch = self.candidates(after)?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            after = last.seq;
            for candidate in batch {
                if self.received.len() == max {
                    break;
                }
                self.consider(candidate)?;
            }
        }
        Ok(())
    }

    fn candidates(&self, after: i64) -> StoreResult<Vec<Candidate>> {
        // The batch is part of the text: a bound LIMIT makes SQLite prepare the statement anew.
        let mut statement = self.db.prepare_cached(&format!(
            "SELECT seq, grp, receive_count FROM messages
             WHERE queue = ?1 AND seq > ?2 AND visible_at <= ?3 ORDER BY seq LIMIT {SCAN_BATCH}"
        ))?;
        let rows = statement.query_map(params![self.queue.name, after, self.now], |row| {
            Ok(Candidate {
                seq: row.get(0)?,
                group: row.get(1)?,
                receive_count: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn consider(&mut self, candidate: Candidate) -> StoreResult<()> {
        if candidate
            .group
            .as_ref()
            .is_some_and(|group| self.blocked.contains(group))
        {
            return Ok(());
        }
        match &self.queue.dead_letter {
            Some(dead_letter) if candidate.receive_count >= dead_letter.max_receives => {
                self.db
                    .prepare_cached(
                        "UPDATE messages SET queue = ?1, receive_count = 0, receipt = NULL, visible_at = ?2
                         WHERE seq = ?3",
                    )?
                    .execute(params![dead_letter.queue.name, self.now, candidate.seq])?;
                self.dead_lettered = true;
            }
            _ => self.take(candidate.seq)?,
        }
        Ok(())
    }

    fn take(&mut self, seq: i64) -> StoreResult<()> {
        let receipt = random_hex(24);
        let message = self
            .db
            .prepare_cached(
                "UPDATE messages SET receive_count = receive_count + 1, receipt = ?1, visible_at = ?2
                 WHERE seq = ?3 RETURNING id, body, receive_count, grp",
            )?
            .query_row(params![receipt, self.visible_at, seq], |row| {
                Ok(ReceivedMessage {
                    message_id: row.get(0)?,
                    body: row.get(1)?,
                    receipt: receipt.clone(),
                    receive_count: row.get(2)?,
                    group_id: row.get(3)?,
                })
            })?;
        self.received.push(message);
        Ok(())
    }
}

/// Sends to a FIFO queue unless the deduplication id was seen within the window; returns
/// the id of the message that holds it.
fn send_fifo(db: &Connection, queue: &QueueDef, message: &OutgoingMessage, now: i64) -> StoreResult<String> {
    let dedup_id = match &message.deduplication_id {
        Some(id) => id.clone(),
        None => hex::encode(Sha256::digest(message.body.as_bytes())),
    };
    db.prepare_cached("DELETE FROM dedup WHERE sent_at <= ?1")?
        .execute([now.saturating_sub(millis(DEDUPLICATION_WINDOW))])?;
    let original: Option<String> = db
        .prepare_cached("SELECT message_id FROM dedup WHERE queue = ?1 AND dedup_id = ?2")?
        .query_row(params![queue.name, dedup_id], |row| row.get(0))
        .optional()?;
    let id = match original {
        Some(original) => original,
        None => {
            let id = message_id();
            insert(db, &queue.name, &id, message, now)?;
            db.prepare_cached("INSERT INTO dedup (queue, dedup_id, message_id, sent_at) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![queue.name, dedup_id, id, now])?;
            id
        }
    };
    Ok(id)
}

/// The FIFO groups with a message in flight. FIFO messages have no delay, so every invisible
/// message is in flight, and its whole group waits for it.
fn blocked_groups(db: &Connection, queue: &str, now: i64) -> StoreResult<HashSet<String>> {
    let mut statement = db
        .prepare_cached("SELECT DISTINCT grp FROM messages WHERE queue = ?1 AND visible_at > ?2 AND grp IS NOT NULL")?;
    let groups = statement.query_map(params![queue, now], |row| row.get(0))?;
    Ok(groups.collect::<Result<_, _>>()?)
}

/// Sends `message` to the standard queue `queue`, visible from `visible_at`; answers its id.
pub(super) fn send_standard(
    db: &Connection,
    queue: &str,
    message: &OutgoingMessage,
    visible_at: i64,
) -> StoreResult<String> {
    let id = message_id();
    insert(db, queue, &id, message, visible_at)?;
    Ok(id)
}

fn insert(db: &Connection, queue: &str, id: &str, message: &OutgoingMessage, visible_at: i64) -> StoreResult<()> {
    db.prepare_cached("INSERT INTO messages (queue, id, grp, visible_at, body) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![queue, id, message.group_id, visible_at, message.body])?;
    Ok(())
}

/// A random id in the shape of an SQS message id (a version 4 UUID).
fn message_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn validate_receipt(receipt: &str) -> StoreResult<()> {
    if receipt.is_empty() {
        return Err(StoreError::InvalidInput("a receipt handle must not be empty".into()));
    }
    Ok(())
}

/// Whole milliseconds of a validated duration.
pub(super) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
