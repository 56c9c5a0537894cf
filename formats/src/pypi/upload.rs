//! twine's upload (the legacy API): a multipart form whose `content` file the host has already stored as a blob.
//! The file's own core metadata (a wheel's `*.dist-info/METADATA`, an sdist's `PKG-INFO`) is read through a bounded
//! archive read and must agree with the file name; the form's digests must agree with the bytes. Only then are the
//! file, its metadata and its record written, create-only, in one transaction.

use serde::{Deserialize, Serialize};
use wharf_storage::{Asset, BlobInfo, Digest, Time, Write, now};

use super::{file_key, normalize, parse_version, pypi_error, valid_name};
use crate::archive::{ArchiveError, tar_gz_member, zip_member};
use crate::{Commit, Context, Form, Problem, RequestHead, Response};

/// The largest METADATA or PKG-INFO read out of an upload.
pub const MAX_METADATA: u64 = 1024 * 1024;
/// How much of an sdist is inflated while looking for its PKG-INFO: far more than any real sdist holds in front of
/// it, and a bound on what a compression bomb can cost.
const MAX_SDIST_UNPACKED: u64 = 1024 * 1024 * 1024;

/// What the simple and JSON pages show of one file, kept beside it so a page is one scan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileRecord {
    pub filename: String,
    /// Normalized (PEP 440).
    pub version: String,
    pub size: u64,
    pub sha256: String,
    pub md5: Option<String>,
    pub metadata_sha256: String,
    /// `bdist_wheel` or `sdist`.
    pub packagetype: String,
    pub python_version: String,
    pub uploaded: Time,
    pub info: Info,
}

/// The core-metadata fields the JSON API shows (`info`); the description is left in the `.metadata` file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Info {
    pub name: String,
    pub summary: Option<String>,
    pub requires_python: Option<String>,
    pub requires_dist: Vec<String>,
    pub author: Option<String>,
    pub author_email: Option<String>,
    pub license: Option<String>,
    pub home_page: Option<String>,
}

/// A file name taken apart: what it claims to be.
struct Claimed {
    name: String,
    version: String,
    packagetype: &'static str,
    python_version: String,
}

pub fn commit(ctx: &Context<'_>, head: &RequestHead, form: &Form) -> Result<Commit, Problem> {
    let repo = head.repository.as_str();
    match form.field(":action") {
        Some("file_upload") => {}
        Some(other) => {
            return Err(pypi_error(
                400,
                format!("Unsupported action `{other}`: only file_upload is"),
            ));
        }
        None => return Err(pypi_error(400, "The form has no :action field")),
    }
    let file = match form.files.as_slice() {
        [file] if file.field == "content" => file,
        _ => {
            return Err(pypi_error(
                400,
                "Upload payload does not have a file (one `content` part)",
            ));
        }
    };
    let filename = file.filename.as_str();
    check_filename(filename)?;
    let claimed = claimed(filename)?;
    if let Some(filetype) = form.field("filetype")
        && filetype != claimed.packagetype
    {
        return Err(pypi_error(
            400,
            format!("Invalid filetype `{filetype}` for `{filename}`"),
        ));
    }
    check_digests(form, &file.blob)?;

    let metadata = read_metadata(ctx, &file.blob, filename, claimed.packagetype)?;
    let fields = parse_headers(&metadata);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let meta_name = get("name").ok_or_else(|| pypi_error(400, "The metadata has no Name"))?;
    let meta_version =
        get("version").ok_or_else(|| pypi_error(400, "The metadata has no Version"))?;
    if !valid_name(&meta_name) {
        return Err(pypi_error(
            400,
            format!("Invalid project name `{meta_name}` in the metadata"),
        ));
    }
    let version = parse_version(&meta_version)?;
    let project = normalize(&meta_name);
    if normalize(&claimed.name) != project || parse_version(&claimed.version)? != version {
        return Err(pypi_error(
            400,
            format!(
                "The file name `{filename}` does not match the metadata's {meta_name} {meta_version}"
            ),
        ));
    }
    for (field, matches) in [
        ("name", form.field("name").map(|n| normalize(n) == project)),
        (
            "version",
            form.field("version")
                .map(|v| v.parse::<pep440_rs::Version>().ok() == Some(version.clone())),
        ),
    ] {
        if matches == Some(false) {
            return Err(pypi_error(
                400,
                format!("The form's {field} does not match the file's metadata"),
            ));
        }
    }
    let version = version.to_string();
    let path = format!("{project}/{filename}");
    if ctx.store.meta().asset(repo, &path)?.is_some() {
        return Err(exists(filename));
    }

    let time = now();
    let metadata_digest = Digest::of(&metadata);
    let asset = |digest: Digest, size: u64, content_type: &str| Asset {
        digest,
        size,
        package: Some(project.clone()),
        version: Some(version.clone()),
        content_type: Some(content_type.into()),
        created: time,
    };
    let record = FileRecord {
        filename: filename.to_string(),
        version: version.clone(),
        size: file.blob.size,
        sha256: file.blob.digest.hex(),
        md5: file.blob.checksums.md5.clone(),
        metadata_sha256: metadata_digest.hex(),
        packagetype: claimed.packagetype.into(),
        python_version: claimed.python_version,
        uploaded: time,
        info: Info {
            name: meta_name,
            summary: get("summary"),
            requires_python: get("requires-python"),
            requires_dist: fields
                .iter()
                .filter(|(k, _)| k == "requires-dist")
                .map(|(_, v)| v.clone())
                .collect(),
            author: get("author"),
            author_email: get("author-email"),
            license: get("license"),
            home_page: get("home-page"),
        },
    };
    let writes = vec![
        Write::PutAsset {
            repo: repo.into(),
            path: path.clone(),
            asset: asset(file.blob.digest, file.blob.size, "application/octet-stream"),
            replace: false,
        },
        Write::PutAsset {
            repo: repo.into(),
            path: format!("{path}.metadata"),
            asset: asset(metadata_digest, metadata.len() as u64, "text/plain"),
            replace: false,
        },
        Write::PutKv {
            repo: repo.into(),
            key: file_key(&project, filename),
            value: serde_json::to_vec(&record).map_err(Problem::internal)?,
        },
        crate::version_of_files(repo, project, version, time),
    ];
    Ok(Commit {
        blobs: vec![metadata.into()],
        writes,
        response: Response::new(200, "text/plain; charset=utf-8", "OK\n"),
    })
}

/// What twine's `--skip-existing` recognizes: a 400 whose reason says the file already exists.
pub fn exists(filename: &str) -> Problem {
    pypi_error(400, format!("File already exists: {filename}"))
}

/// A bare file name: no directories, no traversal, nothing a shell or a URL would trip on.
fn check_filename(filename: &str) -> Result<(), Problem> {
    let ok = !filename.is_empty()
        && filename.len() <= 255
        && !filename.starts_with('.')
        && !filename.contains("..")
        && filename
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '!'));
    match ok {
        true => Ok(()),
        false => Err(pypi_error(
            400,
            format!(
                "Invalid file name `{}`: a bare name of letters, digits and . _ - + ! is expected",
                filename
                    .chars()
                    .take(100)
                    .collect::<String>()
                    .escape_default()
            ),
        )),
    }
}

/// The name and version a file name claims: a wheel's `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`
/// (PEP 427) or an sdist's `{name}-{version}.tar.gz` (PEP 625).
fn claimed(filename: &str) -> Result<Claimed, Problem> {
    if let Some(stem) = filename.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if !matches!(parts.len(), 5 | 6) {
            return Err(pypi_error(
                400,
                format!("Invalid wheel file name `{filename}` (PEP 427)"),
            ));
        }
        return Ok(Claimed {
            name: parts[0].into(),
            version: parts[1].into(),
            packagetype: "bdist_wheel",
            python_version: parts[parts.len() - 3].into(),
        });
    }
    if let Some(stem) = filename.strip_suffix(".tar.gz")
        && let Some((name, version)) = stem.rsplit_once('-')
    {
        return Ok(Claimed {
            name: name.into(),
            version: version.into(),
            packagetype: "sdist",
            python_version: "source".into(),
        });
    }
    Err(pypi_error(
        400,
        format!(
            "Invalid distribution file `{filename}`: neither a wheel (.whl) nor an sdist (.tar.gz)"
        ),
    ))
}

/// The form's `sha256_digest` (and `md5_digest`, when sent) against what the host computed from the bytes.
fn check_digests(form: &Form, blob: &BlobInfo) -> Result<(), Problem> {
    let mismatch = || {
        pypi_error(
            400,
            "The digest supplied does not match a digest calculated from the uploaded file",
        )
    };
    if let Some(sha256) = form.field("sha256_digest")
        && !sha256.eq_ignore_ascii_case(&blob.digest.hex())
    {
        return Err(mismatch());
    }
    if let (Some(md5), Some(ours)) = (form.field("md5_digest"), &blob.checksums.md5)
        && !md5.eq_ignore_ascii_case(ours)
    {
        return Err(mismatch());
    }
    Ok(())
}

/// The core metadata file inside the upload, read through a bounded archive read.
fn read_metadata(
    ctx: &Context<'_>,
    blob: &BlobInfo,
    filename: &str,
    packagetype: &str,
) -> Result<Vec<u8>, Problem> {
    let path = ctx.store.blob_path(&blob.digest);
    let (what, found) = match packagetype {
        "bdist_wheel" => (
            "*.dist-info/METADATA",
            zip_member(
                &path,
                |n| n.split('/').count() == 2 && n.ends_with(".dist-info/METADATA"),
                MAX_METADATA,
            ),
        ),
        _ => {
            let file = std::fs::File::open(&path).map_err(Problem::internal)?;
            (
                "PKG-INFO",
                tar_gz_member(
                    std::io::BufReader::new(file),
                    |p| p.split('/').count() == 2 && p.ends_with("/PKG-INFO"),
                    MAX_METADATA,
                    MAX_SDIST_UNPACKED,
                ),
            )
        }
    };
    let invalid =
        |why: String| pypi_error(400, format!("Invalid distribution `{filename}`: {why}"));
    match found {
        Ok(Some((_, bytes))) => Ok(bytes),
        Ok(None) => Err(invalid(format!("it has no {what}"))),
        Err(ArchiveError::TooLarge { name, limit }) => Err(invalid(format!(
            "{name} is larger than {} KiB",
            limit / 1024
        ))),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// Core metadata headers (RFC 822 style) with lower-cased names, continuation lines joined; the body (the
/// description) is not read.
fn parse_headers(metadata: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(metadata);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let wheel = claimed("Foo_Bar-1.0.post1-py3-none-any.whl").ok().unwrap();
        assert_eq!(
            (wheel.name.as_str(), wheel.version.as_str()),
            ("Foo_Bar", "1.0.post1")
        );
        assert_eq!(wheel.python_version, "py3");
        let built = claimed("foo-1.0-1-cp312-cp312-linux_x86_64.whl")
            .ok()
            .unwrap();
        assert_eq!(built.python_version, "cp312");
        let sdist = claimed("foo-bar-2.0.tar.gz").ok().unwrap();
        assert_eq!(
            (sdist.name.as_str(), sdist.version.as_str()),
            ("foo-bar", "2.0")
        );
        for bad in ["foo-1.0.zip", "foo-1.0.exe", "foo.whl", "foo.tar.gz"] {
            assert!(claimed(bad).is_err(), "{bad}");
        }
        for bad in [
            "../x.whl", "a/b.whl", ".x.whl", "a\\b", "", "x y.whl", "a..b.whl",
        ] {
            assert!(check_filename(bad).is_err(), "{bad}");
        }
        assert!(check_filename("foo-1.0+local-py3-none-any.whl").is_ok());
    }

    #[test]
    fn headers() {
        let fields = parse_headers(
            b"Metadata-Version: 2.1\nName: Foo\nRequires-Dist: a\nRequires-Dist: b >=1\nSummary: one\n  two\n\nName: body",
        );
        assert_eq!(fields[1], ("name".into(), "Foo".into()));
        assert_eq!(
            fields.iter().filter(|(k, _)| k == "requires-dist").count(),
            2
        );
        assert_eq!(fields[4], ("summary".into(), "one\ntwo".into()));
        assert_eq!(fields.len(), 5);
    }
}
