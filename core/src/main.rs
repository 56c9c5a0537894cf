//! `wharf`: see `wharf --help`.

/// mimalloc rather than glibc's malloc. sled copies a B-tree node on every write, and with glibc the cost of those
/// allocations grew with the heap: in a perf profile of GC, `_int_malloc` and `malloc_consolidate` took 30x the
/// samples for 10x the blobs once the metadata cache had filled the heap. Side by side on the maintenance bench
/// (`bench/maintenance.sh`), mimalloc took 10-20% less server CPU for a GC and for a retention dry run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    wharf::cli::main()
}
