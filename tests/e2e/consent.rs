//! Scenario: the trust boundary of copies in other namespaces, on the real
//! API server (kwok consumer pods, their reporters played by the test).
//!
//! - A rotation whose presenters are listed in a namespace that has not
//!   agreed (no `keyrotor.dev/accept-from`) is refused: `Ready=False`,
//!   reason TargetNotPermitted, a message and a Warning event naming the
//!   namespace; the operator writes nothing there (its audit trail shows no
//!   write) and nothing anywhere else either. Once a cluster admin
//!   annotates the namespace, the copy appears there and the rotation
//!   becomes Ready and rotates, waiting for the consumer there.
//! - A Secret of the same name that keyrotor does not own, in a namespace
//!   that did agree, is never overwritten: reason SecretConflict naming
//!   `<namespace>/<name>`, until its owner deletes it.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use keyrotor::conditions::{events, reasons, types};
use keyrotor::wire as k;
use keyrotor_testsupport::eventually;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::alerts::{ROTATION, consumer, reporter};
use super::cluster::{self, Cluster, OPERATOR_NS, OPERATOR_SA};
use super::namespaces::{accept_from, assert_quiet, wait_condition, wait_copy, wait_found};
use super::observer::Observer;
use super::operator::{Operator, logs_of};
use super::scenario::*;

/// Rotation [`ROTATION`] in `home`, its presenters also in `target`.
fn spread(home: &str, target: &str) -> Value {
    let mut r = rotation(home, ROTATION, report(), report());
    r["spec"]["consumers"]["presenters"]["namespaces"] = json!([target]);
    r
}

/// The Secrets of `ns` that name rotation [`ROTATION`] (label) or carry
/// its presenter Secret's name.
async fn rotation_secrets(client: &Client, ns: &str) -> Vec<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let all = api.list(&ListParams::default()).await.unwrap().items;
    all.iter()
        .filter(|s| {
            s.labels().get(k::ROTATION_LABEL).map(String::as_str) == Some(ROTATION)
                || s.name_any() == "api-key"
        })
        .map(|s| s.name_any())
        .collect()
}

/// Kwok consumer pods `server` (verifier, at home) and `client` (presenter,
/// in `target`), each with the reporter the test plays for it.
async fn consumers(client: &Client, home: &str, target: &str) -> Vec<tokio::task::JoinHandle<()>> {
    consumer(client, home, "server", "api-verifier").await;
    consumer(client, target, "client", "api-key").await;
    let on = Arc::new(AtomicBool::new(true));
    vec![
        reporter(
            client.clone(),
            home.into(),
            "server",
            k::ROLE_VERIFIER,
            "api-verifier",
            on.clone(),
        ),
        reporter(
            client.clone(),
            target.into(),
            "client",
            k::ROLE_PRESENTER,
            "api-key",
            on,
        ),
    ]
}

/// Waits (60 s at most) for a Warning event of `reason` about the rotation
/// whose note names `text`; returns the note.
async fn event_naming(client: &Client, ns: &str, reason: &str, text: &str) -> String {
    let what = format!("a {reason} event naming {text}");
    eventually(&what, Duration::from_secs(60), async || {
        let notes = event_notes(client, ns, ROTATION, reason).await;
        notes.into_iter().find(|n| n.contains(text))
    })
    .await
}

/// The operator's writes in `ns` since `mark`, after a few seconds in
/// which it had every chance to write.
async fn writes_after_a_while(cluster: &Cluster, ns: &str, mark: u64) -> Vec<String> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    operator_writes(cluster, ns, mark)
}

#[tokio::test]
async fn a_namespace_that_has_not_agreed_gets_no_copy_until_a_cluster_admin_annotates_it() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let home = cluster.namespace("orders-e2e-consent").await;
    let billing = cluster.namespace("billing-e2e-consent").await;
    let client = cluster.client().await;
    let (home, billing) = (home.name.as_str(), billing.name.as_str());
    let observer = Observer::start_in(client.clone(), &[home, billing]).await;
    let watch = format!("{home},{billing}");
    let operator = Operator::watching(cluster, &watch, "keyrotor-consent");
    let reporters = consumers(&client, home, billing).await;

    let mark = audit_mark(cluster);
    apply(&client, home, &spread(home, billing)).await;
    let refused = wait_condition(
        &client,
        home,
        ROTATION,
        "Ready=False TargetNotPermitted",
        |c| {
            c.type_ == types::READY
                && c.status == "False"
                && c.reason == reasons::TARGET_NOT_PERMITTED
        },
    )
    .await;
    assert!(
        refused.message.contains(billing) && refused.message.contains(k::ACCEPT_FROM),
        "the refusal does not name the namespace and the fix: {}",
        refused.message
    );
    let note = event_naming(&client, home, events::TARGET_NOT_PERMITTED, billing).await;
    assert!(note.contains(k::ACCEPT_FROM), "{note}");
    let _ = writeln!(std::io::stderr(), "refused: {}", refused.message);
    // Nothing is written there, and the rotation holds everywhere.
    let written = writes_after_a_while(cluster, billing, mark).await;
    assert!(
        written.is_empty(),
        "the operator wrote in {billing}: {written:?}"
    );
    let found = rotation_secrets(&client, billing).await;
    assert!(found.is_empty(), "Secrets in {billing}: {found:?}");
    let found = rotation_secrets(&client, home).await;
    assert!(
        found.is_empty(),
        "a refused rotation wrote at home: {found:?}"
    );

    // Consent: the copy appears and the rotation runs.
    accept_from(cluster, billing, home);
    wait_stable(&client, home, ROTATION, 1, Duration::from_secs(60)).await;
    wait_copy(&client, home, billing, "api-key", ROTATION).await;
    wait_condition(&client, home, ROTATION, "Ready=True", |c| {
        c.type_ == types::READY && c.status == "True"
    })
    .await;
    request_rotation(&client, home, ROTATION, "after-consent").await;
    wait_stable(&client, home, ROTATION, 2, Duration::from_secs(120)).await;
    wait_copy(&client, home, billing, "api-key", ROTATION).await;
    wait_found(cluster, home, ROTATION, &[(billing, 0, 1), (home, 1, 0)]).await;
    let user = format!("system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}");
    assert_quiet(cluster, &user, &[home, billing], &[]).await;

    for r in reporters {
        r.abort();
    }
    check_history(&observer, ROTATION);
    for ns in [home, billing] {
        assert_no_key_material(cluster, ns, &observer, &logs_of(&[&operator]));
    }
    observer.stop();
}

#[tokio::test]
async fn a_secret_of_the_same_name_in_a_target_namespace_is_never_overwritten() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let home = cluster.namespace("orders-e2e-conflict").await;
    let billing = cluster.namespace("billing-e2e-conflict").await;
    let client = cluster.client().await;
    let (home, billing) = (home.name.as_str(), billing.name.as_str());
    accept_from(cluster, billing, home);
    // Someone else's Secret, under the presenter Secret's name.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), billing);
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": {"name": "api-key", "labels": {"owner": "billing-team"}},
        "stringData": {"token": "billing's own"},
    }))
    .unwrap();
    let theirs = secrets
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let watch = format!("{home},{billing}");
    let _operator = Operator::watching(cluster, &watch, "keyrotor-conflict");
    let reporters = consumers(&client, home, billing).await;

    let mark = audit_mark(cluster);
    apply(&client, home, &spread(home, billing)).await;
    let conflict = wait_condition(&client, home, ROTATION, "SecretConflict", |c| {
        c.type_ == types::READY && c.status == "False" && c.reason == reasons::SECRET_CONFLICT
    })
    .await;
    let place = format!("{billing}/api-key");
    assert!(conflict.message.contains(&place), "{}", conflict.message);
    let _ = writeln!(std::io::stderr(), "conflict: {}", conflict.message);
    let written = writes_after_a_while(cluster, billing, mark).await;
    let on_secrets: Vec<&String> = written.iter().filter(|w| w.contains("secrets/")).collect();
    assert!(
        on_secrets.is_empty(),
        "the operator wrote Secrets in {billing}: {on_secrets:?}"
    );
    let now = secrets.get("api-key").await.unwrap();
    assert_eq!(
        now.resource_version(),
        theirs.resource_version(),
        "their Secret was changed"
    );
    assert!(now.data == theirs.data && now.labels() == theirs.labels());

    // Their owner deletes it: the copy takes its place.
    secrets
        .delete("api-key", &DeleteParams::default())
        .await
        .unwrap();
    wait_stable(&client, home, ROTATION, 1, Duration::from_secs(60)).await;
    wait_copy(&client, home, billing, "api-key", ROTATION).await;
    for r in reporters {
        r.abort();
    }
}
