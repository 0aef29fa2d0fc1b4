//! The embedded backend: items and queues in one SQLite file, blobs in a local folder, signed
//! URLs checked with a key kept next to them, rate-limit counters in memory. It serves the dev
//! server and the test suites, and behaves as the AWS backend does.

mod blobs;
mod counters;
mod items;
mod queue;
mod schema;
mod signing;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::RngCore;
use rusqlite::Connection;
use tessera_core::Clock;
use tokio::sync::Notify;

use crate::error::{StoreError, StoreResult};

pub use signing::SignatureRefusal;

/// Where the embedded backend keeps its data and how it reaches the outside world.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The folder holding `store.sqlite3`, `signing.key` and `blobs/`; created if missing.
    pub dir: PathBuf,
    /// The base URL signed blob URLs start with, e.g. `http://localhost:8080`.
    pub public_url: String,
    /// The source of "now" for TTLs, visibility timeouts and URL expiry.
    pub clock: Arc<dyn Clock>,
}

/// The ports on one SQLite file, a folder of blobs, and memory (the counters).
pub struct EmbeddedStore {
    /// The connection that writes (and reads inside its write transactions): the writer
    /// thread's, and locked by the few synchronous writes (blobs' rows, purges).
    connection: Arc<Mutex<Connection>>,
    /// The thread that runs the async writes, several to a transaction.
    writer: writer::Writer,
    /// The file, for opening reader connections.
    path: PathBuf,
    /// Idle reader connections: reads outside a write take one, so they run beside the writer.
    readers: Mutex<Vec<Connection>>,
    blob_dir: PathBuf,
    public_url: String,
    clock: Arc<dyn Clock>,
    /// The HMAC of blob URLs, keyed with `signing.key`.
    signer: signing::Signer,
    /// Per queue, woken whenever a message of that queue may have become receivable, to end its
    /// long polls early (a send wakes only the polls of its own queue).
    arrivals: Mutex<HashMap<String, Arc<Notify>>>,
    /// What the long polls know of other processes' writes: the last `data_version` seen, and
    /// when it was last read (so that many waiting polls read it once a millisecond in all).
    peek: Mutex<queue::Peek>,
    /// The rate-limit windows, in memory (see [`crate::counters`]).
    windows: Mutex<counters::Windows>,
    /// Checkpoints the write-ahead log beside the requests, while the store lives.
    _checkpointer: schema::Checkpointer,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `config.dir`.
    pub fn open(config: EmbeddedConfig) -> StoreResult<Self> {
        Self::open_with(config, schema::LogLimits::default())
    }

    /// Opens the store, its write-ahead log started over at `limits`.
    fn open_with(config: EmbeddedConfig, limits: schema::LogLimits) -> StoreResult<Self> {
        std::fs::create_dir_all(&config.dir)?;
        let blob_dir = config.dir.join("blobs");
        std::fs::create_dir_all(&blob_dir)?;
        let path = config.dir.join("store.sqlite3");
        let connection = Arc::new(Mutex::new(schema::open(&path)?));
        let writer = writer::Writer::start(connection.clone())?;
        let checkpointer = schema::Checkpointer::start(&path, connection.clone(), limits)?;
        let signer = signing::load_or_create_signer(&config.dir.join("signing.key"))?;
        Ok(Self {
            connection,
            writer,
            path,
            readers: Mutex::default(),
            blob_dir,
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            clock: config.clock,
            signer,
            arrivals: Mutex::default(),
            peek: Mutex::default(),
            windows: Mutex::default(),
            _checkpointer: checkpointer,
        })
    }

    /// The connection; a panic elsewhere cannot leave it mid-transaction (an open transaction
    /// rolls back when dropped), so a poisoned lock is safe to take over.
    fn db(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection for a short read (a point lookup, an index seek): the writer's when it is
    /// free (its page cache is warm, and no commit can land while the read starts), else a
    /// pooled one (see [`Self::pooled_reader`]). A read of many rows takes a pooled one, so
    /// that writes never wait behind it. Reads that need not see a write transaction's own
    /// changes use one; it must not be held while waiting for a write or taking [`Self::db`]
    /// (the writer's lock is not reentrant).
    fn reader(&self) -> StoreResult<Reader<'_>> {
        if let Some(writers) = self.writer.idle_connection()
            && writers.is_autocommit()
        {
            return Ok(Reader {
                held: Some(Held::Writers(writers)),
                pool: &self.readers,
            });
        }
        self.pooled_reader()
    }

    /// A reader connection of the pool, beside the writer's, given back to the pool when
    /// dropped (at most [`IDLE_READERS`] are kept).
    fn pooled_reader(&self) -> StoreResult<Reader<'_>> {
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let connection = match idle {
            Some(connection) => connection,
            None => schema::open_reader(&self.path)?,
        };
        Ok(Reader {
            held: Some(Held::Pooled(connection)),
            pool: &self.readers,
        })
    }

    /// Now, in whole seconds since the epoch (the unit of item TTLs and URL expiry).
    fn now_unix(&self) -> i64 {
        self.clock.now_unix()
    }

    /// Now, in milliseconds since the epoch (the unit of message visibility).
    fn now_ms(&self) -> i64 {
        let millis = self.clock.now().unix_timestamp_nanos() / 1_000_000;
        i64::try_from(millis).unwrap_or(i64::MAX)
    }

    /// Checks that SQLite answers and the blob folder is there.
    fn check_health(&self) -> StoreResult<()> {
        self.db().query_row("SELECT 1", [], |_| Ok(()))?;
        if !self.blob_dir.is_dir() {
            return Err(StoreError::Unavailable(format!(
                "the blob folder {} is missing",
                self.blob_dir.display()
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("blob_dir", &self.blob_dir)
            .field("public_url", &self.public_url)
            .field("clock", &self.clock)
            .field("commits", &self.writer.commits())
            .finish_non_exhaustive()
    }
}

/// How many idle reader connections the store keeps.
const IDLE_READERS: usize = 4;

/// A connection on loan for reading.
struct Reader<'a> {
    held: Option<Held<'a>>,
    pool: &'a Mutex<Vec<Connection>>,
}

/// Which connection a [`Reader`] holds.
enum Held<'a> {
    /// The writer's, locked while the read lasts.
    Writers(MutexGuard<'a, Connection>),
    /// One of the pool's, given back when the read ends.
    Pooled(Connection),
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self.held.as_ref().expect("a reader holds its connection until dropped") {
            Held::Writers(guard) => guard,
            Held::Pooled(connection) => connection,
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let Some(Held::Pooled(connection)) = self.held.take() else {
            return;
        };
        let mut idle = self.pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(connection);
        }
    }
}

/// `bytes` random bytes as lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// The smallest string above every string that starts with `prefix`, or `None` when there is
/// none. SQLite compares text as bytes, and UTF-8 byte order is code point order, so bumping the
/// last code point gives an exclusive upper bound that an index range scan can use.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let bumped = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            other => char::from_u32(u32::from(other) + 1),
        };
        if let Some(next) = bumped {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests;
