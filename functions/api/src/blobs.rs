//! `GET /blobs/{bucket}/{*key}?expires=..&signature=..`: serves the signed, time-limited URLs
//! of the embedded blob store (on AWS, S3 serves its own presigned URLs). A tampered or expired
//! signature is refused with 403 before the store is read.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tessera_store::embedded::EmbeddedStore;
use tessera_store::{BlobStore, BucketDef};

use crate::problem::Problem;

/// The signature part of a signed URL; both fields are required, but a missing one is a 403
/// like any other bad signature, not a 400.
#[derive(Debug, Deserialize)]
pub struct Signature {
    expires: Option<String>,
    signature: Option<String>,
}

/// The route that serves signed blob URLs of `store`.
pub fn router(store: Arc<EmbeddedStore>) -> Router {
    Router::new()
        .route("/blobs/{bucket}/{*key}", get(serve_signed_blob))
        .with_state(store)
}

async fn serve_signed_blob(
    State(store): State<Arc<EmbeddedStore>>,
    Path((bucket, key)): Path<(String, String)>,
    Query(signature): Query<Signature>,
) -> Result<Response, Problem> {
    let refused = |why: String| Problem::new(StatusCode::FORBIDDEN, why);
    let expires = signature
        .expires
        .as_deref()
        .and_then(|raw| raw.parse::<i64>().ok())
        .ok_or_else(|| refused("the URL has no valid 'expires'".into()))?;
    let hex = signature
        .signature
        .ok_or_else(|| refused("the URL has no 'signature'".into()))?;
    store
        .verify_signature(&bucket, &key, expires, &hex)
        .map_err(|refusal| refused(refusal.to_string()))?;
    let bucket = BucketDef {
        name: bucket,
        expire_after_days: None,
    };
    match store.get(&bucket, &key).await {
        Ok(Some(blob)) => Ok((
            [
                (header::CONTENT_TYPE, blob.meta.content_type),
                (header::CACHE_CONTROL, "private, max-age=300".to_owned()),
            ],
            blob.body,
        )
            .into_response()),
        Ok(None) => Err(Problem::new(StatusCode::NOT_FOUND, "no such object")),
        Err(error) => {
            tracing::error!(%error, "reading a signed blob failed");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the blob store is unavailable",
            ))
        }
    }
}
