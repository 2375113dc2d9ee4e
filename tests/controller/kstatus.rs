//! What kstatus (Flux's `wait: true` and health checks, `kstatus`-based
//! tools) makes of a rotation's status: Current when Stable and through a
//! cycle in flight (the published keys stay valid), InProgress while
//! keyrotor has not observed the spec or publishes the first key, Failed —
//! with the reason — when it needs a person (an invalid spec, a stalled
//! cycle). keyrotor says so with kstatus's abnormal-true `Stalled`
//! condition beside its own; the e2e scenario tests/e2e/flux.rs shows the
//! real kustomize-controller reading it.

use keyrotor::api::ApiKeyRotation;
use keyrotor::conditions::types;
use keyrotor_testsupport::harness::Harness;

use crate::scenario::{P, Scenario, V};

/// A grace long enough to look at a cycle in flight.
const API: Scenario = Scenario { min_grace: "3s" };

/// kstatus's verdict on the rotation (keyrotor_testsupport::kstatus).
fn kstatus(r: &ApiKeyRotation) -> (&'static str, String) {
    keyrotor_testsupport::kstatus::verdict(&serde_json::to_value(r).unwrap())
}

async fn verdict(h: &Harness) -> (&'static str, String) {
    kstatus(&h.rotation("api").await)
}

async fn wait_verdict(h: &Harness, want: (&str, &str), secs: u64) {
    h.wait(&format!("kstatus {want:?}"), secs, || async {
        let (status, reason) = verdict(h).await;
        (status, reason.as_str()) == want
    })
    .await;
}

#[tokio::test]
async fn kstatus_calls_a_stable_rotation_and_a_cycle_in_flight_current() {
    let h = API.started("").await;
    wait_verdict(&h, ("Current", "Stable"), 10).await;
    API.request_rotation(&h, "", "r1").await;
    let in_flight = |r: &ApiKeyRotation| {
        let status = r.status.as_ref();
        let progressing = status.and_then(|s| s.condition(types::PROGRESSING));
        progressing.is_some_and(|c| c.status == "True")
    };
    h.wait("a cycle in flight", 10, || async {
        in_flight(&h.rotation("api").await)
    })
    .await;
    let r = h.rotation("api").await;
    let status = r.status.as_ref().unwrap();
    assert_eq!(kstatus(&r), ("Current", "Rotating".into()));
    let stalled = status.condition(types::STALLED).unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("False", "NotStalled")
    );
    h.wait_published(V, P, &[2], 2, 20).await;
    wait_verdict(&h, ("Current", "Stable"), 10).await;
}

#[tokio::test]
async fn kstatus_calls_an_invalid_spec_failed_with_its_reason_until_it_is_fixed() {
    let h = API.started("").await;
    h.apply("api", &API.spec("schedule: {cron: '61 * * * *'}"))
        .await;
    wait_verdict(&h, ("Failed", "InvalidSpec"), 10).await;
    let r = h.rotation("api").await;
    let stalled = r
        .status
        .as_ref()
        .unwrap()
        .condition(types::STALLED)
        .unwrap();
    assert!(
        stalled.message.contains("spec.schedule.cron"),
        "{}",
        stalled.message
    );
    assert_eq!(stalled.observed_generation, r.metadata.generation);
    h.apply("api", &API.spec("")).await;
    wait_verdict(&h, ("Current", "Stable"), 10).await;
}

#[tokio::test]
async fn kstatus_calls_a_stalled_cycle_failed_with_the_stall_and_current_once_it_finishes() {
    let h = API.started("").await;
    h.set_stuck("client-0", true);
    let spec = API.spec("").replace("maximum: 60s", "maximum: 4s");
    h.apply("api", &format!("{spec}\nrotationRequest: r1"))
        .await;
    wait_verdict(&h, ("Failed", "PresentersStalled"), 15).await;
    let r = h.rotation("api").await;
    let status = r.status.as_ref().unwrap();
    let (stalled, migration) = (
        status.condition(types::STALLED).unwrap(),
        status.condition(types::MIGRATION_STALLED).unwrap(),
    );
    assert_eq!(stalled.message, migration.message);
    assert_eq!(
        status.condition(types::READY).unwrap().status,
        "True",
        "the keys stay valid"
    );
    h.set_stuck("client-0", false);
    h.wait_published(V, P, &[2], 2, 20).await;
    wait_verdict(&h, ("Current", "Stable"), 10).await;
}

#[tokio::test]
async fn kstatus_waits_while_keyrotor_has_not_observed_a_new_spec() {
    let mut h = API.started("").await;
    h.stop_controller();
    h.apply("api", &API.spec("suspend: true")).await;
    assert_eq!(
        verdict(&h).await,
        ("InProgress", "LatestGenerationNotObserved".into())
    );
    h.start_controller();
    wait_verdict(&h, ("Current", "Suspended"), 10).await;
}
