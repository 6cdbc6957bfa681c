//! `nodekeeper-sim`: simulated Jormungandr, nodeos and cardano-node nodes (`--chain`); everything lives in the
//! `nodekeeper_sim` library.

fn main() -> std::process::ExitCode {
    nodekeeper_sim::main()
}
