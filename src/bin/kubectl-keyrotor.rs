//! The `kubectl-keyrotor` binary: `kubectl keyrotor ...` once it is on PATH.
//! Everything but argument parsing lives in `keyrotor::plugin`.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    keyrotor::plugin::main(keyrotor::plugin::Args::parse())
}
