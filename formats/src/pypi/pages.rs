//! The pages clients read: the simple API (PEP 503 HTML and PEP 691 JSON, with PEP 592 yanking, PEP 658/714 core
//! metadata and PEP 700 fields) and the JSON project API. Generated from the file records on every read, with an
//! ETag so a client that revalidates gets a 304.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::upload::FileRecord;
use super::{file_key, parse_version, pypi_error, yank_key};
use crate::dates::iso;
use crate::{Context, Plan, Problem, RequestHead, Response};

/// At most this many projects are listed by `/simple/` (pip and uv never read it; it is for people).
const MAX_INDEX: usize = 10_000;
/// At most this many files are listed for one project.
const MAX_FILES: usize = 100_000;

const JSON_V1: &str = "application/vnd.pypi.simple.v1+json";
const HTML_V1: &str = "application/vnd.pypi.simple.v1+html";

/// What the simple API answers in, chosen from the Accept header by quality (PEP 691); HTML when none is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Json,
    Html(&'static str),
}

fn negotiate(head: &RequestHead) -> Result<Kind, Problem> {
    let Some(accept) = head.header("accept") else {
        return Ok(Kind::Html("text/html; charset=utf-8"));
    };
    let mut best: Option<(f32, Kind)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let kind = match media.as_str() {
            JSON_V1 | "application/vnd.pypi.simple.latest+json" => Kind::Json,
            HTML_V1 | "application/vnd.pypi.simple.latest+html" => Kind::Html(HTML_V1),
            "text/html" | "text/*" | "*/*" => Kind::Html("text/html; charset=utf-8"),
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, kind));
        }
    }
    best.map(|(_, kind)| kind).ok_or_else(|| {
        pypi_error(
            406,
            format!("none of `{accept}` is offered: use {JSON_V1}, {HTML_V1} or text/html"),
        )
    })
}

pub fn index(ctx: &Context<'_>, head: &RequestHead) -> Result<Plan, Problem> {
    let kind = negotiate(head)?;
    let projects = ctx
        .store
        .meta()
        .packages(&head.repository, None, MAX_INDEX)?;
    let names = projects.iter().map(|(name, _)| name.as_str());
    let response = match kind {
        Kind::Json => {
            let projects: Vec<Value> = names.map(|n| json!({ "name": n })).collect();
            Response::new(
                200,
                JSON_V1,
                json!({ "meta": { "api-version": "1.1" }, "projects": projects }).to_string(),
            )
        }
        Kind::Html(content_type) => {
            let mut html = String::from(
                "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\">\
                 <title>Simple index</title></head><body>\n",
            );
            for name in names {
                let _ = writeln!(html, "<a href=\"{name}/\">{name}</a><br/>");
            }
            html.push_str("</body></html>\n");
            Response::new(200, content_type, html)
        }
    };
    Ok(revalidated(head, response))
}

/// One project's files, oldest key first (file names sort by version only roughly; clients sort themselves).
fn files(ctx: &Context<'_>, repo: &str, project: &str) -> Result<Vec<FileRecord>, Problem> {
    let records = ctx
        .store
        .meta()
        .kvs(repo, &file_key(project, ""), None, MAX_FILES)?;
    records
        .into_iter()
        .map(|(_, bytes)| serde_json::from_slice(&bytes).map_err(Problem::internal))
        .collect()
}

/// Yank reasons by version, for the versions of these files.
fn yanks(ctx: &Context<'_>, repo: &str, project: &str) -> Result<HashMap<String, String>, Problem> {
    let entries = ctx
        .store
        .meta()
        .kvs(repo, &yank_key(project, ""), None, MAX_FILES)?;
    let prefix = yank_key(project, "");
    Ok(entries
        .into_iter()
        .map(|(key, reason)| {
            let version = key.strip_prefix(&prefix).unwrap_or(&key).to_string();
            (version, String::from_utf8_lossy(&reason).into_owned())
        })
        .collect())
}

fn file_url(head: &RequestHead, project: &str, filename: &str) -> String {
    format!(
        "{}/packages/{project}/{}",
        head.base_url,
        url_escape(filename)
    )
}

pub fn project(ctx: &Context<'_>, head: &RequestHead, project: &str) -> Result<Plan, Problem> {
    let kind = negotiate(head)?;
    let repo = head.repository.as_str();
    let files = files(ctx, repo, project)?;
    if files.is_empty() {
        return Err(pypi_error(404, format!("no project named `{project}`")));
    }
    let yanks = yanks(ctx, repo, project)?;
    let response = match kind {
        Kind::Json => {
            let mut versions: Vec<pep440_rs::Version> = files
                .iter()
                .filter_map(|f| f.version.parse().ok())
                .collect();
            versions.sort();
            versions.dedup();
            let rendered: Vec<Value> = files
                .iter()
                .map(|f| {
                    let yanked = match yanks.get(&f.version) {
                        Some(reason) if !reason.is_empty() => json!(reason),
                        Some(_) => json!(true),
                        None => json!(false),
                    };
                    let metadata = json!({ "sha256": f.metadata_sha256 });
                    json!({
                        "filename": f.filename,
                        "url": file_url(head, project, &f.filename),
                        "hashes": { "sha256": f.sha256 },
                        "requires-python": f.info.requires_python,
                        "size": f.size,
                        "upload-time": iso(f.uploaded),
                        "yanked": yanked,
                        "core-metadata": metadata,
                        "dist-info-metadata": metadata,
                    })
                })
                .collect();
            let body = json!({
                "meta": { "api-version": "1.1" },
                "name": project,
                "versions": versions.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "files": rendered,
            });
            Response::new(200, JSON_V1, body.to_string())
        }
        Kind::Html(content_type) => {
            let mut html = format!(
                "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\">\
                 <title>Links for {project}</title></head><body>\n<h1>Links for {project}</h1>\n"
            );
            for f in &files {
                let _ = write!(
                    html,
                    "<a href=\"{}#sha256={}\"",
                    file_url(head, project, &f.filename),
                    f.sha256
                );
                if let Some(requires) = &f.info.requires_python {
                    let _ = write!(html, " data-requires-python=\"{}\"", escape(requires));
                }
                let _ = write!(
                    html,
                    " data-dist-info-metadata=\"sha256={0}\" data-core-metadata=\"sha256={0}\"",
                    f.metadata_sha256
                );
                if let Some(reason) = yanks.get(&f.version) {
                    let _ = write!(html, " data-yanked=\"{}\"", escape(reason));
                }
                let _ = writeln!(html, ">{}</a><br/>", escape(&f.filename));
            }
            html.push_str("</body></html>\n");
            Response::new(200, content_type, html)
        }
    };
    Ok(revalidated(head, response))
}

/// The JSON project API (`/pypi/<project>/json`, `/pypi/<project>/<version>/json`) in the shape pip-audit and
/// similar tools read. There is no `vulnerabilities` key: this index has no advisory database, and an empty list
/// would read as a clean bill.
pub fn json_api(
    ctx: &Context<'_>,
    head: &RequestHead,
    project: &str,
    version: Option<&str>,
) -> Result<Plan, Problem> {
    let repo = head.repository.as_str();
    let files = files(ctx, repo, project)?;
    if files.is_empty() {
        return Err(pypi_error(404, format!("no project named `{project}`")));
    }
    let yanks = yanks(ctx, repo, project)?;
    let mut releases: BTreeMap<pep440_rs::Version, Vec<&FileRecord>> = BTreeMap::new();
    for f in &files {
        if let Ok(v) = f.version.parse() {
            releases.entry(v).or_default().push(f);
        }
    }
    let chosen = match version {
        Some(v) => {
            let v = parse_version(v)?;
            releases
                .contains_key(&v)
                .then_some(v.clone())
                .ok_or_else(|| pypi_error(404, format!("{project} has no version {v}")))?
        }
        // The newest release that is neither yanked nor a pre-release; failing that, the newest.
        None => releases
            .keys()
            .rev()
            .find(|v| !v.any_prerelease() && !yanks.contains_key(&v.to_string()))
            .or_else(|| releases.keys().next_back())
            .cloned()
            .ok_or_else(|| pypi_error(404, format!("no project named `{project}`")))?,
    };
    let render_file = |f: &FileRecord| {
        let reason = yanks.get(&f.version);
        json!({
            "filename": f.filename,
            "url": file_url(head, project, &f.filename),
            "digests": { "sha256": f.sha256, "md5": f.md5 },
            "md5_digest": f.md5,
            "size": f.size,
            "packagetype": f.packagetype,
            "python_version": f.python_version,
            "requires_python": f.info.requires_python,
            "upload_time": iso(f.uploaded).trim_end_matches(".000Z"),
            "upload_time_iso_8601": iso(f.uploaded),
            "yanked": reason.is_some(),
            "yanked_reason": reason.filter(|r| !r.is_empty()),
        })
    };
    let latest = releases[&chosen][0];
    let reason = yanks.get(&latest.version);
    let info = &latest.info;
    let mut body = json!({
        "info": {
            "name": info.name,
            "version": latest.version,
            "summary": info.summary,
            "requires_python": info.requires_python,
            "requires_dist": (!info.requires_dist.is_empty()).then_some(&info.requires_dist),
            "author": info.author,
            "author_email": info.author_email,
            "license": info.license,
            "home_page": info.home_page,
            "package_url": format!("{}/simple/{project}/", head.base_url),
            "project_url": format!("{}/simple/{project}/", head.base_url),
            "yanked": reason.is_some(),
            "yanked_reason": reason.filter(|r| !r.is_empty()),
        },
        "last_serial": 0,
        "urls": releases[&chosen].iter().map(|f| render_file(f)).collect::<Vec<_>>(),
    });
    if version.is_none() {
        body["releases"] = releases
            .iter()
            .map(|(v, files)| {
                let rendered: Vec<Value> = files.iter().map(|f| render_file(f)).collect();
                (v.to_string(), Value::Array(rendered))
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    Ok(Plan::Respond(Response::json(200, &body)))
}

/// Adds an ETag (the body's hash) and answers 304 to a client that already has this body.
fn revalidated(head: &RequestHead, response: Response) -> Plan {
    let (etag, fresh) = crate::etag(head, &response.body);
    if fresh {
        return Plan::Respond(Response::empty(304).with_header("etag", etag));
    }
    Plan::Respond(
        response
            .with_header("etag", etag)
            .with_header("vary", "Accept")
            .with_header("cache-control", "max-age=0, must-revalidate"),
    )
}

/// HTML text and attribute escaping.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes what is not safe in a URL path segment (a local version's `+`, for one).
fn url_escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_accept(accept: Option<&str>) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            path: "simple/".into(),
            query: None,
            headers: accept
                .map(|a| vec![("accept".to_string(), a.to_string())])
                .unwrap_or_default(),
            repository: "pypi".into(),
            principal: None,
            content_length: None,
            base_url: "http://h/repository/pypi".into(),
            allow_overwrite: false,
        }
    }

    #[test]
    fn content_negotiation_follows_pep_691() {
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(negotiate(&with_accept(Some(pip))), Ok(Kind::Json));
        assert_eq!(
            negotiate(&with_accept(Some(
                "text/html, application/vnd.pypi.simple.v1+json;q=0.5"
            ))),
            Ok(Kind::Html("text/html; charset=utf-8"))
        );
        assert_eq!(
            negotiate(&with_accept(Some(HTML_V1))),
            Ok(Kind::Html(HTML_V1))
        );
        assert_eq!(
            negotiate(&with_accept(None)),
            Ok(Kind::Html("text/html; charset=utf-8"))
        );
        assert_eq!(
            negotiate(&with_accept(Some("application/xml"))).map_err(|p| p.status),
            Err(406)
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(escape(">=3.8, <4"), "&gt;=3.8, &lt;4");
        assert_eq!(url_escape("a-1.0+local.whl"), "a-1.0%2Blocal.whl");
    }
}
