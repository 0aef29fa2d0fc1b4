//! The SQLite file: connection settings and the schema, versioned with `user_version`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::{StoreError, StoreResult};

/// The schema this code writes; a file with a newer one was made by newer code.
const SCHEMA_VERSION: i64 = 4;

/// Enough cached statements for every query shape the backend prepares.
const STATEMENT_CACHE: usize = 128;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    doc TEXT NOT NULL,
    ttl INTEGER,
    i0pk TEXT,
    i0sk TEXT,
    i1pk TEXT,
    i1sk TEXT,
    PRIMARY KEY (tbl, pk, sk)
) WITHOUT ROWID;
-- `ttl` last makes the indexes covering for counts (a count reads no item).
CREATE INDEX IF NOT EXISTS items_i0 ON items (tbl, i0pk, i0sk, pk, sk, ttl) WHERE i0pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_i1 ON items (tbl, i1pk, i1sk, pk, sk, ttl) WHERE i1pk IS NOT NULL;

-- How many items each index partition holds, and how many of those have a TTL, kept by the
-- triggers of `size_triggers` in the transaction that writes the items: a count of a partition
-- with no expiring item can be answered from its size (see `items::count`), not by stepping.
CREATE TABLE IF NOT EXISTS index_sizes (
    tbl TEXT NOT NULL,
    slot INTEGER NOT NULL,
    part TEXT NOT NULL,
    items INTEGER NOT NULL,
    expiring INTEGER NOT NULL,
    PRIMARY KEY (tbl, slot, part)
) WITHOUT ROWID;

-- `seq` orders a queue's messages: a new one gets the largest + 1 (no AUTOINCREMENT, whose
-- `sqlite_sequence` row would be one more page written by every send; a number freed by
-- deleting the newest message may come back, still after every message left).
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    grp TEXT,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    -- Last, so that scanning the other columns never reads a large body's overflow pages.
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, seq, visible_at);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_receipt ON messages (receipt) WHERE receipt IS NOT NULL;

CREATE TABLE IF NOT EXISTS dedup (
    queue TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    PRIMARY KEY (queue, dedup_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_age ON dedup (sent_at);

CREATE TABLE IF NOT EXISTS blobs (
    bucket TEXT NOT NULL,
    object_key TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    modified INTEGER NOT NULL,
    PRIMARY KEY (bucket, object_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_age ON blobs (bucket, modified);
";

/// How long the writer's connection waits for another process's lock on the file.
const WRITER_BUSY_WAIT: Duration = Duration::from_secs(5);

/// Opens the file at `path`, creating or upgrading its schema.
pub(super) fn open(path: &Path) -> StoreResult<Connection> {
    let mut connection = Connection::open(path)?;
    connection.busy_timeout(WRITER_BUSY_WAIT)?;
    // WAL lets other processes read while one writes; NORMAL syncs at checkpoints only, which
    // keeps every committed transaction across a process crash.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoints run on the store's own thread (see `Checkpointer`), not inside a commit that
    // every other request waits behind.
    connection.pragma_update(None, "wal_autocheckpoint", 0)?;
    connection.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate(&mut connection)?;
    Ok(connection)
}

/// The triggers that keep `index_sizes`: an item counts in the partition of each index slot it
/// has a key in. Items are written by upsert (an `UPDATE` when the row exists), so the update
/// triggers see a replaced item's old and new partitions.
fn size_triggers() -> String {
    let slots = 0..super::items::INDEX_SLOTS;
    let add = |slot: usize| {
        format!(
            "INSERT INTO index_sizes (tbl, slot, part, items, expiring)
                 SELECT new.tbl, {slot}, new.i{slot}pk, 1, new.ttl IS NOT NULL WHERE new.i{slot}pk IS NOT NULL
                 ON CONFLICT DO UPDATE SET items = items + 1, expiring = expiring + excluded.expiring;"
        )
    };
    let remove = |slot: usize| {
        format!(
            "UPDATE index_sizes SET items = items - 1, expiring = expiring - (old.ttl IS NOT NULL)
                 WHERE tbl = old.tbl AND slot = {slot} AND part = old.i{slot}pk;"
        )
    };
    let mut sql = format!(
        "CREATE TRIGGER IF NOT EXISTS items_sized_on_insert AFTER INSERT ON items BEGIN {} END;
         CREATE TRIGGER IF NOT EXISTS items_sized_on_delete AFTER DELETE ON items BEGIN {} END;",
        slots.clone().map(add).collect::<String>(),
        slots.clone().map(remove).collect::<String>(),
    );
    for slot in slots {
        sql += &format!(
            "CREATE TRIGGER IF NOT EXISTS items_sized_on_update_{slot} AFTER UPDATE ON items
                 WHEN old.i{slot}pk IS NOT new.i{slot}pk OR (old.ttl IS NULL) <> (new.ttl IS NULL)
                 BEGIN {} {} END;",
            remove(slot),
            add(slot)
        );
    }
    sql
}

/// Opens another connection to the file at `path`, which `open` made ready, for reads: in WAL
/// mode each read sees the last commit, and runs beside the writer.
pub(super) fn open_reader(path: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.pragma_update(None, "query_only", true)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

/// How often the checkpointer copies the write-ahead log back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The size the write-ahead log is cut back to when it starts over (after a burst grew it), so
/// that it neither keeps a burst's size for ever nor has to be allocated afresh every time. It
/// is well above the log's default cap ([`LogLimits`]): the cut is made by the commit that
/// starts the log over, and takes as long as the pages it frees (9–38 ms measured for 14–50 MB).
const WAL_KEPT_BYTES: i64 = 160 * 1024 * 1024;

/// A thread that checkpoints the file's write-ahead log, so that the log stays small and its
/// copying and fsyncs happen beside the requests rather than in the commit of one of them
/// (SQLite's automatic checkpoint). It stops when the store that started it is dropped.
///
/// The log starts over (the next commit writes it from its start again) only when a commit
/// finds every frame of it copied into the database. A checkpoint on a connection of its own
/// copies the log while writes go on, but only up to the frames there when it began; under a
/// steady load there are always newer ones, and the log would grow without end (1.5 GB in the
/// jobs benchmark's 10 seconds). So each round repeats that checkpoint, each copying what came
/// in during the last, until few frames came in meanwhile. Once the log has grown past its
/// restart size ([`LogLimits`]), those few are copied holding the writer's connection, by the
/// [`Restarter`]: the writes wait for that copy and its fsyncs (1–3.5 ms measured at 3,000
/// writes a second, every 400–500 ms). Holding it after every round, with the round's database
/// fsync still to make, held them 9–11 ms every 200 ms.
///
/// The rounds are background work: on Linux the thread runs at the lowest CPU priority
/// (nice 19), so that a round's copying (~12 ms every ~140 ms at 3,000 writes a second) does
/// not take a core from the requests on a small machine.
pub(super) struct Checkpointer {
    /// Dropped with the store: the thread sees its channel close and ends.
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the file at `path`, whose writes go through `writer`.
    pub(super) fn start(path: &Path, writer: Arc<Mutex<Connection>>, limits: LogLimits) -> StoreResult<Self> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_millis(100))?;
        connection.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)?;
        let database = path.to_owned();
        let restarter = Restarter::start(writer, path.with_extension("sqlite3-wal"))?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("tessera-checkpoint".into())
            .spawn(move || {
                run_in_background();
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    if let Err(error) = checkpoint_round(&connection, &restarter, &database, limits) {
                        tracing::warn!(%error, "checkpoint of the store's write-ahead log failed");
                    }
                }
            })?;
        Ok(Self { _stop: stop })
    }
}

/// Lowers the calling thread's CPU priority to the least there is. Only on Linux, where a
/// nice value belongs to one thread; elsewhere it would slow the whole process.
fn run_in_background() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE) {
        tracing::debug!(%error, "the checkpointer runs at the default priority");
    }
}

/// The nice value of background work: the least CPU priority.
#[cfg(target_os = "linux")]
const BACKGROUND_NICE: i32 = 19;

/// The thread that makes the log start over holding the writer's connection, at the priority
/// of the threads that write: every write waits for that hold, which must not wait for a core
/// behind them, as it would on the background checkpointer.
struct Restarter {
    /// Each request carries where to answer once the log has started over.
    requests: mpsc::Sender<mpsc::SyncSender<StoreResult<()>>>,
}

impl Restarter {
    /// Starts the thread that restarts the log at `log`; it ends with this handle.
    fn start(writer: Arc<Mutex<Connection>>, log: PathBuf) -> std::io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<mpsc::SyncSender<StoreResult<()>>>();
        std::thread::Builder::new()
            .name("tessera-log-restart".into())
            .spawn(move || {
                for reply in incoming {
                    let _ = reply.send(start_over(&writer, &log));
                }
            })?;
        Ok(Self { requests })
    }

    /// Makes the log start over (see [`start_over`]), and waits until it has.
    fn restart(&self) -> StoreResult<()> {
        let stopped = || StoreError::Unavailable("the log's restart thread has stopped".into());
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests.send(reply).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

/// The most frames a checkpoint holding the writer's connection is left to copy, unless the
/// log is past its cap.
const HELD_FRAMES: i64 = 64;
/// How long one round goes on checkpointing before it leaves the rest to the next round.
const ROUND_BUDGET: Duration = Duration::from_millis(250);

/// When the checkpointer makes the write-ahead log start over.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogLimits {
    /// A log of this many frames is made to start over once a checkpoint leaves no more than
    /// [`HELD_FRAMES`] of it to copy.
    pub restart_frames: i64,
    /// A log of this many frames is made to start over at the end of a round whatever its
    /// tail: when the writes outrun the disk, a longer hold now and then, rather than a log
    /// that grows without end.
    pub cap_frames: i64,
}

impl Default for LogLimits {
    /// 48 MB and 96 MB of 4 KB pages.
    fn default() -> Self {
        Self {
            restart_frames: 12 * 1024,
            cap_frames: 24 * 1024,
        }
    }
}

/// What one checkpoint saw of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LogState {
    /// Frames in the log when the checkpoint began.
    frames: i64,
    /// Frames copied into the database once it ended.
    copied: i64,
}

/// One round: checkpoints on `own` connection, one after the other (each copies what came in
/// during the last), until one finds the log caught up or started over, or leaves a short
/// tail, or the round's time is up. Once the log is past its restart size and the last
/// checkpoint left a short tail, or past its cap at the end of the round whatever its tail,
/// the `restarter` copies the rest holding the writer's connection (see [`start_over`]).
fn checkpoint_round(own: &Connection, restarter: &Restarter, database: &Path, limits: LogLimits) -> StoreResult<()> {
    let started = Instant::now();
    let mut previous: Option<LogState> = None;
    loop {
        let state = checkpoint(own)?;
        // SQLite syncs the database only in a checkpoint that caught up with the log; this
        // syncs it after every other, so that the one holding the writer has little to sync.
        sync(database);
        let tail = match previous {
            Some(previous) if state.frames >= previous.frames => state.frames - previous.frames,
            _ => state.frames,
        };
        let started_over = previous.is_some_and(|previous| state.frames < previous.frames);
        let caught_up = tail == 0 && state.copied == state.frames;
        if started_over || caught_up || state.frames <= 0 {
            return Ok(());
        }
        let short_tail = tail <= HELD_FRAMES;
        let out_of_time = started.elapsed() > ROUND_BUDGET;
        if (short_tail && state.frames >= limits.restart_frames) || (out_of_time && state.frames >= limits.cap_frames) {
            return restarter.restart();
        }
        if out_of_time || (short_tail && previous.is_some()) {
            return Ok(());
        }
        previous = Some(state);
    }
}

/// Copies the log's last frames holding the `writer`'s connection, and starts the log over.
/// The log's fsync is made first, outside that hold, so that the checkpoint's own has little
/// left to do. The commit that starts the log over writes the log's new header and fsyncs it
/// (and cuts the file back to [`WAL_KEPT_BYTES`]): one of this thread's, still holding the
/// writer, rather than the next request's, whose thread serves other requests too.
fn start_over(writer: &Mutex<Connection>, log: &Path) -> StoreResult<()> {
    sync(log);
    let writer = writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let state = checkpoint(&writer)?;
    if state.copied == state.frames && writer.is_autocommit() {
        let version: i64 = writer.pragma_query_value(None, "user_version", |row| row.get(0))?;
        writer.pragma_update(None, "user_version", version)?;
    }
    Ok(())
}

/// A passive checkpoint through `connection` (it copies what it can without waiting for
/// readers or blocking writers).
fn checkpoint(connection: &Connection) -> rusqlite::Result<LogState> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok(LogState {
            frames: row.get(1)?,
            copied: row.get(2)?,
        })
    })
}

/// Flushes `file`'s written pages to disk, ahead of the checkpoint's own fsync of it (which
/// then has little left to do); a file that cannot be opened is left to that fsync.
fn sync(file: &Path) {
    if let Ok(opened) = std::fs::File::open(file) {
        let _ = opened.sync_data();
    }
}

fn migrate(connection: &mut Connection) -> StoreResult<()> {
    let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = transaction.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Internal(format!(
            "the store file has schema version {version}; this build knows up to {SCHEMA_VERSION}"
        )));
    }
    if (1..2).contains(&version) {
        // Version 2 added `ttl` to the index keys.
        transaction.execute_batch("DROP INDEX IF EXISTS items_i0; DROP INDEX IF EXISTS items_i1;")?;
    }
    if (1..4).contains(&version) {
        // Version 4 numbers messages without AUTOINCREMENT: the table is rebuilt below (dropping
        // the old one drops its `sqlite_sequence` row too).
        transaction.execute_batch(
            "DROP INDEX IF EXISTS messages_by_queue;
             DROP INDEX IF EXISTS messages_by_receipt;
             ALTER TABLE messages RENAME TO messages_v3;",
        )?;
    }
    transaction.execute_batch(SCHEMA)?;
    transaction.execute_batch(&size_triggers())?;
    if (1..4).contains(&version) {
        transaction.execute_batch(
            "INSERT INTO messages (seq, queue, id, grp, visible_at, receive_count, receipt, body)
                 SELECT seq, queue, id, grp, visible_at, receive_count, receipt, body FROM messages_v3;
             DROP TABLE messages_v3;",
        )?;
    }
    if version < 3 {
        // Version 3 added the index sizes; a file from before has items to size.
        transaction.execute_batch(
            "INSERT INTO index_sizes (tbl, slot, part, items, expiring)
                 SELECT tbl, 0, i0pk, COUNT(*), COUNT(ttl) FROM items WHERE i0pk IS NOT NULL GROUP BY tbl, i0pk;
             INSERT INTO index_sizes (tbl, slot, part, items, expiring)
                 SELECT tbl, 1, i1pk, COUNT(*), COUNT(ttl) FROM items WHERE i1pk IS NOT NULL GROUP BY tbl, i1pk;",
        )?;
    }
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()?;
    Ok(())
}
