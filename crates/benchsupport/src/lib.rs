//! keyrotor's scale benchmark, apart from the test support so that no test
//! harness compiles it (not published).
//!
//! The scale benchmark (`cargo bench --bench scale`): the real `keyrotor run`
//! binary against the in-memory API over HTTP, with N ApiKeyRotations and 10
//! consumer pods each. It measures what issue #10 asks: peak memory, reconcile
//! latency, API requests and writes per rotation cycle, writes in a quiet
//! period, and convergence after a restart. `docs/performance.md` has the table.
//!
//! The API and the simulated kubelets run in this process; the operator runs
//! alone in its child process, so its memory is its own.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod operator;
pub mod probe;
pub mod real;
mod report;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use cluster::{Cluster, Shape};
pub use operator::Operator;
pub use report::{Report, machine, real_table, table};

use keyrotor_testkit::{RequestCounts, WriteRecord};

/// Flags of the benchmark.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "scale",
    about = "keyrotor at 100, 1,000 and 10,000 ApiKeyRotations"
)]
pub struct BenchArgs {
    /// Numbers of ApiKeyRotations to run, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub rotations: Vec<usize>,
    /// Consumer pods per rotation (half verifiers, half presenters).
    #[arg(long, default_value_t = 10)]
    pub pods: usize,
    /// Rotations per namespace.
    #[arg(long, default_value_t = 100)]
    pub per_namespace: usize,
    /// Seconds of the quiet period in which no write is expected.
    #[arg(long, default_value_t = 10)]
    pub quiet: u64,
    /// The operator's `--concurrency` (reconciles at once; 0: unbounded);
    /// several (comma-separated) run one after the other.
    #[arg(long, value_delimiter = ',', default_value = "2")]
    pub concurrency: Vec<u16>,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// The `keyrotor` binary to run (default: the one Cargo built with the bench).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Run on the real API server of this kubeconfig (tests/cluster's kwok
    /// cluster) instead of the in-memory API; its objects are kept for the next run.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Keep logs and kubeconfigs here (default: a temporary directory, removed).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Ignored: `cargo bench` passes it to every bench target.
    #[arg(long, hide = true)]
    pub bench: bool,
}

/// Runs every size in turn and returns one report each.
pub async fn run(args: &BenchArgs, binary: &Path) -> Result<Vec<Report>, String> {
    let keep = args.work_dir.is_some();
    let dir = args.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("keyrotor-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut reports = Vec::new();
    for &concurrency in &args.concurrency {
        for &n in &args.rotations {
            let run_dir = match args.concurrency.len() {
                1 => dir.join(format!("n{n}")),
                _ => dir.join(format!("n{n}-c{concurrency}")),
            };
            std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
            reports.push(one(shape(args, n), args, concurrency, binary, &run_dir).await?);
        }
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(reports)
}

fn shape(args: &BenchArgs, n: usize) -> Shape {
    Shape {
        rotations: n,
        pods_per_rotation: args.pods,
        per_namespace: args.per_namespace,
    }
}

/// Every size on the real API server of `kubeconfig`, each `--concurrency` in turn.
pub async fn run_real(
    args: &BenchArgs,
    binary: &Path,
    kubeconfig: &Path,
) -> Result<Vec<real::Run>, String> {
    let dir = args.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("keyrotor-bench-{}", std::process::id()))
    });
    let mut runs = Vec::new();
    for &n in &args.rotations {
        let run_dir = dir.join(format!("real-n{n}"));
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        runs.extend(real::run(args, binary, kubeconfig, shape(args, n), &run_dir).await?);
    }
    if args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(runs)
}

fn progress(n: usize, what: &str) {
    eprintln!("[{n:>6} rotations] {what}");
}

/// Polls `done` every 250 ms until it holds; the time it took, or an error after `timeout`.
async fn until<F, Fut>(what: &str, timeout: Duration, mut done: F) -> Result<Duration, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if done().await {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// keyrotor's write requests after position `from` of its log.
fn writes_since(cluster: &Cluster, from: usize) -> Vec<WriteRecord> {
    cluster.keyrotor_writes().into_iter().skip(from).collect()
}

async fn one(
    shape: Shape,
    args: &BenchArgs,
    concurrency: u16,
    binary: &Path,
    dir: &Path,
) -> Result<Report, String> {
    let n = shape.rotations;
    let timeout = Duration::from_secs(args.timeout);
    let io = |e: std::io::Error| e.to_string();
    progress(n, &format!("setting up {} pods", shape.pods()));
    let cluster = Cluster::start(shape, dir).await.map_err(io)?;
    let mut report = Report::new(shape);
    report.concurrency = concurrency;
    let log = dir.join("keyrotor.log");

    // First start: every rotation publishes version 1.
    let op = Operator::start(binary, &cluster.kubeconfig, &log, concurrency).map_err(io)?;
    progress(
        n,
        &format!("operator pid {} publishing version 1", op.pid()),
    );
    report.initial = until("version 1 everywhere", timeout, || async {
        cluster.settled(1) == n
    })
    .await?;

    // Quiet period: nothing changes, so nothing may be written (I8).
    let (writes_before, requests_before) =
        (cluster.keyrotor_writes().len(), cluster.server.requests());
    progress(n, &format!("quiet for {} s", args.quiet));
    tokio::time::sleep(Duration::from_secs(args.quiet)).await;
    let quiet = writes_since(&cluster, writes_before);
    dump(dir, "writes-quiet.txt", &quiet);
    report.quiet_writes = quiet.iter().filter(|w| w.changed).count();
    report.quiet_write_requests = quiet.len();
    report.quiet_requests = cluster.server.requests() - requests_before;
    report.quiet_secs = args.quiet;

    // One full cycle on every rotation at once.
    let (writes_before, requests_before) =
        (cluster.keyrotor_writes().len(), cluster.server.requests());
    let scrape_before = op.metrics().await;
    progress(n, "rotating every key");
    cluster.request_rotation(&shape, "bench-1").map_err(io)?;
    report.cycle = until("version 2 everywhere", timeout, || async {
        cluster.settled(2) == n
    })
    .await?;
    // Trailing writes (a last status or nudge) belong to the cycle too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cycle = writes_since(&cluster, writes_before);
    dump(dir, "writes-cycle.txt", &cycle);
    report.count_cycle(&cycle);
    report.cycle_requests = cluster.server.requests() - requests_before;
    let scrape = op.metrics().await;
    report.cycle_latency = scrape.since(&scrape_before);
    report.all_latency = scrape.buckets.clone();
    report.failed_reconciles = scrape.reconciles_failed;

    // Restart: a graceful stop, a fresh process, time until every rotation
    // has been reconciled to Stable again.
    let memory = op.stop().await;
    let (writes_before, requests_before) =
        (cluster.keyrotor_writes().len(), cluster.server.requests());
    let op = Operator::start(binary, &cluster.kubeconfig, &log, concurrency).map_err(io)?;
    progress(n, &format!("restarted as pid {}", op.pid()));
    let started = Instant::now();
    let ready = std::cell::Cell::new(None);
    let (op_ref, ready_ref) = (&op, &ready);
    until(
        "every rotation reconciled after the restart",
        timeout,
        || async move {
            if ready_ref.get().is_none() && op_ref.ready().await {
                ready_ref.set(Some(started.elapsed()));
            }
            op_ref.metrics().await.stable >= n
        },
    )
    .await?;
    report.restart_converged = started.elapsed();
    report.restart_ready = ready.get();
    // Anything still to do shows within a few seconds more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if report.restart_ready.is_none() && op.ready().await {
        report.restart_ready = Some(started.elapsed());
    }
    let restart = writes_since(&cluster, writes_before);
    dump(dir, "writes-restart.txt", &restart);
    report.restart_writes = restart.iter().filter(|w| w.changed).count();
    report.restart_requests = cluster.server.requests() - requests_before;
    let scrape = op.metrics().await;
    report.restart_latency = scrape.buckets.clone();
    let second = op.stop().await;
    report.memory = [memory, second];
    progress(n, "done");
    Ok(report)
}

/// Writes one line per write request to `dir/name` (kept with `--work-dir`),
/// so every write of a phase can be told apart.
fn dump(dir: &Path, name: &str, writes: &[WriteRecord]) {
    let text: String = writes
        .iter()
        .map(|w| {
            format!(
                "{} {} {}/{} {}/{} {} changed={}\n",
                w.seq,
                w.verb,
                w.resource,
                w.subresource,
                w.namespace.as_deref().unwrap_or("-"),
                w.name,
                w.code,
                w.changed
            )
        })
        .collect();
    if let Err(e) = std::fs::write(dir.join(name), text) {
        eprintln!("{}: {e}", dir.join(name).display());
    }
}

/// Requests per rotation, as a compact "reads/watches/writes" string.
pub fn per_rotation(r: RequestCounts, n: usize) -> String {
    let n = n.max(1) as f64;
    format!(
        "{:.1} ({:.1} reads, {:.1} writes)",
        r.total() as f64 / n,
        r.reads as f64 / n,
        r.writes as f64 / n
    )
}
