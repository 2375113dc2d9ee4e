//! `cargo bench --bench sidecars`: what each sidecar costs a pod in memory,
//! as the slim `keyrotor-sidecar` binary and as the operator binary's
//! subcommand, side by side in one run (docs/performance.md#the-sidecar-binary).
//!
//! - The verifier at 1,000 checks/s for [`LOAD`]: [`CONNECTIONS`]
//!   keep-alive connections on loopback, each paced at its share, one check
//!   in ten an unknown key; `--report` on, against the in-memory API over a
//!   kubeconfig (plain HTTP on loopback), usage and traffic reported every
//!   second; a rotation on its volume halfway.
//! - The reporter across [`ROTATIONS`] rotations: a temporary directory
//!   swapped the way kubelet swaps `..data`, one swap a second, each
//!   awaited on the pod in the in-memory API (`--poll-seconds 1`).
//!
//! `-- --also PATH` (repeatable) measures another build of `keyrotor-sidecar`
//! beside them, such as `--profile sidecar`'s (`target/sidecar/`).
//!
//! Memory is the process's own accounting in /proc/PID/status, read every
//! 250 ms: "steady" is the median VmRSS of the second half of the run,
//! "peak" is VmHWM at its end, with the RssAnon/RssFile split of the last
//! sample. Every process it starts is stopped by PID; all traffic is on
//! 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use keyrotor::wire as k;
use keyrotor_testkit::{FakeApi, HttpServer};
use keyrotor_testsupport::binaries;
use keyrotor_testsupport::volume::{self, Volume};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RATE: u64 = 1_000;
const CONNECTIONS: u64 = 8;
const LOAD: Duration = Duration::from_secs(30);
const ROTATIONS: u64 = 10;
const NS: &str = "default";

/// A started sidecar, stopped by PID when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One /proc/PID/status reading, in KiB.
#[derive(Clone, Copy, Default)]
struct Memory {
    rss: u64,
    hwm: u64,
    anon: u64,
    file: u64,
}

fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Some(Memory {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    })
}

/// Samples `pid` every 250 ms until `done`; returns the samples.
fn sample(pid: u32, done: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Memory>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !done.load(Ordering::SeqCst) {
            if let Some(m) = memory(pid) {
                samples.push(m);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        samples
    })
}

/// KiB resident of `binary`'s own mappings and of every other file
/// mapping (glibc, libm, the loader), from /proc/PID/smaps.
fn code(pid: u32, binary: &Path) -> (u64, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let binary = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    let (mut own, mut libraries, mut file) = (0, 0, None::<bool>);
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields
            .first()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            file = fields
                .get(5)
                .filter(|p| p.starts_with('/'))
                .map(|p| Path::new(p) == binary);
        } else if fields.first() == Some(&"Rss:") {
            let kib: u64 = fields[1].parse().unwrap_or(0);
            match file {
                Some(true) => own += kib,
                Some(false) => libraries += kib,
                None => {}
            }
        }
    }
    (own, libraries)
}

/// "steady / peak (anon + file)" in MiB.
fn summary(samples: &[Memory]) -> String {
    let mut second_half: Vec<u64> = samples[samples.len() / 2..].iter().map(|m| m.rss).collect();
    second_half.sort_unstable();
    let steady = second_half[second_half.len() / 2];
    let last = samples.last().copied().unwrap_or_default();
    let mib = |kib: u64| kib as f64 / 1024.0;
    format!(
        "steady {:.2} MiB, peak {:.2} MiB (last sample: anon {:.2} + file {:.2})",
        mib(steady),
        mib(last.hwm),
        mib(last.anon),
        mib(last.file)
    )
}

/// The file part split: the binary's own pages and the shared libraries'.
fn code_summary(pid: u32, binary: &Path) -> String {
    let (own, libraries) = code(pid, binary);
    format!(
        "file = binary {:.2} + libraries {:.2} MiB",
        own as f64 / 1024.0,
        libraries as f64 / 1024.0
    )
}

fn main() {
    let mut binaries: Vec<(String, PathBuf)> = vec![
        ("keyrotor-sidecar".into(), binaries::sidecar().to_path_buf()),
        ("keyrotor".into(), env!("CARGO_BIN_EXE_keyrotor").into()),
    ];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--also" {
            let path = PathBuf::from(args.next().expect("--also PATH"));
            binaries.push((path.display().to_string(), path));
        }
    }
    for (name, binary) in &binaries {
        let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
        println!("{name}: {:.1} MiB on disk", size as f64 / 1048576.0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "\nverifier, {RATE} checks/s for {} s over {CONNECTIONS} keep-alive connections:",
            LOAD.as_secs()
        );
        for (name, binary) in &binaries {
            println!("  {name} verifier: {}", verifier(binary).await);
        }
        println!("\nreporter, {ROTATIONS} rotations one second apart:");
        for (name, binary) in &binaries {
            println!("  {name} reporter: {}", reporter(binary).await);
        }
    });
}

/// The in-memory API on loopback with pod `name`, and a kubeconfig for it.
async fn api_with_pod(name: &str, kubeconfig: &Path) -> (FakeApi, HttpServer) {
    let api = FakeApi::new();
    let pods: Api<Pod> = Api::namespaced(api.client(), NS);
    let pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let server = api.listen().await.expect("listen on 127.0.0.1");
    server.write_kubeconfig(kubeconfig, NS).unwrap();
    (api, server)
}

async fn annotations(api: &FakeApi, name: &str) -> BTreeMap<String, String> {
    let pods: Api<Pod> = Api::namespaced(api.client(), NS);
    let pod = pods.get(name).await.unwrap();
    pod.metadata.annotations.unwrap_or_default()
}

/// Waits (at most 20 s) until pod `name` reports `revision` for `role`.
async fn reported(api: &FakeApi, name: &str, role: &str, revision: u64) {
    let want = revision.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while annotations(api, name).await.get(&k::report("api", role)) != Some(&want) {
        assert!(
            Instant::now() < deadline,
            "revision {revision} never reported"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn spawn(binary: &Path, args: &[&str], kubeconfig: &Path, pod: &str) -> Running {
    let child = Command::new(binary)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", pod)
        .env("POD_NAMESPACE", NS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the sidecar starts");
    Running(child)
}

async fn verifier(binary: &Path) -> String {
    let (k1, k2) = (volume::key(), volume::key());
    let mut vol = Volume::new("bench-sidecar-verifier");
    vol.publish(&volume::verifier("api", 1, &[(1, &k1)]));
    let kubeconfig = vol.dir.with_extension("kubeconfig");
    let (api, _server) = api_with_pod("gateway-0", &kubeconfig).await;
    let (listen, admin) = (free_port(), free_port());
    #[rustfmt::skip]
    let args = [
        "verifier", "--dir", vol.dir.to_str().unwrap(),
        "--listen", &listen.to_string(), "--admin-address", &admin.to_string(),
        "--usage-interval-seconds", "1",
    ];
    let running = spawn(binary, &args, &kubeconfig, "gateway-0");
    reported(&api, "gateway-0", "verifier", 1).await;

    let done = Arc::new(AtomicBool::new(false));
    let samples = sample(running.0.id(), done.clone());
    let answered = Arc::new(AtomicU64::new(0));
    let keys = Arc::new(std::sync::Mutex::new(k1.expose().to_string()));
    let started = Instant::now();
    let load: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(paced(listen, keys.clone(), answered.clone())))
        .collect();
    tokio::time::sleep(LOAD / 2).await;
    vol.publish(&volume::verifier("api", 2, &[(1, &k1), (2, &k2)]));
    reported(&api, "gateway-0", "verifier", 2).await;
    *keys.lock().unwrap() = k2.expose().to_string();
    tokio::time::sleep(LOAD.saturating_sub(started.elapsed())).await;
    for task in load {
        task.abort();
    }
    let rate = answered.load(Ordering::SeqCst) as f64 / started.elapsed().as_secs_f64();
    let split = code_summary(running.0.id(), binary);
    done.store(true, Ordering::SeqCst);
    let samples = samples.join().unwrap();
    drop(running);
    let _ = std::fs::remove_file(&kubeconfig);
    format!(
        "{rate:.0} checks/s answered; {}; {split}",
        summary(&samples)
    )
}

/// One keep-alive connection sending its share of [`RATE`], until aborted.
async fn paced(addr: SocketAddr, key: Arc<std::sync::Mutex<String>>, answered: Arc<AtomicU64>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 * CONNECTIONS / RATE));
    let mut buf = vec![0u8; 4096];
    for n in 0u64.. {
        tick.tick().await;
        // One check in ten presents a key no version ever had.
        let key = if n % 10 == 9 {
            "not-a-key-of-any-version-0123456789abcdef".to_string()
        } else {
            key.lock().unwrap().clone()
        };
        let request =
            format!("GET /auth HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        // The answers have no body: one head per check.
        let mut got = 0;
        while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            let read = stream.read(&mut buf[got..]).await.unwrap();
            assert!(read > 0, "the verifier closed the connection");
            got += read;
        }
        let expected: &[u8] = if n % 10 == 9 {
            b"HTTP/1.1 401"
        } else {
            b"HTTP/1.1 200"
        };
        assert!(
            buf.starts_with(expected),
            "{}",
            String::from_utf8_lossy(&buf[..got])
        );
        answered.fetch_add(1, Ordering::SeqCst);
    }
}

async fn reporter(binary: &Path) -> String {
    let key = volume::key();
    let mut vol = Volume::new("bench-sidecar-reporter");
    vol.publish(&volume::verifier("api", 1, &[(1, &key)]));
    let kubeconfig = vol.dir.with_extension("kubeconfig");
    let (api, _server) = api_with_pod("app-0", &kubeconfig).await;
    let dir = vol.dir.to_str().unwrap().to_string();
    let args = ["reporter", "--dir", &dir, "--poll-seconds", "1"];
    let running = spawn(binary, &args, &kubeconfig, "app-0");
    reported(&api, "app-0", "verifier", 1).await;

    let done = Arc::new(AtomicBool::new(false));
    let samples = sample(running.0.id(), done.clone());
    let started = Instant::now();
    for revision in 2..=ROTATIONS + 1 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        vol.publish(&volume::verifier("api", revision, &[(1, &key)]));
        reported(&api, "app-0", "verifier", revision).await;
    }
    let took = started.elapsed().as_secs_f64();
    let split = code_summary(running.0.id(), binary);
    done.store(true, Ordering::SeqCst);
    let samples = samples.join().unwrap();
    drop(running);
    let _ = std::fs::remove_file(&kubeconfig);
    format!(
        "{ROTATIONS} swaps reported in {took:.1} s; {}; {split}",
        summary(&samples)
    )
}
