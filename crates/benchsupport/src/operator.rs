//! The operator under test: the real `keyrotor run` binary as a child process
//! with a kubeconfig, its memory read from `/proc/<pid>/status`, its reconcile
//! latency and progress read from its own `/metrics`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A running `keyrotor run`; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Operator {
    child: Child,
    pub admin: SocketAddr,
    peak_anon: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

/// Memory figures of one process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Peak resident set (`VmHWM`).
    pub peak_rss_kib: u64,
    /// Largest anonymous resident memory seen by sampling every 50 ms
    /// (`RssAnon`: the malloc heap, thread stacks; no code, no files).
    pub peak_anon_kib: u64,
}

fn free_port() -> std::io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}

/// A field of `/proc/<pid>/status`, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Operator {
    /// Starts `binary run` against `kubeconfig`; logs go to `log`.
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        log: &Path,
        concurrency: u16,
    ) -> std::io::Result<Operator> {
        let admin = free_port()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = Command::new(binary)
            .args(["run", "--admin-address", &admin.to_string()])
            .args(["--concurrency", &concurrency.to_string()])
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                // The per-phase timings of each reconcile (see `probe::Phases`).
                std::env::var("RUST_LOG")
                    .unwrap_or_else(|_| "info,keyrotor::controller::steps=debug".into()),
            )
            .env_remove("KEYROTOR_NAMESPACES")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let pid = child.id();
        let peak_anon = Arc::new(AtomicU64::new(0));
        let peak = peak_anon.clone();
        let sampler = tokio::spawn(async move {
            loop {
                if let Some(kib) = proc_status_kib(pid, "RssAnon") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Ok(Operator {
            child,
            admin,
            peak_anon,
            sampler,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak memory so far (read before stopping: `/proc` forgets an exited process).
    pub fn memory(&self) -> Memory {
        Memory {
            peak_rss_kib: proc_status_kib(self.pid(), "VmHWM").unwrap_or(0),
            peak_anon_kib: self.peak_anon.load(Ordering::Relaxed),
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM (a graceful stop, as `kubectl delete pod` does), then waits for the exit.
    pub async fn stop(mut self) -> Memory {
        let memory = self.memory();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        for _ in 0..100 {
            if self.exited() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        memory
    }

    /// GET `path` from the admin server: (status code, body).
    pub async fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        tokio::time::timeout(
            Duration::from_secs(30),
            keyrotor::ops::admin::get(self.admin, path),
        )
        .await
        .map_err(|_| std::io::Error::other("admin server timed out"))?
    }

    pub async fn ready(&self) -> bool {
        matches!(self.get("/readyz").await, Ok((200, _)))
    }

    pub async fn metrics(&self) -> Scrape {
        Scrape::parse(&self.get("/metrics").await.map(|r| r.1).unwrap_or_default())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.sampler.abort();
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the benchmark reads from one `/metrics` scrape.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// Cumulative reconcile-duration buckets: (upper bound in seconds, count).
    pub buckets: Vec<(f64, u64)>,
    /// Rotations whose last reconcile computed stage Stable.
    pub stable: usize,
    pub reconciles_ok: u64,
    pub reconciles_failed: u64,
}

fn value(line: &str) -> Option<f64> {
    line.rsplit(' ').next()?.parse().ok()
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines() {
            if let Some(rest) =
                line.strip_prefix("keyrotor_reconcile_duration_seconds_bucket{le=\"")
            {
                let le = rest.split('"').next().unwrap_or("");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::INFINITY)
                };
                s.buckets.push((le, value(line).unwrap_or(0.0) as u64));
            } else if line.starts_with("keyrotor_stage{") && line.contains("stage=\"Stable\"} 1") {
                s.stable += 1;
            } else if line.starts_with("keyrotor_reconciles_total{result=\"ok\"}") {
                s.reconciles_ok = value(line).unwrap_or(0.0) as u64;
            } else if line.starts_with("keyrotor_reconciles_total{result=\"error\"}") {
                s.reconciles_failed = value(line).unwrap_or(0.0) as u64;
            }
        }
        s
    }

    /// Reconciles since `earlier`, as (upper bound, count) buckets.
    pub fn since(&self, earlier: &Scrape) -> Vec<(f64, u64)> {
        self.buckets
            .iter()
            .map(|&(le, n)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|b| b.0 == le)
                    .map_or(0, |b| b.1);
                (le, n.saturating_sub(before))
            })
            .collect()
    }
}

/// The `q` quantile of cumulative histogram buckets, interpolated linearly
/// inside its bucket (as Prometheus' `histogram_quantile`); None without data.
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, cum) in buckets {
        if cum as f64 >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let inside = (cum - lower.1) as f64;
            let frac = if inside > 0.0 {
                (rank - lower.1 as f64) / inside
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * frac);
        }
        lower = (le, cum);
    }
    None
}

/// Reconciles counted in `buckets`.
pub fn count(buckets: &[(f64, u64)]) -> u64 {
    buckets.last().map_or(0, |b| b.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let b = [(0.001, 0), (0.002, 50), (0.004, 100), (f64::INFINITY, 100)];
        assert!((quantile(&b, 0.5).unwrap() - 0.002).abs() < 1e-9);
        assert!((quantile(&b, 0.75).unwrap() - 0.003).abs() < 1e-9);
        assert_eq!(quantile(&[(1.0, 0), (f64::INFINITY, 0)], 0.5), None);
    }

    #[test]
    fn a_scrape_reads_the_histogram_and_the_stages() {
        let text = "keyrotor_reconcile_duration_seconds_bucket{le=\"0.001\"} 3\n\
                    keyrotor_reconcile_duration_seconds_bucket{le=\"+Inf\"} 4\n\
                    keyrotor_stage{namespace=\"a\",name=\"b\",stage=\"Stable\"} 1\n\
                    keyrotor_stage{namespace=\"a\",name=\"c\",stage=\"Stable\"} 0\n\
                    keyrotor_reconciles_total{result=\"ok\"} 7\n";
        let s = Scrape::parse(text);
        assert_eq!(s.buckets, vec![(0.001, 3), (f64::INFINITY, 4)]);
        assert_eq!((s.stable, s.reconciles_ok), (1, 7));
    }
}
