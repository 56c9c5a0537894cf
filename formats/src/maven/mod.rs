//! `maven`: a Maven 2 repository at `/repository/<repo>/`, for mvn (and Gradle, whose `.module` files are files
//! like any other).
//!
//! How it maps onto the shared model:
//!
//! ```text
//! groupId:artifactId              package
//! version (1.0, 1.0-SNAPSHOT)     version: no blobs of its own, it ties the files to retention and promotion
//! file                            asset at its path, create-only for a release (immutable), replaceable in a SNAPSHOT
//! checksums (.md5 .sha1 ...)      never stored: served from the hashes computed at ingest; an uploaded one is checked
//! maven-metadata.xml              never stored: generated from the versions and files on every read
//! ```

mod listing;
mod metadata;
mod path;
mod retention;

use wharf_storage::{Asset, BlobInfo, Checksums, Digest, Want, Write, now};

use crate::{Access, Commit, Context, Format, Plan, Problem, RequestHead, Response};
use path::{Algo, Artifact, Target};

pub struct Maven;

/// The largest POM or metadata file read, and the largest checksum file.
const MAX_XML: u64 = 1024 * 1024;
const MAX_CHECKSUM: u64 = 1024;

/// A Maven error: mvn prints the status and the reason phrase, so the message is both body and reason.
pub fn maven_error(status: u16, message: impl Into<String>) -> Problem {
    Problem::new(status, "MAVEN", message)
}

impl Format for Maven {
    fn name(&self) -> &str {
        "maven"
    }

    fn classify(&self, head: &RequestHead) -> Result<Access, Problem> {
        Ok(match head.method.as_str() {
            "PUT" => Access::Write,
            "DELETE" => Access::Delete,
            _ => Access::Read,
        })
    }

    fn handle(&self, ctx: &Context<'_>, head: &RequestHead) -> Result<Plan, Problem> {
        if matches!(head.method.as_str(), "GET" | "HEAD") {
            let found = path::parse(&head.path).and_then(|(t, algo)| read(ctx, head, &t, algo));
            // Only a miss pays for the directory check: a file that is found never does.
            return match found {
                Err(missed) if matches!(missed.status, 400 | 404) => {
                    match directory_without_slash(ctx, head)? {
                        Some(dir) => Ok(Plan::Redirect(format!("{}/{dir}/", head.base_url))),
                        None => Err(missed),
                    }
                }
                other => other,
            };
        }
        let (target, algo) = path::parse(&head.path)?;
        match head.method.as_str() {
            "PUT" => match (&target, algo) {
                (Target::Directory(_), _) => Err(not_allowed(head)),
                (Target::File { .. }, None) => Ok(Plan::Ingest {
                    expected: None,
                    max_size: ctx.max_upload,
                    want: Want::ALL,
                    later: Want::NONE,
                }),
                (_, Some(_)) => Ok(Plan::Buffer(MAX_CHECKSUM)),
                (_, None) => Ok(Plan::Buffer(MAX_XML)),
            },
            _ => Err(not_allowed(head)),
        }
    }

    fn commit_ingested(
        &self,
        ctx: &Context<'_>,
        head: &RequestHead,
        blob: &BlobInfo,
    ) -> Result<Commit, Problem> {
        let (
            Target::File {
                artifact,
                version,
                path,
            },
            None,
        ) = path::parse(&head.path)?
        else {
            return Err(Problem::internal(
                "maven ingested something other than a file",
            ));
        };
        let repo = head.repository.as_str();
        let snapshot = version.ends_with("-SNAPSHOT");
        if !snapshot && ctx.store.meta().asset(repo, &path)?.is_some() {
            return Err(maven_error(
                409,
                format!(
                    "{}:{version} is a release and already has {}: releases cannot be redeployed",
                    artifact.package(),
                    path.rsplit('/').next().unwrap_or(&path)
                ),
            ));
        }
        for (algo, name) in Algo::ALL {
            if let Some(sent) = head.header(&format!("x-checksum-{name}"))
                && checksum(&blob.digest, &blob.checksums, algo).as_deref()
                    != Some(&sent.trim().to_ascii_lowercase())
            {
                return Err(mismatch(name, &path));
            }
        }
        if path.ends_with(".pom") {
            check_pom(ctx, blob, &artifact)?;
        }
        let time = now();
        let writes = vec![
            Write::PutAsset {
                repo: repo.into(),
                path: path.clone(),
                asset: Asset {
                    digest: blob.digest,
                    size: blob.size,
                    package: Some(artifact.package()),
                    version: Some(version.clone()),
                    content_type: Some(content_type(&path).into()),
                    created: time,
                },
                replace: snapshot,
            },
            crate::version_of_files(repo, artifact.package(), version, time),
        ];
        Ok(Commit::new(writes, Response::empty(201)))
    }

    fn commit_buffered(
        &self,
        ctx: &Context<'_>,
        head: &RequestHead,
        body: &[u8],
    ) -> Result<Commit, Problem> {
        let (target, algo) = path::parse(&head.path)?;
        match (target, algo) {
            (Target::File { path, .. }, Some(algo)) => {
                let asset = ctx
                    .store
                    .meta()
                    .asset(&head.repository, &path)?
                    .ok_or_else(|| {
                        maven_error(400, format!("upload {path} before its checksum"))
                    })?;
                let info = ctx
                    .store
                    .blob(&asset.digest)?
                    .ok_or_else(|| Problem::internal(format!("blob of {path} is missing")))?;
                let sent = String::from_utf8_lossy(body);
                let sent = sent
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let name = Algo::ALL
                    .iter()
                    .find(|(a, _)| *a == algo)
                    .map_or("", |(_, n)| n);
                if checksum(&info.digest, &info.checksums, algo).as_deref() != Some(&sent) {
                    return Err(mismatch(name, &path));
                }
            }
            // Checksums of metadata are accepted and dropped: the metadata served is generated.
            (_, Some(_)) => {}
            (Target::ArtifactMetadata(_) | Target::VersionMetadata { .. }, None) => {
                let checked = metadata::check_xml(body, "maven-metadata.xml")?;
                if checked.root != "metadata" {
                    return Err(maven_error(
                        400,
                        "maven-metadata.xml must have a <metadata> root element",
                    ));
                }
            }
            _ => return Err(Problem::internal("maven buffered an unexpected body")),
        }
        Ok(Commit::new(Vec::new(), Response::empty(201)))
    }

    fn retention_items(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        package: &str,
    ) -> Result<Vec<crate::retention::Item>, Problem> {
        retention::items(ctx, repo, package)
    }

    fn expire(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        item: &crate::retention::Item,
    ) -> Result<Vec<Write>, Problem> {
        retention::expire(ctx, repo, &item.package, &item.version)
    }

    fn expired(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        decisions: &[crate::retention::Decision],
    ) -> Result<Vec<Write>, Problem> {
        retention::expired(ctx, repo, decisions)
    }

    fn render(&self, problem: &Problem) -> Response {
        Response::plain_error(problem)
    }
}

/// A directory asked for without its trailing slash (`.../wharf-lib`), after no file was found there: files lie
/// below it. Sent on to the slashed path, so the listing's relative links work.
fn directory_without_slash(
    ctx: &Context<'_>,
    head: &RequestHead,
) -> Result<Option<String>, Problem> {
    if head.path.is_empty() || head.path.ends_with('/') {
        return Ok(None);
    }
    let Ok(path) = crate::safe_path(&head.path) else {
        return Ok(None);
    };
    let below = listing::exists(ctx, &head.repository, &format!("{path}/"))?;
    Ok(below.then_some(path))
}

fn not_allowed(head: &RequestHead) -> Problem {
    maven_error(405, format!("{} is not allowed here", head.method))
}

fn mismatch(algo: &str, path: &str) -> Problem {
    maven_error(
        400,
        format!("the {algo} checksum sent does not match the content of {path}"),
    )
}

/// A stored file's checksum in one algorithm, from what ingest computed.
fn checksum(digest: &Digest, checksums: &Checksums, algo: Algo) -> Option<String> {
    match algo {
        Algo::Sha256 => Some(digest.hex()),
        Algo::Sha1 => checksums.sha1.clone(),
        Algo::Md5 => checksums.md5.clone(),
        Algo::Sha512 => checksums.sha512.clone(),
    }
}

fn hex_of(algo: Algo, bytes: &[u8]) -> String {
    use sha1::Digest as _;
    match algo {
        Algo::Md5 => hex::encode(md5::Md5::digest(bytes)),
        Algo::Sha1 => hex::encode(sha1::Sha1::digest(bytes)),
        Algo::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
        Algo::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
    }
}

/// A POM is checked before it is accepted: well-formed, no DOCTYPE (so no entity), a `<project>` for this artifact.
fn check_pom(ctx: &Context<'_>, blob: &BlobInfo, artifact: &Artifact) -> Result<(), Problem> {
    if blob.size > MAX_XML {
        return Err(maven_error(
            400,
            format!("the POM is larger than {} KiB", MAX_XML / 1024),
        ));
    }
    let bytes = std::fs::read(ctx.store.blob_path(&blob.digest)).map_err(Problem::internal)?;
    let checked = metadata::check_xml(&bytes, "POM")?;
    let artifact_id = checked
        .children
        .iter()
        .find(|(name, _)| name == "artifactId")
        .map(|(_, v)| v.as_str());
    if checked.root != "project" || artifact_id != Some(artifact.artifact.as_str()) {
        return Err(maven_error(
            400,
            format!(
                "the POM is not a <project> with artifactId {}",
                artifact.artifact
            ),
        ));
    }
    Ok(())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "pom" | "xml" => "text/xml",
        "jar" | "war" | "ear" => "application/java-archive",
        "module" | "json" => "application/json",
        "asc" => "text/plain",
        _ => "application/octet-stream",
    }
}

fn read(
    ctx: &Context<'_>,
    head: &RequestHead,
    target: &Target,
    algo: Option<Algo>,
) -> Result<Plan, Problem> {
    let repo = head.repository.as_str();
    let meta = ctx.store.meta();
    let generated = |xml: String| -> Plan {
        Plan::Respond(match algo {
            Some(algo) => Response::new(200, "text/plain", hex_of(algo, xml.as_bytes())),
            None => Response::new(200, "text/xml", xml),
        })
    };
    match target {
        Target::Directory(prefix) => {
            let parts: Vec<&str> = prefix.trim_end_matches('/').split('/').collect();
            let generated: &[&str] = match parts.split_last() {
                Some((last, group)) if !group.is_empty() => {
                    let package = format!("{}:{last}", group.join("."));
                    let snapshot_dir = last.ends_with("-SNAPSHOT");
                    match snapshot_dir || meta.package(repo, &package)?.is_some() {
                        true => &["maven-metadata.xml", "maven-metadata.xml.sha1"],
                        false => &[],
                    }
                }
                _ => &[],
            };
            listing::render(ctx, head, prefix, generated)
        }
        Target::File { path, .. } => {
            let Some(asset) = meta.asset(repo, path)? else {
                return Err(maven_error(404, format!("{path} not found")));
            };
            let info = ctx
                .store
                .blob(&asset.digest)?
                .ok_or_else(|| Problem::internal(format!("blob of {path} is missing")))?;
            if let Some(algo) = algo {
                let sum = checksum(&info.digest, &info.checksums, algo).ok_or_else(|| {
                    maven_error(404, format!("no such checksum is recorded for {path}"))
                })?;
                return Ok(Plan::Respond(Response::new(200, "text/plain", sum)));
            }
            retention::note_pull(ctx, head, path, &asset);
            let mut headers = vec![("content-type".to_string(), content_type(path).to_string())];
            for (algo, name) in Algo::ALL {
                if let Some(sum) = checksum(&info.digest, &info.checksums, algo) {
                    headers.push((format!("x-checksum-{name}"), sum));
                }
            }
            Ok(Plan::Serve {
                digest: asset.digest,
                status: 200,
                headers,
            })
        }
        Target::ArtifactMetadata(artifact) => {
            let package = artifact.package();
            let not_found = || {
                maven_error(
                    404,
                    format!("{}/maven-metadata.xml not found", artifact.dir()),
                )
            };
            let record = meta.package(repo, &package)?.ok_or_else(not_found)?;
            let versions: Vec<String> = meta
                .versions(repo, &package, None, 100_000)?
                .into_iter()
                .map(|(v, _)| v)
                .collect();
            if versions.is_empty() {
                return Err(not_found());
            }
            Ok(generated(metadata::artifact_level(
                artifact,
                &versions,
                record.updated,
            )))
        }
        Target::VersionMetadata { artifact, version } => {
            let dir = format!("{}/{version}/", artifact.dir());
            let files: Vec<(String, u64)> = meta
                .assets(repo, &dir, None, 100_000)?
                .into_iter()
                .map(|(path, asset)| (path[dir.len()..].to_string(), asset.created))
                .collect();
            let xml = metadata::version_level(artifact, version, &files)
                .ok_or_else(|| maven_error(404, format!("{dir}maven-metadata.xml not found")))?;
            Ok(generated(xml))
        }
    }
}
