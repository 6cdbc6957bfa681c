//! A simulated cardano-node node (Prometheus metrics and dynamic block forging by SIGHUP): `nodekeeper-sim --chain cardano`.

use std::ffi::OsString;
use std::process::ExitCode;

/// The `--chain cardano` entry point; `args` is the command line without `--chain`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let _ = args;
    eprintln!("nodekeeper-sim: --chain cardano is not built yet");
    ExitCode::from(2)
}
