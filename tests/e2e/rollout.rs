//! Scenario 2: Rollout mode on real Deployments (controller-manager rolls
//! them, kwok runs the pods). Presenters get the new version only after every
//! verifier pod runs the template that loaded it; the old version is retired
//! only after every presenter pod runs the new revision.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::wire::{self as k, RevisionReport};
use kube::ResourceExt;
use kube::api::Api;

use super::cluster;
use super::observer::Observer;
use super::operator::{Operator, logs_of};
use super::scenario::*;

/// Revision the pod's template was stamped with for `role`, if any.
fn stamped(p: &Pod, rotation: &str, role: &str) -> Option<u64> {
    RevisionReport::read(p.annotations(), rotation, role).map(|r| r.0)
}

fn live(p: &Pod, app: &str) -> bool {
    p.labels().get("app").map(String::as_str) == Some(app)
        && p.metadata.deletion_timestamp.is_none()
}

#[tokio::test]
async fn rollout_mode_retires_the_old_key_only_after_every_pod_rolled() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-rollout").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    let mut operator = Operator::watching(cluster, &ns.name, "rollout");
    let name = "api";
    rollout_rotation(&client, &ns.name, 3).await;

    request_rotation(&client, &ns.name, name, "first").await;
    wait_stable(&client, &ns.name, name, 2, Duration::from_secs(180)).await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    assert!(
        secrets.get_opt("api-v1").await.unwrap().is_none(),
        "v1 kept"
    );
    let revision = |s: &Secret| -> u64 { s.annotations()[k::REVISION].parse().unwrap() };
    let verifier = secrets.get("api-verifier").await.unwrap();
    let presenter = secrets.get("api-key").await.unwrap();

    // When presenters were given v2, every verifier pod ran a template that
    // had loaded a verifier revision accepting v2.
    let mut seen_v2_accepted = None;
    let at_promotion = observer
        .pods_at(|s| {
            if s.name_any() == "api-verifier"
                && seen_v2_accepted.is_none()
                && s.annotations()[k::ACCEPTED].split(',').any(|v| v == "2")
            {
                seen_v2_accepted = Some(revision(s));
            }
            s.name_any() == "api-key" && s.annotations()[k::CURRENT] == "2"
        })
        .expect("presenters never got v2");
    let accepting = seen_v2_accepted.expect("verifiers never accepted v2");
    let servers: Vec<_> = at_promotion.iter().filter(|p| live(p, "server")).collect();
    assert_eq!(servers.len(), 3, "verifier pods at promotion");
    for p in servers {
        let r = stamped(p, name, "verifier");
        assert!(
            r >= Some(accepting),
            "{} ran verifier revision {r:?} < {accepting} when presenters got v2",
            p.name_any()
        );
    }

    // When v1 left the accepted set, every presenter pod ran the revision
    // that presents v2.
    let at_retirement = observer
        .pods_when_dropped("api-verifier", 1)
        .expect("v1 never left the accepted set");
    let clients: Vec<_> = at_retirement.iter().filter(|p| live(p, "client")).collect();
    assert_eq!(clients.len(), 3, "presenter pods at retirement");
    for p in clients {
        assert_eq!(
            stamped(p, name, "presenter"),
            Some(revision(&presenter)),
            "{} had not rolled when v1 was retired",
            p.name_any()
        );
    }
    assert!(revision(&verifier) > accepting);

    check_history(&observer, name);
    assert_no_key_material(cluster, &ns.name, &observer, &logs_of(&[&operator]));
    operator.terminate();
    observer.stop();
}
