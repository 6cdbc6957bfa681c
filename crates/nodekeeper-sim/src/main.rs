//! `nodekeeper-sim`: a simulated Jormungandr node; everything lives in the `nodekeeper_sim` library.

fn main() -> std::process::ExitCode {
    nodekeeper_sim::main()
}
