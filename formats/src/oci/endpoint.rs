//! OCI request paths parsed into a typed `Endpoint`, with the spec's name, tag and digest grammar.
//!
//! The path below `/v2/<repo>/` ends in one of these, and everything before that ending is the image name:
//!
//! ```text
//! <image>/blobs/<digest>                 GET HEAD DELETE
//! <image>/blobs/uploads/                 POST (?digest= monolithic, ?mount=&from= cross-repository mount)
//! <image>/blobs/uploads/<id>             GET PATCH PUT(?digest=) DELETE
//! <image>/manifests/<tag|digest>         GET HEAD PUT DELETE
//! <image>/tags/list                      GET (?n=&last=)
//! <image>/referrers/<digest>             GET (?artifactType=)
//! ```

use std::fmt;

use wharf_storage::Digest;

use super::{code, oci};
use crate::{Access, Problem, RequestHead, percent_decode, query_param};

/// Longest `<repo>/<image>` the spec lets a registry refuse beyond.
const MAX_NAME: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(OciDigest),
}

/// A digest as OCI clients write it. The store addresses every blob by sha256; a sha512 digest names the same
/// bytes through the image's link entry, and is checked against the sha512 computed at ingest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OciDigest {
    Sha256(Digest),
    /// 128 lowercase hex characters.
    Sha512(String),
}

impl OciDigest {
    /// The store's digest, when the client's is that one.
    pub fn sha256(&self) -> Option<Digest> {
        match self {
            OciDigest::Sha256(d) => Some(*d),
            OciDigest::Sha512(_) => None,
        }
    }
}

impl fmt::Display for OciDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OciDigest::Sha256(d) => d.fmt(f),
            OciDigest::Sha512(hex) => write!(f, "sha512:{hex}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    GetBlob(OciDigest),
    DeleteBlob(OciDigest),
    StartUpload {
        digest: Option<OciDigest>,
        mount: Option<OciDigest>,
        /// `<repo>/<image>` of the mount source, when given.
        from: Option<String>,
    },
    UploadStatus(String),
    PatchUpload(String),
    FinishUpload {
        id: String,
        digest: OciDigest,
    },
    CancelUpload(String),
    GetManifest(Reference),
    /// With the tags of `?tag=` parameters (pushing by digest and tagging in one request).
    PutManifest(Reference, Vec<String>),
    DeleteManifest(Reference),
    Tags {
        n: Option<usize>,
        last: Option<String>,
    },
    Referrers {
        subject: OciDigest,
        artifact_type: Option<String>,
    },
}

/// A parsed request: the image (the package in the shared model) and what is asked of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub image: String,
    pub endpoint: Endpoint,
}

impl Request {
    pub fn parse(head: &RequestHead) -> Result<Request, Problem> {
        let path = head.path.as_str();
        let method = head.method.as_str();
        let (image, rest) = split(path)?;
        valid_name(&head.repository, image)?;
        let query = |name: &str| query_param(head.query.as_deref(), name);
        let digest_param = |name: &str| query(name).map(|d| parse_digest(&d)).transpose();
        use Endpoint as E;
        let endpoint = match (rest, method) {
            (Rest::Blob(d), "GET" | "HEAD") => E::GetBlob(parse_digest(d)?),
            (Rest::Blob(d), "DELETE") => E::DeleteBlob(parse_digest(d)?),
            (Rest::Uploads, "POST") => E::StartUpload {
                digest: digest_param("digest")?,
                mount: digest_param("mount")?,
                from: query("from"),
            },
            (Rest::Upload(id), _) if !valid_upload_id(id) => {
                return Err(upload_unknown(id));
            }
            (Rest::Upload(id), "GET") => E::UploadStatus(id.to_string()),
            (Rest::Upload(id), "PATCH") => E::PatchUpload(id.to_string()),
            (Rest::Upload(id), "PUT") => E::FinishUpload {
                id: id.to_string(),
                digest: digest_param("digest")?.ok_or_else(|| {
                    oci(
                        400,
                        code::DIGEST_INVALID,
                        "a digest query parameter is required to finish an upload",
                    )
                })?,
            },
            (Rest::Upload(id), "DELETE") => E::CancelUpload(id.to_string()),
            (Rest::Manifest(r), "GET" | "HEAD") => E::GetManifest(parse_reference(r)?),
            (Rest::Manifest(r), "PUT") => E::PutManifest(parse_reference(r)?, tag_params(head)?),
            (Rest::Manifest(r), "DELETE") => E::DeleteManifest(parse_reference(r)?),
            (Rest::Tags, "GET" | "HEAD") => E::Tags {
                n: query("n")
                    .map(|n| n.parse::<usize>())
                    .transpose()
                    .map_err(|_| oci(400, code::PAGINATION_NUMBER_INVALID, "n must be a number"))?,
                last: query("last"),
            },
            (Rest::Referrers(d), "GET" | "HEAD") => E::Referrers {
                subject: parse_digest(d)?,
                artifact_type: query("artifactType"),
            },
            _ => return Err(oci(405, code::UNSUPPORTED, "method not allowed here")),
        };
        Ok(Request {
            image: image.to_string(),
            endpoint,
        })
    }

    pub fn access(&self) -> Access {
        use Endpoint as E;
        match self.endpoint {
            E::GetBlob(_)
            | E::UploadStatus(_)
            | E::GetManifest(_)
            | E::Tags { .. }
            | E::Referrers { .. } => Access::Read,
            E::StartUpload { .. } | E::PatchUpload(_) | E::FinishUpload { .. } => Access::Write,
            E::PutManifest(..) => Access::Write,
            E::DeleteBlob(_) | E::CancelUpload(_) | E::DeleteManifest(_) => Access::Delete,
        }
    }
}

enum Rest<'a> {
    Blob(&'a str),
    Uploads,
    Upload(&'a str),
    Manifest(&'a str),
    Tags,
    Referrers(&'a str),
}

/// Splits `<image>/<ending>`. Endings are matched from the right, uploads first, since an image may itself be
/// called `blobs`.
fn split(path: &str) -> Result<(&str, Rest<'_>), Problem> {
    if let Some(image) = path.strip_suffix("/tags/list") {
        return Ok((image, Rest::Tags));
    }
    if let Some(image) = path
        .strip_suffix("/blobs/uploads/")
        .or_else(|| path.strip_suffix("/blobs/uploads"))
    {
        return Ok((image, Rest::Uploads));
    }
    let parts: Vec<&str> = path.rsplitn(3, '/').collect();
    match parts.as_slice() {
        [last, "uploads", before] if before.ends_with("/blobs") => {
            Ok((&before[..before.len() - 6], Rest::Upload(last)))
        }
        [last, "blobs", image] => Ok((image, Rest::Blob(last))),
        [last, "manifests", image] => Ok((image, Rest::Manifest(last))),
        [last, "referrers", image] => Ok((image, Rest::Referrers(last))),
        _ => Err(oci(404, code::NAME_UNKNOWN, "no such endpoint")),
    }
}

/// `<repo>/<image>` follows the spec's grammar: components of `[a-z0-9]+` joined by `.`, `_`, `__` or dashes,
/// separated by `/`. That also rules out traversal and any percent-encoding.
fn valid_name(repo: &str, image: &str) -> Result<(), Problem> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            if alnum(&bytes[i]) {
                i += 1;
                continue;
            }
            // A separator run: ".", "_", "__" or one or more "-".
            let start = i;
            while i < bytes.len() && !alnum(&bytes[i]) {
                i += 1;
            }
            let sep = &c[start..i];
            if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
                return false;
            }
        }
        true
    };
    let ok = !image.is_empty()
        && repo.len() + 1 + image.len() <= MAX_NAME
        && image.split('/').all(component_ok);
    if ok {
        Ok(())
    } else {
        Err(oci(
            400,
            code::NAME_INVALID,
            format!(
                "invalid repository name `{repo}/{}`: components of lowercase letters and digits, separated by `/`, \
                 joined by `.`, `_`, `__` or `-`",
                image.chars().take(100).collect::<String>()
            ),
        ))
    }
}

pub fn parse_digest(s: &str) -> Result<OciDigest, Problem> {
    let s = percent_decode(s).unwrap_or_default();
    let invalid = || {
        oci(
            400,
            code::DIGEST_INVALID,
            format!(
                "invalid digest `{}`",
                s.chars().take(140).collect::<String>()
            ),
        )
    };
    match s.split_once(':') {
        Some(("sha256", _)) => s.parse().map(OciDigest::Sha256).map_err(|_| invalid()),
        Some(("sha512", hex)) => {
            let ok = hex.len() == 128
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            ok.then(|| OciDigest::Sha512(hex.to_string()))
                .ok_or_else(invalid)
        }
        Some((algorithm, _)) => Err(oci(
            400,
            code::DIGEST_INVALID,
            format!(
                "unsupported digest algorithm `{}`: use sha256 or sha512",
                algorithm.chars().take(20).collect::<String>()
            ),
        )),
        None => Err(oci(
            400,
            code::DIGEST_INVALID,
            format!(
                "invalid digest `{}`: expected <algorithm>:<hex>",
                s.chars().take(100).collect::<String>()
            ),
        )),
    }
}

fn parse_reference(r: &str) -> Result<Reference, Problem> {
    if r.contains(':') || r.contains("%3A") || r.contains("%3a") {
        return parse_digest(r).map(Reference::Digest);
    }
    if valid_tag(r) {
        Ok(Reference::Tag(r.to_string()))
    } else {
        Err(oci(
            400,
            code::TAG_INVALID,
            format!(
                "invalid tag `{}`: up to 128 of [A-Za-z0-9_.-], not starting with `.` or `-`",
                r.chars().take(130).collect::<String>()
            ),
        ))
    }
}

/// Every `tag=` query parameter, each a valid tag; at most 100.
fn tag_params(head: &RequestHead) -> Result<Vec<String>, Problem> {
    let tags: Vec<String> = head
        .query
        .iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("tag="))
        .map(|t| percent_decode(t).unwrap_or_default())
        .collect();
    if tags.len() > 100 {
        return Err(oci(400, code::TAG_INVALID, "at most 100 tag parameters"));
    }
    match tags.iter().find(|t| !valid_tag(t)) {
        Some(bad) => Err(oci(
            400,
            code::TAG_INVALID,
            format!(
                "invalid tag `{}`",
                bad.chars().take(130).collect::<String>()
            ),
        )),
        None => Ok(tags),
    }
}

pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn upload_unknown(id: &str) -> Problem {
    oci(
        404,
        code::BLOB_UPLOAD_UNKNOWN,
        format!(
            "upload `{}` is unknown or finished",
            id.chars().take(70).collect::<String>()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, path: &str, query: Option<&str>) -> RequestHead {
        RequestHead {
            method: method.into(),
            path: path.into(),
            query: query.map(str::to_string),
            headers: vec![],
            repository: "docker".into(),
            principal: None,
            content_length: None,
            base_url: String::new(),
            allow_overwrite: false,
        }
    }

    fn parse(method: &str, path: &str, query: Option<&str>) -> Result<Request, Problem> {
        Request::parse(&head(method, path, query))
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn endpoints() {
        let d = OciDigest::Sha256(D.parse().unwrap());
        let cases = [
            (
                "GET",
                format!("app/blobs/{D}"),
                None,
                "app",
                Endpoint::GetBlob(d.clone()),
            ),
            (
                "DELETE",
                format!("a/b/blobs/{D}"),
                None,
                "a/b",
                Endpoint::DeleteBlob(d.clone()),
            ),
            (
                "POST",
                "app/blobs/uploads/".into(),
                Some(format!("mount={D}&from=docker%2Fother")),
                "app",
                Endpoint::StartUpload {
                    digest: None,
                    mount: Some(d.clone()),
                    from: Some("docker/other".into()),
                },
            ),
            (
                "PATCH",
                "blobs/blobs/uploads/ab12".into(),
                None,
                "blobs",
                Endpoint::PatchUpload("ab12".into()),
            ),
            (
                "PUT",
                "app/blobs/uploads/ab12".into(),
                Some(format!("digest={D}")),
                "app",
                Endpoint::FinishUpload {
                    id: "ab12".into(),
                    digest: d.clone(),
                },
            ),
            (
                "GET",
                "x/manifests/1.0".into(),
                None,
                "x",
                Endpoint::GetManifest(Reference::Tag("1.0".into())),
            ),
            (
                "PUT",
                format!("x/manifests/{D}"),
                None,
                "x",
                Endpoint::PutManifest(Reference::Digest(d.clone()), vec![]),
            ),
            (
                "GET",
                "x/tags/list".into(),
                Some("n=2&last=b".into()),
                "x",
                Endpoint::Tags {
                    n: Some(2),
                    last: Some("b".into()),
                },
            ),
            (
                "GET",
                format!("x/referrers/{D}"),
                Some("artifactType=application%2Fspdx%2Bjson".into()),
                "x",
                Endpoint::Referrers {
                    subject: d.clone(),
                    artifact_type: Some("application/spdx+json".into()),
                },
            ),
        ];
        for (method, path, query, image, endpoint) in cases {
            let parsed = parse(method, &path, query.as_deref()).unwrap();
            assert_eq!(
                (parsed.image.as_str(), parsed.endpoint),
                (image, endpoint),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn refusals() {
        let cases = [
            (
                "GET",
                "App/manifests/1".to_string(),
                None,
                400,
                code::NAME_INVALID,
            ),
            (
                "GET",
                "../x/manifests/1".into(),
                None,
                400,
                code::NAME_INVALID,
            ),
            (
                "GET",
                "%2e%2e/x/manifests/1".into(),
                None,
                400,
                code::NAME_INVALID,
            ),
            (
                "GET",
                "a//b/manifests/1".into(),
                None,
                400,
                code::NAME_INVALID,
            ),
            (
                "GET",
                "a-/manifests/1".into(),
                None,
                400,
                code::NAME_INVALID,
            ),
            (
                "GET",
                format!("{}/manifests/1", "a".repeat(250)),
                None,
                400,
                code::NAME_INVALID,
            ),
            (
                "GET",
                "a/manifests/-bad".into(),
                None,
                400,
                code::TAG_INVALID,
            ),
            (
                "GET",
                "a/blobs/sha512:abcd".into(),
                None,
                400,
                code::DIGEST_INVALID,
            ),
            (
                "GET",
                "a/blobs/md5:abcd".into(),
                None,
                400,
                code::DIGEST_INVALID,
            ),
            (
                "GET",
                "a/blobs/sha256:abcd".into(),
                None,
                400,
                code::DIGEST_INVALID,
            ),
            (
                "PUT",
                "a/blobs/uploads/ab12".into(),
                None,
                400,
                code::DIGEST_INVALID,
            ),
            (
                "PATCH",
                "a/blobs/uploads/..".into(),
                None,
                404,
                code::BLOB_UPLOAD_UNKNOWN,
            ),
            ("POST", "a/manifests/1".into(), None, 405, code::UNSUPPORTED),
            ("GET", "a/other/thing".into(), None, 404, code::NAME_UNKNOWN),
        ];
        for (method, path, query, status, code) in cases {
            let problem = parse(method, &path, query).unwrap_err();
            assert_eq!(
                (problem.status, problem.code.as_str()),
                (status, code),
                "{method} {path}"
            );
        }
        assert!(parse("GET", "a__b.c---d/e_f/manifests/v1", None).is_ok());
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        let parsed = parse("GET", &format!("a/blobs/{sha512}"), None).unwrap();
        assert_eq!(
            parsed.endpoint,
            Endpoint::GetBlob(OciDigest::Sha512("ab".repeat(64)))
        );
        assert_eq!(OciDigest::Sha512("ab".repeat(64)).to_string(), sha512);
    }
}
