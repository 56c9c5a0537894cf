//! Promotion: a version copied (or moved) from one repository to another of the same format without moving a byte.
//! The copied version record names the same blobs (their reference counts go up, no file is written), the tags that
//! point at the version come along, and each format adds what it keeps beside a version (`Format::promote`: OCI's
//! blob links, npm's package document). The writes land in one transaction, where the target's immutability rules
//! hold as for any other write.

use wharf_storage::{Version, Write};

use crate::{Context, Problem};

/// What to promote, and where.
#[derive(Clone, Copy)]
pub struct Promotion<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub package: &'a str,
    pub version: &'a str,
}

/// At most this many tags of a package are looked through for those that point at the version.
const MAX_TAGS: usize = 10_000;

/// The version record in the source, or 404.
pub fn source_version(ctx: &Context<'_>, p: &Promotion<'_>) -> Result<Version, Problem> {
    ctx.store
        .meta()
        .version(p.from, p.package, p.version)?
        .ok_or_else(|| {
            Problem::not_found(format!("{}/{}@{} not found", p.from, p.package, p.version))
        })
}

/// The writes that copy the version record and the tags pointing at it, and the record copied. A version already
/// in the target with the same blobs is left as it is; one with other blobs is refused: a promotion never replaces
/// what is there.
pub fn copy_version(
    ctx: &Context<'_>,
    p: &Promotion<'_>,
) -> Result<(Vec<Write>, Version), Problem> {
    let record = source_version(ctx, p)?;
    let mut writes = Vec::new();
    match ctx.store.meta().version(p.to, p.package, p.version)? {
        Some(there) if there.blobs == record.blobs => {}
        Some(_) => {
            return Err(Problem::new(
                409,
                "CONFLICT",
                format!(
                    "{}@{} is already in {} with other content",
                    p.package, p.version, p.to
                ),
            ));
        }
        None => writes.push(Write::PutVersion {
            repo: p.to.into(),
            package: p.package.into(),
            version: p.version.into(),
            record: record.clone(),
            replace: false,
        }),
    }
    for tag in tags_of(ctx, p.from, p.package, p.version)? {
        writes.push(Write::PutTag {
            repo: p.to.into(),
            package: p.package.into(),
            tag,
            version: p.version.into(),
        });
    }
    Ok((writes, record))
}

/// The tags of `package` in `repo` that point at `version`.
pub fn tags_of(
    ctx: &Context<'_>,
    repo: &str,
    package: &str,
    version: &str,
) -> Result<Vec<String>, Problem> {
    Ok(ctx
        .store
        .meta()
        .tags(repo, package, None, MAX_TAGS)?
        .into_iter()
        .filter(|(_, tag)| tag.version == version)
        .map(|(name, _)| name)
        .collect())
}

/// The writes that remove a version and the tags pointing at it: the source's side of a move.
pub fn removal(
    ctx: &Context<'_>,
    repo: &str,
    package: &str,
    version: &str,
) -> Result<Vec<Write>, Problem> {
    let mut writes: Vec<Write> = tags_of(ctx, repo, package, version)?
        .into_iter()
        .map(|tag| Write::DeleteTag {
            repo: repo.into(),
            package: package.into(),
            tag,
        })
        .collect();
    writes.push(Write::DeleteVersion {
        repo: repo.into(),
        package: package.into(),
        version: version.into(),
    });
    Ok(writes)
}
