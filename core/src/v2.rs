//! The `/v2/` mount OCI clients require: the version check (`GET /v2/`, where `docker login` verifies credentials),
//! the token endpoint of the Bearer flow (see `bearer`), the catalog across every OCI repository, and
//! `/v2/<repo>/…`, which goes down the one dispatch path.
//!
//! Every reply here carries `Docker-Distribution-API-Version: registry/2.0`; clients check it.

use actix_web::{HttpRequest, HttpResponse, web};
use wharf_formats::Problem;

use crate::dispatch::{self, Mount, to_http};
use crate::server::App;

const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2/", web::get().to(base))
        .route("/v2", web::get().to(base))
        .route("/v2/_catalog", web::get().to(catalog))
        .route("/v2/token", web::get().to(token))
        .service(web::resource("/v2/{repo}/{tail:.*}").to(repository));
}

/// 200 for valid credentials (an anonymous token included), 401 with the challenge for none: docker sends its
/// stored credentials only after a challenge, so answering 200 to no credentials would make `docker login` accept
/// any password.
async fn base(req: HttpRequest, app: web::Data<App>) -> HttpResponse {
    if req.headers().get("authorization").is_none() {
        return unauthorized(&req, &app, "authentication required");
    }
    match principal(&req, &app).await {
        Ok(_) => HttpResponse::Ok()
            .insert_header(API_VERSION)
            .content_type("application/json")
            .body("{}"),
        Err(message) => unauthorized(&req, &app, &message),
    }
}

/// The token endpoint: a token for the user whose Basic credentials come with the request, or an anonymous one
/// where anonymous reads are allowed.
async fn token(req: HttpRequest, app: web::Data<App>) -> HttpResponse {
    let holder = match principal(&req, &app).await {
        Ok(Some(name)) => Some(name),
        // Anonymous tokens only for pulls: a push without credentials fails here, at once, with a message that
        // says what to do, rather than after the client's retries of every layer upload.
        Ok(None) if wants_write(&req) => {
            return basic_challenge("authentication required to push: log in first (docker login)");
        }
        Ok(None) if app.config.auth.anonymous_read => None,
        Ok(None) => return basic_challenge("authentication required"),
        Err(message) => return basic_challenge(&message),
    };
    let Some(signer) = app.auth.signer() else {
        return HttpResponse::NotFound().finish();
    };
    let token = signer.issue(holder.as_deref());
    HttpResponse::Ok().json(serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": crate::bearer::LIFETIME,
    }))
}

/// Whether any requested `scope` (`repository:<name>:pull,push`) asks for more than pulling.
fn wants_write(req: &HttpRequest) -> bool {
    req.query_string()
        .split('&')
        .filter_map(|p| p.strip_prefix("scope="))
        .filter_map(wharf_formats::percent_decode)
        .any(|scope| {
            scope
                .rsplit(':')
                .next()
                .is_some_and(|actions| actions.split(',').any(|a| a != "pull"))
        })
}

fn basic_challenge(message: &str) -> HttpResponse {
    let problem = Problem::new(401, "UNAUTHORIZED", message);
    let mut response = to_http(wharf_formats::oci::error_response(&problem));
    if let Ok(value) = "Basic realm=\"wharf\"".parse() {
        response
            .headers_mut()
            .insert(actix_web::http::header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `Bearer realm="<base>/v2/token",service="wharf"`: where clients get a token.
pub fn challenge(req: &HttpRequest, app: &App) -> actix_web::http::header::HeaderValue {
    let base = match &app.config.server.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    format!("Bearer realm=\"{base}/v2/token\",service=\"wharf\"")
        .parse()
        .unwrap_or_else(|_| {
            actix_web::http::header::HeaderValue::from_static("Basic realm=\"wharf\"")
        })
}

async fn catalog(req: HttpRequest, app: web::Data<App>) -> HttpResponse {
    match principal(&req, &app).await {
        Ok(None) if !app.config.auth.anonymous_read => {
            return unauthorized(&req, &app, "authentication required");
        }
        Err(message) => return unauthorized(&req, &app, &message),
        _ => {}
    }
    let repos: Vec<String> = app
        .repos
        .values()
        .filter(|r| r.format.name() == "docker")
        .map(|r| r.name.clone())
        .collect();
    let query = Some(req.query_string()).filter(|q| !q.is_empty());
    let response = match wharf_formats::oci::catalog(&app.store, &repos, query) {
        Ok(response) => response,
        Err(problem) => wharf_formats::oci::error_response(&problem),
    };
    let mut response = to_http(response);
    add_version(&mut response);
    response
}

async fn repository(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String)>,
    app: web::Data<App>,
) -> HttpResponse {
    let (repo, tail) = path.into_inner();
    let mut response = dispatch::dispatch(&app, &req, payload, &repo, &tail, Mount::V2).await;
    add_version(&mut response);
    response
}

async fn principal(req: &HttpRequest, app: &App) -> Result<Option<String>, String> {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    match app.auth.authenticate(authorization).await {
        Ok(principal) => Ok(principal.map(|p| p.name)),
        Err(crate::error::Error::Unauthorized(message)) => Err(message),
        Err(e) => {
            tracing::error!(error = %e, "authentication failed");
            Err("authentication failed".into())
        }
    }
}

fn unauthorized(req: &HttpRequest, app: &App, message: &str) -> HttpResponse {
    let problem = Problem::new(401, "UNAUTHORIZED", message);
    let mut response = to_http(wharf_formats::oci::error_response(&problem));
    response.headers_mut().insert(
        actix_web::http::header::WWW_AUTHENTICATE,
        challenge(req, app),
    );
    add_version(&mut response);
    response
}

fn add_version(response: &mut HttpResponse) {
    response.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static(API_VERSION.0),
        actix_web::http::header::HeaderValue::from_static(API_VERSION.1),
    );
}
