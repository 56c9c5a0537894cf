//! Browsable directory listings in HTML, in the shape public Maven repositories use (`Index of /com/example/`).
//! A directory's children are found by skipping from one to the next in the asset index, so a listing costs one
//! seek per child, however many files lie below them.

use std::fmt::Write as _;

use wharf_storage::Asset;

use super::maven_error;
use crate::dates::iso;
use crate::{Context, Plan, Problem, RequestHead, Response};

/// At most this many entries are listed in one directory.
const MAX_CHILDREN: usize = 10_000;

/// One entry: a subdirectory (`name/`) or a file with its asset.
enum Child {
    Directory(String),
    File(String, Asset),
}

/// The children of `prefix` (empty, or ending in `/`).
fn children(ctx: &Context<'_>, repo: &str, prefix: &str) -> Result<Vec<Child>, Problem> {
    let meta = ctx.store.meta();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    while out.len() < MAX_CHILDREN {
        let Some((path, asset)) = meta
            .assets(repo, prefix, after.as_deref(), 1)?
            .into_iter()
            .next()
        else {
            break;
        };
        let rest = &path[prefix.len()..];
        match rest.split_once('/') {
            Some((dir, _)) => {
                // Past everything below `dir/`: U+10FFFF sorts after every character a path may hold.
                after = Some(format!("{prefix}{dir}/\u{10FFFF}"));
                out.push(Child::Directory(dir.to_string()));
            }
            None => {
                out.push(Child::File(rest.to_string(), asset));
                after = Some(path);
            }
        }
    }
    Ok(out)
}

/// Whether any file lies below `prefix`.
pub fn exists(ctx: &Context<'_>, repo: &str, prefix: &str) -> Result<bool, Problem> {
    Ok(!ctx.store.meta().assets(repo, prefix, None, 1)?.is_empty())
}

/// The listing of `prefix`; `generated` names the metadata files the server makes for this directory.
pub fn render(
    ctx: &Context<'_>,
    head: &RequestHead,
    prefix: &str,
    generated: &[&str],
) -> Result<Plan, Problem> {
    let children = children(ctx, &head.repository, prefix)?;
    if children.is_empty() && !prefix.is_empty() {
        return Err(maven_error(404, format!("/{prefix} not found")));
    }
    let title = format!("Index of /{prefix}");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><title>{title}</title></head><body>\n<h1>{title}</h1>\n<hr/>\n<pre>\n"
    );
    if !prefix.is_empty() {
        html.push_str("<a href=\"../\">../</a>\n");
    }
    for child in &children {
        match child {
            Child::Directory(name) => {
                let _ = writeln!(html, "<a href=\"{name}/\">{name}/</a>");
            }
            Child::File(name, asset) => {
                let stamp = iso(asset.created);
                let _ = writeln!(
                    html,
                    "<a href=\"{name}\">{name}</a>{:>width$}  {:>12}",
                    &stamp[..16].replace('T', " "),
                    asset.size,
                    width = 60usize.saturating_sub(name.len()).max(1) + 16
                );
            }
        }
    }
    for name in generated {
        let _ = writeln!(html, "<a href=\"{name}\">{name}</a>");
    }
    html.push_str("</pre>\n<hr/>\n</body></html>\n");
    Ok(Plan::Respond(Response::new(
        200,
        "text/html; charset=utf-8",
        html,
    )))
}
