//! The SQLite file: connection settings and the schema, versioned with `user_version`.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{StoreError, StoreResult};

/// The schema this code writes; a file with a newer one was made by newer code.
const SCHEMA_VERSION: i64 = 2;

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

CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
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

/// Opens the file at `path`, creating or upgrading its schema.
pub(super) fn open(path: &Path) -> StoreResult<Connection> {
    let mut connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    // WAL lets other processes read while one writes; NORMAL syncs at checkpoints only, which
    // keeps every committed transaction across a process crash.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate(&mut connection)?;
    Ok(connection)
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
    transaction.execute_batch(SCHEMA)?;
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()?;
    Ok(())
}
