//! Writes to a package: publish (a document with one new version and its tarball in `_attachments`), update (the
//! read-modify-write npm does for deprecate and for unpublishing one version), and unpublishing everything.
//!
//! A publish is checked before anything is stored: the name and a semver version, the attachment's base64 and
//! length, its sha1 against `dist.shasum` and sha512 against `dist.integrity`, and the tarball's own package.json
//! against the document on name, version, dependencies, scripts and bin (no manifest confusion). A version number
//! once used is refused forever, even after an unpublish.

use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use wharf_storage::{Version, Want, Write, now};

use super::documents::unknown_version;
use super::endpoint::{cut, parse_semver};
use super::{DOC_FIELDS, basename, doc_key, npm_error, ok_json, stored_doc, used_key, versions};
use crate::{Commit, Context, Problem, RequestHead};

/// Largest package.json read out of a tarball, and most bytes decompressed while looking for it.
const MAX_PACKAGE_JSON: u64 = 1 << 20;
const MAX_UNPACKED_SCAN: u64 = 512 << 20;

/// `PUT /<name>`: a publish when it carries attachments, else an update of an existing package.
pub fn publish_or_update(
    ctx: &Context<'_>,
    head: &RequestHead,
    name: &str,
    body: &[u8],
) -> Result<Commit, Problem> {
    let doc = parse(body)?;
    let has_attachments = doc["_attachments"]
        .as_object()
        .is_some_and(|a| !a.is_empty());
    if !has_attachments {
        if ctx.store.meta().package(&head.repository, name)?.is_some()
            && doc["versions"].is_object()
        {
            return update_doc(ctx, head, name, &doc);
        }
        return Err(npm_error(
            400,
            "no attachment: a publish carries the package tarball in `_attachments`",
        ));
    }
    publish(ctx, head, name, &doc)
}

pub fn update(
    ctx: &Context<'_>,
    head: &RequestHead,
    name: &str,
    body: &[u8],
) -> Result<Commit, Problem> {
    update_doc(ctx, head, name, &parse(body)?)
}

fn parse(body: &[u8]) -> Result<Value, Problem> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| npm_error(400, format!("the body is not valid JSON: {e}")))?;
    if !doc.is_object() {
        return Err(npm_error(400, "the body must be a JSON object"));
    }
    Ok(doc)
}

fn publish(
    ctx: &Context<'_>,
    head: &RequestHead,
    name: &str,
    doc: &Value,
) -> Result<Commit, Problem> {
    let repo = head.repository.as_str();
    if doc.get("name").is_some_and(|n| n != name) {
        return Err(npm_error(400, "the document's name differs from the URL's"));
    }
    let versions = doc["versions"]
        .as_object()
        .filter(|v| v.len() == 1)
        .ok_or_else(|| npm_error(400, "a publish carries exactly one version in `versions`"))?;
    let (version, manifest) = versions.iter().next().expect("one version");
    if parse_semver(version).is_none() {
        return Err(npm_error(
            400,
            format!("invalid version `{}`: not semver", cut(version)),
        ));
    }
    if manifest["name"] != name || manifest["version"] != version.as_str() {
        return Err(npm_error(
            400,
            "the version's name and version differ from the document's",
        ));
    }
    let file = format!("{}-{version}.tgz", basename(name));
    let attachments = doc["_attachments"]
        .as_object()
        .expect("checked by the caller");
    let (key, attachment) = attachments
        .iter()
        .next()
        .filter(|_| attachments.len() == 1)
        .ok_or_else(|| npm_error(400, "a publish carries exactly one attachment"))?;
    if !key.ends_with(&file) {
        return Err(npm_error(
            400,
            format!("the attachment `{}` is not `{file}`", cut(key)),
        ));
    }
    let tarball = STANDARD
        .decode(attachment["data"].as_str().unwrap_or_default())
        .map_err(|_| npm_error(400, "the attachment's data is not base64"))?;
    if tarball.is_empty() {
        return Err(npm_error(400, "the attachment is empty"));
    }
    if let Some(length) = attachment["length"].as_u64()
        && length != tarball.len() as u64
    {
        return Err(npm_error(
            400,
            "the attachment's length differs from its data",
        ));
    }
    check_dist(manifest, &tarball)?;
    let package_json = package_json(&tarball)?;
    check_same(manifest, &package_json, name)?;
    if ctx
        .store
        .meta()
        .kv(repo, &used_key(name, version))?
        .is_some()
    {
        return Err(npm_error(
            403,
            format!("You cannot publish over the previously published versions: {version}."),
        ));
    }

    let mut stored = manifest.clone();
    stored["_id"] = json!(format!("{name}@{version}"));
    stored["dist"]["tarball"] = json!(file);
    let time = now();
    let mut writes = vec![
        Write::PutVersion {
            repo: repo.into(),
            package: name.into(),
            version: version.clone(),
            record: Version {
                blobs: vec![wharf_storage::Digest::of(&tarball)],
                metadata: stored,
                created: time,
            },
            replace: false,
        },
        Write::PutKv {
            repo: repo.into(),
            key: used_key(name, version),
            value: Vec::new(),
        },
    ];
    let mut tags: Vec<String> = doc["dist-tags"]
        .as_object()
        .map(|t| {
            t.iter()
                .filter(|(_, v)| *v == version.as_str())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    // The first version of a package is `latest` whatever tag it came with: installs need one.
    if !tags.iter().any(|t| t == "latest") && ctx.store.meta().tag(repo, name, "latest")?.is_none()
    {
        tags.push("latest".into());
    }
    writes.extend(tags.into_iter().map(|tag| Write::PutTag {
        repo: repo.into(),
        package: name.into(),
        tag,
        version: version.clone(),
    }));
    writes.push(package_doc(
        ctx,
        repo,
        name,
        doc,
        manifest,
        time,
        head.principal.as_deref(),
    )?);
    Ok(Commit {
        blobs: vec![Bytes::from(tarball)],
        writes,
        response: ok_json(201),
    })
}

/// `dist.shasum` (sha1 hex) and `dist.integrity` (`sha512-<base64>`) must describe the tarball.
fn check_dist(manifest: &Value, tarball: &[u8]) -> Result<(), Problem> {
    let mut hasher = wharf_storage::digest::Hasher::new(Want {
        sha1: true,
        sha512: true,
        ..Want::NONE
    });
    hasher.update(tarball);
    let sums = hasher.finish().1;
    let dist = &manifest["dist"];
    if dist["shasum"].as_str() != sums.sha1.as_deref() {
        return Err(npm_error(
            400,
            "shasum mismatch: dist.shasum is not the sha1 of the tarball",
        ));
    }
    let sha512 = sums
        .sha512
        .as_deref()
        .and_then(|h| hex::decode(h).ok())
        .unwrap_or_default();
    let integrity = format!("sha512-{}", STANDARD.encode(sha512));
    if dist["integrity"].as_str() != Some(integrity.as_str()) {
        return Err(npm_error(
            400,
            "integrity mismatch: dist.integrity is not the sha512 of the tarball",
        ));
    }
    Ok(())
}

/// The `package.json` at the top of the tarball (`package/package.json` by npm's convention), read with bounds.
fn package_json(tarball: &[u8]) -> Result<Value, Problem> {
    let unreadable = |why: &str| npm_error(400, format!("the tarball cannot be read: {why}"));
    let gz = flate2::read::GzDecoder::new(tarball).take(MAX_UNPACKED_SCAN);
    let mut archive = tar::Archive::new(gz);
    let entries = archive
        .entries()
        .map_err(|_| unreadable("not a gzipped tar"))?;
    for entry in entries {
        let mut entry = entry.map_err(|_| unreadable("a damaged tar entry"))?;
        let path = entry
            .path()
            .map_err(|_| unreadable("a bad entry name"))?
            .into_owned();
        let parts: Vec<_> = path.components().collect();
        if parts.len() != 2 || path.file_name().is_none_or(|f| f != "package.json") {
            continue;
        }
        if entry.size() > MAX_PACKAGE_JSON {
            return Err(unreadable("package.json is over 1 MiB"));
        }
        let mut text = Vec::new();
        (&mut entry)
            .take(MAX_PACKAGE_JSON)
            .read_to_end(&mut text)
            .map_err(|_| unreadable("package.json is damaged"))?;
        return serde_json::from_slice(&text).map_err(|_| unreadable("package.json is not JSON"));
    }
    Err(unreadable("it has no package.json"))
}

/// The document may not claim what the tarball does not hold: name, version, dependencies, scripts, bin.
fn check_same(manifest: &Value, package: &Value, name: &str) -> Result<(), Problem> {
    let empty = json!({});
    for field in ["name", "version"] {
        if manifest[field] != package[field] {
            return Err(confusion(field));
        }
    }
    for field in ["dependencies", "scripts"] {
        let ours = manifest
            .get(field)
            .filter(|v| !v.is_null())
            .unwrap_or(&empty);
        let theirs = package
            .get(field)
            .filter(|v| !v.is_null())
            .unwrap_or(&empty);
        if ours != theirs {
            return Err(confusion(field));
        }
    }
    if normalized_bin(&manifest["bin"], name) != normalized_bin(&package["bin"], name) {
        return Err(confusion("bin"));
    }
    Ok(())
}

fn confusion(field: &str) -> Problem {
    npm_error(
        400,
        format!(
            "the document's `{field}` differs from the tarball's package.json: publish refused"
        ),
    )
}

/// `bin` as npm normalizes it: a string means one command named after the package; `./` prefixes dropped.
fn normalized_bin(bin: &Value, name: &str) -> Map<String, Value> {
    let clean = |p: &str| json!(p.trim_start_matches("./"));
    match bin {
        Value::String(path) => Map::from_iter([(super::basename(name).to_string(), clean(path))]),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), clean(v.as_str().unwrap_or_default())))
            .collect(),
        _ => Map::new(),
    }
}

fn package_doc(
    ctx: &Context<'_>,
    repo: &str,
    name: &str,
    doc: &Value,
    manifest: &Value,
    time: u64,
    publisher: Option<&str>,
) -> Result<Write, Problem> {
    let mut kept = stored_doc(ctx, repo, name)?;
    for field in DOC_FIELDS {
        if let Some(value) = doc.get(field).or_else(|| manifest.get(field)) {
            kept[field] = value.clone();
        }
    }
    kept["modified"] = json!(crate::dates::iso(time));
    if let Some(user) = publisher {
        kept["publisher"] = json!(user);
    }
    Ok(Write::PutKv {
        repo: repo.into(),
        key: doc_key(name),
        value: serde_json::to_vec(&kept).expect("JSON values serialize"),
    })
}

/// The packument npm sends back after editing it: deprecations applied, versions it left out unpublished,
/// dist-tags set as it says. New versions need a publish.
fn update_doc(
    ctx: &Context<'_>,
    head: &RequestHead,
    name: &str,
    doc: &Value,
) -> Result<Commit, Problem> {
    let repo = head.repository.as_str();
    let stored = versions(ctx, repo, name)?;
    if stored.is_empty() {
        return Err(super::not_found(name));
    }
    let wanted = doc["versions"]
        .as_object()
        .ok_or_else(|| npm_error(400, "the document has no `versions`"))?;
    if let Some(new) = wanted.keys().find(|v| !stored.iter().any(|(s, _)| s == *v)) {
        return Err(npm_error(
            400,
            format!("version {new} is new: publish it with its tarball"),
        ));
    }
    let mut writes = Vec::new();
    let mut kept = Vec::new();
    for (version, record) in stored {
        let Some(manifest) = wanted.get(&version) else {
            writes.push(Write::DeleteVersion {
                repo: repo.into(),
                package: name.into(),
                version,
            });
            continue;
        };
        let deprecated = manifest
            .get("deprecated")
            .filter(|d| d.as_str().is_some_and(|s| !s.is_empty()));
        if deprecated != record.metadata.get("deprecated") {
            let mut metadata = record.metadata.clone();
            match (deprecated, metadata.as_object_mut()) {
                (Some(message), Some(object)) => {
                    object.insert("deprecated".into(), message.clone());
                }
                (None, Some(object)) => {
                    object.remove("deprecated");
                }
                _ => {}
            }
            writes.push(Write::PutVersion {
                repo: repo.into(),
                package: name.into(),
                version: version.clone(),
                record: Version { metadata, ..record },
                replace: true,
            });
        }
        kept.push(version);
    }
    writes.extend(sync_tags(ctx, repo, name, &doc["dist-tags"], &kept)?);
    Ok(Commit::new(writes, ok_json(200)))
}

/// Tag writes that make the stored dist-tags match `wanted`, among the versions that remain.
fn sync_tags(
    ctx: &Context<'_>,
    repo: &str,
    name: &str,
    wanted: &Value,
    remaining: &[String],
) -> Result<Vec<Write>, Problem> {
    let mut writes = Vec::new();
    let current = ctx.store.meta().tags(repo, name, None, 10_000)?;
    for (tag, t) in &current {
        let target = wanted[tag.as_str()]
            .as_str()
            .filter(|v| remaining.iter().any(|r| r == v));
        match target {
            Some(v) if v == t.version => {}
            Some(v) => writes.push(Write::PutTag {
                repo: repo.into(),
                package: name.into(),
                tag: tag.clone(),
                version: v.into(),
            }),
            None => writes.push(Write::DeleteTag {
                repo: repo.into(),
                package: name.into(),
                tag: tag.clone(),
            }),
        }
    }
    for (tag, version) in wanted.as_object().into_iter().flatten() {
        let Some(version) = version.as_str() else {
            continue;
        };
        let known = current.iter().any(|(t, _)| t == tag);
        if !known && remaining.iter().any(|r| r == version) {
            writes.push(Write::PutTag {
                repo: repo.into(),
                package: name.into(),
                tag: tag.clone(),
                version: version.into(),
            });
        } else if !known
            && !version.is_empty()
            && parse_semver(version).is_some()
            && !remaining.iter().any(|r| r == version)
        {
            return Err(unknown_version(name, version));
        }
    }
    Ok(writes)
}

/// `npm unpublish <pkg> --force`: every version and tag goes; the used version numbers stay reserved.
pub fn unpublish_all(ctx: &Context<'_>, repo: &str, name: &str) -> Result<Commit, Problem> {
    let stored = versions(ctx, repo, name)?;
    if stored.is_empty() {
        return Err(super::not_found(name));
    }
    let mut writes: Vec<Write> = stored
        .into_iter()
        .map(|(version, _)| Write::DeleteVersion {
            repo: repo.into(),
            package: name.into(),
            version,
        })
        .collect();
    for (tag, _) in ctx.store.meta().tags(repo, name, None, 10_000)? {
        writes.push(Write::DeleteTag {
            repo: repo.into(),
            package: name.into(),
            tag,
        });
    }
    writes.push(Write::DeleteKv {
        repo: repo.into(),
        key: doc_key(name),
    });
    Ok(Commit::new(writes, ok_json(200)))
}
