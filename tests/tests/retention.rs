//! Retention on OCI images. An ECR lifecycle policy imported verbatim over 15 `v*` tags, 3 other tags and
//! untagged manifests of several ages (push times set through the test clock, `WHARF_CLOCK_FILE`): the dry run
//! lists exactly what ECR's documented rules remove and changes nothing; the real run removes exactly that; docker
//! pulls what was kept. The TOML form of a policy; referrers and index manifests following what they belong to.

use std::collections::BTreeSet;

use wharf_tests::{
    DAY, Engine, NOW, Server, agent, basic, ok, oras_in, removed, retention, set_clock, sha256_hex,
    start_with_token_env, status_and_text, wharf,
};

/// The user's guide policy: keep the last 10 images tagged `v*`, expire untagged images after 7 days.
const POLICY: &str = r#"{
    "rules": [
        {
            "rulePriority": 1,
            "description": "Keep last 10 images",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["v*"],
                "countType": "imageCountMoreThan",
                "countNumber": 10
            },
            "action": {
                "type": "expire"
            }
        },
        {
            "rulePriority": 2,
            "description": "Expire untagged images older than 7 days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 7
            },
            "action": {
                "type": "expire"
            }
        }
    ]
}"#;

const CONFIG: &str = "[storage]\ngc_interval = \"0s\"\n\n\
                      [[repository]]\nname = \"docker\"\nformat = \"docker\"\n";

#[test]
fn an_ecr_policy_removes_exactly_what_ecr_would() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    set_clock(&clock, NOW - 40 * DAY);
    let (server, password, token) =
        start_with_token_env(dir.path(), CONFIG, &[("WHARF_CLOCK_FILE", &clock)]);
    let auth = basic("admin", &password);

    // One real image pushed with docker (`seed`); the other manifests are byte variants of its manifest (trailing
    // spaces: a different digest, the same image), so docker can pull every one of them.
    let engine_dir = dir.path().join("engine");
    std::fs::create_dir_all(&engine_dir).unwrap();
    let engine = Engine::start(&engine_dir);
    engine.login(&server, &password);
    let image = format!("{}/docker/app", server.addr);
    engine.build_scratch(dir.path(), "kept\n", &[&format!("{image}:seed")]);
    ok(engine.docker().args(["push", &format!("{image}:seed")]));
    let mut seed = agent()
        .get(&server.url("/v2/docker/app/manifests/seed"))
        .header("authorization", &auth)
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .call()
        .unwrap();
    let media_type = seed.headers()["content-type"].to_str().unwrap().to_string();
    let seed = seed.body_mut().read_to_vec().unwrap();

    let push = |variant: usize, reference: Option<&str>, at: u64| -> String {
        let mut bytes = seed.clone();
        bytes.extend(std::iter::repeat_n(b' ', variant));
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        set_clock(&clock, at);
        let (status, text) = status_and_text(
            agent()
                .put(&server.url(&format!(
                    "/v2/docker/app/manifests/{}",
                    reference.unwrap_or(&digest)
                )))
                .header("authorization", &auth)
                .header("content-type", &media_type)
                .send(&bytes[..])
                .unwrap(),
        );
        assert_eq!(status, 201, "{text}");
        digest
    };
    // 15 `v*` tags an hour apart, 20 days ago; two more other tags; untagged manifests 10, 8, 6 and 1 days old.
    let v: Vec<String> = (0..15)
        .map(|i| {
            push(
                i + 1,
                Some(&format!("v1.{i}")),
                NOW - 20 * DAY + i as u64 * 3600,
            )
        })
        .collect();
    push(20, Some("latest"), NOW - 30 * DAY);
    push(21, Some("dev"), NOW - 2 * DAY);
    let untagged: Vec<String> = [10, 8, 6, 1]
        .iter()
        .enumerate()
        .map(|(k, age)| push(30 + k, None, NOW - age * DAY))
        .collect();
    set_clock(&clock, NOW);

    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();
    let said = retention(
        &server,
        &token,
        &[
            "import",
            "--ecr",
            policy.to_str().unwrap(),
            "--repository",
            "docker",
        ],
    );
    assert_eq!(said.trim(), "retention policy of docker set: 2 rules");

    // ECR's rules: the 5 oldest `v*` go (10 kept), untagged older than 7 days go; `seed`, `latest`, `dev` match
    // no rule and stay.
    let expected: BTreeSet<String> = v[..5].iter().chain(&untagged[..2]).cloned().collect();
    let dry = retention(
        &server,
        &token,
        &["run", "--repository", "docker", "--dry-run"],
    );
    assert_eq!(removed(&dry, "app"), expected, "{dry}");
    assert!(dry.trim_end().ends_with("would remove 7, kept 15"), "{dry}");
    assert!(
        dry.lines().any(|l| l.starts_with("keep")
            && l.contains("[latest]")
            && l.ends_with("no rule selects it")),
        "{dry}"
    );
    let tags = |server: &Server| -> serde_json::Value {
        let (_, text) = status_and_text(
            agent()
                .get(&server.url("/v2/docker/app/tags/list"))
                .header("authorization", &auth)
                .call()
                .unwrap(),
        );
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["tags"].clone()
    };
    assert_eq!(
        tags(&server).as_array().unwrap().len(),
        18,
        "the dry run changed nothing"
    );

    // The real run does what the dry run printed, line for line.
    let real = retention(&server, &token, &["run", "--repository", "docker"]);
    let body = |plan: &str| -> Vec<String> {
        let lines: Vec<String> = plan.lines().map(str::to_string).collect();
        lines[..lines.len() - 1].to_vec()
    };
    assert_eq!(body(&real), body(&dry));
    assert!(real.trim_end().ends_with("removed 7, kept 15"), "{real}");
    let left: BTreeSet<String> = tags(&server)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let mut wanted: BTreeSet<String> = (5..15).map(|i| format!("v1.{i}")).collect();
    wanted.extend(["seed", "latest", "dev"].map(String::from));
    assert_eq!(left, wanted);
    let exists = |reference: &str| {
        agent()
            .head(&server.url(&format!("/v2/docker/app/manifests/{reference}")))
            .header("authorization", &auth)
            .header("accept", &media_type)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    for gone in &expected {
        assert_eq!(exists(gone), 404, "{gone}");
    }
    for kept in &untagged[2..] {
        assert_eq!(exists(kept), 200, "{kept}");
    }

    // docker pulls what was kept: a kept `v` tag, another tag, an untagged manifest by digest.
    ok(engine.docker().args(["rmi", &format!("{image}:seed")]));
    for reference in [
        format!("{image}:v1.14"),
        format!("{image}:latest"),
        format!("{image}@{}", untagged[3]),
    ] {
        ok(engine.docker().args(["pull", &reference]));
    }
    let audit = ok(wharf().args([
        "audit",
        "--limit",
        "20",
        "--server",
        &server.url(""),
        "--token",
        &token,
    ]));
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("  retention  docker/app@"))
            .count(),
        7,
        "{audit}"
    );
}

/// The TOML form of the same policy is stored as the ECR document it spells; a rule without a count is refused at
/// start-up with a message naming it.
#[test]
fn a_toml_policy_is_the_ecr_policy() {
    let dir = tempfile::tempdir().unwrap();
    let rules = r#"
[[repository.retention]]
priority = 1
description = "Keep last 10 images"
select = "tagged"
tag_patterns = ["v*"]
keep_last = 10

[[repository.retention]]
priority = 2
description = "Expire untagged images older than 7 days"
select = "untagged"
expire_after_days = 7
"#;
    let (server, _, token) = start_with_token_env(dir.path(), &format!("{CONFIG}{rules}"), &[]);
    let (status, text) = status_and_text(
        agent()
            .get(&server.url("/api/v1/repositories/docker/retention"))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap(),
    );
    assert_eq!(status, 200, "{text}");
    let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ecr: serde_json::Value = serde_json::from_str(POLICY).unwrap();
    assert_eq!(stored, ecr);
    drop(server);

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!("{CONFIG}[[repository.retention]]\npriority = 1\nselect = \"any\"\n"),
    )
    .unwrap();
    let out = wharf()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            bad.to_str().unwrap(),
            "--data",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(
            "[[repository.retention]] of `docker`: rule 1 needs one of keep_last, expire_after_days"
        ),
        "{said}"
    );
}

/// What follows other manifests is not judged on its own: an SBOM attached with oras stays with its tagged subject
/// and goes with its expired one, and the untagged platform manifests of a tagged index stay with the index, all
/// under a policy ("expire untagged after 7 days") that would otherwise remove every one of them.
#[test]
fn referrers_and_index_manifests_follow() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let clock = home.join("clock");
    set_clock(&clock, NOW - 30 * DAY);
    let (server, password, token) =
        start_with_token_env(home, CONFIG, &[("WHARF_CLOCK_FILE", &clock)]);
    let auth = basic("admin", &password);
    let oras = |args: &[&str]| ok(&mut oras_in(home, args));
    oras(&["login", &server.addr, "-u", "admin", "-p", &password]);
    let image = format!("{}/docker/app", server.addr);
    let digest = |reference: &str| -> String {
        let response = agent()
            .head(&server.url(&format!("/v2/docker/app/manifests/{reference}")))
            .header("authorization", &auth)
            .header("accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
            .call()
            .unwrap();
        response.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let untag = |tag: &str| {
        let response = agent()
            .delete(&server.url(&format!("/v2/docker/app/manifests/{tag}")))
            .header("authorization", &auth)
            .call()
            .unwrap();
        assert_eq!(response.status(), 202);
    };
    let sbom_of = |subject: &str| -> String {
        let found: serde_json::Value = serde_json::from_str(&oras(&[
            "discover",
            "--format",
            "json",
            &format!("{image}@{subject}"),
        ]))
        .unwrap();
        let referrers = found["referrers"].as_array().cloned().unwrap_or_default();
        assert!(referrers.len() <= 1, "{found}");
        referrers
            .first()
            .map_or(String::new(), |r| r["digest"].as_str().unwrap().to_string())
    };
    std::fs::write(home.join("sbom.spdx.json"), r#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    let mut pushed = std::collections::BTreeMap::new();
    for name in ["kept", "gone", "amd64", "arm64"] {
        std::fs::write(home.join(format!("{name}.txt")), name).unwrap();
        oras(&["push", &format!("{image}:{name}"), &format!("{name}.txt")]);
        pushed.insert(name, digest(name));
    }
    for subject in ["kept", "gone"] {
        oras(&[
            "attach",
            "--artifact-type",
            "application/spdx+json",
            &format!("{image}:{subject}"),
            "sbom.spdx.json",
        ]);
    }
    oras(&[
        "manifest",
        "index",
        "create",
        &format!("{image}:multi"),
        "amd64",
        "arm64",
    ]);
    for tag in ["gone", "amd64", "arm64"] {
        untag(tag);
    }
    let (kept_sbom, gone_sbom) = (sbom_of(&pushed["kept"]), sbom_of(&pushed["gone"]));
    assert!(!kept_sbom.is_empty() && !gone_sbom.is_empty());
    set_clock(&clock, NOW);

    let policy = r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged",
        "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}}]}"#;
    let plan = wharf_tests::retain(home, &server, &token, "docker", policy);
    let expected: BTreeSet<String> = [pushed["gone"].clone(), gone_sbom.clone()].into();
    assert_eq!(removed(&plan, "app"), expected, "{plan}");
    for (digest, why) in [
        (
            &kept_sbom,
            format!("follows {}, which stays", pushed["kept"]),
        ),
        (
            &pushed["amd64"],
            format!("follows {}, which stays", digest("multi")),
        ),
        (
            &gone_sbom,
            format!("follows {}, which goes", pushed["gone"]),
        ),
    ] {
        assert!(
            plan.lines()
                .any(|l| l.contains(digest.as_str()) && l.ends_with(&why)),
            "{digest}: {why}\n{plan}"
        );
    }

    // What oras reads afterwards: the kept subject's SBOM, no referrer left for the removed one, and every manifest
    // the index lists.
    assert_eq!(sbom_of(&pushed["kept"]), kept_sbom);
    let (status, index) = status_and_text(
        agent()
            .get(&server.url(&format!("/v2/docker/app/referrers/{}", pushed["gone"])))
            .header("authorization", &auth)
            .call()
            .unwrap(),
    );
    assert_eq!(status, 200);
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    assert_eq!(index["manifests"], serde_json::json!([]), "{index}");
    for gone in &expected {
        let status = agent()
            .head(&server.url(&format!("/v2/docker/app/manifests/{gone}")))
            .header("authorization", &auth)
            .call()
            .unwrap()
            .status();
        assert_eq!(status, 404, "{gone}");
    }
    oras(&["manifest", "fetch", &format!("{image}:multi")]);
    for platform in ["amd64", "arm64"] {
        let out = home.join(format!("out-{platform}"));
        oras(&[
            "pull",
            "-o",
            out.to_str().unwrap(),
            &format!("{image}@{}", pushed[platform]),
        ]);
        assert_eq!(
            std::fs::read_to_string(out.join(format!("{platform}.txt"))).unwrap(),
            platform
        );
    }
}

/// The pull windows of zot and Harbor: images pushed a month ago, one of them pulled with oras two days ago; "expire
/// what was not pulled in 10 days" keeps that one and removes the others, but for the one that is immutable, and the
/// plan says when each was used and why each was kept.
#[test]
fn a_pull_window_keeps_what_clients_pull() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let clock = home.join("clock");
    set_clock(&clock, NOW - 30 * DAY);
    let config = format!("{CONFIG}immutable = [\"frozen\"]\n");
    let (server, password, token) =
        start_with_token_env(home, &config, &[("WHARF_CLOCK_FILE", &clock)]);
    let oras = |args: &[&str]| ok(&mut oras_in(home, args));
    oras(&["login", &server.addr, "-u", "admin", "-p", &password]);
    let image = format!("{}/docker/app", server.addr);
    for name in ["used", "idle", "stale", "frozen"] {
        std::fs::write(home.join(format!("{name}.txt")), name).unwrap();
        oras(&["push", &format!("{image}:{name}"), &format!("{name}.txt")]);
    }
    set_clock(&clock, NOW - 2 * DAY);
    oras(&["pull", "-o", "first", &format!("{image}:used")]);
    set_clock(&clock, NOW);

    let policy = r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any",
        "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 10}, "action": {"type": "expire"}}]}"#;
    let plan = wharf_tests::retain(home, &server, &token, "docker", policy);
    assert!(plan.trim_end().ends_with("removed 2, kept 2"), "{plan}");
    for (tag, line) in [
        ("used", "keep    app@"),
        ("idle", "remove  app@"),
        ("stale", "remove  app@"),
        ("frozen", "keep    app@"),
    ] {
        assert!(
            plan.lines()
                .any(|l| l.starts_with(line) && l.contains(&format!("[{tag}]"))),
            "{tag}: {plan}"
        );
    }
    assert!(
        plan.lines()
            .any(|l| l.contains("[used]") && l.ends_with("pulled 2 days ago, limit 10 days")),
        "{plan}"
    );
    assert!(
        plan.lines().any(|l| l.contains("[idle]")
            && l.ends_with("never pulled, pushed 30 days ago, limit 10 days")),
        "{plan}"
    );
    assert!(
        plan.lines().any(|l| l.contains("[frozen]")
            && l.ends_with(
                "it is immutable, so kept (never pulled, pushed 30 days ago, limit 10 days)"
            )),
        "{plan}"
    );
    oras(&["pull", "-o", "again", &format!("{image}:used")]);
    oras(&["pull", "-o", "kept", &format!("{image}:frozen")]);
    assert_eq!(
        std::fs::read_to_string(home.join("again/used.txt")).unwrap(),
        "used"
    );
    let gone = wharf_tests::run(&mut oras_in(
        home,
        &["pull", "-o", "gone", &format!("{image}:idle")],
    ));
    assert!(!gone.status.success(), "the idle image is gone");
}
