//! Scenario 7: nothing to do means nothing written (I8), counted from the
//! API server's audit log (every write, with its user). While the rotation is
//! Stable the operator is made to reconcile again and again (its object and
//! the consumer pods change in ways that need no action) and two restarts
//! re-read everything (Rollout mode): not one create, update, patch or
//! delete follows.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use keyrotor::api::ApiKeyRotation;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::cluster;
use super::observer::Observer;
use super::operator::{Operator, Options, logs_of};
use super::scenario::*;

#[tokio::test]
async fn a_quiet_window_makes_zero_writes() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-quiet").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    let options = || Options {
        namespace: &ns.name,
        name: "quiet",
        lease: None,
    };
    let mut operator = Operator::start(cluster, options());
    let name = "api";
    rollout_rotation(&client, &ns.name, 2).await;
    request_rotation(&client, &ns.name, name, "one").await;
    wait_stable(&client, &ns.name, name, 2, Duration::from_secs(180)).await;
    // Let the last status write and rollouts settle before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mark = audit_mark(cluster);
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    for i in 0..5 {
        // Metadata the operator does not act on: each change is a reconcile.
        let label = json!({"metadata": {"labels": {"touched": i.to_string()}}});
        rotations
            .patch(name, &PatchParams::default(), &Patch::Merge(&label))
            .await
            .unwrap();
        deployments
            .patch("client", &PatchParams::default(), &Patch::Merge(&label))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Two restarts: each re-reads everything and finds nothing to do.
    for _ in 0..2 {
        operator.terminate();
        operator = Operator::start(cluster, options());
        tokio::time::sleep(Duration::from_secs(8)).await;
    }
    let writes = operator_writes(cluster, &ns.name, mark);
    assert!(
        writes.is_empty(),
        "writes while nothing was due: {writes:#?}"
    );

    // The count can fail: the same log shows the writes of a rotation.
    request_rotation(&client, &ns.name, name, "two").await;
    wait_stable(&client, &ns.name, name, 3, Duration::from_secs(180)).await;
    let writes = operator_writes(cluster, &ns.name, mark);
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("create secrets/api-v3")),
        "the audit log missed the rotation's writes: {writes:#?}"
    );
    println!("one rotation cycle, as the audit log saw it: {writes:#?}");

    check_history(&observer, name);
    assert_no_key_material(cluster, &ns.name, &observer, &logs_of(&[&operator]));
    operator.terminate();
    observer.stop();
}
