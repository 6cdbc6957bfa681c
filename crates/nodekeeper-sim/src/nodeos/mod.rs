//! A simulated Antelope nodeos node (`/v1/chain/*` and `/v1/producer/*`): `nodekeeper-sim --chain nodeos`.

use std::ffi::OsString;
use std::process::ExitCode;

/// The `--chain nodeos` entry point; `args` is the command line without `--chain`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let _ = args;
    eprintln!("nodekeeper-sim: --chain nodeos is not built yet");
    ExitCode::from(2)
}
