//! Retention and GC at scale, against a running Wharf (`bench/maintenance.sh` starts one per size): N manifests
//! pushed to one image, then a retention dry run over them ("keep the newest 10") on the idle server (the median of
//! seven, after three untimed runs) and again beside readers (back to back for at least 2 s; the median); N
//! unreferenced blobs pushed and reclaimed by a GC run on the idle server (the median of three rounds), then N more
//! reclaimed beside readers. The readers are a few clients GETting a manifest, so the p99 of their requests during
//! each run stands beside the p99 when idle. Beside each idle time, the server's CPU time for the run. Prints one
//! line of figures.
//!
//! Run: `bench/maintenance.sh` (it builds and calls `maintenance <url> <token> <N> <server pid>`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::Digest as _;

const PUSHERS: usize = 8;
const READERS: usize = 4;
const DRY_RUN: &str = "/api/v1/repositories/docker/retention/run?dry_run=true";

struct Bench {
    url: String,
    auth: String,
    agent: ureq::Agent,
}

impl Bench {
    fn post_blob(&self, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
        let status = self
            .agent
            .post(&format!(
                "{}/v2/docker/app/blobs/uploads/?digest={digest}",
                self.url
            ))
            .header("authorization", &self.auth)
            .header("content-type", "application/octet-stream")
            .send(bytes)
            .unwrap()
            .status();
        assert_eq!(status, 201);
        digest
    }

    fn put_manifest(&self, reference: &str, body: &str) {
        let status = self
            .agent
            .put(&format!("{}/v2/docker/app/manifests/{reference}", self.url))
            .header("authorization", &self.auth)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .send(body.as_bytes())
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }

    /// POSTs to `path`; the time to the response head, and the body unparsed: the plan of 100,000 versions is 18 MB of
    /// JSON, and parsing every one beside the readers would take this process's CPU from the server on 2 cores.
    fn post(&self, path: &str) -> (Duration, String) {
        let started = Instant::now();
        let mut response = self
            .agent
            .post(&format!("{}{path}", self.url))
            .header("authorization", &self.auth)
            .send_empty()
            .unwrap();
        let took = started.elapsed();
        assert_eq!(response.status(), 200);
        // A plan lists every version: tens of MiB at 100,000.
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap();
        (took, body)
    }
}

/// How many blobs a GC run's answer says it removed.
fn collected_blobs(body: &str) -> u64 {
    let collected: serde_json::Value = serde_json::from_str(body).unwrap();
    collected["blobs"].as_u64().unwrap()
}

/// Runs `work(i)` for i in 0..n on PUSHERS threads.
fn parallel(n: usize, work: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..PUSHERS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    work(i);
                }
            });
        }
    });
}

/// The p99 of manifest GETs by READERS clients while `during` runs (or for two seconds when it is idle).
fn p99_while<T>(bench: &Arc<Bench>, during: impl FnOnce() -> T) -> (T, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (bench, stop) = (bench.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let status = bench
                        .agent
                        .get(&format!("{}/v2/docker/app/manifests/probe", bench.url))
                        .header("authorization", &bench.auth)
                        .header("accept", "application/vnd.oci.image.manifest.v1+json")
                        .call()
                        .unwrap()
                        .status();
                    assert_eq!(status, 200);
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let result = during();
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Duration> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    all.sort();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
    (result, p99)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, token, n, pid] = &args[..] else {
        panic!("usage: maintenance <url> <token> <N> <server pid>");
    };
    // The server's CPU time (user + system, all its threads, those that ended included) from /proc: the work a run
    // did, apart from the waits and the other tenants of this machine that its wall time also holds.
    let server_cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .expect("the server's /proc/<pid>/stat");
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // utime and stime, in clock ticks of 1/100 s (USER_HZ, fixed at 100 in Linux's ABI).
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    };
    let n: usize = n.parse().expect("N is a number");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let bench = Arc::new(Bench {
        url: url.clone(),
        auth: format!("Bearer {token}"),
        agent,
    });

    let config = bench.post_blob(b"{}");
    let manifest = |i: usize| {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2 },
            "layers": [],
            "annotations": { "n": i.to_string() },
        })
        .to_string()
    };
    bench.put_manifest("probe", &manifest(usize::MAX));
    let started = Instant::now();
    parallel(n, |i| {
        let body = manifest(i);
        let digest = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(body.as_bytes()))
        );
        bench.put_manifest(&digest, &body);
    });
    let push_rate = n as f64 / started.elapsed().as_secs_f64();

    let ((), idle) = p99_while(&bench, || std::thread::sleep(Duration::from_secs(2)));
    let policy = r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10}, "action": {"type": "expire"}}]}"#;
    let status = bench
        .agent
        .put(&format!("{url}/api/v1/repositories/docker/retention"))
        .header("authorization", &bench.auth)
        .send(policy)
        .unwrap()
        .status();
    assert_eq!(status, 200);
    // Once on an idle server (how the work grows with N), once beside the readers (what they feel; the work itself
    // runs at the lowest CPU priority, so it takes longer there).
    // Idle: three runs first, untimed: right after a large push, the first runs fill the metadata cache and grow
    // the heap (at 100,000, 35,000 page faults in the first run, almost none from the eighth on), a one-time cost that
    // is not the work per item. Then the median of seven: one run is tens of milliseconds at 10,000.
    let time_dry_run = || bench.post(DRY_RUN).0;
    for _ in 0..3 {
        time_dry_run();
    }
    let cpu_before = server_cpu();
    let mut idle_runs: Vec<Duration> = (0..7).map(|_| time_dry_run()).collect();
    let dry_run_cpu = (server_cpu() - cpu_before) / 7;
    idle_runs.sort();
    let dry_run_idle = idle_runs[3];
    // Beside the readers: runs back to back for at least 2 s and three runs, so that the p99 rests on thousands of
    // requests rather than on the few hundred one short run would see; the time is their median.
    let ((dry_run, plan), during_dry_run) = p99_while(&bench, || {
        let started = Instant::now();
        let mut runs = Vec::new();
        while runs.len() < 3 || started.elapsed() < Duration::from_secs(2) {
            runs.push(bench.post(DRY_RUN));
        }
        runs.sort_by_key(|(took, _)| *took);
        runs.swap_remove(runs.len() / 2)
    });
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["removed"], n + 1 - 10);

    // N unreferenced blobs, collected on the idle server (how GC grows with N); N more, collected beside readers.
    let unreferenced = |round: usize| {
        parallel(n, |i| {
            bench.post_blob(format!("unreferenced blob {round} {i}").as_bytes());
        });
        // Times are whole seconds: with a grace of 0 s, a blob becomes collectable in the second after its push.
        std::thread::sleep(Duration::from_millis(1100));
    };
    // Idle: the median of three rounds, each of N fresh blobs (a run's time is mostly unlinking files, whose cost
    // on this disk varies from run to run by a tenth).
    let mut gc_cpu = Vec::new();
    let mut gc_runs: Vec<Duration> = (0..3)
        .map(|round| {
            unreferenced(round);
            let cpu_before = server_cpu();
            let (took, collected) = bench.post("/api/v1/gc");
            gc_cpu.push(server_cpu() - cpu_before);
            assert!(collected_blobs(&collected) >= n as u64);
            took
        })
        .collect();
    gc_runs.sort();
    gc_cpu.sort();
    let gc_idle = gc_runs[1];
    unreferenced(3);
    let ((gc, collected), during_gc) = p99_while(&bench, || bench.post("/api/v1/gc"));
    let collected = collected_blobs(&collected);
    assert!(collected >= n as u64);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "N={n}  push {push_rate:.0} manifests/s  retention dry run {:.0} ms idle (median of 7; server CPU {:.0} ms a \
         run), {:.0} ms beside readers (median)  GC of {} blobs {:.0} ms idle (median of 3; server CPU {:.0} ms), \
         {:.0} ms beside readers  manifest GET p99: idle {:.1} ms, during dry run {:.1} ms, during GC {:.1} ms",
        ms(dry_run_idle),
        ms(dry_run_cpu),
        ms(dry_run),
        collected,
        ms(gc_idle),
        ms(gc_cpu[1]),
        ms(gc),
        ms(idle),
        ms(during_dry_run),
        ms(during_gc),
    );
}
