//! Where the time of a real-API run goes: CPU of each process over the
//! cycle (`/proc/<pid>/stat`), the operator's own per-phase timings (its
//! `reconcile phases` debug lines), and the API server's time per request
//! kind and in API Priority and Fairness queues (its `/metrics`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use kube::Client;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// The control plane's processes, from the PID files `tests/cluster/up` writes.
pub fn cluster_pids(dir: &Path) -> Vec<(&'static str, u32)> {
    ["kube-apiserver", "etcd", "kwok", "kube-controller-manager"]
        .into_iter()
        .filter_map(|name| {
            let text = std::fs::read_to_string(dir.join(format!("pids/{name}.pid"))).ok()?;
            Some((name, text.trim().parse().ok()?))
        })
        .collect()
}

/// User + system CPU seconds of a process so far.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: utime, stime are 14, 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (u, s): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    Some((u + s) / TICKS)
}

/// CPU used by each process between `start` and `stop`.
pub struct Cpu {
    pids: Vec<(&'static str, u32)>,
    at: Vec<f64>,
    started: Instant,
}

impl Cpu {
    pub fn start(cluster: &[(&'static str, u32)], operator: u32) -> Cpu {
        let mut pids = vec![("keyrotor", operator), ("bench", std::process::id())];
        pids.extend_from_slice(cluster);
        let at = pids.iter().map(|p| cpu_secs(p.1).unwrap_or(0.0)).collect();
        Cpu {
            pids,
            at,
            started: Instant::now(),
        }
    }

    /// (process, CPU seconds), and ("wall", seconds) last.
    pub fn stop(&mut self) -> Vec<(&'static str, f64)> {
        let mut out: Vec<(&'static str, f64)> = self
            .pids
            .iter()
            .zip(&self.at)
            .map(|(p, at)| (p.0, cpu_secs(p.1).unwrap_or(*at) - at))
            .collect();
        out.push(("wall", self.started.elapsed().as_secs_f64()));
        out
    }
}

/// The operator's `reconcile phases` lines of one cycle, in ms per reconcile.
#[derive(Clone, Debug, Default)]
pub struct Phases {
    /// observe, fresh, apply, report: one vector each.
    pub by_phase: [Vec<f64>; 4],
    /// Reconciles whose observe accepted a list from the API server's cache.
    pub cached_reads: usize,
}

pub const PHASES: [&str; 4] = ["observe", "fresh", "apply", "report"];

impl Phases {
    /// Parses `log` from byte `from` (the operator appends to one file).
    pub fn read(log: &Path, from: u64) -> Phases {
        let text = std::fs::read(log).unwrap_or_default();
        let text = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
        let mut p = Phases::default();
        for line in text.lines().filter(|l| l.contains("reconcile phases")) {
            let field = |name: &str| -> Option<f64> {
                let at = line.find(&format!("{name}_ms="))? + name.len() + 4;
                line[at..].split_whitespace().next()?.parse().ok()
            };
            let values: Option<Vec<f64>> = PHASES.iter().map(|&n| field(n)).collect();
            if let Some(values) = values {
                for (v, out) in values.into_iter().zip(&mut p.by_phase) {
                    out.push(v);
                }
                p.cached_reads += usize::from(line.contains("secrets=\"cached\""));
            }
        }
        p
    }

    pub fn count(&self) -> usize {
        self.by_phase[0].len()
    }

    fn totals(&self) -> Vec<f64> {
        (0..self.count())
            .map(|i| self.by_phase.iter().map(|v| v[i]).sum())
            .collect()
    }

    /// Each phase's p50 / p99 over every reconcile, and its mean over the
    /// reconciles whose four phases together took `slow_ms` or more.
    pub fn summary(&self, slow_ms: f64) -> Vec<String> {
        let totals = self.totals();
        let slow: Vec<usize> = (0..totals.len())
            .filter(|&i| totals[i] >= slow_ms)
            .collect();
        PHASES
            .iter()
            .zip(&self.by_phase)
            .map(|(name, v)| {
                let mean_slow = if slow.is_empty() {
                    0.0
                } else {
                    slow.iter().map(|&i| v[i]).sum::<f64>() / slow.len() as f64
                };
                format!(
                    "{name} {:.1}/{:.1} ({mean_slow:.1})",
                    rank(v, 0.5),
                    rank(v, 0.99)
                )
            })
            .chain(std::iter::once(format!(
                "sum {:.1}/{:.1}, {} of {} ≥ {slow_ms} ms, Secrets read from the cache in {}",
                rank(&totals, 0.5),
                rank(&totals, 0.99),
                slow.len(),
                totals.len(),
                self.cached_reads
            )))
            .collect()
    }
}

/// The `q` quantile of `v` by rank (0 when empty).
fn rank(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n => v[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
    }
}

/// The API server's own time, as (sum of seconds, count) per request kind
/// (`VERB resource/subresource`), per API Priority and Fairness level
/// (`APF wait <level>`: time queued before being served) and in the watch
/// cache (`cache wait <resource>`: a consistent LIST waiting until the cache
/// has caught up with etcd).
#[derive(Clone, Debug, Default)]
pub struct ServerTimes(pub BTreeMap<String, (f64, f64)>);

fn labels(line: &str) -> BTreeMap<&str, &str> {
    let inside = line
        .split_once('{')
        .and_then(|(_, r)| r.rsplit_once('}'))
        .map_or("", |(l, _)| l);
    inside
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k, v.trim_matches('"')))
        })
        .collect()
}

impl ServerTimes {
    pub async fn scrape(client: &Client) -> ServerTimes {
        let request = http::Request::get("/metrics").body(Vec::new());
        let text = match request {
            Ok(r) => client.request_text(r).await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        ServerTimes::parse(&text)
    }

    pub fn parse(text: &str) -> ServerTimes {
        let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for line in text.lines() {
            let (metric, sum) = if let Some(r) =
                line.strip_prefix("apiserver_request_duration_seconds_")
            {
                ("request", r)
            } else if let Some(r) =
                line.strip_prefix("apiserver_flowcontrol_request_wait_duration_seconds_")
            {
                ("apf", r)
            } else if let Some(r) = line.strip_prefix("apiserver_watch_cache_read_wait_seconds_") {
                ("cache", r)
            } else {
                continue;
            };
            let is_sum = sum.starts_with("sum{");
            if !is_sum && !sum.starts_with("count{") {
                continue;
            }
            let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            let l = labels(line);
            let key = match metric {
                "request" => {
                    let sub = l.get("subresource").copied().unwrap_or("");
                    let resource = l.get("resource").copied().unwrap_or("");
                    let verb = l.get("verb").copied().unwrap_or("");
                    if sub.is_empty() {
                        format!("{verb} {resource}")
                    } else {
                        format!("{verb} {resource}/{sub}")
                    }
                }
                "cache" => format!("cache wait {}", l.get("resource").copied().unwrap_or("")),
                _ => format!(
                    "APF wait {}",
                    l.get("priority_level").copied().unwrap_or("")
                ),
            };
            let e = out.entry(key).or_default();
            if is_sum {
                e.0 += value;
            } else {
                e.1 += value;
            }
        }
        ServerTimes(out)
    }

    pub fn since(&self, earlier: &ServerTimes) -> ServerTimes {
        let mut out = BTreeMap::new();
        for (k, &(s, c)) in &self.0 {
            let (s0, c0) = earlier.0.get(k).copied().unwrap_or_default();
            if c - c0 > 0.0 {
                out.insert(k.clone(), (s - s0, c - c0));
            }
        }
        ServerTimes(out)
    }

    /// "KIND: count × mean ms" for the kinds the operator sends, most frequent first.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<(&String, &(f64, f64))> = self
            .0
            .iter()
            .filter(|(k, _)| {
                k.starts_with("APF")
                    || k.as_str() == "cache wait secrets"
                    || ["secrets", "apikeyrotations", "events", "pods"]
                        .iter()
                        .any(|r| k.split(' ').nth(1).is_some_and(|x| x.starts_with(r)))
            })
            .collect();
        v.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
        v.into_iter()
            .map(|(k, (s, c))| format!("{k}: {c:.0} × {:.1} ms", s / c * 1000.0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_times_sum_and_count_per_kind() {
        let text = "apiserver_request_duration_seconds_sum{component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"secrets\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 0.5\n\
                    apiserver_request_duration_seconds_count{component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"secrets\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 100\n\
                    apiserver_flowcontrol_request_wait_duration_seconds_count{execute=\"true\",flow_schema=\"service-accounts\",priority_level=\"workload-low\"} 4\n";
        let t = ServerTimes::parse(text);
        assert_eq!(t.0["LIST secrets"], (0.5, 100.0));
        assert_eq!(t.0["APF wait workload-low"], (0.0, 4.0));
        assert_eq!(t.lines()[0], "LIST secrets: 100 × 5.0 ms");
    }

    #[test]
    fn phases_are_read_from_the_log_lines() {
        let dir = std::env::temp_dir().join(format!("probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        std::fs::write(&log, "x DEBUG reconcile{}: keyrotor: reconcile phases observe_ms=2.5 fresh_ms=0 apply_ms=10 report_ms=8.5 writes=1 secrets=\"cached\"\nother\n").unwrap();
        let p = Phases::read(&log, 0);
        assert_eq!(p.count(), 1);
        assert_eq!(p.by_phase[2], vec![10.0]);
        assert_eq!(p.cached_reads, 1);
        assert!(p.summary(20.0)[4].starts_with("sum 21.0/21.0, 1 of 1"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
