//! Scenario 5: two replicas with leader election on a real Lease. The leader
//! is SIGKILLed in the middle of a rotation (no handover); the standby takes
//! the lease once it expires and finishes the rotation.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use keyrotor_testsupport::eventually;
use kube::api::Api;

use super::cluster::{self, OPERATOR_NS};
use super::observer::Observer;
use super::operator::{Operator, Options, logs_of};
use super::scenario::*;

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

#[tokio::test]
async fn the_standby_finishes_when_the_leader_is_killed() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-leader").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    // The name deploy/ grants: its Role allows get/update of this Lease only.
    let lease = "keyrotor-leader";
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NS);
    let start = |name: &'static str| {
        Operator::start(
            cluster,
            Options {
                namespace: &ns.name,
                name,
                lease: Some(lease),
            },
        )
    };
    let mut a = start("replica-a");
    let first = eventually("a leader", Duration::from_secs(60), || {
        holder(&leases, lease)
    })
    .await;
    assert_eq!(first, "replica-a");
    let mut b = start("replica-b");

    let name = "api";
    rollout_rotation(&client, &ns.name, 2).await;
    assert!(
        !b.logs().contains("caches synced"),
        "the standby ran the controller while the leader held the lease"
    );

    request_rotation(&client, &ns.name, name, "takeover").await;
    // Kill the leader once the cycle is under way.
    eventually("the cycle to start", Duration::from_secs(60), || async {
        let s = get(&client, &ns.name, name).await.status?;
        (s.target_version == Some(2)).then_some(())
    })
    .await;
    a.kill();
    let next = eventually("a new leader", Duration::from_secs(60), || async {
        holder(&leases, lease).await.filter(|h| h != "replica-a")
    })
    .await;
    assert_eq!(next, "replica-b");
    assert!(b.logs().contains("became the leader"));
    wait_stable(&client, &ns.name, name, 2, Duration::from_secs(180)).await;
    assert!(b.running(), "the new leader exited");

    check_history(&observer, name);
    assert_no_key_material(cluster, &ns.name, &observer, &logs_of(&[&a, &b]));
    b.terminate();
    // A clean exit hands the lease over at once (released, not left to expire).
    let released = holder(&leases, lease).await;
    assert!(
        released.as_deref().is_none_or(|h| h.is_empty()),
        "lease still held by {released:?} after a clean exit"
    );
    observer.stop();
}
