//! Format plugins: one protocol suite run against the bundled `generic` plugin and its built-in twin; the fault
//! fixture (`plugins/guest/faults`, built here for wasm32-wasip2 and loaded from `[[plugin]]`) looping, hoarding
//! memory and trapping while other repositories keep serving; resumed downloads with wget.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wharf_tests::{
    Server, agent, agent_with_timeout, basic, curl, sha256_hex, status_and_text, tool,
};

/// Builds the fault fixture with the toolchain running this test.
fn faults_plugin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--manifest-path")
        .arg(root.join("plugins/guest/Cargo.toml"))
        .args(["-p", "wharf-plugin-faults", "--target-dir"])
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the fault fixture builds");
    target.join("wasm32-wasip2/release/wharf_plugin_faults.wasm")
}

fn start(home: &Path, extra: &str) -> Server {
    let config = home.join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            "{extra}\n[[repository]]\nname = \"generic\"\nformat = \"generic\"\n\n\
             [[repository]]\nname = \"builtin\"\nformat = \"generic-builtin\"\n"
        ),
    )
    .unwrap();
    Server::start(&home.join("data"), &["--config", config.to_str().unwrap()])
}

fn url(server: &Server, repo: &str, path: &str) -> String {
    server.url(&format!("/repository/{repo}/{path}"))
}

/// The generic protocol, driven with curl, the same against either implementation.
fn generic_protocol(server: &Server, repo: &str, scratch: &Path) {
    let user = format!("admin:{}", server.admin_password.as_deref().unwrap());
    // Each repository gets bytes of its own, so neither finds the other's checksums already computed.
    let body: Vec<u8> = repo
        .bytes()
        .chain((0..100_000u32).flat_map(|i| i.to_le_bytes()))
        .collect();
    let sha = sha256_hex(&body);
    let file = scratch.join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let empty = scratch.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let (file, empty) = (file.to_str().unwrap(), empty.to_str().unwrap());
    let put = |path: &str, from: &str, checksum: Option<&str>| {
        let header = format!("X-Checksum-Sha256: {}", checksum.unwrap_or(""));
        let mut args = vec!["-u", &user, "-T", from];
        if checksum.is_some() {
            args.extend(["-H", &header]);
        }
        let target = url(server, repo, path);
        args.extend(["--path-as-is", &target]);
        curl(&args)
    };
    let (status, text) = put("dir/file.bin", file, Some(&sha));
    assert_eq!(status, 201, "{repo}: {text}");
    assert!(text.contains(&sha), "{repo}: {text}");
    let (status, text) = put("dir/bad.bin", file, Some(&"0".repeat(64)));
    assert_eq!(
        status, 400,
        "{repo}: a wrong X-Checksum-Sha256 is refused: {text}"
    );

    // GET: the bytes, and every checksum header once the sha1 and md5, computed after the 201, are in.
    let (sha1, md5) = {
        use sha1::Digest;
        let sha1 = hex::encode(sha1::Sha1::digest(&body));
        (sha1, hex::encode(md5::Md5::digest(&body)))
    };
    let got = scratch.join("got.bin");
    let checksummed = Instant::now() + Duration::from_secs(30);
    let headers = loop {
        let (status, headers) = curl(&[
            "-D",
            "-",
            "-o",
            got.to_str().unwrap(),
            &url(server, repo, "dir/file.bin"),
        ]);
        assert_eq!(status, 200);
        assert_eq!(std::fs::read(&got).unwrap(), body);
        let headers = headers.to_ascii_lowercase();
        if headers.contains("x-checksum-md5") || Instant::now() > checksummed {
            break headers;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (name, value) in [("sha256", &sha), ("sha1", &sha1), ("md5", &md5)] {
        assert!(
            headers.contains(&format!("x-checksum-{name}: {value}")),
            "{repo}: {headers}"
        );
    }

    // An X-Checksum-Sha1 or -Md5 sent with a PUT is checked before the 201, which then names it. Bytes not stored
    // before, so the checksums are computed as they stream in.
    let fresh: Vec<u8> = body.iter().rev().copied().collect();
    let (fresh_sha1, fresh_md5) = {
        use sha1::Digest;
        let sha1 = hex::encode(sha1::Sha1::digest(&fresh));
        (sha1, hex::encode(md5::Md5::digest(&fresh)))
    };
    let fresh_file = scratch.join("fresh.bin");
    std::fs::write(&fresh_file, &fresh).unwrap();
    let sent = |path: &str, name: &str, value: &str| {
        let header = format!("X-Checksum-{name}: {value}");
        let target = url(server, repo, path);
        let from = fresh_file.to_str().unwrap();
        curl(&["-u", &user, "-T", from, "-H", &header, &target])
    };
    for name in ["Sha1", "Md5"] {
        let (status, text) = sent("sums/bad.bin", name, &"0".repeat(32));
        assert_eq!(status, 400, "{repo}: a wrong X-Checksum-{name}: {text}");
        assert!(text.contains("does not match"), "{repo}: {text}");
    }
    let (status, text) = sent("sums/sha1.bin", "Sha1", &fresh_sha1);
    assert_eq!(status, 201, "{repo}: {text}");
    assert!(text.contains(&fresh_sha1), "{repo}: {text}");
    let (status, text) = sent("sums/md5.bin", "Md5", &fresh_md5);
    assert_eq!(status, 201, "{repo}: {text}");
    assert!(text.contains(&fresh_md5), "{repo}: {text}");
    for name in ["Sha1", "Md5"] {
        let (status, text) = sent("sums/bad.bin", name, &"0".repeat(32));
        assert_eq!(status, 400, "{repo}: a wrong X-Checksum-{name}: {text}");
        assert!(text.contains("does not match"), "{repo}: {text}");
    }
    let (status, _) = curl(&[&url(server, repo, "sums/bad.bin")]);
    assert_eq!(status, 404, "{repo}: nothing stored for a refused PUT");

    // HEAD and Range.
    let (status, headers) = curl(&["-I", &url(server, repo, "dir/file.bin")]);
    assert_eq!(status, 200);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains(&format!("content-length: {}", body.len())),
        "{headers}"
    );
    let (status, part) = curl(&["-r", "4-11", &url(server, repo, "dir/file.bin")]);
    assert_eq!(status, 206);
    assert_eq!(part.as_bytes(), &body[4..12]);

    // Deploy by checksum: no body, the blob is known.
    let (status, text) = put("copy/file.bin", empty, Some(&sha));
    assert_eq!(status, 201, "{repo}: {text}");
    let (status, _) = curl(&[
        "-o",
        got.to_str().unwrap(),
        &url(server, repo, "copy/file.bin"),
    ]);
    assert_eq!(status, 200);
    assert_eq!(std::fs::read(&got).unwrap(), body);
    let (status, _) = put("copy/none.bin", empty, Some(&"1".repeat(64)));
    assert_eq!(status, 404, "{repo}: deploy by an unknown checksum");

    let (status, _) = curl(&[
        "-u",
        &user,
        "-X",
        "DELETE",
        &url(server, repo, "copy/file.bin"),
    ]);
    assert_eq!(status, 204);
    let (status, text) = curl(&[&url(server, repo, "copy/file.bin")]);
    assert_eq!(status, 404);
    assert!(
        text.contains("\"errors\""),
        "{repo}: Artifactory's error shape: {text}"
    );
    let (status, _) = put("../escape", file, None);
    assert_eq!(status, 400, "{repo}: traversal");
}

#[test]
fn generic_protocol_is_the_same_for_the_plugin_and_the_builtin() {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path(), "");
    generic_protocol(&server, "generic", home.path());
    generic_protocol(&server, "builtin", home.path());
}

#[test]
fn a_failing_plugin_fails_its_request_alone() {
    let home = tempfile::tempdir().unwrap();
    let plugin = faults_plugin();
    let server = start(
        home.path(),
        &format!(
            "[[plugin]]\npath = {:?}\n\n[[repository]]\nname = \"faults\"\nformat = \"faults\"\n",
            plugin.display().to_string()
        ),
    );
    let auth = basic("admin", server.admin_password.as_deref().unwrap());
    let stored = agent()
        .put(&url(&server, "generic", "ok.txt"))
        .header("authorization", &auth)
        .send(&b"still here"[..])
        .unwrap();
    assert_eq!(stored.status(), 201);

    let (status, text) =
        status_and_text(agent().get(&url(&server, "faults", "fine")).call().unwrap());
    assert_eq!((status, text.as_str()), (200, "fine\n"));
    // Every call starts from a fresh instance: what one call wrote, the next never sees, although the host keeps
    // an instance's memory mapped between calls and resets it in place.
    let fresh = |_| {
        let url = url(&server, "faults", "fresh");
        std::thread::spawn(move || {
            (0..25)
                .map(|_| status_and_text(agent().get(&url).call().unwrap()))
                .collect::<Vec<_>>()
        })
    };
    for answer in (0..4).map(fresh).flat_map(|t| t.join().unwrap()) {
        assert_eq!(answer, (200, "0 bytes left\n".to_string()));
    }
    for (path, want_status, want_message) in [
        ("loop", 503, "ran past its time limit"),
        ("alloc", 500, "ran out of its memory limit"),
        ("trap", 500, "failed (it trapped)"),
    ] {
        // While the plugin misbehaves, another repository answers at once.
        let other = std::thread::spawn({
            let url = url(&server, "generic", "ok.txt");
            move || {
                std::thread::sleep(Duration::from_millis(300));
                let started = Instant::now();
                let (status, text) = status_and_text(agent().get(&url).call().unwrap());
                (status, text, started.elapsed())
            }
        });
        let started = Instant::now();
        let (status, text) =
            status_and_text(agent().get(&url(&server, "faults", path)).call().unwrap());
        let took = started.elapsed();
        assert_eq!(status, want_status, "{path}: {text}");
        assert!(text.contains(want_message), "{path}: {text}");
        assert!(took < Duration::from_secs(10), "{path} took {took:?}");
        let (status, text, elapsed) = other.join().unwrap();
        assert_eq!(
            (status, text.as_str()),
            (200, "still here"),
            "during {path}"
        );
        assert!(
            elapsed < Duration::from_secs(1),
            "generic waited {elapsed:?} during {path}"
        );
    }
    let (_, metrics) = status_and_text(agent().get(&server.url("/metrics")).call().unwrap());
    for kind in ["timeout", "memory", "trap"] {
        let line = format!("wharf_plugin_failures_total{{format=\"faults\",kind=\"{kind}\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    let (status, _) = status_and_text(agent().get(&server.url("/readyz")).call().unwrap());
    assert_eq!(status, 200);
}

#[test]
fn wget_resumes_an_interrupted_download() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = start(home, "");
    let auth = basic("admin", server.admin_password.as_deref().unwrap());
    let body: Vec<u8> = (0..4_000_000u32)
        .flat_map(|i| (i * 7).to_le_bytes())
        .collect();
    let stored = agent()
        .put(&url(&server, "generic", "big/file.bin"))
        .header("authorization", &auth)
        .send(&body[..])
        .unwrap();
    assert_eq!(stored.status(), 201);
    // The first part, as an interrupted download leaves it; then `wget -c` fetches the rest with a Range.
    let out = home.join("file.bin");
    std::fs::write(&out, &body[..5_000_000]).unwrap();
    let wget = Command::new(tool("wget"))
        .current_dir(home)
        .args(["-q", "-c", "-O"])
        .arg(&out)
        .arg(url(&server, "generic", "big/file.bin"))
        .status()
        .unwrap();
    assert!(wget.success());
    assert_eq!(sha256_hex(&std::fs::read(&out).unwrap()), sha256_hex(&body));
}

/// A body of `blocks` MiB, generated as it is read: one pseudo-random MiB with the block number stamped on each
/// copy, so no two MiB are alike and nothing of it is held but that one MiB.
struct Generated {
    block: Vec<u8>,
    blocks: u64,
    position: u64,
}

impl std::io::Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let total = self.blocks << 20;
        if self.position >= total {
            return Ok(0);
        }
        let offset = (self.position & 0xF_FFFF) as usize;
        if offset == 0 {
            let stamp = (self.position >> 20).to_le_bytes();
            self.block[..8].copy_from_slice(&stamp);
        }
        let n = out.len().min(self.block.len() - offset);
        out[..n].copy_from_slice(&self.block[offset..offset + n]);
        self.position += n as u64;
        Ok(n)
    }
}

#[test]
fn two_gib_up_and_down_through_the_plugin() {
    use sha2::Digest as _;
    use std::io::Read as _;
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path(), "");
    let auth = basic("admin", server.admin_password.as_deref().unwrap());
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let block: Vec<u8> = (0..1 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let body = || Generated {
        block: block.clone(),
        blocks: 2048,
        position: 0,
    };
    let mut expected = sha2::Sha256::new();
    std::io::copy(&mut body(), &mut expected).unwrap();
    let expected = hex::encode(expected.finalize());

    // 2 GiB through a debug build on a busy machine can take minutes: the usual 60 s would cut it off.
    let slow = agent_with_timeout(Duration::from_secs(900));
    let mut reader = body();
    let (status, text) = status_and_text(
        slow.put(&url(&server, "generic", "big/2gib.bin"))
            .header("authorization", &auth)
            .header("x-checksum-sha256", &expected)
            .send(ureq::SendBody::from_reader(&mut reader))
            .unwrap(),
    );
    assert_eq!(status, 201, "{text}");
    let mut response = slow
        .get(&url(&server, "generic", "big/2gib.bin"))
        .call()
        .unwrap();
    assert_eq!(
        response.headers()["content-length"].to_str().unwrap(),
        (2u64 << 30).to_string()
    );
    let mut downloaded = sha2::Sha256::new();
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        downloaded.update(&buffer[..n]);
    }
    assert_eq!(hex::encode(downloaded.finalize()), expected);
}

/// Retention on generic files, the plugin and the built-in alike: each directory keeps its newest files by push
/// time, and a pull window keeps what curl downloaded lately; what was removed answers 404 to curl, what was kept
/// is served.
#[test]
fn retention_keeps_the_newest_files_of_each_directory() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let clock = home.join("clock");
    let config = "[storage]\ngc_interval = \"0s\"\n\n\
                  [[repository]]\nname = \"generic\"\nformat = \"generic\"\n\n\
                  [[repository]]\nname = \"builtin\"\nformat = \"generic-builtin\"\n";
    std::fs::write(&clock, "1900000000").unwrap();
    let (server, password, token) =
        wharf_tests::start_with_token_env(home, config, &[("WHARF_CLOCK_FILE", &clock)]);
    let user = format!("admin:{password}");
    let file = home.join("file.bin");
    for repo in ["generic", "builtin"] {
        for (day, path) in [
            "builds/app-1.bin",
            "top.bin",
            "builds/app-2.bin",
            "builds/app-3.bin",
        ]
        .iter()
        .enumerate()
        {
            std::fs::write(&clock, (1_900_000_000 + day as u64 * 86_400).to_string()).unwrap();
            std::fs::write(&file, format!("{repo} {path}")).unwrap();
            let (status, text) = curl(&[
                "-u",
                &user,
                "-T",
                file.to_str().unwrap(),
                &url(&server, repo, path),
            ]);
            assert_eq!(status, 201, "{text}");
        }
        let plan = wharf_tests::retain(home, &server, &token, repo, &wharf_tests::keep_newest(2));
        assert!(plan.contains("remove  builds@app-1.bin"), "{repo}: {plan}");
        assert!(
            plan.trim_end().ends_with("removed 1, kept 3"),
            "{repo}: {plan}"
        );
        for (path, status) in [
            ("builds/app-1.bin", 404),
            ("builds/app-2.bin", 200),
            ("builds/app-3.bin", 200),
            ("top.bin", 200),
        ] {
            let (got, body) = curl(&[&url(&server, repo, path)]);
            assert_eq!(got, status, "{repo}/{path}: {body}");
        }

        // Those GETs were pulls on day 3. On day 9 one file is pulled again; on day 10 a pull window of five days
        // keeps only it.
        let day =
            |n: u64| std::fs::write(&clock, (1_900_000_000 + n * 86_400).to_string()).unwrap();
        day(9);
        assert_eq!(curl(&[&url(&server, repo, "builds/app-2.bin")]).0, 200);
        day(10);
        let window = r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 5}, "action": {"type": "expire"}}]}"#;
        let plan = wharf_tests::retain(home, &server, &token, repo, window);
        assert_eq!(
            wharf_tests::removed(&plan, "builds"),
            ["app-3.bin".to_string()].into(),
            "{repo}: {plan}"
        );
        assert!(plan.contains("remove  /@top.bin"), "{repo}: {plan}");
        assert!(
            plan.lines().any(|l| l.contains("builds@app-2.bin")
                && l.ends_with("pulled 1 days ago, limit 5 days")),
            "{repo}: {plan}"
        );
    }
}
