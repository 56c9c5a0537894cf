//! The npm registry driven by the real npm client (publish, install, dist-tags, deprecate, unpublish, login, whoami,
//! logout, search, view, audit), by pnpm and yarn, and by hand-made bad publishes that must store nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use wharf_tests::{Server, agent, basic, tool};

/// npm with a private user config and an empty cache, so nothing leaks between tests or from the machine.
struct Npm {
    home: PathBuf,
    registry: String,
}

impl Npm {
    fn new(home: &Path, server: &Server) -> Npm {
        std::fs::create_dir_all(home).unwrap();
        let registry = server.url("/repository/npm/");
        std::fs::write(home.join(".npmrc"), format!("registry={registry}\n")).unwrap();
        Npm {
            home: home.to_path_buf(),
            registry,
        }
    }

    fn command(&self, program: &str, dir: &Path) -> Command {
        let mut command = Command::new(tool(program));
        command
            .current_dir(dir)
            .env("HOME", &self.home)
            .env("npm_config_userconfig", self.home.join(".npmrc"))
            .env("npm_config_cache", self.home.join("cache"))
            .env("npm_config_update_notifier", "false")
            .env("npm_config_fund", "false")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        self.command("npm", dir).args(args).output().unwrap()
    }

    fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run(dir, args);
        assert!(
            out.status.success(),
            "npm {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `npm login` on a pseudo-terminal: npm reads a password only from a terminal.
    fn login(&self, user: &str, password: &str) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/npm-login.py");
        let mut command = self.command("python3", &self.home);
        command
            .arg(script)
            .args([user, password, "--"])
            .arg(tool("npm"))
            .args(["login", "--registry", &self.registry]);
        command.output().unwrap()
    }
}

fn package(dir: &Path, json: &str, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("package.json"), json).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir.to_path_buf()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn npm_publish_install_tags_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let password = server.admin_password.clone().unwrap();
    let npm = Npm::new(&dir.path().join("home"), &server);
    let work = dir.path().join("work");

    // Login through the classic flow (the web login answers 404), whoami.
    let login = npm.login("admin", &password);
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stdout)
    );
    assert_eq!(npm.ok(dir.path(), &["whoami"]).trim(), "admin");

    // Publish unscoped, scoped, and a beta under --tag.
    let dep = package(
        &work.join("dep"),
        r#"{"name":"wharf-dep","version":"1.2.0","description":"a dependency for tests","keywords":["wharf","fixture"],"main":"index.js","bin":"./cli.js"}"#,
        &[
            ("index.js", "module.exports = 42;\n"),
            ("cli.js", "#!/usr/bin/env node\nconsole.log(42);\n"),
        ],
    );
    npm.ok(&dep, &["publish"]);
    let util = package(
        &work.join("util"),
        r#"{"name":"@acme/util","version":"0.1.0","main":"index.js"}"#,
        &[("index.js", "module.exports = 1;\n")],
    );
    npm.ok(&util, &["publish"]);
    let again = npm.run(&util, &["publish"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again)
            .contains("You cannot publish over the previously published versions: 0.1.0."),
        "{}",
        stderr(&again)
    );
    let beta = package(
        &work.join("dep-beta"),
        r#"{"name":"wharf-dep","version":"1.3.0-beta.1","main":"index.js"}"#,
        &[("index.js", "module.exports = 43;\n")],
    );
    npm.ok(&beta, &["publish", "--tag", "beta"]);
    let app = package(
        &work.join("app"),
        r#"{"name":"wharf-app","version":"1.0.0","dependencies":{"wharf-dep":"^1.1.0","@acme/util":"~0.1.0"}}"#,
        &[("index.js", "module.exports = require('wharf-dep');\n")],
    );
    npm.ok(&app, &["publish"]);

    // Install with an empty cache: the range resolves to 1.2.0 (latest), not the beta.
    let consumer = package(
        &work.join("consumer"),
        r#"{"name":"consumer","version":"1.0.0"}"#,
        &[],
    );
    npm.ok(&consumer, &["install", "wharf-app"]);
    let installed: serde_json::Value = serde_json::from_slice(
        &std::fs::read(consumer.join("node_modules/wharf-dep/package.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(installed["version"], "1.2.0");
    assert!(consumer.join("node_modules/@acme/util/index.js").is_file());
    assert!(
        consumer.join("node_modules/.bin/wharf-dep").exists(),
        "bin linked"
    );

    // dist-tags: add, ls, rm.
    npm.ok(
        &work,
        &["dist-tag", "add", "wharf-dep@1.3.0-beta.1", "next"],
    );
    let tags = npm.ok(&work, &["dist-tag", "ls", "wharf-dep"]);
    assert!(
        tags.contains("next: 1.3.0-beta.1")
            && tags.contains("latest: 1.2.0")
            && tags.contains("beta: 1.3.0-beta.1"),
        "{tags}"
    );
    npm.ok(&work, &["dist-tag", "rm", "wharf-dep", "next"]);
    assert!(
        !npm.ok(&work, &["dist-tag", "ls", "wharf-dep"])
            .contains("next")
    );

    // deprecate, view, search.
    npm.ok(&work, &["deprecate", "wharf-dep@1.2.0", "use 2.x"]);
    assert_eq!(
        npm.ok(&work, &["view", "wharf-dep@1.2.0", "deprecated"])
            .trim(),
        "use 2.x"
    );
    let view = npm.ok(&work, &["view", "wharf-dep", "--json"]);
    let view: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!(
        view["versions"],
        serde_json::json!(["1.2.0", "1.3.0-beta.1"])
    );
    assert_eq!(view["description"], "a dependency for tests");
    let found = npm.ok(&work, &["search", "fixture", "--json"]);
    let found: serde_json::Value = serde_json::from_str(&found).unwrap();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["name"], "wharf-dep");

    // pnpm and yarn install the same package.
    for (program, args) in [
        (
            "pnpm",
            vec!["add", "wharf-app", "--store-dir", "../pnpm-store"],
        ),
        (
            "yarn",
            vec!["add", "wharf-app", "--cache-folder", "../yarn-cache"],
        ),
    ] {
        let project = package(
            &work.join(program),
            r#"{"name":"p","version":"1.0.0"}"#,
            &[],
        );
        let out = npm
            .command(program, &project)
            .args(&args)
            .args(["--registry", &npm.registry])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        // pnpm puts a dependency beside its dependent in its store (behind a symlink); yarn hoists it.
        let beside = project
            .join("node_modules/wharf-app")
            .canonicalize()
            .unwrap()
            .with_file_name("wharf-dep");
        let flat = project.join("node_modules/wharf-dep");
        let found = if beside.exists() { beside } else { flat };
        let dep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(found.join("package.json")).unwrap()).unwrap();
        assert_eq!(dep["version"], "1.2.0", "{program}");
    }

    // npm audit says plainly that it is not supported.
    let audit = npm.run(&consumer, &["audit"]);
    assert!(!audit.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&audit.stdout),
        stderr(&audit)
    );
    assert!(said.contains("not supported by this registry"), "{said}");

    // Unpublish one version, then a whole package; its version numbers stay used.
    npm.ok(&work, &["unpublish", "wharf-dep@1.3.0-beta.1"]);
    let left: serde_json::Value =
        serde_json::from_str(&npm.ok(&work, &["view", "wharf-dep", "versions", "--json"])).unwrap();
    assert!(
        left == serde_json::json!("1.2.0") || left == serde_json::json!(["1.2.0"]),
        "{left}"
    );
    npm.ok(&work, &["unpublish", "wharf-app", "--force"]);
    assert!(!npm.run(&work, &["view", "wharf-app"]).status.success());
    let republish = npm.run(&app, &["publish"]);
    assert!(
        stderr(&republish).contains("cannot publish over the previously published versions"),
        "{}",
        stderr(&republish)
    );

    // Logout revokes the token.
    npm.ok(&work, &["logout"]);
    assert!(!npm.run(&work, &["whoami"]).status.success());
}

/// A publish document for `name@version` around `tarball`, with correct checksums unless changed afterwards.
fn publish_doc(name: &str, version: &str, tarball: &[u8]) -> serde_json::Value {
    use sha1::Digest as _;
    let sha1 = hex::encode(sha1::Sha1::digest(tarball));
    let sha512 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(tarball));
    serde_json::json!({
        "_id": name,
        "name": name,
        "dist-tags": { "latest": version },
        "versions": { version: {
            "name": name,
            "version": version,
            "dependencies": { "left-pad": "^1.0.0" },
            "dist": { "shasum": sha1, "integrity": format!("sha512-{sha512}") },
        }},
        "_attachments": { format!("{name}-{version}.tgz"): {
            "content_type": "application/octet-stream",
            "data": base64::engine::general_purpose::STANDARD.encode(tarball),
            "length": tarball.len(),
        }},
    })
}

/// A gzipped tar holding `package/package.json`.
fn tarball(package_json: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(package_json.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "package/package.json", package_json.as_bytes())
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn bad_publishes_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let auth = basic("admin", server.admin_password.as_deref().unwrap());
    let good_json = r#"{"name":"bad-case","version":"1.0.0","dependencies":{"left-pad":"^1.0.0"}}"#;
    let good = tarball(good_json);
    let put = |name: &str, body: Vec<u8>| {
        let mut response = agent()
            .put(&server.url(&format!("/repository/npm/{}", name.replace('/', "%2f"))))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .send(&body[..])
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, text)
    };
    let blobs = || {
        let text = agent()
            .get(&server.url("/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("wharf_blobs "))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let before = blobs();
    let doc = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut d = publish_doc("bad-case", "1.0.0", &good);
        f(&mut d);
        serde_json::to_vec(&d).unwrap()
    };
    let other_json =
        tarball(r#"{"name":"bad-case","version":"1.0.0","dependencies":{"evil":"*"}}"#);
    let long_name = "a".repeat(215);
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            "bad-case",
            b"{not json".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "no attachment",
            "bad-case",
            doc(&|d| d["_attachments"] = serde_json::json!({})),
            400,
            "no attachment",
        ),
        (
            "attachment not base64",
            "bad-case",
            doc(&|d| d["_attachments"]["bad-case-1.0.0.tgz"]["data"] = "%%%not base64%%%".into()),
            400,
            "not base64",
        ),
        (
            "shasum mismatch",
            "bad-case",
            doc(&|d| d["versions"]["1.0.0"]["dist"]["shasum"] = "0".repeat(40).into()),
            400,
            "shasum mismatch",
        ),
        (
            "integrity mismatch",
            "bad-case",
            doc(&|d| d["versions"]["1.0.0"]["dist"]["integrity"] = "sha512-AAAA".into()),
            400,
            "integrity mismatch",
        ),
        (
            "document disagrees with package.json",
            "bad-case",
            serde_json::to_vec(&{
                let mut d = publish_doc("bad-case", "1.0.0", &other_json);
                d["versions"]["1.0.0"]["dependencies"] =
                    serde_json::json!({ "left-pad": "^1.0.0" });
                d
            })
            .unwrap(),
            400,
            "differs from the tarball's package.json",
        ),
        (
            "upper case name",
            "Bad-Case",
            doc(&|_| {}),
            400,
            "invalid package name",
        ),
        (
            "dot dot",
            "%2e%2e",
            doc(&|_| {}),
            400,
            "invalid package name",
        ),
        (
            "leading dot",
            ".hidden",
            doc(&|_| {}),
            400,
            "invalid package name",
        ),
        (
            "leading underscore",
            "_under",
            doc(&|_| {}),
            400,
            "invalid package name",
        ),
        (
            "too long",
            &long_name,
            doc(&|_| {}),
            400,
            "invalid package name",
        ),
        (
            "not semver",
            "bad-case",
            serde_json::to_vec(&publish_doc(
                "bad-case",
                "1.0",
                &tarball(r#"{"name":"bad-case","version":"1.0"}"#),
            ))
            .unwrap(),
            400,
            "not semver",
        ),
        (
            "over the limit",
            "bad-case",
            vec![b' '; 16 * 1024 * 1024 + 1],
            413,
            "larger than the limit",
        ),
    ];
    for (what, name, body, status, message) in cases {
        let (got, text) = put(name, body);
        assert_eq!(got, status, "{what}: {text}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(
            error["error"].as_str().is_some_and(|e| e.contains(message)),
            "{what}: {text}"
        );
    }
    assert_eq!(blobs(), before, "no blob stored");
    let mut missing = agent()
        .get(&server.url("/repository/npm/bad-case"))
        .call()
        .unwrap();
    assert_eq!(
        missing.status(),
        404,
        "{}",
        missing.body_mut().read_to_string().unwrap()
    );
    // The good document goes in.
    let (status, text) = put("bad-case", doc(&|_| {}));
    assert_eq!(status, 201, "{text}");
}
