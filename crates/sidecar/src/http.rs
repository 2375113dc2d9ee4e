//! The HTTP/1.1 server loop of keyrotor's endpoints, on hyper: the verifier
//! endpoint, the admin server and the sample app all accept connections
//! here, each with its own [`Limits`] and a synchronous handler (every
//! answer is computed from the request's head alone; no body is read). And
//! the one-request client that probes and tests use.
//!
//! Bounded for hostile clients: a request head must arrive within the
//! header timeout and fit the head and header-count limits (hyper answers
//! 431 or closes otherwise), and at most `max_connections` are served at
//! once (the rest wait in the kernel's backlog).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper::header::{CONNECTION, HOST, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::debug;

/// What one server accepts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The whole request head must arrive within this.
    pub header_timeout: Duration,
    /// Bytes of a request head (hyper's minimum is 8 KiB).
    pub max_head: usize,
    /// Header lines of a request.
    pub max_headers: usize,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Serves `handler` on `listener` until the task is dropped.
pub async fn serve<B, F>(listener: TcpListener, limits: Limits, handler: F)
where
    F: Fn(&Request<Incoming>) -> Response<B> + Send + Sync + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let handler = Arc::new(handler);
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
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let response = handler(&req);
                async move { Ok::<_, Infallible>(response) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_head)
                .max_headers(limits.max_headers)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                debug!(%peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
}

/// Binds `addr` (port 0: any free port) and returns the listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::Listen { addr, source })
}

/// One `GET path` on its own connection, with `headers`: the status and the
/// body (lossily as text). Header values are marked sensitive, so a key
/// sent here is never printed by hyper.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(HeaderName, &str)],
) -> std::io::Result<(u16, String)> {
    let mut request = Request::get(path)
        .header(HOST, "localhost")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(std::io::Error::other)?;
    for (name, value) in headers {
        let mut value = HeaderValue::from_str(value).map_err(std::io::Error::other)?;
        value.set_sensitive(true);
        request.headers_mut().append(name.clone(), value);
    }
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    // Ends when the server closes (`Connection: close`) or on error.
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
