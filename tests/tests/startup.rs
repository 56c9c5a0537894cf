//! The binary from the outside: starting with no configuration, configuration reports, start-up failures, graceful
//! shutdown, request ids in the logs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use wharf_tests::{Server, agent, basic, wharf};

/// Reads a starting server's stderr up to the line that names its address: the address, and the rest of the lines.
fn listening(child: &mut std::process::Child) -> (String, impl Iterator<Item = String> + use<>) {
    use std::io::BufRead;
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    let addr = lines
        .find_map(|l| {
            l.split("listening on http://")
                .nth(1)
                .map(|a| a.split_whitespace().next().unwrap().to_string())
        })
        .expect("listening line");
    (addr, lines)
}

#[test]
fn starts_with_no_configuration_and_serves() {
    let cwd = tempfile::tempdir().unwrap();
    // The README's command with only the address changed through the environment (port 0: any free port).
    let mut child = wharf()
        .arg("serve")
        .current_dir(cwd.path())
        .env("WHARF_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, lines) = listening(&mut child);
    // Keep draining the log so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let http = agent();
    let ready = http.get(&format!("http://{addr}/readyz")).call().unwrap();
    assert_eq!(ready.status(), 200);
    assert!(
        ready.headers().get("x-request-id").is_some(),
        "every response carries a request id"
    );
    assert_eq!(
        http.get(&format!("http://{addr}/healthz"))
            .call()
            .unwrap()
            .status(),
        200
    );

    let password_file = cwd.path().join("wharf-data/initial-admin-password");
    let mode = std::fs::metadata(&password_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        mode, 0o600,
        "the first admin password is readable by its owner only"
    );
    let password = std::fs::read_to_string(&password_file)
        .unwrap()
        .trim()
        .to_string();

    let url = format!("http://{addr}/repository/generic/tools/hello.txt");
    assert_eq!(
        http.put(&url).send("hi").unwrap().status(),
        401,
        "anonymous write is refused"
    );
    let put = http
        .put(&url)
        .header("authorization", &basic("admin", &password))
        .send("hi")
        .unwrap();
    assert_eq!(put.status(), 201);
    let mut got = http.get(&url).call().unwrap();
    assert_eq!(
        got.body_mut().read_to_string().unwrap(),
        "hi",
        "anonymous read is allowed"
    );
    let wrong = http
        .put(&url)
        .header("authorization", &basic("admin", "wrong-password"))
        .send("x")
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong.headers().get("www-authenticate").is_some(),
        "401 carries a challenge"
    );

    let metrics = http
        .get(&format!("http://{addr}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    for needle in [
        r#"wharf_http_requests_total{repository="generic",format="generic",status="201"} 1"#,
        "wharf_http_request_duration_seconds_bucket",
        "wharf_bytes_received_total",
        "wharf_blobs 1",
        "wharf_blob_bytes 2",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
    let _ = child.kill();
    let _ = child.wait();

    // The bundled plugins' compiled code is kept, so a restart loads it instead of compiling again.
    let cached = files(&cwd.path().join("wharf-data/plugin-cache"));
    assert!(
        cached.iter().any(|&size| size > 100_000),
        "no compiled plugin in plugin-cache: {cached:?}"
    );
}

/// The sizes of the files under `dir`, at any depth.
fn files(dir: &std::path::Path) -> Vec<u64> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => files(&entry.path()),
            _ => vec![entry.metadata().map(|m| m.len()).unwrap_or(0)],
        })
        .collect()
}

const BAD_CONFIG: &str = r#"[server]
listen = "127.0.0.1:0"
max_upload = "10 gigs"
colour = "blue"

[[repository]]
name = "npm"
format = "npm"

[[repository]]
name = "npm"
format = "npm"
"#;

#[test]
fn check_config_names_every_mistake_and_serve_refuses_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.toml");
    std::fs::write(&file, BAD_CONFIG).unwrap();
    let check = wharf().arg("check-config").arg(&file).output().unwrap();
    assert_eq!(check.status.code(), Some(2));
    let report = String::from_utf8(check.stderr).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    let name = file.display().to_string();
    assert!(
        lines[0].starts_with(&format!(
            "{name}:3:14: server.max_upload: unknown size unit"
        )),
        "{report}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{name}:4:1: server.colour: unknown field `colour`"
        )),
        "{report}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{name}:11:8: repository[1].name: repository name `npm` is already used on line 7"
        )),
        "{report}"
    );

    let serve = wharf()
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .arg("--data")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(serve.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(serve.stderr).unwrap(),
        report,
        "serve reports exactly what check-config does"
    );
    assert!(
        !dir.path().join("d").exists(),
        "nothing is created for a refused configuration"
    );

    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let ok = wharf().arg("check-config").arg(&file).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// Runs `wharf serve` expecting it to fail at once, and returns its single stderr line.
fn failing_start(args: &[&str], data: &std::path::Path) -> String {
    let out = wharf()
        .arg("serve")
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success(),
        "wharf should fail to start: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "no panic: {stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one clear error line: {stderr}");
    errors[0].to_string()
}

#[test]
fn start_up_failures_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    // Unwritable data directory. Tests run as root, for whom modes do not bind, so the parent is a plain file.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let line = failing_start(&["--listen", "127.0.0.1:0"], &blocker.join("data"));
    assert!(
        line.contains("cannot create data directory") && line.contains("Not a directory"),
        "{line}"
    );
    let line = failing_start(
        &["--listen", "127.0.0.1:0"],
        std::path::Path::new("/proc/wharf-data"),
    );
    assert!(line.contains("cannot create data directory"), "{line}");

    // Port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let line = failing_start(&["--listen", &port], &dir.path().join("ok"));
    assert!(
        line.contains(&format!("cannot listen on {port}")) && line.contains("in use"),
        "{line}"
    );

    // A data directory another wharf holds.
    let held = dir.path().join("held");
    let server = Server::start(&held, &[]);
    let line = failing_start(&["--listen", "127.0.0.1:0"], &held);
    assert!(line.contains("in use by another wharf process"), "{line}");
    drop(server);

    // Corrupt metadata store.
    let corrupt = dir.path().join("corrupt");
    Server::start(&corrupt, &[]).terminate();
    let db = corrupt.join("meta/db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0xA5; len.max(4096)]).unwrap();
    std::fs::write(corrupt.join("meta/conf"), b"\x00garbage\xff").unwrap();
    let line = failing_start(&["--listen", "127.0.0.1:0"], &corrupt);
    assert!(line.contains("metadata store"), "{line}");
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let password = server
        .admin_password
        .clone()
        .expect("first start prints the admin password");
    let body = vec![7u8; 1_000_000];
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "PUT /repository/generic/slow.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        basic("admin", &password),
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..500_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[500_000..]).unwrap();
    let mut response = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.read_to_string(&mut response);
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "the upload in flight completes: {response}"
    );
    let status = server.terminate();
    assert!(
        status.success(),
        "wharf exits cleanly after SIGTERM: {status:?}"
    );
}

#[test]
fn json_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--log-format", "json"]);
    let response = agent()
        .get(&server.url("/repository/generic/missing.txt"))
        .header("x-request-id", "trace-me-42")
        .call()
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers().get("x-request-id").unwrap(),
        "trace-me-42"
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log.lock().unwrap().clone();
    let line = log
        .iter()
        .find(|l| l.contains("trace-me-42"))
        .unwrap_or_else(|| panic!("no log line with the id: {log:?}"));
    let value: serde_json::Value = serde_json::from_str(line).expect("log lines are JSON");
    assert_eq!(value["span"]["id"], "trace-me-42", "{line}");
}

#[test]
fn a_stalled_log_reader_never_stalls_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = wharf()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr up to the address, then never again: the pipe (64 KiB) fills after a few hundred request lines,
    // as it does under a paused pager or a stuck log shipper.
    let (addr, lines) = listening(&mut child);
    let http = wharf_tests::agent_with_timeout(Duration::from_secs(10));
    // More requests than the server queues log lines for (8192), so some lines must be dropped.
    for i in 0..10_000 {
        let status = http
            .get(&format!("http://{addr}/readyz"))
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or_else(|e| panic!("request {i} while nobody reads the log: {e}"));
        assert_eq!(status, 200, "request {i}");
    }
    let metrics = http
        .get(&format!("http://{addr}/metrics"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("wharf_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped-lines counter in\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(dropped > 0, "the lines nobody could take are counted");
    let _ = child.kill();
    let _ = child.wait();
    drop(lines);
}
