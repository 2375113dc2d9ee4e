//! The HTTP/1.1 endpoint gateways call: nginx `auth_request`, Envoy
//! `ext_authz` (HTTP service) and Traefik `ForwardAuth` all send the
//! client's headers and read only the status: 2xx allows, 401 denies. Any
//! method and path is a check (Envoy forwards the original ones).
//!
//! Bounded for hostile clients: headers must arrive within
//! [`HEADER_TIMEOUT`] and fit [`MAX_HEAD`] bytes and [`MAX_HEADERS`] lines
//! (hyper answers 431 or closes otherwise), the body is never read, and at
//! most [`MAX_CONNECTIONS`] are served at once (the rest wait in the
//! kernel's backlog), so memory stays bounded whatever arrives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info};

use super::gate::{Decision, Gate};

pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Above nginx's default `large_client_header_buffers` (4 × 8 KiB), so what
/// nginx accepts from a client reaches the check.
pub const MAX_HEAD: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 100;
pub const MAX_CONNECTIONS: usize = 1024;

/// How a check answers.
#[derive(Clone, Debug)]
pub struct Answers {
    /// On allow, the matched version in this response header (for the
    /// upstream's logs); `None`: no header.
    pub version_header: Option<HeaderName>,
    /// On deny, `WWW-Authenticate: <scheme>`.
    pub challenge: Option<HeaderValue>,
}

/// Serves checks on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, gate: Arc<Gate>, answers: Answers) {
    let local = listener.local_addr().ok();
    info!(address = ?local, "verifier endpoint listening");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let answers = Arc::new(answers);
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors, say: wait instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (gate, answers) = (gate.clone(), answers.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = answer(&gate, &answers, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .max_headers(MAX_HEADERS)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                debug!(%peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
}

fn answer<B>(gate: &Gate, answers: &Answers, req: &Request<B>) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    match gate.decide(req.headers()) {
        Decision::Allow(v) => {
            if let Some(h) = &answers.version_header {
                response
                    .headers_mut()
                    .insert(h.clone(), HeaderValue::from(v));
            }
        }
        Decision::Deny(_) => {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            if let Some(c) = &answers.challenge {
                response
                    .headers_mut()
                    .insert(hyper::header::WWW_AUTHENTICATE, c.clone());
            }
        }
    }
    response
}

/// Binds `addr` (port 0: any free port) and returns the listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}
