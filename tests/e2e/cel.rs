//! Scenario 1: the CRD as users meet it. Every invalid example is refused by
//! `kubectl apply` with its CEL message (the API server evaluates the rules,
//! nothing of ours runs); the valid examples are accepted, reconciled, and
//! `kubectl get akr` / `kubectl explain` read well; the CRD installs without
//! a warning.

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

    // The kind itself says what it is, not what generated it.
    let explain = cluster.ok(&["explain", "apikeyrotation"]);
    assert!(
        explain.contains("ApiKeyRotation rotates one API key")
            && !explain.contains("Auto-generated"),
        "{explain}"
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

#[tokio::test]
async fn the_crd_installs_without_a_warning() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    // The API server warns about unknown formats when a CRD is created (on an
    // update, only about new ones), and the suite's setup created this one
    // already. So the same schema goes in under another group, as a server
    // dry run: checked whole as on a first `kubectl apply -f crds/` or
    // `helm install` (the chart's copy is the same, src/api/tests.rs), and
    // nothing stays behind.
    let crd =
        std::fs::read_to_string(repo().join("crds/apikeyrotations.keyrotor.dev.yaml")).unwrap();
    let renamed = crd
        .replace(
            "\n  name: apikeyrotations.keyrotor.dev\n",
            "\n  name: apikeyrotations.warnings.e2e.keyrotor.dev\n",
        )
        .replace(
            "\n  group: keyrotor.dev\n",
            "\n  group: warnings.e2e.keyrotor.dev\n",
        );
    assert_eq!(
        renamed.matches("warnings.e2e.keyrotor.dev").count(),
        2,
        "crds/ no longer has the name and group lines this test renames"
    );
    let out = cluster.kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&renamed));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the API server refused the CRD: {stderr}"
    );
    assert!(stdout.contains("created (server dry run)"), "{stdout}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("Warning:"))
        .collect();
    assert!(
        warnings.is_empty(),
        "installing the CRD warns: {warnings:?}"
    );
}
