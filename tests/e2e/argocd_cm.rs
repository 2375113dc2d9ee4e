//! Installing the Argo CD health check keeps the rest of Argo CD's
//! configuration. `argocd-cm` is created the way most Argo CD installs
//! create it (a client-side `kubectl apply`), then the exact command the
//! docs give (the comment in deploy/argocd/health-patch.yaml, repeated in
//! README.md and docs/argocd.md) adds the health key. An apply of a
//! ConfigMap holding only that key would hand every existing key to its
//! field manager and prune them on the real API server.

use std::collections::BTreeMap;

use super::cluster::{self, Cluster, repo};

const KEY: &str = "resource.customizations.health.keyrotor.dev_ApiKeyRotation";
/// The health check, in Argo CD's own layout.
const HEALTH_LUA: &str =
    "deploy/argocd/resource_customizations/keyrotor.dev/ApiKeyRotation/health.lua";

/// Argo CD's own keys, as its install manifests and a user's edits leave them.
fn argocd_cm(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: {ns}\n\
         data:\n  url: https://argocd.example.com\n  admin.enabled: \"false\"\n  \
         timeout.reconciliation: 180s\n"
    )
}

fn data(cluster: &Cluster, ns: &str) -> BTreeMap<String, String> {
    let out = cluster.ok(&["get", "configmap", "argocd-cm", "-n", ns, "-o", "json"]);
    let cm: serde_json::Value = serde_json::from_str(&out).unwrap();
    serde_json::from_value(cm["data"].clone()).unwrap()
}

/// The documented command, from the generated patch's header.
fn documented_command() -> String {
    let patch = std::fs::read_to_string(repo().join("deploy/argocd/health-patch.yaml")).unwrap();
    let command = patch
        .lines()
        .find_map(|l| l.strip_prefix("#   kubectl "))
        .expect("health-patch.yaml names its command");
    format!("kubectl {command}")
}

#[tokio::test]
async fn the_health_check_install_keeps_every_other_key_of_a_client_side_argocd_cm() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let command = documented_command();
    for doc in ["README.md", "docs/argocd.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        assert!(text.contains(&command), "{doc} does not give `{command}`");
    }

    let ns = cluster.namespace("e2e-argocd-cm").await;
    cluster.ok_stdin(&["apply", "-f", "-"], &argocd_cm(&ns.name));
    let before = data(cluster, &ns.name);
    assert_eq!(before.len(), 3, "{before:?}");

    // The command as documented, pointed at this scenario's namespace; twice,
    // since users run it again after each upgrade.
    let args: Vec<String> = command
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a == "argocd" {
                ns.name.clone()
            } else {
                a.to_string()
            }
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(
        args.contains(&"-n"),
        "the command names the namespace: {command}"
    );
    for _ in 0..2 {
        cluster.ok(&args);
        let after = data(cluster, &ns.name);
        for (k, v) in &before {
            assert_eq!(after.get(k), Some(v), "the health install changed {k}");
        }
        let lua = std::fs::read_to_string(repo().join(HEALTH_LUA)).unwrap();
        assert_eq!(
            after.get(KEY),
            Some(&lua),
            "the health check is not health.lua"
        );
        assert_eq!(after.len(), 4, "{:?}", after.keys());
    }

    // Argo CD upgraded by the same client-side apply keeps the health check.
    cluster.ok_stdin(&["apply", "-f", "-"], &argocd_cm(&ns.name));
    let upgraded = data(cluster, &ns.name);
    assert!(upgraded.contains_key(KEY), "{:?}", upgraded.keys());
    assert_eq!(upgraded.len(), 4, "{:?}", upgraded.keys());
}
