//! npm registry paths (below `/repository/<repo>/`) parsed into a typed `Endpoint`, with npm's rules for package
//! names and semver versions.
//!
//! ```text
//! -/ping  -/whoami  -/v1/search?text=  -/v1/login (POST: 404, so npm falls back to the classic login)
//! -/user/org.couchdb.user:<name>           PUT login (201 with a token)   GET the user
//! -/user/token/<token>                     DELETE (logout)
//! -/package/<name>/dist-tags[/<tag>]       GET, PUT, DELETE
//! -/npm/v1/security/...                    POST (npm audit: not supported, said plainly)
//! <name>                                   GET packument, PUT publish or update
//! <name>/-rev/<rev>                        PUT update (deprecate, unpublish one version), DELETE (unpublish all)
//! <name>/-/<file>.tgz[/-rev/<rev>]         GET tarball, DELETE (the tarball of an unpublished version)
//! ```
//!
//! A scoped name arrives as `@scope/name` (the host decodes `%2f`).

use super::npm_error;
use crate::{Access, Problem, RequestHead};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Ping,
    Whoami,
    Search,
    WebLogin,
    Login(String),
    GetUser(String),
    Logout(String),
    DistTags(String),
    PutDistTag(String, String),
    DeleteDistTag(String, String),
    Audit,
    Packument(String),
    Publish(String),
    Update(String),
    UnpublishAll(String),
    Tarball { name: String, file: String },
    DeleteTarball { name: String, file: String },
}

impl Endpoint {
    pub fn parse(head: &RequestHead) -> Result<Endpoint, Problem> {
        let path = head.path.trim_end_matches('/');
        let method = head.method.as_str();
        let parts: Vec<&str> = path.split('/').collect();
        use Endpoint as E;
        let endpoint = match (method, parts.as_slice()) {
            ("GET" | "HEAD", ["-", "ping"]) => E::Ping,
            ("GET", ["-", "whoami"]) => E::Whoami,
            ("GET", ["-", "v1", "search"]) => E::Search,
            ("POST", ["-", "v1", "login"]) => E::WebLogin,
            ("PUT", ["-", "user", user]) => E::Login(couch_user(user)?),
            ("GET", ["-", "user", user]) => E::GetUser(couch_user(user)?),
            ("DELETE", ["-", "user", "token", token]) => E::Logout(token.to_string()),
            ("POST", ["-", "npm", "v1", "security", ..]) => E::Audit,
            (_, ["-", "package", rest @ ..]) => dist_tags(method, rest)?,
            (_, ["-", ..]) => return Err(npm_error(404, "no such endpoint")),
            _ => package(method, &parts)?,
        };
        Ok(endpoint)
    }

    pub fn access(&self) -> Access {
        use Endpoint as E;
        match self {
            E::Ping | E::Search | E::WebLogin | E::Audit | E::Packument(_) | E::Tarball { .. } => {
                Access::Read
            }
            E::DistTags(_) | E::GetUser(_) => Access::Read,
            // Logging in is how a client gets credentials: the password in the body is checked.
            E::Login(_) => Access::Open,
            E::Whoami | E::Logout(_) => Access::Write,
            E::PutDistTag(..) | E::Publish(_) | E::Update(_) => Access::Write,
            E::DeleteDistTag(..) | E::UnpublishAll(_) | E::DeleteTarball { .. } => Access::Delete,
        }
    }
}

fn couch_user(segment: &str) -> Result<String, Problem> {
    segment
        .strip_prefix("org.couchdb.user:")
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or_else(|| npm_error(404, "no such user endpoint"))
}

fn dist_tags(method: &str, rest: &[&str]) -> Result<Endpoint, Problem> {
    let (name, tail) = split_name(rest)?;
    match (method, tail) {
        ("GET", ["dist-tags"]) => Ok(Endpoint::DistTags(name)),
        ("PUT", ["dist-tags", tag]) => Ok(Endpoint::PutDistTag(name, valid_tag(tag)?)),
        ("DELETE", ["dist-tags", tag]) => Ok(Endpoint::DeleteDistTag(name, valid_tag(tag)?)),
        _ => Err(npm_error(404, "no such dist-tags endpoint")),
    }
}

fn package(method: &str, parts: &[&str]) -> Result<Endpoint, Problem> {
    let (name, tail) = split_name(parts)?;
    use Endpoint as E;
    Ok(match (method, tail) {
        ("GET" | "HEAD", []) => E::Packument(name),
        ("PUT", []) => E::Publish(name),
        ("PUT", ["-rev", _]) => E::Update(name),
        ("DELETE", ["-rev", _]) => E::UnpublishAll(name),
        ("GET" | "HEAD", ["-", file]) => E::Tarball {
            name,
            file: tarball_file(file)?,
        },
        ("DELETE", ["-", file, "-rev", _]) | ("DELETE", ["-", file]) => E::DeleteTarball {
            name,
            file: tarball_file(file)?,
        },
        _ => return Err(npm_error(405, "method not allowed here")),
    })
}

/// `@scope/name/...` or `name/...`, the name checked against npm's rules.
fn split_name<'a, 'b>(parts: &'a [&'b str]) -> Result<(String, &'a [&'b str]), Problem> {
    let (name, tail) = match parts {
        [scope, name, tail @ ..] if scope.starts_with('@') => (format!("{scope}/{name}"), tail),
        [name, tail @ ..] => (name.to_string(), tail),
        [] => return Err(npm_error(404, "no package named")),
    };
    valid_name(&name)?;
    Ok((name, tail))
}

fn tarball_file(file: &str) -> Result<String, Problem> {
    let ok = file.ends_with(".tgz")
        && file.len() <= 300
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    ok.then(|| file.to_string())
        .ok_or_else(|| npm_error(400, format!("invalid tarball name `{}`", cut(file))))
}

fn valid_tag(tag: &str) -> Result<String, Problem> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && parse_semver(tag).is_none();
    ok.then(|| tag.to_string()).ok_or_else(|| {
        npm_error(
            400,
            format!(
                "invalid dist-tag `{}`: letters, digits, `.`, `_`, `-`, and not a version",
                cut(tag)
            ),
        )
    })
}

/// npm's rules for a new package name (validate-npm-package-name): at most 214 characters, lowercase, URL-safe,
/// not starting with `.` or `_`, scoped as `@scope/name`.
pub fn valid_name(name: &str) -> Result<(), Problem> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && !p.starts_with('_')
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
    };
    let ok = name.len() <= 214
        && match name.strip_prefix('@') {
            Some(scoped) => scoped
                .split_once('/')
                .is_some_and(|(scope, rest)| part_ok(scope) && part_ok(rest)),
            None => part_ok(name) && name != "node_modules" && name != "favicon.ico",
        };
    if ok {
        Ok(())
    } else {
        Err(npm_error(
            400,
            format!(
                "invalid package name `{}`: at most 214 lowercase URL-safe characters, not starting with `.` or `_`",
                cut(name)
            ),
        ))
    }
}

/// A semver 2.0 version: `MAJOR.MINOR.PATCH[-pre][+build]`, numbers without leading zeros. Returns the numbers.
pub fn parse_semver(v: &str) -> Option<(u64, u64, u64)> {
    if v.len() > 256 {
        return None;
    }
    let (core, build) = match v.split_once('+') {
        Some((c, b)) => (c, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let ident_ok = |id: &str, numeric_rule: bool| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(numeric_rule
                && id.len() > 1
                && id.starts_with('0')
                && id.bytes().all(|b| b.is_ascii_digit()))
    };
    if !pre.is_none_or(|p| p.split('.').all(|id| ident_ok(id, true)))
        || !build.is_none_or(|b| b.split('.').all(|id| ident_ok(id, false)))
    {
        return None;
    }
    let numbers: Vec<&str> = core.split('.').collect();
    let [major, minor, patch] = numbers.as_slice() else {
        return None;
    };
    let number = |n: &str| {
        (!n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n == "0" || !n.starts_with('0')))
        .then(|| n.parse::<u64>().ok())
        .flatten()
    };
    Some((number(major)?, number(minor)?, number(patch)?))
}

pub fn cut(s: &str) -> String {
    s.chars().take(220).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str, path: &str) -> Result<Endpoint, Problem> {
        Endpoint::parse(&RequestHead {
            method: method.into(),
            path: path.into(),
            query: None,
            headers: vec![],
            repository: "npm".into(),
            principal: None,
            content_length: None,
            base_url: String::new(),
            allow_overwrite: false,
        })
    }

    #[test]
    fn endpoints() {
        use Endpoint as E;
        let rows = [
            ("GET", "left-pad", E::Packument("left-pad".into())),
            ("GET", "@acme/util", E::Packument("@acme/util".into())),
            ("PUT", "@acme/util", E::Publish("@acme/util".into())),
            ("PUT", "left-pad/-rev/3-abc", E::Update("left-pad".into())),
            (
                "DELETE",
                "left-pad/-rev/3-abc",
                E::UnpublishAll("left-pad".into()),
            ),
            (
                "GET",
                "@acme/util/-/util-1.0.0.tgz",
                E::Tarball {
                    name: "@acme/util".into(),
                    file: "util-1.0.0.tgz".into(),
                },
            ),
            (
                "DELETE",
                "left-pad/-/left-pad-1.0.0.tgz/-rev/4-x",
                E::DeleteTarball {
                    name: "left-pad".into(),
                    file: "left-pad-1.0.0.tgz".into(),
                },
            ),
            (
                "PUT",
                "-/user/org.couchdb.user:alice",
                E::Login("alice".into()),
            ),
            (
                "DELETE",
                "-/user/token/wharf_ab_cd",
                E::Logout("wharf_ab_cd".into()),
            ),
            (
                "GET",
                "-/package/@acme/util/dist-tags",
                E::DistTags("@acme/util".into()),
            ),
            (
                "PUT",
                "-/package/x/dist-tags/beta",
                E::PutDistTag("x".into(), "beta".into()),
            ),
            ("POST", "-/npm/v1/security/advisories/bulk", E::Audit),
            ("GET", "-/v1/search", E::Search),
        ];
        for (method, path, want) in rows {
            assert_eq!(parse(method, path).unwrap(), want, "{method} {path}");
        }
    }

    #[test]
    fn names_and_versions() {
        for bad in [
            "Upper",
            "..",
            ".hidden",
            "_under",
            "a b",
            &"a".repeat(215),
            "@scope",
            "@Scope/x",
            "node_modules",
        ] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
        for good in ["left-pad", "a.b_c", "@acme/util", &"a".repeat(214)] {
            assert!(valid_name(good).is_ok(), "{good}");
        }
        assert_eq!(parse_semver("1.2.3"), Some((1, 2, 3)));
        assert_eq!(parse_semver("1.0.0-beta.1+build.5"), Some((1, 0, 0)));
        for bad in [
            "1.2", "01.2.3", "1.2.3-", "1.2.3-01", "v1.2.3", "1.2.3.4", "x.y.z", "",
        ] {
            assert_eq!(parse_semver(bad), None, "{bad}");
        }
        assert!(
            parse("PUT", "-/package/x/dist-tags/1.0.0").is_err(),
            "a tag that is a version"
        );
    }
}
