//! Command line of `keyrotor-sidecar`: one subcommand per sidecar, and how
//! each one's process starts (logging, a one-thread runtime). The operator
//! binary's `keyrotor reporter` and `keyrotor verifier` take the same
//! arguments and call [`reporter`] and [`verifier`] here.

use clap::{Parser, Subcommand};

use crate::Error;
use crate::gateway::VerifierArgs;
use crate::logging::init_logging;
use crate::reporter::ReporterArgs;

/// keyrotor-sidecar: keyrotor's sidecars for consumer pods.
#[derive(Parser, Debug)]
#[command(name = "keyrotor-sidecar", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Report the revisions of the mounted projected Secrets as annotations
    /// on this pod (POD_NAME, POD_NAMESPACE from the Downward API).
    Reporter(ReporterArgs),
    /// Beside a gateway: answer nginx `auth_request`, Envoy `ext_authz` and
    /// Traefik `ForwardAuth` checks against the mounted verifier Secret,
    /// confirm what it loaded, count traffic per version.
    Verifier(VerifierArgs),
}

/// Runs a parsed command; an error is one sentence for the user (its
/// `Display`).
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Reporter(args) => reporter(args),
        Command::Verifier(args) => verifier(args),
    }
}

/// The reporter sidecar until SIGTERM or Ctrl-C.
pub fn reporter(args: ReporterArgs) -> Result<(), Error> {
    init_logging(args.log_format);
    // One thread is plenty for a sidecar that polls a few symlinks.
    Ok(one_thread()?.block_on(crate::reporter::main(args))?)
}

/// The verifier sidecar until SIGTERM or Ctrl-C.
pub fn verifier(args: VerifierArgs) -> Result<(), Error> {
    init_logging(args.log_format);
    // One thread: checks take microseconds; a second core is the gateway's.
    one_thread()?.block_on(crate::gateway::main(args))
}

fn one_thread() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}
