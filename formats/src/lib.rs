//! The `Format` interface every format implements, built-in or WebAssembly, and the built-in formats.
//!
//! A format never touches files or the metadata store directly. The host (core's dispatch) calls, in order:
//!
//! ```text
//! classify(head)            pure: which access the request needs, before authorization
//! handle(ctx, head)         -> Plan: respond, serve a blob, ingest the body as a blob, buffer a small body,
//!                              append the body to an upload session, seal a session into a blob, or read a
//!                              multipart form whose files stream into the blob store
//! commit_ingested(ctx, head, blob) | commit_buffered(ctx, head, body) | commit_appended(ctx, head, size)
//!   | commit_form(ctx, head, form)
//!                           -> Commit: small blobs to store, metadata writes (applied atomically by the host),
//!                              and the response
//! render(problem)           the format's native error body
//! ```
//!
//! The interface mirrors the WIT world in `plugins/`, so a plugin and a built-in format are interchangeable.

pub mod archive;
pub mod dates;
pub mod generic;
pub mod maven;
pub mod npm;
pub mod oci;
pub mod promote;
pub mod pypi;
pub mod retention;

use bytes::Bytes;
use wharf_storage::{BlobInfo, Digest, Store, Want, Write};

/// The parts of an HTTP request a format may look at. The body is never here: the host moves it as the plan says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The path below the repository mount, still percent-encoded, without a leading slash.
    pub path: String,
    pub query: Option<String>,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub repository: String,
    /// The authenticated user, if any. Authorization is the host's job.
    pub principal: Option<String>,
    pub content_length: Option<u64>,
    /// Absolute URL of the repository mount without a trailing slash, for links in documents.
    pub base_url: String,
    /// The repository lets a client replace a stored version when it asks to (`allow_overwrite`).
    pub allow_overwrite: bool,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, even where reads need a login: the format checks credentials in the body itself (npm login).
    Open,
    Read,
    Write,
    Delete,
}

/// A client-facing failure. `detail` is logged by the host and never sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    /// Stable machine-readable code, e.g. `NOT_FOUND`, `BLOB_UNKNOWN`.
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    /// Headers the reply must carry beside the error body (where an upload stands, after a 416).
    pub headers: Vec<(String, String)>,
}

impl Problem {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Problem {
            status,
            code: code.to_string(),
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Problem::new(404, "NOT_FOUND", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Problem::new(400, "BAD_REQUEST", message)
    }
    pub fn method_not_allowed() -> Self {
        Problem::new(405, "METHOD_NOT_ALLOWED", "method not allowed here")
    }
    /// An internal failure: the client gets a generic message, the log gets the detail.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Problem {
            detail: Some(detail.to_string()),
            ..Problem::new(500, "INTERNAL_ERROR", "internal server error")
        }
    }
}

impl From<wharf_storage::Error> for Problem {
    fn from(e: wharf_storage::Error) -> Self {
        use wharf_storage::Error as E;
        match e {
            E::BlobUnknown(d) => {
                Problem::new(404, "BLOB_UNKNOWN", format!("blob {d} is not in the store"))
            }
            E::TooLarge { limit } => Problem::new(
                413,
                "TOO_LARGE",
                format!("content is larger than the limit of {limit} bytes"),
            ),
            E::DigestMismatch { expected, actual } => Problem::new(
                400,
                "DIGEST_INVALID",
                format!("content has digest {actual}, not the expected {expected}"),
            ),
            E::Conflict(message) => Problem::new(409, "CONFLICT", message),
            E::OutOfOrder { size } => Problem::new(
                416,
                "OUT_OF_ORDER",
                format!("the upload has {size} bytes; the next chunk must start at byte {size}"),
            ),
            E::NotFound(what) => Problem::not_found(format!("{what} not found")),
            other => Problem::internal(other),
        }
    }
}

/// A small generated response. Large content is served from the blob store with `Plan::Serve` instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// A reason phrase in place of the standard one, for clients that show only that (twine shows PyPI's).
    pub reason: Option<String>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            reason: None,
        }
    }
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            reason: None,
        }
    }
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Response::new(
            status,
            "application/json",
            serde_json::to_vec(value).expect("JSON values serialize"),
        )
    }
    /// A plain-text error whose message is also the reason phrase: twine and mvn print only the status line.
    pub fn plain_error(problem: &Problem) -> Self {
        Response {
            reason: Some(problem.message.clone()),
            ..Response::new(
                problem.status,
                "text/plain; charset=utf-8",
                format!("{}\n", problem.message),
            )
        }
    }
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// What the host should do with a request. Bytes only ever move on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    Respond(Response),
    /// Stream a blob. The host adds Content-Length, ETag, Accept-Ranges and honours Range.
    Serve {
        digest: Digest,
        status: u16,
        headers: Vec<(String, String)>,
    },
    Redirect(String),
    /// Stream the body into the blob store, then call `commit_ingested`. The checksums in `want` are computed as
    /// the body streams in; those in `later` after the response, in the background (`Store::checksum_later`).
    Ingest {
        expected: Option<Digest>,
        max_size: u64,
        want: Want,
        later: Want,
    },
    /// Read a small body (JSON, XML, a form) of at most this many bytes, then call `commit_buffered`.
    Buffer(u64),
    /// Append the body to a resumable upload session (created by an earlier commit's `PutUpload`), then call
    /// `commit_appended` with the session's new size. `offset`, when the client gave one, must be that size now.
    Append {
        session: String,
        offset: Option<u64>,
        max_size: u64,
    },
    /// Append the body (if any) to an upload session, turn the session into a blob verified against `expected`
    /// and with the checksums in `want`, then call `commit_ingested`.
    Seal {
        session: String,
        expected: Option<Digest>,
        want: Want,
        offset: Option<u64>,
        max_size: u64,
    },
    /// Read a `multipart/form-data` body: text fields are kept (at most `max_document` bytes in all), each part with
    /// a file name is streamed into the blob store (at most `max_size` bytes, at most `max_files` of them) with the
    /// checksums in `want`; then call `commit_form`.
    Form {
        max_size: u64,
        max_files: usize,
        want: Want,
    },
}

/// A multipart form as the host read it: the text fields in order, and the files already stored as blobs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    pub fields: Vec<(String, String)>,
    pub files: Vec<FormFile>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormFile {
    /// The form field's name (`content` for twine, `chart` for helm-push).
    pub field: String,
    /// The file name the client gave, unchecked.
    pub filename: String,
    pub blob: BlobInfo,
}

impl Form {
    /// The first value of a text field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of a repeated text field, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The result of a write: small documents to store as blobs (a manifest), metadata changes the host applies in one
/// transaction after them, then the response it sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub blobs: Vec<Bytes>,
    pub writes: Vec<Write>,
    pub response: Response,
}

impl Commit {
    pub fn new(writes: Vec<Write>, response: Response) -> Self {
        Commit {
            blobs: Vec::new(),
            writes,
            response,
        }
    }
}

/// What a format may ask of the host's accounts (npm's login and logout): the host owns passwords and tokens, a
/// format only returns the writes.
pub trait Accounts: Send + Sync {
    /// Whether `password` is `user`'s. Slow (argon2): for logins, not for every request.
    fn verify_password(&self, user: &str, password: &str) -> bool;
    /// A new API token for `user`: the secret to hand out once, and the write that records it.
    fn mint_token(&self, user: &str, label: &str) -> (String, Write);
    /// The write that revokes the token with this secret, when it is `user`'s.
    fn revoke_token(&self, user: &str, secret: &str) -> Option<Write>;
}

/// Read access to the store and the limits that apply, for one request.
pub struct Context<'a> {
    pub store: &'a Store,
    pub accounts: &'a dyn Accounts,
    /// Largest blob a client may upload.
    pub max_upload: u64,
    /// Largest buffered document.
    pub max_document: u64,
    /// Largest OCI manifest.
    pub max_manifest: u64,
}

pub trait Format: Send + Sync {
    /// The name used in configuration, e.g. `generic`.
    fn name(&self) -> &str;
    fn classify(&self, head: &RequestHead) -> Result<Access, Problem>;
    fn handle(&self, ctx: &Context<'_>, head: &RequestHead) -> Result<Plan, Problem>;
    /// After `Plan::Ingest` or `Plan::Seal`: the body is a blob now. (Each commit defaults to an internal error: a
    /// format implements those its plans lead to.)
    fn commit_ingested(
        &self,
        _ctx: &Context<'_>,
        _head: &RequestHead,
        _blob: &BlobInfo,
    ) -> Result<Commit, Problem> {
        Err(unplanned(self.name(), "an ingest"))
    }
    /// After `Plan::Buffer`: the whole body.
    fn commit_buffered(
        &self,
        _ctx: &Context<'_>,
        _head: &RequestHead,
        _body: &[u8],
    ) -> Result<Commit, Problem> {
        Err(unplanned(self.name(), "a buffered body"))
    }
    /// After `Plan::Append`: the session now holds `size` bytes.
    fn commit_appended(
        &self,
        _ctx: &Context<'_>,
        _head: &RequestHead,
        _size: u64,
    ) -> Result<Commit, Problem> {
        Err(unplanned(self.name(), "an append"))
    }
    /// After `Plan::Form`: the text fields and the files, stored as blobs.
    fn commit_form(
        &self,
        _ctx: &Context<'_>,
        _head: &RequestHead,
        _form: &Form,
    ) -> Result<Commit, Problem> {
        Err(unplanned(self.name(), "a form"))
    }
    /// Marks a version of `package` yanked, with a reason (`Some("")` for none), or with `None` no longer yanked.
    /// A yanked version stays downloadable by its exact number but is skipped by ranges (PEP 592).
    fn yank(
        &self,
        _ctx: &Context<'_>,
        _repo: &str,
        _package: &str,
        _version: &str,
        _reason: Option<&str>,
    ) -> Result<Commit, Problem> {
        Err(Problem::new(
            400,
            "UNSUPPORTED",
            format!("{} repositories do not yank versions", self.name()),
        ))
    }
    /// The writes that copy a version of `package` to another repository of this format (promotion) without
    /// moving bytes: `promote::copy_version` and whatever the format keeps beside a version. Formats whose
    /// versions own more than that (files at paths) refuse until they say how.
    fn promote(
        &self,
        _ctx: &Context<'_>,
        _promotion: &promote::Promotion<'_>,
    ) -> Result<Vec<Write>, Problem> {
        Err(Problem::new(
            400,
            "UNSUPPORTED",
            format!("{} repositories do not promote versions yet", self.name()),
        ))
    }
    /// The writes that take a version out of its repository as the format's own delete would: a promotion's move.
    /// By default the version and every tag pointing at it; a format that keeps more beside a version (OCI's
    /// referrers entry) removes that too.
    fn remove_version(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        package: &str,
        version: &str,
    ) -> Result<Vec<Write>, Problem> {
        promote::removal(ctx, repo, package, version)
    }
    /// The items retention judges in `package`: by default its versions, tagged by their tags. A format whose
    /// versions hold several items (a Maven SNAPSHOT and its builds) lists those, and `expire` takes their names.
    fn retention_items(
        &self,
        ctx: &Context<'_>,
        repo: &str,
        package: &str,
    ) -> Result<Vec<retention::Item>, Problem> {
        retention::version_items(ctx.store, repo, package)
    }
    /// The writes that remove an item `retention_items` listed, as the format's own delete would: its tags (the
    /// item's, read when it was listed, so no tag scan per item) go with it. An error keeps the item, and the
    /// retention plan shows the message.
    fn expire(
        &self,
        _ctx: &Context<'_>,
        _repo: &str,
        _item: &retention::Item,
    ) -> Result<Vec<Write>, Problem> {
        Err(Problem::new(
            400,
            "UNSUPPORTED",
            format!("retention does not remove {} versions yet", self.name()),
        ))
    }
    /// The writes that follow all of a package's removals together, after each item's `expire`: what no one item's
    /// removal can tell (a Maven SNAPSHOT version goes when every one of its builds goes in the same run), or what
    /// is cheaper read once for all of them (PyPI's files, in one pass over the project's file records). `decisions`
    /// are the package's, settled: `remove` is set on exactly the items whose `expire` writes are applied with these.
    /// Not called for a dry run, whose plan lists items, not their files.
    fn expired(
        &self,
        _ctx: &Context<'_>,
        _repo: &str,
        _decisions: &[retention::Decision],
    ) -> Result<Vec<Write>, Problem> {
        Ok(Vec::new())
    }
    /// The error body this format's clients understand.
    fn render(&self, problem: &Problem) -> Response;
    /// Whether calls into this format may run long (a plugin, bounded only by its time limit): the host then makes
    /// them on its blocking pool, so they never hold an HTTP worker. Built-in formats answer quickly and run inline.
    fn isolated(&self) -> bool {
        false
    }
}

fn unplanned(format: &str, what: &str) -> Problem {
    Problem::internal(format!("format {format} planned {what} it cannot commit"))
}

/// Records that the request pulled `version` of `package`, when it downloads it (a GET; a HEAD only asks), for
/// retention's pull windows. Pulls are advisory: failing to record one never fails the download.
pub fn note_pull(ctx: &Context<'_>, head: &RequestHead, package: &str, version: &str) {
    if head.method == "GET" {
        let at = wharf_storage::now();
        let _ = ctx
            .store
            .meta()
            .note_pull(&head.repository, package, version, at);
    }
}

/// `note_pull` for a file that belongs to a version (its asset names both).
pub fn note_file_pull(ctx: &Context<'_>, head: &RequestHead, asset: &wharf_storage::Asset) {
    if let (Some(package), Some(version)) = (&asset.package, &asset.version) {
        note_pull(ctx, head, package, version);
    }
}

/// The version record of a format whose files are assets (PyPI releases, Maven versions): it holds no blobs, and
/// every upload of one of its files writes the same record, so concurrent uploads of a version's files never undo
/// each other. It is what ties the files to retention and promotion.
pub fn version_of_files(repo: &str, package: String, version: String, time: u64) -> Write {
    Write::PutVersion {
        repo: repo.into(),
        package,
        version,
        record: wharf_storage::Version {
            blobs: Vec::new(),
            metadata: serde_json::json!({}),
            created: time,
        },
        replace: true,
    }
}

/// The built-in formats, by configuration name.
pub fn builtin() -> Vec<std::sync::Arc<dyn Format>> {
    vec![
        std::sync::Arc::new(generic::Generic),
        std::sync::Arc::new(maven::Maven),
        std::sync::Arc::new(npm::Npm),
        std::sync::Arc::new(oci::Oci),
        std::sync::Arc::new(pypi::Pypi),
    ]
}

/// A generated document's ETag (a hash of its bytes) and whether the client already holds it (`If-None-Match`),
/// so a client that revalidates gets a 304.
pub fn etag(head: &RequestHead, body: &[u8]) -> (String, bool) {
    let etag = format!("\"{}\"", &Digest::of(body).hex()[..32]);
    let fresh = head
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    (etag, fresh)
}

/// Decodes a percent-encoded path and refuses anything that could step outside its repository: empty, `.` or `..`
/// segments, backslashes, NUL and control characters, over 1024 bytes. Both the raw and decoded forms are checked, so
/// `%2e%2e` is caught too.
pub fn safe_path(raw: &str) -> Result<String, Problem> {
    let decoded = percent_decode(raw)
        .ok_or_else(|| Problem::bad_request("path is not valid percent-encoded UTF-8"))?;
    let bad = decoded.is_empty()
        || decoded.len() > 1024
        || decoded
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || decoded.chars().any(|c| c == '\\' || c.is_control());
    if bad {
        return Err(Problem::bad_request(format!(
            "invalid path `{}`",
            raw.chars().take(200).collect::<String>()
        )));
    }
    Ok(decoded)
}

/// One query parameter, percent-decoded (`+` is a space, as forms encode it).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(&v.replace('+', " ")).unwrap_or_default())
    })
}

pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for (raw, want) in [
            ("a/b.txt", "a/b.txt"),
            ("dir/with%20space", "dir/with space"),
            ("x%2Fy", "x/y"),
        ] {
            assert_eq!(safe_path(raw).as_deref(), Ok(want));
        }
        for bad in [
            "",
            "a//b",
            "../etc",
            "a/../b",
            "a/%2e%2e/b",
            "a/./b",
            "a\\b",
            "a%00b",
            "%zz",
            "a/",
            &"x".repeat(1025),
        ] {
            assert!(safe_path(bad).is_err(), "{bad}");
        }
    }
}
