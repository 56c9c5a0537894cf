//! `pypi`: a Python package index at `/repository/<repo>/`, for pip, uv and twine.
//!
//! ```text
//! simple/                         PEP 503 HTML or PEP 691 JSON, by the Accept header: every project
//! simple/<project>/               the project's files, with hashes, requires-python, yanking, core metadata
//! packages/<project>/<file>       a file; `<file>.metadata` its core metadata (PEP 658/714)
//! pypi/<project>/json             the JSON project API (pypi/<project>/<version>/json for one version)
//! legacy, legacy/                 POST: twine's upload (multipart, `:action=file_upload`)
//! ```
//!
//! How it maps onto the shared model:
//!
//! ```text
//! project (normalized, PEP 503)   package
//! release (normalized, PEP 440)   version: no blobs of its own, it ties the files to retention and promotion
//! file                            asset <project>/<file>, create-only: a file name is used once
//! core metadata                   asset <project>/<file>.metadata, the bytes of the file's METADATA or PKG-INFO
//! kv  pypi:file:<project>/<file>  what the pages show of the file (hashes, size, requires-python, metadata)
//! kv  pypi:yank:<project>/<ver>   a yanked release, with its reason
//! ```

mod endpoint;
mod pages;
mod upload;

use wharf_storage::{Want, Write};

use crate::{Access, Commit, Context, Form, Format, Plan, Problem, RequestHead, Response};
use endpoint::Endpoint;

pub struct Pypi;

/// A PyPI error: the message goes in the body and in the reason phrase, which is what twine prints.
pub fn pypi_error(status: u16, message: impl Into<String>) -> Problem {
    Problem::new(status, "PYPI", message)
}

/// PEP 503: lower case, and every run of `-`, `_` and `.` is one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// PEP 508 project names: ASCII letters and digits, with `.`, `_`, `-` inside; at most 200 characters here.
pub fn valid_name(name: &str) -> bool {
    let inner_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    !name.is_empty()
        && name.len() <= 200
        && name.chars().all(inner_ok)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn file_key(project: &str, filename: &str) -> String {
    format!("pypi:file:{project}/{filename}")
}

fn yank_key(project: &str, version: &str) -> String {
    format!("pypi:yank:{project}/{version}")
}

/// A release's normalized version, or a 400 naming what was given.
fn parse_version(raw: &str) -> Result<pep440_rs::Version, Problem> {
    raw.parse::<pep440_rs::Version>().map_err(|_| {
        pypi_error(
            400,
            format!(
                "Invalid version `{}`: it is not a PEP 440 version",
                raw.chars().take(100).collect::<String>()
            ),
        )
    })
}

/// The writes that remove a release: its yank mark and the release itself. Its files go in `expired`, which reads
/// the project's file records once for all the releases a run removes, rather than once per release.
fn expire(repo: &str, project: &str, version: &str) -> Vec<Write> {
    vec![
        Write::DeleteKv {
            repo: repo.into(),
            key: yank_key(project, version),
        },
        Write::DeleteVersion {
            repo: repo.into(),
            package: project.into(),
            version: version.into(),
        },
    ]
}

/// The files of the releases a run removes from one project: each file with its core metadata and page record.
fn expired(
    ctx: &Context<'_>,
    repo: &str,
    decisions: &[crate::retention::Decision],
) -> Result<Vec<Write>, Problem> {
    let removed: std::collections::HashSet<&str> = decisions
        .iter()
        .filter(|d| d.remove)
        .map(|d| d.item.version.as_str())
        .collect();
    let Some(project) = decisions.first().map(|d| &*d.item.package) else {
        return Ok(Vec::new());
    };
    let prefix = file_key(project, "");
    let mut writes = Vec::new();
    let files =
        crate::retention::paged(|after, limit| ctx.store.meta().kvs(repo, &prefix, after, limit))?;
    for (key, record) in files {
        let record: serde_json::Value =
            serde_json::from_slice(&record).map_err(Problem::internal)?;
        if !record["version"]
            .as_str()
            .is_some_and(|v| removed.contains(v))
        {
            continue;
        }
        let path = format!("{project}/{}", &key[prefix.len()..]);
        writes.push(Write::DeleteAsset {
            repo: repo.into(),
            path: format!("{path}.metadata"),
        });
        writes.push(Write::DeleteAsset {
            repo: repo.into(),
            path,
        });
        writes.push(Write::DeleteKv {
            repo: repo.into(),
            key,
        });
    }
    Ok(writes)
}

impl Format for Pypi {
    fn name(&self) -> &str {
        "pypi"
    }

    fn expire(
        &self,
        _ctx: &Context<'_>,
        repo: &str,
        item: &crate::retention::Item,
    ) -> Result<Vec<Write>, Problem> {
        Ok(expire(repo, &item.package, &item.version))
    }

    fn expired(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        decisions: &[crate::retention::Decision],
    ) -> Result<Vec<Write>, Problem> {
        expired(ctx, repo, decisions)
    }

    fn classify(&self, head: &RequestHead) -> Result<Access, Problem> {
        Ok(match Endpoint::parse(head)? {
            Endpoint::Upload => Access::Write,
            _ => Access::Read,
        })
    }

    fn handle(&self, ctx: &Context<'_>, head: &RequestHead) -> Result<Plan, Problem> {
        match Endpoint::parse(head)? {
            Endpoint::Index => pages::index(ctx, head),
            Endpoint::Project(name) => pages::project(ctx, head, &name),
            Endpoint::Json { project, version } => {
                pages::json_api(ctx, head, &project, version.as_deref())
            }
            Endpoint::File { project, filename } => serve(ctx, head, &project, &filename, false),
            Endpoint::Metadata { project, filename } => serve(ctx, head, &project, &filename, true),
            Endpoint::Upload => Ok(Plan::Form {
                max_size: ctx.max_upload,
                max_files: 2,
                want: Want {
                    md5: true,
                    ..Want::NONE
                },
            }),
        }
    }

    fn commit_form(
        &self,
        ctx: &Context<'_>,
        head: &RequestHead,
        form: &Form,
    ) -> Result<Commit, Problem> {
        upload::commit(ctx, head, form)
    }

    fn yank(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        project: &str,
        version: &str,
        reason: Option<&str>,
    ) -> Result<Commit, Problem> {
        let project = normalize(project);
        let version = parse_version(version)?.to_string();
        if ctx
            .store
            .meta()
            .version(repo, &project, &version)?
            .is_none()
        {
            return Err(pypi_error(
                404,
                format!("{project} {version} is not in {repo}"),
            ));
        }
        let key = yank_key(&project, &version);
        let write = match reason {
            Some(reason) => Write::PutKv {
                repo: repo.into(),
                key,
                value: reason.as_bytes().to_vec(),
            },
            None => Write::DeleteKv {
                repo: repo.into(),
                key,
            },
        };
        let body = serde_json::json!({
            "project": project, "version": version, "yanked": reason.is_some(), "reason": reason,
        });
        Ok(Commit::new(vec![write], Response::json(200, &body)))
    }

    fn render(&self, problem: &Problem) -> Response {
        Response::plain_error(problem)
    }
}

/// A file, or its core metadata, straight from the blob store.
fn serve(
    ctx: &Context<'_>,
    head: &RequestHead,
    project: &str,
    filename: &str,
    metadata: bool,
) -> Result<Plan, Problem> {
    let repo = head.repository.as_str();
    let path = match metadata {
        true => format!("{project}/{filename}.metadata"),
        false => format!("{project}/{filename}"),
    };
    let asset = ctx
        .store
        .meta()
        .asset(repo, &path)?
        .ok_or_else(|| pypi_error(404, format!("{path} not found")))?;
    if !metadata {
        crate::note_file_pull(ctx, head, &asset);
    }
    let content_type = match metadata {
        true => "text/plain; charset=utf-8",
        false => "application/octet-stream",
    };
    Ok(Plan::Serve {
        digest: asset.digest,
        status: 200,
        headers: vec![("content-type".into(), content_type.into())],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_as_pep_503_says() {
        for name in ["Foo_Bar", "foo-bar", "foo.bar", "FOO__bar", "foo-._bar"] {
            assert_eq!(normalize(name), "foo-bar", "{name}");
        }
        assert!(valid_name("Foo_Bar.2"));
        for bad in ["", "-x", "x-", "a b", "ä", "a/b", &"x".repeat(201)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
