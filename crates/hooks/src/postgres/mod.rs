//! `keyrotor hook postgres`: the reference hook for PostgreSQL passwords,
//! by alternating users. PostgreSQL holds one password per role, so the
//! hook keeps two login roles that inherit one group role's privileges and
//! gives each version to the role keyrotor names in the request
//! (`spec.usernames`): `stage` sets the role's password and `LOGIN`, then
//! logs in with it; `retire` sets `NOLOGIN` on the role of the old version,
//! once every presenter moved to the other role. Both steps read the
//! roles' state first ([`plan`]: comments and `rolcanlogin`), so a repeated
//! call finds its work done, also after the hook restarted.
//!
//! With `--issuer-secret-file` it is an issuer too (`spec.issuerHook`):
//! `issue` derives the version's password ([`crate::issue::derive`]),
//! stages it like `stage` and answers with it.
//!
//! Passwords reach PostgreSQL only as SCRAM verifiers ([`scram`]), over the
//! hook's own client ([`wire`]); the admin password, the token and keys
//! come from files or the environment, never flags, and are never logged.
//! docs/postgres.md is the user's guide.

use std::net::SocketAddr;
use std::path::PathBuf;

use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::Error;
use crate::auth::{Auth, AuthArgs, secret_file};
use crate::issue::issuer_secret;
use crate::server::{self, serve};

pub mod plan;
pub mod scram;
mod steps;
pub mod wire;

pub use steps::Postgres;

#[derive(clap::Args, Debug, Clone)]
pub struct PostgresHookArgs {
    /// Address to serve the hook on (loopback or the pod's address).
    #[arg(long, env = "KEYROTOR_HOOK_LISTEN", default_value = "127.0.0.1:9381")]
    pub listen: SocketAddr,
    /// PostgreSQL server, host:port (plain TCP; SCRAM-SHA-256 logins).
    #[arg(long, env = "POSTGRES_ADDRESS", default_value = "127.0.0.1:5432")]
    pub postgres: String,
    /// The database the hook and its login proofs connect to.
    #[arg(long, env = "POSTGRES_DATABASE", default_value = "postgres")]
    pub database: String,
    /// The role the hook logs in as to change the login roles (CREATEROLE).
    #[arg(long, env = "POSTGRES_ADMIN_USER", default_value = "keyrotor_admin")]
    pub admin_user: String,
    /// File holding that role's password; else POSTGRES_ADMIN_PASSWORD.
    #[arg(long, env = "POSTGRES_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// The two login roles that take turns (`--role a --role b`, or
    /// `--roles a,b`): the same two names as the rotation's `spec.usernames`.
    #[arg(
        long = "role",
        visible_alias = "roles",
        env = "POSTGRES_ROLES",
        value_delimiter = ',',
        required = true
    )]
    pub roles: Vec<String>,
    /// The group role holding the privileges; both login roles must be
    /// members that inherit them.
    #[arg(long, env = "POSTGRES_GROUP")]
    pub group: String,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// File holding the secret (at least 32 bytes) issued passwords are
    /// derived from; without it the hook refuses `issue`. Whoever reads it
    /// can derive every issued password: mount it like the admin password.
    #[arg(long, env = "KEYROTOR_HOOK_ISSUER_SECRET_FILE")]
    pub issuer_secret_file: Option<PathBuf>,
    /// After `retire` disabled a role, also end the sessions it has open
    /// (`pg_terminate_backend`; the admin needs `pg_signal_backend`). Off:
    /// open sessions run on until they close.
    #[arg(long, env = "POSTGRES_TERMINATE_SESSIONS")]
    pub terminate_sessions: bool,
}

/// Serves until the process is stopped.
pub async fn main(args: PostgresHookArgs) -> Result<(), Error> {
    let auth = Auth::new(&args.auth).await?;
    let admin_password = match &args.admin_password_file {
        Some(p) => secret_file(p)?,
        None => std::env::var("POSTGRES_ADMIN_PASSWORD")
            .map(Zeroizing::new)
            .map_err(|_| Error::NoAdminPassword)?,
    };
    let issuer_secret = args
        .issuer_secret_file
        .as_deref()
        .map(issuer_secret)
        .transpose()?;
    let (listener, local) = server::bind(args.listen).await?;
    let hook = Postgres::new(args, admin_password, issuer_secret)?;
    // A database that answers and says the roles are wrong stops the hook
    // here; one that does not answer yet is the readiness probe's to report.
    match hook.check().await {
        Ok(()) => {}
        Err(steps::Unready::Unreachable(why)) => {
            warn!(reason = %why, "PostgreSQL not reachable yet; serving, not ready")
        }
        Err(steps::Unready::Wrong(why)) => return Err(Error::PostgresSetup(why)),
    }
    let [a, b] = hook.pair().roles();
    info!(address = %local, postgres = %hook.address(), roles = %format!("{a},{b}"),
          group = %hook.pair().group(), "postgres hook listening");
    serve(listener, auth, hook).await
}
