//! The blob store: each object is a file `blobs/<bucket>/<hex SHA-256 of its key>` (so no key can
//! reach outside its folder), and its key, size, type and time are a row of the `blobs` table,
//! which answers `head` and `list`. File I/O runs on tokio's blocking pool.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{EmbeddedStore, prefix_upper_bound, random_hex};
use crate::blob::{Blob, BlobEntry, BlobMeta, BlobStore, BucketDef, validate_key, validate_url_lifetime};
use crate::error::{StoreError, StoreResult};

const MILLIS_PER_DAY: i64 = 24 * 60 * 60 * 1000;

#[async_trait]
impl BlobStore for EmbeddedStore {
    async fn put(&self, bucket: &BucketDef, key: &str, body: Bytes, content_type: &str) -> StoreResult<()> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        let folder = self.blob_dir.join(&bucket.name);
        let temporary = folder.join(format!(".tmp-{}", random_hex(12)));
        let size = body.len();
        let written = temporary.clone();
        blocking(move || write_new_file(&folder, &written, &body)).await?;
        // The rename and the row change under the connection lock, so that racing writers of
        // one key leave the file and the row of the same write.
        let db = self.db();
        let stored = std::fs::rename(&temporary, self.blob_path(bucket, key))
            .map_err(StoreError::from)
            .and_then(|()| upsert_meta(&db, bucket, key, size, content_type, self.now_ms()));
        if stored.is_err() {
            remove_if_present(&temporary)?;
        }
        stored
    }

    async fn get(&self, bucket: &BucketDef, key: &str) -> StoreResult<Option<Blob>> {
        let Some(meta) = self.head(bucket, key).await? else {
            return Ok(None);
        };
        let path = self.blob_path(bucket, key);
        let body = blocking(move || read_if_present(&path)).await?;
        // A delete may have come between the row and the file: then the object is gone.
        Ok(body.map(|body| Blob {
            meta: BlobMeta {
                size: body.len() as u64,
                content_type: meta.content_type,
            },
            body: Bytes::from(body),
        }))
    }

    async fn head(&self, bucket: &BucketDef, key: &str) -> StoreResult<Option<BlobMeta>> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        let db = self.db();
        let mut statement =
            db.prepare_cached("SELECT size, content_type FROM blobs WHERE bucket = ?1 AND object_key = ?2")?;
        let meta = statement
            .query_row(params![bucket.name, key], |row| {
                Ok(BlobMeta {
                    size: row.get(0)?,
                    content_type: row.get(1)?,
                })
            })
            .optional()?;
        Ok(meta)
    }

    async fn delete(&self, bucket: &BucketDef, key: &str) -> StoreResult<()> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        let db = self.db();
        db.prepare_cached("DELETE FROM blobs WHERE bucket = ?1 AND object_key = ?2")?
            .execute(params![bucket.name, key])?;
        remove_if_present(&self.blob_path(bucket, key))
    }

    async fn list(&self, bucket: &BucketDef, prefix: &str) -> StoreResult<Vec<BlobEntry>> {
        validate_bucket(bucket)?;
        let db = self.db();
        let entry = |row: &rusqlite::Row<'_>| {
            Ok(BlobEntry {
                key: row.get(0)?,
                size: row.get(1)?,
            })
        };
        let entries = match prefix_upper_bound(prefix) {
            Some(upper) => db
                .prepare_cached(
                    "SELECT object_key, size FROM blobs
                     WHERE bucket = ?1 AND object_key >= ?2 AND object_key < ?3 ORDER BY object_key",
                )?
                .query_map(params![bucket.name, prefix, upper], entry)?
                .collect::<Result<_, _>>()?,
            // An empty prefix, or one of only the highest code point: everything from it on.
            None => db
                .prepare_cached(
                    "SELECT object_key, size FROM blobs
                     WHERE bucket = ?1 AND object_key >= ?2 ORDER BY object_key",
                )?
                .query_map(params![bucket.name, prefix], entry)?
                .collect::<Result<_, _>>()?,
        };
        Ok(entries)
    }

    async fn signed_url(&self, bucket: &BucketDef, key: &str, expires_in: Duration) -> StoreResult<String> {
        validate_bucket(bucket)?;
        validate_key(key)?;
        validate_url_lifetime(expires_in)?;
        let lifetime = i64::try_from(expires_in.as_secs()).unwrap_or(i64::MAX);
        let expires = self.now_unix().saturating_add(lifetime);
        Ok(self.signed_url_until(&bucket.name, key, expires))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.check_health()
    }
}

impl EmbeddedStore {
    /// Applies the bucket's lifecycle: deletes the objects written at least
    /// `expire_after_days` days ago by the store's clock, and returns how many went. A bucket
    /// without lifecycle keeps everything. The dev server calls it now and then, as S3 runs
    /// its lifecycle rules on its own.
    pub fn purge_expired_blobs(&self, bucket: &BucketDef) -> StoreResult<usize> {
        validate_bucket(bucket)?;
        let Some(days) = bucket.expire_after_days else {
            return Ok(0);
        };
        let cutoff = self
            .now_ms()
            .saturating_sub(i64::from(days).saturating_mul(MILLIS_PER_DAY));
        let db = self.db();
        let keys: Vec<String> = db
            .prepare_cached("DELETE FROM blobs WHERE bucket = ?1 AND modified <= ?2 RETURNING object_key")?
            .query_map(params![bucket.name, cutoff], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for key in &keys {
            remove_if_present(&self.blob_path(bucket, key))?;
        }
        Ok(keys.len())
    }

    fn blob_path(&self, bucket: &BucketDef, key: &str) -> PathBuf {
        self.blob_dir
            .join(&bucket.name)
            .join(hex::encode(Sha256::digest(key.as_bytes())))
    }
}

/// Bucket names become folder names: 3 to 63 lowercase letters, digits and hyphens.
fn validate_bucket(bucket: &BucketDef) -> StoreResult<()> {
    let name = &bucket.name;
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "'{name}' is not a valid bucket name: 3 to 63 lowercase letters, digits or hyphens"
        )))
    }
}

fn upsert_meta(
    db: &Connection,
    bucket: &BucketDef,
    key: &str,
    size: usize,
    content_type: &str,
    modified: i64,
) -> StoreResult<()> {
    db.prepare_cached(
        "INSERT OR REPLACE INTO blobs (bucket, object_key, size, content_type, modified)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![bucket.name, key, size, content_type, modified])?;
    Ok(())
}

/// Runs file I/O off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::Internal(format!("blob i/o task: {error}")))?
}

/// Writes `body` to the new file `path` in `folder`, synced, so that once renamed into place
/// it survives a crash as whole as its metadata row does.
fn write_new_file(folder: &Path, path: &Path, body: &[u8]) -> StoreResult<()> {
    std::fs::create_dir_all(folder)?;
    let mut file = std::fs::File::create_new(path)?;
    let written = file.write_all(body).and_then(|()| file.sync_data());
    if let Err(error) = written {
        drop(file);
        remove_if_present(path)?;
        return Err(error.into());
    }
    Ok(())
}

fn read_if_present(path: &Path) -> StoreResult<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(body) => Ok(Some(body)),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn remove_if_present(path: &Path) -> StoreResult<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
