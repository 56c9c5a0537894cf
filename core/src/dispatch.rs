//! The one dispatch path every format's requests take (DESIGN.md, "One request, every format"):
//!
//! ```text
//! repository = lookup(name)           unknown -> 404
//! access     = format.classify(head)  pure
//! principal  = authenticate; authorize(principal, access)     401 with a challenge / 403
//! plan       = format.handle(ctx, head)
//! carry out the plan: respond | serve a blob | ingest the body, commit, apply | buffer the body, commit, apply
//! errors anywhere -> format.render(problem)
//! ```
//!
//! Because every format goes through here, authorization, limits, durability, audit and metrics hold for all of
//! them without a format remembering to ask.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use wharf_formats::{Access, Commit, Context, Format, Plan, Problem, RequestHead, Response};
use wharf_storage::{AuditEvent, Want};

use crate::auth::Principal;
use crate::error::Error;
use crate::observe::Labels;
use crate::server::App;

/// A configured repository and the format that serves it.
pub struct Repo {
    pub name: String,
    pub format: Arc<dyn Format>,
    pub allow_overwrite: bool,
    pub retention_action: wharf_config::RetentionAction,
}

/// Where a request came in: OCI clients require `/v2/`, every other format lives under `/repository/`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    Repository,
    V2,
}

impl Mount {
    fn serves(self, format: &str) -> bool {
        (self == Mount::V2) == (format == "docker")
    }
}

/// `/repository/{repo}/{tail}`: every format but OCI, which `v2` mounts at `/v2/{repo}/{tail}`.
pub async fn repository(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String)>,
    app: web::Data<App>,
) -> HttpResponse {
    let (repo, tail) = path.into_inner();
    dispatch(&app, &req, payload, &repo, &tail, Mount::Repository).await
}

/// `/api/repository/{repo}/charts{tail}`: ChartMuseum's multi-tenant spelling of `<repo URL>/api/charts`, which the
/// helm-push plugin sends when given the repository URL (it puts the URL's path between `/api` and `/charts`).
pub async fn chartmuseum(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String)>,
    app: web::Data<App>,
) -> HttpResponse {
    let (repo, tail) = path.into_inner();
    let tail = format!("api/charts{tail}");
    dispatch(&app, &req, payload, &repo, &tail, Mount::Repository).await
}

pub async fn dispatch(
    app: &App,
    req: &HttpRequest,
    payload: web::Payload,
    name: &str,
    tail: &str,
    mount: Mount,
) -> HttpResponse {
    let Some(repo) = app
        .repos
        .get(name)
        .filter(|r| mount.serves(r.format.name()))
    else {
        let message = format!("no repository named `{name}`");
        if mount == Mount::V2 {
            let problem = Problem::new(404, "NAME_UNKNOWN", message);
            return to_http(wharf_formats::oci::error_response(&problem));
        }
        let body = serde_json::json!({ "errors": [{ "status": 404, "message": message }] });
        return HttpResponse::NotFound().json(body);
    };
    req.extensions_mut().insert(Labels {
        repository: repo.name.clone(),
        format: repo.format.name().to_string(),
    });
    match carry_out(app, req, payload, repo, tail).await {
        Ok(response) => response,
        Err(problem) => {
            if problem.status >= 500 {
                tracing::error!(code = %problem.code, detail = problem.detail.as_deref().unwrap_or(""), "request failed");
            }
            let mut rendered = {
                let problem = problem.clone();
                call(req, app, &repo.format, move |f, _| Ok(f.render(&problem)))
                    .await
                    .unwrap_or_else(|failed| Response::plain_error(&failed))
            };
            rendered.headers.extend(problem.headers.iter().cloned());
            let mut response = to_http(rendered);
            if problem.status == 401 {
                let challenge = match mount {
                    Mount::V2 => crate::v2::challenge(req, app),
                    Mount::Repository => {
                        actix_web::http::header::HeaderValue::from_static("Basic realm=\"wharf\"")
                    }
                };
                response
                    .headers_mut()
                    .insert(actix_web::http::header::WWW_AUTHENTICATE, challenge);
            }
            response
        }
    }
}

async fn carry_out(
    app: &App,
    req: &HttpRequest,
    payload: web::Payload,
    repo: &Repo,
    tail: &str,
) -> Result<HttpResponse, Problem> {
    let format = repo.format.as_ref();
    let mut head = request_head(app, req, &repo.name, tail);
    head.allow_overwrite = repo.allow_overwrite;
    if repo.format.name() == "docker" {
        head.base_url = head.base_url.replace("/repository/", "/v2/");
    }
    let access = {
        let head = head.clone();
        call(req, app, &repo.format, move |f, _| f.classify(&head)).await?
    };
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let principal = app
        .auth
        .authenticate(authorization)
        .await
        .map_err(problem)?;
    authorize(app, principal.as_ref(), access)?;
    head.principal = principal.map(|p| p.name);
    let ctx = context(app);
    let planned = {
        let head = head.clone();
        call(req, app, &repo.format, move |f, ctx| f.handle(ctx, &head)).await?
    };
    // What the body became; every kind ends the same way: the format commits, the host applies.
    let received = match planned {
        Plan::Respond(response) => return Ok(to_http(response)),
        Plan::Redirect(location) => {
            return Ok(HttpResponse::TemporaryRedirect()
                .insert_header(("location", location))
                .finish());
        }
        Plan::Serve {
            digest,
            status,
            headers,
        } => {
            let (response, sent) =
                crate::serve::blob(req, &app.store, digest, status, &headers).await?;
            crate::observe::bytes_sent(&repo.name, format.name(), sent);
            return Ok(response);
        }
        Plan::Ingest {
            expected,
            max_size,
            want,
            later,
        } => {
            let limit = max_size.min(ctx.max_upload);
            check_length(&head, limit)?;
            let mut ingest = app.store.begin(want, limit, expected)?;
            let mut payload = payload;
            while let Some(chunk) = payload.next().await {
                ingest.write(chunk.map_err(body_problem)?).await?;
            }
            crate::observe::bytes_received(&repo.name, format.name(), ingest.size());
            let blob = app.store.finish(ingest).await?;
            app.store.checksum_later(&blob, later)?;
            Received::Blob(blob)
        }
        Plan::Append {
            session,
            offset,
            max_size,
        } => {
            let size = append(
                app,
                &head,
                format.name(),
                payload,
                &session,
                offset,
                max_size,
            );
            Received::Appended(size.await?)
        }
        Plan::Seal {
            session,
            expected,
            want,
            offset,
            max_size,
        } => {
            if head.content_length != Some(0) {
                append(
                    app,
                    &head,
                    format.name(),
                    payload,
                    &session,
                    offset,
                    max_size,
                )
                .await?;
            }
            Received::Blob(app.store.seal(&session, expected, want).await?)
        }
        Plan::Form {
            max_size,
            max_files,
            want,
        } => {
            let limit = max_size.min(ctx.max_upload);
            check_length(&head, limit.saturating_add(ctx.max_document))?;
            let form = crate::form::read(app, req, payload, limit, max_files, want).await?;
            let received: u64 = form.files.iter().map(|f| f.blob.size).sum();
            crate::observe::bytes_received(&repo.name, format.name(), received);
            Received::Form(form)
        }
        Plan::Buffer(max) => {
            let limit = max.min(ctx.max_document);
            check_length(&head, limit)?;
            Received::Body(read_body(payload, limit).await?)
        }
    };
    let commit = {
        let head = head.clone();
        call(req, app, &repo.format, move |f, ctx| match received {
            Received::Blob(blob) => f.commit_ingested(ctx, &head, &blob),
            Received::Appended(size) => f.commit_appended(ctx, &head, size),
            Received::Form(form) => f.commit_form(ctx, &head, &form),
            Received::Body(body) => f.commit_buffered(ctx, &head, &body),
        })
        .await?
    };
    apply(app, &head, commit).await
}

/// What a write's body became on the host, for the format's commit.
enum Received {
    Blob(wharf_storage::BlobInfo),
    Appended(u64),
    Form(wharf_formats::Form),
    Body(Vec<u8>),
}

/// Default policy until per-repository permissions arrive: anyone reads (unless `auth.anonymous_read` is off),
/// any authenticated user writes.
fn authorize(app: &App, principal: Option<&Principal>, access: Access) -> Result<(), Problem> {
    match (access, principal) {
        (Access::Open, _) | (_, Some(_)) => Ok(()),
        (Access::Read, None) if app.config.auth.anonymous_read => Ok(()),
        _ => Err(Problem::new(401, "UNAUTHORIZED", "authentication required")),
    }
}

/// Streams the body onto the end of an upload session. A client that goes away mid-way leaves the session holding
/// what arrived, so it can resume.
async fn append(
    app: &App,
    head: &RequestHead,
    format: &str,
    mut payload: web::Payload,
    session: &str,
    offset: Option<u64>,
    max_size: u64,
) -> Result<u64, Problem> {
    let limit = max_size.min(app.config.server.max_upload.bytes());
    let mut append = app.store.append(session, offset, limit).await?;
    let before = append.size();
    while let Some(chunk) = payload.next().await {
        append.write(chunk.map_err(body_problem)?).await?;
    }
    let size = append.finish().await?;
    crate::observe::bytes_received(&head.repository, format, size - before);
    Ok(size)
}

/// One call into a format: inline for a built-in one, on the blocking pool for an isolated one (a plugin), so a
/// plugin that runs to its time limit holds a pool thread, never an HTTP worker.
async fn call<T: Send + 'static>(
    req: &HttpRequest,
    app: &App,
    format: &Arc<dyn Format>,
    f: impl FnOnce(&dyn Format, &Context<'_>) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let shared = req.app_data::<web::Data<App>>().cloned();
    let (true, Some(shared)) = (format.isolated(), shared) else {
        return f(format.as_ref(), &context(app));
    };
    let format = format.clone();
    actix_web::rt::task::spawn_blocking(move || f(format.as_ref(), &context(&shared)))
        .await
        .map_err(|e| Problem::internal(format!("a format call did not finish: {e}")))?
}

/// What a format may read and the limits that apply, for one request.
pub fn context(app: &App) -> Context<'_> {
    Context {
        store: &app.store,
        accounts: &app.auth,
        max_upload: app.config.server.max_upload.bytes(),
        max_document: app.config.server.max_document.bytes(),
        max_manifest: app.config.server.max_manifest.bytes(),
    }
}

async fn apply(app: &App, head: &RequestHead, commit: Commit) -> Result<HttpResponse, Problem> {
    let event = AuditEvent {
        time: 0,
        principal: head.principal.clone().unwrap_or_else(|| "anonymous".into()),
        action: format!("{} {}", head.method, head.repository),
        target: format!("{}/{}", head.repository, head.path),
    };
    commit_with(app, event, commit).await
}

/// Stores a commit's small blobs, applies its writes with the audit event in one transaction, and renders its
/// response: the end of every write, from a format's route or from the management API.
pub async fn commit_with(
    app: &App,
    event: AuditEvent,
    commit: Commit,
) -> Result<HttpResponse, Problem> {
    for blob in commit.blobs {
        app.store.put_bytes(blob, Want::NONE).await?;
    }
    if !commit.writes.is_empty() {
        app.store.apply(&commit.writes, &[event]).await?;
    }
    Ok(to_http(commit.response))
}

fn check_length(head: &RequestHead, limit: u64) -> Result<(), Problem> {
    match head.content_length {
        Some(len) if len > limit => Err(wharf_storage::Error::TooLarge { limit }.into()),
        _ => Ok(()),
    }
}

async fn read_body(mut payload: web::Payload, limit: u64) -> Result<Vec<u8>, Problem> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(body_problem)?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(wharf_storage::Error::TooLarge { limit }.into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn body_problem(e: actix_web::error::PayloadError) -> Problem {
    Problem {
        detail: Some(e.to_string()),
        ..Problem::bad_request("the request body could not be read to its end")
    }
}

fn problem(e: Error) -> Problem {
    match e {
        Error::Unauthorized(message) => Problem::new(401, "UNAUTHORIZED", message),
        Error::Forbidden(message) => Problem::new(403, "DENIED", message),
        Error::Storage(e) => e.into(),
        other => Problem::internal(other),
    }
}

fn request_head(app: &App, req: &HttpRequest, repo: &str, tail: &str) -> RequestHead {
    let base = match &app.config.server.public_url {
        Some(url) => url.clone(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    RequestHead {
        method: req.method().as_str().to_string(),
        path: tail.to_string(),
        query: Some(req.query_string())
            .filter(|q| !q.is_empty())
            .map(str::to_string),
        headers: req
            .headers()
            .iter()
            .filter(|(name, _)| *name != actix_web::http::header::AUTHORIZATION)
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        repository: repo.to_string(),
        principal: None,
        content_length: req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse().ok()),
        base_url: format!("{base}/repository/{repo}"),
        allow_overwrite: false,
    }
}

pub fn to_http(response: Response) -> HttpResponse {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    for (name, value) in &response.headers {
        builder.append_header((name.as_str(), value.as_str()));
    }
    if let Some(reason) = response.reason.as_deref().and_then(reason_phrase) {
        builder.reason(reason);
    }
    builder.body(response.body)
}

/// A reason phrase must outlive the response, so each distinct one is kept for good: at most 1,000 of them (a
/// format's messages repeat), each cut to 200 visible ASCII characters. Past that the standard phrase is used.
fn reason_phrase(reason: &str) -> Option<&'static str> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static KEPT: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let clean: String = reason
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .take(200)
        .collect();
    let mut kept = KEPT.get_or_init(Default::default).lock().ok()?;
    if let Some(phrase) = kept.get(&clean) {
        return Some(phrase);
    }
    if kept.len() >= 1_000 {
        return None;
    }
    let phrase: &'static str = Box::leak(clean.clone().into_boxed_str());
    kept.insert(clean, phrase);
    Some(phrase)
}
