//! `wharf`: see `wharf --help`.

fn main() -> std::process::ExitCode {
    wharf::cli::main()
}
