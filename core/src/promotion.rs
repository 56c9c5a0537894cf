//! Promotion (`POST /api/v1/promote`, `wharf promote`): a version copied or moved, with its tags, to another
//! repository of the same format without moving bytes (`wharf_formats::promote` and each format's
//! `Format::promote`), or, within one repository, only given more tags. The writes, the moves' deletes and the
//! audit event land in one transaction, where the target's immutability rules hold.

use actix_web::HttpResponse;
use wharf_formats::promote::Promotion;
use wharf_formats::{Commit, Problem};
use wharf_storage::{AuditEvent, Write};

use crate::server::App;

/// What to promote: the body of `POST /api/v1/promote`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub repository: String,
    pub package: String,
    /// The version, or a tag that names it.
    pub version: Option<String>,
    pub tag: Option<String>,
    pub to: String,
    /// Tags to set in the target besides those that come along.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Remove the version and its tags from the source in the same transaction.
    #[serde(default, rename = "move")]
    pub move_: bool,
}

/// Copies or moves a version, with its tags, to another repository of the same format without moving bytes; to
/// the same repository, only adds tags (tag promotion: `app:a1b2c3d` also tagged `staging`).
pub async fn run(app: &App, asked: Request, principal: String) -> Result<HttpResponse, Problem> {
    let repo = |name: &str| {
        app.repos
            .get(name)
            .ok_or_else(|| Problem::not_found(format!("no repository named `{name}`")))
    };
    let (source, target) = (repo(&asked.repository)?, repo(&asked.to)?);
    if source.format.name() != target.format.name() {
        return Err(Problem::bad_request(format!(
            "{} holds {} and {} holds {}: promotion stays within one format",
            source.name,
            source.format.name(),
            target.name,
            target.format.name()
        )));
    }
    if let Some(bad) = asked.tags.iter().find(|t| !valid_tag(t)) {
        return Err(Problem::bad_request(format!(
            "`{bad}` is not a tag: 1-128 letters, digits, `.`, `_`, `-`"
        )));
    }
    let meta = app.store.meta();
    let version = match (&asked.version, &asked.tag) {
        (Some(version), None) => version.clone(),
        (None, Some(tag)) => {
            meta.tag(&asked.repository, &asked.package, tag)?
                .ok_or_else(|| {
                    Problem::not_found(format!(
                        "{}/{}:{tag} not found",
                        asked.repository, asked.package
                    ))
                })?
                .version
        }
        _ => return Err(Problem::bad_request("give either \"version\" or \"tag\"")),
    };
    let promotion = Promotion {
        from: &asked.repository,
        to: &asked.to,
        package: &asked.package,
        version: &version,
    };
    let ctx = crate::dispatch::context(app);
    let mut writes = match asked.to == asked.repository {
        true => {
            wharf_formats::promote::source_version(&ctx, &promotion)?;
            Vec::new()
        }
        false => source.format.promote(&ctx, &promotion)?,
    };
    writes.extend(asked.tags.iter().map(|tag| Write::PutTag {
        repo: asked.to.clone(),
        package: asked.package.clone(),
        tag: tag.clone(),
        version: version.clone(),
    }));
    let moved = asked.move_ && asked.to != asked.repository;
    if moved {
        writes.extend(source.format.remove_version(
            &ctx,
            &asked.repository,
            &asked.package,
            &version,
        )?);
    }
    let with_tags = match asked.tags.is_empty() {
        true => String::new(),
        false => format!(" as {}", asked.tags.join(", ")),
    };
    let event = AuditEvent {
        time: 0,
        principal,
        action: if moved { "move" } else { "promote" }.into(),
        target: format!(
            "{}/{}@{version} -> {}{with_tags}",
            asked.repository, asked.package, asked.to
        ),
    };
    let answer = serde_json::json!({
        "package": asked.package, "version": version, "from": asked.repository, "to": asked.to,
    });
    let response = wharf_formats::Response::json(200, &answer);
    crate::dispatch::commit_with(app, event, Commit::new(writes, response)).await
}

/// Tag names every format accepts (OCI's rule, which npm's dist-tags also meet).
fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
