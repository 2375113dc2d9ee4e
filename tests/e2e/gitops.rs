//! What the GitOps scenarios (Argo CD's and Flux's) share: an
//! ApiKeyRotation as a user keeps it in Git and committing it there, a
//! rotation asked for as `kubectl keyrotor rotate` does, the chart values
//! this cluster needs whichever tool installs the chart, the operator it
//! installed found ready, and the per-stage record printed.

use keyrotor::api::ApiKeyRotation;
use keyrotor_testsupport::e2e::git::GitRepo;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::cluster::Cluster;
use super::realnode::{api_env, free_port};

/// Long enough to see a cycle in flight, short enough for a test.
const GRACE: &str = "15s";

/// An ApiKeyRotation as a user keeps it in Git: Report confirmation, no
/// consumer required unless `verifiers` says so, a rotation asked for by
/// `request`.
pub fn rotation(name: &str, request: Option<&str>, verifiers: u32) -> Value {
    let mut r = json!({
        "apiVersion": "keyrotor.dev/v1alpha1", "kind": "ApiKeyRotation",
        "metadata": {"name": name},
        "spec": {
            "secrets": {"verifier": format!("{name}-verifier"), "presenter": format!("{name}-key")},
            "schedule": {"interval": "720h"},
            "gracePeriod": {"minimum": GRACE, "maximum": "1h"},
            "consumers": {
                "verifiers": {"confirmation": "Report", "minConsumers": verifiers},
                "presenters": {"confirmation": "Report", "minConsumers": 0},
            },
        },
    });
    if let Some(request) = request {
        r["spec"]["rotationRequest"] = request.into();
    }
    r
}

/// Writes rotation `r` to `git` as rotations/<name>.yaml.
pub fn write_rotation(git: &GitRepo, r: &Value) {
    let name = r["metadata"]["name"].as_str().unwrap();
    let text = serde_yaml::to_string(r).unwrap();
    git.write(&format!("rotations/{name}.yaml"), &text);
}

/// Commits rotation `r` to `git` as rotations/<name>.yaml; the commit.
pub fn commit_rotation(git: &GitRepo, r: &Value, message: &str) -> String {
    write_rotation(git, r);
    git.commit(message)
}

/// Asks for a rotation as `kubectl keyrotor rotate` does: a fresh token in
/// the request annotation, which Git does not have.
pub async fn rotate_imperatively(client: &Client, ns: &str, name: &str, token: &str) {
    let api: Api<ApiKeyRotation> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {keyrotor::wire::ROTATE_REQUEST: token}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Sets in the chart's `values` what this cluster needs (as
/// realnode::helm_install sets them): the real node's network (no CNI) and
/// taint, the API server's address (no kube-proxy), a free admin port, one
/// replica, the suite's CRD; the operator watching `watch`.
pub fn cluster_values(values: &mut Map<String, Value>, watch: &str) {
    let tolerations =
        json!([{"key": "keyrotor.dev/real", "operator": "Exists", "effect": "NoSchedule"}]);
    for (k, v) in [
        ("replicaCount", json!(1)),
        ("crds", json!({"enabled": false})),
        ("reporterPolicy", json!({"enabled": false})),
        ("hostNetwork", json!(true)),
        ("admin", json!({"port": free_port()})),
        ("watchNamespaces", json!([watch])),
        ("nodeSelector", json!({"type": "real"})),
        ("tolerations", tolerations),
        ("extraEnv", api_env()),
    ] {
        values.insert(k.into(), v);
    }
}

/// Checks that the operator `tool` installed into `operator_ns` is ready
/// and runs `image`; its Deployment (`deploy/<name>`).
pub fn operator_ready(cluster: &Cluster, operator_ns: &str, image: &str, tool: &str) -> String {
    let deploy = format!("deploy/keyrotor-{operator_ns}");
    let ready = field(cluster, &deploy, operator_ns, "{.status.readyReplicas}");
    assert_eq!(ready, "1", "the operator {tool} installed is not ready");
    let path = "{.spec.template.spec.containers[0].image}";
    assert_eq!(field(cluster, &deploy, operator_ns, path), image);
    deploy
}

/// A field of Deployment `deploy` in `ns` (a kubectl jsonpath).
fn field(cluster: &Cluster, deploy: &str, ns: &str, path: &str) -> String {
    cluster.ok(&["get", deploy, "-n", ns, "-o", &format!("jsonpath={path}")])
}

/// Prints what a tool showed per stage under `title`, each row with its
/// number of looks (for the record; --nocapture).
pub fn print_rows(title: &str, rows: Vec<(String, usize)>) {
    eprintln!("\n{title} [looks]:");
    for (row, n) in rows {
        eprintln!("  {row}  [{n}]");
    }
}
