//! The management API under `/api/v1/`: operations that belong to no client's protocol. Errors are
//! `{"errors": [{"status", "message"}]}`. Writes go through the format (which knows what a version is) and end in
//! the same transaction and audit log as every other write.
//!
//! ```text
//! PUT    /api/v1/repositories/<repo>/packages/<package>/versions/<version>/yank   {"reason": "..."} (optional)
//! DELETE /api/v1/repositories/<repo>/packages/<package>/versions/<version>/yank   un-yank
//! POST   /api/v1/promote                 {"repository", "package", "version" | "tag", "to", "tags": [], "move"}
//! PUT    /api/v1/repositories/<repo>/retention        an ECR lifecycle policy, verbatim (admin); GET, DELETE
//! POST   /api/v1/repositories/<repo>/retention/run?dry_run=true   the plan: every version, kept or removed, and why
//! POST   /api/v1/gc                      run garbage collection now (admin): {"blobs", "bytes", "millis"}
//! GET    /api/v1/audit?limit=N           the newest audit events first (admin), at most 10,000
//! ```

use actix_web::{HttpRequest, HttpResponse, web};
use wharf_formats::Problem;
use wharf_storage::AuditEvent;

use crate::auth::Principal;
use crate::server::App;

/// The largest management request body.
const MAX_BODY: usize = 64 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/repositories/{repo}/packages/{package}/versions/{version}/yank")
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route(web::put().to(yank))
            .route(web::delete().to(yank)),
    )
    .service(
        web::resource("/api/v1/promote")
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route(web::post().to(promote)),
    )
    .service(
        web::resource("/api/v1/repositories/{repo}/retention")
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route(web::put().to(retention_policy))
            .route(web::get().to(retention_policy))
            .route(web::delete().to(retention_policy)),
    )
    .route(
        "/api/v1/repositories/{repo}/retention/run",
        web::post().to(retention_run),
    )
    .route("/api/v1/gc", web::post().to(gc))
    .route("/api/v1/audit", web::get().to(audit));
}

/// Copies or moves a version to another repository (`promotion.rs`).
async fn promote(req: HttpRequest, body: web::Bytes, app: web::Data<App>) -> HttpResponse {
    let outcome = async {
        let principal = writer(&app, &req).await?;
        let asked = serde_json::from_slice(&body).map_err(|e| {
            Problem::bad_request(format!(
                "the body must be {{\"repository\", \"package\", \"version\" or \"tag\", \"to\", \"tags\", \"move\"}}: {e}"
            ))
        })?;
        crate::promotion::run(&app, asked, principal).await
    };
    outcome.await.unwrap_or_else(|problem| error(&problem))
}

/// PUT sets the policy (ECR's JSON), GET shows it, DELETE removes it.
async fn retention_policy(
    req: HttpRequest,
    repo: web::Path<String>,
    body: web::Bytes,
    app: web::Data<App>,
) -> HttpResponse {
    let outcome = async {
        let principal = admin(&app, &req).await?;
        if !app.repos.contains_key(repo.as_str()) {
            return Err(Problem::not_found(format!("no repository named `{repo}`")));
        }
        let method = req.method().clone();
        if method == actix_web::http::Method::GET {
            let policy = crate::retention::policy(&app, &repo)?.ok_or_else(|| {
                Problem::not_found(format!("repository `{repo}` has no retention policy"))
            })?;
            return serde_json::to_value(policy).map_err(Problem::internal);
        }
        let policy = match method == actix_web::http::Method::PUT {
            true => Some(wharf_formats::retention::Policy::parse(&body)?),
            false => None,
        };
        crate::retention::set_policy(&app, &repo, policy.as_ref(), &principal).await?;
        serde_json::to_value(policy).map_err(Problem::internal)
    };
    match outcome.await {
        Ok(value) => HttpResponse::Ok().json(value),
        Err(problem) => error(&problem),
    }
}

#[derive(serde::Deserialize)]
struct RunQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn retention_run(
    req: HttpRequest,
    repo: web::Path<String>,
    query: web::Query<RunQuery>,
    app: web::Data<App>,
) -> HttpResponse {
    let outcome = async {
        let principal = admin(&app, &req).await?;
        crate::retention::run(app.clone().into_inner(), &repo, query.dry_run, &principal).await
    };
    let dry_run = query.dry_run;
    let body = async {
        let decisions = outcome.await?;
        // A plan of a large repository is megabytes of JSON: written on the maintenance thread, not a worker.
        crate::background::run("retention", move || {
            // Typed, not `json!`: a `Value` of 100,000 decisions costs more than writing them.
            #[derive(serde::Serialize)]
            struct Plan<'a> {
                dry_run: bool,
                removed: usize,
                kept: usize,
                decisions: &'a [wharf_formats::retention::Decision],
            }
            let removed = decisions.iter().filter(|d| d.remove).count();
            // About 200 bytes a decision: sized once rather than grown (and copied) by doubling.
            let mut body = Vec::with_capacity(256 * decisions.len() + 64);
            serde_json::to_writer(
                &mut body,
                &Plan {
                    dry_run,
                    removed,
                    kept: decisions.len() - removed,
                    decisions: &decisions,
                },
            )
            .map(|()| body)
        })
        .await?
        .map_err(Problem::internal)
    };
    match body.await {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/json")
            .body(body),
        Err(problem) => error(&problem),
    }
}
async fn gc(req: HttpRequest, app: web::Data<App>) -> HttpResponse {
    let outcome = async {
        let principal = admin(&app, &req).await?;
        crate::gc::run(&app, &principal).await
    };
    match outcome.await {
        Ok(collected) => HttpResponse::Ok().json(collected),
        Err(problem) => error(&problem),
    }
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    req: HttpRequest,
    query: web::Query<AuditQuery>,
    app: web::Data<App>,
) -> HttpResponse {
    let outcome = async {
        admin(&app, &req).await?;
        let limit = query.limit.unwrap_or(100).min(10_000);
        Ok::<_, Problem>(app.store.meta().audit(limit)?)
    };
    match outcome.await {
        Ok(events) => HttpResponse::Ok().json(events),
        Err(problem) => error(&problem),
    }
}

/// An administrator: GC and the audit log concern every repository.
async fn admin(app: &App, req: &HttpRequest) -> Result<String, Problem> {
    match authenticated(app, req).await? {
        principal if principal.admin => Ok(principal.name),
        principal => Err(Problem::new(
            403,
            "DENIED",
            format!("{} is not an administrator", principal.name),
        )),
    }
}

async fn yank(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
    app: web::Data<App>,
) -> HttpResponse {
    let (repo, package, version) = path.into_inner();
    let undo = req.method() == actix_web::http::Method::DELETE;
    let outcome = async {
        let principal = writer(&app, &req).await?;
        let reason = match undo {
            true => None,
            false => Some(reason(&body)?),
        };
        let format = &app
            .repos
            .get(&repo)
            .ok_or_else(|| Problem::not_found(format!("no repository named `{repo}`")))?
            .format;
        let commit = format.yank(
            &crate::dispatch::context(&app),
            &repo,
            &package,
            &version,
            reason.as_deref(),
        )?;
        let event = AuditEvent {
            time: 0,
            principal,
            action: if undo { "unyank" } else { "yank" }.into(),
            target: format!("{repo}/{package}@{version}"),
        };
        crate::dispatch::commit_with(&app, event, commit).await
    };
    outcome.await.unwrap_or_else(|problem| error(&problem))
}

/// The authenticated user, who must exist: every management request needs one.
async fn authenticated(app: &App, req: &HttpRequest) -> Result<Principal, Problem> {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    match app.auth.authenticate(authorization).await {
        Ok(Some(principal)) => Ok(principal),
        Ok(None) => Err(Problem::new(401, "UNAUTHORIZED", "authentication required")),
        Err(e) => Err(Problem::new(401, "UNAUTHORIZED", e.to_string())),
    }
}

async fn writer(app: &App, req: &HttpRequest) -> Result<String, Problem> {
    Ok(authenticated(app, req).await?.name)
}

/// `{"reason": "..."}`, or an empty body for no reason.
fn reason(body: &[u8]) -> Result<String, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        reason: String,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.reason)
        .map_err(|e| Problem::bad_request(format!("the body must be {{\"reason\": \"...\"}}: {e}")))
}

fn error(problem: &Problem) -> HttpResponse {
    if problem.status >= 500 {
        tracing::error!(code = %problem.code, detail = problem.detail.as_deref().unwrap_or(""), "management request failed");
    }
    let status = actix_web::http::StatusCode::from_u16(problem.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let body =
        serde_json::json!({ "errors": [{ "status": problem.status, "message": problem.message }] });
    let mut response = HttpResponse::build(status);
    if problem.status == 401 {
        response.insert_header(("www-authenticate", "Basic realm=\"wharf\""));
    }
    response.json(body)
}
