//! Retention with an ECR lifecycle policy imported verbatim: 15 `v*` tags, 3 other tags and untagged manifests of
//! several ages (push times set through the test clock, `WHARF_CLOCK_FILE`). The dry run lists exactly what ECR's
//! documented rules remove and changes nothing; the real run removes exactly that; docker pulls what was kept.

use std::collections::BTreeSet;
use std::path::Path;

use wharf_tests::{
    Engine, Server, agent, basic, npm_as_admin, ok, sha256_hex, start_with_token_env,
    status_and_text, wharf,
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

const DAY: u64 = 86_400;
const NOW: u64 = 1_900_000_000;

fn set_clock(clock: &Path, at: u64) {
    std::fs::write(clock, at.to_string()).unwrap();
}

fn retention(server: &Server, token: &str, args: &[&str]) -> String {
    ok(wharf()
        .arg("retention")
        .args(args)
        .args(["--server", &server.url(""), "--token", token]))
}

/// The versions a plan's `remove` lines name.
fn removed(plan: &str) -> BTreeSet<String> {
    plan.lines()
        .filter(|l| l.starts_with("remove  "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|r| r.trim_start_matches("app@").to_string())
        .collect()
}

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
    assert_eq!(removed(&dry), expected, "{dry}");
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

#[test]
fn npm_versions_expire_and_npm_installs_what_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    set_clock(&clock, NOW - 40 * DAY);
    let config =
        "[storage]\ngc_interval = \"0s\"\n\n[[repository]]\nname = \"npm\"\nformat = \"npm\"\n";
    let (server, password, token) =
        start_with_token_env(dir.path(), config, &[("WHARF_CLOCK_FILE", &clock)]);
    let registry = server.url("/repository/npm/");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let npm = |dir: &Path, args: &[&str]| {
        let out = npm_as_admin(&home, &registry, &password, dir, args);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    for i in 0..5u64 {
        let package = dir.path().join(format!("pkg-{i}"));
        std::fs::create_dir_all(&package).unwrap();
        std::fs::write(
            package.join("package.json"),
            format!(r#"{{"name":"ret-pkg","version":"1.0.{i}"}}"#),
        )
        .unwrap();
        set_clock(&clock, NOW - (10 - i) * DAY);
        let (done, said) = npm(&package, &["publish"]);
        assert!(done, "{said}");
    }
    set_clock(&clock, NOW);
    let here = dir.path();
    for args in [
        ["dist-tag", "add", "ret-pkg@1.0.1", "stable"],
        ["dist-tag", "add", "ret-pkg@1.0.0", "latest"],
    ] {
        let (done, said) = npm(here, &args);
        assert!(done, "{said}");
    }

    // Keep the newest two of any version: 1.0.2 and 1.0.1 (and its dist-tag) go; 1.0.0 stays because `latest`
    // names it.
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2}, "action": {"type": "expire"}}]}"#,
    )
    .unwrap();
    retention(
        &server,
        &token,
        &[
            "import",
            "--ecr",
            policy.to_str().unwrap(),
            "--repository",
            "npm",
        ],
    );
    let dry = retention(
        &server,
        &token,
        &["run", "--repository", "npm", "--dry-run"],
    );
    let removed_versions = |plan: &str| -> BTreeSet<String> {
        removed(plan)
            .into_iter()
            .map(|r| r.trim_start_matches("ret-pkg@").to_string())
            .collect()
    };
    assert_eq!(
        removed_versions(&dry),
        BTreeSet::from(["1.0.1".into(), "1.0.2".into()]),
        "{dry}"
    );
    assert!(
        dry.lines().any(|l| l.starts_with("keep")
            && l.contains("ret-pkg@1.0.0")
            && l.contains("the latest dist-tag points at it, so kept")),
        "{dry}"
    );
    let real = retention(&server, &token, &["run", "--repository", "npm"]);
    assert_eq!(removed_versions(&real), removed_versions(&dry));

    // What npm reads afterwards: the kept versions install, the removed ones are gone, and so is their dist-tag.
    let (_, versions) = npm(here, &["view", "ret-pkg", "versions", "--json"]);
    let versions: serde_json::Value = serde_json::from_str(versions.trim()).unwrap();
    assert_eq!(versions, serde_json::json!(["1.0.0", "1.0.3", "1.0.4"]));
    let (_, tags) = npm(here, &["dist-tag", "ls", "ret-pkg"]);
    assert!(!tags.contains("stable"), "{tags}");
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("package.json"),
        r#"{"name":"p","version":"1.0.0"}"#,
    )
    .unwrap();
    let (done, said) = npm(&project, &["install", "ret-pkg@1.0.3"]);
    assert!(done, "{said}");
    let (done, said) = npm(&project, &["install", "ret-pkg@1.0.1"]);
    assert!(!done, "{said}");
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
            "[[repository.retention]] of `docker`: rule 1 needs keep_last or expire_after_days"
        ),
        "{said}"
    );
}

/// Retention on PyPI releases, proved with pip: a repository that deletes loses every file of an expired release,
/// its metadata and its page entry; one with `retention_action = "yank"` yanks it, so pip skips it unless it is
/// pinned.
#[test]
fn pypi_releases_are_deleted_or_yanked() {
    use wharf_tests::python::{build, failed, ok as done, pip, twine, venv};
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let clock = home.join("clock");
    set_clock(&clock, NOW);
    let config = "[storage]\ngc_interval = \"0s\"\n\n\
                  [[repository]]\nname = \"pypi\"\nformat = \"pypi\"\n\n\
                  [[repository]]\nname = \"pypi-yank\"\nformat = \"pypi\"\nretention_action = \"yank\"\n";
    let (server, password, token) =
        start_with_token_env(home, config, &[("WHARF_CLOCK_FILE", &clock)]);
    let releases: Vec<(&str, Vec<std::path::PathBuf>)> = ["1.0.0", "1.1.0", "1.2.0"]
        .into_iter()
        .map(|version| (version, build(home, "Ret_Proj", version, &[])))
        .collect();
    for (repo, yanks) in [("pypi", false), ("pypi-yank", true)] {
        for (day, (_, files)) in releases.iter().enumerate() {
            set_clock(&clock, NOW + day as u64 * DAY);
            done(&wharf_tests::run(
                twine("twine", home, &server, repo, "admin", &password, &[]).args(files),
            ));
        }
        let plan = wharf_tests::retain(home, &server, &token, repo, &wharf_tests::keep_newest(1));
        let summary = if yanks {
            "yanked 2, kept 1"
        } else {
            "removed 2, kept 1"
        };
        assert!(plan.trim_end().ends_with(summary), "{plan}");

        let (status, page) = status_and_text(
            agent()
                .get(&server.url(&format!("/repository/{repo}/simple/ret-proj/")))
                .call()
                .unwrap(),
        );
        assert_eq!(status, 200);
        assert!(page.contains("ret_proj-1.2.0"), "{page}");
        assert_eq!(page.contains("ret_proj-1.0.0"), yanks, "{page}");
        assert_eq!(
            page.matches("data-yanked").count(),
            if yanks { 4 } else { 0 },
            "{page}"
        );

        let target = venv(home, &format!("env-{repo}"));
        let got = done(&pip(home, &target, &server, repo, &["install", "ret-proj"]));
        assert!(
            got.contains("ret-proj-1.2.0") || got.contains("ret_proj-1.2.0"),
            "{got}"
        );
        let pinned = pip(
            home,
            &target,
            &server,
            repo,
            &["install", "ret-proj==1.0.0"],
        );
        if yanks {
            let said = done(&pinned);
            assert!(said.contains("yanked"), "pip warns of the yank: {said}");
        } else {
            let said = failed(&pinned);
            assert!(said.contains("No matching distribution"), "{said}");
        }
        let file = format!("/repository/{repo}/packages/ret-proj/ret_proj-1.0.0.tar.gz");
        let (status, _) = status_and_text(agent().get(&server.url(&file)).call().unwrap());
        assert_eq!(status, if yanks { 200 } else { 404 }, "{file}");
    }
}
