//! Conformance of the blob store, and the embedded backend's signed URLs over HTTP.

use std::time::Duration;

use bytes::Bytes;
use tessera_store::StoreError;
use tessera_store::blob::{BlobEntry, BlobMeta};

use crate::conformance;
use crate::support::{Backend, unique};

conformance!(
    put_get_head_list_and_delete_round_trip,
    a_signed_url_fetched_over_http_returns_the_bytes,
    invalid_keys_and_lifetimes_are_refused,
);

async fn put_get_head_list_and_delete_round_trip(backend: Backend) {
    let bucket = backend.bucket();
    let prefix = format!("outputs/{}/", unique("job_"));
    let png = Bytes::from_static(b"\x89PNG\r\n\x1a\n fake image");
    backend
        .blobs
        .put(&bucket, &format!("{prefix}output.png"), png.clone(), "image/png")
        .await
        .expect("put");
    backend
        .blobs
        .put(
            &bucket,
            &format!("{prefix}thumb.jpg"),
            Bytes::from_static(b"jpg"),
            "image/jpeg",
        )
        .await
        .expect("put thumb");
    backend
        .blobs
        .put(
            &bucket,
            &format!("{prefix}output.png.bak"),
            Bytes::new(),
            "application/octet-stream",
        )
        .await
        .expect("put empty");

    let blob = backend
        .blobs
        .get(&bucket, &format!("{prefix}output.png"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(blob.body, png);
    assert_eq!(
        blob.meta,
        BlobMeta {
            size: png.len() as u64,
            content_type: "image/png".into()
        }
    );
    let head = backend
        .blobs
        .head(&bucket, &format!("{prefix}thumb.jpg"))
        .await
        .expect("head");
    assert_eq!(
        head,
        Some(BlobMeta {
            size: 3,
            content_type: "image/jpeg".into()
        })
    );

    let listed = backend.blobs.list(&bucket, &prefix).await.expect("list");
    let expected = [
        ("output.png", png.len() as u64),
        ("output.png.bak", 0),
        ("thumb.jpg", 3),
    ]
    .map(|(name, size)| BlobEntry {
        key: format!("{prefix}{name}"),
        size,
    });
    assert_eq!(listed, expected);
    let narrower = backend
        .blobs
        .list(&bucket, &format!("{prefix}output"))
        .await
        .expect("list");
    assert_eq!(narrower.len(), 2);

    backend
        .blobs
        .delete(&bucket, &format!("{prefix}output.png"))
        .await
        .expect("delete");
    backend
        .blobs
        .delete(&bucket, &format!("{prefix}output.png"))
        .await
        .expect("delete twice");
    assert_eq!(
        backend
            .blobs
            .get(&bucket, &format!("{prefix}output.png"))
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        backend
            .blobs
            .head(&bucket, &format!("{prefix}output.png"))
            .await
            .expect("head"),
        None
    );
    assert_eq!(backend.blobs.list(&bucket, &prefix).await.expect("list").len(), 2);
}

async fn a_signed_url_fetched_over_http_returns_the_bytes(backend: Backend) {
    let bucket = backend.bucket();
    let key = format!("outputs/{}/a sunset (1).png", unique("job_"));
    let body = Bytes::from(vec![7u8; 64 * 1024]);
    backend
        .blobs
        .put(&bucket, &key, body.clone(), "image/png")
        .await
        .expect("put");
    let url = backend
        .blobs
        .signed_url(&bucket, &key, Duration::from_secs(600))
        .await
        .expect("sign");
    let response = reqwest::get(&url).await.expect("fetch");
    assert_eq!(response.status(), 200, "{url}");
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.bytes().await.expect("body"), body);
}

async fn invalid_keys_and_lifetimes_are_refused(backend: Backend) {
    let bucket = backend.bucket();
    for key in ["", "/absolute", "a/../escape"] {
        let result = backend
            .blobs
            .put(&bucket, key, Bytes::from_static(b"x"), "text/plain")
            .await;
        assert!(
            matches!(result, Err(StoreError::InvalidInput(_))),
            "{key:?}: {result:?}"
        );
    }
    let forever = backend
        .blobs
        .signed_url(&bucket, "k", Duration::from_secs(8 * 24 * 3600))
        .await;
    assert!(matches!(forever, Err(StoreError::InvalidInput(_))), "{forever:?}");
}

/// S3's presigned URLs are checked by S3 (moto checks neither signature nor expiry), so this
/// runs on the embedded backend only.
#[tokio::test]
async fn a_tampered_or_expired_signed_url_is_refused_with_403() {
    let backend = Backend::embedded().await;
    let bucket = backend.bucket();
    let (job, other_job) = (unique("job_"), unique("job_"));
    let key = format!("outputs/{job}/output.png");
    let other = format!("outputs/{other_job}/secret.png");
    for name in [&key, &other] {
        backend
            .blobs
            .put(&bucket, name, Bytes::from_static(b"png"), "image/png")
            .await
            .expect("put");
    }
    let url = backend
        .blobs
        .signed_url(&bucket, &key, Duration::from_secs(60))
        .await
        .expect("sign");
    let status = |url: String| async move { reqwest::get(&url).await.expect("fetch").status().as_u16() };
    assert_eq!(status(url.clone()).await, 200);

    let (path, query) = url.split_once('?').expect("query");
    let other_key = url.replace(&job, &other_job).replace("output.png", "secret.png");
    let signature_at = query.find("signature=").expect("signature") + "signature=".len();
    let mut forged = query.to_owned();
    let flipped = if &forged[signature_at..=signature_at] == "0" {
        "1"
    } else {
        "0"
    };
    forged.replace_range(signature_at..=signature_at, flipped);
    let expires: i64 = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("expires="))
        .and_then(|raw| raw.parse().ok())
        .expect("expires");
    let extended = query.replace(&format!("expires={expires}"), &format!("expires={}", expires + 3600));

    assert_eq!(status(format!("{path}?{forged}")).await, 403, "flipped signature");
    assert_eq!(status(other_key).await, 403, "signature of another key");
    assert_eq!(status(format!("{path}?{extended}")).await, 403, "extended expiry");
    assert_eq!(status(path.to_owned()).await, 403, "no signature at all");
    backend.clock.advance(time::Duration::seconds(61));
    assert_eq!(status(url).await, 403, "expired");
}
