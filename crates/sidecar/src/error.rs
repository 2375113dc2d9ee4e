//! Why a sidecar could not start or stopped: the one error type of the
//! entry points, each variant one sentence for the user with its cause.
//! No variant carries key material (I4): only addresses, names and the
//! underlying I/O or API error.

use std::net::SocketAddr;

/// Why `keyrotor-sidecar reporter` or `verifier` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process's runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The reporter loop could not start (pod identity, API client).
    #[error(transparent)]
    Reporter(#[from] keyrotor_consumer::reporter::Error),
    /// `POD_NAME` or `POD_NAMESPACE` is missing.
    #[error(transparent)]
    Pod(#[from] keyrotor_consumer::pod::MissingEnv),
    /// A listening address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The admin server could not start.
    #[error("cannot serve {addr}: {source}")]
    Admin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A flag names something that is not an HTTP header name.
    #[error("{0:?} is not a header name")]
    HeaderName(String),
    /// No client for the Kubernetes API.
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(#[source] kube::Error),
}
