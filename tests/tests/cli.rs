//! `wharf user`, `wharf token` and `wharf scrub` against a real data directory, and the server accepting what
//! they made.

use std::process::Output;

use wharf_tests::{Server, agent, basic, wharf, with_stdin};

fn run(args: &[&str], data: &std::path::Path, stdin: &str) -> Output {
    with_stdin(wharf().args(args).arg("--data").arg(data), stdin)
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn users_tokens_and_scrub() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Server::start(&data, &[]).terminate();

    ok(run(&["user", "add", "ci-bot"], &data, "s3cret-password\n"));
    let again = run(&["user", "add", "ci-bot"], &data, "s3cret-password\n");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).starts_with("error: user ci-bot already exists")
    );
    let short = run(&["user", "add", "shorty"], &data, "short\n");
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"));
    let users = ok(run(&["user", "list"], &data, ""));
    assert_eq!(users, "admin\tadmin\nci-bot\tuser\n");
    let token = ok(run(
        &["token", "create", "ci-bot", "--name", "pipeline"],
        &data,
        "",
    ))
    .trim()
    .to_string();
    assert!(token.starts_with("wharf_"));
    let listed = ok(run(&["token", "list"], &data, ""));
    assert!(
        listed.contains("\tci-bot\tpipeline\t") && !listed.contains(&token),
        "{listed}"
    );

    let server = Server::start(&data, &[]);
    let http = agent();
    let url = server.url("/repository/generic/built/app.tar");
    let by_password = http
        .put(&url)
        .header("authorization", &basic("ci-bot", "s3cret-password"))
        .send("v1")
        .unwrap();
    assert_eq!(by_password.status(), 201);
    let by_token = http
        .put(&url)
        .header("authorization", &format!("Bearer {token}"))
        .send("v2")
        .unwrap();
    assert_eq!(by_token.status(), 201);
    let twine_style = http
        .put(&url)
        .header("authorization", &basic("__token__", &token))
        .send("v3")
        .unwrap();
    assert_eq!(twine_style.status(), 201);
    server.terminate();

    let held = run(&["user", "list"], &data, "");
    assert!(
        held.status.success(),
        "the server is stopped, so the CLI may open the store"
    );
    let id = listed.split('\t').next().unwrap();
    ok(run(&["token", "revoke", id], &data, ""));
    ok(run(
        &["user", "passwd", "ci-bot"],
        &data,
        "another-password\n",
    ));

    let server = Server::start(&data, &[]);
    let url = server.url("/repository/generic/built/app.tar");
    let revoked = http
        .put(&url)
        .header("authorization", &format!("Bearer {token}"))
        .send("v4")
        .unwrap();
    assert_eq!(revoked.status(), 401, "a revoked token no longer works");
    let old = http
        .put(&url)
        .header("authorization", &basic("ci-bot", "s3cret-password"))
        .send("v4")
        .unwrap();
    assert_eq!(old.status(), 401, "the old password no longer works");
    let new = http
        .put(&url)
        .header("authorization", &basic("ci-bot", "another-password"))
        .send("v4")
        .unwrap();
    assert_eq!(new.status(), 201);
    server.terminate();

    let clean = ok(run(&["scrub"], &data, ""));
    assert!(clean.contains("0 missing, 0 mismatched"), "{clean}");
    // Damage one blob file: scrub names it and fails.
    let blob = walk(&data.join("blobs"))
        .into_iter()
        .next()
        .expect("a blob file");
    std::fs::write(&blob, b"bit rot").unwrap();
    let damaged = run(&["scrub"], &data, "");
    assert_eq!(damaged.status.code(), Some(1));
    let out = String::from_utf8_lossy(&damaged.stdout);
    assert!(
        out.contains("mismatch sha256:") && out.contains("1 mismatched"),
        "{out}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path))
        } else {
            files.push(path)
        }
    }
    files
}
