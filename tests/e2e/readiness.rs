//! `/readyz` tells the truth about the watches, on the real API server: an
//! operator whose RBAC lacks `list`/`watch` on Pods works from a pod cache
//! that never fills, so it must not say ready, and it must say why. Once
//! RBAC is fixed it turns ready by itself, with no restart.

use std::io::Write;
use std::time::{Duration, Instant};

use keyrotor::ops::admin;
use keyrotor_testsupport::eventually;
use serde_json::{Value, json};

use super::cluster;
use super::operator::Operator;

/// `/readyz`: status code and body (`None`: no answer in 2 s).
async fn readyz(operator: &Operator) -> Option<(u16, String)> {
    let addr = operator.admin.parse().ok()?;
    let answer = tokio::time::timeout(Duration::from_secs(2), admin::get(addr, "/readyz"));
    answer.await.ok()?.ok()
}

#[tokio::test]
async fn readyz_is_not_ready_while_rbac_refuses_the_pod_watch_and_ready_once_fixed() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-readyz").await;
    // The operator's own rules, in a Role of this namespace, Pods read-less.
    let role: Value =
        serde_json::from_str(&cluster.ok(&["get", "clusterrole", "keyrotor", "-o", "json"]))
            .unwrap();
    let all = role["rules"].as_array().unwrap().clone();
    let is_pods = |r: &Value| r["resources"].as_array().unwrap().contains(&json!("pods"));
    let without: Vec<Value> = all.iter().filter(|r| !is_pods(r)).cloned().collect();
    assert!(without.len() < all.len(), "the ClusterRole has no Pod rule");
    let role = |rules: &[Value]| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "limited", "namespace": ns.name},
            "rules": rules,
        })
        .to_string()
    };
    cluster.ok(&["create", "serviceaccount", "limited", "-n", &ns.name]);
    cluster.ok_stdin(&["apply", "-f", "-"], &role(&without));
    let subject = format!("--serviceaccount={}:limited", ns.name);
    cluster.ok(&[
        "create",
        "rolebinding",
        "limited",
        "-n",
        &ns.name,
        "--role=limited",
        &subject,
    ]);
    let token = cluster.ok(&[
        "create",
        "token",
        "limited",
        "-n",
        &ns.name,
        "--duration=1h",
    ]);
    let kubeconfig = cluster.dir.join(format!("limited-{}.kubeconfig", ns.name));
    cluster.write_kubeconfig(&kubeconfig, token.trim());

    let operator = Operator::with_kubeconfig(cluster, &ns.name, "keyrotor-readyz", &kubeconfig);
    let (code, why) = eventually("/readyz to say why", Duration::from_secs(60), async || {
        readyz(&operator)
            .await
            .filter(|(c, body)| *c == 503 && body.contains("Pod watch"))
    })
    .await;
    assert!(why.contains("refused (403)"), "{code}: {why}");
    let _ = writeln!(
        std::io::stderr(),
        "RBAC without pods list/watch: /readyz {code}: {}",
        why.trim()
    );

    let fixed = Instant::now();
    cluster.ok_stdin(&["apply", "-f", "-"], &role(&all));
    eventually(
        "/readyz 200 once RBAC allows the watch",
        Duration::from_secs(90),
        async || readyz(&operator).await.is_some_and(|(c, _)| c == 200),
    )
    .await;
    let _ = writeln!(
        std::io::stderr(),
        "ready {:.1} s after the Role allowed the pod watch (the watch's own backoff)",
        fixed.elapsed().as_secs_f64()
    );
    let log = operator.logs();
    assert!(
        log.contains("not ready"),
        "the log does not say why it is not ready"
    );
}
