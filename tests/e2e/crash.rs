//! Scenario 4: the operator SIGKILLed at random moments of two rotations and
//! restarted each time. Both rotations complete, no version is lost or issued
//! twice, and the invariants hold over the whole history.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use keyrotor::wire as k;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use rand::RngExt;

use super::cluster;
use super::observer::Observer;
use super::operator::{Operator, Options, logs_of};
use super::scenario::*;

#[tokio::test]
async fn sigkill_at_random_moments_and_the_rotation_completes() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-crash").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    let start = |i: usize| {
        Operator::start(
            cluster,
            Options {
                namespace: &ns.name,
                name: &format!("crash-{i}"),
                lease: None,
            },
        )
    };
    let mut operators = vec![start(0)];
    let name = "api";
    rollout_rotation(&client, &ns.name, 2).await;

    let mut rng = rand::rng();
    let mut kills = 0;
    for (round, target) in [(0, 2), (1, 3)] {
        request_rotation(&client, &ns.name, name, &format!("round-{round}")).await;
        // Kill at random moments while the cycle is in flight; a few kills
        // per cycle, then let it finish.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..2500))).await;
            operators.last_mut().unwrap().kill();
            kills += 1;
            operators.push(start(operators.len()));
        }
        wait_stable(&client, &ns.name, name, target, Duration::from_secs(240)).await;
    }
    assert_eq!(kills, 8);

    // One Secret per live version, named for it, and none left of retired ones.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let versions: Vec<String> = secrets
        .list(&ListParams::default().labels(&format!("{}={name}", k::ROTATION_LABEL)))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|s| s.labels().get(k::VERSION_LABEL).cloned())
        .collect();
    assert_eq!(versions, ["3"], "version Secrets left: {versions:?}");
    let status = get(&client, &ns.name, name).await.status.unwrap();
    let numbers: Vec<u64> = status.versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1, 2, 3], "history {numbers:?}");

    check_history(&observer, name);
    let refs: Vec<&Operator> = operators.iter().collect();
    assert_no_key_material(cluster, &ns.name, &observer, &logs_of(&refs));
    observer.stop();
}
