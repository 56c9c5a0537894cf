//! Loading tests: the report names every mistake at once, with the right line and key.

use super::*;

#[test]
fn no_file_content_gives_the_defaults() {
    let config = parse("empty.toml", "").unwrap();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        config.storage.data_dir,
        std::path::PathBuf::from("./wharf-data")
    );
    let names: Vec<_> = config
        .repositories
        .iter()
        .map(|r| r.name.get_ref().as_str())
        .collect();
    assert_eq!(names, BUILTIN_FORMATS);
    assert!(config.auth.anonymous_read);
}

#[test]
fn a_full_file_is_read() {
    let src = r#"
[server]
listen = "0.0.0.0:9000"
public_url = "https://wharf.example.test/"
max_upload = "2GiB"
max_document = 1048576

[storage]
data_dir = "/var/lib/wharf"
gc_grace = "2h"

[auth]
anonymous_read = false

[[repository]]
name = "docker-prod"
format = "docker"

[[repository]]
name = "npm-remote"
format = "npm"
kind = "proxy"
url = "https://upstream.example.test/"
"#;
    let config = parse("wharf.toml", src).unwrap();
    assert_eq!(config.server.listen.port(), 9000);
    assert_eq!(
        config.server.public_url.as_deref(),
        Some("https://wharf.example.test")
    );
    assert_eq!(config.server.max_upload, ByteSize::gib(2));
    assert_eq!(config.server.max_document, ByteSize::mib(1));
    assert_eq!(config.storage.gc_grace, Duration::secs(7200));
    assert!(!config.auth.anonymous_read);
    assert_eq!(config.repositories.len(), 2);
    assert_eq!(config.repositories[1].kind, Kind::Proxy);
}

#[test]
fn every_mistake_is_reported_with_line_and_key() {
    let src = r#"[server]
listen = "127.0.0.1:8080"
max_upload = "10GiBs"
colour = "blue"

[[repository]]
name = "npm"
format = "npm"

[[repository]]
name = "npm"
format = "npm"
"#;
    let problems = parse("bad.toml", src).unwrap_err();
    let lines: Vec<_> = problems.iter().map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(
        lines,
        [
            (3, "server.max_upload"),
            (4, "server.colour"),
            (11, "repository[1].name")
        ],
        "{problems:#?}"
    );
    assert!(
        problems[0].message.contains("unknown size unit `GiBs`"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].message.contains("unknown field `colour`"),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].message.contains("already used on line 7"),
        "{}",
        problems[2]
    );
    assert_eq!(
        problems[0].to_string().split(": ").next(),
        Some("bad.toml:3:14")
    );
}

#[test]
fn problems_in_several_sections_and_a_missing_key() {
    let src = r#"[storage]
gc_grace = "3 weeks"

[[repository]]
name = "Bad Name"
format = "tarballs"

[[repository]]
format = "npm"

[auth]
anonymous_read = "yes"
"#;
    let problems = parse("bad.toml", src).unwrap_err();
    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"storage.gc_grace"), "{problems:#?}");
    assert!(keys.contains(&"auth.anonymous_read"), "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("missing field `name`")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("must be 1-64 characters")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("unknown format `tarballs`")),
        "{problems:#?}"
    );
}

#[test]
fn a_syntax_error_is_one_problem() {
    let problems = parse("broken.toml", "[server\nlisten = 1\n").unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, 1);
}

#[test]
fn repository_names() {
    for good in ["docker", "npm-internal", "a", "x.y_z-1"] {
        assert!(valid_name(good), "{good}");
    }
    for bad in ["", "Docker", "-x", "a/b", "a b", &"x".repeat(65)] {
        assert!(!valid_name(bad), "{bad}");
    }
}

#[test]
fn immutable_is_true_or_patterns() {
    let src = r#"
[[repository]]
name = "docker"
format = "docker"
immutable = ["v*", "release-*"]

[[repository]]
name = "frozen"
format = "generic"
immutable = true

[[repository]]
name = "open"
format = "npm"
immutable = false
"#;
    let config = parse("wharf.toml", src).unwrap();
    let patterns: Vec<Vec<String>> = config
        .repositories
        .iter()
        .map(|r| r.immutable.patterns())
        .collect();
    assert_eq!(
        patterns,
        vec![
            vec!["v*".to_string(), "release-*".into()],
            vec!["*".into()],
            vec![]
        ]
    );
    let error = parse(
        "wharf.toml",
        "[[repository]]\nname = \"d\"\nformat = \"docker\"\nimmutable = [\"\"]\n",
    )
    .unwrap_err();
    assert!(
        error[0].message.contains("an immutable pattern is empty"),
        "{error:#?}"
    );
}

#[test]
fn retention_yanks_only_where_versions_can_be_yanked() {
    let config = parse(
        "wharf.toml",
        "[[repository]]\nname = \"pypi\"\nformat = \"pypi\"\nretention_action = \"yank\"\n",
    )
    .unwrap();
    assert_eq!(
        config.repositories[0].retention_action,
        crate::RetentionAction::Yank
    );
    let error = parse(
        "wharf.toml",
        "[[repository]]\nname = \"npm\"\nformat = \"npm\"\nretention_action = \"yank\"\n",
    )
    .unwrap_err();
    assert!(
        error[0].message.contains("npm versions cannot be yanked"),
        "{error:#?}"
    );
    assert!(
        parse(
            "wharf.toml",
            "[[repository]]\nname = \"pypi\"\nformat = \"pypi\"\nretention_action = \"shred\"\n",
        )
        .is_err()
    );
}
