//! A plain-HTTP listener on 127.0.0.1 serving the same API, so the real operator binary and
//! kubectl can talk to the fake, plus a kubeconfig pointing at it.

use super::service::FakeService;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running listener; dropping it stops accepting connections.
pub struct HttpServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    counts: Arc<Counters>,
}

/// Requests received over this listener (in-process clients are not counted), so a
/// benchmark can tell the cost of the one binary that talks HTTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// GETs that are not watches (get, list, discovery).
    pub reads: u64,
    /// Watch requests (each opens a stream).
    pub watches: u64,
    /// Everything else: create, update, patch, apply, delete.
    pub writes: u64,
}

impl std::ops::Sub for RequestCounts {
    type Output = RequestCounts;
    fn sub(self, earlier: RequestCounts) -> RequestCounts {
        RequestCounts {
            reads: self.reads.saturating_sub(earlier.reads),
            watches: self.watches.saturating_sub(earlier.watches),
            writes: self.writes.saturating_sub(earlier.writes),
        }
    }
}

impl RequestCounts {
    /// Every request.
    pub fn total(&self) -> u64 {
        self.reads + self.watches + self.writes
    }
}

#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    watches: AtomicU64,
    writes: AtomicU64,
}

impl Counters {
    fn count<B>(&self, req: &::http::Request<B>) {
        let watch = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
        let counter = match *req.method() {
            ::http::Method::GET if watch => &self.watches,
            ::http::Method::GET => &self.reads,
            _ => &self.writes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl HttpServer {
    /// Binds 127.0.0.1 on an ephemeral port and serves `service` there.
    pub async fn start(service: FakeService) -> std::io::Result<Self> {
        Self::start_on(service, 0).await
    }

    /// Binds 127.0.0.1:`port` (0 for an ephemeral port).
    pub async fn start_on(service: FakeService, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counters::default());
        let counter = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let svc = service.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let hyper_svc = hyper::service::service_fn(move |req| {
                        counter.count(&req);
                        let mut svc = svc.clone();
                        tower::Service::call(&mut svc, req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), hyper_svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, task, counts })
    }

    /// Requests received over this listener so far.
    pub fn requests(&self) -> RequestCounts {
        RequestCounts {
            reads: self.counts.reads.load(Ordering::Relaxed),
            watches: self.counts.watches.load(Ordering::Relaxed),
            writes: self.counts.writes.load(Ordering::Relaxed),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig document whose current context points at this listener.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testkit\n  cluster:\n    server: {}\n\
             users:\n- name: testkit\n  user: {{}}\ncontexts:\n- name: testkit\n  context:\n    cluster: testkit\n    \
             user: testkit\n    namespace: {namespace}\ncurrent-context: testkit\npreferences: {{}}\n",
            self.url()
        )
    }

    /// Writes [`HttpServer::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig(namespace))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
