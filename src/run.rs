//! `keyrotor run`: the operator process. Admin server first (so probes answer
//! while it waits), then the CRD, then leadership when several replicas run,
//! then the controller until SIGTERM, then the lease is handed over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info};

use crate::controller;
use crate::ops::lease::{Leadership, LeaseConfig};
use crate::ops::{Health, Metrics, admin, crd};

/// Flags of `keyrotor run` (each also an environment variable).
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Watch only these namespaces (repeat or comma-separate; default: all).
    #[arg(long = "namespace", env = "KEYROTOR_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Address of the admin server (/metrics, /livez, /readyz).
    #[arg(long, env = "KEYROTOR_ADMIN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub admin_address: SocketAddr,
    /// Reconciles at once (0: no limit). Two by default: each reconcile is a
    /// few API round trips in order, and more in flight mostly queue at the
    /// API server: at 1,000 rotations 8 slots tripled the reconcile p99 for a
    /// cycle 4 % (real API server) to 14 % (in-memory) shorter
    /// (docs/performance.md). Raise it for an API server with cores to spare.
    #[arg(long, env = "KEYROTOR_CONCURRENCY", default_value_t = 2)]
    pub concurrency: u16,
    /// Read every rotation's Secrets with a consistent LIST, never from the
    /// API server's watch cache (slower; for comparison and diagnosis).
    #[arg(long, env = "KEYROTOR_LIST_SECRETS", default_value_t = false)]
    pub list_secrets: bool,
    /// Elect a leader on a Lease; needed when more than one replica runs.
    #[arg(long, env = "KEYROTOR_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// Namespace of the leader Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "keyrotor-system")]
    pub lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, env = "KEYROTOR_LEASE_NAME", default_value = "keyrotor-leader")]
    pub lease_name: String,
    /// Seconds a lease holds without renewal.
    #[arg(long, env = "KEYROTOR_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,
    /// Name of this replica, for events and the lease (set from the pod name).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Log format.
    #[arg(long, env = "KEYROTOR_LOG_FORMAT", value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,
}

/// Why the operator process stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The admin address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// No client for the Kubernetes API.
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(#[source] kube::Error),
    /// Another replica may lead now: the process must exit.
    #[error("lost the leader lease")]
    LeaseLost,
}

/// The operator until SIGTERM, or an error the process exits with.
pub async fn run(args: RunArgs) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::new(controller::ERROR_CATEGORIES));
    let health = Arc::new(Health::default());
    admin::serve(args.admin_address, metrics.clone(), health.clone())
        .await
        .map_err(|source| Error::Listen {
            addr: args.admin_address,
            source,
        })?;
    let client = kube::Client::try_default().await.map_err(Error::Client)?;
    serve(client, args, metrics, health).await
}

/// Everything after the client exists; tests drive it directly. Returns an
/// error only when the leader lease was lost (the process must then exit).
pub async fn serve(
    client: kube::Client,
    args: RunArgs,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<(), Error> {
    let scope = args.namespaces.first().map(String::as_str);
    crd::wait_for_crd(&client, scope, &health, Duration::from_secs(5)).await;
    let identity = args
        .instance
        .clone()
        .unwrap_or_else(|| format!("keyrotor-{}", std::process::id()));
    let config = controller::Config {
        namespaces: args.namespaces.clone(),
        instance: Some(identity.clone()),
        concurrency: args.concurrency,
        list_secrets: args.list_secrets,
    };
    if !args.leader_election {
        // The only replica leads: `keyrotor_leader` says who reconciles.
        metrics.set_leader(true);
        controller::run(client, config, metrics, health).await;
        info!("keyrotor stopped");
        return Ok(());
    }
    // A standby is ready: it serves metrics, and a rolling update must not
    // wait for a replica that cannot lead while the old one still does.
    health.ready();
    let lease = LeaseConfig {
        namespace: args.lease_namespace.clone(),
        name: args.lease_name.clone(),
        identity,
        duration: Duration::from_secs(args.lease_duration.max(2)),
        renew: Duration::from_secs((args.lease_duration / 3).max(1)),
    };
    let leader = Leadership::acquire(client.clone(), lease).await;
    metrics.set_leader(true);
    let outcome = tokio::select! {
        _ = controller::run(client, config, metrics.clone(), health) => {
            leader.release().await;
            info!("keyrotor stopped");
            Ok(())
        }
        _ = leader.hold() => {
            // Another replica may lead now: dropping the controller here stops every write.
            error!("lost the leader lease; stopping");
            Err(Error::LeaseLost)
        }
    };
    metrics.set_leader(false);
    outcome
}
