//! The plugin contract's types (generated from `plugins/wit/format.wit`) to and from the host's `Format` types. Each
//! conversion of what a plugin sends back is checked: a digest must be a sha256, sizes are capped.

use wharf_formats as f;
use wharf_storage as s;

use crate::bindings::exports::wharf::format::handler as h;
use crate::bindings::wharf::format::types as t;

/// The largest generated body or small document a plugin may hand back.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

pub fn digest(d: &s::Digest) -> String {
    format!("sha256:{}", d.hex())
}

pub fn parse_digest(text: &str) -> Result<s::Digest, f::Problem> {
    text.parse::<s::Digest>()
        .map_err(|_| misbehaved(format!("`{text}` is not a sha256 digest")))
}

/// A plugin broke the contract: the client gets a 500, the log the reason.
pub fn misbehaved(detail: impl Into<String>) -> f::Problem {
    f::Problem {
        detail: Some(detail.into()),
        ..f::Problem::new(
            500,
            "PLUGIN_FAILED",
            "the format plugin failed on this request",
        )
    }
}

pub fn head(head: &f::RequestHead) -> t::RequestHead {
    t::RequestHead {
        method: head.method.clone(),
        path: head.path.clone(),
        query: head.query.clone(),
        headers: head.headers.clone(),
        repository: head.repository.clone(),
        principal: head.principal.clone(),
        content_length: head.content_length,
        base_url: head.base_url.clone(),
        allow_overwrite: head.allow_overwrite,
    }
}

pub fn checksums(c: &s::Checksums) -> t::Checksums {
    t::Checksums {
        sha1: c.sha1.clone(),
        md5: c.md5.clone(),
        sha512: c.sha512.clone(),
    }
}

pub fn blob(b: &s::BlobInfo) -> t::BlobInfo {
    t::BlobInfo {
        digest: digest(&b.digest),
        size: b.size,
        checksums: checksums(&b.checksums),
    }
}

pub fn want(w: t::Want) -> s::Want {
    s::Want {
        sha1: w.sha1,
        md5: w.md5,
        sha512: w.sha512,
    }
}

pub fn asset_out(a: &s::Asset) -> t::Asset {
    t::Asset {
        digest: digest(&a.digest),
        size: a.size,
        package: a.package.clone(),
        version: a.version.clone(),
        content_type: a.content_type.clone(),
        created: a.created,
    }
}

pub fn version_out(v: &s::Version) -> t::Version {
    t::Version {
        blobs: v.blobs.iter().map(digest).collect(),
        metadata: v.metadata.to_string(),
        created: v.created,
    }
}

pub fn form(form: &f::Form) -> t::Form {
    t::Form {
        fields: form.fields.clone(),
        files: form
            .files
            .iter()
            .map(|file| t::FormFile {
                field: file.field.clone(),
                filename: file.filename.clone(),
                blob: blob(&file.blob),
            })
            .collect(),
    }
}

pub fn access(a: t::Access) -> f::Access {
    match a {
        t::Access::Open => f::Access::Open,
        t::Access::Read => f::Access::Read,
        t::Access::Write => f::Access::Write,
        t::Access::Delete => f::Access::Delete,
    }
}

pub fn problem_in(p: t::Problem) -> f::Problem {
    f::Problem {
        status: p.status,
        code: p.code,
        message: p.message,
        detail: p.detail,
        headers: p.headers,
    }
}

pub fn problem_out(p: &f::Problem) -> t::Problem {
    t::Problem {
        status: p.status,
        code: p.code.clone(),
        message: p.message.clone(),
        detail: None,
        headers: p.headers.clone(),
    }
}

pub fn response(r: t::Response) -> Result<f::Response, f::Problem> {
    if r.body.len() > MAX_BODY {
        return Err(misbehaved(format!(
            "a generated body of {} bytes, over {MAX_BODY}",
            r.body.len()
        )));
    }
    Ok(f::Response {
        status: r.status,
        headers: r.headers,
        body: r.body.into(),
        reason: r.reason,
    })
}

pub fn plan(p: h::Plan) -> Result<f::Plan, f::Problem> {
    Ok(match p {
        h::Plan::Respond(r) => f::Plan::Respond(response(r)?),
        h::Plan::Serve(s) => f::Plan::Serve {
            digest: parse_digest(&s.digest)?,
            status: s.status,
            headers: s.headers,
        },
        h::Plan::Redirect(to) => f::Plan::Redirect(to),
        h::Plan::Ingest(i) => f::Plan::Ingest {
            expected: i.expected.as_deref().map(parse_digest).transpose()?,
            max_size: i.max_size,
            want: want(i.want),
            later: want(i.later),
        },
        h::Plan::Buffer(max) => f::Plan::Buffer(max),
        h::Plan::Form(form) => f::Plan::Form {
            max_size: form.max_size,
            max_files: form.max_files as usize,
            want: want(form.want),
        },
    })
}

/// A plugin's commit, its writes scoped to the request's repository.
pub fn commit(c: h::Commit, repo: &str) -> Result<f::Commit, f::Problem> {
    if c.blobs.iter().map(Vec::len).sum::<usize>() > MAX_BODY {
        return Err(misbehaved("small documents over the limit"));
    }
    Ok(f::Commit {
        blobs: c.blobs.into_iter().map(Into::into).collect(),
        writes: writes(c.writes, repo)?,
        response: response(c.response)?,
    })
}

/// A plugin's writes, every one scoped to `repo`: a plugin cannot touch another repository.
pub fn writes(writes: Vec<h::Write>, repo: &str) -> Result<Vec<s::Write>, f::Problem> {
    let asset = |a: t::Asset| -> Result<s::Asset, f::Problem> {
        Ok(s::Asset {
            digest: parse_digest(&a.digest)?,
            size: a.size,
            package: a.package,
            version: a.version,
            content_type: a.content_type,
            created: a.created,
        })
    };
    let repo = repo.to_string();
    writes
        .into_iter()
        .map(|w| {
            Ok(match w {
                h::Write::PutVersion(v) => s::Write::PutVersion {
                    repo: repo.clone(),
                    package: v.package,
                    version: v.version,
                    record: s::Version {
                        blobs: v
                            .record
                            .blobs
                            .iter()
                            .map(|d| parse_digest(d))
                            .collect::<Result<_, _>>()?,
                        metadata: serde_json::from_str(&v.record.metadata).map_err(|e| {
                            misbehaved(format!("version metadata is not JSON: {e}"))
                        })?,
                        created: v.record.created,
                    },
                    replace: v.replace,
                },
                h::Write::DeleteVersion((package, version)) => s::Write::DeleteVersion {
                    repo: repo.clone(),
                    package,
                    version,
                },
                h::Write::PutTag(tag) => s::Write::PutTag {
                    repo: repo.clone(),
                    package: tag.package,
                    tag: tag.tag,
                    version: tag.version,
                },
                h::Write::DeleteTag((package, tag)) => s::Write::DeleteTag {
                    repo: repo.clone(),
                    package,
                    tag,
                },
                h::Write::PutAsset(a) => s::Write::PutAsset {
                    repo: repo.clone(),
                    path: a.path,
                    asset: asset(a.asset)?,
                    replace: a.replace,
                },
                h::Write::DeleteAsset(path) => s::Write::DeleteAsset {
                    repo: repo.clone(),
                    path,
                },
                h::Write::PutKv((key, value)) => s::Write::PutKv {
                    repo: repo.clone(),
                    key,
                    value,
                },
                h::Write::DeleteKv(key) => s::Write::DeleteKv {
                    repo: repo.clone(),
                    key,
                },
            })
        })
        .collect::<Result<Vec<_>, f::Problem>>()
}
