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

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tracing::info;

use super::gate::{Decision, Gate};
use crate::http::{self, Limits};

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
    let limits = Limits {
        header_timeout: HEADER_TIMEOUT,
        max_head: MAX_HEAD,
        max_headers: MAX_HEADERS,
        max_connections: MAX_CONNECTIONS,
    };
    http::serve(listener, limits, move |req| answer(&gate, &answers, req)).await
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
