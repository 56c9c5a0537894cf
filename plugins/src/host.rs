//! What a plugin may call on the host (the `store` interface): reads of the request's repository and of the blob
//! store, each bounded. One `State` per call; it holds the store, the repository, the WASI context (no files, no
//! network, no environment) and the memory limiter.

use std::io::{Read, Seek, SeekFrom};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::wharf::format::store::{self, ArchiveKind, ReadError};
use crate::bindings::wharf::format::types as t;
use crate::convert;

/// The most bytes one host read returns, and the most entries one listing does.
pub const MAX_READ: u32 = 4 * 1024 * 1024;
pub const MAX_LIST: u32 = 10_000;
/// The most a `archive-member` read of a tar.gz inflates (Helm's own limit for a whole chart).
pub const MAX_UNPACKED: u64 = 100 * 1024 * 1024;

pub struct State {
    /// None for the calls that read nothing (describe, classify, render): every read then finds nothing.
    pub store: Option<wharf_storage::Store>,
    pub repo: String,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: crate::MemoryLimit,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl t::Host for State {}

impl State {
    fn blob_path(&self, digest: &str) -> Result<std::path::PathBuf, ReadError> {
        let store = self.store.as_ref().ok_or(ReadError::NotFound)?;
        let digest = digest
            .parse::<wharf_storage::Digest>()
            .map_err(|_| ReadError::NotFound)?;
        match store.blob(&digest) {
            Ok(Some(_)) => Ok(store.blob_path(&digest)),
            _ => Err(ReadError::NotFound),
        }
    }

    fn meta(&self) -> Option<&wharf_storage::meta::Meta> {
        self.store.as_ref().map(|s| s.meta())
    }

    /// A listing of this repository, empty when there is no store or the scan fails: a plugin sees nothing, never
    /// the host's error.
    fn list<T>(
        &self,
        scan: impl FnOnce(&wharf_storage::meta::Meta, &str) -> wharf_storage::Result<Vec<T>>,
    ) -> Vec<T> {
        self.meta()
            .and_then(|meta| scan(meta, &self.repo).ok())
            .unwrap_or_default()
    }
}

fn limit(n: u32) -> usize {
    n.min(MAX_LIST) as usize
}

impl store::Host for State {
    fn get_blob(&mut self, digest: String) -> Option<t::BlobInfo> {
        let digest = digest.parse::<wharf_storage::Digest>().ok()?;
        let store = self.store.as_ref()?;
        store.blob(&digest).ok()?.map(|b| convert::blob(&b))
    }

    fn read_range(&mut self, digest: String, offset: u64, len: u32) -> Result<Vec<u8>, ReadError> {
        let path = self.blob_path(&digest)?;
        let mut file = std::fs::File::open(path).map_err(|_| ReadError::NotFound)?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| ReadError::Damaged(e.to_string()))?;
        let mut bytes = Vec::new();
        file.take(u64::from(len.min(MAX_READ)))
            .read_to_end(&mut bytes)
            .map_err(|e| ReadError::Damaged(e.to_string()))?;
        Ok(bytes)
    }

    fn archive_member(
        &mut self,
        digest: String,
        kind: ArchiveKind,
        path_suffix: String,
        max_len: u32,
    ) -> Result<Option<(String, Vec<u8>)>, ReadError> {
        use wharf_formats::archive::{ArchiveError, tar_gz_member, zip_member};
        let path = self.blob_path(&digest)?;
        let max = u64::from(max_len.min(MAX_READ));
        let pick = |name: &str| name.ends_with(path_suffix.as_str());
        let found = match kind {
            ArchiveKind::Zip => zip_member(&path, pick, max),
            ArchiveKind::TarGz => {
                let file = std::fs::File::open(&path).map_err(|_| ReadError::NotFound)?;
                tar_gz_member(std::io::BufReader::new(file), pick, max, MAX_UNPACKED)
            }
        };
        found.map_err(|e| match e {
            ArchiveError::TooLarge { .. } => ReadError::TooLarge,
            other => ReadError::Damaged(other.to_string()),
        })
    }

    fn get_kv(&mut self, key: String) -> Option<Vec<u8>> {
        self.meta()?.kv(&self.repo, &key).ok()?
    }

    fn list_kv(
        &mut self,
        prefix: String,
        start_after: Option<String>,
        n: u32,
    ) -> Vec<(String, Vec<u8>)> {
        self.list(|meta, repo| meta.kvs(repo, &prefix, start_after.as_deref(), limit(n)))
    }

    fn get_asset(&mut self, path: String) -> Option<t::Asset> {
        let asset = self.meta()?.asset(&self.repo, &path).ok()??;
        Some(convert::asset_out(&asset))
    }

    fn list_assets(
        &mut self,
        prefix: String,
        start_after: Option<String>,
        n: u32,
    ) -> Vec<(String, t::Asset)> {
        self.list(|meta, repo| meta.assets(repo, &prefix, start_after.as_deref(), limit(n)))
            .iter()
            .map(|(path, asset)| (path.clone(), convert::asset_out(asset)))
            .collect()
    }

    fn get_version(&mut self, package: String, version: String) -> Option<t::Version> {
        let v = self
            .meta()?
            .version(&self.repo, &package, &version)
            .ok()??;
        Some(convert::version_out(&v))
    }

    fn list_versions(
        &mut self,
        package: String,
        start_after: Option<String>,
        n: u32,
    ) -> Vec<(String, t::Version)> {
        self.list(|meta, repo| meta.versions(repo, &package, start_after.as_deref(), limit(n)))
            .iter()
            .map(|(name, v)| (name.clone(), convert::version_out(v)))
            .collect()
    }

    fn get_tag(&mut self, package: String, tag: String) -> Option<String> {
        Some(self.meta()?.tag(&self.repo, &package, &tag).ok()??.version)
    }

    fn list_packages(&mut self, start_after: Option<String>, n: u32) -> Vec<String> {
        self.list(|meta, repo| meta.packages(repo, start_after.as_deref(), limit(n)))
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    fn now(&mut self) -> u64 {
        wharf_storage::now()
    }

    fn note_pull(&mut self, package: String, version: String) {
        // Advisory, as for the built-in formats: a pull that cannot be recorded never fails the download.
        if let Some(meta) = self.meta() {
            let _ = meta.note_pull(&self.repo, &package, &version, wharf_storage::now());
        }
    }
}
