//! `Store`: the blob files and the metadata index together, with the write protocol, start-up reconciliation and
//! scrub.
//!
//! A write: `begin` an ingest, stream the body into it, `finish` it (hashed, verified, fsynced, placed, indexed),
//! then `apply` the metadata writes that refer to the blob, which returns once they are durable.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use crate::blobs::{Blobs, Ingest, READ_CHUNK};
use crate::digest::{Checksums, Digest, Want};
use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::model::*;
use crate::uploads::{Append, Sessions};

#[derive(Clone, Debug)]
pub struct Options {
    pub data_dir: PathBuf,
    /// Memory for the metadata store's cache.
    pub cache_bytes: u64,
    /// Upload sessions untouched this long are removed at start-up.
    pub upload_max_age: Duration,
}

impl Options {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Options {
            data_dir: data_dir.into(),
            cache_bytes: 8 << 20,
            upload_max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// A stored blob as formats see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    pub checksums: Checksums,
}

/// What start-up found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub temp_files_removed: usize,
    pub sessions_expired: usize,
    /// Blob files on disk that no index entry knew (a crash between placing and indexing): now queued for GC.
    pub orphans_queued: usize,
    /// Index entries whose file is gone: reported, never silently dropped.
    pub missing: Vec<Digest>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scrubbed {
    pub checked: usize,
    pub bytes: u64,
    pub missing: Vec<Digest>,
    /// (expected, actual)
    pub mismatched: Vec<(Digest, Digest)>,
}

/// Cheap to clone: every clone is the same store.
#[derive(Clone)]
pub struct Store(Arc<Inner>);

struct Inner {
    data_dir: PathBuf,
    blobs: Blobs,
    meta: Meta,
    sessions: Sessions,
    options: Options,
    /// Placing a blob and collecting one must not interleave for the same digest: GC could delete the file an
    /// ingest just found in place and is about to index. Striped by the digest's first byte.
    placing: [Mutex<()>; 64],
    small: Arc<SmallCache>,
    /// Set when checksums are queued for later, and the worker waiting on it (`run_later_checksums`).
    later: (Mutex<bool>, Condvar),
}

fn read_ahead(
    mut file: std::fs::File,
    mut remaining: u64,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) {
    while remaining > 0 {
        let want = remaining.min(READ_CHUNK as u64);
        let mut buf = Vec::with_capacity(want as usize);
        let item = match (&mut file).take(want).read_to_end(&mut buf) {
            Ok(0) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "blob shorter than its index",
            )),
            Ok(n) => {
                remaining -= n as u64;
                Ok(Bytes::from(buf))
            }
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    }
}

/// Whole small blobs by digest, up to a total size; when full it starts over, which is simple and, for the hot set
/// of manifests a registry serves, good enough.
#[derive(Default)]
struct SmallCache {
    entries: Mutex<(std::collections::HashMap<Digest, Bytes>, usize)>,
}

impl SmallCache {
    const LIMIT: usize = 8 << 20;

    fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.entries.lock().ok()?.0.get(digest).cloned()
    }

    fn put(&self, digest: Digest, bytes: Bytes) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.1 + bytes.len() > Self::LIMIT {
            *entries = Default::default();
        }
        let len = bytes.len();
        if entries.0.insert(digest, bytes).is_none() {
            entries.1 += len;
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store and removes what a previous process left half-done. Quick: the walks
    /// over every blob are in [`Store::reconcile_index`], which the server runs in the background.
    pub fn open(options: Options) -> Result<(Store, Reconciled)> {
        let data_dir = options.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            Error::io(
                format!("cannot create data directory {}", data_dir.display()),
                e,
            )
        })?;
        let blobs = Blobs::open(&data_dir)?;
        let meta = Meta::open(&data_dir.join("meta"), options.cache_bytes)?;
        let placing = std::array::from_fn(|_| Mutex::new(()));
        let sessions = Sessions::new(blobs.uploads_dir());
        let store = Store(Arc::new(Inner {
            data_dir,
            blobs,
            meta,
            sessions,
            options,
            placing,
            small: Arc::default(),
            later: (Mutex::new(true), Condvar::new()),
        }));
        let mut report = Reconciled {
            temp_files_removed: store.0.blobs.clean_temp()?,
            ..Default::default()
        };
        report.sessions_expired = store.expire_sessions()?;
        Ok((store, report))
    }

    pub fn data_dir(&self) -> &Path {
        &self.0.data_dir
    }

    pub fn meta(&self) -> &Meta {
        &self.0.meta
    }

    /// Starts streaming a blob in. `limit` bounds its size; `expected` is checked at the end.
    pub fn begin(&self, want: Want, limit: u64, expected: Option<Digest>) -> Result<Ingest> {
        self.0.blobs.begin(want, limit, expected)
    }

    /// Makes an ingested blob durable and indexes it.
    pub async fn finish(&self, ingest: Ingest) -> Result<BlobInfo> {
        let done = ingest.finish().await?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = store.lock(&done.digest);
            store.0.blobs.place(&done.temp, &done.digest)?;
            let record = store
                .0
                .meta
                .register_blob(&done.digest, done.size, &done.checksums)?;
            Ok(BlobInfo {
                digest: done.digest,
                size: record.size,
                checksums: record.checksums,
            })
        })
        .await
        .map_err(|_| {
            Error::io(
                "blob placement stopped",
                std::io::Error::other("task ended"),
            )
        })?
    }

    fn lock(&self, digest: &Digest) -> std::sync::MutexGuard<'_, ()> {
        self.0.placing[self.stripe(digest)]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Which of the `placing` locks guards `digest`: each guards one range of digests in key order, so GC, which
    /// walks its queue in that order, meets each stripe's digests one after another.
    fn stripe(&self, digest: &Digest) -> usize {
        digest.as_bytes()[0] as usize * self.0.placing.len() / 256
    }

    /// Ingests a small in-memory value (a manifest, a generated document).
    pub async fn put_bytes(&self, bytes: Bytes, want: Want) -> Result<BlobInfo> {
        let mut ingest = self.begin(want, bytes.len() as u64, None)?;
        ingest.write(bytes).await?;
        self.finish(ingest).await
    }

    pub fn blob(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        Ok(self.0.meta.blob(digest)?.map(|r| BlobInfo {
            digest: *digest,
            size: r.size,
            checksums: r.checksums,
        }))
    }

    /// Reads `len` bytes of a small blob from `offset` (clamped to its size) in one go: for manifests and documents,
    /// where a stream's per-chunk hand-offs cost more than the bytes. Callers keep `len` small. Whole small blobs
    /// are cached in memory: content-addressed bytes never change, so the cache needs no invalidation.
    pub async fn read_bytes(&self, digest: &Digest, offset: u64, len: u64) -> Result<Bytes> {
        if let Some(whole) = self.0.small.get(digest) {
            let start = (offset as usize).min(whole.len());
            let end = start + (len as usize).min(whole.len() - start);
            return Ok(whole.slice(start..end));
        }
        let blobs = self.0.blobs.clone();
        let digest = *digest;
        let small = self.0.small.clone();
        tokio::task::spawn_blocking(move || {
            let (file, size) = blobs.open_at(&digest, offset)?;
            let want = len.min(size.saturating_sub(offset));
            let mut buf = Vec::with_capacity(want as usize);
            file.take(want)
                .read_to_end(&mut buf)
                .map_err(|e| Error::io("cannot read blob", e))?;
            if (buf.len() as u64) < want {
                return Err(Error::io(
                    "cannot read blob",
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "blob shorter than its index",
                    ),
                ));
            }
            let bytes = Bytes::from(buf);
            if offset == 0 && want == size {
                small.put(digest, bytes.clone());
            }
            Ok(bytes)
        })
        .await
        .map_err(|_| Error::io("blob read stopped", std::io::Error::other("task ended")))?
    }

    /// Streams `len` bytes of a blob from `offset` (clamped to its size).
    pub async fn read(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + use<>> {
        let blobs = self.0.blobs.clone();
        let digest = *digest;
        let (file, size) = tokio::task::spawn_blocking(move || blobs.open_at(&digest, offset))
            .await
            .map_err(|_| Error::io("blob open stopped", std::io::Error::other("task ended")))??;
        let remaining = len.min(size.saturating_sub(offset));
        // A reader thread stays a couple of chunks ahead of the socket, so reading the file and sending overlap.
        // When the client goes away the receiver drops, the next send fails and the thread ends.
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
        std::thread::Builder::new()
            .name("wharf-read".into())
            .spawn(move || read_ahead(file, remaining, &tx))
            .map_err(|e| Error::io("cannot start a reader thread", e))?;
        Ok(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
    }

    /// Applies writes atomically and returns once they are durable. An upload session whose record is deleted
    /// loses its bytes too.
    pub async fn apply(&self, writes: &[Write], audit: &[AuditEvent]) -> Result<()> {
        self.0.meta.apply(writes, audit).await?;
        for write in writes {
            if let Write::DeleteUpload { id } = write {
                self.0.sessions.discard(id);
            }
        }
        Ok(())
    }

    /// Bytes an upload session has received so far.
    pub fn upload_size(&self, id: &str) -> Result<u64> {
        self.0.sessions.size(id)
    }

    /// Starts appending a request's body to an upload session (see `uploads`).
    pub async fn append(&self, id: &str, offset: Option<u64>, limit: u64) -> Result<Append> {
        self.0.sessions.append(id, offset, limit).await
    }

    /// Turns an upload session's bytes into a blob: verified against `expected`, fsynced, placed and indexed. On a
    /// digest mismatch the session stays as it was. Checksums beside sha256 (`want`) cost one more read of the
    /// bytes: sessions hash sha256 only, since which others a client needs is known only at the end.
    pub async fn seal(&self, id: &str, expected: Option<Digest>, want: Want) -> Result<BlobInfo> {
        let sealing = self.0.sessions.seal(id).await?;
        let (digest, checksums) = if want == Want::NONE {
            sealing.hasher.clone().finish()
        } else {
            let file = sealing.file.clone();
            match tokio::task::spawn_blocking(move || crate::uploads::rehash(&file, want)).await {
                Ok(Ok((hasher, _))) => hasher.finish(),
                Ok(Err(e)) => {
                    self.0.sessions.put_back_sealing(id, sealing);
                    return Err(e);
                }
                Err(_) => {
                    self.0.sessions.put_back_sealing(id, sealing);
                    return Err(Error::io(
                        "upload hashing stopped",
                        std::io::Error::other("task ended"),
                    ));
                }
            }
        };
        if let Some(expected) = expected
            && expected != digest
        {
            self.0.sessions.put_back_sealing(id, sealing);
            return Err(Error::DigestMismatch {
                expected,
                actual: digest,
            });
        }
        let store = self.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            let placed = {
                let _guard = store.lock(&digest);
                store.0.blobs.place(&sealing.file, &digest).and_then(|()| {
                    store
                        .0
                        .meta
                        .register_blob(&digest, sealing.size, &checksums)
                })
            };
            match placed {
                Ok(record) => {
                    store.0.sessions.discard(&id);
                    Ok(BlobInfo {
                        digest,
                        size: record.size,
                        checksums: record.checksums,
                    })
                }
                Err(e) => {
                    store.0.sessions.put_back_sealing(&id, sealing);
                    Err(e)
                }
            }
        })
        .await
        .map_err(|_| {
            Error::io(
                "upload sealing stopped",
                std::io::Error::other("task ended"),
            )
        })?
    }

    /// Checks that the store can take writes: a file in the data directory is created, synced and removed.
    pub fn ready(&self) -> Result<()> {
        let probe = self
            .0
            .blobs
            .uploads_dir()
            .join(format!("tmp-ready-{}", crate::random_id()));
        let result = std::fs::write(&probe, b"ready")
            .map_err(|e| Error::io("data directory is not writable", e));
        let _ = std::fs::remove_file(&probe);
        result?;
        self.0.meta.blob_stats().map(|_| ())
    }

    /// Removes upload sessions untouched for `upload_max_age` (the record's time or the file's, whichever is later:
    /// appends touch only the file), and session files without a record.
    fn expire_sessions(&self) -> Result<usize> {
        let cutoff = now().saturating_sub(self.0.options.upload_max_age.as_secs());
        let dir = self.0.blobs.uploads_dir();
        let modified = |id: &str| -> Time {
            std::fs::metadata(dir.join(id))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        };
        let sessions: Vec<UploadSession> = self.0.meta.uploads().filter_map(|s| s.ok()).collect();
        let expired: Vec<String> = sessions
            .iter()
            .filter(|s| s.updated.max(modified(&s.id)) < cutoff)
            .map(|s| s.id.clone())
            .collect();
        for id in &expired {
            self.0.sessions.discard(id);
        }
        let known: std::collections::HashSet<&str> =
            sessions.iter().map(|s| s.id.as_str()).collect();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io("cannot list uploads", e))? {
            let name = entry
                .map_err(|e| Error::io("cannot list uploads", e))?
                .file_name();
            let name = name.to_string_lossy();
            if !name.starts_with("tmp-") && !known.contains(name.as_ref()) {
                let _ = std::fs::remove_file(dir.join(name.as_ref()));
            }
        }
        let writes: Vec<Write> = expired
            .iter()
            .map(|id| Write::DeleteUpload { id: id.clone() })
            .collect();
        if !writes.is_empty() {
            self.0.meta.apply_volatile(&writes, &[])?;
        }
        Ok(expired.len())
    }

    /// Compares the blob files with the index: files the index lost are queued for GC, unreferenced blobs not yet
    /// queued are queued, and entries whose file is missing are reported. Walks everything: run it off the request
    /// path.
    pub fn reconcile_index(&self) -> Result<Reconciled> {
        let mut report = Reconciled::default();
        for (digest, size) in self.0.blobs.list()? {
            if self.0.meta.blob(&digest)?.is_none() {
                self.0.meta.queue_for_gc(&digest, size)?;
                report.orphans_queued += 1;
            }
        }
        let queued: std::collections::HashSet<Digest> = self
            .0
            .meta
            .gc_queue()
            .filter_map(|e| e.ok())
            .map(|(d, _)| d)
            .collect();
        for entry in self.0.meta.blobs() {
            let (digest, record) = entry?;
            if !self.0.blobs.path(&digest).exists() {
                report.missing.push(digest);
            } else if record.refs == 0 && !queued.contains(&digest) {
                self.0.meta.queue_for_gc(&digest, record.size)?;
                report.orphans_queued += 1;
            }
        }
        Ok(report)
    }

    /// Re-hashes every indexed blob.
    pub fn scrub(&self) -> Result<Scrubbed> {
        let mut report = Scrubbed::default();
        for entry in self.0.meta.blobs() {
            let (digest, record) = entry?;
            report.checked += 1;
            match self.0.blobs.rehash(&digest)? {
                None => report.missing.push(digest),
                Some(actual) if actual != digest => report.mismatched.push((digest, actual)),
                Some(_) => report.bytes += record.size,
            }
        }
        Ok(report)
    }

    /// Queues the checksums in `want` that a stored blob lacks, to be computed by `run_later_checksums` after the
    /// response: for a format that serves them but need not wait for them (generic), since md5 alone costs more
    /// CPU than receiving and writing the bytes. Durable with the commit that follows.
    pub fn checksum_later(&self, blob: &BlobInfo, want: Want) -> Result<()> {
        let missing = want.missing_from(&blob.checksums);
        if missing == Want::NONE {
            return Ok(());
        }
        self.0.meta.queue_checksums(&blob.digest, missing)?;
        *self.0.later.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.0.later.1.notify_one();
        Ok(())
    }

    /// Computes queued checksums until none are left, then waits for more; for a maintenance thread that lives as
    /// long as the process. An error is returned for the caller to log; the entry stays queued.
    pub fn run_later_checksums(&self) -> Result<()> {
        loop {
            while self.compute_later_checksums(64)? > 0 {}
            let (woken, wake) = &self.0.later;
            let mut woken = woken.lock().unwrap_or_else(|p| p.into_inner());
            while !*woken {
                woken = wake.wait(woken).unwrap_or_else(|p| p.into_inner());
            }
            *woken = false;
        }
    }

    /// Computes the checksums of up to `max` queued blobs and adds them to their records; returns how many.
    pub fn compute_later_checksums(&self, max: usize) -> Result<usize> {
        let queued = self.0.meta.queued_checksums(max)?;
        for (digest, want) in &queued {
            let sums = self.0.blobs.checksums(digest, *want)?;
            self.0
                .meta
                .complete_checksums(digest, *want, sums.as_ref())?;
        }
        Ok(queued.len())
    }

    /// Removes queued blobs that nothing refers to and that were last ingested before `grace` ago. Returns the count
    /// and bytes reclaimed. Blobs go in batches of one lock stripe, each batch one transaction: a transaction per
    /// blob made sled write its log once per blob (GC ran at a few hundred blobs a second). Batches stay small since
    /// readers wait for a transaction: at 128 the p99 of GETs during GC rose to 2.7x of idle, at 16 it is 1.9x.
    /// One thread: most of an unlink is waiting on the disk (on a filesystem mounted with `discard`, ext4 trims the
    /// freed blocks before unlink returns), and threads that overlap those waits made GC of 10,000 blobs 2x faster
    /// with two, 4x with eight. But every sled transaction takes one lock that all sled reads wait on, and a GC
    /// thread at the lowest priority that holds it shares the CPU with the other GC threads while readers wait: the
    /// p99 of GETs during GC went from 1.3x of idle to 2.0x with two threads, 3.9x with four, 15x with eight. Not
    /// only the lock: with the transactions kept here and two other threads doing nothing but unlink (files renamed
    /// out of place under the stripe lock first), the p99 still rose to 2.3x of idle. The discard I/O itself is
    /// what readers feel, so overlapping the waits needs a limit on their rate, not only another lock.
    pub fn collect_garbage(&self, grace: Duration) -> Result<(usize, u64)> {
        const BATCH: usize = 16;
        let before = now().saturating_sub(grace.as_secs());
        let mut reclaimed = (0, 0);
        let mut collect = |batch: &mut Vec<Digest>| -> Result<()> {
            if let Some(first) = batch.first() {
                // One stripe's lock covers the whole batch: placing any of these digests waits for it.
                let _guard = self.lock(first);
                for (digest, size) in self.0.meta.collect_blobs(batch, before)? {
                    self.0.blobs.remove(&digest)?;
                    reclaimed.0 += 1;
                    reclaimed.1 += size;
                }
            }
            batch.clear();
            Ok(())
        };
        // The queue is walked in key order as it is emptied, not read whole first: memory stays one batch however
        // many blobs wait, and a stripe's digests come together (see `stripe`).
        let mut batch = Vec::with_capacity(BATCH);
        for entry in self.0.meta.gc_queue() {
            let (digest, queued_at) = entry?;
            if queued_at >= before {
                continue;
            }
            let same_stripe = batch
                .first()
                .is_none_or(|first| self.stripe(first) == self.stripe(&digest));
            if batch.len() == BATCH || !same_stripe {
                collect(&mut batch)?;
            }
            batch.push(digest);
        }
        collect(&mut batch)?;
        Ok(reclaimed)
    }

    /// Test hook: the path of a blob file, so fault tests can damage it.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.0.blobs.path(digest)
    }
}
