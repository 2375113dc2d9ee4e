//! The controller in the real world, through the real kube-runtime
//! `Controller` on the in-memory API: a crash after every one of its writes,
//! API faults (409 storms, 429/5xx, timeouts with and without effect, cut
//! watches, 410 relists, stale reads), Secrets edited or deleted by hand, and
//! adoption of an existing key. Every scenario checks the invariants over the
//! whole recorded history.

use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use keyrotor::keys::{SecretKey, digest_of};
use keyrotor::rotation::Stage;
use keyrotor::wire as k;
use keyrotor_testkit::Fault;
use keyrotor_testsupport::harness::{Harness, NS, annotation};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::scenario::{P, Scenario, V, check_invariants};

/// Faults make cycles long: a short grace keeps each scenario quick.
const API: Scenario = Scenario { min_grace: "200ms" };

fn text(s: &Secret, file: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(file)
        .map(|b| String::from_utf8_lossy(&b.0).to_string())
}

/// The cycle to `version` is complete: published alone, the previous version
/// Secret deleted, status Stable.
async fn settled(h: &Harness, version: u64) -> bool {
    // Reads may hit the halted API while a crash is being staged: an error
    // means "not settled yet", never a panic.
    let annotations = |s: Option<Option<k8s_openapi::api::core::v1::Secret>>| {
        s.flatten()
            .and_then(|s| s.metadata.annotations)
            .unwrap_or_default()
    };
    let verifier = annotations(h.secrets().get_opt(V).await.ok());
    let presenter = annotations(h.secrets().get_opt(P).await.ok());
    let old_gone = matches!(
        h.secrets().get_opt(&format!("api-v{}", version - 1)).await,
        Ok(None)
    );
    let status = h
        .rotations()
        .get_opt("api")
        .await
        .ok()
        .flatten()
        .and_then(|r| r.status);
    verifier.get(k::ACCEPTED) == Some(&version.to_string())
        && presenter.get(k::CURRENT) == Some(&version.to_string())
        && old_gone
        && status
            .is_some_and(|s| s.stage == Some(Stage::Stable) && s.current_version == Some(version))
}

/// No key lost: the current version's Secret holds the key presenters get,
/// with the fingerprint status shows, and verifiers hold its digest.
async fn assert_current_key_intact(h: &Harness, version: u64) {
    let vs = h
        .secret(&format!("api-v{version}"))
        .await
        .expect("version Secret");
    let key = text(&vs, "key").expect("key material");
    let presenter = h.secret(P).await.expect("presenter Secret");
    assert_eq!(text(&presenter, "key").as_deref(), Some(key.as_str()));
    let verifier = h.secret(V).await.expect("verifier Secret");
    assert_eq!(
        text(&verifier, &format!("v{version}.sha256")),
        Some(digest_of(key.as_bytes()))
    );
    let fp = SecretKey::adopt(key.into_bytes()).unwrap().fingerprint();
    assert_eq!(annotation(&vs, k::FINGERPRINT), Some(fp.as_str()));
    let status = h.rotation("api").await.status.unwrap_or_default();
    assert!(
        status
            .versions
            .iter()
            .any(|r| r.version == version && r.fingerprint == fp)
    );
}

/// Version Secrets keyrotor created (projections are applied, not created):
/// one per version number, so a lost answer never made a second key.
fn versions_created(h: &Harness) -> usize {
    h.api
        .faults()
        .write_log()
        .into_iter()
        .filter(|w| {
            w.resource == "secrets"
                && w.verb == "create"
                && w.changed
                && w.field_manager == "keyrotor"
        })
        .count()
}

/// Whether keyrotor has deleted Secret `name` (read from the write log, which
/// no stale view delays).
fn deleted(h: &Harness, name: &str) -> bool {
    h.api
        .faults()
        .write_log()
        .iter()
        .any(|w| w.verb == "delete" && w.name == name && w.changed)
}

async fn event_reasons(h: &Harness) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), NS);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// Waits (at most 10 s) until no write has come for 300 ms: a crash point
/// armed while the last reconcile still writes its status or events would
/// count those writes and halt the API under the test's own next request.
async fn quiet(h: &Harness) {
    let mut last = h.api.faults().write_count();
    for _ in 0..33 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = h.api.faults().write_count();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Whether the armed crash point was reached before `done` resolved. The
/// halt lands right after the write is stored, so a poll in between can see
/// the write's effect first: a short grace tells "write k was the last" from
/// "write k never came".
async fn halted_before(h: &Harness, done: impl std::future::Future<Output = ()>) -> bool {
    tokio::select! {
        biased;
        _ = h.api.faults().halted() => return true,
        _ = done => {}
    }
    tokio::time::timeout(Duration::from_millis(200), h.api.faults().halted())
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_write_of_a_cycle_loses_nothing_and_the_cycle_completes() {
    let mut h = API.started("").await;
    let started_at = Instant::now();
    let mut version = 1;
    let mut crash_points = 0;
    for k in 1..=60u64 {
        version += 1;
        quiet(&h).await;
        h.api.faults().halt_after_writes_by("keyrotor", k);
        API.request_rotation(&h, "", &format!("r{k}")).await;
        let what = format!("cycle to version {version}");
        let halted = halted_before(&h, h.wait(&what, 20, || settled(&h, version))).await;
        if !halted {
            // Write k never came: the cycle has k-1 writes, every one a crash point.
            h.api.faults().resume();
            break;
        }
        crash_points = k;
        h.stop_controller();
        tokio::time::sleep(Duration::from_millis(20)).await;
        h.api.faults().resume();
        h.start_controller();
        h.wait(
            &format!("cycle to version {version} after a crash at write {k}"),
            20,
            || settled(&h, version),
        )
        .await;
        assert_current_key_intact(&h, version).await;
    }
    println!(
        "one cycle has {crash_points} crash points (keyrotor writes); all survived in {:?}",
        started_at.elapsed()
    );
    assert!(crash_points >= 4, "a cycle writes at least 4 Secrets");
    let current = h.current(P).await.unwrap();
    assert_eq!(
        versions_created(&h) as u64,
        current,
        "one version Secret per number"
    );
    check_invariants(&h, &[]);
}

/// Runs one rotation under `fault`, then checks it converged with every
/// invariant and exactly one key per version.
async fn rotation_survives(h: &Harness, during: impl Fn(&Harness)) {
    API.request_rotation(h, "", "r1").await;
    during(h);
    // The write log, not a read: a stale view never shows the last writes.
    h.wait("version 1 retired under faults", 45, || async {
        deleted(h, "api-v1")
    })
    .await;
    h.api.faults().clear();
    h.wait("cycle to version 2", 10, || settled(h, 2)).await;
    assert_current_key_intact(h, 2).await;
    assert_eq!(versions_created(h), 2);
    check_invariants(h, &[]);
}

/// 25 consecutive 409s on keyrotor's own writes (the kubelets keep
/// writing): each means "re-read and retry", so each costs a short retry,
/// not an exponentially growing backoff.
#[tokio::test]
async fn a_409_storm_delays_but_never_breaks_a_rotation() {
    let h = API.started("").await;
    let started_at = Instant::now();
    rotation_survives(&h, |h| {
        h.api
            .faults()
            .fail_next_writes_by("keyrotor", 25, Fault::Status(409))
    })
    .await;
    let conflicts = h
        .api
        .faults()
        .write_log()
        .into_iter()
        .filter(|w| w.field_manager == "keyrotor" && w.code == 409)
        .count();
    assert_eq!(conflicts, 25, "the whole storm hit keyrotor's writes");
    println!("25 conflicts absorbed in {:?}", started_at.elapsed());
}

#[tokio::test]
async fn throttling_and_server_errors_on_a_third_of_writes_are_retried() {
    let h = API.started("").await;
    rotation_survives(&h, |h| {
        h.api
            .faults()
            .fail_fraction_of_writes(0.33, Fault::Status(429), 7)
    })
    .await;
    let h = API.started("").await;
    rotation_survives(&h, |h| {
        h.api
            .faults()
            .fail_fraction_of_writes(0.33, Fault::Status(500), 11)
    })
    .await;
}

#[tokio::test]
async fn timeouts_without_effect_are_retried() {
    let h = API.started("").await;
    rotation_survives(&h, |h| {
        h.api
            .faults()
            .fail_fraction_of_writes(0.3, Fault::Timeout(Duration::from_millis(20)), 3)
    })
    .await;
}

#[tokio::test]
async fn a_lost_answer_after_a_write_never_makes_a_second_key() {
    let h = API.started("").await;
    rotation_survives(&h, |h| {
        h.api.faults().fail_fraction_of_writes(
            0.4,
            Fault::AppliedThenTimeout(Duration::from_millis(20)),
            5,
        )
    })
    .await;
    let lost = h
        .api
        .faults()
        .write_log()
        .into_iter()
        .filter(|w| w.field_manager == "keyrotor" && w.code == 504 && w.changed)
        .count();
    assert!(lost > 0, "some keyrotor writes lost their answer");
}

#[tokio::test]
async fn cut_watches_and_410_relists_do_not_stop_a_rotation() {
    let h = API.started("").await;
    let api = h.api.clone();
    let chaos = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if i % 2 == 0 {
                api.store().compact(); // the next re-watch gets 410 and relists
            }
            api.faults().cut_watches();
        }
    });
    rotation_survives(&h, |_| {}).await;
    chaos.abort();
}

/// The controller's watches and caches (rotations, owned Secrets, pods) lag
/// 3 writes behind; its GET/LIST of Secrets are consistent reads, as on a
/// real apiserver (see docs/testkit.md). The lag is counted in writes, so
/// other tenants keep writing (as on any real cluster): a watch cache lags by
/// a bounded time, it never holds an event back forever.
/// Another tenant writing every 30 ms (at most 2,000 times): what moves a
/// lagging watch cache along.
fn other_tenant_writes(h: &Harness) -> tokio::task::JoinHandle<()> {
    let configmaps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    tokio::spawn(async move {
        for i in 0u64..2_000 {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"n": i.to_string()}});
            let _ = configmaps
                .patch(
                    "other-tenant",
                    &PatchParams::apply("other-tenant"),
                    &Patch::Apply(&cm),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    })
}

#[tokio::test]
async fn stale_reads_delay_a_step_but_never_break_an_invariant() {
    let h = API.started("").await;
    let churn = other_tenant_writes(&h);
    rotation_survives(&h, |h| h.api.faults().serve_stale_reads(3)).await;
    churn.abort();
}

/// Observe accepts a list served from the (lagging) watch cache only when
/// it shows every write keyrotor made: with the cache three writes behind,
/// no Secret write of a cycle is planned on a list that missed keyrotor's
/// own last write, so none is refused with 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_list_behind_keyrotors_own_writes_is_never_planned_on() {
    let h = API.started("").await;
    let churn = other_tenant_writes(&h);
    let before = h.api.faults().write_count();
    rotation_survives(&h, |h| h.api.faults().serve_stale_reads(3)).await;
    churn.abort();
    let refused: Vec<String> = h
        .api
        .faults()
        .write_log()
        .iter()
        .filter(|w| w.seq > before && w.field_manager == "keyrotor")
        .filter(|w| w.resource == "secrets" && w.code == 409)
        .map(|w| format!("{} {}", w.verb, w.name))
        .collect();
    assert!(
        refused.is_empty(),
        "Secret writes planned on a stale list: {refused:?}"
    );
}

#[tokio::test]
async fn a_pod_the_lagging_cache_has_not_seen_still_holds_back_promotion() {
    let h = API.started("").await;
    // The watch cache lags many writes behind: a new verifier stuck on the
    // old content exists only in fresh reads.
    h.api.faults().serve_stale_reads(40);
    API.request_rotation(&h, "", "r1").await;
    h.set_stuck("late-server", true);
    h.add_pod("late-server", &[V], &[("app", "server")]).await;
    let before = h.api.faults().write_count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let promoted = h
        .api
        .faults()
        .write_log()
        .iter()
        .any(|w| w.seq > before && w.field_manager == "keyrotor" && w.name == P && w.changed);
    assert!(!promoted, "no promotion past the unseen verifier");
    h.set_stuck("late-server", false);
    h.api.faults().clear();
    h.wait("cycle to version 2", 20, || settled(&h, 2)).await;
    check_invariants(&h, &[]);
}

#[tokio::test]
async fn a_deleted_projected_secret_is_rebuilt_with_the_same_key() {
    let h = API.started("").await;
    let before = text(&h.secret(P).await.unwrap(), "key");
    h.secrets()
        .delete(P, &DeleteParams::default())
        .await
        .unwrap();
    h.wait("presenter Secret rebuilt", 10, || async {
        h.secret(P).await.is_some_and(|s| text(&s, "key") == before)
    })
    .await;
    h.secrets()
        .delete(V, &DeleteParams::default())
        .await
        .unwrap();
    h.wait("verifier Secret rebuilt", 10, || async {
        h.accepted(V).await == [1].into()
    })
    .await;
    assert!(
        event_reasons(&h)
            .await
            .iter()
            .any(|r| r == "ProjectionRepaired")
    );
    assert_current_key_intact(&h, 1).await;
    check_invariants(&h, &[]);
}

#[tokio::test]
async fn an_edited_projected_secret_is_rewritten_within_one_reconcile() {
    let h = API.started("").await;
    let good = text(&h.secret(P).await.unwrap(), "key");
    // Someone pastes another key into the presenter Secret…
    let patch = json!({"data": {"key": ByteString(b"someone-elses-key-0000".to_vec())}});
    h.secrets()
        .patch(P, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.wait("presenter key restored", 10, || async {
        h.secret(P).await.is_some_and(|s| text(&s, "key") == good)
    })
    .await;
    // …and then claims version 2 is current in the annotations.
    let patch = json!({"metadata": {"annotations": {k::CURRENT: "2"}}});
    h.secrets()
        .patch(P, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.wait("presenter annotations restored", 10, || async {
        h.current(P).await == Some(1)
    })
    .await;
    // And a verifier digest is changed.
    let patch = json!({"data": {"v1.sha256": ByteString(b"00".to_vec())}});
    h.secrets()
        .patch(V, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    h.wait("verifier digest restored", 10, || async {
        let key = text(&h.secret(P).await.unwrap(), "key").unwrap();
        text(&h.secret(V).await.unwrap(), "v1.sha256") == Some(digest_of(key.as_bytes()))
    })
    .await;
    assert_current_key_intact(&h, 1).await;
    assert!(h.secret("api-v2").await.is_none(), "no version appeared");
    // Then rotation carries on normally.
    API.request_rotation(&h, "", "r1").await;
    h.wait("cycle to version 2", 20, || settled(&h, 2)).await;
}

#[tokio::test]
async fn a_deleted_version_secret_is_recovered_from_the_presenter_secret() {
    let h = API.started("").await;
    let fp = annotation(&h.secret("api-v1").await.unwrap(), k::FINGERPRINT)
        .unwrap()
        .to_string();
    h.secrets()
        .delete("api-v1", &DeleteParams::default())
        .await
        .unwrap();
    h.wait("version 1 restored", 10, || async {
        h.secret("api-v1")
            .await
            .is_some_and(|s| annotation(&s, k::FINGERPRINT) == Some(fp.as_str()))
    })
    .await;
    assert_current_key_intact(&h, 1).await;
    assert!(event_reasons(&h).await.iter().any(|r| r == "KeyRecovered"));
    assert!(
        h.secret("api-v2").await.is_none(),
        "no rotation for a recovered key"
    );
    check_invariants(&h, &[]);
}

async fn restored(h: &Harness, fingerprint: &str) -> bool {
    h.secret("api-v1")
        .await
        .is_some_and(|s| annotation(&s, k::FINGERPRINT) == Some(fingerprint))
}

/// Restoring a deleted version Secret is a planned write like any other:
/// a crash after any write of that reconcile loses no key and restores the
/// same key once the operator is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_write_of_a_recovery_loses_nothing_and_restores_the_same_key() {
    let mut h = API.started("").await;
    let fp = annotation(&h.secret("api-v1").await.unwrap(), k::FINGERPRINT)
        .unwrap()
        .to_string();
    let mut crash_points = 0;
    for n in 1..=10u64 {
        quiet(&h).await;
        h.api.faults().halt_after_writes_by("keyrotor", n);
        h.secrets()
            .delete("api-v1", &DeleteParams::default())
            .await
            .unwrap();
        let halted =
            halted_before(&h, h.wait("version 1 restored", 20, || restored(&h, &fp))).await;
        if !halted {
            h.api.faults().resume();
            break;
        }
        crash_points = n;
        h.stop_controller();
        tokio::time::sleep(Duration::from_millis(20)).await;
        h.api.faults().resume();
        h.start_controller();
        h.wait(
            &format!("version 1 restored after a crash at write {n}"),
            20,
            || restored(&h, &fp),
        )
        .await;
        assert_current_key_intact(&h, 1).await;
    }
    assert!(crash_points >= 1, "the restore is a keyrotor write");
    assert!(
        h.secret("api-v2").await.is_none(),
        "no rotation for a recovered key"
    );
    check_invariants(&h, &[]);
}

#[tokio::test]
async fn a_staged_key_deleted_is_recovered_from_plain_verifier_files() {
    let h = API.started("PLAIN").await;
    h.set_stuck("client-0", true); // holds the cycle in Promoting
    API.request_rotation(&h, "PLAIN", "r1").await;
    h.wait_published(V, P, &[1, 2], 2, 10).await;
    let fp = annotation(&h.secret("api-v2").await.unwrap(), k::FINGERPRINT)
        .unwrap()
        .to_string();
    // Delete the previous one too: it is still accepted, its key sits in `v1.key`.
    for v in ["api-v2", "api-v1"] {
        h.secrets()
            .delete(v, &DeleteParams::default())
            .await
            .unwrap();
    }
    h.wait("versions restored", 10, || async {
        h.secret("api-v2")
            .await
            .is_some_and(|s| annotation(&s, k::FINGERPRINT) == Some(fp.as_str()))
            && h.secret("api-v1").await.is_some()
    })
    .await;
    h.set_stuck("client-0", false);
    h.wait("cycle to version 2", 20, || settled(&h, 2)).await;
    check_invariants(&h, &[]);
}

/// The lost key is reported while its replacement is on its way: Ready stays
/// False with KeyMaterialMissing until presenters get the new version. An
/// unhindered cycle takes ~0.3 s here, so Ready=False would last only a few
/// tens of milliseconds; a verifier that has not loaded the staged version
/// holds the cycle so the condition can be checked as it stands, not raced.
#[tokio::test]
async fn a_truly_lost_key_is_reported_and_replaced_by_a_rotation() {
    let mut h = API.started("").await;
    h.stop_controller();
    for s in ["api-v1", P] {
        h.secrets()
            .delete(s, &DeleteParams::default())
            .await
            .unwrap();
    }
    h.set_stuck("server-0", true); // holds the replacement in Staging
    h.start_controller();
    let lost = |h: &Harness| {
        let h = h.rotations();
        async move {
            h.get("api")
                .await
                .ok()
                .and_then(|r| r.status)
                .is_some_and(|s| {
                    s.condition("Ready")
                        .is_some_and(|c| c.status == "False" && c.reason == "KeyMaterialMissing")
                })
        }
    };
    h.wait("Ready False with KeyMaterialMissing", 10, || lost(&h))
        .await;
    h.wait("a KeyLost event", 10, || async {
        event_reasons(&h).await.iter().any(|r| r == "KeyLost")
    })
    .await;
    // Still reported on later looks while the replacement waits for verifiers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        lost(&h).await,
        "the condition stays until the key is replaced"
    );
    assert_eq!(h.current(P).await, None, "nobody is given a lost key");
    h.set_stuck("server-0", false);
    h.wait("version 2 replaces the lost key", 20, || settled(&h, 2))
        .await;
    assert_current_key_intact(&h, 2).await;
    let ready = h.rotation("api").await.status.unwrap();
    assert_eq!(ready.condition("Ready").unwrap().status, "True");
    check_invariants(&h, &[]);
}

#[tokio::test]
async fn adoption_imports_the_existing_key_and_consumers_see_no_change() {
    let h = Harness::new().await;
    let legacy = "legacy-api-key-0123456789abcdef";
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "legacy", "namespace": NS},
        "data": {"token": ByteString(legacy.as_bytes().to_vec())},
    }))
    .unwrap();
    h.secrets()
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
    for i in 0..2 {
        h.add_pod(&format!("server-{i}"), &[V], &[]).await;
        h.add_pod(&format!("client-{i}"), &[P], &[]).await;
    }
    let adopt = "adopt: {secretName: legacy, key: token}";
    h.apply("api", &API.spec(adopt)).await;
    h.wait_published(V, P, &[1], 1, 10).await;
    // The first presenter Secret anyone sees already holds the legacy key.
    let presenter = h.secret(P).await.unwrap();
    assert_eq!(text(&presenter, "key").as_deref(), Some(legacy));
    assert_eq!(
        text(&h.secret(V).await.unwrap(), "v1.sha256"),
        Some(digest_of(legacy.as_bytes()))
    );
    let status = h.rotation("api").await.status.unwrap();
    assert!(
        status
            .versions
            .iter()
            .any(|v| v.version == 1 && v.origin == keyrotor::rotation::Origin::Adopted)
    );
    // Rotation then proceeds normally, and the legacy Secret is never touched.
    h.apply("api", &format!("{}\nrotationRequest: r1", API.spec(adopt)))
        .await;
    h.wait("cycle to version 2", 20, || settled(&h, 2)).await;
    assert_ne!(
        text(&h.secret(P).await.unwrap(), "key").as_deref(),
        Some(legacy)
    );
    let kept = h.secret("legacy").await.unwrap();
    assert_eq!(text(&kept, "token").as_deref(), Some(legacy));
    assert!(
        kept.managed_fields()
            .iter()
            .all(|m| m.manager.as_deref() != Some("keyrotor"))
    );
    check_invariants(&h, &[]);
}

/// A rotation rolled back before its version was staged, then a restart that
/// lost status: the abandoned number stays issued (I5), so the rotation that
/// follows gets version 3, never a second key under version 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_abandoned_before_staging_is_never_reissued_after_status_is_lost() {
    let mut h = API.started("").await;
    // Crash right after version 2's Secret is created, before it is staged.
    h.api.faults().halt_after_writes_by("keyrotor", 1);
    API.request_rotation(&h, "", "r1").await;
    tokio::time::timeout(Duration::from_secs(20), h.api.faults().halted())
        .await
        .expect("version 2 created");
    h.stop_controller();
    h.api.faults().resume();
    assert!(h.secret("api-v2").await.is_some());
    h.apply(
        "api",
        &format!("{}\nrotationRequest: r1\nrollbackRequest: b1", API.spec("")),
    )
    .await;
    h.start_controller();
    h.wait("version 2 abandoned and deleted", 20, || async {
        deleted(&h, "api-v2")
    })
    .await;
    h.wait("status records the rollback", 20, || async {
        h.rotation("api")
            .await
            .status
            .is_some_and(|s| s.stage == Some(Stage::Stable) && s.current_version == Some(1))
    })
    .await;

    // Status lost (restored from an old backup, or wiped by hand).
    h.stop_controller();
    h.rotations()
        .patch_status(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": null})),
        )
        .await
        .unwrap();
    assert!(h.rotation("api").await.status.is_none());
    h.start_controller();
    // The request, no longer remembered as handled, rotates again: to
    // version 3, as the verifier Secret remembers 2 was issued.
    h.wait("cycle to version 3", 20, || settled(&h, 3)).await;
    assert!(
        h.secret("api-v2").await.is_none(),
        "version 2 stays abandoned"
    );
    assert_current_key_intact(&h, 3).await;
    check_invariants(&h, &[]);
}
