//! Scenario: keyrotor's shipped alerts on a real Prometheus (Debian's binary,
//! its own process on 127.0.0.1, stopped by PID) scraping the real operator's
//! `/metrics` every second. A presenter that never confirms stalls a
//! rotation at `spec.progressDeadline` (8 s here; the maximum grace is an
//! hour away); `KeyrotorRotationStalled` goes pending, then firing with the
//! rotation's namespace, name and reason in its labels (read from
//! Prometheus' `/api/v1/alerts`), within the deadline plus the rule's `for`
//! and the status coalescing, and resolves once the presenter confirms and
//! the rotation completes. Every shipped rule
//! evaluates without error, and the operator-down and no-leader alerts stay
//! quiet while it runs.
//!
//! The rules are `charts/keyrotor/monitoring/alerts.yaml` with only their
//! `for:` durations shortened to seconds (5 to 15 minutes would make a slow
//! test); every expression is the shipped one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::wire::{self as k, RevisionReport};
use keyrotor_testsupport::eventually;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cluster::{self, repo};
use super::observer::Observer;
use super::operator::{Operator, logs_of};
use super::scenario::*;

/// What the test's copy of the rules waits instead of each `for:`.
const FOR: &str = "3s";
/// The rotation's `spec.progressDeadline`.
const DEADLINE: &str = "8s";

/// A Prometheus process with its own config and data directory.
struct Prometheus {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped rules with every `for:` set to [`FOR`], and nothing else changed.
fn rules_for_test() -> String {
    let shipped =
        std::fs::read_to_string(repo().join("charts/keyrotor/monitoring/alerts.yaml")).unwrap();
    let mut changed = 0;
    let copy: Vec<String> = shipped
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => {
                changed += 1;
                format!("{}for: {FOR}", &l[..l.len() - l.trim_start().len()])
            }
            None => l.to_string(),
        })
        .collect();
    let alerts = shipped.matches("- alert: ").count();
    assert_eq!(changed, alerts, "every alert has one `for:`");
    copy.join("\n") + "\n"
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts `prometheus` scraping `target` as job `keyrotor-metrics` (the
    /// job the rules name) every second, evaluating every second.
    fn start(dir: &Path, target: &str) -> Prometheus {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("alerts.yaml"), rules_for_test()).unwrap();
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [dir.join("alerts.yaml")],
            "scrape_configs": [{
                "job_name": "keyrotor-metrics",
                // As the chart's ServiceMonitor: the series' own namespace label stays.
                "honor_labels": true,
                "static_configs": [{"targets": [target]}],
            }],
        });
        std::fs::write(
            dir.join("prometheus.yml"),
            serde_yaml::to_string(&config).unwrap(),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr, log }
    }

    /// GET `path` of the HTTP API: the `data` of a successful answer.
    async fn api(&self, path: &str) -> Option<Value> {
        let body = http_get(&self.addr, path).await.ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "success").then(|| v["data"].clone())
    }

    /// The state (`pending`, `firing`) of `alert` for rotation `ns`/`name`.
    async fn alert_state(&self, alert: &str, ns: &str, name: &str) -> Option<String> {
        let found = self.alert(alert, ns, name).await?;
        Some(found["state"].as_str().unwrap_or_default().to_string())
    }

    /// `alert` for rotation `ns`/`name` as Prometheus holds it (labels, state).
    async fn alert(&self, alert: &str, ns: &str, name: &str) -> Option<Value> {
        let data = self.api("/api/v1/alerts").await?;
        data["alerts"]
            .as_array()?
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == alert
                    && a["labels"]["namespace"] == ns
                    && a["labels"]["name"] == name
            })
            .cloned()
    }

    /// Names of the alerts active (pending or firing) now.
    async fn active(&self) -> Vec<String> {
        let Some(data) = self.api("/api/v1/alerts").await else {
            return vec![];
        };
        data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                a["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

/// A GET over HTTP/1.1 on loopback, de-chunking the body if need be.
async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    Ok(out)
}

/// A kwok pod mounting `secret` (a consumer keyrotor waits for).
pub(super) async fn consumer(client: &Client, ns: &str, name: &str, secret: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": pod_spec(secret, None),
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

/// Plays the reporter of pod `pod`: reports the revision of `secret` as
/// loaded, every 250 ms while `on` is set.
pub(super) fn reporter(
    client: Client,
    ns: String,
    pod: &'static str,
    role: &'static str,
    secret: &'static str,
    on: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        loop {
            if on.load(Ordering::SeqCst)
                && let Ok(Some(s)) = secrets.get_opt(secret).await
                && let Some(rev) = s
                    .annotations()
                    .get(k::REVISION)
                    .and_then(|r| k::parse_number(r))
            {
                let (key, value) = RevisionReport(rev).annotation(ROTATION, role);
                let patch = json!({"metadata": {"annotations": {key: value}}});
                let _ = pods
                    .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

pub(super) const ROTATION: &str = "api";

#[tokio::test]
async fn the_stalled_rotation_alert_fires_on_a_real_prometheus_and_resolves() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus is missing: .ci/debs prometheus installs it"
        );
        eprintln!("\n*** SKIPPED: alerts on a real Prometheus (no `prometheus` on PATH)\n");
        return;
    }
    let ns = cluster.namespace("e2e-alerts").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    let mut operator = Operator::watching(cluster, &ns.name, "alerts");
    let prometheus = Prometheus::start(
        &cluster
            .dir
            .join(format!("prometheus-{}", std::process::id())),
        &operator.admin,
    );

    consumer(&client, &ns.name, "server", "api-verifier").await;
    consumer(&client, &ns.name, "client", "api-key").await;
    let verifier_on = Arc::new(AtomicBool::new(true));
    let presenter_on = Arc::new(AtomicBool::new(false));
    let reporters = [
        reporter(
            client.clone(),
            ns.name.clone(),
            "server",
            "verifier",
            "api-verifier",
            verifier_on,
        ),
        reporter(
            client.clone(),
            ns.name.clone(),
            "client",
            "presenter",
            "api-key",
            presenter_on.clone(),
        ),
    ];
    // A short progress deadline: the presenter's silence stalls the rotation
    // soon, long before the maximum grace.
    let mut r = rotation(&ns.name, ROTATION, report(), report());
    r["spec"]["gracePeriod"] = json!({"minimum": "1s", "maximum": "1h", "onTimeout": "Wait"});
    r["spec"]["progressDeadline"] = json!(DEADLINE);
    apply(&client, &ns.name, &r).await;
    wait_stable(&client, &ns.name, ROTATION, 1, Duration::from_secs(60)).await;

    // Every shipped rule evaluates on the real scrape without error.
    eventually(
        "every rule evaluated, healthy, with the operator up",
        Duration::from_secs(60),
        || async {
            let Some(data) = prometheus.api("/api/v1/rules").await else {
                return false;
            };
            let rules: Vec<&Value> = data["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            let up = prometheus
                .api("/api/v1/query?query=up%7Bjob%3D%22keyrotor-metrics%22%7D")
                .await
                .is_some_and(|d| d["result"][0]["value"][1] == "1");
            let shipped = rules_for_test().matches("- alert: ").count();
            rules.len() == shipped && rules.iter().all(|r| r["health"] == "ok") && up
        },
    )
    .await;

    // The rotation: the verifier confirms, the presenter does not.
    request_rotation(&client, &ns.name, ROTATION, "stall").await;
    let started = Instant::now();
    let mut seen = Vec::<(String, Duration)>::new();
    let alert = "KeyrotorRotationStalled";
    eventually(
        "KeyrotorRotationStalled pending, then firing",
        Duration::from_secs(120),
        async || {
            let state = prometheus.alert_state(alert, &ns.name, ROTATION).await;
            if let Some(s) = state
                && seen.last().is_none_or(|(last, _)| *last != s)
            {
                seen.push((s, started.elapsed()));
            }
            seen.last().is_some_and(|(s, _)| s == "firing")
        },
    )
    .await;
    let states: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["pending", "firing"], "alert states seen: {seen:?}");
    // Within the deadline, the rule's `for`, the status coalescing (10 s)
    // and a few scrapes and evaluations.
    let fired = seen[1].1;
    assert!(
        fired < Duration::from_secs(8 + 3 + 10 + 10),
        "firing {fired:?} after the request, with a progress deadline of {DEADLINE}"
    );
    let labels = &prometheus.alert(alert, &ns.name, ROTATION).await.unwrap()["labels"];
    assert_eq!(
        (&labels["reason"], &labels["severity"]),
        (&json!("PresentersStalled"), &json!("critical")),
        "{labels}"
    );
    let status = get(&client, &ns.name, ROTATION).await.status.unwrap();
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "MigrationStalled")
        .unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "PresentersStalled")
    );
    // Nothing else is wrong: the operator is up and leads.
    let active = prometheus.active().await;
    assert!(
        !active
            .iter()
            .any(|a| a == "KeyrotorDown" || a == "KeyrotorNoLeader"),
        "{active:?}"
    );

    // The presenter confirms: the rotation completes and the alert resolves.
    presenter_on.store(true, Ordering::SeqCst);
    let confirmed = Instant::now();
    wait_stable(&client, &ns.name, ROTATION, 2, Duration::from_secs(60)).await;
    eventually("the alert to resolve", Duration::from_secs(60), || async {
        prometheus
            .alert_state(alert, &ns.name, ROTATION)
            .await
            .is_none()
    })
    .await;
    eprintln!(
        "KeyrotorRotationStalled on a real Prometheus (scrape and evaluation every 1 s, for: {FOR}): \
         {seen:?} after the rotation request (progressDeadline {DEADLINE}), labels namespace, name and reason; \
         resolved {:.1?} after the presenter confirmed",
        confirmed.elapsed()
    );

    for r in reporters {
        r.abort();
    }
    check_history(&observer, ROTATION);
    // I4 also over what Prometheus scraped.
    let metrics = keyrotor::ops::admin::get(operator.admin.parse().unwrap(), "/metrics")
        .await
        .unwrap()
        .1;
    let mut logs = logs_of(&[&operator]);
    logs.push(("operator /metrics".into(), metrics));
    logs.push((
        "prometheus log".into(),
        std::fs::read_to_string(&prometheus.log).unwrap_or_default(),
    ));
    assert_no_key_material(cluster, &ns.name, &observer, &logs);
    drop(prometheus);
    operator.terminate();
    observer.stop();
}
