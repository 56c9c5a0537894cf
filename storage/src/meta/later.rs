//! The queue of checksums computed after a response (`Store::checksum_later`): a blob's digest and which of sha1,
//! md5 and sha512 it still lacks. An entry is written beside the blob's record and leaves in the transaction that
//! adds those checksums to the record, so a crash in between only means they are computed again.

use sled::Transactional;

use super::{LATER, Meta, digest_key, flatten, get, put};
use crate::digest::{Checksums, Digest, Want};
use crate::error::Result;
use crate::model::BlobRecord;

impl Meta {
    /// Queues `want` for `digest`, beside what is queued already. Durable with the next commit.
    pub fn queue_checksums(&self, digest: &Digest, want: Want) -> Result<()> {
        self.tree(LATER)
            .update_and_fetch(digest.hex().as_bytes(), |old| {
                Some(vec![bits(old) | want.bits()])
            })?;
        Ok(())
    }

    /// Up to `max` queued blobs and what each lacks.
    pub fn queued_checksums(&self, max: usize) -> Result<Vec<(Digest, Want)>> {
        self.tree(LATER)
            .iter()
            .take(max)
            .map(|entry| {
                let (k, v) = entry?;
                let want = Want::from_bits(bits(Some(&v[..])));
                Ok((digest_key(&k, "later")?, want))
            })
            .collect()
    }

    /// Adds the checksums computed for `done` to the blob's record (when the blob still exists: `None` says its file
    /// is gone) and takes them off the queue, keeping any queued since.
    pub fn complete_checksums(
        &self,
        digest: &Digest,
        done: Want,
        sums: Option<&Checksums>,
    ) -> Result<()> {
        let key = digest.hex();
        let trees = [self.tree(super::BLOBS), self.tree(LATER)];
        let result = trees.as_slice().transaction(|t| {
            if let Some(sums) = sums
                && let Some(mut record) = get::<BlobRecord>(&t[0], key.as_bytes(), "blobs")?
            {
                record.checksums.merge(sums);
                put(&t[0], key.as_bytes(), &record)?;
            }
            let queued = bits(t[1].get(key.as_bytes())?.as_deref());
            match queued & !done.bits() {
                0 => t[1].remove(key.as_bytes())?,
                left => t[1].insert(key.as_bytes(), vec![left])?,
            };
            Ok(())
        });
        flatten(result)
    }
}

/// The bits a queue entry holds (none for no entry).
fn bits(value: Option<&[u8]>) -> u8 {
    value.and_then(|v| v.first().copied()).unwrap_or(0)
}
