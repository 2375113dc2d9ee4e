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

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use keyrotor_consumer::keys::SecretKey;
use keyrotor_consumer::presenter::Presenter;
use keyrotor_consumer::verifier::Verifier;

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

pub async fn main(app: SampleApp) -> Result<(), String> {
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
                let key = std::env::var("API_KEY").map_err(|_| "API_KEY is not set")?;
                let key = SecretKey::adopt(key.into_bytes())
                    .map_err(|e| format!("API_KEY is not a key: {e}"))?;
                let version = std::env::var("API_KEY_VERSION")
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or("API_KEY_VERSION is not a version")?;
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

async fn serve(verifier: Arc<Verifier>, listen: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::info!(address = %listen, "sample verifier listening");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let verifier = verifier.clone();
        tokio::spawn(async move {
            let _ = answer(stream, &verifier).await;
        });
    }
}

async fn answer(mut stream: TcpStream, verifier: &Verifier) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap_or(Ok(0))?;
    let request = String::from_utf8_lossy(&buf[..n]);
    let presented = request
        .lines()
        .find_map(|l| l.strip_prefix("Authorization: Bearer "))
        .unwrap_or("")
        .trim()
        .to_string();
    if let Err(e) = verifier.refresh() {
        tracing::warn!(error = %e, "cannot reload keys; keeping the loaded ones");
    }
    let (code, body) = match verifier.verify(presented.as_bytes()) {
        Some(v) => (200, format!("OK v{v}\n")),
        None => (401, "Unauthorized\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if code == 200 { "OK" } else { "Unauthorized" },
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

async fn present(
    source: Source,
    targets: &[SocketAddr],
    record: PathBuf,
    every: Duration,
) -> Result<(), String> {
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&record)
        .map_err(|e| format!("cannot open {}: {e}", record.display()))?;
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
        out.write_all(line.as_bytes())
            .map_err(|e| format!("cannot record: {e}"))?;
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// One request; the HTTP status, or an I/O error (the verifier is down).
async fn call(target: SocketAddr, key: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(target).await?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: verifier\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}
