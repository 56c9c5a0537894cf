//! `generic`: any file at any path. `PUT` stores, `GET`/`HEAD` serve (with Range), `DELETE` removes. Checksum
//! headers as Artifactory sends them: `X-Checksum-Sha256`, `-Sha1` and `-Md5` on a PUT are verified, and GET/HEAD
//! answer with all three. The sha1 and md5 of a body sent without them are computed after the 201, in the
//! background (`Store::checksum_later`); GET/HEAD carry them from then on.
//!
//! The bundled `generic` plugin (plugins/guest/generic) serves the `generic` format; this built-in twin is
//! `generic-builtin`, kept so one protocol suite runs against a plugin and a built-in format alike, and so the
//! format is still there when the plugins could not be built.
//!
//! For retention, a directory is a package and each file in it a version of that package (the root directory is
//! the package `/`), so "keep the newest N" counts per directory and "expire after N days" dates each file.

use wharf_storage::{Asset, BlobInfo, Digest, Want, Write, now};

use crate::{Access, Commit, Context, Format, Plan, Problem, RequestHead, Response, safe_path};

pub struct Generic;

/// The checksums GET and HEAD answer with beside the sha256.
const SERVED: Want = Want {
    sha1: true,
    md5: true,
    sha512: false,
};

/// `METHOD path` parsed once; the handlers match on it.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    Get(String),
    Put(String),
    Delete(String),
}

impl Endpoint {
    fn parse(head: &RequestHead) -> Result<Endpoint, Problem> {
        let path = safe_path(&head.path)?;
        match head.method.as_str() {
            "GET" | "HEAD" => Ok(Endpoint::Get(path)),
            "PUT" => Ok(Endpoint::Put(path)),
            "DELETE" => Ok(Endpoint::Delete(path)),
            _ => Err(Problem::method_not_allowed()),
        }
    }
}

impl Format for Generic {
    fn name(&self) -> &str {
        "generic"
    }

    fn classify(&self, head: &RequestHead) -> Result<Access, Problem> {
        Ok(match Endpoint::parse(head)? {
            Endpoint::Get(_) => Access::Read,
            Endpoint::Put(_) => Access::Write,
            Endpoint::Delete(_) => Access::Delete,
        })
    }

    fn handle(&self, ctx: &Context<'_>, head: &RequestHead) -> Result<Plan, Problem> {
        match Endpoint::parse(head)? {
            Endpoint::Get(path) => {
                let asset = ctx
                    .store
                    .meta()
                    .asset(&head.repository, &path)?
                    .ok_or_else(|| not_found(&path))?;
                let blob = ctx
                    .store
                    .blob(&asset.digest)?
                    .ok_or_else(|| not_found(&path))?;
                crate::note_file_pull(ctx, head, &asset);
                let mut headers = vec![
                    (
                        "content-type".to_string(),
                        asset
                            .content_type
                            .unwrap_or("application/octet-stream".into()),
                    ),
                    ("x-checksum-sha256".to_string(), asset.digest.hex()),
                ];
                headers.extend(
                    blob.checksums
                        .sha1
                        .map(|v| ("x-checksum-sha1".to_string(), v)),
                );
                headers.extend(
                    blob.checksums
                        .md5
                        .map(|v| ("x-checksum-md5".to_string(), v)),
                );
                Ok(Plan::Serve {
                    digest: asset.digest,
                    status: 200,
                    headers,
                })
            }
            Endpoint::Put(path) => {
                let expected = match head.header("x-checksum-sha256") {
                    Some(v) => Some(
                        v.parse::<Digest>()
                            .map_err(|e| Problem::bad_request(e.to_string()))?,
                    ),
                    None => None,
                };
                // Deploy by checksum: no body, and the blob is already here.
                if let (Some(0), Some(digest)) = (head.content_length, expected) {
                    ctx.store.blob(&digest)?.ok_or_else(|| {
                        not_found(&format!("a blob with that checksum for {path}"))
                    })?;
                    return Ok(Plan::Buffer(0));
                }
                // sha1 and md5 are computed while the body streams in only when the client sent one to verify;
                // otherwise after the response, since md5 alone costs more CPU than receiving the bytes.
                Ok(Plan::Ingest {
                    expected,
                    max_size: ctx.max_upload,
                    want: Want {
                        sha1: head.header("x-checksum-sha1").is_some(),
                        md5: head.header("x-checksum-md5").is_some(),
                        sha512: false,
                    },
                    later: SERVED,
                })
            }
            Endpoint::Delete(path) => {
                ctx.store
                    .meta()
                    .asset(&head.repository, &path)?
                    .ok_or_else(|| not_found(&path))?;
                Ok(Plan::Buffer(0))
            }
        }
    }

    fn commit_ingested(
        &self,
        _ctx: &Context<'_>,
        head: &RequestHead,
        blob: &BlobInfo,
    ) -> Result<Commit, Problem> {
        let Endpoint::Put(path) = Endpoint::parse(head)? else {
            return Err(Problem::method_not_allowed());
        };
        for (name, ours) in [
            ("x-checksum-sha1", &blob.checksums.sha1),
            ("x-checksum-md5", &blob.checksums.md5),
        ] {
            if let (Some(sent), Some(ours)) = (head.header(name), ours)
                && !sent.trim().eq_ignore_ascii_case(ours)
            {
                return Err(Problem::bad_request(format!(
                    "{name} `{sent}` does not match the body's, {ours}"
                )));
            }
        }
        let (package, version) = package_of(&path);
        let time = now();
        let asset = Asset {
            digest: blob.digest,
            size: blob.size,
            package: Some(package.clone()),
            version: Some(version.clone()),
            content_type: head.header("content-type").map(str::to_string),
            created: time,
        };
        // sha1 and md5 are there when known by now: sent by the client, or the blob was stored before.
        let mut checksums = serde_json::json!(blob.checksums);
        checksums["sha256"] = blob.digest.hex().into();
        let body = serde_json::json!({
            "repo": head.repository,
            "path": format!("/{path}"),
            "size": blob.size,
            "checksums": checksums,
            "downloadUri": format!("{}/{path}", head.base_url),
        });
        Ok(Commit {
            blobs: Vec::new(),
            writes: vec![
                Write::PutAsset {
                    repo: head.repository.clone(),
                    path,
                    asset,
                    replace: true,
                },
                crate::version_of_files(&head.repository, package, version, time),
            ],
            response: Response::json(201, &body),
        })
    }

    fn commit_buffered(
        &self,
        ctx: &Context<'_>,
        head: &RequestHead,
        _body: &[u8],
    ) -> Result<Commit, Problem> {
        let path = match Endpoint::parse(head)? {
            Endpoint::Delete(path) => path,
            Endpoint::Put(path) => {
                let digest = head
                    .header("x-checksum-sha256")
                    .and_then(|v| v.parse::<Digest>().ok())
                    .ok_or_else(|| not_found(&path))?;
                let blob = ctx.store.blob(&digest)?.ok_or_else(|| not_found(&path))?;
                return self.commit_ingested(ctx, head, &blob);
            }
            Endpoint::Get(_) => return Err(Problem::method_not_allowed()),
        };
        Ok(Commit {
            blobs: Vec::new(),
            writes: removal(ctx, &head.repository, path)?,
            response: Response::empty(204),
        })
    }

    fn expire(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        item: &crate::retention::Item,
    ) -> Result<Vec<Write>, Problem> {
        let path = match &*item.package {
            "/" => item.version.clone(),
            dir => format!("{dir}/{}", item.version),
        };
        removal(ctx, repo, path)
    }

    /// Artifactory's error shape, which generic-repository scripts already parse.
    fn render(&self, problem: &Problem) -> Response {
        Response::json(
            problem.status,
            &serde_json::json!({ "errors": [{ "status": problem.status, "message": problem.message }] }),
        )
    }
}

/// The package and version a file is for retention: its directory (`/` for the root) and its name.
fn package_of(path: &str) -> (String, String) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir.to_string(), name.to_string()),
        None => ("/".to_string(), path.to_string()),
    }
}

/// The writes that remove a file. Files stored before files had versions have none to remove.
fn removal(ctx: &Context<'_>, repo: &str, path: String) -> Result<Vec<Write>, Problem> {
    let (package, version) = package_of(&path);
    let mut writes = vec![Write::DeleteAsset {
        repo: repo.into(),
        path,
    }];
    if ctx
        .store
        .meta()
        .version(repo, &package, &version)?
        .is_some()
    {
        writes.push(Write::DeleteVersion {
            repo: repo.into(),
            package,
            version,
        });
    }
    Ok(writes)
}

fn not_found(path: &str) -> Problem {
    Problem::not_found(format!("{path} not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, path: &str) -> RequestHead {
        RequestHead {
            method: method.into(),
            path: path.into(),
            query: None,
            headers: vec![],
            repository: "generic".into(),
            principal: None,
            content_length: None,
            base_url: "http://x/repository/generic".into(),
            allow_overwrite: false,
        }
    }

    #[test]
    fn endpoints() {
        let rows = [
            ("GET", "a/b.bin", Ok(Endpoint::Get("a/b.bin".into()))),
            ("HEAD", "a/b.bin", Ok(Endpoint::Get("a/b.bin".into()))),
            ("PUT", "v1/tool%20x", Ok(Endpoint::Put("v1/tool x".into()))),
            ("DELETE", "old", Ok(Endpoint::Delete("old".into()))),
            ("POST", "x", Err(405)),
            ("GET", "../x", Err(400)),
            ("PUT", "a/%2e%2e/x", Err(400)),
        ];
        for (method, path, want) in rows {
            let got = Endpoint::parse(&head(method, path)).map_err(|p| p.status);
            assert_eq!(got, want, "{method} {path}");
        }
        assert_eq!(Generic.classify(&head("DELETE", "x")), Ok(Access::Delete));
    }
}
