//! The documents npm reads: the packument (full, or abbreviated for installs), dist-tags, and search results. All
//! are generated from the stored versions on each read; an ETag lets a client revalidate cheaply, and gzip is used
//! when the client accepts it.

use crate::dates::{http_date, iso};
use std::io::Write as _;

use serde_json::{Map, Value, json};
use wharf_storage::Digest;

use super::{DOC_FIELDS, not_found, npm_error, stored_doc, versions};
use crate::{Context, Problem, RequestHead, Response};

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";
/// Fields of a version an install needs: the abbreviated document keeps these only.
const INSTALL_FIELDS: [&str; 17] = [
    "name",
    "version",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bin",
    "directories",
    "dist",
    "engines",
    "_hasShrinkwrap",
    "hasInstallScript",
    "deprecated",
    "cpu",
    "os",
];
/// Packages a search looks at, at most: search reads the repository's package list, so it is bounded.
const SEARCH_SCAN: usize = 10_000;

pub fn packument(ctx: &Context<'_>, head: &RequestHead, name: &str) -> Result<Response, Problem> {
    let repo = head.repository.as_str();
    let versions = versions(ctx, repo, name)?;
    if versions.is_empty() {
        return Err(not_found(name));
    }
    let abbreviated = head
        .header("accept")
        .is_some_and(|a| a.contains(ABBREVIATED));
    let tags = tags(ctx, repo, name)?;
    let doc = stored_doc(ctx, repo, name)?;
    let modified = versions.iter().map(|(_, v)| v.created).max().unwrap_or(0);
    let mut rendered = Map::new();
    let mut times = Map::new();
    for (version, record) in &versions {
        let mut manifest = record.metadata.clone();
        if let Some(dist) = manifest.get_mut("dist") {
            let file = dist["tarball"].as_str().unwrap_or_default().to_string();
            dist["tarball"] = json!(format!("{}/{name}/-/{file}", head.base_url));
        }
        if abbreviated && let Some(object) = manifest.as_object_mut() {
            object.retain(|k, _| INSTALL_FIELDS.contains(&k.as_str()));
        }
        rendered.insert(version.clone(), manifest);
        times.insert(version.clone(), json!(iso(record.created)));
    }
    let body = if abbreviated {
        json!({ "name": name, "modified": iso(modified), "dist-tags": tags, "versions": rendered })
    } else {
        let created = versions.iter().map(|(_, v)| v.created).min().unwrap_or(0);
        times.insert("created".into(), json!(iso(created)));
        times.insert("modified".into(), json!(iso(modified)));
        let mut full = json!({
            "_id": name,
            "_rev": format!("{}-{}", versions.len(), &Digest::of(modified.to_string().as_bytes()).hex()[..16]),
            "name": name,
            "dist-tags": tags,
            "versions": rendered,
            "time": times,
        });
        for field in DOC_FIELDS {
            if let Some(value) = doc.get(field) {
                full[field] = value.clone();
            }
        }
        full
    };
    let content_type = if abbreviated {
        ABBREVIATED
    } else {
        "application/json"
    };
    Ok(cacheable(head, content_type, &body, modified))
}

pub fn dist_tags(ctx: &Context<'_>, repo: &str, name: &str) -> Result<Response, Problem> {
    if ctx.store.meta().package(repo, name)?.is_none() {
        return Err(not_found(name));
    }
    Ok(Response::json(200, &Value::Object(tags(ctx, repo, name)?)))
}

fn tags(ctx: &Context<'_>, repo: &str, name: &str) -> Result<Map<String, Value>, Problem> {
    Ok(ctx
        .store
        .meta()
        .tags(repo, name, None, 10_000)?
        .into_iter()
        .map(|(tag, t)| (tag, json!(t.version)))
        .collect())
}

/// `/-/v1/search?text=&size=&from=`: names, descriptions and keywords containing every word of the text.
pub fn search(ctx: &Context<'_>, head: &RequestHead) -> Result<Response, Problem> {
    let repo = head.repository.as_str();
    let query = |name: &str| crate::query_param(head.query.as_deref(), name);
    let text = query("text").unwrap_or_default().to_lowercase();
    let size: usize = query("size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .min(250);
    let from: usize = query("from").and_then(|s| s.parse().ok()).unwrap_or(0);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut objects = Vec::new();
    for (name, _) in ctx.store.meta().packages(repo, None, SEARCH_SCAN)? {
        let doc = stored_doc(ctx, repo, &name)?;
        let description = doc["description"].as_str().unwrap_or_default();
        let keywords: Vec<&str> = doc["keywords"]
            .as_array()
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let haystack = format!("{name} {description} {}", keywords.join(" ")).to_lowercase();
        if !words.iter().all(|w| haystack.contains(w)) {
            continue;
        }
        let latest = ctx
            .store
            .meta()
            .tag(repo, &name, "latest")?
            .map(|t| t.version);
        let Some(latest) = latest else { continue };
        objects.push(json!({
            "package": {
                "name": name,
                "version": latest,
                "description": description,
                "keywords": keywords,
                "date": doc["modified"].clone(),
                "links": {},
                "publisher": { "username": doc["publisher"].as_str().unwrap_or_default() },
                "maintainers": [{ "username": doc["publisher"].as_str().unwrap_or_default() }],
            },
            "score": { "final": 1.0, "detail": { "quality": 1.0, "popularity": 1.0, "maintenance": 1.0 } },
            "searchScore": 1.0,
        }));
    }
    let total = objects.len();
    let page: Vec<Value> = objects.into_iter().skip(from).take(size).collect();
    Ok(Response::json(
        200,
        &json!({ "objects": page, "total": total, "time": iso(wharf_storage::now()) }),
    ))
}

/// A JSON answer with an ETag (304 when the client has it), Last-Modified, and gzip when accepted.
fn cacheable(head: &RequestHead, content_type: &str, body: &Value, modified: u64) -> Response {
    let bytes = serde_json::to_vec(body).expect("JSON values serialize");
    let (etag, fresh) = crate::etag(head, &bytes);
    let response = if fresh {
        Response::empty(304)
    } else if head
        .header("accept-encoding")
        .is_some_and(|a| a.contains("gzip"))
        && bytes.len() > 1024
    {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let gzipped = encoder.write_all(&bytes).and_then(|()| encoder.finish());
        match gzipped {
            Ok(gz) => Response::new(200, content_type, gz).with_header("content-encoding", "gzip"),
            Err(_) => Response::new(200, content_type, bytes),
        }
    } else {
        Response::new(200, content_type, bytes)
    };
    response
        .with_header("etag", etag)
        .with_header("last-modified", http_date(modified))
        .with_header("vary", "Accept, Accept-Encoding")
        .with_header("cache-control", "no-cache")
}

pub fn unknown_version(name: &str, version: &str) -> Problem {
    npm_error(404, format!("version `{name}@{version}` not found"))
}
