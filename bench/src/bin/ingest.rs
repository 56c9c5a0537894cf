//! Blob-store ingest benchmark: 1 GiB streamed through `Store` (hash + write + fsync + place + index), several runs,
//! median MiB/s, beside the ceiling measured in the same run on the same bytes: sha256 of them, and writing them to
//! a file with fsync; the lower of the two bounds any ingest. Writes `bench/results/ingest.txt`.
//!
//! Run: `cargo run --release -p wharf-bench --bin ingest` (optionally `-- <runs> <MiB>`).

use std::io::Write as _;
use std::time::Instant;

use bytes::Bytes;
use sha2::Digest as _;
use wharf_storage::{Options, Store, Want};

const CHUNK: usize = 64 * 1024;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = args.first().copied().unwrap_or(5);
    let mib = args.get(1).copied().unwrap_or(1024);
    let chunks = make_chunks(mib);
    let total = (mib * 1024 * 1024) as f64 / (1024.0 * 1024.0);
    let scratch = std::env::var("WHARF_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());

    let (mut ingest, mut hash, mut write) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let dir = tempfile::tempdir_in(&scratch).unwrap();
        let (store, _) = Store::open(Options::new(dir.path().join("data"))).unwrap();
        let started = Instant::now();
        let mut upload = store.begin(Want::NONE, u64::MAX, None).unwrap();
        for chunk in &chunks {
            upload.write(chunk.clone()).await.unwrap();
        }
        let info = store.finish(upload).await.unwrap();
        store.meta().durable().await.unwrap();
        ingest.push(total / started.elapsed().as_secs_f64());
        drop(store);

        let started = Instant::now();
        let mut hasher = sha2::Sha256::new();
        for chunk in &chunks {
            hasher.update(chunk);
        }
        assert_eq!(
            hex::encode(hasher.finalize()),
            info.digest.hex(),
            "the store hashed the same bytes"
        );
        hash.push(total / started.elapsed().as_secs_f64());

        let started = Instant::now();
        let path = dir.path().join("plain-write");
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in &chunks {
            file.write_all(chunk).unwrap();
        }
        file.sync_all().unwrap();
        write.push(total / started.elapsed().as_secs_f64());
        eprintln!(
            "run {run}: ingest {:.0} MiB/s, sha256 {:.0} MiB/s, write+fsync {:.0} MiB/s",
            ingest[run], hash[run], write[run]
        );
    }
    let (ingest, hash, write) = (median(ingest), median(hash), median(write));
    let ceiling = hash.min(write);
    let report = format!(
        "ingest benchmark: {mib} MiB in {CHUNK}-byte chunks, {runs} runs, medians\n\
         ingest through Store      {ingest:8.0} MiB/s\n\
         sha256 of the same bytes  {hash:8.0} MiB/s\n\
         write + fsync, same bytes {write:8.0} MiB/s\n\
         ceiling (lower of the two){ceiling:8.0} MiB/s\n\
         ratio ingest / ceiling    {:8.2}\n",
        ingest / ceiling
    );
    print!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/ingest.txt");
    std::fs::write(&out, report).unwrap();
    eprintln!("written to {}", out.display());
}

/// Pseudo-random bytes (incompressible, so no layer can cheat), shared as cheap `Bytes` slices.
fn make_chunks(mib: usize) -> Vec<Bytes> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = Vec::with_capacity(mib << 20);
    while buf.len() < mib << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        buf.extend_from_slice(&state.to_le_bytes());
    }
    let all = Bytes::from(buf);
    (0..all.len())
        .step_by(CHUNK)
        .map(|i| all.slice(i..(i + CHUNK).min(all.len())))
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
