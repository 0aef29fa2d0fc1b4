//! The blob store port: S3-shaped objects in buckets, with signed, time-limited GET URLs.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{StoreError, StoreResult};

/// The longest a signed URL may live (S3 presigning allows 7 days).
pub const MAX_URL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The longest object key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A bucket: its logical name (the physical one adds the deployment prefix) and lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketDef {
    /// Logical name, lowercase letters, digits and hyphens.
    pub name: String,
    /// Objects are deleted this many days after they were written, if set.
    pub expire_after_days: Option<u32>,
}

/// What is known of a stored object without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Size in bytes.
    pub size: u64,
    /// The content type given at upload.
    pub content_type: String,
}

/// A stored object with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Size and content type.
    pub meta: BlobMeta,
    /// The bytes.
    pub body: Bytes,
}

/// One line of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    /// The object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// Checks an object key: 1 to 1024 bytes, no leading `/`, no control characters, no `.` or
/// `..` segment.
pub fn validate_key(key: &str) -> StoreResult<()> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && !key.starts_with('/')
        && !key.chars().any(char::is_control)
        && key.split('/').all(|segment| segment != "." && segment != "..");
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!("'{key}' is not a valid object key")))
    }
}

/// Checks a signed URL's lifetime: 1 s to 7 days.
pub fn validate_url_lifetime(expires_in: Duration) -> StoreResult<()> {
    if expires_in < Duration::from_secs(1) || expires_in > MAX_URL_LIFETIME {
        return Err(StoreError::InvalidInput(
            "a signed URL lives from 1 second to 7 days".into(),
        ));
    }
    Ok(())
}

/// The blob store port.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `body` under `key`, replacing what was there.
    async fn put(&self, bucket: &BucketDef, key: &str, body: Bytes, content_type: &str) -> StoreResult<()>;

    /// The object, or `None`.
    async fn get(&self, bucket: &BucketDef, key: &str) -> StoreResult<Option<Blob>>;

    /// The object's size and content type, or `None`.
    async fn head(&self, bucket: &BucketDef, key: &str) -> StoreResult<Option<BlobMeta>>;

    /// Deletes the object; deleting an absent one succeeds.
    async fn delete(&self, bucket: &BucketDef, key: &str) -> StoreResult<()>;

    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, bucket: &BucketDef, prefix: &str) -> StoreResult<Vec<BlobEntry>>;

    /// A URL anyone can GET the object from until `expires_in` has passed.
    async fn signed_url(&self, bucket: &BucketDef, key: &str, expires_in: Duration) -> StoreResult<String>;

    /// Checks that the backend answers.
    async fn ping(&self) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(validate_key("outputs/job_abc123def456/output.png").is_ok());
        for bad in ["", "/abs", "a/../b", "./a", "a\nb", &"k".repeat(1025)] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn url_lifetimes_are_bounded() {
        assert!(validate_url_lifetime(Duration::from_secs(3600)).is_ok());
        assert!(validate_url_lifetime(Duration::ZERO).is_err());
        assert!(validate_url_lifetime(MAX_URL_LIFETIME + Duration::from_secs(1)).is_err());
    }
}
