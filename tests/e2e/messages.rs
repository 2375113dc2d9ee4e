//! Scenario: what keyrotor says to a new user who got something wrong, on
//! the real API server.
//!
//! - An operator whose RBAC lacks `patch` on pods (the shipped ClusterRole
//!   minus that one verb) has its nudges refused: it says so once in its log
//!   and once per rotation in a `NudgeForbidden` event, counts the refusals
//!   in `keyrotor_nudges_refused_total`, and the rotation still completes
//!   (the nudge is only a hint; a refused one is not a failed reconcile).
//! - Revoking a version number never issued: one `RevokedInAdvance` event
//!   saying it is recorded in advance and will never be issued.

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::alerts::{ROTATION, consumer, reporter};
use super::cluster;
use super::observer::Observer;
use super::operator::{Operator, Options, logs_of};
use super::scenario::*;

#[tokio::test]
async fn refused_nudges_and_a_revocation_in_advance_are_said_once() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-messages").await;
    let client = cluster.client().await;

    // The shipped ClusterRole without `patch` on pods, for a ServiceAccount
    // of this namespace (cluster-scoped objects: deleted at the end).
    let role_name = format!("keyrotor-nopatch-{}", ns.name);
    let mut role: Value =
        serde_json::from_str(&cluster.ok(&["get", "clusterrole", "keyrotor", "-o", "json"]))
            .unwrap();
    let mut removed = 0;
    for rule in role["rules"].as_array_mut().unwrap() {
        if rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "pods")
        {
            let verbs = rule["verbs"].as_array_mut().unwrap();
            let before = verbs.len();
            verbs.retain(|v| v != "patch");
            removed += before - verbs.len();
        }
    }
    assert_eq!(removed, 1, "the shipped role grants `patch` on pods once");
    role["metadata"] = json!({"name": role_name});
    cluster.ok_stdin(&["apply", "-f", "-"], &role.to_string());
    cluster.ok(&["create", "serviceaccount", "nopatch", "-n", &ns.name]);
    cluster.ok(&[
        "create",
        "clusterrolebinding",
        &role_name,
        "--clusterrole",
        &role_name,
        "--serviceaccount",
        &format!("{}:nopatch", ns.name),
    ]);
    let token = cluster.ok(&[
        "create",
        "token",
        "nopatch",
        "-n",
        &ns.name,
        "--duration=1h",
    ]);
    let kubeconfig = cluster.dir.join(format!("{}-nopatch.kubeconfig", ns.name));
    cluster.write_kubeconfig(&kubeconfig, token.trim());

    let observer = Observer::start(client.clone(), &ns.name).await;
    let mut operator = Operator::start_as(
        cluster,
        Options {
            namespace: &ns.name,
            name: "nopatch",
            lease: None,
        },
        &kubeconfig,
    );
    consumer(&client, &ns.name, "server", "api-verifier").await;
    consumer(&client, &ns.name, "client", "api-key").await;
    let on = Arc::new(AtomicBool::new(true));
    let reporters = [
        reporter(
            client.clone(),
            ns.name.clone(),
            "server",
            "verifier",
            "api-verifier",
            on.clone(),
        ),
        reporter(
            client.clone(),
            ns.name.clone(),
            "client",
            "presenter",
            "api-key",
            on,
        ),
    ];
    let r = rotation(&ns.name, ROTATION, report(), report());
    apply(&client, &ns.name, &r).await;
    wait_stable(&client, &ns.name, ROTATION, 1, Duration::from_secs(60)).await;
    // A whole cycle, with nudges refused at each step.
    request_rotation(&client, &ns.name, ROTATION, "one").await;
    wait_stable(&client, &ns.name, ROTATION, 2, Duration::from_secs(120)).await;

    let said = event_notes(&client, &ns.name, ROTATION, "NudgeForbidden").await;
    assert_eq!(said.len(), 1, "NudgeForbidden events: {said:?}");
    assert!(
        said[0].contains("RBAC lacks `patch` on pods"),
        "{}",
        said[0]
    );
    let logged = operator
        .logs()
        .lines()
        .filter(|l| l.contains("cannot nudge consumers"))
        .count();
    assert_eq!(logged, 1, "log:\n{}", operator.logs());
    let (_, metrics) = keyrotor::ops::admin::get(operator.admin.parse().unwrap(), "/metrics")
        .await
        .unwrap();
    let refused: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "keyrotor_nudges_refused_total{{namespace=\"{}\",name=\"{ROTATION}\"}} ",
                ns.name
            ))
        })
        .unwrap_or_else(|| panic!("no refused nudges counted:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(refused >= 2.0, "{refused} refused nudges counted");
    assert!(
        metrics.contains("keyrotor_reconcile_errors_total{category=\"forbidden\"} 0"),
        "a refused nudge failed a reconcile:\n{metrics}"
    );

    // Revoking a number never issued: said once, and it is never issued.
    let rotations: Api<keyrotor::api::ApiKeyRotation> = Api::namespaced(client.clone(), &ns.name);
    let revoke = json!({"spec": {"revokedVersions": [3]}});
    rotations
        .patch(ROTATION, &PatchParams::default(), &Patch::Merge(&revoke))
        .await
        .unwrap();
    let said = keyrotor_testsupport::eventually(
        "a RevokedInAdvance event",
        Duration::from_secs(30),
        || async {
            let said = event_notes(&client, &ns.name, ROTATION, "RevokedInAdvance").await;
            (!said.is_empty()).then_some(said)
        },
    )
    .await;
    assert_eq!(
        said,
        [
            "version 3 has not been issued (the highest is 2): its revocation is recorded in advance and version 3 will never be issued"
        ]
    );
    request_rotation(&client, &ns.name, ROTATION, "two").await;
    wait_stable(&client, &ns.name, ROTATION, 4, Duration::from_secs(120)).await;
    assert_eq!(
        event_notes(&client, &ns.name, ROTATION, "RevokedInAdvance")
            .await
            .len(),
        1
    );
    let status = get(&client, &ns.name, ROTATION).await.status.unwrap();
    let numbers: Vec<u64> = status.versions.iter().map(|v| v.version).collect();
    assert!(!numbers.contains(&3), "version 3 was issued: {numbers:?}");

    for r in reporters {
        r.abort();
    }
    check_history(&observer, ROTATION);
    assert_no_key_material(cluster, &ns.name, &observer, &logs_of(&[&operator]));
    operator.terminate();
    observer.stop();
    cluster.ok(&["delete", "clusterrolebinding", &role_name]);
    cluster.ok(&["delete", "clusterrole", &role_name]);
}
