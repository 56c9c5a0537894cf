//! Immutable tags and versions (`immutable = [...]` or `true` on a repository), enforced inside the storage
//! transaction: refused through docker push, the OCI API, npm dist-tag and unpublish, and a generic overwrite or
//! delete, each in the client's own words; of many racing pushes of one new immutable tag, exactly one wins.

use std::path::Path;

use wharf_tests::{Engine, Server, agent, basic, curl, npm_as_admin, ok, run, status_and_text};

const CONFIG: &str = r#"
[[repository]]
name = "docker"
format = "docker"
immutable = ["v*", "release-*"]

[[repository]]
name = "npm"
format = "npm"
immutable = ["stable", "1.0.*"]

[[repository]]
name = "frozen"
format = "generic"
immutable = true
"#;

fn start(dir: &Path) -> Server {
    let config = dir.join("wharf.toml");
    std::fs::write(&config, CONFIG).unwrap();
    Server::start(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn manifest_digest(server: &Server, auth: &str, path: &str) -> (u16, Option<String>) {
    let response = agent()
        .head(&server.url(path))
        .header("authorization", auth)
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .call()
        .unwrap();
    let digest = response
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string());
    (response.status().as_u16(), digest)
}

#[test]
fn an_immutable_tag_cannot_be_moved_or_deleted_through_docker_or_the_oci_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let password = server.admin_password.clone().unwrap();
    let auth = basic("admin", &password);
    let engine_dir = dir.path().join("engine");
    std::fs::create_dir_all(&engine_dir).unwrap();
    let engine = Engine::start(&engine_dir);
    let image = format!("{}/docker/app", server.addr);
    engine.login(&server, &password);

    let (v1, dev) = (format!("{image}:v1"), format!("{image}:dev"));
    engine.build_scratch(dir.path(), "first", &[&v1, &dev]);
    ok(engine.docker().args(["push", &v1]));
    ok(engine.docker().args(["push", &dev]));
    // The same image pushed to the same immutable tag again is no change, and succeeds.
    ok(engine.docker().args(["push", &v1]));
    let (_, first) = manifest_digest(&server, &auth, "/v2/docker/app/manifests/v1");
    let first = first.expect("v1 has a digest");

    // A different image under the same tags: `dev` moves, `v1` does not.
    engine.build_scratch(dir.path(), "second!", &[&v1, &dev]);
    ok(engine.docker().args(["push", &dev]));
    let refused = run(engine.docker().args(["push", &v1]));
    assert!(!refused.status.success());
    let said = stderr(&refused);
    assert!(
        said.contains("tag v1 of app is immutable in repository docker"),
        "{said}"
    );
    assert_eq!(
        manifest_digest(&server, &auth, "/v2/docker/app/manifests/v1").1,
        Some(first.clone())
    );
    assert_ne!(
        manifest_digest(&server, &auth, "/v2/docker/app/manifests/dev").1,
        Some(first.clone())
    );

    // The OCI API: deleting the tag, or the manifest it names, is refused with an OCI error.
    for reference in ["v1", first.as_str()] {
        let (status, text) = status_and_text(
            agent()
                .delete(&server.url(&format!("/v2/docker/app/manifests/{reference}")))
                .header("authorization", &auth)
                .call()
                .unwrap(),
        );
        assert_eq!(status, 409, "{reference}: {text}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["errors"][0]["code"], "DENIED", "{text}");
        assert!(text.contains("immutable"), "{text}");
    }

    // What was kept still pulls.
    ok(engine.docker().args(["rmi", &v1]));
    ok(engine.docker().args(["pull", &v1]));
    let pulled = ok(engine
        .docker()
        .args(["inspect", "--format", "{{index .RepoDigests 0}}", &v1]));
    assert!(pulled.trim().ends_with(&first), "{pulled}");
}

#[test]
fn racing_pushes_of_one_new_immutable_tag_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let auth = basic("admin", server.admin_password.as_deref().unwrap());
    let config = b"{}";
    let config_digest = format!("sha256:{}", wharf_tests::sha256_hex(config));
    let pushed = agent()
        .post(&server.url(&format!(
            "/v2/docker/race/blobs/uploads/?digest={config_digest}"
        )))
        .header("authorization", &auth)
        .header("content-type", "application/octet-stream")
        .send(&config[..])
        .unwrap();
    assert_eq!(pushed.status(), 201);

    for round in 0..5 {
        let tag = format!("release-{round}");
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let manifest = serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": config_digest,
                        "size": config.len(),
                    },
                    "layers": [],
                    "annotations": { "racer": i.to_string() },
                })
                .to_string();
                let url = server.url(&format!("/v2/docker/race/manifests/{tag}"));
                let auth = auth.clone();
                std::thread::spawn(move || {
                    status_and_text(
                        agent()
                            .put(&url)
                            .header("authorization", &auth)
                            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                            .send(manifest.as_bytes())
                            .unwrap(),
                    )
                })
            })
            .collect();
        let results: Vec<(u16, String)> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let won = results.iter().filter(|(status, _)| *status == 201).count();
        assert_eq!(won, 1, "{tag}: {results:?}");
        for (status, text) in results.iter().filter(|(status, _)| *status != 201) {
            assert_eq!(*status, 409, "{text}");
            assert!(
                text.contains("DENIED") && text.contains("immutable"),
                "{text}"
            );
        }
    }
}

#[test]
fn npm_dist_tags_and_versions_held_immutable() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let password = server.admin_password.clone().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let registry = server.url("/repository/npm/");
    let npm = |dir: &Path, args: &[&str]| npm_as_admin(&home, &registry, &password, dir, args);
    let must = |dir: &Path, args: &[&str]| {
        let out = npm(dir, args);
        assert!(out.status.success(), "npm {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for version in ["1.0.0", "1.1.0"] {
        let package = dir.path().join(format!("pkg-{version}"));
        std::fs::create_dir_all(&package).unwrap();
        std::fs::write(
            package.join("package.json"),
            format!(r#"{{"name":"imm-pkg","version":"{version}"}}"#),
        )
        .unwrap();
        must(&package, &["publish"]);
    }
    let here = dir.path();
    must(here, &["dist-tag", "add", "imm-pkg@1.0.0", "stable"]);
    must(here, &["dist-tag", "add", "imm-pkg@1.0.0", "stable"]);
    for args in [
        &["dist-tag", "add", "imm-pkg@1.1.0", "stable"][..],
        &["dist-tag", "rm", "imm-pkg", "stable"],
        &["unpublish", "imm-pkg@1.0.0"],
    ] {
        let out = npm(here, args);
        assert!(!out.status.success(), "npm {args:?} was refused");
        assert!(
            stderr(&out).contains("is immutable in repository npm"),
            "npm {args:?}: {}",
            stderr(&out)
        );
    }
    // What no pattern names stays mutable: `latest` moved with each publish; 1.1.0 can go.
    must(here, &["unpublish", "imm-pkg@1.1.0"]);
    let tags = must(here, &["dist-tag", "ls", "imm-pkg"]);
    assert!(tags.contains("stable: 1.0.0"), "{tags}");
    let versions = must(here, &["view", "imm-pkg", "versions", "--json"]);
    let versions: serde_json::Value = serde_json::from_str(&versions).unwrap();
    assert!(
        versions == serde_json::json!("1.0.0") || versions == serde_json::json!(["1.0.0"]),
        "{versions}"
    );
}

#[test]
fn a_repository_that_is_all_immutable_keeps_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let user = format!("admin:{}", server.admin_password.as_deref().unwrap());
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    std::fs::write(&first, "first").unwrap();
    std::fs::write(&second, "second").unwrap();
    let url = server.url("/repository/frozen/builds/app.bin");
    let put = |file: &Path| curl(&["-u", &user, "-T", file.to_str().unwrap(), &url]);
    assert_eq!(put(&first).0, 201);
    assert_eq!(put(&first).0, 201, "the same bytes again are no change");
    let (status, text) = put(&second);
    assert_eq!(status, 409, "{text}");
    assert!(
        text.contains("builds/app.bin is immutable") && text.contains("\"errors\""),
        "{text}"
    );
    let (status, text) = curl(&["-u", &user, "-X", "DELETE", &url]);
    assert_eq!(status, 409, "{text}");
    let (status, body) = curl(&[&url]);
    assert_eq!((status, body.as_str()), (200, "first"));
}
