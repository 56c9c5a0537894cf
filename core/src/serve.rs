//! Serving a blob: Content-Length, ETag, Accept-Ranges, a single `Range` (RFC 9110 §14), `If-None-Match`, and HEAD.
//! The bytes stream from the store in chunks; nothing holds a whole blob.

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::TryStreamExt;
use wharf_formats::Problem;
use wharf_storage::{Digest, Store};

/// Blobs up to this size (manifests, documents) are read in one piece and sent in one write.
const SMALL: u64 = 64 * 1024;

/// A byte range to send, inclusive of `start`, `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub len: u64,
}

/// A Range header that no byte of the blob satisfies: 416.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` against a blob of `size` bytes. `Ok(None)` means "send it all"
/// (no header, or several ranges, which we answer whole as the RFC allows); `Err` means 416.
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<Span>, Unsatisfiable> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (first, last) = (first.trim(), last.trim());
    let span = if first.is_empty() {
        let suffix: u64 = last.parse().map_err(|_| Unsatisfiable)?;
        if suffix == 0 {
            return Err(Unsatisfiable);
        }
        let len = suffix.min(size);
        Span {
            start: size - len,
            len,
        }
    } else {
        let start: u64 = first.parse().map_err(|_| Unsatisfiable)?;
        let end = if last.is_empty() {
            size.saturating_sub(1)
        } else {
            last.parse::<u64>()
                .map_err(|_| Unsatisfiable)?
                .min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            return Err(Unsatisfiable);
        }
        Span {
            start,
            len: end - start + 1,
        }
    };
    Ok(Some(span))
}

pub async fn blob(
    req: &HttpRequest,
    store: &Store,
    digest: Digest,
    status: u16,
    headers: &[(String, String)],
) -> Result<(HttpResponse, u64), Problem> {
    let info = store.blob(&digest)?.ok_or_else(|| {
        Problem::new(
            404,
            "BLOB_UNKNOWN",
            format!("blob {digest} is not in the store"),
        )
    })?;
    let etag = format!("\"{digest}\"");
    let status = StatusCode::from_u16(status).map_err(Problem::internal)?;
    let mut builder = HttpResponse::build(status);
    for (name, value) in headers {
        builder.insert_header((name.as_str(), value.as_str()));
    }
    builder
        .insert_header(("etag", etag.as_str()))
        .insert_header(("accept-ranges", "bytes"));
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((builder.status(StatusCode::NOT_MODIFIED).finish(), 0));
    }
    let span = match parse_range(header("range"), info.size) {
        Ok(Some(span)) if status == StatusCode::OK => {
            builder.status(StatusCode::PARTIAL_CONTENT).insert_header((
                "content-range",
                format!(
                    "bytes {}-{}/{}",
                    span.start,
                    span.start + span.len - 1,
                    info.size
                ),
            ));
            span
        }
        Ok(_) => Span {
            start: 0,
            len: info.size,
        },
        Err(Unsatisfiable) => {
            let response = builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .insert_header(("content-range", format!("bytes */{}", info.size)))
                .finish();
            return Ok((response, 0));
        }
    };
    if req.method() == actix_web::http::Method::HEAD {
        return Ok((builder.body(HeadBody(span.len)), 0));
    }
    if span.len <= SMALL {
        let bytes = store.read_bytes(&digest, span.start, span.len).await?;
        return Ok((builder.body(bytes), span.len));
    }
    let stream = store.read(&digest, span.start, span.len).await?;
    Ok((
        builder.body(SizedStream::new(
            span.len,
            stream.map_err(actix_web::Error::from),
        )),
        span.len,
    ))
}

/// The body of a HEAD answer: reports the size a GET would send, and sends nothing (actix does not poll it).
struct HeadBody(u64);

impl actix_web::body::MessageBody for HeadBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> actix_web::body::BodySize {
        actix_web::body::BodySize::Sized(self.0)
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<bytes::Bytes, Self::Error>>> {
        std::task::Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let rows = [
            (None, Ok(None)),
            (Some("bytes=0-0"), Ok(Some(Span { start: 0, len: 1 }))),
            (Some("bytes=10-19"), Ok(Some(Span { start: 10, len: 10 }))),
            (Some("bytes=90-"), Ok(Some(Span { start: 90, len: 10 }))),
            (Some("bytes=-5"), Ok(Some(Span { start: 95, len: 5 }))),
            (Some("bytes=-500"), Ok(Some(Span { start: 0, len: 100 }))),
            (Some("bytes=50-5000"), Ok(Some(Span { start: 50, len: 50 }))),
            (Some("bytes=100-"), Err(Unsatisfiable)),
            (Some("bytes=9-3"), Err(Unsatisfiable)),
            (Some("bytes=0-1,5-6"), Ok(None)),
        ];
        for (header, want) in rows {
            assert_eq!(parse_range(header, 100), want, "{header:?}");
        }
        assert_eq!(parse_range(Some("bytes=x-"), 100), Err(Unsatisfiable));
    }
}
