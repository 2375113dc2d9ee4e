//! One benchmark run's figures, and the Markdown table `docs/performance.md` holds.

use std::time::Duration;

use super::cluster::Shape;
use super::operator::{Memory, count, quantile};
use super::per_rotation;
use keyrotor_testkit::{RequestCounts, WriteRecord};

/// Effective writes of one kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct CycleWrites {
    /// Version and projected Secrets created or written.
    pub secrets: usize,
    /// Version Secrets deleted.
    pub deletes: usize,
    pub status: usize,
    /// ApiKeyRotation writes other than status (the finalizer).
    pub rotation: usize,
    pub nudges: usize,
    pub events: usize,
    /// Write requests that changed nothing or failed (409 and the like).
    pub wasted: usize,
}

impl CycleWrites {
    /// Writes that count against the budget: nudges and events aside.
    pub fn budget(&self) -> usize {
        self.secrets + self.deletes + self.status + self.rotation
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub shape: Shape,
    /// The operator's `--concurrency` (0: unbounded).
    pub concurrency: u16,
    pub initial: Duration,
    pub quiet_secs: u64,
    pub quiet_writes: usize,
    pub quiet_write_requests: usize,
    pub quiet_requests: RequestCounts,
    pub cycle: Duration,
    pub cycle_writes: CycleWrites,
    pub cycle_requests: RequestCounts,
    pub cycle_latency: Vec<(f64, u64)>,
    pub all_latency: Vec<(f64, u64)>,
    pub failed_reconciles: u64,
    /// When `/readyz` first answered 200 (None: not while measured).
    pub restart_ready: Option<Duration>,
    pub restart_converged: Duration,
    pub restart_writes: usize,
    pub restart_requests: RequestCounts,
    pub restart_latency: Vec<(f64, u64)>,
    /// First process (setup, quiet period, cycle), second (restart).
    pub memory: [Memory; 2],
}

impl Report {
    pub fn new(shape: Shape) -> Report {
        Report {
            shape,
            concurrency: 0,
            initial: Duration::ZERO,
            quiet_secs: 0,
            quiet_writes: 0,
            quiet_write_requests: 0,
            quiet_requests: RequestCounts::default(),
            cycle: Duration::ZERO,
            cycle_writes: CycleWrites::default(),
            cycle_requests: RequestCounts::default(),
            cycle_latency: Vec::new(),
            all_latency: Vec::new(),
            failed_reconciles: 0,
            restart_ready: None,
            restart_converged: Duration::ZERO,
            restart_writes: 0,
            restart_requests: RequestCounts::default(),
            restart_latency: Vec::new(),
            memory: [Memory::default(); 2],
        }
    }

    pub fn count_cycle(&mut self, log: &[WriteRecord]) {
        let mut w = CycleWrites::default();
        for r in log {
            if !r.changed {
                w.wasted += 1;
                continue;
            }
            match (r.resource.as_str(), r.subresource.as_str(), r.verb.as_str()) {
                ("secrets", _, "delete") => w.deletes += 1,
                ("secrets", _, _) => w.secrets += 1,
                ("apikeyrotations", "status", _) => w.status += 1,
                ("apikeyrotations", _, _) => w.rotation += 1,
                ("pods", _, _) => w.nudges += 1,
                ("events", _, _) => w.events += 1,
                _ => w.rotation += 1,
            }
        }
        self.cycle_writes = w;
    }

    pub fn peak_rss_mib(&self) -> f64 {
        self.memory
            .iter()
            .map(|m| m.peak_rss_kib)
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    }

    pub fn peak_anon_mib(&self) -> f64 {
        self.memory
            .iter()
            .map(|m| m.peak_anon_kib)
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    }
}

fn ms(d: Option<f64>) -> String {
    match d {
        Some(s) => format!("{:.1} ms", s * 1000.0),
        None => "-".into(),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn per(n: usize, count: usize) -> String {
    let v = count as f64 / n.max(1) as f64;
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The Markdown table: one column per size, one row per figure.
pub fn table(reports: &[Report]) -> String {
    let mut rows: Vec<(&str, Vec<String>)> = Vec::new();
    let mut row = |name: &'static str, f: &dyn Fn(&Report) -> String| {
        rows.push((name, reports.iter().map(f).collect()));
    };
    row("consumer pods", &|r| r.shape.pods().to_string());
    row("operator --concurrency", &|r| match r.concurrency {
        0 => "unbounded".into(),
        n => n.to_string(),
    });
    row("peak RSS (VmHWM)", &|r| {
        format!("{:.1} MiB", r.peak_rss_mib())
    });
    row("peak heap (RssAnon, sampled)", &|r| {
        format!("{:.1} MiB", r.peak_anon_mib())
    });
    row("reconcile p50 / p99, rotation cycle", &|r| {
        format!(
            "{} / {}",
            ms(quantile(&r.cycle_latency, 0.5)),
            ms(quantile(&r.cycle_latency, 0.99))
        )
    });
    row("reconcile p50 / p99, whole first run", &|r| {
        format!(
            "{} / {}",
            ms(quantile(&r.all_latency, 0.5)),
            ms(quantile(&r.all_latency, 0.99))
        )
    });
    row("reconciles per rotation, cycle", &|r| {
        per(r.shape.rotations, count(&r.cycle_latency) as usize)
    });
    row("writes per rotation cycle (nudges, events aside)", &|r| {
        let w = &r.cycle_writes;
        format!(
            "{} ({} Secret, {} delete, {} status)",
            per(r.shape.rotations, w.budget()),
            per(r.shape.rotations, w.secrets),
            per(r.shape.rotations, w.deletes),
            per(r.shape.rotations, w.status)
        )
    });
    row("nudges / events per cycle", &|r| {
        format!(
            "{} / {}",
            per(r.shape.rotations, r.cycle_writes.nudges),
            per(r.shape.rotations, r.cycle_writes.events)
        )
    });
    row("write requests that changed nothing, per cycle", &|r| {
        per(r.shape.rotations, r.cycle_writes.wasted)
    });
    row("API requests per rotation cycle", &|r| {
        per_rotation(r.cycle_requests, r.shape.rotations)
    });
    row("all rotations through one cycle", &|r| secs(r.cycle));
    row("writes in the quiet period", &|r| {
        format!("{} in {} s", r.quiet_writes, r.quiet_secs)
    });
    row("requests in the quiet period", &|r| {
        format!("{} in {} s", r.quiet_requests.total(), r.quiet_secs)
    });
    row("first start: every rotation published", &|r| {
        secs(r.initial)
    });
    row("restart: ready / every rotation converged", &|r| {
        format!(
            "{} / {}",
            r.restart_ready.map_or("not ready".into(), secs),
            secs(r.restart_converged)
        )
    });
    row("restart: writes needed", &|r| r.restart_writes.to_string());
    row("restart: API requests per rotation", &|r| {
        per_rotation(r.restart_requests, r.shape.rotations)
    });
    row("restart: reconcile p50 / p99", &|r| {
        format!(
            "{} / {}",
            ms(quantile(&r.restart_latency, 0.5)),
            ms(quantile(&r.restart_latency, 0.99))
        )
    });
    row("failed reconciles (first run)", &|r| {
        r.failed_reconciles.to_string()
    });
    let mut out = String::from("| ApiKeyRotations |");
    for r in reports {
        out.push_str(&format!(" {} |", r.shape.rotations));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(reports.len()));
    out.push('\n');
    for (name, cells) in rows {
        out.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
    }
    out
}

/// The machine, for the record: CPU model, cores, memory.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim())
        })
        .unwrap_or("unknown CPU")
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or("unknown".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1048576.0)
        });
    format!("{model}, {cores} cores available, {mem} RAM")
}

/// The real-API table: one column per measured cycle, in the order run.
pub fn real_table(runs: &[super::real::Run]) -> String {
    let mut out = String::from("| cycle |");
    for (i, _) in runs.iter().enumerate() {
        out.push_str(&format!(" {} |", i + 1));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(runs.len()));
    out.push('\n');
    let mut row = |name: &str, f: &dyn Fn(&super::real::Run) -> String| {
        let cells: Vec<String> = runs.iter().map(f).collect();
        out.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
    };
    row("ApiKeyRotations / pods", &|r| {
        format!("{} / {}", r.rotations, r.rotations * 10)
    });
    row("operator --concurrency", &|r| match r.concurrency {
        0 => "unbounded".into(),
        n => n.to_string(),
    });
    row("reconcile p50 / p99, rotation cycle", &|r| {
        format!(
            "{} / {}",
            ms(quantile(&r.latency, 0.5)),
            ms(quantile(&r.latency, 0.99))
        )
    });
    row("reconciles per rotation, cycle", &|r| {
        per(r.rotations, count(&r.latency) as usize)
    });
    row("failed reconciles, cycle", &|r| r.failed.to_string());
    row("all rotations through one cycle", &|r| secs(r.cycle));
    row("fresh operator: every rotation Stable", &|r| {
        secs(r.converged)
    });
    row("peak RSS (VmHWM)", &|r| {
        format!("{:.1} MiB", r.peak_rss_kib as f64 / 1024.0)
    });
    row("CPU s in the cycle (of wall s)", &|r| {
        r.cpu
            .iter()
            .map(|(p, s)| format!("{p} {s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    row("phase ms p50/p99 (mean when ≥ 20 ms)", &|r| {
        r.phases.summary(20.0).join("; ")
    });
    row("API server: requests × mean", &|r| {
        r.server
            .lines()
            .into_iter()
            .take(12)
            .collect::<Vec<_>>()
            .join("; ")
    });
    out
}
