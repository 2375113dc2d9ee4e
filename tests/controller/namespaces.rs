//! One key, many namespaces, through the real controller watching three
//! namespaces (one scope each, so a pod of `billing` must wake a rotation
//! of `default` across scopes): copies appear only where a namespace
//! agreed, say what the rotation's own Secrets say, move verifier side
//! first, and the old key stays until the presenters in every namespace
//! moved; a Secret of the same name keyrotor does not own is never
//! touched; a copy nobody needs any more goes; deletion takes the copies.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use keyrotor::conditions::{reasons, types};
use keyrotor::wire as k;
use keyrotor_testsupport::harness::{Harness, NS, annotation};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::scenario::{P, V};

const CHECKOUT: &str = "checkout";
const BILLING: &str = "billing";

fn spec(presenter_namespaces: &[&str], token: Option<&str>) -> String {
    let list = presenter_namespaces.join(", ");
    let request = token
        .map(|t| format!("\nrotationRequest: {t}"))
        .unwrap_or_default();
    format!(
        "secrets: {{verifier: {V}, presenter: {P}}}\ngracePeriod: {{minimum: 1s, maximum: 60s}}\nconsumers:\n  presenters:\n    namespaces: [{list}]{request}"
    )
}

async fn consent(h: &Harness, ns: &str, value: Option<&str>) {
    let api: Api<Namespace> = Api::all(h.client.clone());
    let patch = json!({"metadata": {"annotations": {k::ACCEPT_FROM: value}}});
    api.patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn running_pod(h: &Harness, ns: &str, name: &str, secret: &str) {
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "app", "image": "app"}],
                 "volumes": [{"name": "k", "secret": {"secretName": secret}}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": "Running"}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn secrets(h: &Harness, ns: &str) -> Api<Secret> {
    Api::namespaced(h.client.clone(), ns)
}

async fn copy(h: &Harness, ns: &str) -> Option<Secret> {
    secrets(h, ns).get_opt(P).await.unwrap()
}

async fn current_in(h: &Harness, ns: &str) -> Option<u64> {
    annotation(&copy(h, ns).await?, k::CURRENT)?.parse().ok()
}

async fn ready(h: &Harness) -> (String, String, String) {
    let status = h.rotation("api").await.status.unwrap_or_default();
    status
        .condition(types::READY)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// Verifiers in `default`, a presenter in each of `checkout` and `billing`
/// (both agreeing when `agree`), no presenter at home.
async fn cluster(agree: bool) -> Harness {
    let h = Harness::watching(&[NS, CHECKOUT, BILLING]).await;
    for i in 0..2 {
        h.add_pod(&format!("server-{i}"), &[V], &[("app", "server")])
            .await;
    }
    if agree {
        consent(&h, CHECKOUT, Some(NS)).await;
        consent(&h, BILLING, Some(&format!("other, {NS}/api"))).await;
    }
    running_pod(&h, CHECKOUT, "client", P).await;
    running_pod(&h, BILLING, "client", P).await;
    h
}

#[tokio::test]
async fn presenters_in_other_namespaces_get_copies_and_the_old_key_waits_for_every_one_of_them() {
    let h = cluster(true).await;
    h.apply("api", &spec(&[CHECKOUT, BILLING], None)).await;
    h.wait_published(V, P, &[1], 1, 15).await;
    h.wait("copies at version 1", 15, || async {
        current_in(&h, CHECKOUT).await == Some(1) && current_in(&h, BILLING).await == Some(1)
    })
    .await;
    let home = h.secret(P).await.unwrap();
    let there = copy(&h, BILLING).await.unwrap();
    assert_eq!(
        there.data, home.data,
        "a copy says what the rotation's own Secret says"
    );
    assert_eq!(
        annotation(&there, k::REVISION),
        annotation(&home, k::REVISION)
    );
    assert_eq!(
        there
            .labels()
            .get(k::SOURCE_NAMESPACE_LABEL)
            .map(String::as_str),
        Some(NS)
    );
    assert!(there.owner_references().is_empty());
    assert!(
        copy(&h, NS).await.is_some() && secrets(&h, CHECKOUT).get_opt(V).await.unwrap().is_none(),
        "only the presenter Secret goes to presenter namespaces"
    );

    // billing's presenter never loads version 2: version 1 stays accepted.
    h.set_stuck("client", true);
    h.apply("api", &spec(&[CHECKOUT, BILLING], Some("r1")))
        .await;
    h.wait("version 2 current in the copies", 20, || async {
        h.current(P).await == Some(2) && current_in(&h, CHECKOUT).await == Some(2)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        h.accepted(V).await,
        BTreeSet::from([1, 2]),
        "the old key stays while a presenter in another namespace has not moved"
    );
    let status = h.rotation("api").await.status.unwrap();
    let waiting = &status.confirmation.unwrap().presenters.waiting_for;
    assert!(
        waiting.iter().any(|p| p == "billing/client"),
        "status names the pod with its namespace: {waiting:?}"
    );
    let counted: Vec<(String, u32, u32)> = status
        .namespaces
        .iter()
        .map(|n| (n.namespace.clone(), n.verifiers, n.presenters))
        .collect();
    assert_eq!(
        counted,
        [
            (BILLING.to_string(), 0, 1),
            (CHECKOUT.to_string(), 0, 1),
            (NS.to_string(), 2, 0)
        ]
    );
    h.set_stuck("client", false);
    h.wait_published(V, P, &[2], 2, 20).await;
    crate::scenario::check_invariants(&h, &[]);
}

#[tokio::test]
async fn a_namespace_that_did_not_agree_gets_nothing_until_it_does() {
    let h = cluster(false).await;
    consent(&h, CHECKOUT, Some(NS)).await;
    h.apply("api", &spec(&[CHECKOUT, BILLING], None)).await;
    h.wait("TargetNotPermitted", 15, || async {
        ready(&h).await.1 == reasons::TARGET_NOT_PERMITTED
    })
    .await;
    let (status, _, message) = ready(&h).await;
    assert_eq!(status, "False");
    assert!(
        message.contains("namespace billing has not agreed")
            && message
                .contains("kubectl annotate namespace billing keyrotor.dev/accept-from=default"),
        "{message}"
    );
    assert!(!message.contains("checkout"), "checkout agreed: {message}");
    for ns in [NS, CHECKOUT, BILLING] {
        assert!(
            secrets(&h, ns).get_opt(P).await.unwrap().is_none(),
            "nothing is written anywhere while a target refuses ({ns})"
        );
    }
    consent(&h, BILLING, Some(NS)).await;
    h.wait("the copy in billing after consent", 15, || async {
        current_in(&h, BILLING).await == Some(1)
    })
    .await;
    h.wait("Ready", 15, || async { ready(&h).await.0 == "True" })
        .await;
}

#[tokio::test]
async fn a_secret_of_the_same_name_keyrotor_does_not_own_is_never_overwritten() {
    let h = cluster(true).await;
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": {"name": P, "namespace": CHECKOUT},
        "stringData": {"key": "theirs"}
    }))
    .unwrap();
    secrets(&h, CHECKOUT)
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let before = copy(&h, CHECKOUT).await.unwrap();
    h.apply("api", &spec(&[CHECKOUT, BILLING], None)).await;
    h.wait("SecretConflict", 15, || async {
        ready(&h).await.1 == reasons::SECRET_CONFLICT
    })
    .await;
    assert!(ready(&h).await.2.contains("checkout/api-key"));
    let after = copy(&h, CHECKOUT).await.unwrap();
    assert_eq!(after.data, before.data);
    assert_eq!(after.resource_version(), before.resource_version());
    assert!(
        copy(&h, BILLING).await.is_none(),
        "nothing moves while blocked"
    );
}

#[tokio::test]
async fn a_dropped_namespace_keeps_its_copy_while_a_pod_reads_it_and_deletion_takes_the_rest() {
    let h = cluster(true).await;
    h.apply("api", &spec(&[CHECKOUT, BILLING], None)).await;
    h.wait("copies", 15, || async {
        current_in(&h, CHECKOUT).await == Some(1) && current_in(&h, BILLING).await == Some(1)
    })
    .await;
    h.apply("api", &spec(&[CHECKOUT], Some("r1"))).await;
    h.wait("version 2 everywhere", 20, || async {
        current_in(&h, BILLING).await == Some(2) && h.accepted(V).await == BTreeSet::from([2])
    })
    .await;
    assert!(
        copy(&h, BILLING).await.is_some(),
        "billing's pod still reads it"
    );
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), BILLING);
    pods.delete("client", &DeleteParams::default())
        .await
        .unwrap();
    h.wait("billing's copy gone with its last reader", 15, || async {
        copy(&h, BILLING).await.is_none()
    })
    .await;
    assert!(copy(&h, CHECKOUT).await.is_some());
    h.rotations()
        .delete("api", &DeleteParams::default())
        .await
        .unwrap();
    h.wait("copies deleted with the rotation", 15, || async {
        copy(&h, CHECKOUT).await.is_none()
    })
    .await;
}

#[tokio::test]
async fn verifiers_everywhere_accept_a_version_before_any_presenter_anywhere_sends_it() {
    const GATEWAY: &str = "gateway";
    let h = Harness::watching(&[NS, CHECKOUT, BILLING, GATEWAY]).await;
    for ns in [CHECKOUT, BILLING, GATEWAY] {
        consent(&h, ns, Some(NS)).await;
    }
    h.add_pod("server", &[V], &[]).await;
    running_pod(&h, GATEWAY, "edge", V).await;
    running_pod(&h, CHECKOUT, "client", P).await;
    running_pod(&h, BILLING, "client", P).await;
    let spec = |token: &str| {
        format!(
            "{}\n  verifiers:\n    namespaces: [{GATEWAY}]\nrotationRequest: {token}",
            spec(&[CHECKOUT, BILLING], None)
        )
    };
    h.apply("api", &spec("r0")).await;
    h.wait_published(V, P, &[1], 1, 15).await;
    for round in 1..=3u64 {
        h.apply("api", &spec(&format!("r{round}"))).await;
        h.wait(&format!("version {} everywhere", round + 1), 30, || async {
            let gw = secrets(&h, GATEWAY).get_opt(V).await.unwrap();
            let gw_accepts = gw
                .as_ref()
                .and_then(|s| annotation(s, k::ACCEPTED).map(str::to_string));
            current_in(&h, BILLING).await == Some(round + 1)
                && gw_accepts == Some((round + 1).to_string())
        })
        .await;
    }
    // A copy edited or deleted by hand is rewritten from the rotation's own.
    let home = h.secret(V).await.unwrap();
    let edit = json!({"data": {"accepted": "OTk="}});
    secrets(&h, GATEWAY)
        .patch(V, &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    secrets(&h, CHECKOUT)
        .delete(P, &DeleteParams::default())
        .await
        .unwrap();
    h.wait("the edited and deleted copies restored", 15, || async {
        let gw = secrets(&h, GATEWAY).get_opt(V).await.unwrap();
        gw.is_some_and(|s| s.data == home.data) && current_in(&h, CHECKOUT).await == Some(4)
    })
    .await;
    let settled = h.keyrotor_writes();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        h.keyrotor_writes(),
        settled,
        "nothing is written while nothing changes (I8)"
    );
    // I1 across namespaces, over every recorded change (the harness's
    // observer watches every namespace the controller does).
    let changes = crate::scenario::check_invariants(&h, &[]);
    assert!(changes > 20, "only {changes} changes seen");
}

#[tokio::test]
async fn an_adopted_key_reaches_every_namespace_at_once_and_a_revoked_one_leaves_every_copy() {
    let h = cluster(true).await;
    let legacy = "legacy-api-key-0123456789abcdef";
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "legacy", "namespace": NS},
        "stringData": {"token": legacy},
    }))
    .unwrap();
    h.secrets()
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
    running_pod(&h, CHECKOUT, "edge", V).await;
    let with = |extra: &str| {
        format!(
            "{}\n  verifiers:\n    namespaces: [{CHECKOUT}]\nadopt: {{secretName: legacy, key: token}}\n{extra}",
            spec(&[CHECKOUT, BILLING], None)
        )
    };
    h.apply("api", &with("")).await;
    h.wait("the adopted key in every copy", 15, || async {
        let key = |s: Option<Secret>| {
            s.and_then(|s| s.data)
                .and_then(|d| d.get("key").map(|b| b.0.clone()))
        };
        key(copy(&h, BILLING).await).as_deref() == Some(legacy.as_bytes())
            && key(copy(&h, CHECKOUT).await).as_deref() == Some(legacy.as_bytes())
    })
    .await;
    // Revoke the adopted key: it leaves the verifier Secret in every
    // namespace, and presenters everywhere get its replacement.
    h.apply("api", &with("revokedVersions: [1]")).await;
    h.wait("version 1 revoked everywhere", 20, || async {
        let accepts =
            |s: Option<Secret>| s.and_then(|s| annotation(&s, k::ACCEPTED).map(str::to_string));
        let gone = accepts(secrets(&h, CHECKOUT).get_opt(V).await.unwrap()) == Some("2".into())
            && h.accepted(V).await == BTreeSet::from([2]);
        gone && current_in(&h, BILLING).await == Some(2)
            && current_in(&h, CHECKOUT).await == Some(2)
    })
    .await;
}

#[tokio::test]
async fn a_controller_watching_the_whole_cluster_reaches_other_namespaces_the_same_way() {
    let h = Harness::cluster_wide(&[NS, CHECKOUT, BILLING]).await;
    h.add_pod("server", &[V], &[]).await;
    for ns in [CHECKOUT, BILLING] {
        consent(&h, ns, Some(NS)).await;
        running_pod(&h, ns, "client", P).await;
    }
    h.apply("api", &spec(&[CHECKOUT, BILLING], None)).await;
    h.wait("copies at version 1", 15, || async {
        current_in(&h, CHECKOUT).await == Some(1) && current_in(&h, BILLING).await == Some(1)
    })
    .await;
    h.set_stuck("client", true);
    h.apply("api", &spec(&[CHECKOUT, BILLING], Some("r1")))
        .await;
    h.wait("version 2 current everywhere", 20, || async {
        current_in(&h, BILLING).await == Some(2)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        h.accepted(V).await,
        BTreeSet::from([1, 2]),
        "presenters elsewhere have not moved"
    );
    h.set_stuck("client", false);
    h.wait_published(V, P, &[2], 2, 20).await;
    crate::scenario::check_invariants(&h, &[]);
}
