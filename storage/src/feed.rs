//! The hand-off between a request and the thread that writes its body to a file: chunks are counted against a
//! limit, gathered into runs and queued to the writer (`Feeder`), written with one vectored write per run
//! (`write_run`), and synced in the background while they arrive (`EarlySync`). Used by blob ingests and by upload
//! session appends.

use std::fs::File;
use std::io::{self, Write as _};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Runs queued between the request and the writer thread: enough to keep both busy, small enough to bound memory
/// per upload (QUEUE + 1 runs).
const QUEUE: usize = 4;
/// Network reads arrive in pieces of a few KiB; the writer gets them gathered into runs of this size, written with
/// one vectored write, so a GiB costs a thousand writes and wake-ups instead of a hundred thousand, and no copy.
const WRITE_RUN: usize = 1024 * 1024;
/// At most this many pieces per run: well under the kernel's limit of 1024 per vectored write.
const RUN_PARTS: usize = 512;

/// Chunks on their way to a writer thread, handed over in runs.
pub type Run = Vec<Bytes>;

#[derive(Default)]
struct Gather {
    parts: Run,
    len: usize,
}

impl Gather {
    /// Adds a chunk; returns a run once enough has gathered.
    pub fn push(&mut self, chunk: Bytes) -> Option<Run> {
        if chunk.is_empty() {
            return None;
        }
        self.len += chunk.len();
        self.parts.push(chunk);
        (self.len >= WRITE_RUN || self.parts.len() >= RUN_PARTS).then(|| self.take())
    }

    pub fn take(&mut self) -> Run {
        self.len = 0;
        std::mem::take(&mut self.parts)
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

/// Writes a whole run; returns its length.
pub fn write_run(file: &mut File, run: &[Bytes]) -> io::Result<usize> {
    let total = run.iter().map(Bytes::len).sum();
    let mut slices: Vec<io::IoSlice<'_>> = run.iter().map(|b| io::IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = file.write_vectored(rest)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(total)
}

/// The request's side of a writer thread that ends with a `T`.
pub struct Feeder<T> {
    chunks: Option<mpsc::Sender<Run>>,
    done: Option<oneshot::Receiver<io::Result<T>>>,
    pending: Gather,
    size: u64,
    limit: u64,
}

impl<T: Send + 'static> Feeder<T> {
    /// Starts `writer` on a thread of its own, fed by this feeder. `size` counts bytes already there (a resumed
    /// upload); `limit` bounds the total.
    pub fn start(
        name: &str,
        size: u64,
        limit: u64,
        writer: impl FnOnce(mpsc::Receiver<Run>) -> io::Result<T> + Send + 'static,
    ) -> Result<Feeder<T>> {
        let (chunks, rx) = mpsc::channel(QUEUE);
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _ = done_tx.send(writer(rx));
            })
            .map_err(|e| Error::io("cannot start a writer thread", e))?;
        Ok(Feeder {
            chunks: Some(chunks),
            done: Some(done),
            pending: Gather::default(),
            size,
            limit,
        })
    }
}

impl<T> Feeder<T> {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(Error::TooLarge { limit: self.limit });
        }
        match self.pending.push(chunk) {
            Some(run) => self.send(run).await,
            None => Ok(()),
        }
    }

    async fn send(&mut self, run: Run) -> Result<()> {
        let sender = self.chunks.as_ref().expect("write after finish");
        if sender.send(run).await.is_err() {
            return Err(self.wait().await.err().unwrap_or_else(stopped));
        }
        Ok(())
    }

    /// Hands over what is gathered, closes the queue and waits for the writer's result.
    pub async fn finish(&mut self) -> Result<T> {
        if !self.pending.is_empty() {
            let rest = self.pending.take();
            self.send(rest).await?;
        }
        drop(self.chunks.take());
        self.wait().await
    }

    async fn wait(&mut self) -> Result<T> {
        match self.done.take() {
            Some(rx) => match rx.await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(Error::io("cannot write upload", e)),
                Err(_) => Err(stopped()),
            },
            None => Err(stopped()),
        }
    }

    /// For a request that ends early: hands the gathered bytes to the writer if its queue has room.
    pub fn hand_over(&mut self) {
        if let Some(sender) = &self.chunks
            && !self.pending.is_empty()
        {
            let _ = sender.try_send(self.pending.take());
        }
    }
}

fn stopped() -> Error {
    Error::io(
        "upload writer stopped",
        io::Error::other("writer thread ended"),
    )
}

/// Bytes written between early syncs of an upload.
const SYNC_EVERY: usize = 32 * 1024 * 1024;

/// Keeps the disk busy while a body is still arriving: the kernel would otherwise hold a GiB dirty until the final
/// fsync and start writing only then, after the network transfer instead of during it. A helper thread fdatasyncs
/// a clone of the file every `SYNC_EVERY` bytes, so the writer never waits for it. Its errors do not matter: the
/// final fsync is the one that counts.
pub struct EarlySync {
    kick: Option<std::sync::mpsc::SyncSender<()>>,
    helper: Option<std::thread::JoinHandle<()>>,
    unsynced: usize,
}

impl EarlySync {
    pub fn start(file: &File) -> EarlySync {
        let Ok(clone) = file.try_clone() else {
            return EarlySync {
                kick: None,
                helper: None,
                unsynced: 0,
            };
        };
        let (kick, kicked) = std::sync::mpsc::sync_channel::<()>(1);
        let helper = std::thread::Builder::new()
            .name("wharf-sync".into())
            .spawn(move || {
                while kicked.recv().is_ok() {
                    let _ = clone.sync_data();
                }
            })
            .ok();
        EarlySync {
            kick: helper.as_ref().map(|_| kick),
            helper,
            unsynced: 0,
        }
    }

    pub fn wrote(&mut self, bytes: usize) {
        self.unsynced += bytes;
        if self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            if let Some(kick) = &self.kick {
                // Busy syncing already: the next kick comes soon enough.
                let _ = kick.try_send(());
            }
        }
    }
}

impl Drop for EarlySync {
    fn drop(&mut self) {
        drop(self.kick.take());
        if let Some(helper) = self.helper.take() {
            let _ = helper.join();
        }
    }
}
