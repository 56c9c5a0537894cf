//! `npm`: an npm registry at `/repository/<repo>/`, for npm, pnpm and yarn.
//!
//! How it maps onto the shared model:
//!
//! ```text
//! package name (`left-pad`, `@acme/util`)   package
//! version                                   version: its tarball blob, and its manifest (package.json as published,
//!                                           with `dist`) as metadata
//! dist-tag                                  tag -> version
//! kv  npm:doc:<name>                        package-level fields: description, readme, keywords, times
//! kv  npm:used:<name>@<version>             written with every publish and never removed: a version number once
//!                                           used can never be published again, not even after an unpublish
//! ```
//!
//! Publishing checks the tarball against the document (sha1 `shasum`, sha512 `integrity`) and the document against
//! the tarball's own `package.json` (name, version, dependencies, scripts, bin), so what `npm view` shows is what
//! `npm install` runs. Packuments are generated from the versions on every read (full, or abbreviated for
//! `Accept: application/vnd.npm.install-v1+json`), with an ETag, and gzipped when asked.

mod documents;
mod endpoint;
mod publish;

use wharf_storage::{Version, Write};

use crate::promote::{self, Promotion};
use crate::{Access, Commit, Context, Format, Plan, Problem, RequestHead, Response};
use endpoint::Endpoint;

pub struct Npm;

pub fn npm_error(status: u16, message: impl Into<String>) -> Problem {
    Problem::new(status, "NPM", message)
}

fn doc_key(name: &str) -> String {
    format!("npm:doc:{name}")
}

/// Package-level fields kept from the latest publish and shown in the full packument.
const DOC_FIELDS: [&str; 8] = [
    "description",
    "readme",
    "keywords",
    "homepage",
    "repository",
    "license",
    "author",
    "maintainers",
];

/// The stored package-level document, `{}` when there is none.
fn stored_doc(ctx: &Context<'_>, repo: &str, name: &str) -> Result<serde_json::Value, Problem> {
    Ok(ctx
        .store
        .meta()
        .kv(repo, &doc_key(name))?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({})))
}

fn used_key(name: &str, version: &str) -> String {
    format!("npm:used:{name}@{version}")
}

/// The unscoped part of a name: tarballs are `<basename>-<version>.tgz`.
fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Every version of a package, oldest key first. Bounded by that package, not by the store.
fn versions(ctx: &Context<'_>, repo: &str, name: &str) -> Result<Vec<(String, Version)>, Problem> {
    Ok(ctx.store.meta().versions(repo, name, None, 100_000)?)
}

fn not_found(name: &str) -> Problem {
    npm_error(404, format!("package `{name}` not found"))
}

/// A promoted version brings its tarball's blob (through the version record) and dist-tags, uses up its number in
/// the target as a publish would, and brings the package document when the target has none yet.
fn promote(ctx: &Context<'_>, p: &Promotion<'_>) -> Result<Vec<Write>, Problem> {
    let meta = ctx.store.meta();
    let used = used_key(p.package, p.version);
    if meta.kv(p.to, &used)?.is_some() && meta.version(p.to, p.package, p.version)?.is_none() {
        return Err(npm_error(
            409,
            format!(
                "{}@{} was in {} before and was unpublished: a version number is used once",
                p.package, p.version, p.to
            ),
        ));
    }
    let (mut writes, _) = promote::copy_version(ctx, p)?;
    writes.push(Write::PutKv {
        repo: p.to.into(),
        key: used,
        value: Vec::new(),
    });
    let doc = doc_key(p.package);
    if meta.kv(p.to, &doc)?.is_none()
        && let Some(value) = meta.kv(p.from, &doc)?
    {
        writes.push(Write::PutKv {
            repo: p.to.into(),
            key: doc,
            value,
        });
    }
    Ok(writes)
}

impl Format for Npm {
    fn name(&self) -> &str {
        "npm"
    }

    fn promote(&self, ctx: &Context<'_>, p: &Promotion<'_>) -> Result<Vec<Write>, Problem> {
        promote(ctx, p)
    }

    /// An expired version goes with its dist-tags, except the one `latest` names: npm installs `latest` when no
    /// version is asked for, so it is kept (the plan says so) until a publish moves `latest` on.
    fn expire(
        &self,
        _ctx: &Context<'_>,
        repo: &str,
        item: &crate::retention::Item,
    ) -> Result<Vec<Write>, Problem> {
        if item.tags.iter().any(|t| t == "latest") {
            return Err(npm_error(409, "the latest dist-tag points at it"));
        }
        Ok(crate::retention::version_removal(repo, item))
    }

    fn classify(&self, head: &RequestHead) -> Result<Access, Problem> {
        Ok(Endpoint::parse(head)?.access())
    }

    fn handle(&self, ctx: &Context<'_>, head: &RequestHead) -> Result<Plan, Problem> {
        let repo = head.repository.as_str();
        use Endpoint as E;
        match Endpoint::parse(head)? {
            E::Ping => Ok(Plan::Respond(Response::json(200, &serde_json::json!({})))),
            E::Whoami => Ok(Plan::Respond(Response::json(
                200,
                &serde_json::json!({ "username": head.principal }),
            ))),
            E::WebLogin => Err(npm_error(
                404,
                "web login is not offered: use the classic login (npm falls back to it)",
            )),
            E::Audit => Err(npm_error(
                501,
                "npm audit is not supported by this registry: it has no advisory database",
            )),
            E::GetUser(user) => match ctx.store.meta().user(&user)? {
                Some(u) => Ok(Plan::Respond(Response::json(
                    200,
                    &serde_json::json!({ "_id": format!("org.couchdb.user:{}", u.name), "name": u.name }),
                ))),
                None => Err(npm_error(404, format!("user `{user}` not found"))),
            },
            E::Search => documents::search(ctx, head).map(Plan::Respond),
            E::Packument(name) => documents::packument(ctx, head, &name).map(Plan::Respond),
            E::DistTags(name) => documents::dist_tags(ctx, repo, &name).map(Plan::Respond),
            E::Tarball { name, file } => {
                let (number, version) = tarball_version(ctx, repo, &name, &file)?;
                crate::note_pull(ctx, head, &name, &number);
                let digest = *version
                    .blobs
                    .first()
                    .ok_or_else(|| Problem::internal("version without a tarball"))?;
                Ok(Plan::Serve {
                    digest,
                    status: 200,
                    headers: vec![("content-type".into(), "application/octet-stream".into())],
                })
            }
            E::Login(_) | E::PutDistTag(..) | E::Publish(_) | E::Update(_) => {
                Ok(Plan::Buffer(ctx.max_document))
            }
            E::Logout(_) | E::DeleteDistTag(..) | E::UnpublishAll(_) | E::DeleteTarball { .. } => {
                Ok(Plan::Buffer(0))
            }
        }
    }

    fn commit_buffered(
        &self,
        ctx: &Context<'_>,
        head: &RequestHead,
        body: &[u8],
    ) -> Result<Commit, Problem> {
        let repo = head.repository.as_str();
        use Endpoint as E;
        match Endpoint::parse(head)? {
            E::Login(user) => login(ctx, &user, body),
            E::Logout(token) => {
                let user = head.principal.as_deref().unwrap_or("");
                let write = ctx
                    .accounts
                    .revoke_token(user, &token)
                    .ok_or_else(|| npm_error(404, "no such token of yours"))?;
                Ok(Commit::new(vec![write], ok_json(200)))
            }
            E::PutDistTag(name, tag) => {
                let version: String = serde_json::from_slice(body).map_err(|_| {
                    npm_error(400, "the body must be a JSON string: the version to tag")
                })?;
                if ctx.store.meta().version(repo, &name, &version)?.is_none() {
                    return Err(npm_error(
                        404,
                        format!("version `{name}@{version}` not found"),
                    ));
                }
                let write = Write::PutTag {
                    repo: repo.into(),
                    package: name,
                    tag,
                    version,
                };
                Ok(Commit::new(vec![write], ok_json(201)))
            }
            E::DeleteDistTag(name, tag) => {
                if tag == "latest" {
                    return Err(npm_error(400, "the `latest` dist-tag cannot be removed"));
                }
                let write = Write::DeleteTag {
                    repo: repo.into(),
                    package: name,
                    tag,
                };
                Ok(Commit::new(vec![write], ok_json(200)))
            }
            E::Publish(name) => publish::publish_or_update(ctx, head, &name, body),
            E::Update(name) => publish::update(ctx, head, &name, body),
            E::UnpublishAll(name) => publish::unpublish_all(ctx, repo, &name),
            // The version went with the document update that came first; the tarball goes with it.
            E::DeleteTarball { .. } => Ok(Commit::new(Vec::new(), ok_json(200))),
            _ => Err(Problem::internal("not a buffered npm endpoint")),
        }
    }

    fn render(&self, problem: &Problem) -> Response {
        let message = if problem.code == "UNAUTHORIZED" {
            "authentication required: run npm login".to_string()
        } else {
            problem.message.clone()
        };
        Response::json(problem.status, &serde_json::json!({ "error": message }))
    }
}

/// `npm login` / `npm adduser`: an existing user with the right password gets a new API token. Users are made by
/// an administrator (`wharf user add`); the registry does not let anyone sign up.
fn login(ctx: &Context<'_>, user: &str, body: &[u8]) -> Result<Commit, Problem> {
    #[derive(serde::Deserialize)]
    struct Credentials {
        name: String,
        password: String,
    }
    let credentials: Credentials = serde_json::from_slice(body)
        .map_err(|_| npm_error(400, "the body must be JSON with `name` and `password`"))?;
    if credentials.name != user || !ctx.accounts.verify_password(user, &credentials.password) {
        return Err(npm_error(
            401,
            "invalid user name or password (users are created by an administrator with `wharf user add`)",
        ));
    }
    let (secret, write) = ctx.accounts.mint_token(user, "npm login");
    let body = serde_json::json!({ "ok": true, "id": format!("org.couchdb.user:{user}"), "token": secret });
    Ok(Commit::new(vec![write], Response::json(201, &body)))
}

fn ok_json(status: u16) -> Response {
    Response::json(status, &serde_json::json!({ "ok": true }))
}

/// The version a tarball file name stands for, and its record.
fn tarball_version(
    ctx: &Context<'_>,
    repo: &str,
    name: &str,
    file: &str,
) -> Result<(String, Version), Problem> {
    let missing = || npm_error(404, format!("tarball `{file}` of `{name}` not found"));
    let version = file
        .strip_suffix(".tgz")
        .and_then(|f| f.strip_prefix(basename(name)))
        .and_then(|f| f.strip_prefix('-'))
        .ok_or_else(missing)?;
    let record = ctx
        .store
        .meta()
        .version(repo, name, version)?
        .ok_or_else(missing)?;
    Ok((version.to_string(), record))
}
