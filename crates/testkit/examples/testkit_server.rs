//! Serves the in-memory Kubernetes API on 127.0.0.1 for kubectl or the operator binary.
//!
//! `cargo run -p keyrotor-testkit --example testkit_server -- [PORT] [KUBECONFIG_PATH]`
//! writes a kubeconfig (default `./testkit.kubeconfig`) and serves until interrupted.

use keyrotor_testkit::{FakeApi, HttpServer};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let path = args.next().unwrap_or_else(|| "testkit.kubeconfig".into());
    let api = FakeApi::new();
    let server = HttpServer::start_on(api.service(), port).await?;
    server.write_kubeconfig(std::path::Path::new(&path), "default")?;
    println!("serving {} (kubeconfig: {path})", server.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
