//! `cargo bench --bench gateway`: what the `keyrotor verifier` endpoint
//! costs a gateway, measured in one run on this machine (docs/performance.md):
//!
//! 1. checks per second of the check itself (headers → decision: key
//!    extraction, SHA-256, constant-time comparison with every accepted
//!    digest, counts), on one thread;
//! 2. the endpoint over HTTP/1.1 keep-alive on loopback, served on one
//!    thread: latency p50/p99 of one check at a time, and checks per second
//!    with 8 connections;
//! 3. three gateways in turn in front of a small upstream, with and without
//!    the check, on the same endpoint, upstream and client: Debian's nginx
//!    (`auth_request`; skipped when `/usr/sbin/nginx` is missing), Envoy
//!    (`ext_authz`, HTTP service) and Traefik (`ForwardAuth`), the last two
//!    with the examples' configuration (tests/cluster installs Envoy and
//!    builds Traefik the first time, cached after; skipped, saying why, when
//!    it cannot): p50/p99 and throughput of both, as a ratio, one row each.
//!
//! Every process it starts is stopped by PID; all traffic is on 127.0.0.1.

mod gateways;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use keyrotor::consumer::verifier::Verifier;
use keyrotor_sidecar::gateway::credential::Source;
use keyrotor_sidecar::gateway::gate::{Decision, Gate};
use keyrotor_sidecar::gateway::metrics::VerifierMetrics;
use keyrotor_sidecar::gateway::server::{self, Answers};
use keyrotor_testsupport::http1::read_request;
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
        behind_gateways(endpoint, &key).await;
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
    warm(&mut conn).await;
    let mut samples = Vec::with_capacity(LATENCY_REQUESTS);
    for _ in 0..LATENCY_REQUESTS {
        samples.push(timed(&mut conn).await);
    }
    quantiles(samples)
}

async fn warm(conn: &mut Conn) {
    for _ in 0..200 {
        assert_eq!(conn.call().await, 200);
    }
}

/// One request's time in µs.
async fn timed(conn: &mut Conn) -> f64 {
    let t = Instant::now();
    assert_eq!(conn.call().await, 200);
    t.elapsed().as_secs_f64() * 1e6
}

fn quantiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

/// Requests per second with [`CONNECTIONS`] connections for [`LOAD`].
async fn throughput(addr: SocketAddr, path: &str, key: &str) -> f64 {
    requests_in(addr, path, key, LOAD).await as f64 / LOAD.as_secs_f64()
}

/// Requests answered with [`CONNECTIONS`] connections in `time`.
async fn requests_in(addr: SocketAddr, path: &str, key: &str, time: Duration) -> u64 {
    let deadline = Instant::now() + time;
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
    total
}

/// `/open` and `/checked` through one gateway, side by side so that what
/// else the machine does weighs on both alike: the latencies from requests
/// alternating between the two routes, the rates from [`LOAD`] each in
/// alternating halves.
async fn side_by_side(addr: SocketAddr, key: &str) -> (Figures, Figures) {
    let mut open = Conn::open(addr, "/open", key).await;
    let mut checked = Conn::open(addr, "/checked", key).await;
    warm(&mut open).await;
    warm(&mut checked).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..LATENCY_REQUESTS {
        a.push(timed(&mut open).await);
        b.push(timed(&mut checked).await);
    }
    let half = LOAD / 2;
    let (mut n_open, mut n_checked) = (0, 0);
    for _ in 0..2 {
        n_open += requests_in(addr, "/open", key, half).await;
        n_checked += requests_in(addr, "/checked", key, half).await;
    }
    let rate = |n: u64| n as f64 / LOAD.as_secs_f64();
    (
        (quantiles(a), rate(n_open)),
        (quantiles(b), rate(n_checked)),
    )
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
                while read_request(&mut s, &mut buf).await.is_some() {
                    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if s.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Whether `path` answers 200 through `addr` (a fresh connection; any
/// error is a no).
async fn answers(addr: SocketAddr, path: &str, key: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Latency and throughput of one route.
type Figures = ((f64, f64), f64);

/// nginx, Envoy and Traefik in turn in front of the same upstream, each
/// measured without and with the check by the same client: one table.
async fn behind_gateways(endpoint: SocketAddr, key: &str) {
    let app = upstream().await;
    type Start = fn(SocketAddr, SocketAddr) -> Result<gateways::Running, String>;
    let starts: [(&str, Start); 3] = [
        ("nginx", gateways::nginx),
        ("Envoy", gateways::envoy),
        ("Traefik", gateways::traefik),
    ];
    let mut rows: Vec<(String, Figures, Figures)> = Vec::new();
    for (what, start) in starts {
        let gateway = match start(endpoint, app) {
            Ok(g) => g,
            Err(why) => {
                println!("{what}: SKIPPED ({why})");
                continue;
            }
        };
        let started = Instant::now();
        while !(answers(gateway.addr, "/open", key).await
            && answers(gateway.addr, "/checked", key).await)
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} did not start",
                gateway.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (open, checked) = side_by_side(gateway.addr, key).await;
        rows.push((gateway.name.clone(), open, checked));
    }
    println!(
        "Gateways in front of one upstream, same client and endpoint, each serving on one thread \
         (nginx one process, Envoy --concurrency 1, Traefik GOMAXPROCS=1); {LATENCY_REQUESTS} \
         requests one at a time for p50/p99 (alternating between the routes), {}s with \
         {CONNECTIONS} connections for requests/s (in alternating halves):",
        LOAD.as_secs()
    );
    println!(
        "| gateway, check | p50 without | p50 with | p50 added | p99 without | p99 with | p99 added | requests/s without | requests/s with | with/without |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, ((p50, p99), open_rate), ((c50, c99), checked_rate)) in rows {
        println!(
            "| {name} | {p50:.0} µs | {c50:.0} µs | {:+.0} µs | {p99:.0} µs | {c99:.0} µs | {:+.0} µs | {open_rate:.0} | {checked_rate:.0} | {:.2} |",
            c50 - p50,
            c99 - p99,
            checked_rate / open_rate
        );
    }
}
