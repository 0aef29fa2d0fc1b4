//! Tests of signed blob URLs.

use std::time::Duration;

use super::super::tests::{clock, store_in};
use super::SignatureRefusal;
use crate::blob::{BlobStore, BucketDef};
use crate::embedded::EmbeddedStore;
use crate::error::StoreError;

fn files() -> BucketDef {
    BucketDef {
        name: "files".into(),
        expire_after_days: None,
    }
}

/// The (bucket, key, expires, signature) a URL of `store` carries.
fn parts(url: &str) -> (String, String, i64, String) {
    let rest = url.strip_prefix("http://localhost:8080/blobs/").expect("base");
    let (path, query) = rest.split_once('?').expect("query");
    let (bucket, key) = path.split_once('/').expect("bucket");
    let key = percent_encoding::percent_decode_str(key).decode_utf8().expect("utf-8");
    let (expires, signature) = query
        .strip_prefix("expires=")
        .and_then(|query| query.split_once("&signature="))
        .expect("parameters");
    (
        bucket.into(),
        key.into(),
        expires.parse().expect("number"),
        signature.into(),
    )
}

fn verify(store: &EmbeddedStore, parts: &(String, String, i64, String)) -> Result<(), SignatureRefusal> {
    store.verify_signature(&parts.0, &parts.1, parts.2, &parts.3)
}

#[tokio::test]
async fn urls_encode_the_key_and_verify_until_they_expire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let url = store
        .signed_url(&files(), "projects/p 1/ré?sumé#.pdf", Duration::from_secs(60))
        .await
        .expect("url");
    assert!(
        url.starts_with(
            "http://localhost:8080/blobs/files/projects/p%201/r%C3%A9%3Fsum%C3%A9%23.pdf?expires=1766001660&signature="
        ),
        "{url}"
    );
    let signed = parts(&url);
    assert_eq!(signed.1, "projects/p 1/ré?sumé#.pdf");
    assert_eq!(verify(&store, &signed), Ok(()));
    clock.advance(time::Duration::seconds(60));
    assert_eq!(verify(&store, &signed), Ok(()), "valid through its last second");
    clock.advance(time::Duration::seconds(1));
    assert_eq!(verify(&store, &signed), Err(SignatureRefusal::Expired));
    assert_eq!(SignatureRefusal::Expired.to_string(), "the signed URL has expired");
}

#[tokio::test]
async fn tampered_or_foreign_signatures_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let url = store
        .signed_url(&files(), "a.txt", Duration::from_secs(60))
        .await
        .expect("url");
    let signed = parts(&url);
    let flipped = if signed.3.starts_with('0') { "1" } else { "0" };
    let flipped = format!("{flipped}{}", &signed.3[1..]);
    let tampered = [
        (signed.0.clone(), "b.txt".into(), signed.2, signed.3.clone()),
        ("other".into(), signed.1.clone(), signed.2, signed.3.clone()),
        (signed.0.clone(), signed.1.clone(), signed.2 + 3600, signed.3.clone()),
        (signed.0.clone(), signed.1.clone(), signed.2, flipped),
        (signed.0.clone(), signed.1.clone(), signed.2, "not hex".into()),
        (signed.0.clone(), signed.1.clone(), signed.2, String::new()),
    ];
    for parts in &tampered {
        assert_eq!(verify(&store, parts), Err(SignatureRefusal::BadSignature), "{parts:?}");
    }
    let other_dir = tempfile::tempdir().expect("temp dir");
    let stranger = store_in(other_dir.path(), &clock());
    assert_eq!(verify(&stranger, &signed), Err(SignatureRefusal::BadSignature));
}

#[tokio::test]
async fn url_lifetimes_are_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let too_long = Duration::from_secs(8 * 24 * 60 * 60);
    let refused = store.signed_url(&files(), "a.txt", too_long).await;
    assert!(matches!(refused, Err(StoreError::InvalidInput(_))));
}
