//! The `keyrotor` binary: parse the command line, run the command.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = keyrotor::cli::Cli::parse();
    match keyrotor::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyrotor: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
