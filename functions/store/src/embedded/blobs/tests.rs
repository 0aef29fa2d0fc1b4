//! Tests of the embedded blob store: files and rows together, listing order, lifecycle.

use bytes::Bytes;

use super::super::tests::{clock, store_in};
use crate::blob::{BlobEntry, BlobMeta, BlobStore, BucketDef};
use crate::error::StoreError;

fn artifacts() -> BucketDef {
    BucketDef {
        name: "artifacts".into(),
        expire_after_days: Some(7),
    }
}

fn entries(list: &[BlobEntry]) -> Vec<(&str, u64)> {
    list.iter().map(|entry| (entry.key.as_str(), entry.size)).collect()
}

#[tokio::test]
async fn objects_round_trip_and_list_in_key_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let bucket = artifacts();
    for key in ["out/b.png", "out/a b.png", "out/é.png", "outside.txt", "in/x"] {
        store
            .put(&bucket, key, Bytes::from(key.to_owned()), "image/png")
            .await
            .expect("put");
    }
    store
        .put(&bucket, "out/b.png", Bytes::from_static(b"new"), "text/plain")
        .await
        .expect("replace");
    let blob = store.get(&bucket, "out/b.png").await.expect("get").expect("present");
    assert_eq!(blob.body, Bytes::from_static(b"new"));
    assert_eq!(
        blob.meta,
        BlobMeta {
            size: 3,
            content_type: "text/plain".into()
        }
    );
    let head = store.head(&bucket, "out/a b.png").await.expect("head");
    assert_eq!(head.map(|meta| meta.size), Some(11));

    let listed = store.list(&bucket, "out/").await.expect("list");
    assert_eq!(
        entries(&listed),
        [("out/a b.png", 11), ("out/b.png", 3), ("out/é.png", 10)]
    );
    assert_eq!(store.list(&bucket, "").await.expect("list all").len(), 5);
    assert!(store.list(&bucket, "zzz").await.expect("list none").is_empty());

    store.delete(&bucket, "out/b.png").await.expect("delete");
    store.delete(&bucket, "out/b.png").await.expect("delete again");
    assert_eq!(store.get(&bucket, "out/b.png").await.expect("get"), None);
    assert_eq!(store.head(&bucket, "out/b.png").await.expect("head"), None);
    let files = std::fs::read_dir(dir.path().join("blobs").join("artifacts")).expect("folder");
    assert_eq!(files.count(), 4, "one file per object, no leftovers");
}

#[tokio::test]
async fn bad_buckets_and_keys_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_in(dir.path(), &clock());
    let body = Bytes::from_static(b"x");
    for name in ["ab", "Upper", "a_b", "../etc", &"a".repeat(64)] {
        let bucket = BucketDef {
            name: name.into(),
            expire_after_days: None,
        };
        let refused = store.put(&bucket, "k", body.clone(), "text/plain").await;
        assert!(matches!(refused, Err(StoreError::InvalidInput(_))), "{name}");
    }
    for key in ["", "/abs", "a/../b"] {
        let refused = store.put(&artifacts(), key, body.clone(), "text/plain").await;
        assert!(matches!(refused, Err(StoreError::InvalidInput(_))), "{key}");
    }
    store.ping().await.expect("ping");
}

#[tokio::test]
async fn the_lifecycle_deletes_old_objects_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let store = store_in(dir.path(), &clock);
    let body = Bytes::from_static(b"x");
    store
        .put(&artifacts(), "old", body.clone(), "text/plain")
        .await
        .expect("put");
    clock.advance(time::Duration::days(2));
    store
        .put(&artifacts(), "new", body.clone(), "text/plain")
        .await
        .expect("put");
    clock.advance(time::Duration::days(5));
    assert_eq!(store.purge_expired_blobs(&artifacts()).expect("purge"), 1);
    assert_eq!(
        entries(&store.list(&artifacts(), "").await.expect("list")),
        [("new", 1)]
    );
    let keep = BucketDef {
        name: "files".into(),
        expire_after_days: None,
    };
    store.put(&keep, "old", body, "text/plain").await.expect("put");
    clock.advance(time::Duration::days(365));
    assert_eq!(store.purge_expired_blobs(&keep).expect("purge"), 0);
}
