//! Maintenance work (GC, retention planning, checksums computed after a response) on threads of their own at the lowest CPU priority (SCHED_IDLE), so
//! requests keep their latency while it runs: on a busy machine it yields the CPU to them, on an idle one it runs
//! at full speed.

use wharf_formats::Problem;

/// Starts `work` on a new thread at nice 19; the receiver gets its result (an error when it panicked).
pub fn spawn<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<tokio::sync::oneshot::Receiver<T>, Problem> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            lower_priority();
            let _ = done.send(work());
        })
        .map_err(Problem::internal)?;
    Ok(result)
}

/// Runs `work` as `spawn` does and waits for it without holding an async worker.
pub async fn run<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Problem> {
    finished(name, spawn(name, work)?).await
}

/// The result of a `spawn`ed thread, or an internal error when it panicked.
pub async fn finished<T>(
    name: &str,
    result: tokio::sync::oneshot::Receiver<T>,
) -> Result<T, Problem> {
    result
        .await
        .map_err(|_| Problem::internal(format!("the {name} thread panicked")))
}

/// SCHED_IDLE: the thread runs only when no other wants the CPU, and any request thread that wakes up preempts it
/// at once (a nice value alone still lets it finish its time slice first). Lowering a thread's priority needs no
/// privilege; where it fails the work still runs, at normal priority.
fn lower_priority() {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(error) = set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        idle,
    ) {
        tracing::debug!(?error, "maintenance runs at normal priority");
    }
}

/// Starts the thread that computes checksums queued for after a response (`Store::checksum_later`); it lives as
/// long as the process. A failure (an unreadable blob file) is logged and the queue tried again a minute later.
pub fn later_checksums(store: wharf_storage::Store) {
    let started = spawn("checksums", move || {
        loop {
            if let Err(error) = store.run_later_checksums() {
                tracing::error!(%error, "computing queued checksums failed; trying again in a minute");
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        }
    });
    if let Err(problem) = started {
        tracing::error!(message = %problem.message, "cannot start the checksum thread");
    }
}
