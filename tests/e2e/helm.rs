//! Scenario 8: the chart's life cycle against the real API server: `helm
//! install` (cluster-wide), `helm upgrade` to two replicas with a
//! PodDisruptionBudget and to namespaced mode, `helm uninstall` leaving
//! nothing behind (kwok plays the pods). And the images users get, built by
//! `.ci/image` and imported into the real node: the chart's default image
//! runs the operator, it and the slim sidecar image run the reporter, as
//! real pods through a rotation. The CRD is the suite's, applied from crds/, so the chart's copy
//! stays off here.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::cluster::{self, Cluster};
use super::observer::Observer;
use super::realnode::{
    consumer_account, deployment, install_operator, operator_log, pod_env, real_nodes, real_pod,
    release_image, restricted, run_helm, sidecar_image, uninstall_operator,
};
use super::scenario::{
    apply, assert_no_key_material, check_history, request_rotation, rotation, wait_stable,
};

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

/// A field of the first pod of `ns` labelled `selector` (a kubectl jsonpath).
fn pod_field(cluster: &Cluster, ns: &str, selector: &str, path: &str) -> String {
    cluster.ok(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        selector,
        "-o",
        &format!("jsonpath={{.items[0].{path}}}"),
    ])
}

#[tokio::test]
async fn helm_installs_the_release_image_and_it_rotates_a_key_on_a_real_node() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let image = release_image(cluster);
    let operator_ns = "e2e-helm-image-operator";
    uninstall_operator(cluster, operator_ns);
    let ns = cluster.namespace("e2e-helm-image").await;
    // `helm install --wait`: the chart's default image, no image value set.
    let operator_ns = install_operator(cluster, operator_ns, &[&ns.name]).await;
    let operator = "app.kubernetes.io/name=keyrotor";
    let spec_image = pod_field(
        cluster,
        &operator_ns.name,
        operator,
        "spec.containers[0].image",
    );
    assert_eq!(
        spec_image, image,
        "the chart's default image is not .ci/image's"
    );
    let ready = pod_field(
        cluster,
        &operator_ns.name,
        operator,
        "status.containerStatuses[0].ready",
    );
    assert_eq!(
        ready, "true",
        "the operator pod from the release image is not Ready"
    );

    // Two verifier pods, each with a reporter alone: `keyrotor reporter`
    // from the operator image, as examples/reporter/ runs it, and the slim
    // sidecar image's. The new version's step waits for both to run and
    // report (minConsumers 2).
    consumer_account(cluster, &ns.name);
    let client = cluster.client().await;
    let name = "api";
    let sidecar = sidecar_image(cluster);
    let verifiers = [("verifier", image), ("verifier-slim", sidecar)].map(|(app, image)| {
        let reporter = json!([{
            "name": "reporter", "image": image,
            "args": ["reporter", "--dir", "/keys", "--poll-seconds", "1"],
            "env": pod_env(), "securityContext": restricted(),
            "volumeMounts": [{"name": "keys", "mountPath": "/keys", "readOnly": true}],
        }]);
        let volumes =
            json!([{"name": "keys", "secret": {"secretName": format!("{name}-verifier")}}]);
        deployment(&ns.name, app, 1, real_pod(app, reporter, volumes))
    });
    let mut r = rotation(
        &ns.name,
        name,
        json!({"minConsumers": 2}),
        json!({"minConsumers": 0}),
    );
    r["spec"]["gracePeriod"]["minimum"] = "1s".into();
    let observer = Observer::start(client.clone(), &ns.name).await;
    apply(&client, &ns.name, &r).await;
    wait_stable(&client, &ns.name, name, 1, Duration::from_secs(60)).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    for verifier in &verifiers {
        deployments
            .create(&PostParams::default(), verifier)
            .await
            .unwrap();
    }
    request_rotation(&client, &ns.name, name, "release-image").await;
    wait_stable(&client, &ns.name, name, 2, Duration::from_secs(180)).await;
    let mut logs = vec![operator_log(cluster, &operator_ns.name)];
    for app in ["verifier", "verifier-slim"] {
        let ready = pod_field(
            cluster,
            &ns.name,
            &format!("app={app}"),
            "status.containerStatuses[0].ready",
        );
        assert_eq!(ready, "true", "{app}: the reporter is not Ready");
        let deploy = format!("deploy/{app}");
        let log = cluster.ok(&["logs", &deploy, "-n", &ns.name, "--tail=-1"]);
        logs.push((deploy, log));
    }
    check_history(&observer, name);
    assert_no_key_material(cluster, &ns.name, &observer, &logs);
    observer.stop();
    assert!(
        uninstall_operator(cluster, &operator_ns.name),
        "helm uninstall failed"
    );
}
