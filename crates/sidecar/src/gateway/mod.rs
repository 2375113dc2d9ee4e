//! `keyrotor-sidecar verifier` (also `keyrotor verifier`): a sidecar that
//! lets a gateway (nginx, Envoy, Traefik) verify rotating keys with no code
//! in the API behind it (docs/gateways.md).
//!
//! - `credential` (pure): the key and the client address a request carries.
//! - `gate`: one check against the mounted verifier Secret — accepted,
//!   retired, unknown, malformed — counted per version.
//! - `server`: the HTTP endpoint the gateway's subrequest reaches.
//! - `metrics`: `keyrotor_verifier_*` on the admin address.
//!
//! With `--report` (the default in a pod) it is also its own reporter: it
//! confirms the revision it has *loaded* (so confirmation means "this
//! endpoint checks against it"), writes `last-seen` for Traffic mode, and
//! writes the `traffic` annotation from which the operator warns about
//! clients that missed a rotation.

pub mod credential;
pub mod gate;
pub mod metrics;
pub mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use tracing::{info, warn};

use keyrotor_consumer::pod::{PodAnnotator, PodRef};
use keyrotor_consumer::reload::{spawn_reload, spawn_usage};
use keyrotor_consumer::usage::UsageReporter;
use keyrotor_consumer::verifier::Verifier;

use keyrotor_consumer::wire::{self as w, REPORTER_MANAGER, USAGE_MANAGER};

use crate::Error;
use crate::admin::{self, Health};
use crate::logging::LogFormat;
use credential::Source;
use gate::Gate;
use metrics::VerifierMetrics;
use server::Answers;

/// How often the mounted Secret is looked at (one `readlink`).
const RELOAD_EVERY: Duration = Duration::from_millis(250);

/// Command-line arguments of the verifier sidecar.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifierArgs {
    /// The mounted verifier (or combined) Secret of one ApiKeyRotation.
    #[arg(long, env = "KEYROTOR_DIR")]
    pub dir: PathBuf,
    /// Where the gateway sends its authorization subrequests.
    #[arg(long, default_value = "127.0.0.1:8181")]
    pub listen: SocketAddr,
    /// `/metrics`, `/livez`, `/readyz`.
    #[arg(long, default_value = "127.0.0.1:8182")]
    pub admin_address: SocketAddr,
    /// The request header that carries the key.
    #[arg(long, default_value = "authorization")]
    pub header: HeaderName,
    /// The scheme before the key in that header (`Bearer`); empty for a
    /// header that holds the key alone (`--header x-api-key --scheme ""`).
    #[arg(long, default_value = "Bearer")]
    pub scheme: String,
    /// The header the gateway puts the client's address in; named in the
    /// warning about a retired version. Empty: none.
    #[arg(long, default_value = "x-forwarded-for")]
    pub client_header: String,
    /// On allow, the matched version in this response header. Empty: none.
    #[arg(long, default_value = "x-keyrotor-version")]
    pub version_header: String,
    /// Confirm the loaded revision and report usage on this pod (needs
    /// POD_NAME and POD_NAMESPACE from the Downward API and `patch pods`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub report: bool,
    /// Seconds between usage and traffic reports (each at most one write).
    #[arg(long, default_value_t = 60)]
    pub usage_interval_seconds: u64,
    /// Log format.
    #[arg(long, env = "KEYROTOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn optional_header(name: &str) -> Result<Option<HeaderName>, Error> {
    if name.is_empty() {
        return Ok(None);
    }
    HeaderName::try_from(name)
        .map(Some)
        .map_err(|_| Error::HeaderName(name.to_string()))
}

/// Runs the sidecar until SIGTERM or Ctrl-C.
pub async fn main(args: VerifierArgs) -> Result<(), Error> {
    let pod = if args.report {
        Some(PodRef::from_env()?)
    } else {
        None
    };
    let namespace = pod
        .as_ref()
        .map(|p| p.namespace.clone())
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_default();
    let listener = crate::http::bind(args.listen).await?;
    let health = Arc::new(Health::default());
    health.waiting("waiting for the verifier Secret to be mounted");
    let verifier = Arc::new(open(&args.dir).await);
    let rotation = verifier.store().snapshot().meta.rotation.clone();
    let metrics = Arc::new(VerifierMetrics::new(&namespace, &rotation));
    let admin = admin::serve(args.admin_address, metrics.clone(), health.clone())
        .await
        .map_err(|source| Error::Admin {
            addr: args.admin_address,
            source,
        })?;
    let source = Source {
        header: args.header.clone(),
        scheme: (!args.scheme.is_empty()).then(|| args.scheme.clone()),
    };
    let challenge = source
        .scheme
        .as_deref()
        .and_then(|s| HeaderValue::from_str(s).ok());
    let answers = Answers {
        version_header: optional_header(&args.version_header)?,
        challenge,
    };
    let gate = Arc::new(Gate::new(
        verifier.clone(),
        source,
        optional_header(&args.client_header)?,
        metrics.clone(),
    ));
    let client = match &pod {
        Some(_) => Some(kube::Client::try_default().await.map_err(Error::Client)?),
        None => None,
    };
    let annotator = |manager| {
        client
            .clone()
            .zip(pod.clone())
            .map(|(c, p)| PodAnnotator::new(c, p, manager))
    };
    let _reload = spawn_reload(verifier.clone(), RELOAD_EVERY, annotator(REPORTER_MANAGER));
    let interval = Duration::from_secs(args.usage_interval_seconds.max(1));
    let mut tasks = vec![];
    if let Some(pod) = annotator(USAGE_MANAGER) {
        let usage = UsageReporter::new(pod.clone(), &rotation, interval);
        tasks.push(spawn_usage(verifier.usage().clone(), usage, interval / 4));
        tasks.push(tokio::spawn(report_traffic(
            gate.clone(),
            pod,
            rotation.clone(),
            interval,
        )));
    }
    tasks.push(tokio::spawn(show_revision(verifier.clone(), metrics)));
    health.ready();
    info!(%rotation, dir = %args.dir.display(), admin = %admin, report = args.report, "verifier started");
    tokio::select! {
        () = server::serve(listener, gate, answers) => {}
        () = shutdown_signal() => info!("verifier stopping"),
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// Waits for kubelet to populate the volume (a pod may start before).
async fn open(dir: &std::path::Path) -> Verifier {
    let mut said = false;
    loop {
        match Verifier::open(dir) {
            Ok(v) => return v,
            Err(e) => {
                if !said {
                    warn!(error = %e, "keys not readable yet; waiting");
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Keeps the loaded-revision gauge current, and a retired-presentation
/// series for every version retired since the process started.
async fn show_revision(verifier: Arc<Verifier>, metrics: Arc<VerifierMetrics>) {
    loop {
        metrics.loaded(verifier.store().snapshot().meta.revision);
        for v in verifier.retired_versions() {
            metrics.retired_known(v);
        }
        tokio::time::sleep(RELOAD_EVERY).await;
    }
}

/// Writes the traffic annotation every `interval` when it changed: at most
/// one pod write per interval, none while idle.
async fn report_traffic(gate: Arc<Gate>, pod: PodAnnotator, rotation: String, interval: Duration) {
    let key = w::traffic(&rotation);
    let mut written = None;
    loop {
        tokio::time::sleep(interval).await;
        let now = gate.traffic();
        if written.as_ref() == Some(&now) || now == Default::default() {
            continue;
        }
        match pod
            .set(&BTreeMap::from([(key.clone(), now.format())]))
            .await
        {
            Ok(()) => written = Some(now),
            Err(e) => warn!(error = %e, "cannot report traffic; retrying later"),
        }
    }
}

/// Resolves on SIGTERM (kubelet stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
