//! The `nodekeeper` binary: everything happens in `nodekeeper::cli::main`.

fn main() -> std::process::ExitCode {
    nodekeeper::cli::main()
}
