//! Promotion with the real clients: an image pushed with docker and an npm version published with npm are promoted
//! (`wharf promote`) to a second repository without a new blob, then pulled and installed from there; a tag
//! promotion within a repository; a promotion onto an immutable tag refused; a move; every one in the audit log.

use std::path::Path;

use wharf_tests::{
    Engine, Server, agent, npm_as_admin, ok, oras_in, run, start_with_token, status_and_text, wharf,
};

const CONFIG: &str = r#"
[[repository]]
name = "docker"
format = "docker"

[[repository]]
name = "docker-prod"
format = "docker"
immutable = ["production"]

[[repository]]
name = "npm"
format = "npm"

[[repository]]
name = "npm-prod"
format = "npm"
"#;

/// The store's blob count, from /metrics.
fn blob_count(server: &Server) -> u64 {
    let (_, metrics) = status_and_text(agent().get(&server.url("/metrics")).call().unwrap());
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("wharf_blobs "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("wharf_blobs in /metrics") as u64
}

fn promote(server: &Server, token: &str, args: &[&str]) -> std::process::Output {
    run(wharf()
        .arg("promote")
        .args(args)
        .args(["--server", &server.url(""), "--token", token]))
}

#[test]
fn promote_an_image_and_an_npm_version() {
    let dir = tempfile::tempdir().unwrap();
    let (server, password, token) = start_with_token(dir.path(), CONFIG);
    let engine_dir = dir.path().join("engine");
    std::fs::create_dir_all(&engine_dir).unwrap();
    let engine = Engine::start(&engine_dir);
    engine.login(&server, &password);
    let (one, two) = (
        format!("{}/docker/app:1.0", server.addr),
        format!("{}/docker/app:2.0", server.addr),
    );
    engine.build_scratch(dir.path(), "one", &[&one]);
    engine.build_scratch(dir.path(), "two", &[&two]);
    ok(engine.docker().args(["push", &one]));
    ok(engine.docker().args(["push", &two]));

    // Copy 1.0 to docker-prod as `production`: no new blob.
    let blobs = blob_count(&server);
    let out = promote(
        &server,
        &token,
        &[
            "docker/app:1.0",
            "--to",
            "docker-prod",
            "--tag",
            "production",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("promoted docker/app@sha256:"), "{said}");
    assert!(said.trim().ends_with("to docker-prod"), "{said}");
    assert_eq!(blob_count(&server), blobs);

    // A tag promotion within docker; `production` in docker-prod is immutable, so 2.0 cannot take it.
    let out = promote(
        &server,
        &token,
        &["docker/app:1.0", "--to", "docker", "--tag", "staging"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = promote(
        &server,
        &token,
        &[
            "docker/app:2.0",
            "--to",
            "docker-prod",
            "--tag",
            "production",
        ],
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("tag production of app is immutable"),
        "{said}"
    );

    // Pull what was promoted, by both its tags there, from an empty engine cache.
    ok(engine.docker().args(["rmi", &one, &two]));
    let prod = format!("{}/docker-prod/app", server.addr);
    let staging = format!("{}/docker/app:staging", server.addr);
    for reference in [format!("{prod}:production"), format!("{prod}:1.0"), staging] {
        ok(engine.docker().args(["pull", &reference]));
    }
    let digest = |r: &str| ok(engine.docker().args(["inspect", "--format", "{{.Id}}", r]));
    assert_eq!(
        digest(&format!("{prod}:production")),
        digest(&format!("{prod}:1.0"))
    );

    // npm: publish to npm, promote to npm-prod, install from there with an empty cache.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let package = dir.path().join("package");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(
        package.join("package.json"),
        r#"{"name":"prom-pkg","version":"1.0.0","main":"index.js"}"#,
    )
    .unwrap();
    std::fs::write(package.join("index.js"), "module.exports = 'promoted';\n").unwrap();
    let npm = |registry: &str, dir: &Path, args: &[&str]| {
        let out = npm_as_admin(&home, &server.url(registry), &password, dir, args);
        assert!(
            out.status.success(),
            "npm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    npm("/repository/npm/", &package, &["publish"]);
    let blobs = blob_count(&server);
    let out = promote(&server, &token, &["npm/prom-pkg@1.0.0", "--to", "npm-prod"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(blob_count(&server), blobs);
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("package.json"),
        r#"{"name":"p","version":"1.0.0"}"#,
    )
    .unwrap();
    npm("/repository/npm-prod/", &project, &["install", "prom-pkg"]);
    let installed =
        std::fs::read_to_string(project.join("node_modules/prom-pkg/index.js")).unwrap();
    assert!(installed.contains("promoted"));

    // A move takes it out of the source in the same transaction.
    let out = promote(
        &server,
        &token,
        &["npm/prom-pkg@1.0.0", "--to", "npm-prod", "--move"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = npm_as_admin(
        &home,
        &server.url("/repository/npm/"),
        &password,
        dir.path(),
        &["view", "prom-pkg@1.0.0", "version"],
    );
    assert!(
        String::from_utf8_lossy(&gone.stdout).trim().is_empty(),
        "{gone:?}"
    );

    // The audit log: who promoted what, from where to where.
    let audit = ok(wharf().args(["audit", "--server", &server.url(""), "--token", &token]));
    assert!(
        audit
            .lines()
            .any(|l| l.contains("admin  promote  docker/app@sha256:")
                && l.ends_with("-> docker-prod as production")),
        "{audit}"
    );
    assert!(
        audit
            .lines()
            .any(|l| l.contains("admin  promote  npm/prom-pkg@1.0.0 -> npm-prod")),
        "{audit}"
    );
    assert!(
        audit
            .lines()
            .any(|l| l.contains("admin  move  npm/prom-pkg@1.0.0 -> npm-prod")),
        "{audit}"
    );
}

/// An SBOM attached with oras, moved to a second repository after its subject was copied there: the target's
/// referrers API lists it, the source's no longer does (its entry goes with the manifest).
#[test]
fn a_moved_referrer_takes_its_referrers_entry_along() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (server, password, token) = start_with_token(home, CONFIG);
    let oras = |args: &[&str]| ok(&mut oras_in(home, args));
    oras(&["login", &server.addr, "-u", "admin", "-p", &password]);
    let image = |repo: &str| format!("{}/{repo}/app:1.0", server.addr);
    std::fs::write(home.join("app.txt"), "app").unwrap();
    std::fs::write(home.join("sbom.spdx.json"), r#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    oras(&["push", &image("docker"), "app.txt"]);
    let sbom_type = "application/spdx+json";
    oras(&[
        "attach",
        "--artifact-type",
        sbom_type,
        &image("docker"),
        "sbom.spdx.json",
    ]);
    let referrers = |repo: &str| -> Vec<String> {
        let found: serde_json::Value =
            serde_json::from_str(&oras(&["discover", "--format", "json", &image(repo)])).unwrap();
        let listed = found["referrers"].as_array().cloned().unwrap_or_default();
        listed
            .iter()
            .map(|r| r["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let sboms = referrers("docker");
    assert_eq!(sboms.len(), 1, "{sboms:?}");

    let out = promote(&server, &token, &["docker/app:1.0", "--to", "docker-prod"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moved = format!("docker/app@{}", sboms[0]);
    let out = promote(&server, &token, &[&moved, "--to", "docker-prod", "--move"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        referrers("docker-prod"),
        sboms,
        "the target lists the moved SBOM"
    );
    assert_eq!(
        referrers("docker"),
        Vec::<String>::new(),
        "the source no longer lists it"
    );
    let pulled = home.join("pulled");
    let sbom_in_prod = format!("{}/docker-prod/app@{}", server.addr, sboms[0]);
    oras(&["pull", "-o", pulled.to_str().unwrap(), &sbom_in_prod]);
    assert!(pulled.join("sbom.spdx.json").is_file());
}
