//! The storage suite on the embedded backend, plus what only the embedded backend does: start-up reconciliation
//! against its files.

use wharf_storage::{Options, Store, suite};

fn open(dir: &std::path::Path) -> (Store, wharf_storage::Reconciled) {
    Store::open(Options::new(dir)).expect("store opens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (store, report) = open(dir.path());
    assert_eq!(report, Default::default());
    suite::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_reconciles_files_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, lost) = {
        let (store, _) = open(dir.path());
        let kept = suite::put_small(&store, b"kept").await;
        let lost = suite::put_small(&store, b"lost").await;
        store.meta().durable().await.unwrap();
        std::fs::remove_file(store.blob_path(&lost)).unwrap();
        (kept, lost)
    };
    // A crash mid-ingest leaves a temp file; a crash between placing and indexing leaves an unknown blob file.
    std::fs::write(dir.path().join("uploads/tmp-0123"), b"half").unwrap();
    let orphan = wharf_storage::Digest::of(b"orphan");
    let orphan_path = dir.path().join(format!(
        "blobs/sha256/{}/{}/{}",
        &orphan.hex()[..2],
        &orphan.hex()[2..4],
        orphan.hex()
    ));
    std::fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    std::fs::write(&orphan_path, b"orphan").unwrap();

    let (store, report) = open(dir.path());
    assert_eq!(report.temp_files_removed, 1);
    assert!(!dir.path().join("uploads/tmp-0123").exists());
    let index = store.reconcile_index().unwrap();
    assert_eq!(
        index.missing,
        vec![lost],
        "an index entry without its file is reported"
    );
    assert!(index.orphans_queued >= 1);
    assert!(
        store.meta().gc_queue().any(|e| e.unwrap().0 == orphan),
        "an unknown file is queued for GC"
    );
    assert!(store.blob(&kept).unwrap().is_some());

    let scrub = store.scrub().unwrap();
    assert_eq!(scrub.missing, vec![lost]);
    std::fs::write(store.blob_path(&kept), b"rot!").unwrap();
    let scrub = store.scrub().unwrap();
    assert_eq!(scrub.mismatched.len(), 1, "a changed file is a mismatch");
    assert_eq!(scrub.mismatched[0].0, kept);
}
