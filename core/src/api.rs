//! The management API under `/api/v1/`: operations that belong to no client's protocol. Errors are
//! `{"errors": [{"status", "message"}]}`. Writes go through the format (which knows what a version is) and end in
//! the same transaction and audit log as every other write.
//!
//! ```text
//! PUT    /api/v1/repositories/<repo>/packages/<package>/versions/<version>/yank   {"reason": "..."} (optional)
//! DELETE /api/v1/repositories/<repo>/packages/<package>/versions/<version>/yank   un-yank
//! ```

use actix_web::{HttpRequest, HttpResponse, web};
use wharf_formats::Problem;
use wharf_storage::AuditEvent;

use crate::server::App;

/// The largest management request body.
const MAX_BODY: usize = 64 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/repositories/{repo}/packages/{package}/versions/{version}/yank")
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route(web::put().to(yank))
            .route(web::delete().to(yank)),
    );
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

/// The authenticated user, who must exist: every management write needs one.
async fn writer(app: &App, req: &HttpRequest) -> Result<String, Problem> {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    match app.auth.authenticate(authorization).await {
        Ok(Some(principal)) => Ok(principal.name),
        Ok(None) => Err(Problem::new(401, "UNAUTHORIZED", "authentication required")),
        Err(e) => Err(Problem::new(401, "UNAUTHORIZED", e.to_string())),
    }
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
