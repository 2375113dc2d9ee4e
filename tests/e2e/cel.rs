//! Scenario 1: the CRD as users meet it. Every invalid example is refused by
//! `kubectl apply` with its CEL message (the API server evaluates the rules,
//! nothing of ours runs); the valid examples are accepted, reconciled, and
//! `kubectl get akr` / `kubectl explain` read well.

use std::time::Duration;

use super::cluster::{self, repo};
use super::operator::Operator;
use super::scenario::wait_stable;

#[tokio::test]
async fn invalid_examples_are_refused_by_the_api_server_with_their_message() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-cel").await;
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("examples/invalid")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()));
        // The examples name namespace `shop`; apply them into this scenario's.
        let doc = text.replace("namespace: shop", &format!("namespace: {}", ns.name));
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&doc));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{} was accepted by the API server",
            path.display()
        );
        assert!(
            stderr.contains(expect),
            "{}: expected {expect:?} in: {stderr}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} invalid examples");
}

#[tokio::test]
async fn valid_examples_are_accepted_and_read_well() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    // The examples live in namespace `shop`.
    let ns = cluster.namespace("shop").await;
    let _operator = Operator::watching(cluster, &ns.name, "cel");
    cluster.ok(&["apply", "-f", "examples/rotation.yaml"]);
    cluster.ok(&["apply", "-f", "examples/single-secret.yaml"]);
    let client = cluster.client().await;
    // No consumer pods yet: the first version is published at once.
    for name in ["orders-api-key", "mesh-key"] {
        wait_stable(&client, &ns.name, name, 1, Duration::from_secs(60)).await;
    }

    let table = cluster.ok(&["get", "akr", "-n", &ns.name]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "CURRENT", "STAGE", "READY", "NEXT", "AGE"],
        "{table}"
    );
    // A future time in a `date` column would print as <invalid>.
    assert!(!table.contains("<invalid>"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("orders-api-key "))
        .unwrap_or_else(|| panic!("no row for orders-api-key: {table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["1", "Stable", "True"], "{table}");
    assert!(
        cells[4].starts_with("20") && cells[4].ends_with('Z'),
        "{table}"
    );
    let wide = cluster.ok(&["get", "akr", "-n", &ns.name, "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("REASON"), "{wide}");
    // The category lists it too.
    assert!(
        cluster
            .ok(&["get", "keyrotor", "-n", &ns.name])
            .contains("orders-api-key")
    );

    let explain = cluster.ok(&["explain", "apikeyrotation.spec.gracePeriod"]);
    for field in ["minimum", "maximum", "onTimeout"] {
        assert!(explain.contains(field), "explain lacks {field}: {explain}");
    }
    assert!(
        explain.lines().count() > 10,
        "explain says little: {explain}"
    );
}
