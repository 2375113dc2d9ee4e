//! `cargo bench --bench gateway`: what the `keyrotor verifier` endpoint
//! costs a gateway, measured in one run on this machine (docs/performance.md):
//!
//! 1. checks per second of the check itself (headers → decision: key
//!    extraction, SHA-256, constant-time comparison with every accepted
//!    digest, counts), on one thread;
//! 2. the endpoint over HTTP/1.1 keep-alive on loopback, served on one
//!    thread: latency p50/p99 of one check at a time, and checks per second
//!    with 8 connections;
//! 3. Debian's nginx (`/usr/sbin/nginx`; skipped when missing) in front of a
//!    small upstream, with and without `auth_request` to the endpoint: p50/p99
//!    and throughput of both, as a ratio, on the same upstream and client.
//!
//! Every process it starts is stopped by PID; all traffic is on 127.0.0.1.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use keyrotor::consumer::verifier::Verifier;
use keyrotor_sidecar::gateway::credential::Source;
use keyrotor_sidecar::gateway::gate::{Decision, Gate};
use keyrotor_sidecar::gateway::metrics::VerifierMetrics;
use keyrotor_sidecar::gateway::server::{self, Answers};
use keyrotor_testsupport::volume::{self, Volume};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LATENCY_REQUESTS: usize = 5_000;
const LOAD: Duration = Duration::from_secs(3);
const CONNECTIONS: usize = 8;

fn main() {
    let keys: Vec<_> = (0..2).map(|_| volume::key()).collect();
    let mut vol = Volume::new("bench-gateway");
    vol.publish(&volume::verifier(
        "bench",
        1,
        &[(1, &keys[0]), (2, &keys[1])],
    ));
    let verifier = Arc::new(Verifier::open(&vol.dir).unwrap());
    let source = Source {
        header: HeaderName::from_static("authorization"),
        scheme: Some("Bearer".into()),
    };
    let metrics = Arc::new(VerifierMetrics::new("bench", "bench"));
    let gate = Arc::new(Gate::new(
        verifier,
        source,
        Some(HeaderName::from_static("x-forwarded-for")),
        metrics,
    ));
    let key = keys[1].expose().to_string();

    println!(
        "keyrotor verifier endpoint, one run on this machine ({} cores)",
        cores()
    );
    println!();
    in_process(&gate, &key);

    // The endpoint on one thread of its own, as `keyrotor verifier` runs.
    let endpoint = spawn_server(gate.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let lat = latency(endpoint, "/", &key).await;
        let rate = throughput(endpoint, "/", &key).await;
        println!(
            "over HTTP (keep-alive, served on one thread): p50 {:.0} µs, p99 {:.0} µs one at a time; {rate:.0} checks/s with {CONNECTIONS} connections",
            lat.0, lat.1
        );
        println!();
        behind_nginx(endpoint, &key).await;
    });
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The check alone: headers in, decision out.
fn in_process(gate: &Gate, key: &str) {
    let mut ok = HeaderMap::new();
    ok.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
    );
    let mut wrong = HeaderMap::new();
    wrong.insert(
        "authorization",
        HeaderValue::from_static("Bearer not-a-key-of-any-version-0123456789abcdef"),
    );
    for (what, headers, allow) in [("accepted key", &ok, true), ("unknown key", &wrong, false)] {
        let n = 300_000;
        let started = Instant::now();
        for _ in 0..n {
            let d = gate.decide(std::hint::black_box(headers));
            assert_eq!(matches!(d, Decision::Allow(_)), allow);
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "check in process, {what}: {:.0} checks/s on one thread ({:.2} µs each, {n} checks)",
            n as f64 / secs,
            secs / n as f64 * 1e6
        );
    }
}

fn spawn_server(gate: Arc<Gate>) -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    std_listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            let answers = Answers {
                version_header: Some(HeaderName::from_static("x-keyrotor-version")),
                challenge: None,
            };
            server::serve(listener, gate, answers).await;
        });
    });
    addr
}

/// A keep-alive HTTP/1.1 connection sending the same request again and again.
struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr, path: &str, key: &str) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n\r\n");
        Conn {
            stream,
            request: request.into_bytes(),
            buf: Vec::with_capacity(4096),
        }
    }

    /// One request; its status.
    async fn call(&mut self) -> u16 {
        self.stream.write_all(&self.request).await.unwrap();
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap_or(0));
                while self.buf.len() < end + 4 + length {
                    let n = self.stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the server closed the connection");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                return head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// p50 and p99 in µs of one request at a time.
async fn latency(addr: SocketAddr, path: &str, key: &str) -> (f64, f64) {
    let mut conn = Conn::open(addr, path, key).await;
    for _ in 0..200 {
        assert_eq!(conn.call().await, 200);
    }
    let mut samples = Vec::with_capacity(LATENCY_REQUESTS);
    for _ in 0..LATENCY_REQUESTS {
        let t = Instant::now();
        assert_eq!(conn.call().await, 200);
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

/// Requests per second with [`CONNECTIONS`] connections for [`LOAD`].
async fn throughput(addr: SocketAddr, path: &str, key: &str) -> f64 {
    let deadline = Instant::now() + LOAD;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut conn = Conn::open(addr, path, key).await;
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                assert_eq!(conn.call().await, 200);
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / LOAD.as_secs_f64()
}

/// A tiny upstream: 200 and two bytes, keep-alive.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = find(&buf, b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if s.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

struct Nginx(Child, std::path::PathBuf);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

async fn behind_nginx(endpoint: SocketAddr, key: &str) {
    let binary = std::path::Path::new("/usr/sbin/nginx");
    if !binary.exists() {
        println!("nginx: SKIPPED (/usr/sbin/nginx missing: .ci/debs nginx)");
        return;
    }
    let app = upstream().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("keyrotor-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = format!(
        r#"daemon off;
# One process that serves (what one worker does), so stopping it by PID
# stops all of nginx: a killed master would orphan its worker.
master_process off;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream app {{ server {app}; keepalive 16; keepalive_requests 10000000; }}
  upstream keyrotor_verifier {{ server {endpoint}; keepalive 16; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port};
    # One client connection for the whole run (the default closes it after 1,000).
    keepalive_requests 10000000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /open {{ proxy_pass http://app; }}
    location /checked {{
      auth_request /_keyrotor;
      proxy_pass http://app;
    }}
    location = /_keyrotor {{
      internal;
      proxy_pass http://keyrotor_verifier;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }}
  }}
}}
"#,
        d = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(binary)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg("stderr")
        .spawn()
        .expect("start nginx");
    let _nginx = Nginx(child, dir);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open = (
        latency(addr, "/open", key).await,
        throughput(addr, "/open", key).await,
    );
    let checked = (
        latency(addr, "/checked", key).await,
        throughput(addr, "/checked", key).await,
    );
    println!(
        "nginx {} (one serving process) in front of one upstream, same client:",
        version(binary)
    );
    println!("| | p50 | p99 | requests/s ({CONNECTIONS} connections) |");
    println!("|---|---|---|---|");
    for (what, ((p50, p99), rate)) in [
        ("without auth_request", open),
        ("with auth_request", checked),
    ] {
        println!("| {what} | {p50:.0} µs | {p99:.0} µs | {rate:.0} |");
    }
    println!(
        "added by the check: p50 {:+.0} µs, p99 {:+.0} µs; throughput with/without {:.2}",
        checked.0.0 - open.0.0,
        checked.0.1 - open.0.1,
        checked.1 / open.1
    );
}

fn version(binary: &std::path::Path) -> String {
    let out = Command::new(binary).arg("-v").output().unwrap();
    String::from_utf8_lossy(&out.stderr)
        .trim()
        .rsplit('/')
        .next()
        .unwrap_or("?")
        .to_string()
}
