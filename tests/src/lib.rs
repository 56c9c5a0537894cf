//! Helpers for the integration tests: build and find the `wharf` binary, start it on port 0 with a temp data
//! directory, read its address from its log, stop it (gracefully or with SIGKILL).

pub mod python;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `wharf` binary of this build profile, built once per test process.
pub fn wharf_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test> -> target/<profile>/wharf
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "wharf", "--bin", "wharf"]);
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the wharf binary failed");
        profile_dir.join("wharf")
    })
    .clone()
}

pub fn wharf() -> Command {
    let mut command = Command::new(wharf_bin());
    command
        .env_remove("WHARF_CONFIG")
        .env_remove("WHARF_DATA")
        .env_remove("WHARF_LISTEN")
        .env("NO_COLOR", "1");
    command
}

/// A real client on PATH (`scripts/clients` puts them there); a missing one fails the test that needs it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not on PATH: run scripts/clients (scripts/test does)")
        })
}

/// oras `args` over plain HTTP (the flag after the subcommand, as oras wants it), with its own credentials store in
/// `home`.
pub fn oras_in(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(tool("oras"));
    command
        .args(args)
        .arg("--plain-http")
        .env("DOCKER_CONFIG", home.join("oras"))
        .current_dir(home);
    command
}

/// Runs a command with `input` on its standard input; returns what it printed and its status.
pub fn with_stdin(command: &mut Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("stdin takes the input");
    child.wait_with_output().expect("the command ends")
}

/// A running `wharf serve`.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// Every stderr line so far (the log); a thread keeps reading.
    pub log: std::sync::Arc<Mutex<Vec<String>>>,
    pub admin_password: Option<String>,
}

impl Server {
    /// Starts `wharf serve` on 127.0.0.1:0 with `data` as its data directory and waits until it listens.
    pub fn start(data: &Path, args: &[&str]) -> Server {
        Server::start_env(data, args, &[])
    }

    /// `start` with extra environment variables (the test clock, `WHARF_CLOCK_FILE`).
    pub fn start_env(data: &Path, args: &[&str], env: &[(&str, &Path)]) -> Server {
        let mut child = wharf()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wharf starts");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let end = addr
                        .find(|c: char| !(c.is_ascii_hexdigit() || ".:[]".contains(c)))
                        .unwrap_or(addr.len());
                    let _ = tx.send(addr[..end].to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (ptx, prx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("Created user `admin` with password ") {
                    let _ = ptx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("wharf did not start: {:?}", log.lock().unwrap());
            }
        };
        let admin_password = prx.recv_timeout(Duration::from_millis(200)).ok();
        Server {
            child,
            addr,
            log,
            admin_password,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // The kill command, because the workspace forbids the `unsafe` that libc::kill needs.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "wharf did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP agent that reports 4xx/5xx as responses, not errors; a request may take a minute.
pub fn agent() -> ureq::Agent {
    agent_with_timeout(Duration::from_secs(60))
}

/// The same, for requests that move gigabytes.
pub fn agent_with_timeout(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// A response's status and its body as text (empty when the body cannot be read as text).
pub fn status_and_text(mut response: ureq::http::Response<ureq::Body>) -> (u16, String) {
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// Runs the real curl with `args` (`-s` and a status line added) and returns the status and the body it printed.
pub fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new(tool("curl"))
        .arg("-sS")
        .args(args)
        .args(["-w", "\n%{http_code}"])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = status.trim().parse().unwrap_or_else(|_| {
        panic!(
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (status, body.to_string())
}

pub fn basic(user: &str, password: &str) -> String {
    use std::io::Write;
    let mut raw = Vec::new();
    write!(raw, "{user}:{password}").unwrap();
    format!("Basic {}", base64_encode(&raw))
}

fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Runs a command without input; its output.
pub fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

/// Runs a command that must succeed; what it printed.
pub fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A server whose data directory also holds an API token for `admin`, made with the CLI while it was stopped.
pub fn server_with_token(data: &Path) -> (Server, String, String) {
    let first = Server::start(data, &[]);
    let password = first
        .admin_password
        .clone()
        .expect("first start prints a password");
    assert!(first.terminate().success());
    let token = ok(wharf()
        .args(["token", "create", "admin", "--name", "ci", "--data"])
        .arg(data))
    .trim()
    .to_string();
    (Server::start(data, &[]), password, token)
}

/// A docker engine of its own: no containers, no network setup, stopped on drop.
pub struct Engine {
    child: std::process::Child,
    dir: PathBuf,
}

impl Engine {
    pub fn start(dir: &Path) -> Engine {
        let child = Command::new(tool("dockerd"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("dockerd.log")).unwrap())
            .spawn()
            .expect("dockerd starts");
        let engine = Engine {
            child,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !run(engine.docker().arg("version")).status.success() {
            assert!(Instant::now() < deadline, "dockerd did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        engine
    }

    /// `docker login` to `server` as `admin`.
    pub fn login(&self, server: &Server, password: &str) {
        let login = with_stdin(
            self.docker()
                .args(["login", "-u", "admin", "--password-stdin", &server.addr]),
            password,
        );
        assert!(
            login.status.success(),
            "{}",
            String::from_utf8_lossy(&login.stderr)
        );
    }

    /// Builds a FROM-scratch image holding one file with `text`, tagged with every reference in `tags`.
    pub fn build_scratch(&self, dir: &Path, text: &str, tags: &[&str]) {
        let context = dir.join(format!("context-{}", sha256_hex(text.as_bytes())));
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(context.join("file.txt"), text).unwrap();
        std::fs::write(
            context.join("Dockerfile"),
            "FROM scratch\nCOPY file.txt /file.txt\n",
        )
        .unwrap();
        let mut build = self.docker();
        build.args(["build", "-q"]);
        for tag in tags {
            build.args(["-t", tag]);
        }
        ok(build.arg(&context));
    }

    pub fn docker(&self) -> Command {
        let mut command = Command::new(tool("docker"));
        command
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.join("docker.sock").display()),
            )
            .env("DOCKER_CONFIG", self.dir.join("config"))
            .env("DOCKER_BUILDKIT", "0");
        command
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// npm as `admin` against `registry` (`http://.../repository/<repo>/`), with a private user config and cache in
/// `home`.
pub fn npm_as_admin(
    home: &Path,
    registry: &str,
    password: &str,
    dir: &Path,
    args: &[&str],
) -> Output {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"));
    let npmrc = home.join(".npmrc");
    let host = registry.trim_start_matches("http:");
    std::fs::write(
        &npmrc,
        format!("registry={registry}\n{host}:_auth={auth}\n"),
    )
    .unwrap();
    Command::new(tool("npm"))
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("npm_config_userconfig", &npmrc)
        .env("npm_config_cache", home.join("cache"))
        .env("npm_config_update_notifier", "false")
        .output()
        .unwrap()
}

/// Starts `wharf serve` with `config` once for the admin password, makes an API token for `admin` while it is
/// stopped, and starts it again: the server, the password and the token.
pub fn start_with_token(dir: &Path, config: &str) -> (Server, String, String) {
    start_with_token_env(dir, config, &[])
}

/// `start_with_token` with extra environment variables for the server.
pub fn start_with_token_env(
    dir: &Path,
    config: &str,
    env: &[(&str, &Path)],
) -> (Server, String, String) {
    let file = dir.join("wharf.toml");
    std::fs::write(&file, config).unwrap();
    let args = ["--config", file.to_str().unwrap()];
    let data = dir.join("data");
    let first = Server::start_env(&data, &args, env);
    let password = first.admin_password.clone().unwrap();
    assert!(first.terminate().success());
    let token = ok(wharf()
        .args(["token", "create", "admin", "--name", "test", "--data"])
        .arg(&data))
    .trim()
    .to_string();
    (Server::start_env(&data, &args, env), password, token)
}

/// A day, and a fixed "now" for tests that set the server's clock (`WHARF_CLOCK_FILE`).
pub const DAY: u64 = 86_400;
pub const NOW: u64 = 1_900_000_000;

/// Sets the test clock the server reads from `clock` to `at` (Unix seconds).
pub fn set_clock(clock: &Path, at: u64) {
    std::fs::write(clock, at.to_string()).unwrap();
}

/// An ECR lifecycle policy that keeps the newest `n` items of every package, whatever their tags.
pub fn keep_newest(n: u32) -> String {
    format!(
        r#"{{"rules": [{{"rulePriority": 1, "selection": {{"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": {n}}}, "action": {{"type": "expire"}}}}]}}"#
    )
}

/// `wharf retention <args>` against `server` with `token`: what it printed.
pub fn retention(server: &Server, token: &str, args: &[&str]) -> String {
    ok(wharf()
        .arg("retention")
        .args(args)
        .args(["--server", &server.url(""), "--token", token]))
}

/// Imports `policy` (ECR's JSON, written to a file in `dir`) for `repo` and runs retention, both through the CLI
/// with `token`: the plan it printed.
pub fn retain(dir: &Path, server: &Server, token: &str, repo: &str, policy: &str) -> String {
    let file = dir.join(format!("{repo}-policy.json"));
    std::fs::write(&file, policy).unwrap();
    let file = file.to_str().unwrap();
    retention(
        server,
        token,
        &["import", "--ecr", file, "--repository", repo],
    );
    retention(server, token, &["run", "--repository", repo])
}

/// The versions of `package` a retention plan's `remove` lines name.
pub fn removed(plan: &str, package: &str) -> std::collections::BTreeSet<String> {
    let prefix = format!("{package}@");
    plan.lines()
        .filter(|l| l.starts_with("remove  "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|r| r.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::base64_encode(b"admin:pw"), "YWRtaW46cHc=");
        assert_eq!(super::base64_encode(b"ab"), "YWI=");
        assert_eq!(super::base64_encode(b"abc"), "YWJj");
    }
}
