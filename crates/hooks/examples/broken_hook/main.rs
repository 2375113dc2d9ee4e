//! `broken_hook`: a hook that gets the protocol wrong on purpose, for
//! checking the conformance kit (`keyrotor hook check`); `--mode patient`
//! gets it right with 204 and 202 answers. See `hook.rs`. Not part of any
//! release: `cargo run -p keyrotor-hooks --example broken_hook -- --help`.

mod hook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Where to serve.
    #[arg(long, default_value = "127.0.0.1:9390")]
    listen: SocketAddr,
    /// File holding the bearer token (the broken mode accepts any).
    #[arg(long)]
    token_file: PathBuf,
    /// `broken` (default) or `patient`.
    #[arg(long, default_value = "broken")]
    mode: String,
    /// User names the patient mode enforces (alternating when two).
    #[arg(long = "username")]
    usernames: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mode = match args.mode.as_str() {
        "broken" => hook::Mode::Broken,
        "patient" => hook::Mode::Patient,
        other => return Err(format!("--mode {other:?}: broken or patient").into()),
    };
    let token = std::fs::read_to_string(&args.token_file)?
        .trim()
        .to_string();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("{:?} hook listening on {}", mode, listener.local_addr()?);
    let hook = Arc::new(hook::Hook::new(mode, token, args.usernames));
    hook::serve(listener, hook).await;
    Ok(())
}
