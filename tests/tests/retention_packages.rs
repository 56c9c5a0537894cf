//! Retention on package formats, each proved with its real client afterwards: npm versions (a version a dist-tag
//! names is tagged) and PyPI releases, deleted or, where the repository says so, yanked.

use std::collections::BTreeSet;
use std::path::Path;

use wharf_tests::{
    DAY, NOW, agent, npm_as_admin, removed, retention, set_clock, start_with_token_env,
    status_and_text,
};

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
    let removed_versions = |plan: &str| removed(plan, "ret-pkg");
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
