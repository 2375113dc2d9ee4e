//! The admin HTTP server of every keyrotor process — the operator and the
//! verifier sidecar alike: `/metrics` (Prometheus text format, see
//! [`exposition`]), `/livez` (the process answers) and `/readyz` (see
//! [`health`]), on the same hyper server loop as the verifier endpoint
//! ([`crate::http`]).
//!
//! It lives in the sidecar crate, the smaller of the two binaries' crates:
//! the operator links this crate anyway (for `keyrotor reporter` and
//! `keyrotor verifier`), so one home here gives both one HTTP stack while
//! the sidecar still never links the operator.

pub mod exposition;
pub mod health;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tracing::info;

use crate::http::{self, Limits};
pub use exposition::Exposition;
pub use health::Health;

/// Probes and scrapers send a few short headers; anything more is not one.
const LIMITS: Limits = Limits {
    header_timeout: Duration::from_secs(5),
    max_head: 16 * 1024,
    max_headers: 64,
    max_connections: 64,
};

const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` and serves until the task is dropped; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<dyn Exposition>,
    health: Arc<Health>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    info!(address = %local, "admin server listening");
    tokio::spawn(http::serve(listener, LIMITS, move |req| {
        answer(req, &*metrics, &health)
    }));
    Ok(local)
}

/// Any method; the path alone (without the query) picks the answer.
fn answer<B>(req: &Request<B>, metrics: &dyn Exposition, health: &Health) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, METRICS_TYPE, metrics.encode()),
        "/livez" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" => match health.waiting_for() {
            None => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            Some(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {reason}\n"),
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /livez or /readyz\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A minimal GET for tests and probes: status code and body.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http::get(addr, path, &[]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Exposition for Fixed {
        fn encode(&self) -> String {
            "# TYPE up gauge\nup 1\n".into()
        }
    }

    async fn start() -> (SocketAddr, Arc<Health>) {
        let health = Arc::new(Health::default());
        let addr = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Fixed),
            health.clone(),
        )
        .await
        .unwrap();
        (addr, health)
    }

    #[tokio::test]
    async fn readyz_says_what_it_waits_for_until_ready_and_livez_answers_throughout() {
        let (addr, health) = start().await;
        health.waiting("waiting for the verifier Secret to be mounted");
        assert_eq!(
            get(addr, "/readyz").await.unwrap(),
            (
                503,
                "not ready: waiting for the verifier Secret to be mounted\n".into()
            )
        );
        assert_eq!(get(addr, "/livez").await.unwrap(), (200, "ok\n".into()));
        health.ready();
        assert_eq!(get(addr, "/readyz").await.unwrap(), (200, "ok\n".into()));
    }

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text_and_other_paths_are_not_found() {
        let (addr, _) = start().await;
        assert_eq!(
            get(addr, "/metrics?debug=1").await.unwrap(),
            (200, "# TYPE up gauge\nup 1\n".into())
        );
        let (status, body) = get(addr, "/").await.unwrap();
        assert_eq!(status, 404);
        assert!(body.contains("/metrics, /livez or /readyz"), "{body}");
    }

    #[tokio::test]
    async fn a_scraper_sees_the_text_format_content_type() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (addr, _) = start().await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut head = String::new();
        s.read_to_string(&mut head).await.unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{head}"
        );
    }
}
