//! Why a hook could not start: the one error type of the entry points,
//! each variant one sentence for the user with its cause. Secrets read
//! from files never reach it (I4): a variant names the file, not its content.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why `keyrotor hook <name>` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A secret file (token, password, issuer secret) cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The token file holds nothing.
    #[error("{} is empty", .0.display())]
    EmptyToken(PathBuf),
    /// The issuer secret is too short to derive passwords from.
    #[error("{} must hold at least 32 bytes of secret", .0.display())]
    ShortSecret(PathBuf),
    /// Neither way to authenticate keyrotor was given.
    #[error("set --token-file or --token-review-audience")]
    NoAuth,
    /// An `--allow-service-account` value is not `NAMESPACE/NAME`.
    #[error("--allow-service-account {0:?}: expected NAMESPACE/NAME")]
    ServiceAccount(String),
    /// TokenReview without a ServiceAccount to accept.
    #[error("--token-review-audience needs --allow-service-account")]
    NoServiceAccount,
    /// No client for the TokenReview API.
    #[error("no Kubernetes client for TokenReview: {0}")]
    Client(#[source] kube::Error),
    /// The listening address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The bound socket has no local address.
    #[error("{0}")]
    LocalAddr(#[source] std::io::Error),
    /// The PostgreSQL hook needs its admin role's password.
    #[error("set --admin-password-file or POSTGRES_ADMIN_PASSWORD")]
    NoAdminPassword,
    /// The PostgreSQL hook alternates exactly two login roles.
    #[error("--role must name two login roles (--role a --role b, or --roles a,b); {0} given")]
    RoleCount(usize),
    /// A role name the PostgreSQL hook cannot use.
    #[error("{0}")]
    Roles(#[source] crate::postgres::plan::PlanError),
    /// PostgreSQL answered, and its roles are not set up as the hook needs.
    #[error("PostgreSQL is not set up for the hook: {0}")]
    PostgresSetup(String),
    /// `keyrotor hook check` could not run, or a check failed.
    #[error(transparent)]
    Check(#[from] crate::check::Error),
}
