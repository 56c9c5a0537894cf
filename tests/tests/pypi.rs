//! The Python index driven by the real clients: projects built with `python -m build`, uploaded with twine (password
//! and `__token__`), installed with pip and uv into fresh virtual environments, yanked with `wharf yank`; and
//! hand-made bad uploads that must be refused in twine's terms and store nothing.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

use wharf_tests::python::{build, failed, isolate, ok, pip, twine, venv};
use wharf_tests::{Server, agent, basic, run, sha256_hex, status_and_text, tool, wharf};

fn get(server: &Server, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut request = agent().get(&server.url(path));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let mut response = request.call().unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (response.status().as_u16(), content_type, body)
}

/// An API token for the admin, from the npm login route (tokens are the same for every format).
fn token(server: &Server) -> String {
    let password = server.admin_password.as_deref().unwrap();
    let mut response = agent()
        .put(&server.url("/repository/npm/-/user/org.couchdb.user:admin"))
        .header("content-type", "application/json")
        .send(format!(r#"{{"name":"admin","password":"{password}"}}"#))
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    body["token"].as_str().unwrap().to_string()
}

#[test]
fn twine_uploads_and_pip_and_uv_install() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = Server::start(&home.join("data"), &[]);
    let password = server.admin_password.clone().unwrap();
    let token = token(&server);

    let base = build(home, "Foo_Bar", "1.0.0", &[]);
    let newer = build(home, "Foo_Bar", "1.1.0", &[]);
    let app = build(home, "wharf-app", "1.0", &["foo.bar>=1.0"]);

    // A user with a password; then the same files with --skip-existing, twice; without it, refused.
    let paths = |files: &[PathBuf]| -> Vec<String> {
        files.iter().map(|f| f.display().to_string()).collect()
    };
    let base_args = paths(&base);
    let base_args: Vec<&str> = base_args.iter().map(String::as_str).collect();
    ok(&run(&mut twine(
        "twine", home, &server, "pypi", "admin", &password, &base_args,
    )));
    for _ in 0..2 {
        let mut args = vec!["--skip-existing"];
        args.extend(&base_args);
        let text = ok(&run(&mut twine(
            "twine-6.1",
            home,
            &server,
            "pypi",
            "admin",
            &password,
            &args,
        )));
        assert!(text.contains("Skipping"), "{text}");
    }
    let text = failed(&run(&mut twine(
        "twine",
        home,
        &server,
        "pypi",
        "admin",
        &password,
        &base_args[..1],
    )));
    assert!(text.contains("File already exists"), "{text}");
    // `__token__` with an API token.
    for files in [&newer, &app] {
        let args = paths(files);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&run(&mut twine(
            "twine",
            home,
            &server,
            "pypi",
            "__token__",
            &token,
            &args,
        )));
    }
    let text = failed(&run(&mut twine(
        "twine",
        home,
        &server,
        "pypi",
        "__token__",
        "wharf_nope",
        &base_args,
    )));
    assert!(text.contains("403") || text.contains("401"), "{text}");

    // One project, whatever the spelling; HTML by default, JSON when pip asks for it.
    let (status, content_type, html) = get(&server, "/repository/pypi/simple/foo-bar/", None);
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    for spelling in ["Foo_Bar", "foo.bar", "FOO-bar"] {
        let (_, _, other) = get(
            &server,
            &format!("/repository/pypi/simple/{spelling}/"),
            None,
        );
        assert_eq!(other, html, "{spelling}");
    }
    let wheel_name = "foo_bar-1.0.0-py3-none-any.whl";
    let wheel = std::fs::read(base.iter().find(|f| f.ends_with(wheel_name)).unwrap()).unwrap();
    assert!(
        html.contains(&format!("{wheel_name}#sha256={}", sha256_hex(&wheel))),
        "{html}"
    );
    assert!(html.contains("data-requires-python=\"&gt;=3.8\""), "{html}");
    let pip_accept = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
    let (_, content_type, json) = get(
        &server,
        "/repository/pypi/simple/foo-bar/",
        Some(pip_accept),
    );
    assert_eq!(content_type, "application/vnd.pypi.simple.v1+json");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["name"], "foo-bar");
    assert_eq!(json["versions"], serde_json::json!(["1.0.0", "1.1.0"]));
    let file = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["filename"] == wheel_name)
        .unwrap();
    assert_eq!(file["size"], wheel.len());
    assert_eq!(file["requires-python"], ">=3.8");
    // The core metadata is the wheel's own METADATA, with the hash the page gives.
    let (status, _, metadata) = get(
        &server,
        &format!("/repository/pypi/packages/foo-bar/{wheel_name}.metadata"),
        None,
    );
    assert_eq!(status, 200);
    assert!(
        metadata.contains("Name: Foo_Bar") || metadata.contains("Name: foo_bar"),
        "{metadata}"
    );
    assert_eq!(
        file["core-metadata"]["sha256"],
        sha256_hex(metadata.as_bytes())
    );
    let (_, _, index) = get(&server, "/repository/pypi/simple/", None);
    assert!(
        index.contains("href=\"foo-bar/\"") && index.contains("href=\"wharf-app/\""),
        "{index}"
    );
    let (_, _, api) = get(&server, "/repository/pypi/pypi/Foo_Bar/json", None);
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["info"]["version"], "1.1.0");
    assert_eq!(api["releases"]["1.0.0"].as_array().unwrap().len(), 2);
    assert!(api.get("vulnerabilities").is_none());

    // pip into a fresh environment, no cache: the app and its dependency, spelled differently, from this index.
    let target = venv(home, "pip-env");
    ok(&pip(
        home,
        &target,
        &server,
        "pypi",
        &["install", "wharf-app"],
    ));
    let imported = ok(&run(Command::new(&target).args([
        "-c",
        "import foo_bar, wharf_app; print(foo_bar.VERSION, wharf_app.VERSION)",
    ])));
    assert_eq!(imported.trim(), "1.1.0 1.0");
    let target = venv(home, "pip-env-2");
    ok(&pip(
        home,
        &target,
        &server,
        "pypi",
        &["install", "Foo_Bar==1.0.0"],
    ));

    // Yanked: `==` still gets it, a range skips it. Then un-yanked through the API.
    let yank = wharf()
        .args([
            "yank",
            "pypi",
            "foo-bar",
            "1.1.0",
            "--reason",
            "broken build",
            "--server",
        ])
        .arg(server.url(""))
        .env("WHARF_TOKEN", &token)
        .output()
        .unwrap();
    ok(&yank);
    let (_, _, html) = get(&server, "/repository/pypi/simple/foo-bar/", None);
    assert!(html.contains("data-yanked=\"broken build\""), "{html}");
    let download = |dir: &str, requirement: &str| -> PathBuf {
        let out = home.join(dir);
        let args = [
            "download",
            "--no-deps",
            "-d",
            out.to_str().unwrap(),
            requirement,
        ];
        ok(&pip(home, &target, &server, "pypi", &args));
        out
    };
    let out = download("downloads", "foo-bar==1.1.0");
    assert!(out.join("foo_bar-1.1.0-py3-none-any.whl").is_file());
    let out = download("downloads-range", "foo-bar>=1.0");
    let got: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(got, vec![wheel_name.to_string()]);
    let response = agent()
        .delete(&server.url("/api/v1/repositories/pypi/packages/foo-bar/versions/1.1.0/yank"))
        .header("authorization", &basic("admin", &password))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, _, html) = get(&server, "/repository/pypi/simple/foo-bar/", None);
    assert!(!html.contains("data-yanked"), "{html}");

    // uv resolves through the JSON simple API and the .metadata files.
    let target = venv(home, "uv-env");
    let mut uv = Command::new(tool("uv"));
    isolate(&mut uv, home);
    let text = ok(&run(uv
        .args(["pip", "install", "-v", "--no-cache", "--python"])
        .arg(&target)
        .arg("--index-url")
        .arg(server.url("/repository/pypi/simple/"))
        .arg("wharf-app")));
    assert!(
        text.contains(".metadata"),
        "uv did not read core metadata: {text}"
    );
    let imported = ok(&run(
        Command::new(&target).args(["-c", "import foo_bar; print(foo_bar.VERSION)"])
    ));
    assert_eq!(imported.trim(), "1.1.0");
}

/// A multipart upload built by hand, as twine would send it but with what a test needs wrong.
/// twine's upload path; `/legacy` without the slash is served too (the last upload of the bad-input test).
const LEGACY: &str = "/repository/pypi/legacy/";

fn upload(
    server: &Server,
    path: &str,
    fields: &[(&str, &str)],
    filename: &str,
    content: &[u8],
) -> (u16, String) {
    let boundary = "wharf-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, value) in fields {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .unwrap();
    }
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(content);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    let password = server.admin_password.as_deref().unwrap();
    status_and_text(
        agent()
            .post(&server.url(path))
            .header("authorization", &basic("admin", password))
            .header(
                "content-type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .send(&body[..])
            .unwrap(),
    )
}

fn wheel(members: &[(&str, &[u8])]) -> Vec<u8> {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut zip = zip::ZipWriter::new(file.reopen().unwrap());
    for (name, data) in members {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
    std::fs::read(file.path()).unwrap()
}

fn metadata(name: &str, version: &str) -> Vec<u8> {
    format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n").into_bytes()
}

#[test]
fn bad_uploads_are_refused_and_store_nothing() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("wharf.toml");
    std::fs::write(&config, "[server]\nmax_upload = \"1MiB\"\n").unwrap();
    let server = Server::start(
        &home.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let action = [(":action", "file_upload"), ("protocol_version", "1")];
    let good = wheel(&[("bad-1.0.dist-info/METADATA", &metadata("bad", "1.0"))]);
    let with_sha = |sha: &str| -> Vec<(&str, String)> {
        vec![
            (":action", "file_upload".into()),
            ("sha256_digest", sha.to_string()),
        ]
    };

    let cases: Vec<(&str, (u16, String), u16, &str)> = vec![
        (
            "file name disagrees with its metadata",
            upload(&server, LEGACY, &action, "bad-2.0-py3-none-any.whl", &good),
            400,
            "does not match the metadata",
        ),
        (
            "wrong sha256",
            {
                let fields = with_sha(&"0".repeat(64));
                let fields: Vec<(&str, &str)> =
                    fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                upload(&server, LEGACY, &fields, "bad-1.0-py3-none-any.whl", &good)
            },
            400,
            "digest supplied does not match",
        ),
        (
            "neither wheel nor sdist",
            upload(&server, LEGACY, &action, "bad-1.0.exe", &good),
            400,
            "neither a wheel (.whl) nor an sdist (.tar.gz)",
        ),
        (
            "a .whl that is not a zip",
            upload(
                &server,
                LEGACY,
                &action,
                "bad-1.0-py3-none-any.whl",
                b"plain text",
            ),
            400,
            "not a valid zip archive",
        ),
        (
            "METADATA missing",
            upload(
                &server,
                LEGACY,
                &action,
                "bad-1.0-py3-none-any.whl",
                &wheel(&[("bad/__init__.py", b"")]),
            ),
            400,
            "it has no *.dist-info/METADATA",
        ),
        (
            "METADATA huge",
            {
                let mut huge = metadata("bad", "1.0");
                huge.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
                let zipped = wheel(&[("bad-1.0.dist-info/METADATA", &huge)]);
                upload(
                    &server,
                    LEGACY,
                    &action,
                    "bad-1.0-py3-none-any.whl",
                    &zipped,
                )
            },
            400,
            "larger than 1024 KiB",
        ),
        (
            "version not PEP 440",
            upload(
                &server,
                LEGACY,
                &action,
                "bad-banana-py3-none-any.whl",
                &wheel(&[("bad-banana.dist-info/METADATA", &metadata("bad", "banana"))]),
            ),
            400,
            "not a PEP 440 version",
        ),
        (
            "traversal in the file name",
            upload(
                &server,
                LEGACY,
                &action,
                "../../bad-1.0-py3-none-any.whl",
                &good,
            ),
            400,
            "Invalid file name",
        ),
        (
            "no :action",
            upload(&server, LEGACY, &[], "bad-1.0-py3-none-any.whl", &good),
            400,
            "no :action",
        ),
    ];
    for (what, (status, body), want_status, want_message) in &cases {
        assert_eq!(status, want_status, "{what}: {body}");
        assert!(body.contains(want_message), "{what}: {body}");
    }

    // A file over the limit (1 MiB here): refused while it streams in.
    let big = vec![b'x'; 2 * 1024 * 1024];
    let (status, body) = upload(&server, LEGACY, &action, "bad-1.0-py3-none-any.whl", &big);
    assert_eq!(status, 413, "{body}");

    // Nothing of any of it is listed or served, and the server still takes a good upload.
    let (status, _, _) = get(&server, "/repository/pypi/simple/bad/", None);
    assert_eq!(status, 404);
    let (status, body) = upload(
        &server,
        "/repository/pypi/legacy",
        &action,
        "bad-1.0-py3-none-any.whl",
        &good,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, page) = get(&server, "/repository/pypi/simple/bad/", None);
    assert_eq!(status, 200);
    assert_eq!(page.matches("<a ").count(), 1, "{page}");
}
