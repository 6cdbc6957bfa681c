//! `nodekeeper-sim`: a simulated Jormungandr node; everything lives in `nodekeeper::sim`.

fn main() -> std::process::ExitCode {
    nodekeeper::sim::main()
}
