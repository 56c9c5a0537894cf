//! The storage error type. Callers match on the variants that mean something to a client (unknown blob, conflict,
//! too large, digest mismatch); everything else is an internal failure whose detail is logged, never sent.

use crate::digest::Digest;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob {0} is not in the store")]
    BlobUnknown(Digest),
    #[error("content is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("content digest {actual} does not match the expected {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// A write that must create something found it there already (a release version, a user), or a precondition of
    /// the transaction did not hold. The message is fit for the client.
    #[error("{0}")]
    Conflict(String),
    /// A chunk of a resumable upload does not start where the bytes received so far end.
    #[error("the upload has {size} bytes; a chunk must start there")]
    OutOfOrder { size: u64 },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("metadata store: {0}")]
    Meta(#[from] sled::Error),
    #[error(
        "the metadata store in {0} is damaged and cannot be read; restore the data directory from a backup"
    )]
    Unreadable(String),
    #[error("corrupt metadata record in {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
