//! Real pods on a real kubelet (tests/cluster/up --real-nodes 1): the proof
//! users install keyrotor for. Verifier and presenter pods run keyrotor's
//! sample app and reporter sidecar from a hand-made image, mount the Secrets
//! through kubelet's projected volumes and call each other over 127.0.0.1,
//! while the operator, installed by `helm install` from charts/ as a pod on
//! that node, rotates the key back to back. Every request is recorded:
//! keyrotor must reject none. The same pods and traffic under the naive
//! overwrite-in-place (what most tools do) must reject some.

use std::io::Write;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use keyrotor::api::ApiKeyRotation;
use keyrotor::wire as k;
use keyrotor_testsupport::eventually;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use super::cluster;
use super::observer::Observer;
use super::operator::keyrotor;
use super::realnode::*;
use super::scenario::*;

#[tokio::test]
async fn real_pods_see_zero_rejections_and_the_naive_overwrite_does_not() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let stage = Stage::start(cluster, "e2e-realpods", true, keyrotor()).await;
    let (ns, client, records, pods) = (&stage.ns, &stage.client, &stage.records, &stage.pods);
    let mut r = stage.rotation.clone();
    let name = ROTATION;
    let observer = Observer::start(client.clone(), &ns.name).await;

    // keyrotor: rotations back to back.
    let since = now_ms();
    let started = Instant::now();
    let mut cycles = Vec::new();
    for i in 0..ROTATIONS {
        let t = Instant::now();
        request_rotation(client, &ns.name, name, &format!("r{i}")).await;
        wait_stable(client, &ns.name, name, i + 2, Duration::from_secs(180)).await;
        cycles.push(t.elapsed());
    }
    let total = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ours = tally(&requests(records, since));
    let mean = total / ROTATIONS as u32;
    let slowest = cycles.iter().max().unwrap();
    let _ = writeln!(
        std::io::stderr(),
        "keyrotor on real pods: {ROTATIONS} rotations, mean cycle {mean:.2?}, slowest {slowest:.2?}; \
         {} requests, {} rejected, {} unanswered",
        ours.sent,
        ours.rejected,
        ours.unanswered
    );
    check_history(&observer, name);
    assert_eq!(ours.rejected, 0, "keyrotor let requests be rejected");
    assert_eq!(ours.unanswered, 0, "requests went unanswered");
    assert!(ours.sent > 100, "too little traffic: {}", ours.sent);

    // The naive overwrite on the same pods: keyrotor lets go of the Secrets
    // (Orphan keeps them), then they are overwritten in place.
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &ns.name);
    r["spec"]["deletionPolicy"] = "Orphan".into();
    apply(client, &ns.name, &r).await;
    rotations
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(
        &rotations,
        name,
        "the rotation to go",
        Duration::from_secs(60),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let revision: u64 = secrets.get("api-verifier").await.unwrap().annotations()[k::REVISION]
        .parse()
        .unwrap();
    let since = now_ms();
    let mut naive = tally(&[]);
    // Each overwrite waits until every pod loaded it (kubelet's own pace:
    // up to ~90 s); stop once requests were rejected (bounded).
    for round in 1..=3u64 {
        let revision = revision + round;
        overwrite(&secrets, name, 1000 + round, revision).await;
        eventually(
            "pods to load the overwrite",
            Duration::from_secs(200),
            || async { all_report(pods, name, revision).await.then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        naive = tally(&requests(records, since));
        if naive.rejected > 0 {
            break;
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "naive overwrite on the same pods: {} requests, {} rejected",
        naive.sent,
        naive.rejected
    );
    assert!(naive.rejected > 0, "the naive overwrite rejected nothing");

    // Deleting a watched namespace in namespaced mode also deletes the Role
    // that lets keyrotor clean up; the namespace must still go away.
    r["spec"]["deletionPolicy"] = "Delete".into();
    r["metadata"]["name"] = "last".into();
    r["spec"]["secrets"] = json!({"verifier": "last-verifier", "presenter": "last-key"});
    apply(client, &ns.name, &r).await;
    wait_stable(client, &ns.name, "last", 1, Duration::from_secs(60)).await;
    cluster.ok(&["delete", "namespace", &ns.name, "--wait=false"]);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let what = "the watched namespace to go";
    wait_gone(&namespaces, &ns.name, what, Duration::from_secs(90)).await;

    stage.uninstall(cluster);
    observer.stop();
}
