//! Resumable upload sessions: a blob that arrives over several requests (OCI's POST, PATCH…, PUT).
//!
//! ```text
//! <data>/uploads/<id>     the bytes received so far, appended in order
//! ```
//!
//! The sha256 state of a session lives in memory beside its file and is advanced by the same thread that appends,
//! so the two always describe the same bytes, even when a client disconnects mid-request: the writer stops after
//! the last whole chunk it was given, truncates anything partial, and hands back the state for exactly what the file
//! holds. After a restart the state is rebuilt by reading the file once. Only one request may work on a session at
//! a time. The session record (owner, times) is metadata: `Write::PutUpload`, `Write::DeleteUpload`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::digest::{Hasher, Want};
use crate::error::{Error, Result};
use crate::feed::{EarlySync, Feeder, Run, write_run};

#[derive(Clone)]
pub(crate) struct Sessions {
    dir: PathBuf,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

enum Slot {
    Idle {
        hasher: Box<Hasher>,
        size: u64,
    },
    /// A request is appending or sealing.
    Busy,
}

/// The bytes of a session and the hash state that covers them, taken out of the session for sealing.
pub(crate) struct Sealing {
    pub file: PathBuf,
    pub hasher: Hasher,
    pub size: u64,
}

impl Sessions {
    pub fn new(dir: &Path) -> Sessions {
        Sessions {
            dir: dir.to_path_buf(),
            slots: Arc::default(),
        }
    }

    pub fn path(&self, id: &str) -> Result<PathBuf> {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !id.starts_with("tmp-");
        if !valid {
            return Err(Error::NotFound(format!("upload {id}")));
        }
        Ok(self.dir.join(id))
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes received so far: from memory, or the file's length while a request works on it or after a restart.
    pub fn size(&self, id: &str) -> Result<u64> {
        if let Some(Slot::Idle { size, .. }) = self.slots().get(id) {
            return Ok(*size);
        }
        match fs::metadata(self.path(id)?) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io("cannot stat upload", e)),
        }
    }

    /// Marks the session busy and returns its hash state, rebuilding it from the file when memory has none.
    /// Blocking: call off the async workers.
    fn take(&self, id: &str) -> Result<(Hasher, u64)> {
        let path = self.path(id)?;
        match self.slots().insert(id.to_string(), Slot::Busy) {
            Some(Slot::Idle { hasher, size }) => return Ok((*hasher, size)),
            Some(Slot::Busy) => {
                return Err(Error::Conflict(format!(
                    "upload {id} is in use by another request"
                )));
            }
            None => {}
        }
        rehash(&path, Want::NONE).inspect_err(|_| {
            self.slots().remove(id);
        })
    }

    fn put_back(&self, id: &str, hasher: Hasher, size: u64) {
        if let Some(slot) = self.slots().get_mut(id)
            && matches!(slot, Slot::Busy)
        {
            *slot = Slot::Idle {
                hasher: Box::new(hasher),
                size,
            };
        }
    }

    /// Starts appending to a session. `offset`, when the client said where its chunk starts, must equal the bytes
    /// received so far; `limit` bounds the session's total size.
    pub async fn append(&self, id: &str, offset: Option<u64>, limit: u64) -> Result<Append> {
        let this = self.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || this.start_append(id, offset, limit))
            .await
            .map_err(|_| Error::io("upload stopped", io::Error::other("task ended")))?
    }

    fn start_append(&self, id: String, offset: Option<u64>, limit: u64) -> Result<Append> {
        let (hasher, size) = self.take(&id)?;
        if let Some(offset) = offset
            && offset != size
        {
            self.put_back(&id, hasher, size);
            return Err(Error::OutOfOrder { size });
        }
        let opened = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&id)?);
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                self.put_back(&id, hasher, size);
                return Err(Error::io("cannot open upload file", e));
            }
        };
        let this = self.clone();
        let writer = move |rx| {
            let (hasher, written, result) = append_chunks(file, rx, hasher, size);
            this.put_back(&id, hasher, written);
            result.map(|()| written)
        };
        Ok(Append {
            feeder: Feeder::start("wharf-upload", size, limit, writer)?,
        })
    }

    /// Takes a session's bytes and hash state for sealing into a blob. The caller either places the file (the
    /// session is then over) or calls `put_back_sealing` to leave the session as it was.
    pub async fn seal(&self, id: &str) -> Result<Sealing> {
        let this = self.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            let file = this.path(&id)?;
            let (hasher, size) = this.take(&id)?;
            // Created when missing: a session sealed with no bytes is the empty blob.
            let synced = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .and_then(|f| f.sync_all());
            if let Err(e) = synced {
                this.put_back(&id, hasher, size);
                return Err(Error::io("cannot fsync upload", e));
            }
            Ok(Sealing { file, hasher, size })
        })
        .await
        .map_err(|_| Error::io("upload stopped", io::Error::other("task ended")))?
    }

    pub fn put_back_sealing(&self, id: &str, sealing: Sealing) {
        self.put_back(id, sealing.hasher, sealing.size);
    }

    /// Ends a session: forgets its state and removes its file, if either is still there.
    pub fn discard(&self, id: &str) {
        self.slots().remove(id);
        if let Ok(path) = self.path(id) {
            let _ = fs::remove_file(path);
        }
    }
}

/// One request's appends to a session. Dropping it mid-way (the client went away) keeps what arrived: gathered
/// bytes are handed to the writer if its queue has room, and the session then holds exactly what was written.
pub struct Append {
    feeder: Feeder<u64>,
}

impl Append {
    /// The session's size including what this request has sent so far.
    pub fn size(&self) -> u64 {
        self.feeder.size()
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.feeder.write(chunk).await
    }

    /// Waits until every chunk is in the file; returns the session's size.
    pub async fn finish(mut self) -> Result<u64> {
        self.feeder.finish().await
    }
}

impl Drop for Append {
    fn drop(&mut self) {
        self.feeder.hand_over();
    }
}

/// Appends chunks until the sender is gone, hashing each one written whole. Returns the state for exactly the
/// bytes in the file: a chunk that failed half-way is cut off again.
fn append_chunks(
    mut file: File,
    mut rx: mpsc::Receiver<Run>,
    mut hasher: Hasher,
    mut size: u64,
) -> (Hasher, u64, io::Result<()>) {
    let mut early = EarlySync::start(&file);
    while let Some(run) = rx.blocking_recv() {
        match write_run(&mut file, &run) {
            Ok(written) => early.wrote(written),
            Err(e) => {
                let _ = file.set_len(size);
                return (hasher, size, Err(e));
            }
        }
        for chunk in &run {
            hasher.update(chunk);
            size += chunk.len() as u64;
        }
    }
    (hasher, size, Ok(()))
}

pub(crate) fn rehash(path: &Path, want: Want) -> Result<(Hasher, u64)> {
    let mut hasher = Hasher::new(want);
    let mut size = 0;
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((hasher, 0)),
        Err(e) => return Err(Error::io("cannot open upload file", e)),
    };
    crate::blobs::read_chunks(&mut file, |chunk| {
        hasher.update(chunk);
        size += chunk.len() as u64;
    })
    .map_err(|e| Error::io("cannot read upload file", e))?;
    Ok((hasher, size))
}
