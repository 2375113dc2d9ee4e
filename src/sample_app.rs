//! `keyrotor sample-app`: the client library in a tiny service, for trying
//! keyrotor on real pods (the real-node tests run it).
//!
//! - `verifier --dir D --listen ADDR`: answers `GET /` with 200 when the
//!   `Authorization: Bearer` key is accepted by the directory's verifier
//!   files, else 401.
//! - `presenter --dir D --target ADDR… --record FILE`: calls the verifiers in
//!   turn with its current key every `--interval-ms` and appends each outcome
//!   to FILE as a JSON line (`{"ms":…,"target":…,"version":…,"status":…}`;
//!   status 0: no answer), never the key. With `--from-env` it sends the
//!   key of `$API_KEY` (version `$API_KEY_VERSION`) read once at start, as an
//!   app taking its key from a `secretKeyRef` environment variable does.
//!
//! Both re-check the volume before every request (a `readlink`), so they
//! use what kubelet last delivered, as the reporter sidecar reports it.
//! HTTP on the sidecar crate's hyper server loop and client
//! (`keyrotor_sidecar::http`). Built with the `testkit` feature only: tests
//! run it, release images do not ship it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::AUTHORIZATION;
use hyper::{Request, Response, StatusCode};

use keyrotor_consumer::keys::{KeyError, SecretKey};
use keyrotor_consumer::presenter::Presenter;
use keyrotor_consumer::verifier::Verifier;
use keyrotor_sidecar::http::{self, Limits};

#[derive(clap::Subcommand, Debug, Clone)]
pub enum SampleApp {
    /// Serve `GET /`, accepting the keys the verifier directory accepts.
    Verifier {
        /// The mounted verifier (or combined) Secret.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
    },
    /// Call verifiers with the current key, and record every outcome.
    Presenter {
        /// The mounted presenter (or combined) Secret.
        #[arg(long)]
        dir: PathBuf,
        /// Verifiers to call in turn (repeat).
        #[arg(long = "target", required = true)]
        targets: Vec<SocketAddr>,
        /// Append one JSON line per request here.
        #[arg(long)]
        record: PathBuf,
        #[arg(long, default_value_t = 50)]
        interval_ms: u64,
        /// Send `$API_KEY` (version `$API_KEY_VERSION`), read once at start,
        /// instead of the volume's key: a change reaches it only on restart.
        #[arg(long)]
        from_env: bool,
    },
}

/// Why the sample app stopped. Never holds `$API_KEY` (I4).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The verifier's address cannot be bound.
    #[error(transparent)]
    Listen(#[from] keyrotor_sidecar::Error),
    #[error("API_KEY is not set")]
    NoKey,
    /// `$API_KEY` is not usable as a key (the reason, not the key).
    #[error("API_KEY is not a key: {0}")]
    NotAKey(#[source] KeyError),
    #[error("API_KEY_VERSION is not a version")]
    NoVersion,
    /// The record file cannot be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line cannot be appended to the record.
    #[error("cannot record: {0}")]
    Record(#[source] std::io::Error),
}

/// Where a presenter takes its key from.
enum Source {
    Volume(Presenter),
    /// Read once at start: (version, key).
    Env(u64, SecretKey),
}

impl Source {
    fn current(&self) -> Option<(u64, SecretKey)> {
        match self {
            Source::Volume(p) => {
                if let Err(e) = p.refresh() {
                    tracing::warn!(error = %e, "cannot reload keys; keeping the loaded ones");
                }
                p.current()
            }
            Source::Env(v, k) => Some((*v, k.clone())),
        }
    }
}

pub async fn main(app: SampleApp) -> Result<(), Error> {
    match app {
        SampleApp::Verifier { dir, listen } => {
            let verifier = Arc::new(open(|| Verifier::open(&dir)).await);
            serve(verifier, listen).await
        }
        SampleApp::Presenter {
            dir,
            targets,
            record,
            interval_ms,
            from_env,
        } => {
            let source = if from_env {
                let key = std::env::var("API_KEY").map_err(|_| Error::NoKey)?;
                let key = SecretKey::adopt(key.into_bytes()).map_err(Error::NotAKey)?;
                let version = std::env::var("API_KEY_VERSION")
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or(Error::NoVersion)?;
                Source::Env(version, key)
            } else {
                Source::Volume(open(|| Presenter::open(&dir)).await)
            };
            present(source, &targets, record, Duration::from_millis(interval_ms)).await
        }
    }
}

/// Waits for kubelet to populate the volume (a pod may start before).
async fn open<T, E: std::fmt::Display>(f: impl Fn() -> Result<T, E>) -> T {
    loop {
        match f() {
            Ok(t) => return t,
            Err(e) => {
                tracing::warn!(error = %e, "keys not readable yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A test service: a few connections, short heads.
const LIMITS: Limits = Limits {
    header_timeout: Duration::from_secs(5),
    max_head: 16 * 1024,
    max_headers: 64,
    max_connections: 256,
};

async fn serve(verifier: Arc<Verifier>, listen: SocketAddr) -> Result<(), Error> {
    let listener = http::bind(listen).await?;
    tracing::info!(address = %listen, "sample verifier listening");
    http::serve(listener, LIMITS, move |req| answer(req, &verifier)).await;
    Ok(())
}

/// 200 when the `Authorization: Bearer` key is accepted, else 401.
fn answer<B>(req: &Request<B>, verifier: &Verifier) -> Response<Full<Bytes>> {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default()
        .trim_ascii();
    if let Err(e) = verifier.refresh() {
        tracing::warn!(error = %e, "cannot reload keys; keeping the loaded ones");
    }
    let (status, body) = match verifier.verify(presented) {
        Some(v) => (StatusCode::OK, format!("OK v{v}\n")),
        None => (StatusCode::UNAUTHORIZED, "Unauthorized\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

async fn present(
    source: Source,
    targets: &[SocketAddr],
    record: PathBuf,
    every: Duration,
) -> Result<(), Error> {
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&record)
        .map_err(|source| Error::Open {
            path: record.clone(),
            source,
        })?;
    tracing::info!(?targets, "sample presenter calling");
    for target in targets.iter().cycle() {
        let (version, status) = match source.current() {
            Some((v, key)) => (v, call(*target, key.expose()).await.unwrap_or(0)),
            None => (0, 0),
        };
        let ms = jiff::Timestamp::now().as_millisecond();
        let line = format!(
            "{{\"ms\":{ms},\"target\":\"{target}\",\"version\":{version},\"status\":{status}}}\n"
        );
        out.write_all(line.as_bytes()).map_err(Error::Record)?;
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// One request; the HTTP status, or an I/O error (the verifier is down).
async fn call(target: SocketAddr, key: &str) -> std::io::Result<u16> {
    let bearer = format!("Bearer {key}");
    let (status, _) = http::get(target, "/", &[(AUTHORIZATION, &bearer)]).await?;
    Ok(status)
}
