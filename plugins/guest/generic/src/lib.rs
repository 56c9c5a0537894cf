//! `generic` as a plugin: any file at any path. `PUT` stores (an `X-Checksum-Sha256`, `-Sha1` or `-Md5` sent with it
//! is verified, and a PUT with the sha256 header and no body deploys by checksum when the blob is already stored),
//! `GET`/`HEAD` serve with Range and `X-Checksum-Sha256`, `-Sha1`, `-Md5`, `DELETE` removes. Errors in
//! Artifactory's JSON shape. The sha1 and md5 of a body sent without them are computed by the host after the 201
//! (`later`), and served from then on.
//!
//! For retention, a directory is a package and each file in it a version of that package (the root directory is
//! the package `/`), so "keep the newest N" counts per directory and "expire after N days" dates each file.

use wharf_plugin_sdk::*;

struct Generic;

/// The checksums GET and HEAD answer with beside the sha256.
const SERVED: Want = Want {
    sha1: true,
    md5: true,
    sha512: false,
};

/// `METHOD path` parsed once.
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
            _ => Err(problem(
                405,
                "METHOD_NOT_ALLOWED",
                "method not allowed here",
            )),
        }
    }
}

fn not_found(path: &str) -> Problem {
    problem(404, "NOT_FOUND", format!("{path} not found"))
}

/// The digest an `X-Checksum-Sha256` header names.
fn expected(head: &RequestHead) -> Result<Option<String>, Problem> {
    let Some(value) = header(head, "x-checksum-sha256") else {
        return Ok(None);
    };
    let hex = value.trim().to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(problem(
            400,
            "BAD_REQUEST",
            format!("X-Checksum-Sha256 `{value}` is not a sha256"),
        ));
    }
    Ok(Some(format!("sha256:{hex}")))
}

/// Refuses a body whose sha1 or md5 differs from an `X-Checksum-Sha1` or `-Md5` the client sent.
fn verify_sent(head: &RequestHead, blob: &BlobInfo) -> Result<(), Problem> {
    for (name, ours) in [
        ("x-checksum-sha1", &blob.checksums.sha1),
        ("x-checksum-md5", &blob.checksums.md5),
    ] {
        if let (Some(sent), Some(ours)) = (header(head, name), ours)
            && !sent.trim().eq_ignore_ascii_case(ours)
        {
            return Err(problem(
                400,
                "BAD_REQUEST",
                format!("{name} `{sent}` does not match the body's, {ours}"),
            ));
        }
    }
    Ok(())
}

/// The package and version a file is for retention: its directory (`/` for the root) and its name.
fn package_of(path: &str) -> (String, String) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir.to_string(), name.to_string()),
        None => ("/".to_string(), path.to_string()),
    }
}

/// The path of a file from its package and version.
fn path_of(package: &str, version: &str) -> String {
    match package {
        "/" => version.to_string(),
        dir => format!("{dir}/{version}"),
    }
}

/// The writes that remove a file. Files stored before files had versions have none to remove.
fn removal(path: String) -> Vec<Write> {
    let (package, version) = package_of(&path);
    let mut writes = vec![Write::DeleteAsset(path)];
    if store::get_version(&package, &version).is_some() {
        writes.push(Write::DeleteVersion((package, version)));
    }
    writes
}

/// The file's record and the JSON answer Artifactory gives to a deploy.
fn stored(head: &RequestHead, path: String, blob: BlobInfo) -> Commit {
    // sha1 and md5 are there when known by now: sent by the client, or the blob was stored before.
    let mut checksums = serde_json::json!({ "sha256": blob.digest.trim_start_matches("sha256:") });
    for (name, value) in [("sha1", blob.checksums.sha1), ("md5", blob.checksums.md5)] {
        if let Some(value) = value {
            checksums[name] = value.into();
        }
    }
    let body = serde_json::json!({
        "repo": head.repository,
        "path": format!("/{path}"),
        "size": blob.size,
        "checksums": checksums,
        "downloadUri": format!("{}/{path}", head.base_url),
    });
    let (package, version) = package_of(&path);
    let created = store::now();
    let asset = Asset {
        digest: blob.digest,
        size: blob.size,
        package: Some(package.clone()),
        version: Some(version.clone()),
        content_type: header(head, "content-type").map(str::to_string),
        created,
    };
    let record = Version {
        blobs: Vec::new(),
        metadata: "{}".into(),
        created,
    };
    commit(
        vec![
            Write::PutAsset(PutAsset {
                path,
                asset,
                replace: true,
            }),
            Write::PutVersion(PutVersion {
                package,
                version,
                record,
                replace: true,
            }),
        ],
        response(201, "application/json", body.to_string()),
    )
}

impl Format for Generic {
    fn describe() -> PluginInfo {
        PluginInfo {
            format: "generic".into(),
            api_version: API_VERSION,
        }
    }

    fn classify(head: RequestHead) -> Result<Access, Problem> {
        Ok(match Endpoint::parse(&head)? {
            Endpoint::Get(_) => Access::Read,
            Endpoint::Put(_) => Access::Write,
            Endpoint::Delete(_) => Access::Delete,
        })
    }

    fn handle(head: RequestHead) -> Result<Plan, Problem> {
        match Endpoint::parse(&head)? {
            Endpoint::Get(path) => {
                let asset = store::get_asset(&path).ok_or_else(|| not_found(&path))?;
                let blob = store::get_blob(&asset.digest).ok_or_else(|| not_found(&path))?;
                note_file_pull(&head, &asset);
                let mut headers = vec![
                    (
                        "content-type".to_string(),
                        asset
                            .content_type
                            .unwrap_or("application/octet-stream".into()),
                    ),
                    (
                        "x-checksum-sha256".to_string(),
                        asset.digest.trim_start_matches("sha256:").to_string(),
                    ),
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
                Ok(Plan::Serve(ServeBlob {
                    digest: asset.digest,
                    status: 200,
                    headers,
                }))
            }
            Endpoint::Put(path) => {
                let expected = expected(&head)?;
                // Deploy by checksum: no body, and the blob is already here.
                if let (Some(0), Some(digest)) = (head.content_length, &expected) {
                    store::get_blob(digest).ok_or_else(|| {
                        not_found(&format!("a blob with that checksum for {path}"))
                    })?;
                    return Ok(Plan::Buffer(0));
                }
                // sha1 and md5 are computed while the body streams in only when the client sent one to verify;
                // otherwise after the response, since md5 alone costs more CPU than receiving the bytes.
                let want = Want {
                    sha1: header(&head, "x-checksum-sha1").is_some(),
                    md5: header(&head, "x-checksum-md5").is_some(),
                    sha512: false,
                };
                Ok(Plan::Ingest(IngestBody {
                    expected,
                    max_size: u64::MAX,
                    want,
                    later: SERVED,
                }))
            }
            Endpoint::Delete(path) => {
                store::get_asset(&path).ok_or_else(|| not_found(&path))?;
                Ok(Plan::Buffer(0))
            }
        }
    }

    fn commit_ingested(head: RequestHead, blob: BlobInfo) -> Result<Commit, Problem> {
        match Endpoint::parse(&head)? {
            Endpoint::Put(path) => {
                verify_sent(&head, &blob)?;
                Ok(stored(&head, path, blob))
            }
            _ => Err(problem(
                405,
                "METHOD_NOT_ALLOWED",
                "method not allowed here",
            )),
        }
    }

    fn commit_buffered(head: RequestHead, _body: Vec<u8>) -> Result<Commit, Problem> {
        match Endpoint::parse(&head)? {
            Endpoint::Put(path) => {
                let digest = expected(&head)?.ok_or_else(|| not_found(&path))?;
                let blob = store::get_blob(&digest).ok_or_else(|| not_found(&path))?;
                Ok(stored(&head, path, blob))
            }
            Endpoint::Delete(path) => Ok(commit(removal(path), response(204, "text/plain", ""))),
            Endpoint::Get(_) => Err(problem(
                405,
                "METHOD_NOT_ALLOWED",
                "method not allowed here",
            )),
        }
    }

    fn commit_form(_head: RequestHead, _form: Form) -> Result<Commit, Problem> {
        Err(problem(500, "INTERNAL_ERROR", "generic never reads a form"))
    }

    fn expire(package: String, version: String) -> Result<Vec<Write>, Problem> {
        Ok(removal(path_of(&package, &version)))
    }

    /// Artifactory's error shape, which generic-repository scripts already parse.
    fn render(problem: Problem) -> Response {
        let body = serde_json::json!({ "errors": [{ "status": problem.status, "message": problem.message }] });
        response(problem.status, "application/json", body.to_string())
    }
}

wharf_plugin_sdk::export!(Generic);
