//! Logs, request ids and metrics.
//!
//! Every request gets an id (the client's `X-Request-Id` when it is short and plain, else a fresh one), carried on
//! every log line of the request through a tracing span and returned in `X-Request-Id`. The same middleware counts
//! requests by repository, format and status and times them; `/metrics` renders the Prometheus text. Log lines are
//! written by a thread of their own, so a stalled reader of stderr never stalls a request.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use crate::server::App;

/// Which repository and format a request went to, left in the request's extensions by dispatch.
#[derive(Clone)]
pub struct Labels {
    pub repository: String,
    pub format: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Log lines waiting for the writer thread; past this many, new lines are dropped and counted. About 2 MB at most.
const LOG_QUEUE: usize = 8192;

/// How many log lines were dropped because stderr did not keep up; `/metrics` reports it.
static DROPPED: OnceLock<tracing_appender::non_blocking::ErrorCounter> = OnceLock::new();

/// Logs go to stderr, so stdout stays for what a command prints (a token, the first admin password). A thread of
/// their own writes them: when whatever reads stderr stalls (a full pipe, a paused pager, a stuck log shipper), lines
/// are dropped and counted, and requests go on being served rather than waiting on the write. Keep the guard until
/// exit: dropping it writes out what is queued.
pub fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE)
        .lossy(true)
        .thread_name("log")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    // sled logs its own view of a damaged store before returning the error we report in one line.
    let filter = tracing_subscriber::EnvFilter::try_from_env("WHARF_LOG")
        .unwrap_or_else(|_| "info,sled=off".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    guard
}

/// The process-wide recorder; installed once even when tests start several servers in one process.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("wharf_http_request_duration_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ],
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub async fn render_metrics(app: web::Data<App>) -> HttpResponse {
    if let Ok((count, bytes)) = app.store.meta().blob_stats() {
        metrics::gauge!("wharf_blobs").set(count as f64);
        metrics::gauge!("wharf_blob_bytes").set(bytes as f64);
    }
    if let Some(dropped) = DROPPED.get() {
        metrics::counter!("wharf_log_lines_dropped_total").absolute(dropped.dropped_lines() as u64);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics().render())
}

pub fn bytes_received(repository: &str, format: &str, bytes: u64) {
    metrics::counter!("wharf_bytes_received_total", "repository" => repository.to_string(), "format" => format.to_string())
        .increment(bytes);
}

pub fn bytes_sent(repository: &str, format: &str, bytes: u64) {
    metrics::counter!("wharf_bytes_sent_total", "repository" => repository.to_string(), "format" => format.to_string())
        .increment(bytes);
}

/// The path as logged: a token in it (npm logout sends `DELETE /-/user/token/<token>`) never reaches the log.
fn redacted(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains(crate::auth::TOKEN_PREFIX) && !path.contains(crate::bearer::PREFIX) {
        return path.into();
    }
    path.split('/')
        .map(|segment| {
            if segment.starts_with(crate::auth::TOKEN_PREFIX)
                || segment.starts_with(crate::bearer::PREFIX)
            {
                "[token]"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
        .into()
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(
            || wharf_storage::random_id()[..16].to_string(),
            str::to_string,
        );
    let path = redacted(req.path());
    let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %path);
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let labels = response.request().extensions().get::<Labels>().cloned();
    let (repository, format) = labels.map_or(("".to_string(), "".to_string()), |l| {
        (l.repository, l.format)
    });
    metrics::counter!("wharf_http_requests_total", "repository" => repository.clone(), "format" => format.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("wharf_http_request_duration_seconds", "repository" => repository, "format" => format)
        .record(elapsed.as_secs_f64());
    span.in_scope(|| tracing::info!(status, ms = elapsed.as_millis() as u64, "done"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_never_reach_the_log() {
        assert_eq!(
            super::redacted("/repository/npm/left-pad"),
            "/repository/npm/left-pad"
        );
        assert_eq!(
            super::redacted("/repository/npm/-/user/token/wharf_ab12_secret"),
            "/repository/npm/-/user/token/[token]"
        );
    }
}
