//! The shared model every format maps onto, and the writes that change it.
//!
//! ```text
//! repository ─┬─ package ── version (immutable content: blobs + format metadata)
//!             │        └─── tag ──> version          (Docker tags, npm dist-tags: movable names)
//!             ├─ asset (a path ──> blob)             (files as clients address them: Maven, PyPI, generic)
//!             └─ kv (format-private documents)
//! blob (size, checksums, reference count) <── versions and assets refer to blobs by digest
//! users, tokens, upload sessions, audit events
//! ```
//!
//! A blob's reference count is the number of version blob entries and assets naming it; at zero it joins the GC
//! queue. Times are Unix seconds.

use serde::{Deserialize, Serialize};

use crate::digest::{Checksums, Digest};

pub type Time = u64;

/// Unix seconds. With `WHARF_CLOCK_FILE` set (the test clock: retention's tests push versions "days ago"), the
/// time is read from that file on every call, falling back to the system clock while it holds no number.
pub fn now() -> Time {
    static CLOCK: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let clock = CLOCK.get_or_init(|| std::env::var_os("WHARF_CLOCK_FILE").map(Into::into));
    if let Some(secs) = clock
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| text.trim().parse().ok())
    {
        return secs;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryRecord {
    pub name: String,
    pub format: String,
    pub created: Time,
    /// Patterns (`*` any run, `?` one character) of the tags and versions that can never be overwritten, moved or
    /// deleted; `*` freezes all. Kept here, not in the configuration alone, so the storage transaction enforces it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub immutable: Vec<String>,
}

impl RepositoryRecord {
    pub fn is_immutable(&self, name: &str) -> bool {
        self.immutable.iter().any(|pattern| glob(pattern, name))
    }
}

/// Shell-style matching of `*` and `?`, without character classes: what tag patterns need.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic greedy matcher: remember the last `*` and where it started matching, and retry from there.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        for (pattern, name, matched) in [
            ("v*", "v1.0", true),
            ("v*", "1.0", false),
            ("release-*", "release-", true),
            ("*", "anything", true),
            ("1.?.0", "1.2.0", true),
            ("1.?.0", "1.10.0", false),
            ("*-rc*", "2.0-rc1", true),
            ("latest", "latest", true),
            ("latest", "latest2", false),
        ] {
            assert_eq!(glob(pattern, name), matched, "{pattern} {name}");
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Blobs this version keeps alive.
    pub blobs: Vec<Digest>,
    /// Format metadata (a manifest's media type, a package.json), opaque to storage.
    #[serde(default)]
    pub metadata: serde_json::Value,
    pub created: Time,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub version: String,
    pub updated: Time,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    pub digest: Digest,
    pub size: u64,
    /// The package and version the file belongs to, when the format knows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub created: Time,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    #[serde(default)]
    pub checksums: Checksums,
    /// Version blob entries and assets that name this blob.
    pub refs: u64,
    pub created: Time,
    /// Last ingest of these bytes: GC's grace period runs from here, so a push that re-uploads a blob queued for
    /// collection keeps it.
    pub touched: Time,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    pub id: String,
    pub repository: String,
    pub created: Time,
    pub updated: Time,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    pub admin: bool,
    pub created: Time,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Public handle, also the first part of the secret: lookups, listing and revoking go by it.
    pub id: String,
    pub user: String,
    pub name: String,
    pub created: Time,
    /// Hex sha256 of the whole secret; the secret itself is never stored.
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    #[serde(default)]
    pub time: Time,
    /// Who: a user name, or "anonymous" / "system".
    pub principal: String,
    /// What: "put-version", "delete-tag", "user-add", ...
    pub action: String,
    /// On what: "npm/left-pad@1.0.0".
    pub target: String,
}

/// One change to the model. A list of writes is applied atomically: all of them or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    PutRepository(RepositoryRecord),
    /// `replace: false` refuses to overwrite an existing version (release immutability), checked in the transaction.
    PutVersion {
        repo: String,
        package: String,
        version: String,
        record: Version,
        replace: bool,
    },
    DeleteVersion {
        repo: String,
        package: String,
        version: String,
    },
    /// Forgets when an item that is not a version (a Maven SNAPSHOT build) was last pulled, as its removal goes;
    /// a version's pull record goes with the version.
    DeletePull {
        repo: String,
        package: String,
        item: String,
    },
    PutTag {
        repo: String,
        package: String,
        tag: String,
        version: String,
    },
    DeleteTag {
        repo: String,
        package: String,
        tag: String,
    },
    /// `replace: false` refuses to overwrite an existing asset at the same path.
    PutAsset {
        repo: String,
        path: String,
        asset: Asset,
        replace: bool,
    },
    DeleteAsset {
        repo: String,
        path: String,
    },
    PutKv {
        repo: String,
        key: String,
        value: Vec<u8>,
    },
    DeleteKv {
        repo: String,
        key: String,
    },
    PutUpload(UploadSession),
    DeleteUpload {
        id: String,
    },
    /// `replace: false` is `user add`: it fails when the name is taken.
    PutUser {
        user: User,
        replace: bool,
    },
    DeleteUser {
        name: String,
    },
    PutToken(Token),
    DeleteToken {
        id: String,
    },
}
