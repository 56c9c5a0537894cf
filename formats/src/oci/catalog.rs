//! `/v2/_catalog`: every image of every OCI repository as `<repo>/<image>`, in order, paged with `n` and `last`.

use serde_json::json;
use wharf_storage::Store;

use super::{code, oci};
use crate::{Problem, Response, query_param};

const PAGE: usize = 1000;

/// `repos` are the names of the repositories of this format. Reads at most one page per repository.
pub fn catalog(store: &Store, repos: &[String], query: Option<&str>) -> Result<Response, Problem> {
    let n = query_param(query, "n")
        .map(|n| n.parse::<usize>())
        .transpose()
        .map_err(|_| oci(400, code::PAGINATION_NUMBER_INVALID, "n must be a number"))?;
    let limit = n.unwrap_or(PAGE).min(PAGE);
    let last = query_param(query, "last");
    let (last_repo, last_image) = match last.as_deref().and_then(|l| l.split_once('/')) {
        Some((r, i)) => (Some(r), Some(i)),
        None => (None, None),
    };
    let mut repos: Vec<&String> = repos.iter().collect();
    repos.sort();
    let mut names = Vec::new();
    let mut more = false;
    for repo in repos {
        if last_repo.is_some_and(|l| repo.as_str() < l) {
            continue;
        }
        let after = if Some(repo.as_str()) == last_repo {
            last_image
        } else {
            None
        };
        let wanted = limit + 1 - names.len();
        for (image, _) in store.meta().packages(repo, after, wanted)? {
            names.push(format!("{repo}/{image}"));
        }
        if names.len() > limit {
            names.truncate(limit);
            more = true;
            break;
        }
    }
    let mut response = Response::json(200, &json!({ "repositories": names }));
    if more && let Some(last) = names.last() {
        response = response.with_header(
            "link",
            format!("</v2/_catalog?n={limit}&last={last}>; rel=\"next\""),
        );
    }
    Ok(response)
}
