//! Scenario 8: the chart's life cycle against the real API server: `helm
//! install` (cluster-wide), `helm upgrade` to two replicas with a
//! PodDisruptionBudget and to namespaced mode, `helm uninstall` leaving
//! nothing behind. (kwok plays the pods; the real-pod scenario runs the
//! chart's operator for real.) The CRD is the suite's, applied from crds/,
//! so the chart's copy stays off here.

use std::process::Command;

use super::cluster::{self, Cluster, repo};
use super::realpods::helm;

fn run_helm(cluster: &Cluster, args: &[&str]) -> String {
    let out = Command::new(helm())
        .args(args)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .current_dir(repo())
        .output()
        .expect("run helm (set KEYROTOR_HELM)");
    assert!(
        out.status.success(),
        "helm {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Names of `kind` objects labelled as this release's (all namespaces).
fn names(cluster: &Cluster, kind: &str, release: &str) -> Vec<String> {
    let out = cluster.ok(&[
        "get",
        kind,
        "-A",
        "-l",
        &format!("app.kubernetes.io/instance={release}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
    ]);
    out.lines().map(String::from).collect()
}

#[tokio::test]
async fn helm_install_upgrade_uninstall() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let release = "kr-e2e";
    let ns = cluster.namespace("e2e-helm-system").await;
    let watched = [
        cluster.namespace("e2e-helm-a").await,
        cluster.namespace("e2e-helm-b").await,
    ];
    let common = [
        "--namespace",
        ns.name.as_str(),
        "--wait",
        "--timeout",
        "120s",
        "--set",
        "crds.enabled=false",
        "--set",
        "reporterPolicy.enabled=false",
        "--set",
        "nodeSelector.type=kwok",
    ];
    let mut install = vec!["install", release, "charts/keyrotor"];
    install.extend(common);
    let notes = run_helm(cluster, &install);
    assert!(notes.contains("keyrotor"), "no NOTES: {notes}");

    // Cluster-wide: one ClusterRole bound to the release's ServiceAccount.
    let cluster_roles = names(cluster, "clusterroles", release);
    assert_eq!(cluster_roles.len(), 1, "{cluster_roles:?}");
    let deployment = cluster.ok(&[
        "get",
        "deployment",
        "-n",
        &ns.name,
        "-l",
        &format!("app.kubernetes.io/instance={release}"),
        "-o",
        "jsonpath={.items[0].status.readyReplicas}",
    ]);
    assert_eq!(deployment, "1");
    let sa = cluster.ok(&["get", "serviceaccounts", "-n", &ns.name, "-o", "name"]);
    assert!(sa.lines().count() >= 2, "no release ServiceAccount: {sa}");

    // Upgrade: two replicas (leader election), a PDB, and namespaced mode.
    let watch = format!(
        "watchNamespaces={{{},{}}}",
        watched[0].name, watched[1].name
    );
    let mut upgrade = vec!["upgrade", release, "charts/keyrotor"];
    upgrade.extend(common);
    upgrade.extend([
        "--set",
        "replicaCount=2",
        "--set",
        "podDisruptionBudget.enabled=true",
        "--set",
        &watch,
    ]);
    run_helm(cluster, &upgrade);
    let ready = cluster.ok(&[
        "get",
        "deployment",
        "-n",
        &ns.name,
        "-l",
        &format!("app.kubernetes.io/instance={release}"),
        "-o",
        "jsonpath={.items[0].status.readyReplicas}",
    ]);
    assert_eq!(ready, "2");
    assert_eq!(names(cluster, "poddisruptionbudgets", release).len(), 1);
    // Namespaced: Roles in the watched namespaces and nothing cluster-wide
    // that reaches Secrets.
    let roles = names(cluster, "roles", release);
    for w in &watched {
        assert!(
            roles.iter().any(|r| r.starts_with(&format!("{}/", w.name))),
            "no Role in {}: {roles:?}",
            w.name
        );
    }
    for role in names(cluster, "clusterroles", release) {
        let name = role.trim_start_matches('/');
        let rules = cluster.ok(&["get", "clusterrole", name, "-o", "jsonpath={.rules}"]);
        assert!(
            !rules.contains("secrets"),
            "namespaced mode still grants Secrets cluster-wide: {rules}"
        );
    }
    let args = cluster.ok(&[
        "get",
        "deployment",
        "-n",
        &ns.name,
        "-l",
        &format!("app.kubernetes.io/instance={release}"),
        "-o",
        "jsonpath={.items[0].spec.template.spec.containers[0].args}",
    ]);
    assert!(args.contains(&watched[0].name), "{args}");

    run_helm(
        cluster,
        &["uninstall", release, "--namespace", &ns.name, "--wait"],
    );
    for kind in [
        "deployments",
        "clusterroles",
        "clusterrolebindings",
        "roles",
        "rolebindings",
        "serviceaccounts",
        "services",
        "poddisruptionbudgets",
    ] {
        let left = names(cluster, kind, release);
        assert!(left.is_empty(), "{kind} left after uninstall: {left:?}");
    }
}
