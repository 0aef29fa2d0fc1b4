//! Group commit. The store's async writes go to one thread, which takes every write waiting at
//! the time into one SQLite transaction (each in a savepoint of its own, so that a refused write
//! undoes only itself) and answers them all once that transaction has committed. Concurrent
//! requests then share a commit's cost (the log's page writes and checksums, the file locks)
//! instead of queueing for the connection one by one, and no request's thread blocks on the
//! connection: it awaits its answer. A write that finds nothing queued and the connection free
//! runs at once on its own thread, so that a lone request pays no hand-over to the writer.
//! Once any write waits for the thread, the others follow it there until it has caught up.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::{StoreError, StoreResult};

/// The most writes one transaction takes; the rest wait for the next.
const MAX_BATCH: usize = 64;

/// The handle of the writer thread; the thread ends when the handle is dropped.
pub(super) struct Writer {
    ops: Sender<Op>,
    shared: Arc<Shared>,
}

/// What the writer thread and the writing requests share.
struct Shared {
    connection: Arc<Mutex<Connection>>,
    /// Writes sent to the thread and not yet answered.
    queued: AtomicUsize,
    /// How many transactions have been committed.
    commits: AtomicU64,
}

/// One write: run on the connection inside the batch's transaction (or told why it cannot
/// run), it answers whether it succeeded and how to deliver its result once the batch is done.
type Op = Box<dyn FnOnce(Result<&Connection, StoreError>) -> Applied + Send>;

/// A write that ran: whether it succeeded (else its savepoint is rolled back), and its answer,
/// delivered with the outcome of the commit.
struct Applied {
    succeeded: bool,
    answer: Box<dyn FnOnce(StoreResult<()>) + Send>,
}

impl Writer {
    /// Starts the thread that writes through `connection` (which others may lock meanwhile).
    pub(super) fn start(connection: Arc<Mutex<Connection>>) -> StoreResult<Self> {
        let (ops, queue) = mpsc::channel::<Op>();
        let shared = Arc::new(Shared {
            connection,
            queued: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
        });
        let served = shared.clone();
        std::thread::Builder::new()
            .name("tessera-store-writer".into())
            .spawn(move || serve(&served, &queue))?;
        Ok(Self { ops, shared })
    }

    /// How many transactions have been committed.
    pub(super) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Runs `work` in a write transaction and answers its result once that is committed; a
    /// failed `work` changes nothing.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        let op: Op = Box::new(move |db| {
            let result = db.and_then(work);
            Applied {
                succeeded: result.is_ok(),
                answer: Box::new(move |committed| {
                    let _ = reply.send(result.and_then(|value| committed.map(|()| value)));
                }),
            }
        });
        let stopped = || StoreError::Unavailable("the store's writer has stopped".into());
        match self.idle_connection() {
            Some(db) => {
                let (answers, committed) = apply(&db, vec![op], &self.shared.commits);
                drop(db);
                deliver(answers, &committed);
            }
            None => {
                self.shared.queued.fetch_add(1, Ordering::AcqRel);
                self.ops.send(op).map_err(|_| stopped())?;
            }
        }
        // An answer dropped unsent is a write that panicked (and was rolled back).
        answer
            .await
            .map_err(|_| StoreError::Internal("the write failed unexpectedly and was undone".into()))?
    }

    /// The connection, when no write is waiting for the thread (under load, writes keep going
    /// to it, to share its transactions) and no one holds the connection.
    pub(super) fn idle_connection(&self) -> Option<MutexGuard<'_, Connection>> {
        if self.shared.queued.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.shared.connection.try_lock() {
            Ok(db) => Some(db),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// The writer thread: batches of waiting writes, one transaction each, until the store closes.
fn serve(shared: &Shared, queue: &Receiver<Op>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(op) = queue.try_recv()
        {
            batch.push(op);
        }
        let taken = batch.len();
        let db = lock(&shared.connection);
        let (answers, committed) = apply(&db, batch, &shared.commits);
        drop(db);
        deliver(answers, &committed);
        shared.queued.fetch_sub(taken, Ordering::AcqRel);
    }
}

/// Gives every write of a batch its result, with the outcome of the batch's commit.
fn deliver(answers: Vec<Answer>, committed: &StoreResult<()>) {
    for answer in answers {
        answer(committed.clone());
    }
}

fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An answer waiting for the outcome of its batch's commit.
type Answer = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// Runs `batch` in one transaction: its answers, and whether the transaction committed.
fn apply(db: &Connection, mut batch: Vec<Op>, commits: &AtomicU64) -> (Vec<Answer>, StoreResult<()>) {
    if let Err(error) = run(db, "BEGIN IMMEDIATE") {
        let answers = batch.into_iter().map(|op| op(Err(error.clone())).answer).collect();
        return (answers, Err(error));
    }
    if batch.len() == 1
        && let Some(op) = batch.pop()
    {
        let (answer, committed) = apply_alone(db, op, commits);
        return (answer.into_iter().collect(), committed);
    }
    let mut answers = Vec::with_capacity(batch.len());
    let mut outcome = Ok(());
    for op in batch {
        if outcome.is_err() {
            answers.push(op(Err(StoreError::Unavailable("the batch's transaction failed".into()))).answer);
            continue;
        }
        outcome = run(db, "SAVEPOINT op").and_then(|()| {
            let applied = run_op(db, op);
            let succeeded = applied.as_ref().is_some_and(|applied| applied.succeeded);
            answers.extend(applied.map(|applied| applied.answer));
            if succeeded {
                run(db, "RELEASE op")
            } else {
                run(db, "ROLLBACK TO op").and_then(|()| run(db, "RELEASE op"))
            }
        });
    }
    let committed = match outcome {
        Ok(()) => commit(db, commits),
        Err(error) => {
            let _ = run(db, "ROLLBACK");
            Err(error)
        }
    };
    (answers, committed)
}

/// A write alone in its transaction: committed when it succeeded, rolled back when not.
fn apply_alone(db: &Connection, op: Op, commits: &AtomicU64) -> (Option<Answer>, StoreResult<()>) {
    match run_op(db, op) {
        Some(applied) if applied.succeeded => (Some(applied.answer), commit(db, commits)),
        refused => {
            let _ = run(db, "ROLLBACK");
            (refused.map(|applied| applied.answer), Ok(()))
        }
    }
}

/// Commits the open transaction (counted in `commits`), or rolls it back when the commit fails.
fn commit(db: &Connection, commits: &AtomicU64) -> StoreResult<()> {
    if let Err(error) = run(db, "COMMIT") {
        let _ = run(db, "ROLLBACK");
        return Err(error);
    }
    commits.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Runs one write; `None` when it panicked (its answer is gone with it: the caller hears that
/// the writer stopped, and its savepoint is rolled back).
fn run_op(db: &Connection, op: Op) -> Option<Applied> {
    std::panic::catch_unwind(AssertUnwindSafe(|| op(Ok(db)))).ok()
}

fn run(db: &Connection, sql: &str) -> StoreResult<()> {
    db.prepare_cached(sql)?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests;
