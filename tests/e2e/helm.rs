//! Scenario 8: the chart's life cycle against the real API server: `helm
//! install` (cluster-wide), `helm upgrade` to two replicas with a
//! PodDisruptionBudget and to namespaced mode, `helm uninstall` leaving
//! nothing behind. (kwok plays the pods; the real-pod scenario runs the
//! chart's operator for real.) The CRD is the suite's, applied from crds/,
//! so the chart's copy stays off here.

use super::cluster::{self, Cluster};
use super::realnode::run_helm;

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

/// A field of the release's Deployment (a kubectl jsonpath).
fn deployment_field(cluster: &Cluster, ns: &str, release: &str, path: &str) -> String {
    cluster.ok(&[
        "get",
        "deployment",
        "-n",
        ns,
        "-l",
        &format!("app.kubernetes.io/instance={release}"),
        "-o",
        &format!("jsonpath={{.items[0].{path}}}"),
    ])
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
    let deployment = deployment_field(cluster, &ns.name, release, "status.readyReplicas");
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
    let ready = deployment_field(cluster, &ns.name, release, "status.readyReplicas");
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
    let args = deployment_field(
        cluster,
        &ns.name,
        release,
        "spec.template.spec.containers[0].args",
    );
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
