//! The storage test suite: one function that every backend must pass. `storage/tests/suite.rs` runs it on the
//! embedded backend (files and sled); a new backend (object storage, PostgreSQL) runs the same function.
//!
//! It panics on the first broken promise, naming it.

use bytes::Bytes;
use futures_util::StreamExt;

use crate::{Digest, Error, Store, Version, Want, Write};

mod uploads;

/// Runs every check on an empty store.
pub async fn run(store: &Store) {
    put_and_get(store).await;
    ranges(store).await;
    dedup(store).await;
    concurrent_same_digest(store).await;
    abort_leaves_nothing(store).await;
    limits_and_digests(store).await;
    reference_counts(store).await;
    apply_is_atomic(store).await;
    create_only_versions(store).await;
    garbage_collection(store).await;
    uploads::upload_sessions(store).await;
    pulls(store).await;
    later_checksums(store).await;
}

pub async fn read_all(store: &Store, digest: &Digest, offset: u64, len: u64) -> Vec<u8> {
    let mut stream = Box::pin(store.read(digest, offset, len).await.expect("blob opens"));
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("blob reads"));
    }
    out
}

/// Stores a small value and returns its digest.
pub async fn put_small(store: &Store, bytes: &'static [u8]) -> Digest {
    store
        .put_bytes(Bytes::from_static(bytes), Want::NONE)
        .await
        .expect("small put")
        .digest
}

/// Deterministic test content of any size.
pub fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed)
                .rotate_left((i % 7) as u32)
        })
        .collect()
}

async fn put_chunks(store: &Store, data: &[u8], chunk: usize) -> crate::Result<crate::BlobInfo> {
    let mut ingest = store.begin(Want::ALL, u64::MAX, None)?;
    for piece in data.chunks(chunk.max(1)) {
        ingest.write(Bytes::copy_from_slice(piece)).await?;
    }
    store.finish(ingest).await
}

async fn put_and_get(store: &Store) {
    let data = content(1, 1_000_003);
    let info = put_chunks(store, &data, 65_536).await.expect("put");
    assert_eq!(info.digest, Digest::of(&data), "digest of what was written");
    assert_eq!(info.size, data.len() as u64);
    assert!(
        info.checksums.sha1.is_some()
            && info.checksums.md5.is_some()
            && info.checksums.sha512.is_some()
    );
    assert_eq!(
        read_all(store, &info.digest, 0, u64::MAX).await,
        data,
        "read back"
    );
    assert_eq!(
        store.blob(&info.digest).unwrap().unwrap().size,
        data.len() as u64,
        "indexed"
    );
    let empty = store
        .put_bytes(Bytes::new(), Want::NONE)
        .await
        .expect("empty blob");
    assert_eq!(empty.digest, Digest::of(b""));
    assert!(read_all(store, &empty.digest, 0, u64::MAX).await.is_empty());
    let unknown = Digest::of(b"never stored");
    assert!(
        matches!(
            store.read(&unknown, 0, 1).await.err(),
            Some(Error::BlobUnknown(_))
        ),
        "unknown blob"
    );
}

async fn ranges(store: &Store) {
    let data = content(2, 600_000);
    let info = put_chunks(store, &data, 100_000).await.unwrap();
    for (offset, len) in [
        (0, 1),
        (1, 10),
        (262_143, 2),
        (300_000, 300_000),
        (599_999, 1),
        (599_999, 100),
        (600_000, 5),
    ] {
        let got = read_all(store, &info.digest, offset, len).await;
        let end = (offset + len).min(600_000) as usize;
        assert_eq!(got, &data[offset as usize..end], "range {offset}+{len}");
    }
}

async fn dedup(store: &Store) {
    let (before, _) = store.meta().blob_stats().unwrap();
    let data = content(3, 70_000);
    let a = put_chunks(store, &data, 7_000).await.unwrap();
    let b = put_chunks(store, &data, 33_333).await.unwrap();
    assert_eq!(a.digest, b.digest);
    let (after, _) = store.meta().blob_stats().unwrap();
    assert_eq!(after, before + 1, "the same bytes are one blob");
    assert_eq!(read_all(store, &a.digest, 0, u64::MAX).await, data);
}

async fn concurrent_same_digest(store: &Store) {
    let data = Bytes::from(content(4, 2_000_000));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, data) = (store.clone(), data.clone());
            tokio::spawn(async move { put_chunks(&store, &data, 10_000 + i * 1_000).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap().expect("concurrent put").digest,
            Digest::of(&data)
        );
    }
    assert_eq!(
        read_all(store, &Digest::of(&data), 0, u64::MAX).await,
        data.as_ref(),
        "one intact copy"
    );
}

async fn abort_leaves_nothing(store: &Store) {
    let data = content(5, 300_000);
    let mut ingest = store.begin(Want::NONE, u64::MAX, None).unwrap();
    ingest
        .write(Bytes::copy_from_slice(&data[..100_000]))
        .await
        .unwrap();
    drop(ingest);
    assert!(store.blob(&Digest::of(&data)).unwrap().is_none());
    assert_eq!(temp_files(store), 0, "an aborted ingest leaves no file");
}

async fn limits_and_digests(store: &Store) {
    let data = content(6, 50_000);
    let mut ingest = store.begin(Want::NONE, 40_000, None).unwrap();
    ingest
        .write(Bytes::copy_from_slice(&data[..30_000]))
        .await
        .unwrap();
    let over = ingest.write(Bytes::copy_from_slice(&data[30_000..])).await;
    assert!(
        matches!(over, Err(Error::TooLarge { limit: 40_000 })),
        "{over:?}"
    );
    drop(ingest);

    let wrong = Digest::of(b"something else");
    let mut ingest = store.begin(Want::NONE, u64::MAX, Some(wrong)).unwrap();
    ingest.write(Bytes::copy_from_slice(&data)).await.unwrap();
    let mismatch = store.finish(ingest).await;
    assert!(
        matches!(mismatch, Err(Error::DigestMismatch { .. })),
        "{mismatch:?}"
    );
    assert!(
        store.blob(&Digest::of(&data)).unwrap().is_none(),
        "nothing stored on mismatch"
    );
    assert!(!store.blob_path(&Digest::of(&data)).exists());

    let mut ingest = store
        .begin(Want::NONE, u64::MAX, Some(Digest::of(&data)))
        .unwrap();
    ingest.write(Bytes::copy_from_slice(&data)).await.unwrap();
    store.finish(ingest).await.expect("matching digest");
    assert_eq!(temp_files(store), 0);
}

fn version(blobs: Vec<Digest>) -> Version {
    Version {
        blobs,
        metadata: serde_json::json!({}),
        created: 0,
    }
}

fn put_version(package: &str, v: &str, blobs: Vec<Digest>, replace: bool) -> Write {
    Write::PutVersion {
        repo: "suite".into(),
        package: package.into(),
        version: v.into(),
        record: version(blobs),
        replace,
    }
}

fn refs(store: &Store, digest: &Digest) -> u64 {
    store
        .meta()
        .blob(digest)
        .unwrap()
        .expect("blob indexed")
        .refs
}

fn queued(store: &Store, digest: &Digest) -> bool {
    store.meta().gc_queue().any(|e| e.unwrap().0 == *digest)
}

async fn reference_counts(store: &Store) {
    let a = put_small(store, b"layer a").await;
    let b = put_small(store, b"layer b").await;
    assert_eq!(refs(store, &a), 0);
    assert!(queued(store, &a), "an unreferenced blob waits for GC");
    store
        .apply(
            &[
                put_version("app", "1", vec![a, b], false),
                put_version("app", "2", vec![a], false),
            ],
            &[],
        )
        .await
        .unwrap();
    assert_eq!((refs(store, &a), refs(store, &b)), (2, 1));
    assert!(
        !queued(store, &a) && !queued(store, &b),
        "referenced blobs leave the queue"
    );
    let asset = crate::Asset {
        digest: b,
        size: 7,
        package: None,
        version: None,
        content_type: None,
        created: 0,
    };
    store
        .apply(
            &[Write::PutAsset {
                repo: "suite".into(),
                path: "x/b".into(),
                asset,
                replace: false,
            }],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(refs(store, &b), 2, "assets count too");
    let delete = |v: &str| Write::DeleteVersion {
        repo: "suite".into(),
        package: "app".into(),
        version: v.into(),
    };
    store.apply(&[delete("1")], &[]).await.unwrap();
    assert_eq!((refs(store, &a), refs(store, &b)), (1, 1));
    store
        .apply(
            &[
                delete("2"),
                Write::DeleteAsset {
                    repo: "suite".into(),
                    path: "x/b".into(),
                },
            ],
            &[],
        )
        .await
        .unwrap();
    assert_eq!((refs(store, &a), refs(store, &b)), (0, 0));
    assert!(
        queued(store, &a) && queued(store, &b),
        "blobs at zero references are queued"
    );
    // Replacing a version moves the references.
    store
        .apply(&[put_version("app", "3", vec![a], true)], &[])
        .await
        .unwrap();
    store
        .apply(&[put_version("app", "3", vec![b], true)], &[])
        .await
        .unwrap();
    assert_eq!((refs(store, &a), refs(store, &b)), (0, 1));
}

async fn apply_is_atomic(store: &Store) {
    let a = put_small(store, b"atomic").await;
    let missing = Digest::of(b"not in the store");
    let writes = [
        put_version("atomic", "1", vec![a], false),
        Write::PutTag {
            repo: "suite".into(),
            package: "atomic".into(),
            tag: "latest".into(),
            version: "1".into(),
        },
        put_version("atomic", "2", vec![missing], false),
    ];
    let result = store.apply(&writes, &[]).await;
    assert!(
        matches!(result, Err(Error::BlobUnknown(d)) if d == missing),
        "{result:?}"
    );
    let meta = store.meta();
    assert!(
        meta.version("suite", "atomic", "1").unwrap().is_none(),
        "no write of a failed apply lands"
    );
    assert!(meta.tag("suite", "atomic", "latest").unwrap().is_none());
    assert_eq!(refs(store, &a), 0, "nor its reference counts");
}

async fn create_only_versions(store: &Store) {
    let a = put_small(store, b"release").await;
    store
        .apply(&[put_version("lib", "1.0.0", vec![a], false)], &[])
        .await
        .unwrap();
    let again = store
        .apply(&[put_version("lib", "1.0.0", vec![a], false)], &[])
        .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    assert_eq!(refs(store, &a), 1);
    // Two racing creates of one version: exactly one wins.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .apply(&[put_version("lib", "2.0.0", vec![a], false)], &[])
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += task.await.unwrap().is_ok() as usize;
    }
    assert_eq!(won, 1, "one of the racing creates succeeds");
    assert_eq!(refs(store, &a), 2);
    let versions = store.meta().versions("suite", "lib", None, 10).unwrap();
    assert_eq!(
        versions.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(),
        ["1.0.0", "2.0.0"]
    );
}

async fn garbage_collection(store: &Store) {
    let kept = put_small(store, b"kept by a version").await;
    let dropped = put_small(store, b"referenced by nothing").await;
    store
        .apply(&[put_version("gc", "1", vec![kept], false)], &[])
        .await
        .unwrap();
    let (reclaimed, _) = store
        .collect_garbage(std::time::Duration::from_secs(3600))
        .unwrap();
    assert_eq!(reclaimed, 0, "nothing is collected within the grace period");
    // Timestamps are whole seconds: step past the one the blobs were touched in.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (count_before, _) = store.meta().blob_stats().unwrap();
    let (reclaimed, bytes) = store.collect_garbage(std::time::Duration::ZERO).unwrap();
    assert!(
        reclaimed >= 1 && bytes >= 21,
        "{reclaimed} blobs, {bytes} bytes"
    );
    assert!(store.blob(&dropped).unwrap().is_none() && !store.blob_path(&dropped).exists());
    assert!(store.blob_path(&kept).exists() && store.blob(&kept).unwrap().is_some());
    assert_eq!(
        store.meta().blob_stats().unwrap().0,
        count_before - reclaimed as u64
    );
}

fn temp_files(store: &Store) -> usize {
    std::fs::read_dir(store.data_dir().join("uploads"))
        .unwrap()
        .count()
}

/// Pulls are recorded to the minute and go with their version.
async fn pulls(store: &Store) {
    let meta = store.meta();
    store
        .apply(&[put_version("pulled", "1", Vec::new(), false)], &[])
        .await
        .unwrap();
    assert_eq!(meta.pulled("suite", "pulled", "1").unwrap(), None);
    meta.note_pull("suite", "pulled", "1", 1_000).unwrap();
    meta.note_pull("suite", "pulled", "1", 1_030).unwrap();
    assert_eq!(meta.pulled("suite", "pulled", "1").unwrap(), Some(1_000));
    meta.note_pull("suite", "pulled", "1", 1_060).unwrap();
    assert_eq!(meta.pulled("suite", "pulled", "1").unwrap(), Some(1_060));
    assert_eq!(
        meta.pulls("suite", "pulled").unwrap(),
        [("1".to_string(), 1_060)].into()
    );
    let delete = Write::DeleteVersion {
        repo: "suite".into(),
        package: "pulled".into(),
        version: "1".into(),
    };
    store.apply(&[delete], &[]).await.unwrap();
    assert_eq!(meta.pulled("suite", "pulled", "1").unwrap(), None);
    // An item that is no version (a SNAPSHOT build) forgets its pulls when told to.
    meta.note_pull("suite", "pulled", "1-build", 1_000).unwrap();
    let forget = Write::DeletePull {
        repo: "suite".into(),
        package: "pulled".into(),
        item: "1-build".into(),
    };
    store.apply(&[forget], &[]).await.unwrap();
    assert_eq!(meta.pulled("suite", "pulled", "1-build").unwrap(), None);
}

async fn later_checksums(store: &Store) {
    let data = content(9, 300_000);
    let blob = store
        .put_bytes(Bytes::from(data.clone()), Want::NONE)
        .await
        .unwrap();
    assert_eq!(blob.checksums, crate::Checksums::default());
    let want = Want {
        sha1: true,
        md5: true,
        sha512: false,
    };
    store.checksum_later(&blob, want).unwrap();
    // A digest whose file is gone (collected meanwhile) leaves the queue without a record appearing.
    let gone = Digest::of(b"never stored");
    store.meta().queue_checksums(&gone, want).unwrap();
    assert_eq!(store.meta().queued_checksums(10).unwrap().len(), 2);
    assert_eq!(store.compute_later_checksums(10).unwrap(), 2);
    assert!(
        store.meta().queued_checksums(10).unwrap().is_empty(),
        "the queue drains"
    );
    assert!(store.blob(&gone).unwrap().is_none());
    let mut expected = crate::digest::Hasher::new(want);
    expected.update(&data);
    let stored = store.blob(&blob.digest).unwrap().unwrap();
    assert_eq!(
        stored.checksums,
        expected.finish().1,
        "computed after the fact, the same"
    );
    store.checksum_later(&stored, want).unwrap();
    assert!(
        store.meta().queued_checksums(10).unwrap().is_empty(),
        "nothing to queue for a blob that has them"
    );
}
