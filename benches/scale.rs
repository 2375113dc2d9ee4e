//! `cargo bench --bench scale [-- --rotations 100,1000,10000]`: keyrotor's
//! memory, API writes and latency at scale (see `docs/performance.md`);
//! `-- --kubeconfig tests/cluster/.run/kubeconfig --rotations 1000` runs it
//! on the real API server of tests/cluster instead of the in-memory one.
#![forbid(unsafe_code)]

use clap::Parser;
use keyrotor_benchsupport::{BenchArgs, machine, real_table, run, run_real, table};

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
    let printed = runtime.block_on(async {
        match &args.kubeconfig {
            Some(kubeconfig) => run_real(&args, &binary, kubeconfig)
                .await
                .map(|runs| real_table(&runs)),
            None => run(&args, &binary).await.map(|reports| table(&reports)),
        }
    });
    match printed {
        Ok(text) => {
            println!("machine: {}", machine());
            println!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
