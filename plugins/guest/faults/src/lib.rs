//! A format that misbehaves on purpose, by path: `loop` spins forever, `alloc` allocates without bound, `trap`
//! panics (a trap, since plugins abort on panic); `fresh` writes memory and says how much of it an earlier call had
//! left written (none, as every call gets a fresh instance); anything else answers 200. The host must turn each failure into a
//! clear error for that request alone. Also the smallest complete plugin: a starting point for writing one.

use std::sync::atomic::{AtomicU8, Ordering};

use wharf_plugin_sdk::*;

/// Memory each `fresh` call writes all of; zero at the start of every call, unless the host reused an instance
/// without resetting it.
static SCRATCH: [AtomicU8; 64 * 1024] = [const { AtomicU8::new(0) }; 64 * 1024];

struct Faults;

impl Format for Faults {
    fn describe() -> PluginInfo {
        PluginInfo {
            format: "faults".into(),
            api_version: API_VERSION,
        }
    }

    fn classify(_head: RequestHead) -> Result<Access, Problem> {
        Ok(Access::Read)
    }

    fn handle(head: RequestHead) -> Result<Plan, Problem> {
        match head.path.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("a fault on purpose"),
            "fresh" => {
                let left = SCRATCH
                    .iter()
                    .filter(|b| b.swap(1, Ordering::Relaxed) != 0)
                    .count();
                Ok(Plan::Respond(text(200, &format!("{left} bytes left\n"))))
            }
            _ => Ok(Plan::Respond(text(200, "fine\n"))),
        }
    }

    fn commit_ingested(_head: RequestHead, _blob: BlobInfo) -> Result<Commit, Problem> {
        Err(problem(500, "INTERNAL_ERROR", "faults stores nothing"))
    }

    fn commit_buffered(_head: RequestHead, _body: Vec<u8>) -> Result<Commit, Problem> {
        Err(problem(500, "INTERNAL_ERROR", "faults stores nothing"))
    }

    fn commit_form(_head: RequestHead, _form: Form) -> Result<Commit, Problem> {
        Err(problem(500, "INTERNAL_ERROR", "faults stores nothing"))
    }

    fn expire(_package: String, _version: String) -> Result<Vec<Write>, Problem> {
        Err(problem(400, "UNSUPPORTED", "faults keeps no versions"))
    }

    fn render(problem: Problem) -> Response {
        text(problem.status, &format!("{}\n", problem.message))
    }
}

wharf_plugin_sdk::export!(Faults);
