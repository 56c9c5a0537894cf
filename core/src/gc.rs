//! Garbage collection, on a schedule (`storage.gc_interval`) and on demand (`POST /api/v1/gc`, `wharf gc`): blobs
//! that no version, file or upload link has referenced for `storage.gc_grace` are removed. The store re-checks each
//! one inside a transaction under the blob's lock (`Store::collect_garbage`), so a push that uses the same digest
//! at that moment either keeps the blob or finds it gone and uploads it again; it never ends with a missing blob.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf_formats::Problem;
use wharf_storage::AuditEvent;

use crate::server::App;

/// What one run removed.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Collected {
    pub blobs: usize,
    pub bytes: u64,
    pub millis: u128,
}

/// One run, recorded in the audit log as `gc` by `principal`.
pub async fn run(app: &App, principal: &str) -> Result<Collected, Problem> {
    let store = app.store.clone();
    let grace = app.config.storage.gc_grace.get();
    let started = Instant::now();
    let (blobs, bytes) =
        crate::background::run("gc", move || store.collect_garbage(grace)).await??;
    let collected = Collected {
        blobs,
        bytes,
        millis: started.elapsed().as_millis(),
    };
    let event = AuditEvent {
        time: 0,
        principal: principal.to_string(),
        action: "gc".into(),
        target: format!("{blobs} blobs, {bytes} bytes reclaimed"),
    };
    app.store.apply(&[], &[event]).await?;
    tracing::info!(
        blobs,
        bytes,
        ms = collected.millis as u64,
        "garbage collected"
    );
    Ok(collected)
}

/// Every `storage.gc_interval` (never when it is zero), for as long as the runtime lives: retention on each
/// repository that has a policy, then GC, which reclaims what retention let go.
pub fn schedule(app: Arc<App>) {
    let every = app.config.storage.gc_interval.get();
    if every == Duration::ZERO {
        return;
    }
    actix_web::rt::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            for repo in app.repos.keys() {
                let result = match crate::retention::policy(&app, repo) {
                    Ok(Some(_)) => crate::retention::run(app.clone(), repo, false, "system")
                        .await
                        .map(|_| ()),
                    other => other.map(|_| ()),
                };
                if let Err(problem) = result {
                    tracing::error!(repository = %repo, message = %problem.message, "scheduled retention failed");
                }
            }
            if let Err(problem) = run(&app, "system").await {
                tracing::error!(message = %problem.message, detail = problem.detail.as_deref().unwrap_or(""), "scheduled GC failed");
            }
        }
    });
}
