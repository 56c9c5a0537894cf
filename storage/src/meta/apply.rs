//! The body of the metadata transaction: each `Write` applied to the trees, with reference counting of blobs, the
//! create-only checks (release immutability) and the repository's immutable tags and versions enforced here, inside
//! the transaction, so racing writers cannot both pass them and no route (a client, the API, retention, promotion)
//! can get around them.

use sled::transaction::TransactionalTree;

use super::*;

pub(super) fn apply_one(t: &[TransactionalTree], write: &Write, now: Time) -> Result<(), TxError> {
    match write {
        Write::PutRepository(record) => put(&t[REPOS], record.name.as_bytes(), record)?,
        Write::PutVersion {
            repo,
            package,
            version,
            record,
            replace,
        } => {
            let k = key(&[repo, package, version]);
            let old = get::<Version>(&t[VERSIONS], &k, "versions")?;
            if old.is_some() && !replace {
                return abort(Error::Conflict(format!(
                    "{package} {version} already exists and cannot be overwritten"
                )));
            }
            let changed = old
                .as_ref()
                .is_some_and(|o| o.blobs != record.blobs || o.metadata != record.metadata);
            if changed {
                frozen(t, repo, version, || {
                    format!("version {version} of {package}")
                })?;
            }
            for digest in &record.blobs {
                incref(t, digest)?;
            }
            for digest in old.iter().flat_map(|v| &v.blobs) {
                decref(t, digest, now)?;
            }
            put(
                &t[VERSIONS],
                &k,
                &Version {
                    created: old.map_or(now, |o| o.created),
                    ..record.clone()
                },
            )?;
            let pk = key(&[repo, package]);
            let created = get::<Package>(&t[PACKAGES], &pk, "packages")?.map_or(now, |p| p.created);
            put(
                &t[PACKAGES],
                &pk,
                &Package {
                    created,
                    updated: now,
                },
            )?;
        }
        Write::DeleteVersion {
            repo,
            package,
            version,
        } => {
            frozen(t, repo, version, || {
                format!("version {version} of {package}")
            })?;
            let Some(old) =
                take::<Version>(&t[VERSIONS], &key(&[repo, package, version]), "versions")?
            else {
                return abort(Error::NotFound(format!("{package} {version}")));
            };
            for digest in &old.blobs {
                decref(t, digest, now)?;
            }
            t[PULLS].remove(key(&[repo, package, version]))?;
        }
        Write::DeletePull {
            repo,
            package,
            item,
        } => {
            t[PULLS].remove(key(&[repo, package, item]))?;
        }
        Write::PutTag {
            repo,
            package,
            tag,
            version,
        } => {
            let k = key(&[repo, package, tag]);
            // Setting an immutable tag where it already points is not a change: docker pushes the same tag again.
            let old = get::<Tag>(&t[TAGS], &k, "tags")?;
            if old.is_some_and(|o| &o.version != version) {
                frozen(t, repo, tag, || format!("tag {tag} of {package}"))?;
            }
            put(
                &t[TAGS],
                &k,
                &Tag {
                    version: version.clone(),
                    updated: now,
                },
            )?
        }
        Write::DeleteTag { repo, package, tag } => {
            frozen(t, repo, tag, || format!("tag {tag} of {package}"))?;
            if t[TAGS].remove(key(&[repo, package, tag]))?.is_none() {
                return abort(Error::NotFound(format!("tag {tag} of {package}")));
            }
        }
        Write::PutAsset {
            repo,
            path,
            asset,
            replace,
        } => {
            let k = key(&[repo, path]);
            let old = get::<Asset>(&t[ASSETS], &k, "assets")?;
            if old.is_some() && !replace {
                return abort(Error::Conflict(format!(
                    "{path} already exists and cannot be overwritten"
                )));
            }
            if let Some(old) = old.as_ref().filter(|o| o.digest != asset.digest) {
                frozen_asset(t, repo, path, old)?;
            }
            incref(t, &asset.digest)?;
            if let Some(old) = old {
                decref(t, &old.digest, now)?;
            }
            put(&t[ASSETS], &k, asset)?;
        }
        Write::DeleteAsset { repo, path } => {
            let Some(old) = take::<Asset>(&t[ASSETS], &key(&[repo, path]), "assets")? else {
                return abort(Error::NotFound(path.clone()));
            };
            frozen_asset(t, repo, path, &old)?;
            decref(t, &old.digest, now)?;
        }
        Write::PutKv {
            repo,
            key: k,
            value,
        } => {
            t[KV].insert(key(&[repo, k]), value.as_slice())?;
        }
        Write::DeleteKv { repo, key: k } => {
            t[KV].remove(key(&[repo, k]))?;
        }
        Write::PutUpload(session) => put(&t[UPLOADS], session.id.as_bytes(), session)?,
        Write::DeleteUpload { id } => {
            t[UPLOADS].remove(id.as_bytes())?;
        }
        Write::PutUser { user, replace } => {
            if !replace && t[USERS].get(user.name.as_bytes())?.is_some() {
                return abort(Error::Conflict(format!(
                    "user {} already exists",
                    user.name
                )));
            }
            put(&t[USERS], user.name.as_bytes(), user)?
        }
        Write::DeleteUser { name } => {
            if t[USERS].remove(name.as_bytes())?.is_none() {
                return abort(Error::NotFound(format!("user {name}")));
            }
        }
        Write::PutToken(token) => put(&t[TOKENS], token.id.as_bytes(), token)?,
        Write::DeleteToken { id } => {
            if t[TOKENS].remove(id.as_bytes())?.is_none() {
                return abort(Error::NotFound(format!("token {id}")));
            }
        }
    }
    Ok(())
}

/// Refuses the write when the repository holds `name` (a tag or a version) immutable.
fn frozen(
    t: &[TransactionalTree],
    repo: &str,
    name: &str,
    what: impl Fn() -> String,
) -> Result<(), TxError> {
    let record = get::<RepositoryRecord>(&t[REPOS], repo.as_bytes(), "repositories")?;
    if record.is_some_and(|r| r.is_immutable(name)) {
        return abort(Error::Conflict(format!(
            "{} is immutable in repository {repo}: it cannot be overwritten, moved or deleted",
            what()
        )));
    }
    Ok(())
}

/// A file is as immutable as the version it belongs to; a file of no version (a generic path) goes by its path.
fn frozen_asset(
    t: &[TransactionalTree],
    repo: &str,
    path: &str,
    asset: &Asset,
) -> Result<(), TxError> {
    let name = asset.version.as_deref().unwrap_or(path);
    frozen(t, repo, name, || path.to_string())
}

fn incref(t: &[TransactionalTree], digest: &Digest) -> Result<(), TxError> {
    let k = digest.hex();
    let Some(mut record) = get::<BlobRecord>(&t[BLOBS], k.as_bytes(), "blobs")? else {
        return abort(Error::BlobUnknown(*digest));
    };
    record.refs += 1;
    if record.refs == 1 {
        t[GC].remove(k.as_bytes())?;
    }
    put(&t[BLOBS], k.as_bytes(), &record)
}

fn decref(t: &[TransactionalTree], digest: &Digest, now: Time) -> Result<(), TxError> {
    let k = digest.hex();
    if let Some(mut record) = get::<BlobRecord>(&t[BLOBS], k.as_bytes(), "blobs")? {
        record.refs = record.refs.saturating_sub(1);
        if record.refs == 0 {
            t[GC].insert(k.as_bytes(), &now.to_be_bytes())?;
        }
        put(&t[BLOBS], k.as_bytes(), &record)?;
    }
    Ok(())
}

pub(super) fn count(stats: &TransactionalTree, blobs: i64, bytes: i64) -> Result<(), TxError> {
    for (k, delta) in [("blobs", blobs), ("bytes", bytes)] {
        let old = stats.get(k)?.map_or(0, |v| be_u64(&v));
        stats.insert(k, &old.saturating_add_signed(delta).to_be_bytes())?;
    }
    Ok(())
}
