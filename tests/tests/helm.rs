//! The Helm chart repository (the bundled `helm` plugin) with the real helm client and the real helm-push plugin:
//! `helm repo add` with and without a trailing slash and with credentials, `repo update`, `search repo`, `pull`,
//! `template`; uploads through the ChartMuseum API with curl and with `helm cm-push`; the overwrite rules; and bad
//! charts refused with nothing stored.

use std::path::{Path, PathBuf};
use std::process::Command;

use wharf_tests::{Server, curl, sha256_hex, start_with_token_env, tool};

/// helm with its own configuration, cache and plugin directories, and the helm-push plugin registered.
struct Helm {
    home: PathBuf,
}

impl Helm {
    fn new(home: &Path) -> Helm {
        let plugin = home.join("plugins/cm-push");
        std::fs::create_dir_all(&plugin).unwrap();
        std::fs::write(
            plugin.join("plugin.yaml"),
            format!(
                "name: cm-push\nversion: 0.10.4\nusage: push a chart to a ChartMuseum API\n\
                 description: push a chart to a ChartMuseum API\ncommand: {:?}\n",
                tool("helm-cm-push").display().to_string()
            ),
        )
        .unwrap();
        Helm {
            home: home.to_path_buf(),
        }
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(tool("helm"))
            .args(args)
            .current_dir(&self.home)
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_DATA_HOME", self.home.join("data"))
            .env("HELM_PLUGINS", self.home.join("plugins"))
            .output()
            .expect("helm runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "helm {args:?}: {text}");
        text
    }

    /// `helm create` and `helm package` of chart `name` at `version`, with `extra` lines added to its Chart.yaml;
    /// the packaged file.
    fn chart(&self, name: &str, version: &str, extra: &str) -> PathBuf {
        let source = self.home.join(format!("src-{version}"));
        std::fs::create_dir_all(&source).unwrap();
        let dir = source.join(name);
        self.ok(&["create", dir.to_str().unwrap()]);
        let manifest = dir.join("Chart.yaml");
        let yaml = std::fs::read_to_string(&manifest).unwrap();
        let yaml: String = yaml
            .lines()
            .map(|line| match line.starts_with("version:") {
                true => format!("version: {version}\n"),
                false => format!("{line}\n"),
            })
            .collect();
        std::fs::write(&manifest, yaml + extra).unwrap();
        self.ok(&[
            "package",
            dir.to_str().unwrap(),
            "-d",
            self.home.to_str().unwrap(),
        ]);
        self.home.join(format!("{name}-{version}.tgz"))
    }
}

fn start(home: &Path, extra: &str) -> Server {
    let config = home.join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            "{extra}\n[[repository]]\nname = \"charts\"\nformat = \"helm\"\n\n\
             [[repository]]\nname = \"charts-ow\"\nformat = \"helm\"\nallow_overwrite = true\n"
        ),
    )
    .unwrap();
    Server::start(&home.join("wharf"), &["--config", config.to_str().unwrap()])
}

fn upload(server: &Server, repo: &str, user: &str, form: &[&str], query: &str) -> (u16, String) {
    let mut args = vec!["-u", user];
    for field in form {
        args.extend(["-F", field]);
    }
    let url = server.url(&format!("/repository/{repo}/api/charts{query}"));
    args.push(&url);
    curl(&args)
}

#[test]
fn helm_client_and_chartmuseum_api() {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path(), "[auth]\nanonymous_read = false\n");
    let password = server.admin_password.clone().unwrap();
    let user = format!("admin:{password}");
    let helm = Helm::new(&home.path().join("helm"));
    let repo_url = server.url("/repository/charts");

    // Upload with curl through the ChartMuseum API; the same version again is refused, forced or not, because
    // this repository does not allow overwrite.
    let first = helm.chart("demo", "0.1.0", "");
    let chart_field = format!("chart=@{}", first.display());
    let (status, text) = upload(&server, "charts", &user, &[&chart_field], "");
    assert_eq!((status, text.as_str()), (201, r#"{"saved":true}"#));
    for query in ["", "?force"] {
        let (status, text) = upload(&server, "charts", &user, &[&chart_field], query);
        assert_eq!(status, 409, "{text}");
        assert!(
            text.contains("file already exists: demo-0.1.0.tgz"),
            "{text}"
        );
    }
    let (status, _) = upload(&server, "charts", "admin:wrong", &[&chart_field], "");
    assert_eq!(status, 401);

    // With helm-push, given the repository URL and credentials.
    let second = helm.chart("demo", "0.2.0", "");
    let text = helm.ok(&[
        "cm-push",
        second.to_str().unwrap(),
        &repo_url,
        "--username",
        "admin",
        "--password",
        &password,
    ]);
    assert!(text.contains("Done."), "{text}");

    // Without credentials the repository is closed; with them, added with and without a trailing slash.
    let (ok, text) = helm.run(&["repo", "add", "anon", &repo_url]);
    assert!(!ok && text.contains("401"), "{text}");
    let with_slash = format!("{repo_url}/");
    for (name, url) in [("plain", repo_url.as_str()), ("slash", with_slash.as_str())] {
        helm.ok(&[
            "repo",
            "add",
            name,
            url,
            "--username",
            "admin",
            "--password",
            &password,
        ]);
    }
    helm.ok(&["repo", "update"]);
    let text = helm.ok(&["search", "repo", "demo", "--versions"]);
    for repo in ["plain", "slash"] {
        for version in ["0.1.0", "0.2.0"] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{repo}/demo")) && l.contains(version)),
                "{repo}/demo {version} in: {text}"
            );
        }
    }

    // Pull through both: the file the index names by digest (for the curl upload, byte for byte what was sent;
    // helm-push packages its chart again); render the pulled chart.
    for (repo, version) in [("plain", "0.1.0"), ("slash", "0.2.0")] {
        let into = home.path().join(format!("pulled-{repo}"));
        std::fs::create_dir_all(&into).unwrap();
        helm.ok(&[
            "pull",
            &format!("{repo}/demo"),
            "--version",
            version,
            "-d",
            into.to_str().unwrap(),
        ]);
        let pulled = into.join(format!("demo-{version}.tgz"));
        let pulled_digest = sha256_hex(&std::fs::read(&pulled).unwrap());
        let (_, entry) = curl(&[
            "-u",
            &user,
            &format!("{repo_url}/api/charts/demo/{version}"),
        ]);
        let entry: serde_json::Value = serde_json::from_str(&entry).unwrap();
        assert_eq!(entry["digest"], pulled_digest.as_str());
        if version == "0.1.0" {
            assert_eq!(pulled_digest, sha256_hex(&std::fs::read(&first).unwrap()));
        }
        let rendered = helm.ok(&["template", "release", pulled.to_str().unwrap()]);
        assert!(
            rendered.contains("kind: Deployment") && rendered.contains("release-demo"),
            "{rendered}"
        );
    }

    // The index: apiVersion v1, relative URLs, the sha256 of each file.
    let (status, index) = curl(&["-u", &user, &format!("{repo_url}/index.yaml")]);
    assert_eq!(status, 200);
    assert!(index.starts_with("apiVersion: v1\n"), "{index}");
    assert!(index.contains("- charts/demo-0.1.0.tgz"), "{index}");
    let digest = sha256_hex(&std::fs::read(&first).unwrap());
    assert!(index.contains(&format!("digest: {digest}")), "{index}");

    // The rest of the ChartMuseum API.
    let api = |path: &str| curl(&["-u", &user, &format!("{repo_url}/api/charts{path}")]);
    let (status, text) = api("");
    assert_eq!(status, 200);
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(all["demo"].as_array().unwrap().len(), 2, "{text}");
    assert_eq!(all["demo"][0]["version"], "0.2.0", "newest first: {text}");
    let (status, text) = api("/demo/latest");
    assert_eq!(status, 200);
    assert!(text.contains(r#""version":"0.2.0""#), "{text}");
    let (status, text) = api("/demo/9.9.9");
    assert_eq!((status, text.contains("not found")), (404, true), "{text}");
    let (status, _) = curl(&["-u", &user, "-I", &format!("{repo_url}/api/charts/demo")]);
    assert_eq!(status, 200);

    // A provenance file rides along and is served beside the chart; one that is not a signature is refused.
    let third = helm.chart("demo", "0.3.0", "");
    let prov = home.path().join("demo-0.3.0.tgz.prov");
    std::fs::write(
        &prov,
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nname: demo\n",
    )
    .unwrap();
    let third_field = format!("chart=@{}", third.display());
    let junk = home.path().join("junk.prov");
    std::fs::write(&junk, "not a signature").unwrap();
    let (status, text) = upload(
        &server,
        "charts",
        &user,
        &[&third_field, &format!("prov=@{}", junk.display())],
        "",
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not a PGP clear-signed message"), "{text}");
    let (status, _) = upload(
        &server,
        "charts",
        &user,
        &[&third_field, &format!("prov=@{}", prov.display())],
        "",
    );
    assert_eq!(status, 201);
    let (status, text) = curl(&[
        "-u",
        &user,
        &format!("{repo_url}/charts/demo-0.3.0.tgz.prov"),
    ]);
    assert_eq!(status, 200);
    assert_eq!(text, std::fs::read_to_string(&prov).unwrap());

    // Delete one version: gone from the API, the index helm reads and the file.
    let (status, text) = curl(&[
        "-u",
        &user,
        "-X",
        "DELETE",
        &format!("{repo_url}/api/charts/demo/0.1.0"),
    ]);
    assert_eq!((status, text.as_str()), (200, r#"{"deleted":true}"#));
    helm.ok(&["repo", "update"]);
    let text = helm.ok(&["search", "repo", "plain/demo", "--versions"]);
    assert!(!text.contains("0.1.0") && text.contains("0.2.0"), "{text}");
    let (status, _) = curl(&["-u", &user, &format!("{repo_url}/charts/demo-0.1.0.tgz")]);
    assert_eq!(status, 404);

    // A repository that allows overwrite: refused without ?force, replaced with it (curl and helm-push).
    let (status, _) = upload(&server, "charts-ow", &user, &[&chart_field], "");
    assert_eq!(status, 201);
    let changed = {
        let dir = home.path().join("changed");
        std::fs::create_dir_all(&dir).unwrap();
        let helm = Helm::new(&dir);
        helm.chart("demo", "0.1.0", "keywords: [changed]\n")
    };
    let changed_field = format!("chart=@{}", changed.display());
    let (status, text) = upload(&server, "charts-ow", &user, &[&changed_field], "");
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("add ?force to replace it"), "{text}");
    let (status, _) = upload(&server, "charts-ow", &user, &[&changed_field], "?force");
    assert_eq!(status, 201);
    let ow_url = server.url("/repository/charts-ow");
    let (_, index) = curl(&["-u", &user, &format!("{ow_url}/index.yaml")]);
    let changed_digest = sha256_hex(&std::fs::read(&changed).unwrap());
    assert_ne!(changed_digest, digest);
    assert!(index.contains(&changed_digest), "{index}");
    let push = |force: bool| {
        let mut args = vec![
            "cm-push",
            first.to_str().unwrap(),
            &ow_url,
            "--username",
            "admin",
            "--password",
            &password,
        ];
        if force {
            args.push("--force");
        }
        helm.run(&args)
    };
    let (ok, text) = push(false);
    assert!(!ok && text.contains("409"), "{text}");
    let (ok, text) = push(true);
    assert!(ok, "{text}");
    // helm-push packages the chart again, so the digest is new; the keyword of the replaced chart is gone.
    let (_, index) = curl(&["-u", &user, &format!("{ow_url}/index.yaml")]);
    assert!(
        !index.contains(&changed_digest) && !index.contains("changed"),
        "{index}"
    );
}

/// Builds a tar.gz with the tar CLI from (path, contents) members, in that order.
fn tar_gz(dir: &Path, name: &str, members: &[(&str, &[u8])]) -> PathBuf {
    let root = dir.join(format!("{name}-src"));
    for (path, contents) in members {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, contents).unwrap();
    }
    let out = dir.join(name);
    let status = Command::new(tool("tar"))
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&root)
        .args(members.iter().map(|(path, _)| path))
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn bad_charts_are_refused_and_store_nothing() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let server = start(dir, "");
    let user = format!("admin:{}", server.admin_password.as_deref().unwrap());
    let good_yaml: &[u8] = b"apiVersion: v2\nname: demo\nversion: 1.0.0\n";

    let not_gzip = dir.join("not-gzip.tgz");
    std::fs::write(&not_gzip, "this is not a chart").unwrap();
    let no_chart_yaml = tar_gz(dir, "no-chart.tgz", &[("demo/values.yaml", b"a: 1\n")]);
    let bad_version = tar_gz(
        dir,
        "bad-version.tgz",
        &[(
            "demo/Chart.yaml",
            b"apiVersion: v2\nname: demo\nversion: banana\n",
        )],
    );
    let not_yaml = tar_gz(dir, "not-yaml.tgz", &[("demo/Chart.yaml", b"{{{: [\n")]);
    let traversal = tar_gz(
        dir,
        "traversal.tgz",
        &[(
            "demo/Chart.yaml",
            b"apiVersion: v2\nname: ../../evil\nversion: 1.0.0\n",
        )],
    );
    // 200 MiB of zeros in front of Chart.yaml: about 200 KiB of gzip, over the 100 MiB a chart may inflate to.
    let zeros = vec![0u8; 200 << 20];
    let bomb = tar_gz(
        dir,
        "bomb.tgz",
        &[("demo/zeros", &zeros), ("demo/Chart.yaml", good_yaml)],
    );
    drop(zeros);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 2 << 20);

    for (file, status, message) in [
        (&not_gzip, 400, "cannot be read as a gzipped tar"),
        (&no_chart_yaml, 400, "no Chart.yaml in its top directory"),
        (
            &bad_version,
            400,
            "version `banana` is not a semantic version",
        ),
        (&not_yaml, 400, "Chart.yaml is not valid YAML"),
        (&traversal, 400, "chart name `../../evil` is invalid"),
        (&bomb, 400, "unpacks to more than 104857600 bytes"),
    ] {
        let field = format!("chart=@{}", file.display());
        let (got, text) = upload(&server, "charts", &user, &[&field], "");
        assert_eq!(got, status, "{}: {text}", file.display());
        let error: serde_json::Value = serde_json::from_str(&text).unwrap();
        let error = error["error"].as_str().unwrap();
        assert!(error.contains(message), "{}: {error}", file.display());
    }
    let (status, text) = upload(&server, "charts", &user, &["prov=@/dev/null"], "");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("no `chart` file"), "{text}");

    // Traversal in request paths.
    for path in [
        "charts/..%2f..%2fwharf.toml",
        "api/charts/..%2fx",
        "charts/%2e%2e/x",
    ] {
        let (status, text) = curl(&[&server.url(&format!("/repository/charts/{path}"))]);
        assert_eq!(status, 400, "{path}: {text}");
    }

    // Nothing was stored, and the server still serves: a good chart, sent under a hostile file name, is stored
    // under the name its Chart.yaml gives.
    let (_, text) = curl(&[&server.url("/repository/charts/api/charts")]);
    assert_eq!(text, "{}");
    let good = tar_gz(dir, "good.tgz", &[("demo/Chart.yaml", good_yaml)]);
    let field = format!("chart=@{};filename=../../evil.tgz", good.display());
    let (status, text) = upload(&server, "charts", &user, &[&field], "");
    assert_eq!(status, 201, "{text}");
    let (_, index) = curl(&[&server.url("/repository/charts/index.yaml")]);
    assert!(index.contains("- charts/demo-1.0.0.tgz"), "{index}");
    assert!(!index.contains("evil"), "{index}");
    let (status, _) = curl(&[&server.url("/repository/charts/charts/demo-1.0.0.tgz")]);
    assert_eq!(status, 200);
}

/// Retention on chart versions, proved with helm: the newest two kept, the rest gone from the index and the files.
#[test]
fn retention_expires_chart_versions() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let clock = dir.join("clock");
    std::fs::write(&clock, "1900000000").unwrap();
    let config =
        "[storage]\ngc_interval = \"0s\"\n\n[[repository]]\nname = \"charts\"\nformat = \"helm\"\n";
    let (server, password, token) =
        start_with_token_env(dir, config, &[("WHARF_CLOCK_FILE", &clock)]);
    let user = format!("admin:{password}");
    for (i, version) in ["0.1.0", "0.2.0", "0.3.0", "0.4.0"].iter().enumerate() {
        let yaml = format!("apiVersion: v2\nname: demo\nversion: {version}\n");
        let chart = tar_gz(
            dir,
            &format!("demo-{version}.tgz"),
            &[("demo/Chart.yaml", yaml.as_bytes())],
        );
        std::fs::write(&clock, (1_900_000_000 + i as u64 * 86_400).to_string()).unwrap();
        let (status, text) = upload(
            &server,
            "charts",
            &user,
            &[&format!("chart=@{}", chart.display())],
            "",
        );
        assert_eq!(status, 201, "{text}");
    }
    let plan = wharf_tests::retain(dir, &server, &token, "charts", &wharf_tests::keep_newest(2));
    assert!(plan.trim_end().ends_with("removed 2, kept 2"), "{plan}");

    let helm = Helm::new(&dir.join("helm"));
    helm.ok(&["repo", "add", "wharf", &server.url("/repository/charts")]);
    let found = helm.ok(&["search", "repo", "wharf/demo", "--versions"]);
    assert!(
        found.contains("0.4.0") && found.contains("0.3.0"),
        "{found}"
    );
    assert!(
        !found.contains("0.2.0") && !found.contains("0.1.0"),
        "{found}"
    );
    let (status, _) = curl(&[&server.url("/repository/charts/charts/demo-0.1.0.tgz")]);
    assert_eq!(status, 404);
}
