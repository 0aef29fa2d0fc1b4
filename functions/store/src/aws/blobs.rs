//! The blob store on S3, with presigned GET URLs.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::AwsStore;
use super::errors::store_error;
use crate::blob::{Blob, BlobEntry, BlobMeta, BlobStore, BucketDef, validate_key, validate_url_lifetime};
use crate::error::{StoreError, StoreResult};

/// The content type S3 reports for an object stored without one.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

#[async_trait]
impl BlobStore for AwsStore {
    async fn put(&self, bucket: &BucketDef, key: &str, body: Bytes, content_type: &str) -> StoreResult<()> {
        validate_key(key)?;
        let name = self.bucket_name(bucket);
        self.s3
            .put_object()
            .bucket(&name)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|error| store_error(&format!("PutObject {name}/{key}"), error))?;
        Ok(())
    }

    async fn get(&self, bucket: &BucketDef, key: &str) -> StoreResult<Option<Blob>> {
        validate_key(key)?;
        let name = self.bucket_name(bucket);
        let result = self.s3.get_object().bucket(&name).key(key).send().await;
        let output = match result {
            Ok(output) => output,
            Err(error) if matches!(error.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(None);
            }
            Err(error) => return Err(store_error(&format!("GetObject {name}/{key}"), error)),
        };
        let content_type = output.content_type().unwrap_or(DEFAULT_CONTENT_TYPE).to_owned();
        let body = output
            .body
            .collect()
            .await
            .map_err(|error| StoreError::Unavailable(format!("reading {name}/{key}: {error}")))?
            .into_bytes();
        let meta = BlobMeta {
            size: body.len() as u64,
            content_type,
        };
        Ok(Some(Blob { meta, body }))
    }

    async fn head(&self, bucket: &BucketDef, key: &str) -> StoreResult<Option<BlobMeta>> {
        validate_key(key)?;
        let name = self.bucket_name(bucket);
        let result = self.s3.head_object().bucket(&name).key(key).send().await;
        match result {
            Ok(output) => Ok(Some(BlobMeta {
                size: output
                    .content_length()
                    .and_then(|size| u64::try_from(size).ok())
                    .unwrap_or(0),
                content_type: output.content_type().unwrap_or(DEFAULT_CONTENT_TYPE).to_owned(),
            })),
            Err(error) if matches!(error.as_service_error(), Some(HeadObjectError::NotFound(_))) => Ok(None),
            Err(error) => Err(store_error(&format!("HeadObject {name}/{key}"), error)),
        }
    }

    async fn delete(&self, bucket: &BucketDef, key: &str) -> StoreResult<()> {
        validate_key(key)?;
        let name = self.bucket_name(bucket);
        self.s3
            .delete_object()
            .bucket(&name)
            .key(key)
            .send()
            .await
            .map_err(|error| store_error(&format!("DeleteObject {name}/{key}"), error))?;
        Ok(())
    }

    async fn list(&self, bucket: &BucketDef, prefix: &str) -> StoreResult<Vec<BlobEntry>> {
        let name = self.bucket_name(bucket);
        let mut entries = Vec::new();
        let mut continuation = None;
        loop {
            let output = self
                .s3
                .list_objects_v2()
                .bucket(&name)
                .prefix(prefix)
                .set_continuation_token(continuation)
                .send()
                .await
                .map_err(|error| store_error(&format!("ListObjectsV2 {name}"), error))?;
            entries.extend(output.contents().iter().filter_map(|object| {
                Some(BlobEntry {
                    key: object.key()?.to_owned(),
                    size: object.size().and_then(|size| u64::try_from(size).ok()).unwrap_or(0),
                })
            }));
            continuation = output.next_continuation_token().map(str::to_owned);
            if continuation.is_none() {
                break;
            }
        }
        // S3 lists in UTF-8 byte order already; sorting makes the port's promise explicit.
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    async fn signed_url(&self, bucket: &BucketDef, key: &str, expires_in: Duration) -> StoreResult<String> {
        validate_url_lifetime(expires_in)?;
        validate_key(key)?;
        let presigning = PresigningConfig::expires_in(expires_in)
            .map_err(|error| StoreError::InvalidInput(format!("signed URL lifetime: {error}")))?;
        let name = self.bucket_name(bucket);
        let request = self
            .s3
            .get_object()
            .bucket(&name)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|error| store_error(&format!("presigning GetObject {name}/{key}"), error))?;
        Ok(request.uri().to_owned())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.s3
            .list_buckets()
            .max_buckets(1)
            .send()
            .await
            .map_err(|error| store_error("ListBuckets", error))?;
        Ok(())
    }
}
