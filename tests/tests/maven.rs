//! The Maven repository driven by real Maven: deploys of a release (with sources and javadoc jars) and of a SNAPSHOT
//! twice, a consumer project resolving both, a refused redeploy, concurrent deploys; and hand-made bad uploads that
//! must be refused and store nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use wharf_tests::{Server, agent, basic, sha256_hex, status_and_text, tool};

/// mvn with its own settings (Wharf's credentials) and its own local repository, a copy of the warm one
/// `scripts/clients` filled with plugins, so nothing of Wharf's comes from a cache.
struct Mvn {
    settings: PathBuf,
    local: PathBuf,
}

impl Mvn {
    fn new(home: &Path, password: &str) -> Mvn {
        std::fs::create_dir_all(home).unwrap();
        let local = home.join("m2");
        let warm = std::env::var_os("WHARF_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/wharf-tools")
            })
            .join("m2");
        if warm.is_dir() {
            let copied = Command::new("cp")
                .arg("-r")
                .arg(&warm)
                .arg(&local)
                .status()
                .unwrap();
            assert!(copied.success());
        }
        let settings = home.join("settings.xml");
        std::fs::write(
            &settings,
            format!(
                "<settings><servers><server><id>wharf</id><username>admin</username>\
                 <password>{password}</password></server></servers></settings>"
            ),
        )
        .unwrap();
        Mvn { settings, local }
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        self.command(dir, args).output().unwrap()
    }

    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(tool("mvn"));
        command
            .current_dir(dir)
            .arg("-B")
            .arg("-s")
            .arg(&self.settings)
            .arg(format!("-Dmaven.repo.local={}", self.local.display()))
            .args(args)
            .stdin(Stdio::null());
        command
    }
}

fn password(server: &Server) -> &str {
    server.admin_password.as_deref().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(output: &Output) -> String {
    let text = text(output);
    assert!(output.status.success(), "mvn failed:\n{text}");
    text
}

/// A copy of a fixture project with its placeholders filled in.
fn project(home: &Path, fixture: &str, name: &str, fill: &[(&str, &str)]) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/maven")
        .join(fixture);
    let to = home.join(name);
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&from)
        .arg(&to)
        .status()
        .unwrap();
    assert!(copied.success());
    let pom = to.join("pom.xml");
    let mut text = std::fs::read_to_string(&pom).unwrap();
    for (from, to) in fill {
        text = text.replace(from, to);
    }
    std::fs::write(&pom, text).unwrap();
    to
}

fn get(server: &Server, path: &str) -> (u16, String) {
    status_and_text(
        agent()
            .get(&server.url(&format!("/repository/maven/{path}")))
            .call()
            .unwrap(),
    )
}

fn get_bytes(server: &Server, path: &str) -> Vec<u8> {
    let mut response = agent()
        .get(&server.url(&format!("/repository/maven/{path}")))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.body_mut().read_to_vec().unwrap()
}

const LIB: &str = "org/wharf/test/wharf-lib";

#[test]
fn deploys_resolve_and_releases_are_immutable() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = Server::start(&home.join("data"), &[]);
    let url = server.url("/repository/maven/");
    let mvn = Mvn::new(&home.join("deployer"), password(&server));

    // A release with sources and javadoc jars.
    let release = project(
        home,
        "lib",
        "lib-1.0",
        &[("@VERSION@", "1.0"), ("@URL@", &url)],
    );
    ok(&mvn.run(&release, &["deploy"]));
    for file in [
        "wharf-lib-1.0.jar",
        "wharf-lib-1.0-sources.jar",
        "wharf-lib-1.0-javadoc.jar",
        "wharf-lib-1.0.pom",
    ] {
        let stored = get_bytes(&server, &format!("{LIB}/1.0/{file}"));
        let built = release.join("target").join(file);
        if built.is_file() {
            assert_eq!(stored, std::fs::read(&built).unwrap(), "{file}");
        }
        let (status, sha256) = get(&server, &format!("{LIB}/1.0/{file}.sha256"));
        assert_eq!((status, sha256), (200, sha256_hex(&stored)), "{file}");
    }
    let head = agent()
        .head(&server.url(&format!("/repository/maven/{LIB}/1.0/wharf-lib-1.0.jar")))
        .call()
        .unwrap();
    let (_, sha1) = get(&server, &format!("{LIB}/1.0/wharf-lib-1.0.jar.sha1"));
    assert_eq!(head.headers()["x-checksum-sha1"].to_str().unwrap(), sha1);
    assert!(head.headers().contains_key("x-checksum-md5"));

    // A SNAPSHOT, twice: two timestamped builds, and the version metadata names build 2.
    let snapshot = project(
        home,
        "lib",
        "lib-snapshot",
        &[("@VERSION@", "1.1-SNAPSHOT"), ("@URL@", &url)],
    );
    ok(&mvn.run(&snapshot, &["deploy"]));
    ok(&mvn.run(&snapshot, &["deploy"]));
    let (status, version_metadata) =
        get(&server, &format!("{LIB}/1.1-SNAPSHOT/maven-metadata.xml"));
    assert_eq!(status, 200);
    assert!(
        version_metadata.contains("<buildNumber>2</buildNumber>"),
        "{version_metadata}"
    );
    assert!(
        version_metadata.contains("<classifier>sources</classifier>"),
        "{version_metadata}"
    );
    let (_, listing) = get(&server, &format!("{LIB}/1.1-SNAPSHOT/"));
    assert_eq!(listing.matches("-1.jar\"").count(), 1, "{listing}");
    assert_eq!(listing.matches("-2.jar\"").count(), 1, "{listing}");
    let (_, metadata) = get(&server, &format!("{LIB}/maven-metadata.xml"));
    for want in [
        "<version>1.0</version>",
        "<version>1.1-SNAPSHOT</version>",
        "<release>1.0</release>",
        "<latest>1.1-SNAPSHOT</latest>",
    ] {
        assert!(metadata.contains(want), "{want} in {metadata}");
    }

    // The release cannot be deployed again, and mvn says why.
    let again = mvn.run(&release, &["deploy"]);
    let said = text(&again);
    assert!(!again.status.success(), "{said}");
    assert!(said.contains("releases cannot be redeployed"), "{said}");

    // A consumer names Wharf as its repository and builds against the release, then the SNAPSHOT.
    for (name, version) in [("app-release", "1.0"), ("app-snapshot", "1.1-SNAPSHOT")] {
        let consumer = Mvn::new(&home.join(format!("consumer-{name}")), password(&server));
        let app = project(
            home,
            "app",
            name,
            &[("@LIB_VERSION@", version), ("@URL@", &url)],
        );
        let built = ok(&consumer.run(&app, &["package"]));
        assert!(
            built.contains(&format!("Downloaded from wharf: {url}{LIB}/{version}/")),
            "{built}"
        );
        assert!(app.join("target/wharf-app-1.0.jar").is_file());
    }

    // Browsable directories, and a directory without its slash is redirected to it.
    let (status, root) = get(&server, "org/wharf/test/");
    assert_eq!(status, 200);
    assert!(
        root.contains("<a href=\"wharf-lib/\">wharf-lib/</a>"),
        "{root}"
    );
    let (_, artifact) = get(&server, &format!("{LIB}/"));
    for want in [
        "href=\"1.0/\"",
        "href=\"1.1-SNAPSHOT/\"",
        "href=\"maven-metadata.xml\"",
    ] {
        assert!(artifact.contains(want), "{want} in {artifact}");
    }
    let (status, redirected) = get(&server, LIB);
    assert_eq!((status, redirected), (200, artifact));
}

#[test]
fn concurrent_deploys_of_two_versions_are_both_listed() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = Server::start(&home.join("data"), &[]);
    let url = server.url("/repository/maven/");
    let deploys: Vec<_> = ["2.0", "2.1"]
        .iter()
        .map(|version| {
            let mvn = Mvn::new(&home.join(format!("deployer-{version}")), password(&server));
            let dir = project(
                home,
                "lib",
                &format!("lib-{version}"),
                &[("@VERSION@", version), ("@URL@", &url)],
            );
            ok(&mvn.run(&dir, &["package"]));
            mvn.command(&dir, &["deploy"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for deploy in deploys {
        ok(&deploy.wait_with_output().unwrap());
    }
    let (_, metadata) = get(&server, &format!("{LIB}/maven-metadata.xml"));
    assert!(
        metadata.contains("<version>2.0</version>") && metadata.contains("<version>2.1</version>"),
        "{metadata}"
    );
    assert!(metadata.contains("<latest>2.1</latest>"), "{metadata}");
}

fn put(server: &Server, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let password = server.admin_password.as_deref().unwrap();
    let mut request = agent()
        .put(&server.url(&format!("/repository/maven/{path}")))
        .header("authorization", &basic("admin", password));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    status_and_text(request.send(body).unwrap())
}

/// Retention on Maven: superseded SNAPSHOT builds (untagged: the SNAPSHOT version tags its newest build) and old
/// releases expire; mvn still resolves the SNAPSHOT to its newest build and the kept release, and no longer finds
/// what was removed.
#[test]
fn retention_prunes_snapshot_builds_and_old_releases() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let clock = home.join("clock");
    let day = |n: u64| std::fs::write(&clock, (1_900_000_000 + n * 86_400).to_string()).unwrap();
    day(0);
    let config =
        "[storage]\ngc_interval = \"0s\"\n\n[[repository]]\nname = \"maven\"\nformat = \"maven\"\n";
    let (server, password, token) =
        wharf_tests::start_with_token_env(home, config, &[("WHARF_CLOCK_FILE", &clock)]);
    let url = server.url("/repository/maven/");
    let mvn = Mvn::new(&home.join("deployer"), &password);
    for (n, version) in ["0.9", "1.0"].iter().enumerate() {
        day(n as u64);
        let dir = project(
            home,
            "lib",
            &format!("lib-{version}"),
            &[("@VERSION@", version), ("@URL@", &url)],
        );
        ok(&mvn.run(&dir, &["deploy"]));
    }
    let snapshot = project(
        home,
        "lib",
        "lib-snapshot",
        &[("@VERSION@", "1.1-SNAPSHOT"), ("@URL@", &url)],
    );
    for n in 2..5 {
        day(n);
        ok(&mvn.run(&snapshot, &["deploy"]));
    }
    let policy = r#"{"rules": [
        {"rulePriority": 1, "description": "every SNAPSHOT keeps the build mvn resolves",
         "selection": {"tagStatus": "tagged", "tagPatternList": ["*-SNAPSHOT"], "countType": "imageCountMoreThan", "countNumber": 100},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": "and one superseded build",
         "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
         "action": {"type": "expire"}},
        {"rulePriority": 3, "description": "one release",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
         "action": {"type": "expire"}}
    ]}"#;
    let plan = wharf_tests::retain(home, &server, &token, "maven", policy);
    let removed = wharf_tests::removed(&plan, "org.wharf.test:wharf-lib");
    assert_eq!(removed.len(), 2, "{plan}");
    assert!(removed.contains("0.9"), "{plan}");
    assert!(
        removed
            .iter()
            .any(|r| r.starts_with("1.1-") && r.ends_with("-1")),
        "{plan}"
    );

    // What mvn reads: the artifact's versions, the SNAPSHOT's builds.
    let (_, metadata) = get(&server, &format!("{LIB}/maven-metadata.xml"));
    assert!(!metadata.contains("<version>0.9</version>"), "{metadata}");
    assert!(metadata.contains("<version>1.0</version>"), "{metadata}");
    let (_, builds) = get(&server, &format!("{LIB}/1.1-SNAPSHOT/maven-metadata.xml"));
    assert!(builds.contains("<buildNumber>3</buildNumber>"), "{builds}");
    let (_, listing) = get(&server, &format!("{LIB}/1.1-SNAPSHOT/"));
    assert_eq!(listing.matches("-1.jar\"").count(), 0, "{listing}");
    assert_eq!(listing.matches("-2.jar\"").count(), 1, "{listing}");
    assert_eq!(get(&server, &format!("{LIB}/0.9/wharf-lib-0.9.jar")).0, 404);

    for (version, resolves) in [("1.1-SNAPSHOT", true), ("1.0", true), ("0.9", false)] {
        let consumer = Mvn::new(&home.join(format!("consumer-{version}")), &password);
        let app = project(
            home,
            "app",
            &format!("app-{version}"),
            &[("@LIB_VERSION@", version), ("@URL@", &url)],
        );
        let built = consumer.run(&app, &["package"]);
        assert_eq!(
            built.status.success(),
            resolves,
            "{version}: {}",
            text(&built)
        );
    }

    // A month on, a run that removes every build left of 1.1-SNAPSHOT takes the version with them: no metadata
    // names a version with nothing left to resolve, and mvn resolves a range to the newest version that has files.
    day(40);
    let stale = r#"{"rules": [
        {"rulePriority": 1, "description": "stale SNAPSHOTs, the build mvn resolves too",
         "selection": {"tagStatus": "tagged", "tagPatternList": ["*-SNAPSHOT"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": "and superseded builds",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30},
         "action": {"type": "expire"}}
    ]}"#;
    let plan = wharf_tests::retain(home, &server, &token, "maven", stale);
    let removed = wharf_tests::removed(&plan, "org.wharf.test:wharf-lib");
    assert_eq!(removed.len(), 2, "{plan}");
    assert!(removed.iter().all(|r| r.starts_with("1.1-")), "{plan}");
    let (_, metadata) = get(&server, &format!("{LIB}/maven-metadata.xml"));
    assert!(!metadata.contains("1.1-SNAPSHOT"), "{metadata}");
    assert!(metadata.contains("<latest>1.0</latest>"), "{metadata}");
    assert_eq!(
        get(&server, &format!("{LIB}/1.1-SNAPSHOT/maven-metadata.xml")).0,
        404
    );
    let consumer = Mvn::new(&home.join("consumer-range"), &password);
    let app = project(
        home,
        "app",
        "app-range",
        &[("@LIB_VERSION@", "[1.0,)"), ("@URL@", &url)],
    );
    ok(&consumer.run(&app, &["package"]));
}

#[test]
fn bad_input_is_refused_and_stores_nothing() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("wharf.toml");
    std::fs::write(&config, "[server]\nmax_upload = \"1MiB\"\n").unwrap();
    let server = Server::start(
        &home.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let jar = b"PK\x03\x04 not really a jar";
    let xxe = "<?xml version=\"1.0\"?>\n<!DOCTYPE project [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n\
               <project><modelVersion>4.0.0</modelVersion><groupId>org.bad</groupId><artifactId>bad</artifactId>\
               <version>1.0</version><name>&xxe;</name></project>";
    // What was tried, the answer, the status and message wanted, and the path that must not have been stored.
    type Case<'a> = (&'a str, (u16, String), u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "a checksum header that does not match",
            put(&server, "org/bad/bad/1.0/bad-1.0.jar", jar, &[("x-checksum-sha1", &"0".repeat(40))]),
            400,
            "sha1 checksum sent does not match",
            "org/bad/bad/1.0/bad-1.0.jar",
        ),
        (
            "../ traversal",
            put(&server, "org/bad/../../etc/bad-1.0.jar", jar, &[]),
            400,
            "invalid path",
            "etc/bad-1.0.jar",
        ),
        (
            "encoded traversal",
            put(&server, "org/bad/%2e%2e/%2e%2e/etc/bad/1.0/bad-1.0.jar", jar, &[]),
            400,
            "invalid path",
            "etc/bad/1.0/bad-1.0.jar",
        ),
        (
            "a file that does not belong to its coordinates",
            put(&server, "org/bad/bad/1.0/other-1.0.jar", jar, &[]),
            400,
            "does not belong in org.bad:bad:1.0",
            "org/bad/bad/1.0/other-1.0.jar",
        ),
        (
            "an invalid coordinate",
            put(&server, "org/bad/b%20ad/1.0/b%20ad-1.0.jar", jar, &[]),
            400,
            "not a valid path segment",
            "org/bad/b%20ad/1.0/b%20ad-1.0.jar",
        ),
        (
            "malformed metadata XML",
            put(&server, "org/bad/bad/maven-metadata.xml", b"<metadata><versioning></metadata>", &[]),
            400,
            "not well-formed XML",
            "org/bad/bad/maven-metadata.xml",
        ),
        (
            "an external entity in metadata",
            put(
                &server,
                "org/bad/bad/maven-metadata.xml",
                b"<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><metadata>&e;</metadata>",
                &[],
            ),
            400,
            "DOCTYPE declaration: not accepted",
            "org/bad/bad/maven-metadata.xml",
        ),
        (
            "an external entity in a POM",
            put(&server, "org/bad/bad/1.0/bad-1.0.pom", xxe.as_bytes(), &[]),
            400,
            "DOCTYPE declaration: not accepted",
            "org/bad/bad/1.0/bad-1.0.pom",
        ),
        (
            "a body over the limit",
            put(&server, "org/bad/bad/1.0/bad-1.0-big.jar", &vec![0u8; 2 * 1024 * 1024], &[]),
            413,
            "larger than the limit",
            "org/bad/bad/1.0/bad-1.0-big.jar",
        ),
    ];
    for (what, (status, body), want_status, want_message, stored) in &cases {
        assert_eq!(status, want_status, "{what}: {body}");
        assert!(body.contains(want_message), "{what}: {body}");
        let (status, _) = get(&server, stored);
        assert!(
            status == 404 || status == 400,
            "{what}: {stored} answers {status}"
        );
    }
    let (status, _) = get(&server, "org/bad/bad/maven-metadata.xml");
    assert_eq!(status, 404, "nothing was recorded for org.bad:bad");

    // A checksum file that disagrees with the stored content is refused; the served checksum stays the true one.
    assert_eq!(put(&server, "org/bad/bad/1.0/bad-1.0.jar", jar, &[]).0, 201);
    let (status, body) = put(
        &server,
        "org/bad/bad/1.0/bad-1.0.jar.sha1",
        "0".repeat(40).as_bytes(),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    let sha1 = get(&server, "org/bad/bad/1.0/bad-1.0.jar.sha1").1;
    assert_ne!(sha1, "0".repeat(40));
    assert_eq!(
        put(
            &server,
            "org/bad/bad/1.0/bad-1.0.jar.sha1",
            sha1.as_bytes(),
            &[]
        )
        .0,
        201
    );
    // The release's file cannot be replaced; a SNAPSHOT's can.
    let (status, body) = put(&server, "org/bad/bad/1.0/bad-1.0.jar", b"other bytes", &[]);
    assert_eq!(status, 409, "{body}");
    assert_eq!(get_bytes(&server, "org/bad/bad/1.0/bad-1.0.jar"), jar);
    for bytes in [&b"one"[..], b"two"] {
        assert_eq!(
            put(
                &server,
                "org/bad/bad/1.0-SNAPSHOT/bad-1.0-SNAPSHOT.jar",
                bytes,
                &[]
            )
            .0,
            201
        );
    }
    assert_eq!(
        get_bytes(&server, "org/bad/bad/1.0-SNAPSHOT/bad-1.0-SNAPSHOT.jar"),
        b"two"
    );
}
