//! The content-addressed blob files and the streamed ingest that writes them.
//!
//! ```text
//! <data>/
//!   blobs/sha256/ab/cd/abcd…(64 hex)   one file per blob, named by its digest, never modified once placed
//!   uploads/tmp-<random>               an ingest in progress; any left at start-up belong to a dead process
//! ```
//!
//! An ingest hashes each chunk on the caller's task and hands it to a writer thread, so hashing and writing overlap;
//! extra checksums (sha1, md5: a Maven or generic upload) are computed on a thread of their own, since md5 alone is
//! slower than the sha256 and the disk;
//! `finish` fsyncs the file, checks the digest, renames it into place unless the blob exists already, and fsyncs the
//! directories it touched. Only then does the blob exist.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::digest::{Checksums, Digest, Extra, Hasher, Want};
use crate::error::{Error, Result};
use crate::feed::{EarlySync, Feeder, Run, write_run};

/// Bytes per read when serving or scrubbing.
pub const READ_CHUNK: usize = 256 * 1024;

#[derive(Clone)]
pub struct Blobs {
    root: PathBuf,
    uploads: PathBuf,
}

/// A fully written, fsynced and verified upload, not yet in place.
#[derive(Debug)]
pub struct Verified {
    pub temp: PathBuf,
    pub digest: Digest,
    pub size: u64,
    pub checksums: Checksums,
}

impl Drop for Verified {
    fn drop(&mut self) {
        // After a successful `place` the temp name is gone and this fails quietly; otherwise it cleans up.
        let _ = fs::remove_file(&self.temp);
    }
}

impl Blobs {
    pub fn open(data: &Path) -> Result<Blobs> {
        let root = data.join("blobs").join("sha256");
        let uploads = data.join("uploads");
        for dir in [&root, &uploads] {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        }
        sync_dir(data)?;
        sync_dir(&data.join("blobs"))?;
        Ok(Blobs { root, uploads })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }

    pub fn uploads_dir(&self) -> &Path {
        &self.uploads
    }

    /// Starts an ingest of at most `limit` bytes.
    pub fn begin(&self, want: Want, limit: u64, expected: Option<Digest>) -> Result<Ingest> {
        let temp = self.uploads.join(format!("tmp-{}", crate::random_id()));
        let file =
            File::create_new(&temp).map_err(|e| Error::io("cannot create upload file", e))?;
        let feeder = Feeder::start("wharf-ingest", 0, limit, move |rx| write_chunks(file, rx))?;
        let extra = match want == Want::NONE {
            true => None,
            false => Some(Feeder::start("wharf-checksums", 0, limit, move |rx| {
                Ok(checksum_chunks(want, rx))
            })?),
        };
        Ok(Ingest {
            feeder,
            hasher: Hasher::new(Want::NONE),
            extra,
            expected,
            temp,
        })
    }

    /// Moves a finished temp file into place unless the blob exists, and makes the new directory entries durable.
    pub fn place(&self, temp: &Path, digest: &Digest) -> Result<()> {
        let dest = self.path(digest);
        if dest.exists() {
            // Same digest, same bytes: the copy already placed was fsynced before its rename. Unlinking a large
            // file takes a while, and nobody waits for it: a crash leaves a tmp- file that start-up removes.
            let doomed = self
                .uploads
                .join(format!("tmp-done-{}", crate::random_id()));
            if fs::rename(temp, &doomed).is_ok() {
                std::thread::spawn(move || fs::remove_file(doomed));
            }
            return Ok(());
        }
        let inner = dest.parent().expect("blob paths have parents");
        let outer = inner.parent().expect("blob paths have two levels");
        let created_outer = create_dir(outer)?;
        let created_inner = create_dir(inner)?;
        fs::rename(temp, &dest).map_err(|e| Error::io("cannot move blob into place", e))?;
        sync_dir(inner)?;
        if created_inner {
            sync_dir(outer)?;
        }
        if created_outer {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// Opens a blob for reading from `offset`; returns the file and the blob's full size.
    pub fn open_at(&self, digest: &Digest, offset: u64) -> Result<(File, u64)> {
        let mut file = match File::open(self.path(digest)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BlobUnknown(*digest));
            }
            Err(e) => return Err(Error::io("cannot open blob", e)),
        };
        let size = file
            .metadata()
            .map_err(|e| Error::io("cannot stat blob", e))?
            .len();
        file.seek(SeekFrom::Start(offset.min(size)))
            .map_err(|e| Error::io("cannot seek blob", e))?;
        Ok((file, size))
    }

    /// Re-hashes one blob file; `None` when the file is missing.
    pub fn rehash(&self, digest: &Digest) -> Result<Option<Digest>> {
        let mut hasher = Hasher::new(Want::NONE);
        let found = self.read_through(digest, |bytes| hasher.update(bytes))?;
        Ok(found.then(|| hasher.finish().0))
    }

    /// Computes `want` of one blob file; `None` when the file is missing.
    pub fn checksums(&self, digest: &Digest, want: Want) -> Result<Option<Checksums>> {
        let mut extra = Extra::new(want);
        let found = self.read_through(digest, |bytes| extra.update(bytes))?;
        Ok(found.then(|| extra.finish()))
    }

    /// Feeds a blob file to `each` chunk by chunk; false when the file is missing.
    fn read_through(&self, digest: &Digest, mut each: impl FnMut(&[u8])) -> Result<bool> {
        let (mut file, _) = match self.open_at(digest, 0) {
            Ok(opened) => opened,
            Err(Error::BlobUnknown(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        read_chunks(&mut file, &mut each).map_err(|e| Error::io("cannot read blob", e))?;
        Ok(true)
    }

    /// Removes a blob file. Only garbage collection calls this, after the index says nothing refers to it.
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove blob", e)),
        }
    }

    /// Every blob file on disk, for reconciliation against the index. Walks the whole store: start-up only.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>> {
        let mut found = Vec::new();
        for outer in read_dir(&self.root)? {
            for inner in read_dir(&outer)? {
                for file in read_dir(&inner)? {
                    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    if let Ok(digest) = name.parse::<Digest>() {
                        let size = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                        found.push((digest, size));
                    }
                }
            }
        }
        Ok(found)
    }

    /// Removes temp files of ingests that were in progress when the previous process died. Returns how many.
    pub fn clean_temp(&self) -> Result<usize> {
        let mut removed = 0;
        for path in read_dir(&self.uploads)? {
            let is_temp = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("tmp-"));
            if is_temp && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.uploads)?;
        }
        Ok(removed)
    }
}

/// A blob being written. Dropping it without `finish` removes the partial file.
pub struct Ingest {
    feeder: Feeder<()>,
    /// The sha256 only.
    hasher: Hasher,
    extra: Option<Feeder<Checksums>>,
    expected: Option<Digest>,
    temp: PathBuf,
}

impl Ingest {
    pub fn size(&self) -> u64 {
        self.feeder.size()
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.hasher.update(&chunk);
        if let Some(extra) = &mut self.extra {
            extra.write(chunk.clone()).await?;
        }
        self.feeder.write(chunk).await
    }

    /// Waits for the bytes to be on disk and checks the digest. The caller places the file and indexes it.
    pub async fn finish(mut self) -> Result<Verified> {
        self.feeder.finish().await?;
        let checksums = match &mut self.extra {
            Some(extra) => extra.finish().await?,
            None => Checksums::default(),
        };
        let hasher = std::mem::replace(&mut self.hasher, Hasher::new(Want::NONE));
        let (digest, _) = hasher.finish();
        if let Some(expected) = self.expected
            && expected != digest
        {
            return Err(Error::DigestMismatch {
                expected,
                actual: digest,
            });
        }
        Ok(Verified {
            temp: std::mem::take(&mut self.temp),
            digest,
            size: self.feeder.size(),
            checksums,
        })
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // Not finished (client went away, limit hit, digest mismatch): the partial file must not outlive us. The
        // writer may still hold it open; removing the name is enough on Unix.
        if !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Feeds a file from where it stands to its end to `each`, `READ_CHUNK` bytes at a time.
pub(crate) fn read_chunks(file: &mut File, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        each(&buf[..n]);
    }
}

fn checksum_chunks(want: Want, mut rx: mpsc::Receiver<Run>) -> Checksums {
    let mut extra = Extra::new(want);
    while let Some(run) = rx.blocking_recv() {
        run.iter().for_each(|chunk| extra.update(chunk));
    }
    extra.finish()
}

fn write_chunks(mut file: File, mut rx: mpsc::Receiver<Run>) -> io::Result<()> {
    let mut early = EarlySync::start(&file);
    while let Some(run) = rx.blocking_recv() {
        early.wrote(write_run(&mut file, &run)?);
    }
    drop(early);
    // The sender is gone: either `finish` (the file must be durable before its rename) or a drop (the file is
    // unlinked by then and the fsync is wasted but harmless). The upload directory is not fsynced: the temp name
    // is never relied upon after a crash.
    file.sync_all()
}

fn create_dir(dir: &Path) -> Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(format!("cannot create {}", dir.display()), e)),
    }
}

/// fsync a directory so that entries created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot fsync {}", dir.display()), e))
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
}
