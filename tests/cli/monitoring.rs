//! What Prometheus and people get from the real `keyrotor run` binary,
//! against the in-memory API over HTTP on 127.0.0.1:
//!
//! - its `/metrics` passes `promtool check metrics` (help text, counter
//!   names, the 0.0.4 text format its Content-Type announces);
//! - every metric the shipped alerts and dashboard
//!   (`charts/keyrotor/monitoring/`) select is one that scrape exported, or
//!   one of [`VERIFIER_METRICS`]; promtool parses every expression;
//! - its logs carry ANSI colour codes on a terminal and none in a file.
//!
//! promtool comes with Debian's `prometheus` package (`.ci/debs`, which
//! `.ci/run` runs before the tests). Without it the promtool checks are
//! skipped with a notice, except under CI, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keyrotor::api::ApiKeyRotation;
use keyrotor::ops::admin;
use keyrotor_testkit::FakeApi;
use keyrotor_testsupport::eventually;
use kube::api::{Patch, PatchParams};
use kube::{Api, CustomResourceExt};
use serde_json::{Value, json};

use super::promql::selected_metrics;

/// The gateway verifier sidecar's metrics (its own `/metrics`, not the
/// operator's), which the verifier alerts and dashboard panels select:
/// accepted keys by version, rejected ones by reason (`unknown_key`,
/// `retired_version`, `malformed`), and presentations of retired versions.
pub const VERIFIER_METRICS: [&str; 3] = [
    "keyrotor_verifier_accepted_total",
    "keyrotor_verifier_rejected_total",
    "keyrotor_verifier_retired_presented_total",
];

/// Series every Prometheus makes itself for each target.
const SCRAPE_METRICS: [&str; 1] = ["up"];

/// Kills the child by PID when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// promtool, or `None` after a notice (a failure under CI, which installs it).
pub fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not on PATH: .ci/debs prometheus installs it"
        );
        eprintln!(
            "\n*** SKIPPED: promtool checks (promtool is not on PATH; `.ci/debs prometheus` installs it)\n"
        );
    }
    found
}

/// Every PromQL expression the chart ships: (where, expression).
fn shipped_expressions() -> Vec<(String, String)> {
    let monitoring = repo().join("charts/keyrotor/monitoring");
    let rules: Value =
        serde_yaml::from_str(&std::fs::read_to_string(monitoring.join("alerts.yaml")).unwrap())
            .unwrap();
    let mut out = Vec::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap();
            out.push((
                format!("alert {name}"),
                rule["expr"].as_str().unwrap().into(),
            ));
        }
    }
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(monitoring.join("dashboard.json")).unwrap())
            .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap();
            out.push((
                format!("panel {title:?}"),
                target["expr"].as_str().unwrap().into(),
            ));
        }
    }
    // The template variables query with label_values(metric{…}, label).
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(selector, _)| selector)
                .unwrap_or_else(|| panic!("variable query {q:?}"));
            out.push((format!("variable {}", var["name"]), inner.into()));
        }
    }
    out
}

/// Metric names in a scrape: each declared family, and a histogram's series.
fn exported(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.push(format!("{name}{suffix}"));
            }
        } else {
            names.push(name.to_string());
        }
    }
    names
}

/// `keyrotor run` against `kubeconfig`, logs to `log`; returns the process
/// and the admin address it reports.
async fn operator(kubeconfig: &Path, log: &Path) -> (Running, std::net::SocketAddr) {
    let file = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_keyrotor"))
        .args(["run", "--namespace", "default"])
        .args(["--admin-address", "127.0.0.1:0"])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("keyrotor starts");
    let running = Running(child);
    let addr = eventually(
        "the admin address in the log",
        Duration::from_secs(20),
        || async {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let line = text
                .lines()
                .find(|l| l.contains("admin server listening"))?;
            let at = line.find("address=")? + "address=".len();
            line[at..].split_whitespace().next()?.parse().ok()
        },
    )
    .await;
    (running, addr)
}

#[tokio::test]
async fn metrics_pass_promtool_and_the_alerts_and_dashboard_name_only_exported_metrics() {
    let api = FakeApi::new();
    api.register_crd(&ApiKeyRotation::crd());
    let server = api.listen().await.expect("listen on 127.0.0.1");
    let dir = std::env::temp_dir().join(format!("keyrotor-monitoring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, "default").unwrap();
    let log = dir.join("operator.log");
    let (_running, admin_addr) = operator(&kubeconfig, &log).await;

    // A scheduled rotation: every per-rotation series exists once it is Stable.
    let rotations: Api<ApiKeyRotation> = Api::namespaced(api.client(), "default");
    let obj = json!({
        "apiVersion": "keyrotor.dev/v1alpha1", "kind": "ApiKeyRotation",
        "metadata": {"name": "api", "namespace": "default"},
        "spec": {
            "secrets": {"verifier": "api-verifier", "presenter": "api-key"},
            "schedule": {"interval": "720h"},
        },
    });
    rotations
        .patch("api", &PatchParams::apply("test"), &Patch::Apply(&obj))
        .await
        .unwrap();
    let text = eventually(
        "a Stable rotation in /metrics",
        Duration::from_secs(30),
        || async {
            let (code, text) = admin::get(admin_addr, "/metrics").await.ok()?;
            (code == 200
                && text.contains(
                    "keyrotor_stage{namespace=\"default\",name=\"api\",stage=\"Stable\"} 1",
                ))
            .then_some(text)
        },
    )
    .await;
    std::fs::write(dir.join("metrics.txt"), &text).unwrap();

    let names = exported(&text);
    for expected in [
        "keyrotor_migration_stalled",
        "keyrotor_current_key_max_age_seconds",
        "keyrotor_next_rotation_timestamp_seconds",
        "keyrotor_reconcile_errors_total",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not exported:\n{text}"
        );
    }
    let known = |m: &str| {
        names.iter().any(|n| n == m) || VERIFIER_METRICS.contains(&m) || SCRAPE_METRICS.contains(&m)
    };
    let expressions = shipped_expressions();
    assert!(
        expressions.len() >= 20,
        "only {} expressions",
        expressions.len()
    );
    for (place, expr) in &expressions {
        let selected = selected_metrics(expr);
        assert!(!selected.is_empty(), "{place} selects no metric: {expr}");
        for m in selected {
            assert!(
                known(&m),
                "{place} selects {m}, which keyrotor does not export: {expr}\nexported: {names:?}"
            );
        }
    }
    // Each operator metric is on the dashboard or in an alert.
    let used: Vec<String> = expressions
        .iter()
        .flat_map(|(_, e)| selected_metrics(e))
        .collect();
    for n in names
        .iter()
        .filter(|n| !n.ends_with("_sum") && !n.ends_with("_count"))
    {
        assert!(
            used.contains(n),
            "{n} is exported but neither shown nor alerted on"
        );
    }

    if let Some(promtool) = promtool() {
        let lint = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(dir.join("metrics.txt")).unwrap())
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );
        assert!(
            lint.status.success() && said.trim().is_empty(),
            "promtool check metrics on /metrics: {said}"
        );
        // promtool parses each expression, as a recording rule (Grafana's
        // variables replaced by what they expand to).
        let rules: Vec<Value> = expressions
            .iter()
            .enumerate()
            .map(|(i, (_, e))| {
                let e = e
                    .replace("$__rate_interval", "5m")
                    .replace("$job", ".*")
                    .replace("$namespace", ".*")
                    .replace("$rotation", ".*");
                json!({"record": format!("keyrotor:shipped:{i}"), "expr": e})
            })
            .collect();
        let file = dir.join("shipped-rules.yaml");
        let doc = json!({"groups": [{"name": "shipped", "rules": rules}]});
        std::fs::write(&file, serde_yaml::to_string(&doc).unwrap()).unwrap();
        let check = Command::new(&promtool)
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "promtool refused an expression: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }

    // Logs written to a file have no colour codes (and there are logs).
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("admin server listening"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escape codes in a log file:\n{logs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same binary on a terminal (a pseudo-terminal from util-linux's
/// `script`, for 3 seconds) colours its logs, unless `NO_COLOR` is set.
#[tokio::test]
async fn logs_are_coloured_only_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("\n*** SKIPPED: logs on a terminal (util-linux `script` is missing)\n");
        return;
    }
    let api = FakeApi::new();
    api.register_crd(&ApiKeyRotation::crd());
    let server = api.listen().await.expect("listen on 127.0.0.1");
    let dir = std::env::temp_dir().join(format!("keyrotor-tty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, "default").unwrap();
    let command = format!(
        "timeout 3 {} run --namespace default --admin-address 127.0.0.1:0",
        env!("CARGO_BIN_EXE_keyrotor")
    );
    let on_terminal = move |no_color: Option<&str>| {
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-c", &command, "/dev/null"])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Blocking child processes: off the runtime, which serves the API.
    let (coloured, plain) =
        tokio::task::spawn_blocking(move || (on_terminal(None), on_terminal(Some("1"))))
            .await
            .unwrap();
    assert!(coloured.contains("admin server listening"), "{coloured}");
    assert!(
        coloured.contains("\u{1b}["),
        "no colour on a terminal:\n{coloured}"
    );
    assert!(plain.contains("admin server listening"), "{plain}");
    assert!(
        !plain.contains('\u{1b}'),
        "colour despite NO_COLOR:\n{plain}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
