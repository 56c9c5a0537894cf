//! Blob records (size, checksums, reference count), the counters of all blobs and their bytes, and the GC queue:
//! a blob is queued while nothing refers to it, from its first record or from the write that drops its last
//! reference (`apply`), until a write names it again or GC removes it.

use sled::Transactional;

use super::apply::count;
use super::{BLOBS, GC, Meta, STATS, be_u64, decode, digest_key, flatten, get, put, read};
use crate::digest::{Checksums, Digest};
use crate::error::Result;
use crate::model::{BlobRecord, Time, now};

impl Meta {
    /// Records a freshly ingested blob (refs 0, so queued for GC until a version or asset names it), or refreshes an
    /// existing record's `touched` time and adds any checksums it lacked. Not durable on its own: the commit that
    /// refers to the blob flushes it, and a blob nothing refers to may be lost in a crash without harm.
    pub fn register_blob(
        &self,
        digest: &Digest,
        size: u64,
        checksums: &Checksums,
    ) -> Result<BlobRecord> {
        let key = digest.hex();
        let trees = [self.tree(BLOBS), self.tree(GC), self.tree(STATS)];
        let result = trees.as_slice().transaction(|t| {
            let now = now();
            let record = match get::<BlobRecord>(&t[0], key.as_bytes(), "blobs")? {
                Some(mut record) => {
                    record.checksums.merge(checksums);
                    record.touched = now;
                    record
                }
                None => {
                    t[1].insert(key.as_bytes(), &now.to_be_bytes())?;
                    count(&t[2], 1, size as i64)?;
                    BlobRecord {
                        size,
                        checksums: checksums.clone(),
                        refs: 0,
                        created: now,
                        touched: now,
                    }
                }
            };
            put(&t[0], key.as_bytes(), &record)?;
            Ok(record)
        });
        flatten(result)
    }

    /// Number of blobs and their total size, from the counters the transactions keep.
    pub fn blob_stats(&self) -> Result<(u64, u64)> {
        let get =
            |k: &str| -> Result<u64> { Ok(self.tree(STATS).get(k)?.map_or(0, |v| be_u64(&v))) };
        Ok((get("blobs")?, get("bytes")?))
    }

    pub fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>> {
        read(self.tree(BLOBS), digest.hex().as_bytes(), "blobs")
    }

    /// Every blob record. Walks the whole index: start-up, scrub and GC only.
    pub fn blobs(&self) -> impl Iterator<Item = Result<(Digest, BlobRecord)>> + '_ {
        self.tree(BLOBS).iter().map(|entry| {
            let (k, v) = entry?;
            let digest = digest_key(&k, "blobs")?;
            Ok((digest, decode(&v, "blobs")?))
        })
    }

    /// Blobs queued for collection, with the time they were queued.
    pub fn gc_queue(&self) -> impl Iterator<Item = Result<(Digest, Time)>> + '_ {
        self.tree(GC).iter().map(|entry| {
            let (k, v) = entry?;
            let digest = digest_key(&k, "gc")?;
            Ok((digest, be_u64(&v)))
        })
    }

    /// Queues an unreferenced blob found at start-up, or adds a record for a file the index lost.
    pub fn queue_for_gc(&self, digest: &Digest, size: u64) -> Result<()> {
        let key = digest.hex();
        let trees = [self.tree(BLOBS), self.tree(GC), self.tree(STATS)];
        let result = trees.as_slice().transaction(|t| {
            let now = now();
            if t[0].get(key.as_bytes())?.is_none() {
                let record = BlobRecord {
                    size,
                    checksums: Checksums::default(),
                    refs: 0,
                    created: now,
                    touched: now,
                };
                put(&t[0], key.as_bytes(), &record)?;
                count(&t[2], 1, size as i64)?;
            }
            t[1].insert(key.as_bytes(), &now.to_be_bytes())?;
            Ok(())
        });
        flatten(result)
    }

    /// Removes the records of those of `digests` that nothing refers to and that were not touched since
    /// `touched_before`, in one transaction. Returns the removed ones with their sizes; the caller deletes the files
    /// of those only. A push that re-ingests or references one of them in the meantime conflicts with this
    /// transaction, so it can never lose the blob.
    pub fn collect_blobs(
        &self,
        digests: &[Digest],
        touched_before: Time,
    ) -> Result<Vec<(Digest, u64)>> {
        let trees = [self.tree(BLOBS), self.tree(GC), self.tree(STATS)];
        let result = trees.as_slice().transaction(|t| {
            let mut removed = Vec::new();
            let (mut count_removed, mut bytes_removed) = (0, 0);
            for digest in digests {
                let key = digest.hex();
                let record = get::<BlobRecord>(&t[0], key.as_bytes(), "blobs")?;
                let collectable = record
                    .as_ref()
                    .is_none_or(|r| r.refs == 0 && r.touched < touched_before);
                if collectable {
                    t[0].remove(key.as_bytes())?;
                    t[1].remove(key.as_bytes())?;
                    if let Some(r) = &record {
                        count_removed += 1;
                        bytes_removed += r.size as i64;
                    }
                    removed.push((*digest, record.map_or(0, |r| r.size)));
                }
            }
            if count_removed > 0 {
                count(&t[2], -count_removed, -bytes_removed)?;
            }
            Ok(removed)
        });
        flatten(result)
    }
}
