//! Python index paths (below `/repository/<repo>/`) parsed into a typed `Endpoint`. Project names in paths are
//! normalized here (PEP 503), so `Foo_Bar`, `foo-bar` and `foo.bar` reach the same project.

use super::{normalize, pypi_error, valid_name};
use crate::{Problem, RequestHead, percent_decode};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Index,
    Project(String),
    Json {
        project: String,
        version: Option<String>,
    },
    File {
        project: String,
        filename: String,
    },
    Metadata {
        project: String,
        filename: String,
    },
    Upload,
}

impl Endpoint {
    pub fn parse(head: &RequestHead) -> Result<Endpoint, Problem> {
        let decoded = percent_decode(&head.path)
            .ok_or_else(|| pypi_error(400, "the path is not valid percent-encoded UTF-8"))?;
        let parts: Vec<&str> = decoded.trim_end_matches('/').split('/').collect();
        let read = matches!(head.method.as_str(), "GET" | "HEAD");
        use Endpoint as E;
        match (head.method.as_str(), parts.as_slice()) {
            (_, ["simple"]) if read => Ok(E::Index),
            (_, ["simple", name]) if read => Ok(E::Project(project(name)?)),
            (_, ["pypi", name, "json"]) if read => Ok(E::Json {
                project: project(name)?,
                version: None,
            }),
            (_, ["pypi", name, version, "json"]) if read => Ok(E::Json {
                project: project(name)?,
                version: Some(version.to_string()),
            }),
            (_, ["packages", name, file]) if read => {
                let project = project(name)?;
                Ok(match file.strip_suffix(".metadata") {
                    Some(filename) => E::Metadata {
                        project,
                        filename: filename.to_string(),
                    },
                    None => E::File {
                        project,
                        filename: file.to_string(),
                    },
                })
            }
            ("POST", ["legacy"] | [""]) => Ok(E::Upload),
            (_, ["legacy"] | [""]) => Err(not_allowed(head)),
            (_, ["simple" | "pypi" | "packages", ..]) if !read => Err(not_allowed(head)),
            _ => Err(pypi_error(404, "Not Found")),
        }
    }
}

fn not_allowed(head: &RequestHead) -> Problem {
    pypi_error(405, format!("{} is not allowed here", head.method))
}

fn project(name: &str) -> Result<String, Problem> {
    match valid_name(name) {
        true => Ok(normalize(name)),
        false => Err(pypi_error(404, format!("no project named `{name}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str, path: &str) -> Result<Endpoint, u16> {
        let head = RequestHead {
            method: method.into(),
            path: path.into(),
            query: None,
            headers: vec![],
            repository: "pypi".into(),
            principal: None,
            content_length: None,
            base_url: "http://h/repository/pypi".into(),
            allow_overwrite: false,
        };
        Endpoint::parse(&head).map_err(|p| p.status)
    }

    #[test]
    fn paths() {
        use Endpoint as E;
        assert_eq!(parse("GET", "simple/"), Ok(E::Index));
        assert_eq!(parse("GET", "simple"), Ok(E::Index));
        assert_eq!(
            parse("GET", "simple/Foo_Bar/"),
            Ok(E::Project("foo-bar".into()))
        );
        assert_eq!(
            parse("HEAD", "simple/foo.bar"),
            Ok(E::Project("foo-bar".into()))
        );
        assert_eq!(
            parse("GET", "pypi/Foo/1.0/json"),
            Ok(E::Json {
                project: "foo".into(),
                version: Some("1.0".into())
            })
        );
        assert_eq!(
            parse("GET", "packages/foo/foo-1.0-py3-none-any.whl.metadata"),
            Ok(E::Metadata {
                project: "foo".into(),
                filename: "foo-1.0-py3-none-any.whl".into()
            })
        );
        assert_eq!(parse("POST", "legacy/"), Ok(E::Upload));
        assert_eq!(parse("POST", "legacy"), Ok(E::Upload));
        assert_eq!(parse("PUT", "simple/foo/"), Err(405));
        assert_eq!(parse("GET", "simple/..%2F/"), Err(404));
        assert_eq!(parse("GET", "packages/foo/../x"), Err(404));
        assert_eq!(parse("GET", "nothing"), Err(404));
    }
}
