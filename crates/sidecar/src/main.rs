//! The `keyrotor-sidecar` binary: parse the command line, run the command.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = keyrotor_sidecar::cli::Cli::parse();
    match keyrotor_sidecar::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyrotor-sidecar: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
