//! The OCI registry driven by real clients: the docker CLI with a private engine, oras, helm over oci://, and the
//! OCI distribution-spec conformance suite. `scripts/clients` installs them; a missing client fails its test.

use std::process::Command;

use wharf_tests::{Engine, agent, basic, ok, run, server_with_token, tool, with_stdin};

fn get_json(url: &str, authorization: &str) -> serde_json::Value {
    let mut response = agent()
        .get(url)
        .header("authorization", authorization)
        .call()
        .unwrap();
    assert_eq!(response.status(), 200, "{url}");
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

fn file_bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32) as u8
                ^ seed
        })
        .collect()
}

#[test]
fn docker_push_pull_login() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _, token) = server_with_token(&dir.path().join("data"));
    let engine_dir = dir.path().join("engine");
    std::fs::create_dir_all(&engine_dir).unwrap();
    let engine = Engine::start(&engine_dir);
    let registry = server.addr.clone();
    let image = format!("{registry}/docker/app");

    // A FROM-scratch image of three layers.
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    let files = [
        ("a.bin", file_bytes(1, 700_000)),
        ("b.bin", file_bytes(2, 300_000)),
        ("c.txt", b"hello\n".to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(context.join(name), bytes).unwrap();
    }
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY a.bin /a.bin\nCOPY b.bin /b.bin\nCOPY c.txt /c.txt\n",
    )
    .unwrap();
    ok(engine
        .docker()
        .args(["build", "-q", "-t", &format!("{image}:1.0")])
        .arg(&context));

    // Without a login the push stops at once with a message that says what to do.
    let refused = run(engine.docker().args(["push", &format!("{image}:1.0")]));
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("authentication required to push"), "{said}");

    // A wrong password is refused; the API token logs in.
    let wrong = with_stdin(
        engine
            .docker()
            .args(["login", "-u", "admin", "--password-stdin", &registry]),
        "nope\n",
    );
    assert!(!wrong.status.success());
    let login = with_stdin(
        engine
            .docker()
            .args(["login", "-u", "admin", "--password-stdin", &registry]),
        &token,
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );

    let pushed = ok(engine.docker().args(["push", &format!("{image}:1.0")]));
    assert_eq!(pushed.matches(": Pushed").count(), 3, "{pushed}");
    let digest = pushed
        .split("digest: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("push prints the digest")
        .to_string();
    let again = ok(engine.docker().args(["push", &format!("{image}:1.0")]));
    assert_eq!(again.matches("Layer already exists").count(), 3, "{again}");
    ok(engine
        .docker()
        .args(["tag", &format!("{image}:1.0"), &format!("{image}:1.1")]));
    let tagged = ok(engine.docker().args(["push", &format!("{image}:1.1")]));
    assert!(tagged.contains(&digest), "{tagged}");

    // The registry lists both tags.
    let auth = basic("admin", &token);
    let tags: serde_json::Value = get_json(&server.url("/v2/docker/app/tags/list"), &auth);
    assert_eq!(tags["tags"], serde_json::json!(["1.0", "1.1"]));

    // Remove every local copy, pull by tag and by digest (anonymously: reads are open), compare the files.
    ok(engine.docker().args(["logout", &registry]));
    ok(engine
        .docker()
        .args(["rmi", &format!("{image}:1.0"), &format!("{image}:1.1")]));
    ok(engine.docker().args(["pull", &format!("{image}:1.1")]));
    ok(engine.docker().args(["pull", &format!("{image}@{digest}")]));
    for reference in [format!("{image}:1.1"), format!("{image}@{digest}")] {
        let container = ok(engine.docker().args(["create", &reference, "/none"]))
            .trim()
            .to_string();
        for (name, bytes) in &files {
            let out = dir.path().join(format!("out-{name}"));
            ok(engine
                .docker()
                .args(["cp", &format!("{container}:/{name}")])
                .arg(&out));
            assert_eq!(&std::fs::read(&out).unwrap(), bytes, "{reference} {name}");
            std::fs::remove_file(&out).unwrap();
        }
        ok(engine.docker().args(["rm", &container]));
    }
}

#[test]
fn oras_attach_and_discover() {
    let dir = tempfile::tempdir().unwrap();
    let (server, password, _) = server_with_token(&dir.path().join("data"));
    let oras = |args: &[&str]| {
        let mut command = Command::new(tool("oras"));
        command
            .args(args)
            .arg("--plain-http")
            .env("DOCKER_CONFIG", dir.path().join("oras"))
            .current_dir(dir.path());
        command
    };
    let subject = format!("{}/docker/app:1.0", server.addr);
    std::fs::write(dir.path().join("layer.txt"), "layer").unwrap();
    std::fs::write(
        dir.path().join("sbom.spdx.json"),
        r#"{"spdxVersion":"SPDX-2.3"}"#,
    )
    .unwrap();
    ok(&mut oras(&[
        "login",
        &server.addr,
        "-u",
        "admin",
        "-p",
        &password,
    ]));
    ok(&mut oras(&["push", &subject, "layer.txt"]));
    ok(&mut oras(&[
        "attach",
        "--artifact-type",
        "application/spdx+json",
        &subject,
        "sbom.spdx.json",
    ]));
    let found: serde_json::Value = serde_json::from_str(&ok(&mut oras(&[
        "discover",
        "--format",
        "json",
        "--artifact-type",
        "application/spdx+json",
        &subject,
    ])))
    .unwrap();
    let referrers = found["referrers"].as_array().expect("a referrers list");
    assert_eq!(referrers.len(), 1, "{found}");
    assert_eq!(referrers[0]["artifactType"], "application/spdx+json");
    let none: serde_json::Value = serde_json::from_str(&ok(&mut oras(&[
        "discover",
        "--format",
        "json",
        "--artifact-type",
        "application/other",
        &subject,
    ])))
    .unwrap();
    assert_eq!(
        none["referrers"].as_array().map_or(0, Vec::len),
        0,
        "{none}"
    );
}

#[test]
fn helm_push_and_pull_over_oci() {
    let dir = tempfile::tempdir().unwrap();
    let (server, password, _) = server_with_token(&dir.path().join("data"));
    let helm = |args: &[&str]| {
        let mut command = Command::new(tool("helm"));
        command
            .args(args)
            .env("HELM_CONFIG_HOME", dir.path().join("helm/config"))
            .env("HELM_CACHE_HOME", dir.path().join("helm/cache"))
            .env("HELM_DATA_HOME", dir.path().join("helm/data"))
            .current_dir(dir.path());
        command
    };
    ok(&mut helm(&["create", "demo"]));
    let chart = dir.path().join("demo/Chart.yaml");
    let text = std::fs::read_to_string(&chart).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("version:") {
                "version: 0.1.0+build.7"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&chart, text).unwrap();
    ok(&mut helm(&["package", "demo"]));
    let packaged = "demo-0.1.0+build.7.tgz";
    let login = with_stdin(
        &mut helm(&[
            "registry",
            "login",
            &server.addr,
            "--plain-http",
            "-u",
            "admin",
            "--password-stdin",
        ]),
        &password,
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    ok(&mut helm(&[
        "push",
        packaged,
        &format!("oci://{}/docker/charts", server.addr),
        "--plain-http",
    ]));
    let tags: serde_json::Value = get_json(
        &server.url("/v2/docker/charts/demo/tags/list"),
        &basic("admin", &password),
    );
    assert_eq!(
        tags["tags"],
        serde_json::json!(["0.1.0_build.7"]),
        "+ becomes _ in the tag"
    );
    std::fs::create_dir_all(dir.path().join("pulled")).unwrap();
    ok(&mut helm(&[
        "pull",
        &format!("oci://{}/docker/charts/demo", server.addr),
        "--version",
        "0.1.0+build.7",
        "--plain-http",
        "-d",
        "pulled",
    ]));
    assert_eq!(
        std::fs::read(dir.path().join("pulled").join(packaged)).unwrap(),
        std::fs::read(dir.path().join(packaged)).unwrap()
    );
}

/// The OCI distribution-spec conformance suite: pull, push, content discovery and content management, with every
/// optional API and data set on (sha512 content, tag parameters, upload cancel) except sparse manifests: Wharf
/// refuses a manifest whose blobs are missing, as the spec allows.
#[test]
fn oci_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (server, password, _) = server_with_token(&dir.path().join("data"));
    let results = dir.path().join("results");
    let output = run(Command::new(tool("conformance"))
        .current_dir(dir.path())
        .env("OCI_REGISTRY", &server.addr)
        .env("OCI_TLS", "disabled")
        .env("OCI_REPO1", "docker/conformance/one")
        .env("OCI_REPO2", "docker/conformance/two")
        .env("OCI_USERNAME", "admin")
        .env("OCI_PASSWORD", &password)
        .env("OCI_API_BLOBS_UPLOAD_CANCEL", "true")
        .env("OCI_API_MANIFESTS_TAG_PARAM", "true")
        .env("OCI_DATA_SPARSE", "false")
        .env("OCI_RESULTS_DIR", &results));
    let report = String::from_utf8_lossy(&output.stdout);
    let summary: String = report
        .lines()
        .skip_while(|l| !l.starts_with("OCI Conformance Result"))
        .take(7)
        .collect::<Vec<_>>()
        .join("\n");
    println!("{summary}");
    assert!(
        output.status.success(),
        "conformance failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(summary.contains("OCI Conformance Result: Pass"), "{report}");
    for line in ["FAIL", "Error", "Skip", "Disabled"] {
        let count = summary
            .lines()
            .find(|l| l.trim_start().starts_with(line))
            .and_then(|l| l.rsplit(':').next())
            .map(|n| n.trim().to_string());
        assert_eq!(count.as_deref(), Some("0"), "{line} in\n{summary}");
    }
    let passed: u32 = summary
        .lines()
        .find(|l| l.trim_start().starts_with("Pass"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(passed > 700, "{summary}");
}
