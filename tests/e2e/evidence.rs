//! Scenario: missing evidence is never confirmation, on the real API server
//! with kwok pods (whose reports the test plays, as `alerts.rs` does).
//!
//! - (a) A Report rotation whose presenters keyrotor cannot see: the old key
//!   stays accepted past the minimum grace, `MigrationStalled` says
//!   NoConsumers with one event naming the Secret and the namespace
//!   searched, and the cycle completes once a presenter appears and reports.
//! - (b) A pod that reads the key through an environment variable in a
//!   Report group is named as soon as presenters are waited for
//!   (ConsumersCannotConfirm, one event), never counted as confirmed though
//!   its reporter reports, and the cycle completes once it is gone.
//! - (d) After a verifier endpoint's refusals of a retired key were
//!   announced (RetiredKeyPresented), two operator restarts post no event
//!   and write nothing (the audit log counts every write, I8).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use keyrotor::conditions::{events, reasons, types};
use keyrotor::rotation::Stage;
use keyrotor::wire::Traffic;
use keyrotor_testsupport::eventually;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::alerts::{ROTATION, consumer, reporter};
use super::cluster;
use super::observer::Observer;
use super::operator::{Operator, logs_of};
use super::scenario::*;

const WAIT: Duration = Duration::from_secs(60);

/// `MigrationStalled` when True: (reason, message).
async fn stalled(client: &Client, ns: &str) -> Option<(String, String)> {
    let status = get(client, ns, ROTATION).await.status?;
    let c = status.condition(types::MIGRATION_STALLED)?;
    (c.status == "True").then(|| (c.reason.clone(), c.message.clone()))
}

async fn wait_stalled(client: &Client, ns: &str, reason: &str) -> String {
    eventually(&format!("MigrationStalled {reason}"), WAIT, || async {
        stalled(client, ns)
            .await
            .filter(|(r, _)| r == reason)
            .map(|(_, m)| m)
    })
    .await
}

async fn accepted(client: &Client, ns: &str) -> BTreeSet<u64> {
    let status = get(client, ns, ROTATION).await.status.unwrap_or_default();
    status.accepted_versions
}

#[tokio::test]
async fn a_rotation_with_no_consumers_holds_the_old_key_then_completes_once_a_consumer_reports() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-noconsumers").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    let mut operator = Operator::watching(cluster, &ns.name, "noconsumers");
    consumer(&client, &ns.name, "server", "api-verifier").await;
    let on = Arc::new(AtomicBool::new(true));
    let mut reporters = vec![reporter(
        client.clone(),
        ns.name.clone(),
        "server",
        "verifier",
        "api-verifier",
        on.clone(),
    )];
    // The presenters run elsewhere (another namespace, outside the cluster):
    // no pod here references api-key.
    apply(
        &client,
        &ns.name,
        &rotation(&ns.name, ROTATION, report(), report()),
    )
    .await;
    wait_stable(&client, &ns.name, ROTATION, 1, WAIT).await; // the first key needs none
    let asked = Instant::now();
    request_rotation(&client, &ns.name, ROTATION, "one").await;
    let message = wait_stalled(&client, &ns.name, reasons::NO_CONSUMERS).await;
    let named_after = asked.elapsed();
    for part in [
        "no presenters found".to_string(),
        format!("namespace {}", ns.name),
        format!("Secret {}/api-key", ns.name),
        "minConsumers: 0".to_string(),
    ] {
        assert!(message.contains(&part), "{part:?} missing in {message}");
    }
    // Past the minimum grace (2 s) and then some: version 1 stays accepted.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = get(&client, &ns.name, ROTATION).await.status.unwrap();
    assert_eq!(status.stage, Some(Stage::Promoting));
    assert_eq!(status.accepted_versions, BTreeSet::from([1, 2]));
    let sent = event_notes(&client, &ns.name, ROTATION, events::NO_CONSUMERS).await;
    assert_eq!(sent, std::slice::from_ref(&message), "one event");

    // A presenter appears here and reports: the cycle completes.
    consumer(&client, &ns.name, "client", "api-key").await;
    reporters.push(reporter(
        client.clone(),
        ns.name.clone(),
        "client",
        "presenter",
        "api-key",
        on,
    ));
    let appeared = Instant::now();
    wait_stable(&client, &ns.name, ROTATION, 2, WAIT).await;
    eprintln!(
        "no consumers: NoConsumers {named_after:.1?} after the request, old key held {:.1?}, completed {:.1?} after a presenter appeared; said: {message}",
        asked.elapsed(),
        appeared.elapsed()
    );
    assert!(stalled(&client, &ns.name).await.is_none());
    for r in reporters {
        r.abort();
    }
    check_history(&observer, ROTATION);
    assert_no_key_material(cluster, &ns.name, &observer, &logs_of(&[&operator]));
    operator.terminate();
    observer.stop();
}

/// A kwok pod whose container reads `secret` through an environment variable.
async fn env_consumer(client: &Client, ns: &str, name: &str, secret: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"type": "kwok"},
            "containers": [{
                "name": "app", "image": "keyrotor.dev/e2e-app:none",
                "env": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": secret, "key": "key"}}}],
            }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

#[tokio::test]
async fn an_env_var_pod_in_a_report_group_is_named_within_one_reconcile() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-envpod").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    let mut operator = Operator::watching(cluster, &ns.name, "envpod");
    consumer(&client, &ns.name, "server", "api-verifier").await;
    consumer(&client, &ns.name, "client", "api-key").await;
    let on = Arc::new(AtomicBool::new(true));
    let roles = [
        ("server", "verifier", "api-verifier"),
        ("client", "presenter", "api-key"),
        // Its reporter reports the revision; its process keeps the old key.
        ("env-client", "presenter", "api-key"),
    ];
    // The reporters run from the start: the first key waits for the
    // verifier's report too (env-client's begins once its pod exists).
    let reporters: Vec<_> = roles
        .iter()
        .map(|&(pod, role, secret)| {
            let (c, n) = (client.clone(), ns.name.clone());
            reporter(c, n, pod, role, secret, on.clone())
        })
        .collect();
    apply(
        &client,
        &ns.name,
        &rotation(&ns.name, ROTATION, report(), report()),
    )
    .await;
    wait_stable(&client, &ns.name, ROTATION, 1, WAIT).await;
    env_consumer(&client, &ns.name, "env-client", "api-key").await;
    request_rotation(&client, &ns.name, ROTATION, "one").await;
    eventually("Promoting", WAIT, || async {
        let s = get(&client, &ns.name, ROTATION).await.status?;
        (s.stage == Some(Stage::Promoting)).then_some(())
    })
    .await;
    let promoting = Instant::now();
    let message = wait_stalled(&client, &ns.name, reasons::CONSUMERS_CANNOT_CONFIRM).await;
    let named_after = promoting.elapsed();
    // The first reconcile that waits for presenters says it: well under the
    // minimum grace (2 s), nowhere near the progress deadline (10 min).
    assert!(
        named_after < Duration::from_secs(5),
        "named after {named_after:?}"
    );
    assert!(
        message.starts_with(&format!(
            "pod(s) env-client read Secret {}/api-key through an environment variable",
            ns.name
        )) && message.contains("confirmation: Rollout"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(accepted(&client, &ns.name).await, BTreeSet::from([1, 2]));
    let sent = event_notes(
        &client,
        &ns.name,
        ROTATION,
        events::CONSUMERS_CANNOT_CONFIRM,
    )
    .await;
    assert_eq!(sent, std::slice::from_ref(&message), "one event");
    // Its workload moved to Rollout (or to a volume): the pod goes.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    pods.delete("env-client", &now).await.unwrap();
    wait_stable(&client, &ns.name, ROTATION, 2, WAIT).await;
    eprintln!("env pod: named {named_after:.1?} after Promoting; said: {message}");
    for r in reporters {
        r.abort();
    }
    check_history(&observer, ROTATION);
    assert_no_key_material(cluster, &ns.name, &observer, &logs_of(&[&operator]));
    operator.terminate();
    observer.stop();
}

/// The rotation applied and rotated once: version 1 is retired.
async fn rotated_once(client: &Client, ns: &str) {
    apply(client, ns, &rotation(ns, ROTATION, report(), report())).await;
    wait_stable(client, ns, ROTATION, 1, WAIT).await;
    request_rotation(client, ns, ROTATION, "one").await;
    wait_stable(client, ns, ROTATION, 2, WAIT).await;
}

#[tokio::test]
async fn two_operator_restarts_after_a_retired_key_was_presented_post_no_event() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-restarts").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    let start = || Operator::watching(cluster, &ns.name, "restarts");
    let mut operator = start();
    consumer(&client, &ns.name, "server", "api-verifier").await;
    consumer(&client, &ns.name, "client", "api-key").await;
    let on = Arc::new(AtomicBool::new(true));
    let reporters = [
        ("server", "verifier", "api-verifier"),
        ("client", "presenter", "api-key"),
    ]
    .map(|(pod, role, secret)| {
        let (c, n) = (client.clone(), ns.name.clone());
        reporter(c, n, pod, role, secret, on.clone())
    });
    rotated_once(&client, &ns.name).await;

    // The server's `keyrotor verifier` refused 12 requests presenting the
    // retired version 1: its `traffic` annotation, in the sidecar's codec.
    let traffic = Traffic {
        accepted: [(2, 340)].into(),
        retired: [(1, 12)].into(),
        client: Some("127.0.0.1".parse().unwrap()),
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let (key, value) = traffic.annotation(ROTATION);
    let patch = json!({"metadata": {"annotations": {key: value}}});
    pods.patch("server", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let note = eventually("a RetiredKeyPresented event", WAIT, || async {
        let all = event_notes(&client, &ns.name, ROTATION, events::RETIRED_KEY_PRESENTED).await;
        all.into_iter().next()
    })
    .await;
    assert!(
        note.contains("server refused 12 more") && note.contains("retired version(s) 1"),
        "{note}"
    );
    eventually("the announcement kept in status", WAIT, || async {
        let s = get(&client, &ns.name, ROTATION).await.status?;
        let kept = s
            .retired_key_refusals
            .iter()
            .any(|r| r.pod == "server" && r.refused == 12);
        kept.then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // the last status write lands
    let mark = audit_mark(cluster);
    for _ in 0..2 {
        operator.terminate();
        operator = start();
        // Each re-reads everything and finds nothing to say or write.
        tokio::time::sleep(Duration::from_secs(8)).await;
    }
    assert_eq!(
        event_notes(&client, &ns.name, ROTATION, events::RETIRED_KEY_PRESENTED).await,
        [note]
    );
    let writes = operator_writes(cluster, &ns.name, mark);
    assert!(writes.is_empty(), "writes after the restarts: {writes:#?}");
    for r in reporters {
        r.abort();
    }
    check_history(&observer, ROTATION);
    assert_no_key_material(cluster, &ns.name, &observer, &logs_of(&[&operator]));
    operator.terminate();
    observer.stop();
}
