//! keyrotor's sidecar for consumer pods, without the operator: the
//! `keyrotor-sidecar` binary's two jobs and what every keyrotor process
//! shares at its edges.
//!
//! - [`reporter`]: `reporter`, confirming the revisions of the mounted
//!   projected Secrets on the pod (the loop is in the consumer crate).
//! - [`gateway`]: `verifier`, the endpoint gateways ask about every request
//!   (docs/gateways.md).
//! - [`cli`]: the command line and how each job's process starts; the
//!   operator's `keyrotor reporter` / `keyrotor verifier` dispatch here.
//! - [`http`]: the one HTTP/1.1 server loop (hyper) and a one-request client.
//! - [`admin`]: `/metrics`, `/livez`, `/readyz`, for the operator too.
//! - [`logging`]: tracing to stderr, for the operator too.
//! - [`Error`]: why a sidecar could not start.
//!
//! Built from `keyrotor-consumer` and never from the operator crate, so
//! what runs in every pod stays small (docs/performance.md).
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
mod error;
pub mod gateway;
pub mod http;
pub mod logging;
pub mod reporter;

pub use error::Error;
