//! `docker`: the OCI Distribution Specification v1.1 registry (Docker Registry HTTP API v2), mounted at
//! `/v2/<repo>/<image>/…` by the host.
//!
//! How it maps onto the shared model:
//!
//! ```text
//! image (`app`, `team/app`)     package
//! manifest                      version named by its digest; its blobs: the manifest bytes (first), config, layers
//! tag                           tag -> manifest digest
//! kv  blob:<image>@<digest>     the blob was pushed to (or mounted into) this image, under the client's digest
//!                               (sha256, or sha512 naming a sha256-addressed blob): only linked blobs are served
//! kv  ref:<image>@<subject>@<m> manifest m names subject in its `subject`: the referrers API reads these
//! kv  (store-wide) oci-sha512:<hex>  sha256 of a blob uploaded under a sha512 digest, for source-less mounts
//! upload session                Write::PutUpload, bytes appended by the host (Plan::Append, Plan::Seal)
//! ```
//!
//! So GC counts a layer as long as one manifest names it, deleting a tag leaves the manifest, and deleting a
//! manifest removes its tags.

mod blobs;
mod catalog;
mod endpoint;
mod manifests;

use wharf_storage::{BlobInfo, Digest, Store, Write};

use crate::promote::{self, Promotion};
use crate::{Access, Commit, Context, Format, Plan, Problem, RequestHead, Response};
pub use catalog::catalog;
use endpoint::{Endpoint, OciDigest, Request};

pub struct Oci;

/// The spec's error codes.
pub mod code {
    pub const BLOB_UNKNOWN: &str = "BLOB_UNKNOWN";
    pub const BLOB_UPLOAD_INVALID: &str = "BLOB_UPLOAD_INVALID";
    pub const BLOB_UPLOAD_UNKNOWN: &str = "BLOB_UPLOAD_UNKNOWN";
    pub const DIGEST_INVALID: &str = "DIGEST_INVALID";
    pub const MANIFEST_BLOB_UNKNOWN: &str = "MANIFEST_BLOB_UNKNOWN";
    pub const MANIFEST_INVALID: &str = "MANIFEST_INVALID";
    pub const MANIFEST_UNKNOWN: &str = "MANIFEST_UNKNOWN";
    pub const NAME_INVALID: &str = "NAME_INVALID";
    pub const NAME_UNKNOWN: &str = "NAME_UNKNOWN";
    pub const SIZE_INVALID: &str = "SIZE_INVALID";
    pub const TAG_INVALID: &str = "TAG_INVALID";
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    pub const DENIED: &str = "DENIED";
    pub const UNSUPPORTED: &str = "UNSUPPORTED";
    pub const PAGINATION_NUMBER_INVALID: &str = "PAGINATION_NUMBER_INVALID";
    pub const UNKNOWN: &str = "UNKNOWN";

    pub const ALL: [&str; 16] = [
        BLOB_UNKNOWN,
        BLOB_UPLOAD_INVALID,
        BLOB_UPLOAD_UNKNOWN,
        DIGEST_INVALID,
        MANIFEST_BLOB_UNKNOWN,
        MANIFEST_INVALID,
        MANIFEST_UNKNOWN,
        NAME_INVALID,
        NAME_UNKNOWN,
        SIZE_INVALID,
        TAG_INVALID,
        UNAUTHORIZED,
        DENIED,
        UNSUPPORTED,
        PAGINATION_NUMBER_INVALID,
        UNKNOWN,
    ];
}

pub fn oci(status: u16, code: &str, message: impl Into<String>) -> Problem {
    Problem::new(status, code, message)
}

/// The spec's error body, for failures the host meets before a repository is known (an unknown repository).
pub fn error_response(problem: &Problem) -> Response {
    let code = if code::ALL.contains(&problem.code.as_str()) {
        problem.code.as_str()
    } else {
        match problem.status {
            401 => code::UNAUTHORIZED,
            403 | 409 => code::DENIED,
            404 => code::NAME_UNKNOWN,
            413 => code::SIZE_INVALID,
            416 => code::BLOB_UPLOAD_INVALID,
            400..=499 => code::UNSUPPORTED,
            _ => code::UNKNOWN,
        }
    };
    let body = serde_json::json!({
        "errors": [{ "code": code, "message": problem.message, "detail": null }]
    });
    Response::json(problem.status, &body)
}

/// `/v2/<repo>/<image>`: the prefix of every Location this format sends.
fn name_path(head: &RequestHead, image: &str) -> String {
    format!("/v2/{}/{image}", head.repository)
}

fn link_key(image: &str, digest: &OciDigest) -> String {
    format!("blob:{image}@{digest}")
}

/// The store's (sha256) digest of a blob pushed to or mounted into `repo/image` under `digest`, if it is still in
/// the store.
fn linked(
    store: &Store,
    repo: &str,
    image: &str,
    digest: &OciDigest,
) -> Result<Option<Digest>, Problem> {
    let Some(value) = store.meta().kv(repo, &link_key(image, digest))? else {
        return Ok(None);
    };
    let stored = match digest.sha256() {
        Some(d) => d,
        None => std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Problem::internal(format!("link of {digest} names no blob")))?,
    };
    Ok(store.blob(&stored)?.map(|_| stored))
}

/// The writes that make a promoted manifest pullable in the target: the version and its tags, a link in the
/// target image for every blob it names, and, for a referrer, its entry in its subject's referrers. An image index
/// brings the manifests it lists (versions of the same image) along, with their links.
fn promote(ctx: &Context<'_>, p: &Promotion<'_>) -> Result<Vec<Write>, Problem> {
    let (mut writes, record) = promote::copy_version(ctx, p)?;
    writes.extend(manifests::promoted_referrer(ctx, p, &record)?);
    let mut blobs = record.blobs.clone();
    for child in manifests::children(&record) {
        let (copied, platform) = promote::copy_version(
            ctx,
            &Promotion {
                version: &child,
                ..*p
            },
        )?;
        writes.extend(copied);
        blobs.extend(platform.blobs);
    }
    blobs.sort();
    blobs.dedup();
    writes.extend(blobs.into_iter().map(|digest| Write::PutKv {
        repo: p.to.into(),
        key: link_key(p.package, &OciDigest::Sha256(digest)),
        value: digest.to_string().into_bytes(),
    }));
    Ok(writes)
}

impl Format for Oci {
    fn name(&self) -> &str {
        "docker"
    }

    fn promote(&self, ctx: &Context<'_>, p: &Promotion<'_>) -> Result<Vec<Write>, Problem> {
        promote(ctx, p)
    }

    fn remove_version(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        image: &str,
        name: &str,
    ) -> Result<Vec<Write>, Problem> {
        let version = ctx
            .store
            .meta()
            .version(repo, image, name)?
            .ok_or_else(|| Problem::not_found(format!("{image}@{name} not found")))?;
        manifests::removal(ctx, repo, image, name, &version)
    }

    fn retention_items(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        image: &str,
    ) -> Result<Vec<crate::retention::Item>, Problem> {
        manifests::retention_items(ctx, repo, image)
    }

    fn expire(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        item: &crate::retention::Item,
    ) -> Result<Vec<Write>, Problem> {
        manifests::expire(ctx, repo, item)
    }

    fn classify(&self, head: &RequestHead) -> Result<Access, Problem> {
        Ok(Request::parse(head)?.access())
    }

    fn handle(&self, ctx: &Context<'_>, head: &RequestHead) -> Result<Plan, Problem> {
        let request = Request::parse(head)?;
        use Endpoint as E;
        match &request.endpoint {
            E::GetManifest(_)
            | E::PutManifest(..)
            | E::DeleteManifest(_)
            | E::Tags { .. }
            | E::Referrers { .. } => manifests::handle(ctx, head, &request),
            _ => blobs::handle(ctx, head, &request),
        }
    }

    fn commit_ingested(
        &self,
        _ctx: &Context<'_>,
        head: &RequestHead,
        blob: &BlobInfo,
    ) -> Result<Commit, Problem> {
        blobs::commit_ingested(head, &Request::parse(head)?, blob)
    }

    fn commit_buffered(
        &self,
        ctx: &Context<'_>,
        head: &RequestHead,
        body: &[u8],
    ) -> Result<Commit, Problem> {
        let request = Request::parse(head)?;
        match request.endpoint {
            Endpoint::PutManifest(..) | Endpoint::DeleteManifest(_) => {
                manifests::commit(ctx, head, &request, body)
            }
            _ => blobs::commit_buffered(ctx, head, &request),
        }
    }

    fn commit_appended(
        &self,
        _ctx: &Context<'_>,
        head: &RequestHead,
        size: u64,
    ) -> Result<Commit, Problem> {
        let request = Request::parse(head)?;
        let Endpoint::PatchUpload(id) = &request.endpoint else {
            return Err(Problem::internal("append outside a PATCH"));
        };
        Ok(Commit::new(
            Vec::new(),
            blobs::upload_response(202, &name_path(head, &request.image), id, size),
        ))
    }

    fn render(&self, problem: &Problem) -> Response {
        error_response(problem)
    }
}
