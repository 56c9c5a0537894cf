//! Fault injection: `wharf serve` streams blobs from several clients and is killed with SIGKILL at random moments,
//! again and again. After each restart every write it acknowledged must be there and hash to its digest, nothing
//! half-written may be visible, and the abandoned uploads must be gone. `wharf scrub` agrees at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use wharf_tests::{Server, agent, basic, sha256_hex, wharf};

const ROUNDS: usize = 6;
const WRITERS: usize = 3;

/// xorshift: deterministic content and delays without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

#[derive(Default)]
struct Ledger {
    /// (path, sha256 hex): the server answered 201.
    acked: Vec<(String, String)>,
    /// Sent, but the answer never came: may be there (whole) or not at all.
    unsure: Vec<(String, String)>,
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut password = None;

    for round in 0..ROUNDS {
        let server = Server::start(&data, &[]);
        if round > 0 {
            verify(&server, &ledger.lock().unwrap(), &data);
        }
        let password = password
            .get_or_insert_with(|| server.admin_password.clone().expect("admin password"))
            .clone();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (url, ledger, stop, auth) = (
                    server.url(""),
                    ledger.clone(),
                    stop.clone(),
                    basic("admin", &password),
                );
                let mut rng = Rng(seed
                    .wrapping_mul(round as u64 + 7)
                    .wrapping_add(w as u64 * 7919)
                    | 1);
                std::thread::spawn(move || {
                    let http = agent();
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        // Mostly small files, some of several MiB so kills land mid-stream too.
                        let len = if rng.below(4) == 0 {
                            1 << 20 | rng.below(3 << 20)
                        } else {
                            rng.below(64 << 10)
                        } as usize;
                        let body = rng.bytes(len);
                        let path = format!("/repository/generic/r{round}/w{w}/{i}.bin");
                        let sha = sha256_hex(&body);
                        ledger
                            .lock()
                            .unwrap()
                            .unsure
                            .push((path.clone(), sha.clone()));
                        match http
                            .put(&format!("{url}{path}"))
                            .header("authorization", &auth)
                            .send(&body[..])
                        {
                            Ok(response) if response.status() == 201 => {
                                let mut l = ledger.lock().unwrap();
                                l.unsure.retain(|(p, _)| *p != path);
                                l.acked.push((path, sha));
                            }
                            Ok(response) => {
                                panic!("unexpected status {} for {path}", response.status())
                            }
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200 + rng.below(1200)));
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.join().expect("writer thread");
        }
    }

    let server = Server::start(&data, &[]);
    let ledger = ledger.lock().unwrap();
    verify(&server, &ledger, &data);
    assert!(
        ledger.acked.len() >= ROUNDS,
        "the test wrote too little to mean anything: {}",
        ledger.acked.len()
    );
    eprintln!(
        "{} acknowledged writes verified, {} unacknowledged checked",
        ledger.acked.len(),
        ledger.unsure.len()
    );
    server.kill9();
    let scrub = wharf()
        .arg("scrub")
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        scrub.status.success(),
        "scrub: {}",
        String::from_utf8_lossy(&scrub.stdout)
    );
}

fn verify(server: &Server, ledger: &Ledger, data: &std::path::Path) {
    let leftovers: Vec<_> = std::fs::read_dir(data.join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "abandoned uploads are cleaned at start-up: {leftovers:?}"
    );
    let http = agent();
    for (path, sha) in &ledger.acked {
        let mut response = http.get(&server.url(path)).call().unwrap();
        assert_eq!(response.status(), 200, "acknowledged {path} is present");
        assert_eq!(
            &body_sha(&mut response),
            sha,
            "acknowledged {path} is intact"
        );
    }
    for (path, sha) in &ledger.unsure {
        let mut response = http.get(&server.url(path)).call().unwrap();
        match response.status().as_u16() {
            404 => {}
            200 => {
                assert_eq!(
                    &body_sha(&mut response),
                    sha,
                    "an unacknowledged {path} is whole or absent, never partial"
                );
            }
            other => panic!("{path}: status {other}"),
        }
    }
}

fn body_sha(response: &mut ureq::http::Response<ureq::Body>) -> String {
    sha256_hex(
        &response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap(),
    )
}
