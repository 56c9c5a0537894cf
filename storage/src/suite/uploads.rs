//! The storage suite's upload sessions: resumable appends in order, a dropped request keeping what it wrote,
//! sealing checked against the digest, and a deleted session taking its bytes along.

use bytes::Bytes;

use super::read_all;
use crate::{Digest, Error, Store, UploadSession, Want, Write};

async fn session(store: &Store, id: &str) {
    let record = UploadSession {
        id: id.into(),
        repository: "docker/app".into(),
        created: 0,
        updated: crate::now(),
    };
    store
        .apply(&[Write::PutUpload(record)], &[])
        .await
        .expect("session recorded");
}

async fn append(
    store: &Store,
    id: &str,
    offset: Option<u64>,
    bytes: &'static [u8],
) -> crate::Result<u64> {
    let mut append = store.append(id, offset, 1 << 20).await?;
    append.write(Bytes::from_static(bytes)).await?;
    append.finish().await
}

/// Resumable uploads: in-order appends, out-of-order refusal, a dropped request keeping what it wrote, sealing
/// verified against the digest, and a deleted session losing its bytes.
pub(super) async fn upload_sessions(store: &Store) {
    let id = crate::random_id();
    session(store, &id).await;
    assert_eq!(
        append(store, &id, Some(0), b"hello ")
            .await
            .expect("first chunk"),
        6
    );
    assert_eq!(
        append(store, &id, None, b"wor")
            .await
            .expect("streamed chunk"),
        9
    );
    assert!(matches!(
        append(store, &id, Some(3), b"x").await,
        Err(Error::OutOfOrder { size: 9 })
    ));
    // A request that goes away mid-way: what it handed over stays, and the next request continues from there.
    let mut dropped = store
        .append(&id, Some(9), 1 << 20)
        .await
        .expect("append starts");
    dropped
        .write(Bytes::from_static(b"ld"))
        .await
        .expect("chunk queued");
    drop(dropped);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.upload_size(&id).expect("size") != 11
        || append(store, &id, Some(11), b"!").await.is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "a dropped append never settled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(matches!(
        store
            .seal(&id, Some(Digest::of(b"hello")), Want::NONE)
            .await,
        Err(Error::DigestMismatch { .. })
    ));
    assert_eq!(
        store.upload_size(&id).expect("size"),
        12,
        "a refused seal keeps the session"
    );
    let blob = store
        .seal(
            &id,
            Some(Digest::of(b"hello world!")),
            Want {
                sha512: true,
                ..Want::NONE
            },
        )
        .await
        .expect("seal");
    assert_eq!(
        read_all(store, &blob.digest, 0, u64::MAX).await,
        b"hello world!"
    );
    assert!(
        blob.checksums
            .sha512
            .as_deref()
            .is_some_and(|h| h.starts_with("db9b1cd3262dee37756a09b9064973589847caa8")),
        "sha512 asked for at the seal"
    );
    assert_eq!(
        store.upload_size(&id).expect("size"),
        0,
        "the sealed session's file became the blob"
    );

    // An empty session seals into the empty blob; a deleted session loses its bytes.
    let empty = crate::random_id();
    session(store, &empty).await;
    assert_eq!(
        store
            .seal(&empty, Some(Digest::of(b"")), Want::NONE)
            .await
            .expect("empty seal")
            .size,
        0
    );
    let cancelled = crate::random_id();
    session(store, &cancelled).await;
    append(store, &cancelled, None, b"bytes")
        .await
        .expect("append");
    store
        .apply(
            &[Write::DeleteUpload {
                id: cancelled.clone(),
            }],
            &[],
        )
        .await
        .expect("delete");
    assert_eq!(store.upload_size(&cancelled).expect("size"), 0);
    assert!(
        store.append("../escape", None, 10).await.is_err(),
        "session ids are never paths"
    );
}
