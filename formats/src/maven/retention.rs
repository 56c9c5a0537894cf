//! How retention sees a Maven artifact. A release is one item, tagged with its version. A SNAPSHOT version holds
//! one item per build, named by its unique version (`1.1-20261128.032329-2`, the name mvn resolves it to): the
//! newest build is tagged with the SNAPSHOT version, as a moving tag points at the newest image, and older builds
//! are untagged. So ECR's "expire untagged" rules prune superseded SNAPSHOT builds and never the one mvn resolves.

use std::collections::{BTreeMap, HashSet};

use wharf_storage::{Asset, Write};

use super::metadata::snapshot_file;
use super::path::Artifact;
use crate::retention::{Decision, Item, paged};
use crate::{Context, Problem, RequestHead};

pub fn items(ctx: &Context<'_>, repo: &str, package: &str) -> Result<Vec<Item>, Problem> {
    let artifact = artifact(package)?;
    let meta = ctx.store.meta();
    let pulls = meta.pulls(repo, package)?;
    let mut items = Vec::new();
    let shared: std::sync::Arc<str> = package.into();
    for (version, record) in paged(|after, limit| meta.versions(repo, package, after, limit))? {
        let builds = match version.strip_suffix("-SNAPSHOT") {
            Some(_) => builds(ctx, repo, &artifact, &version)?,
            None => BTreeMap::new(),
        };
        let Some(newest) = builds.keys().next_back().cloned() else {
            // A release, or a SNAPSHOT deployed without timestamps: the version is the item.
            items.push(Item {
                package: shared.clone(),
                tags: vec![version.clone()],
                pulled: pulls.get(&version).copied(),
                version,
                pushed: record.created,
                follows: Vec::new(),
            });
            continue;
        };
        let base = version.trim_end_matches("-SNAPSHOT");
        for ((number, timestamp), build) in builds {
            let unique = format!("{base}-{timestamp}-{number}");
            items.push(Item {
                package: shared.clone(),
                version: unique.clone(),
                tags: if (number, &timestamp) == (newest.0, &newest.1) {
                    vec![version.clone()]
                } else {
                    Vec::new()
                },
                pushed: build.pushed,
                pulled: pulls.get(&unique).copied(),
                follows: Vec::new(),
            });
        }
    }
    Ok(items)
}

/// The writes that remove an item `items` listed: a whole version (a release), or one SNAPSHOT build's files and its
/// pull record. The SNAPSHOT version itself goes in `expired`, which sees every build a run removes.
pub fn expire(
    ctx: &Context<'_>,
    repo: &str,
    package: &str,
    version: &str,
) -> Result<Vec<Write>, Problem> {
    let artifact = artifact(package)?;
    let meta = ctx.store.meta();
    let (whole, build) = match meta.version(repo, package, version)? {
        Some(_) => (version.to_string(), None),
        None => {
            let (base, build) = unique_version(version).ok_or_else(|| {
                Problem::not_found(format!("{package} has no version or build {version}"))
            })?;
            (format!("{base}-SNAPSHOT"), Some(build))
        }
    };
    let dir = format!("{}/{whole}/", artifact.dir());
    // A build's files all start with `<artifact>-<its unique version>`: read those, not every build's, so that
    // expiring the builds of a SNAPSHOT costs their files once rather than once per build.
    let scan = match build {
        Some(_) => format!("{dir}{}-{version}", artifact.artifact),
        None => dir.clone(),
    };
    let mut writes: Vec<Write> = paged(|after, limit| meta.assets(repo, &scan, after, limit))?
        .into_iter()
        .filter(|(path, _)| {
            build.as_ref().is_none_or(|(timestamp, number)| {
                snapshot_file(&artifact.artifact, &whole, &path[dir.len()..])
                    .is_some_and(|f| &f.timestamp == timestamp && f.build == *number)
            })
        })
        .map(|(path, _)| Write::DeleteAsset {
            repo: repo.into(),
            path,
        })
        .collect();
    match build {
        Some(_) if writes.is_empty() => Err(Problem::not_found(format!(
            "{package} has no files of build {version}"
        ))),
        Some(_) => {
            writes.push(Write::DeletePull {
                repo: repo.into(),
                package: package.to_string(),
                item: version.to_string(),
            });
            Ok(writes)
        }
        None => {
            writes.push(Write::DeleteVersion {
                repo: repo.into(),
                package: package.to_string(),
                version: whole,
            });
            Ok(writes)
        }
    }
}

/// After a run's removals in one package: a SNAPSHOT version goes when every file it has belongs to a build the
/// run removes, so that no `maven-metadata.xml` lists a version with nothing left to resolve. Each build's `expire`
/// sees only its own files and cannot tell.
pub fn expired(
    ctx: &Context<'_>,
    repo: &str,
    decisions: &[Decision],
) -> Result<Vec<Write>, Problem> {
    let mut removed: BTreeMap<String, HashSet<(String, u64)>> = BTreeMap::new();
    for decision in decisions.iter().filter(|d| d.remove) {
        if let Some((base, build)) = unique_version(&decision.item.version) {
            removed
                .entry(format!("{base}-SNAPSHOT"))
                .or_default()
                .insert(build);
        }
    }
    let Some(package) = decisions.first().map(|d| &*d.item.package) else {
        return Ok(Vec::new());
    };
    let artifact = artifact(package)?;
    let meta = ctx.store.meta();
    let mut writes = Vec::new();
    for (version, builds) in removed {
        if meta.version(repo, package, &version)?.is_none() {
            continue;
        }
        let dir = format!("{}/{version}/", artifact.dir());
        let files = paged(|after, limit| meta.assets(repo, &dir, after, limit))?;
        let all_go = files.iter().all(|(path, _)| {
            snapshot_file(&artifact.artifact, &version, &path[dir.len()..])
                .is_some_and(|f| builds.contains(&(f.timestamp, f.build)))
        });
        if all_go {
            writes.push(Write::DeleteVersion {
                repo: repo.into(),
                package: package.to_string(),
                version,
            });
        }
    }
    Ok(writes)
}

/// Records the pull of a file as retention counts items: a SNAPSHOT file pulls its build, any other its version.
pub fn note_pull(ctx: &Context<'_>, head: &RequestHead, path: &str, asset: &Asset) {
    let (Some(package), Some(version)) = (&asset.package, &asset.version) else {
        return;
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    let artifact = package.split_once(':').map_or("", |(_, a)| a);
    match (
        version.strip_suffix("-SNAPSHOT"),
        snapshot_file(artifact, version, name),
    ) {
        (Some(base), Some(file)) => {
            let unique = format!("{base}-{}-{}", file.timestamp, file.build);
            crate::note_pull(ctx, head, package, &unique);
        }
        _ => crate::note_pull(ctx, head, package, version),
    }
}

struct Build {
    pushed: u64,
}

/// The builds of a SNAPSHOT version, by (build number, timestamp), oldest first.
fn builds(
    ctx: &Context<'_>,
    repo: &str,
    artifact: &Artifact,
    version: &str,
) -> Result<BTreeMap<(u64, String), Build>, Problem> {
    let dir = format!("{}/{version}/", artifact.dir());
    let mut builds: BTreeMap<(u64, String), Build> = BTreeMap::new();
    for (path, asset) in paged(|after, limit| ctx.store.meta().assets(repo, &dir, after, limit))? {
        if let Some(file) = snapshot_file(&artifact.artifact, version, &path[dir.len()..]) {
            let build = builds
                .entry((file.build, file.timestamp))
                .or_insert(Build { pushed: 0 });
            build.pushed = build.pushed.max(asset.created);
        }
    }
    Ok(builds)
}

/// `1.1-20261128.032329-2` taken apart: the base version and the build's (timestamp, number).
fn unique_version(version: &str) -> Option<(&str, (String, u64))> {
    let (rest, number) = version.rsplit_once('-')?;
    let number: u64 = number.parse().ok()?;
    let (base, timestamp) = rest.split_at_checked(rest.len().checked_sub(16)?)?;
    let timestamp = timestamp.strip_prefix('-')?;
    let valid = timestamp.len() == 15
        && timestamp.bytes().enumerate().all(|(i, b)| {
            if i == 8 {
                b == b'.'
            } else {
                b.is_ascii_digit()
            }
        });
    (valid && !base.is_empty()).then(|| (base, (timestamp.to_string(), number)))
}

/// `group:artifact`, the package name Maven versions are stored under.
fn artifact(package: &str) -> Result<Artifact, Problem> {
    let (group, artifact) = package
        .split_once(':')
        .ok_or_else(|| Problem::internal(format!("`{package}` is not a Maven package name")))?;
    Ok(Artifact {
        group: group.into(),
        artifact: artifact.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_versions() {
        assert_eq!(
            unique_version("1.1-20261128.032329-2"),
            Some(("1.1", ("20261128.032329".into(), 2)))
        );
        assert_eq!(
            unique_version("1.1-rc-1-20261128.032329-12"),
            Some(("1.1-rc-1", ("20261128.032329".into(), 12)))
        );
        for not in [
            "1.1",
            "1.1-SNAPSHOT",
            "20261128.032329-2",
            "1.1-20261128x032329-2",
        ] {
            assert_eq!(unique_version(not), None, "{not}");
        }
    }
}
