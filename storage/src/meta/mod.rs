//! The metadata store: the shared model in sled trees, one atomic `apply` of a list of writes, and durable commits.
//!
//! ```text
//! <data>/meta/            sled
//!   repositories  name                     -> RepositoryRecord
//!   packages      repo \0 package          -> Package
//!   versions      repo \0 package \0 ver   -> Version
//!   tags          repo \0 package \0 tag   -> Tag
//!   assets        repo \0 path             -> Asset
//!   kv            repo \0 key              -> bytes
//!   blobs         hex                      -> BlobRecord
//!   gc            hex                      -> queued at (u64 BE)
//!   uploads       id                       -> UploadSession
//!   users         name                     -> User
//!   tokens        id                       -> Token (with the sha256 of its secret)
//!   audit         sled id (u64 BE)         -> AuditEvent
//!   stats         "blobs" | "bytes"        -> u64 BE, kept exact by the transactions that add or remove a blob
//!   pulls         repo \0 package \0 ver   -> u64 BE, when the version was last pulled (to the minute; see
//!                                             `note_pull`), removed with the version
//!   later         hex                      -> Want bits: checksums of the blob still to compute (`later.rs`)
//! ```
//!
//! Records are JSON. sled's own flush only calls `sync_file_range`, which neither flushes the disk cache nor the
//! file size, so a durable commit flushes and then fsyncs sled's log file; concurrent writers share one such
//! flush (group commit). The transaction body, where reference counts and create-only checks live, is in `apply`.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::model::*;

mod apply;
mod blobs;
mod later;
use apply::apply_one;

const TREES: [&str; 15] = [
    "repositories",
    "packages",
    "versions",
    "tags",
    "assets",
    "kv",
    "blobs",
    "gc",
    "uploads",
    "users",
    "tokens",
    "audit",
    "stats",
    "pulls",
    "later",
];
// Indexes into TREES, for the transaction's slice of trees.
const REPOS: usize = 0;
const PACKAGES: usize = 1;
const VERSIONS: usize = 2;
const TAGS: usize = 3;
const ASSETS: usize = 4;
const KV: usize = 5;
const BLOBS: usize = 6;
const GC: usize = 7;
const UPLOADS: usize = 8;
const USERS: usize = 9;
const TOKENS: usize = 10;
const AUDIT: usize = 11;
const STATS: usize = 12;
const PULLS: usize = 13;
const LATER: usize = 14;
/// A pull is written when the one recorded is older than this: pull windows are counted in days, and a version
/// pulled a thousand times a second costs one write a minute.
const PULL_PRECISION: Time = 60;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub created: Time,
    pub updated: Time,
}

pub struct Meta {
    db: sled::Db,
    trees: Vec<Tree>,
    log: Arc<File>,
    applied: AtomicU64,
    flushed: tokio::sync::Mutex<u64>,
}

type TxError = ConflictableTransactionError<Error>;

impl Meta {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Meta> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| open_error(dir, e))?;
        let trees = TREES
            .iter()
            .map(|name| db.open_tree(name))
            .collect::<Result<Vec<_>, _>>()?;
        let log =
            File::open(dir.join("db")).map_err(|e| Error::io("cannot open the metadata log", e))?;
        crate::blobs::sync_dir(dir)?;
        Ok(Meta {
            db,
            trees,
            log: Arc::new(log),
            applied: AtomicU64::new(0),
            flushed: tokio::sync::Mutex::new(0),
        })
    }

    fn tree(&self, index: usize) -> &Tree {
        &self.trees[index]
    }

    /// Applies every write or none, then returns once they are durable.
    pub async fn apply(&self, writes: &[Write], audit: &[AuditEvent]) -> Result<()> {
        self.apply_volatile(writes, audit)?;
        self.durable().await
    }

    /// Applies every write or none, without waiting for durability.
    pub fn apply_volatile(&self, writes: &[Write], audit: &[AuditEvent]) -> Result<()> {
        let trees: Vec<&Tree> = self.trees.iter().collect();
        let result = trees.as_slice().transaction(|t| {
            let now = now();
            for write in writes {
                apply_one(t, write, now)?;
            }
            for event in audit {
                let id = t[AUDIT].generate_id()?;
                put(
                    &t[AUDIT],
                    &id.to_be_bytes(),
                    &AuditEvent {
                        time: now,
                        ..event.clone()
                    },
                )?;
            }
            Ok(())
        });
        flatten(result)?;
        self.applied.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Waits until everything applied so far is on disk. Writers that arrive while a flush runs share the next one.
    pub async fn durable(&self) -> Result<()> {
        let ticket = self.applied.load(Ordering::SeqCst);
        let mut flushed = self.flushed.lock().await;
        if *flushed >= ticket {
            return Ok(());
        }
        let target = self.applied.load(Ordering::SeqCst);
        self.db.flush_async().await?;
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.sync_all())
            .await
            .map_err(|_| {
                Error::io(
                    "metadata fsync stopped",
                    std::io::Error::other("task ended"),
                )
            })?
            .map_err(|e| Error::io("cannot fsync the metadata log", e))?;
        *flushed = target;
        Ok(())
    }

    pub fn repository(&self, name: &str) -> Result<Option<RepositoryRecord>> {
        read(self.tree(REPOS), name.as_bytes(), "repositories")
    }

    pub fn package(&self, repo: &str, package: &str) -> Result<Option<Package>> {
        read(self.tree(PACKAGES), &key(&[repo, package]), "packages")
    }

    pub fn version(&self, repo: &str, package: &str, version: &str) -> Result<Option<Version>> {
        read(
            self.tree(VERSIONS),
            &key(&[repo, package, version]),
            "versions",
        )
    }

    /// A package's versions in key order, from after `start_after`, at most `limit`.
    pub fn versions(
        &self,
        repo: &str,
        package: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Version)>> {
        self.version_records(repo, package, start_after, limit)
    }

    /// `versions`, each record decoded as a `T` that picks out only the fields its caller reads: a scan over many
    /// versions (retention's) then builds no metadata it throws away.
    pub fn version_records<T: DeserializeOwned>(
        &self,
        repo: &str,
        package: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T)>> {
        self.scan_named(VERSIONS, &[repo, package], start_after, limit)
    }

    pub fn tag(&self, repo: &str, package: &str, tag: &str) -> Result<Option<Tag>> {
        read(self.tree(TAGS), &key(&[repo, package, tag]), "tags")
    }

    pub fn tags(
        &self,
        repo: &str,
        package: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Tag)>> {
        self.scan_named(TAGS, &[repo, package], start_after, limit)
    }

    /// Records that a version was pulled at `at`. Pulls are advisory (retention's pull windows), so this writes
    /// straight to the tree, outside any transaction and without a flush: a crash may lose the last minute of them.
    pub fn note_pull(&self, repo: &str, package: &str, version: &str, at: Time) -> Result<()> {
        let k = key(&[repo, package, version]);
        let tree = self.tree(PULLS);
        if self
            .pulled_at(tree, &k)?
            .is_none_or(|last| last + PULL_PRECISION <= at)
        {
            tree.insert(k, &at.to_be_bytes())?;
        }
        Ok(())
    }

    /// When a version was last pulled, if ever.
    pub fn pulled(&self, repo: &str, package: &str, version: &str) -> Result<Option<Time>> {
        self.pulled_at(self.tree(PULLS), &key(&[repo, package, version]))
    }

    /// When each pulled version of a package was last pulled: one scan, for retention over the whole package.
    pub fn pulls(
        &self,
        repo: &str,
        package: &str,
    ) -> Result<std::collections::HashMap<String, Time>> {
        let mut prefix = key(&[repo, package]);
        prefix.push(0);
        let mut pulls = std::collections::HashMap::new();
        for entry in self.tree(PULLS).scan_prefix(&prefix) {
            let (k, v) = entry?;
            let version = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            pulls.insert(version, be_u64(&v));
        }
        Ok(pulls)
    }

    fn pulled_at(&self, tree: &Tree, k: &[u8]) -> Result<Option<Time>> {
        Ok(tree
            .get(k)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(Time::from_be_bytes))
    }

    pub fn asset(&self, repo: &str, path: &str) -> Result<Option<Asset>> {
        read(self.tree(ASSETS), &key(&[repo, path]), "assets")
    }

    pub fn assets(
        &self,
        repo: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Asset)>> {
        self.scan_prefix(ASSETS, repo, prefix, start_after, limit, |v| {
            decode(v, "assets")
        })
    }

    pub fn packages(
        &self,
        repo: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Package)>> {
        self.scan_named(PACKAGES, &[repo], start_after, limit)
    }

    pub fn kv(&self, repo: &str, key_: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(KV).get(key(&[repo, key_]))?.map(|v| v.to_vec()))
    }

    /// Format-private entries whose key starts with `prefix`, in key order, from after `start_after`.
    pub fn kvs(
        &self,
        repo: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.scan_prefix(KV, repo, prefix, start_after, limit, |v| Ok(v.to_vec()))
    }

    pub fn upload(&self, id: &str) -> Result<Option<UploadSession>> {
        read(self.tree(UPLOADS), id.as_bytes(), "uploads")
    }

    pub fn uploads(&self) -> impl Iterator<Item = Result<UploadSession>> + '_ {
        self.tree(UPLOADS).iter().map(|e| decode(&e?.1, "uploads"))
    }

    pub fn user(&self, name: &str) -> Result<Option<User>> {
        read(self.tree(USERS), name.as_bytes(), "users")
    }

    pub fn users(&self) -> Result<Vec<User>> {
        self.tree(USERS)
            .iter()
            .map(|e| decode(&e?.1, "users"))
            .collect()
    }

    pub fn token(&self, id: &str) -> Result<Option<Token>> {
        read(self.tree(TOKENS), id.as_bytes(), "tokens")
    }

    /// Every token. The tree holds one entry per token a person made: small.
    pub fn tokens(&self) -> Result<Vec<Token>> {
        self.tree(TOKENS)
            .iter()
            .map(|e| decode(&e?.1, "tokens"))
            .collect()
    }

    /// The newest audit events first, at most `limit`.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditEvent>> {
        self.tree(AUDIT)
            .iter()
            .rev()
            .take(limit)
            .map(|e| decode(&e?.1, "audit"))
            .collect()
    }

    /// Entries under `parts` (joined by \0), named by the rest of their key.
    fn scan_named<T: DeserializeOwned>(
        &self,
        tree: usize,
        parts: &[&str],
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T)>> {
        let mut prefix = key(parts);
        prefix.push(0);
        let start = match start_after {
            Some(after) => [prefix.as_slice(), after.as_bytes(), &[0]].concat(),
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for entry in self.tree(tree).range(start..) {
            let (k, v) = entry?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            // Deeper keys (a version under a package when listing packages) share the prefix: skip them.
            if name.contains('\0') {
                continue;
            }
            out.push((name, decode(&v, TREES[tree])?));
        }
        Ok(out)
    }

    fn scan_prefix<T>(
        &self,
        tree: usize,
        repo: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        value: impl Fn(&[u8]) -> Result<T>,
    ) -> Result<Vec<(String, T)>> {
        let base = key(&[repo, ""]);
        let full_prefix = [base.as_slice(), prefix.as_bytes()].concat();
        let start = match start_after {
            Some(after) => [base.as_slice(), after.as_bytes(), &[0]].concat(),
            None => full_prefix.clone(),
        };
        let mut out = Vec::new();
        for entry in self.tree(tree).range(start.max(full_prefix.clone())..) {
            let (k, v) = entry?;
            if !k.starts_with(&full_prefix) || out.len() >= limit {
                break;
            }
            out.push((
                String::from_utf8_lossy(&k[base.len()..]).into_owned(),
                value(&v)?,
            ));
        }
        Ok(out)
    }
}

fn digest_key(key: &[u8], tree: &'static str) -> Result<Digest> {
    std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| Error::Corrupt {
            tree,
            detail: "key is not a digest".into(),
        })
}

/// Counters and times are stored as 8 big-endian bytes; anything else reads as 0.
fn be_u64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]))
}

fn flatten<T>(result: Result<T, TransactionError<Error>>) -> Result<T> {
    result.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => Error::Meta(e),
    })
}

/// `repo \0 package \0 version`: NUL never appears in a validated name, so keys of one level sort together.
pub(crate) fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

fn abort<T>(e: Error) -> Result<T, TxError> {
    Err(ConflictableTransactionError::Abort(e))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("model records serialize")
}

fn decode<T: DeserializeOwned>(bytes: &[u8], tree: &'static str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        tree,
        detail: e.to_string(),
    })
}

fn read<T: DeserializeOwned>(tree: &Tree, key: &[u8], name: &'static str) -> Result<Option<T>> {
    tree.get(key)?.map(|v| decode(&v, name)).transpose()
}

fn get<T: DeserializeOwned>(
    t: &TransactionalTree,
    key: &[u8],
    name: &'static str,
) -> Result<Option<T>, TxError> {
    decode_tx(t.get(key)?, name)
}

fn take<T: DeserializeOwned>(
    t: &TransactionalTree,
    key: &[u8],
    name: &'static str,
) -> Result<Option<T>, TxError> {
    decode_tx(t.remove(key)?, name)
}

fn decode_tx<T: DeserializeOwned>(
    value: Option<sled::IVec>,
    name: &'static str,
) -> Result<Option<T>, TxError> {
    value
        .map(|v| decode(&v, name))
        .transpose()
        .map_err(ConflictableTransactionError::Abort)
}

fn put<T: Serialize>(t: &TransactionalTree, key: &[u8], value: &T) -> Result<(), TxError> {
    t.insert(key, encode(value))?;
    Ok(())
}

/// sled reports a store it cannot read in several ways; all of them mean the same to an operator.
fn open_error(dir: &Path, e: sled::Error) -> Error {
    match e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => Error::io(
            "the data directory is in use by another wharf process (stop it first)",
            std::io::Error::other("lock held"),
        ),
        sled::Error::Io(io) => Error::io("cannot open the metadata store", io),
        sled::Error::Corruption { .. }
        | sled::Error::ReportableBug(_)
        | sled::Error::Unsupported(_) => Error::Unreadable(dir.display().to_string()),
        other => Error::Meta(other),
    }
}
