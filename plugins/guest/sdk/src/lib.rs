//! The guest side of Wharf's format contract (`plugins/wit/format.wit`): the generated bindings, renamed to read
//! like the host's `Format` trait, and the few helpers every plugin needs. A plugin is a `cdylib` built for
//! `wasm32-wasip2`:
//!
//! ```ignore
//! use wharf_plugin_sdk::*;
//!
//! struct Hello;
//!
//! impl Format for Hello {
//!     fn describe() -> PluginInfo { PluginInfo { format: "hello".into(), api_version: API_VERSION } }
//!     fn classify(_: RequestHead) -> Result<Access, Problem> { Ok(Access::Read) }
//!     fn handle(_: RequestHead) -> Result<Plan, Problem> { Ok(Plan::Respond(text(200, "hello\n"))) }
//!     // commit-ingested, commit-buffered, commit-form: the plans this format makes lead to them
//!     // expire: the writes that remove a version retention expires
//!     // render: the error body its clients understand
//! }
//!
//! wharf_plugin_sdk::export!(Hello);
//! ```

wit_bindgen::generate!({
    world: "format-plugin",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "wharf_plugin_sdk",
});

pub use exports::wharf::format::handler::{
    Commit, FormBody, Guest as Format, IngestBody, Plan, PluginInfo, PutAsset, PutTag, PutVersion,
    ServeBlob, Write,
};
pub use wharf::format::store;
pub use wharf::format::types::{
    Access, Asset, BlobInfo, Checksums, Form, FormFile, Problem, RequestHead, Response, Version,
    Want,
};

/// The contract version this SDK speaks; `describe` returns it and the host checks it at load.
pub const API_VERSION: u32 = 2;

/// Records, on a GET, that the request downloads the version a file belongs to (for retention's pull windows).
pub fn note_file_pull(head: &RequestHead, asset: &Asset) {
    if let (true, Some(package), Some(version)) =
        (head.method == "GET", &asset.package, &asset.version)
    {
        store::note_pull(package, version);
    }
}

/// A header of the request, by name in any case.
pub fn header<'a>(head: &'a RequestHead, name: &str) -> Option<&'a str> {
    head.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn problem(status: u16, code: &str, message: impl Into<String>) -> Problem {
    Problem {
        status,
        code: code.into(),
        message: message.into(),
        detail: None,
        headers: Vec::new(),
    }
}

pub fn response(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into(),
        reason: None,
    }
}

pub fn text(status: u16, body: &str) -> Response {
    response(status, "text/plain; charset=utf-8", body)
}

/// A commit with no blobs to store first.
pub fn commit(writes: Vec<Write>, response: Response) -> Commit {
    Commit {
        blobs: Vec::new(),
        writes,
        response,
    }
}

/// Decodes a percent-encoded path and refuses anything that could step outside its repository: empty, `.` or `..`
/// segments, backslashes, control characters, over 1024 bytes; checked after decoding, so `%2e%2e` is caught too.
/// (The same rule as the host's `safe_path`, so a plugin needs no host crate.)
pub fn safe_path(raw: &str) -> Result<String, Problem> {
    let bad = || {
        problem(
            400,
            "BAD_REQUEST",
            format!(
                "invalid path `{}`",
                raw.chars().take(200).collect::<String>()
            ),
        )
    };
    let decoded = percent_decode(raw).ok_or_else(bad)?;
    let unsafe_path = decoded.is_empty()
        || decoded.len() > 1024
        || decoded
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || decoded.chars().any(|c| c == '\\' || c.is_control());
    if unsafe_path {
        return Err(bad());
    }
    Ok(decoded)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
