//! `cargo bench --bench scale [-- --rotations 100,1000,10000]`: keyrotor's
//! memory, API writes and latency at scale (see `docs/performance.md`).
#![forbid(unsafe_code)]

use clap::Parser;
use keyrotor_testsupport::bench::{BenchArgs, machine, run, table};

fn main() -> std::process::ExitCode {
    let args = BenchArgs::parse();
    let binary = args
        .binary
        .clone()
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_keyrotor").into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&args, &binary)) {
        Ok(reports) => {
            println!("machine: {}", machine());
            println!("{}", table(&reports));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
