//! Manifests (GET/HEAD/PUT/DELETE by tag or digest), the tags list, and the referrers API.
//!
//! A manifest PUT is validated before anything is stored: a known media type that agrees with the body, a digest
//! that matches the reference, every config and layer blob present in the image (nondistributable layers
//! excepted), every child of an index present as a manifest. Then one commit stores the exact bytes as a blob and
//! applies the version, the tag and the referrer entry together.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use wharf_storage::{Digest, Store, Version, Want, Write};

use super::endpoint::{Endpoint, OciDigest, Reference, Request, parse_digest};
use super::{code, linked, name_path, oci};
use crate::{Commit, Context, Plan, Problem, RequestHead, Response};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Tags and referrers per page when the client does not ask for fewer.
const PAGE: usize = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    blobs: Vec<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    urls: Vec<String>,
}

impl Descriptor {
    /// Layers that clients fetch from elsewhere (`urls`, "nondistributable", Docker's "foreign") are never pushed.
    fn pushed(&self) -> bool {
        self.urls.is_empty()
            && !self.media_type.contains("nondistributable")
            && !self.media_type.contains("foreign")
    }
}

pub fn handle(ctx: &Context<'_>, head: &RequestHead, request: &Request) -> Result<Plan, Problem> {
    let (repo, image) = (head.repository.as_str(), request.image.as_str());
    match &request.endpoint {
        Endpoint::GetManifest(reference) => {
            let (name, version) = resolve(ctx.store, repo, image, reference)?;
            let media_type = version.metadata["mediaType"]
                .as_str()
                .unwrap_or(OCI_MANIFEST)
                .to_string();
            let bytes = *version
                .blobs
                .first()
                .ok_or_else(|| Problem::internal(format!("manifest {name} has no bytes")))?;
            crate::note_pull(ctx, head, image, &name);
            Ok(Plan::Serve {
                digest: bytes,
                status: 200,
                headers: vec![
                    ("content-type".into(), media_type),
                    ("docker-content-digest".into(), name),
                ],
            })
        }
        Endpoint::PutManifest(..) => {
            if head.content_length.is_some_and(|l| l > ctx.max_manifest) {
                return Err(too_large(ctx.max_manifest));
            }
            Ok(Plan::Buffer(ctx.max_manifest))
        }
        Endpoint::DeleteManifest(reference) => {
            resolve(ctx.store, repo, image, reference)?;
            Ok(Plan::Buffer(0))
        }
        Endpoint::Tags { n, last } => tags(ctx.store, head, image, *n, last.as_deref()),
        Endpoint::Referrers {
            subject,
            artifact_type,
        } => referrers(ctx.store, repo, image, subject, artifact_type.as_deref()),
        _ => Err(Problem::internal("not a manifest endpoint")),
    }
}

/// The writes of a manifest PUT or DELETE.
pub fn commit(
    ctx: &Context<'_>,
    head: &RequestHead,
    request: &Request,
    body: &[u8],
) -> Result<Commit, Problem> {
    let (repo, image) = (head.repository.as_str(), request.image.as_str());
    match &request.endpoint {
        Endpoint::PutManifest(reference, tags) => put(ctx, head, image, reference, tags, body),
        Endpoint::DeleteManifest(Reference::Tag(tag)) => Ok(Commit::new(
            vec![Write::DeleteTag {
                repo: repo.into(),
                package: image.into(),
                tag: tag.clone(),
            }],
            Response::empty(202),
        )),
        Endpoint::DeleteManifest(reference) => {
            let (name, version) = resolve(ctx.store, repo, image, reference)?;
            let writes = removal(ctx, repo, image, &name, &version)?;
            Ok(Commit::new(writes, Response::empty(202)))
        }
        _ => Err(Problem::internal("not a manifest write")),
    }
}

/// The writes of a DELETE by digest: the version, every tag pointing at it, and its entry in its subject's
/// referrers.
pub fn removal(
    ctx: &Context<'_>,
    repo: &str,
    image: &str,
    name: &str,
    version: &Version,
) -> Result<Vec<Write>, Problem> {
    let mut writes = vec![Write::DeleteVersion {
        repo: repo.into(),
        package: image.into(),
        version: name.into(),
    }];
    // Tags of one image, in pages: bounded by that image, not by the store.
    let mut after: Option<String> = None;
    loop {
        let page = ctx.store.meta().tags(repo, image, after.as_deref(), PAGE)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        writes.extend(
            page.iter()
                .filter(|(_, tag)| tag.version == name)
                .map(|(tag, _)| Write::DeleteTag {
                    repo: repo.into(),
                    package: image.into(),
                    tag: tag.clone(),
                }),
        );
    }
    if let Some(subject) = version.metadata["subject"].as_str() {
        writes.push(Write::DeleteKv {
            repo: repo.into(),
            key: referrer_key(image, subject, name),
        });
    }
    Ok(writes)
}

/// A promoted referrer's entry in its subject's referrers, copied to the target, so that the target's referrers
/// API lists it as the source's does.
pub fn promoted_referrer(
    ctx: &Context<'_>,
    p: &crate::promote::Promotion<'_>,
    version: &Version,
) -> Result<Option<Write>, Problem> {
    let Some(subject) = version.metadata["subject"].as_str() else {
        return Ok(None);
    };
    let key = referrer_key(p.package, subject, p.version);
    Ok(ctx
        .store
        .meta()
        .kv(p.from, &key)?
        .map(|value| Write::PutKv {
            repo: p.to.into(),
            key,
            value,
        }))
}

/// The writes that remove a manifest retention expired: the version, the tags it had when listed, and its entry in
/// its subject's referrers.
pub fn expire(
    ctx: &Context<'_>,
    repo: &str,
    item: &crate::retention::Item,
) -> Result<Vec<Write>, Problem> {
    let (image, name) = (&*item.package, item.version.as_str());
    let mut writes = crate::retention::version_removal(repo, item);
    // A manifest with a subject follows it (`retention_items`), so one that follows nothing has no referrer entry,
    // and most manifests need no second read of their record.
    if item.follows.is_empty() {
        return Ok(writes);
    }
    let version = ctx
        .store
        .meta()
        .version(repo, image, name)?
        .ok_or_else(|| Problem::not_found(format!("{image}@{name} not found")))?;
    if let Some(subject) = version.metadata["subject"].as_str() {
        writes.push(Write::DeleteKv {
            repo: repo.into(),
            key: referrer_key(image, subject, name),
        });
    }
    Ok(writes)
}

/// The manifests an image index lists (recorded at push).
pub fn children(version: &Version) -> Vec<String> {
    version.metadata["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

/// What retention reads of a manifest's metadata: what it follows.
#[derive(serde::Deserialize)]
struct Followed {
    subject: Option<String>,
    #[serde(default)]
    manifests: Vec<String>,
}

/// Retention's items of an image: its manifests, tagged by their tags. A referrer follows its subject, and an
/// untagged manifest follows the indexes that list it, so neither is judged (or counted) on its own.
pub fn retention_items(
    ctx: &Context<'_>,
    repo: &str,
    image: &str,
) -> Result<Vec<crate::retention::Item>, Problem> {
    // `Option`: a record without metadata has `null` there.
    crate::retention::version_items_following::<Option<Followed>>(
        ctx.store,
        repo,
        image,
        |versions, tags| {
            let mut listed_by: std::collections::HashMap<&str, Vec<String>> = Default::default();
            for (name, version) in versions {
                for child in version.metadata.iter().flat_map(|m| &m.manifests) {
                    listed_by.entry(child).or_default().push(name.clone());
                }
            }
            versions
                .iter()
                .zip(tags)
                .map(|((name, version), tags)| {
                    match version.metadata.as_ref().and_then(|m| m.subject.as_ref()) {
                        Some(subject) => vec![subject.clone()],
                        // (Asked only when some index lists manifests: most images have none.)
                        None if tags.is_empty() && !listed_by.is_empty() => {
                            listed_by.remove(name.as_str()).unwrap_or_default()
                        }
                        None => Vec::new(),
                    }
                })
                .collect()
        },
    )
}

fn put(
    ctx: &Context<'_>,
    head: &RequestHead,
    image: &str,
    reference: &Reference,
    tag_params: &[String],
    body: &[u8],
) -> Result<Commit, Problem> {
    let repo = head.repository.as_str();
    // Stored by sha256 like every blob; named by the algorithm the client pushed it under.
    let bytes = Digest::of(body);
    let digest = match reference {
        Reference::Digest(OciDigest::Sha512(_)) => OciDigest::Sha512(sha512(body)),
        _ => OciDigest::Sha256(bytes),
    };
    if let Reference::Digest(expected) = reference
        && *expected != digest
    {
        return Err(oci(
            400,
            code::DIGEST_INVALID,
            format!("the manifest's digest is {digest}, not {expected}"),
        ));
    }
    let manifest: Manifest = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "the manifest is not valid JSON of a known shape: {e}"
        ))
    })?;
    let media_type = media_type(head, &manifest)?;
    if manifest.schema_version.is_some_and(|v| v != 2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let mut blobs = vec![bytes];
    let mut children = Vec::new();
    match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            for child in manifest.manifests.iter().flatten() {
                let child = descriptor_digest(child)?;
                children.push(child.to_string());
                if ctx
                    .store
                    .meta()
                    .version(repo, image, &child.to_string())?
                    .is_none()
                {
                    return Err(blob_unknown(&child, "manifest"));
                }
            }
        }
        _ => {
            let config = manifest.config.as_ref();
            if config.is_none() && media_type != OCI_ARTIFACT {
                return Err(invalid("an image manifest needs a config descriptor"));
            }
            let referenced = config
                .into_iter()
                .chain(&manifest.layers)
                .chain(&manifest.blobs);
            for descriptor in referenced.filter(|d| d.pushed()) {
                let blob = descriptor_digest(descriptor)?;
                let stored = linked(ctx.store, repo, image, &blob)?
                    .ok_or_else(|| blob_unknown(&blob, "blob"))?;
                blobs.push(stored);
            }
        }
    }
    let subject = manifest
        .subject
        .as_ref()
        .map(descriptor_digest)
        .transpose()?;
    let mut metadata = json!({ "mediaType": media_type, "size": body.len() });
    if let Some(subject) = &subject {
        metadata["subject"] = json!(subject.to_string());
    }
    // The manifests an index lists: retention keeps them while the index stays.
    if !children.is_empty() {
        metadata["manifests"] = json!(children);
    }
    let mut writes = vec![Write::PutVersion {
        repo: repo.into(),
        package: image.into(),
        version: digest.to_string(),
        record: Version {
            blobs,
            metadata,
            created: 0,
        },
        // Same digest, same bytes: pushing a manifest again is idempotent.
        replace: true,
    }];
    let tags = match reference {
        Reference::Tag(tag) => std::slice::from_ref(tag),
        Reference::Digest(_) => tag_params,
    };
    let name = name_path(head, image);
    let mut response = Response::empty(201)
        .with_header("location", format!("{name}/manifests/{digest}"))
        .with_header("docker-content-digest", digest.to_string());
    for tag in tags {
        writes.push(Write::PutTag {
            repo: repo.into(),
            package: image.into(),
            tag: tag.clone(),
            version: digest.to_string(),
        });
        if !tag_params.is_empty() {
            response = response.with_header("oci-tag", tag.clone());
        }
    }
    if let Some(subject) = &subject {
        let artifact_type = manifest
            .artifact_type
            .clone()
            .or_else(|| manifest.config.as_ref().map(|c| c.media_type.clone()));
        let mut descriptor = json!({
            "mediaType": media_type,
            "digest": digest.to_string(),
            "size": body.len(),
        });
        if let Some(t) = artifact_type {
            descriptor["artifactType"] = json!(t);
        }
        if let Some(a) = &manifest.annotations {
            descriptor["annotations"] = a.clone();
        }
        writes.push(Write::PutKv {
            repo: repo.into(),
            key: referrer_key(image, &subject.to_string(), &digest.to_string()),
            value: serde_json::to_vec(&descriptor).expect("JSON values serialize"),
        });
        response = response.with_header("oci-subject", subject.to_string());
    }
    Ok(Commit {
        blobs: vec![Bytes::copy_from_slice(body)],
        writes,
        response,
    })
}

/// The media type from `Content-Type`, which must agree with the body's `mediaType` when both are there.
fn media_type(head: &RequestHead, manifest: &Manifest) -> Result<String, Problem> {
    let known = [
        OCI_MANIFEST,
        OCI_INDEX,
        OCI_ARTIFACT,
        DOCKER_MANIFEST,
        DOCKER_LIST,
    ];
    let header = head
        .header("content-type")
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .filter(|v| known.contains(&v.as_str()));
    let body = manifest.media_type.clone();
    if let (Some(h), Some(b)) = (&header, &body)
        && h != b
    {
        return Err(invalid(format!(
            "Content-Type {h} disagrees with the manifest's mediaType {b}"
        )));
    }
    let detected = if manifest.manifests.is_some() {
        OCI_INDEX
    } else {
        OCI_MANIFEST
    };
    let chosen = header.or(body).unwrap_or_else(|| detected.to_string());
    if known.contains(&chosen.as_str()) {
        Ok(chosen)
    } else {
        Err(invalid(format!(
            "unsupported manifest media type {chosen} (Docker schema 1 is not supported)"
        )))
    }
}

fn descriptor_digest(d: &Descriptor) -> Result<OciDigest, Problem> {
    if d.size < 0 {
        return Err(invalid(format!(
            "descriptor {} has a negative size",
            d.digest
        )));
    }
    parse_digest(&d.digest).map_err(|p| invalid(p.message))
}

/// A tag or digest to the manifest's name (its digest as pushed) and version record.
fn resolve(
    store: &Store,
    repo: &str,
    image: &str,
    reference: &Reference,
) -> Result<(String, Version), Problem> {
    let unknown = || {
        oci(
            404,
            code::MANIFEST_UNKNOWN,
            format!(
                "manifest {image}:{} is not in this repository",
                show(reference)
            ),
        )
    };
    let name = match reference {
        Reference::Digest(d) => d.to_string(),
        Reference::Tag(tag) => {
            store
                .meta()
                .tag(repo, image, tag)?
                .ok_or_else(unknown)?
                .version
        }
    };
    let version = store
        .meta()
        .version(repo, image, &name)?
        .ok_or_else(unknown)?;
    Ok((name, version))
}

fn sha512(body: &[u8]) -> String {
    let mut hasher = wharf_storage::digest::Hasher::new(Want {
        sha512: true,
        ..Want::NONE
    });
    hasher.update(body);
    hasher.finish().1.sha512.unwrap_or_default()
}

fn tags(
    store: &Store,
    head: &RequestHead,
    image: &str,
    n: Option<usize>,
    last: Option<&str>,
) -> Result<Plan, Problem> {
    let repo = head.repository.as_str();
    if store.meta().package(repo, image)?.is_none() {
        return Err(oci(
            404,
            code::NAME_UNKNOWN,
            format!("repository {repo}/{image} is not known"),
        ));
    }
    let limit = n.unwrap_or(PAGE).min(PAGE);
    let mut page = store.meta().tags(repo, image, last, limit + 1)?;
    let more = page.len() > limit;
    page.truncate(limit);
    let names: Vec<&str> = page.iter().map(|(t, _)| t.as_str()).collect();
    let mut response = Response::json(
        200,
        &json!({ "name": format!("{repo}/{image}"), "tags": names }),
    );
    if more && let Some(last) = names.last() {
        response = response.with_header(
            "link",
            format!(
                "<{}/tags/list?n={limit}&last={last}>; rel=\"next\"",
                name_path(head, image)
            ),
        );
    }
    Ok(Plan::Respond(response))
}

fn referrers(
    store: &Store,
    repo: &str,
    image: &str,
    subject: &OciDigest,
    artifact_type: Option<&str>,
) -> Result<Plan, Problem> {
    let prefix = format!("ref:{image}@{subject}@");
    let entries = store.meta().kvs(repo, &prefix, None, PAGE)?;
    let mut manifests = Vec::new();
    for (_, value) in entries {
        let descriptor: Value = serde_json::from_slice(&value).map_err(Problem::internal)?;
        if artifact_type.is_none_or(|t| descriptor["artifactType"] == t) {
            manifests.push(descriptor);
        }
    }
    let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut response = Response::new(
        200,
        OCI_INDEX,
        serde_json::to_vec(&body).expect("JSON values serialize"),
    );
    if artifact_type.is_some() {
        response = response.with_header("oci-filters-applied", "artifactType");
    }
    Ok(Plan::Respond(response))
}

fn referrer_key(image: &str, subject: &str, manifest: &str) -> String {
    format!("ref:{image}@{subject}@{manifest}")
}

fn show(reference: &Reference) -> String {
    match reference {
        Reference::Tag(t) => t.clone(),
        Reference::Digest(d) => d.to_string(),
    }
}

fn invalid(message: impl Into<String>) -> Problem {
    oci(400, code::MANIFEST_INVALID, message)
}

fn blob_unknown(digest: &OciDigest, what: &str) -> Problem {
    oci(
        400,
        code::MANIFEST_BLOB_UNKNOWN,
        format!("the manifest references {what} {digest}, which is not in this repository"),
    )
}

fn too_large(limit: u64) -> Problem {
    oci(
        413,
        code::SIZE_INVALID,
        format!("the manifest is larger than the limit of {limit} bytes"),
    )
}
