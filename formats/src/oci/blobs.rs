//! Blobs and blob uploads: GET/HEAD/DELETE of a blob, and every way the spec lets a client upload one: monolithic
//! (`POST ?digest=`), POST then PUT, chunked PATCHes with `Content-Range`, a streamed PATCH without it (the classic
//! docker engine), status, cancel, and cross-repository mount.

use wharf_storage::{BlobInfo, Digest, UploadSession, Want, Write, now, random_id};

use super::endpoint::{Endpoint, OciDigest, Request, upload_unknown};
use super::{code, link_key, linked, name_path, oci};
use crate::{Commit, Context, Plan, Problem, RequestHead, Response};

pub fn handle(ctx: &Context<'_>, head: &RequestHead, request: &Request) -> Result<Plan, Problem> {
    let image = request.image.as_str();
    let repo = head.repository.as_str();
    match &request.endpoint {
        Endpoint::GetBlob(digest) => {
            let stored =
                linked(ctx.store, repo, image, digest)?.ok_or_else(|| blob_unknown(digest))?;
            Ok(Plan::Serve {
                digest: stored,
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/octet-stream".into()),
                    ("docker-content-digest".into(), digest.to_string()),
                ],
            })
        }
        Endpoint::DeleteBlob(digest) => {
            if linked(ctx.store, repo, image, digest)?.is_none() {
                return Err(blob_unknown(digest));
            }
            Ok(Plan::Buffer(0))
        }
        Endpoint::StartUpload {
            digest: Some(digest),
            mount: None,
            ..
        } => Ok(Plan::Ingest {
            expected: digest.sha256(),
            max_size: ctx.max_upload,
            want: want(digest),
            later: Want::NONE,
        }),
        Endpoint::StartUpload { .. } => Ok(Plan::Buffer(0)),
        Endpoint::UploadStatus(id) => {
            session(ctx, head, image, id)?;
            let size = ctx.store.upload_size(id)?;
            Ok(Plan::Respond(upload_response(
                204,
                &name_path(head, image),
                id,
                size,
            )))
        }
        Endpoint::PatchUpload(id) => {
            session(ctx, head, image, id)?;
            let offset = in_order(ctx, head, image, id)?;
            Ok(Plan::Append {
                session: id.clone(),
                offset,
                max_size: ctx.max_upload,
            })
        }
        Endpoint::FinishUpload { id, digest } => {
            session(ctx, head, image, id)?;
            let offset = in_order(ctx, head, image, id)?;
            if ctx.store.upload_size(id)? == 0 {
                // The whole blob is in this request: stream it straight into the store.
                return Ok(Plan::Ingest {
                    expected: digest.sha256(),
                    max_size: ctx.max_upload,
                    want: want(digest),
                    later: Want::NONE,
                });
            }
            Ok(Plan::Seal {
                session: id.clone(),
                expected: digest.sha256(),
                want: want(digest),
                offset,
                max_size: ctx.max_upload,
            })
        }
        Endpoint::CancelUpload(id) => {
            session(ctx, head, image, id)?;
            Ok(Plan::Buffer(0))
        }
        _ => Err(Problem::internal("not a blob endpoint")),
    }
}

/// After the body became a blob: check a sha512 digest (sha256 the store checked), link the blob to the image
/// under the client's digest, end the upload session if there was one.
pub fn commit_ingested(
    head: &RequestHead,
    request: &Request,
    blob: &BlobInfo,
) -> Result<Commit, Problem> {
    let (digest, session) = match &request.endpoint {
        Endpoint::FinishUpload { id, digest } => (digest.clone(), Some(id)),
        Endpoint::StartUpload {
            digest: Some(digest),
            ..
        } => (digest.clone(), None),
        _ => (OciDigest::Sha256(blob.digest), None),
    };
    if let OciDigest::Sha512(expected) = &digest
        && blob.checksums.sha512.as_ref() != Some(expected)
    {
        return Err(oci(
            400,
            code::DIGEST_INVALID,
            format!("the content does not have digest {digest}"),
        ));
    }
    let mut writes = vec![link(head, &request.image, &digest, &blob.digest)];
    if let OciDigest::Sha512(hex) = &digest {
        writes.push(Write::PutKv {
            repo: String::new(),
            key: sha512_key(hex),
            value: blob.digest.to_string().into_bytes(),
        });
    }
    if let Some(id) = session {
        writes.push(Write::DeleteUpload { id: id.clone() });
    }
    Ok(Commit::new(
        writes,
        created(&name_path(head, &request.image), &digest),
    ))
}

/// The checksums an upload under `digest` needs beside the store's sha256.
fn want(digest: &OciDigest) -> Want {
    match digest {
        OciDigest::Sha256(_) => Want::NONE,
        OciDigest::Sha512(_) => Want {
            sha512: true,
            ..Want::NONE
        },
    }
}

/// Body-less writes: start a session or mount, delete a blob link, cancel a session.
pub fn commit_buffered(
    ctx: &Context<'_>,
    head: &RequestHead,
    request: &Request,
) -> Result<Commit, Problem> {
    let image = request.image.as_str();
    let name = name_path(head, image);
    match &request.endpoint {
        Endpoint::StartUpload { mount, from, .. } => {
            if let Some(digest) = mount
                && let Some(stored) = mountable(ctx, digest, from.as_deref())?
            {
                return Ok(Commit::new(
                    vec![link(head, image, digest, &stored)],
                    created(&name, digest),
                ));
            }
            let id = random_id();
            let time = now();
            let session = UploadSession {
                id: id.clone(),
                repository: format!("{}/{image}", head.repository),
                created: time,
                updated: time,
            };
            Ok(Commit::new(
                vec![Write::PutUpload(session)],
                upload_response(202, &name, &id, 0),
            ))
        }
        Endpoint::DeleteBlob(digest) => Ok(Commit::new(
            vec![Write::DeleteKv {
                repo: head.repository.clone(),
                key: link_key(image, digest),
            }],
            Response::empty(202),
        )),
        Endpoint::CancelUpload(id) => Ok(Commit::new(
            vec![Write::DeleteUpload { id: id.clone() }],
            Response::empty(204),
        )),
        _ => Err(Problem::internal("not a body-less blob endpoint")),
    }
}

/// A mount succeeds when the source image has the blob; returns the store's digest of it. Without a source
/// (`mount=` alone, which the spec allows), any blob in the store may be mounted: every authenticated user
/// may read every repository today. When per-repository permissions arrive, this must check read access to a
/// repository that links the blob.
fn mountable(
    ctx: &Context<'_>,
    digest: &OciDigest,
    from: Option<&str>,
) -> Result<Option<Digest>, Problem> {
    let Some(from) = from else {
        let stored = match digest {
            OciDigest::Sha256(d) => Some(*d),
            OciDigest::Sha512(hex) => ctx
                .store
                .meta()
                .kv("", &sha512_key(hex))?
                .and_then(|v| String::from_utf8(v).ok()?.parse().ok()),
        };
        return Ok(match stored {
            Some(d) => ctx.store.blob(&d)?.map(|_| d),
            None => None,
        });
    };
    let Some((repo, image)) = from.split_once('/') else {
        return Ok(None);
    };
    let is_oci = ctx
        .store
        .meta()
        .repository(repo)?
        .is_some_and(|r| r.format == "docker");
    if !is_oci {
        return Ok(None);
    }
    linked(ctx.store, repo, image, digest)
}

/// The store-wide entry from a sha512 digest to the sha256 the blob is stored under, for mounts that name no
/// source repository.
fn sha512_key(hex: &str) -> String {
    format!("oci-sha512:{hex}")
}

fn link(head: &RequestHead, image: &str, digest: &OciDigest, stored: &Digest) -> Write {
    Write::PutKv {
        repo: head.repository.clone(),
        key: link_key(image, digest),
        value: stored.to_string().into_bytes(),
    }
}

fn created(name: &str, digest: &OciDigest) -> Response {
    Response::empty(201)
        .with_header("location", format!("{name}/blobs/{digest}"))
        .with_header("docker-content-digest", digest.to_string())
}

/// The headers of every upload reply: where to send the next chunk and how much has arrived.
pub fn upload_response(status: u16, name: &str, id: &str, size: u64) -> Response {
    Response::empty(status)
        .with_header("location", format!("{name}/blobs/uploads/{id}"))
        .with_header("range", format!("0-{}", size.saturating_sub(1)))
        .with_header("docker-upload-uuid", id)
}

/// The session must exist and belong to this image.
fn session(ctx: &Context<'_>, head: &RequestHead, image: &str, id: &str) -> Result<(), Problem> {
    let owner = format!("{}/{image}", head.repository);
    match ctx.store.meta().upload(id)? {
        Some(s) if s.repository == owner => Ok(()),
        _ => Err(upload_unknown(id)),
    }
}

/// A chunk with `Content-Range` must start where the upload ends; 416 otherwise, with the headers a client needs
/// to recover. Returns the chunk's start for the host to check again as it appends.
fn in_order(
    ctx: &Context<'_>,
    head: &RequestHead,
    image: &str,
    id: &str,
) -> Result<Option<u64>, Problem> {
    let Some(range) = head.header("content-range") else {
        return Ok(None);
    };
    let spec = range
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches(['=', ' ']);
    let (start, end) = spec
        .split('/')
        .next()
        .and_then(|r| r.split_once('-'))
        .and_then(|(s, e)| Some((s.trim().parse::<u64>().ok()?, e.trim().parse::<u64>().ok()?)))
        .ok_or_else(|| {
            oci(
                400,
                code::BLOB_UPLOAD_INVALID,
                format!("invalid Content-Range `{range}`: expected <start>-<end>"),
            )
        })?;
    let size = ctx.store.upload_size(id)?;
    let length_ok = end >= start && head.content_length.is_none_or(|l| l == end - start + 1);
    if start != size || !length_ok {
        let reply = upload_response(416, &name_path(head, image), id, size);
        let mut problem = oci(
            416,
            code::BLOB_UPLOAD_INVALID,
            format!(
                "chunk {start}-{end} is out of order: the upload has {size} bytes, the next chunk starts at {size}"
            ),
        );
        problem.headers = reply.headers;
        return Err(problem);
    }
    Ok(Some(start))
}

fn blob_unknown(digest: &OciDigest) -> Problem {
    oci(
        404,
        code::BLOB_UNKNOWN,
        format!("blob {digest} is not in this repository"),
    )
}
