//! Maven 2 repository paths (below `/repository/<repo>/`) parsed into what they name: a directory, a file of a
//! version, a checksum of one of those, or a `maven-metadata.xml` at artifact or SNAPSHOT-version level.
//!
//! ```text
//! com/example/lib/                                   directory (HTML listing)
//! com/example/lib/1.0/lib-1.0[-classifier].jar       file of group com.example, artifact lib, version 1.0
//! com/example/lib/1.0-SNAPSHOT/lib-1.0-20261128.032329-2.jar      a timestamped SNAPSHOT file
//! com/example/lib/maven-metadata.xml                 artifact-level metadata (generated)
//! com/example/lib/1.0-SNAPSHOT/maven-metadata.xml    SNAPSHOT version-level metadata (generated)
//! <any of the last four>.md5|.sha1|.sha256|.sha512   checksum
//! ```

use super::maven_error;
use crate::{Problem, safe_path};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    pub const ALL: [(Algo, &'static str); 4] = [
        (Algo::Md5, "md5"),
        (Algo::Sha1, "sha1"),
        (Algo::Sha256, "sha256"),
        (Algo::Sha512, "sha512"),
    ];
}

/// An artifact's coordinates, as the path gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub group: String,
    pub artifact: String,
}

impl Artifact {
    /// The package name in the shared model.
    pub fn package(&self) -> String {
        format!("{}:{}", self.group, self.artifact)
    }
    /// `com/example/lib`.
    pub fn dir(&self) -> String {
        format!("{}/{}", self.group.replace('.', "/"), self.artifact)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A directory, with its trailing slash (empty for the root).
    Directory(String),
    File {
        artifact: Artifact,
        version: String,
        path: String,
    },
    ArtifactMetadata(Artifact),
    VersionMetadata {
        artifact: Artifact,
        version: String,
    },
}

/// A path: what it names, and the checksum algorithm when it names a checksum of it.
pub fn parse(raw: &str) -> Result<(Target, Option<Algo>), Problem> {
    if raw.is_empty() {
        return Ok((Target::Directory(String::new()), None));
    }
    let directory = raw.ends_with('/');
    let path = safe_path(raw.trim_end_matches('/')).map_err(|p| maven_error(400, p.message))?;
    if directory {
        return Ok((Target::Directory(format!("{path}/")), None));
    }
    let (path, algo) = match Algo::ALL
        .iter()
        .find_map(|(algo, ext)| path.strip_suffix(&format!(".{ext}")).map(|p| (p, *algo)))
    {
        Some((stripped, algo)) => (stripped.to_string(), Some(algo)),
        None => (path, None),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let invalid = || {
        maven_error(
            400,
            format!("`{path}` is not a valid Maven repository path"),
        )
    };
    if let Some(bad) = parts.iter().find(|p| !valid_segment(p)) {
        return Err(maven_error(
            400,
            format!("`{bad}` is not a valid path segment: letters, digits and . _ - + only"),
        ));
    }
    let n = parts.len();
    if parts[n - 1] == "maven-metadata.xml" {
        if n >= 4 && parts[n - 2].ends_with("-SNAPSHOT") {
            let artifact = coordinates(&parts[..n - 2]).ok_or_else(invalid)?;
            return Ok((
                Target::VersionMetadata {
                    artifact,
                    version: parts[n - 2].into(),
                },
                algo,
            ));
        }
        let artifact = coordinates(&parts[..n - 1]).ok_or_else(invalid)?;
        return Ok((Target::ArtifactMetadata(artifact), algo));
    }
    if n < 4 {
        return Err(invalid());
    }
    let artifact = coordinates(&parts[..n - 2]).ok_or_else(invalid)?;
    let version = parts[n - 2];
    let file = parts[n - 1];
    let base = version.strip_suffix("-SNAPSHOT");
    let named_right = match base {
        // `lib-1.0-SNAPSHOT.jar` or the timestamped `lib-1.0-20261128.032329-2.jar`.
        Some(base) => {
            file.starts_with(&format!("{}-{version}", artifact.artifact))
                || file.starts_with(&format!("{}-{base}-", artifact.artifact))
        }
        None => file.starts_with(&format!("{}-{version}", artifact.artifact)),
    };
    if !named_right {
        return Err(maven_error(
            400,
            format!(
                "`{file}` does not belong in {}:{}:{version}: files there are named `{}-{version}...`",
                artifact.group, artifact.artifact, artifact.artifact
            ),
        ));
    }
    Ok((
        Target::File {
            artifact,
            version: version.into(),
            path: path.clone(),
        },
        algo,
    ))
}

/// Group segments then the artifact id: `com/example/lib` is `com.example:lib`.
fn coordinates(parts: &[&str]) -> Option<Artifact> {
    let (artifact, group) = parts.split_last()?;
    if group.is_empty() {
        return None;
    }
    Some(Artifact {
        group: group.join("."),
        artifact: artifact.to_string(),
    })
}

fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 200
        && !segment.starts_with('.')
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib() -> Artifact {
        Artifact {
            group: "com.example".into(),
            artifact: "lib".into(),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse("com/example/lib/1.0/lib-1.0-sources.jar.sha1"),
            Ok((
                Target::File {
                    artifact: lib(),
                    version: "1.0".into(),
                    path: "com/example/lib/1.0/lib-1.0-sources.jar".into()
                },
                Some(Algo::Sha1)
            ))
        );
        assert_eq!(
            parse("com/example/lib/maven-metadata.xml"),
            Ok((Target::ArtifactMetadata(lib()), None))
        );
        assert_eq!(
            parse("com/example/lib/1.0-SNAPSHOT/maven-metadata.xml.md5"),
            Ok((
                Target::VersionMetadata {
                    artifact: lib(),
                    version: "1.0-SNAPSHOT".into()
                },
                Some(Algo::Md5)
            ))
        );
        assert!(parse("com/example/lib/1.0-SNAPSHOT/lib-1.0-20261128.032329-2.jar").is_ok());
        assert!(parse("com/example/lib/1.0/lib-1.0.module").is_ok());
        assert_eq!(
            parse("com/example/"),
            Ok((Target::Directory("com/example/".into()), None))
        );
        assert_eq!(parse(""), Ok((Target::Directory(String::new()), None)));
        for bad in [
            "com/example/lib/1.0/other-1.0.jar",
            "com/example/lib/1.0/../../x",
            "com/%2e%2e/lib/1.0/lib-1.0.jar",
            "com/ex ample/lib/1.0/lib-1.0.jar",
            "lib/1.0/lib-1.0.jar",
            "com/example/lib/1.0/.hidden",
        ] {
            assert_eq!(parse(bad).map_err(|p| p.status), Err(400), "{bad}");
        }
    }
}
