//! Wharf's storage: content-addressed blob files ([`blobs`]), the metadata index on sled with the shared model
//! ([`meta`], [`model`]), and [`Store`], which joins them under the write protocol "bytes durable, then metadata
//! durable, then acknowledge". [`suite`] is the test suite every backend must pass.
//!
//! Nothing here knows HTTP or any one format's rules.

pub mod blobs;
pub mod digest;
pub mod error;
mod feed;
pub mod meta;
pub mod model;
pub mod store;
pub mod suite;
mod uploads;

pub use digest::{Checksums, Digest, InvalidDigest, Want};
pub use error::{Error, Result};
pub use model::*;
pub use store::{BlobInfo, Options, Reconciled, Scrubbed, Store};
pub use uploads::Append;

/// 128 random bits, hex: names for temp files and upload sessions that no client can guess.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}
