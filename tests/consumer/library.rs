//! The client library on a simulated kubelet volume: verification of the
//! right, a wrong and a retired key; hot reload; the presenter's key after a
//! swap; the loaded revision reported; usage reports bounded in rate and
//! correct across a rotation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use k8s_openapi::api::core::v1::Pod;
use keyrotor::consumer::pod::{PodAnnotator, PodRef};
use keyrotor::consumer::presenter::Presenter;
use keyrotor::consumer::reload::spawn_reload;
use keyrotor::consumer::usage::{DEFAULT_INTERVAL, UsageReporter};
use keyrotor::consumer::verifier::{Check, Verifier};
use keyrotor::wire::{self as k, LastSeen, REPORTER_MANAGER, RevisionReport, USAGE_MANAGER};
use keyrotor_testkit::FakeApi;
use keyrotor_testsupport::volume::{self, Volume};
use kube::api::{Api, PostParams};
use serde_json::json;

const NS: &str = "default";

async fn pod(api: &FakeApi, name: &str) -> PodRef {
    let pods: Api<Pod> = Api::namespaced(api.client(), NS);
    let pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    PodRef {
        name: name.into(),
        namespace: NS.into(),
    }
}

async fn annotation(api: &FakeApi, name: &str, key: &str) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(api.client(), NS);
    pods.get(name)
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default()
        .get(key)
        .cloned()
}

#[test]
fn the_verifier_accepts_the_right_key_and_refuses_a_wrong_one() {
    let (k1, wrong) = (volume::key(), volume::key());
    let mut vol = Volume::new("verifier");
    vol.publish(&volume::verifier("api", 1, &[(1, &k1)]));
    let verifier = Verifier::open(&vol.dir).unwrap();
    assert_eq!(verifier.verify(k1.expose().as_bytes()), Some(1));
    assert_eq!(verifier.verify(wrong.expose().as_bytes()), None);
    assert_eq!(verifier.verify(b""), None);
    assert_eq!(
        verifier.verify(&k1.expose().as_bytes()[1..]),
        None,
        "a prefix is not the key"
    );
}

#[test]
fn the_verifier_reloads_after_a_swap_and_refuses_a_retired_key() {
    let (k1, k2) = (volume::key(), volume::key());
    let mut vol = Volume::new("verifier");
    vol.publish(&volume::verifier("api", 1, &[(1, &k1)]));
    let verifier = Verifier::open(&vol.dir).unwrap();
    assert_eq!(
        verifier.verify(k2.expose().as_bytes()),
        None,
        "not accepted yet"
    );
    assert!(verifier.refresh().unwrap().is_none(), "no swap, no reload");

    vol.publish(&volume::verifier("api", 2, &[(1, &k1), (2, &k2)]));
    let snap = verifier.refresh().unwrap().expect("the swap is seen");
    assert_eq!(snap.meta.revision, 2);
    assert_eq!(verifier.verify(k1.expose().as_bytes()), Some(1));
    assert_eq!(verifier.verify(k2.expose().as_bytes()), Some(2));

    vol.publish(&volume::verifier("api", 3, &[(2, &k2)]));
    verifier.refresh().unwrap().expect("the swap is seen");
    assert_eq!(verifier.verify(k1.expose().as_bytes()), None, "retired");
    assert_eq!(verifier.verify(k2.expose().as_bytes()), Some(2));
}

#[test]
fn a_retired_key_is_told_apart_from_an_unknown_one_and_accepted_again_after_a_rollback() {
    let (k1, k2, typo) = (volume::key(), volume::key(), volume::key());
    let mut vol = Volume::new("retired");
    vol.publish(&volume::verifier("api", 1, &[(1, &k1), (2, &k2)]));
    let verifier = Verifier::open(&vol.dir).unwrap();
    let now = Timestamp::now();
    let check = |k: &keyrotor::keys::SecretKey| verifier.check_at(k.expose().as_bytes(), now);
    assert_eq!(check(&k1), Check::Accepted(1));
    assert_eq!(check(&typo), Check::Unknown);

    vol.publish(&volume::verifier("api", 2, &[(2, &k2)]));
    verifier.refresh().unwrap().expect("the swap is seen");
    assert_eq!(
        check(&k1),
        Check::Retired(1),
        "v1 was accepted, then retired"
    );
    assert_eq!(check(&typo), Check::Unknown);
    assert_eq!(check(&k2), Check::Accepted(2));

    vol.publish(&volume::verifier("api", 3, &[(1, &k1), (2, &k2)]));
    verifier.refresh().unwrap().expect("the swap is seen");
    assert_eq!(
        check(&k1),
        Check::Accepted(1),
        "rolled back to: accepted again"
    );
    // Neither the verifier nor its state prints a key or a digest.
    let debug = format!("{verifier:?}");
    assert!(
        !debug.contains(k1.expose()) && debug.contains("retired"),
        "{debug}"
    );
}

#[test]
fn plain_verifier_keys_verify_like_digests() {
    let (k1, k2) = (volume::key(), volume::key());
    let mut vol = Volume::new("plain");
    vol.publish(&volume::verifier_plain("api", 5, &[(1, &k1), (2, &k2)]));
    let verifier = Verifier::open(&vol.dir).unwrap();
    assert_eq!(verifier.verify(k2.expose().as_bytes()), Some(2));
    assert_eq!(verifier.verify(volume::key().expose().as_bytes()), None);
}

#[test]
fn a_broken_swap_keeps_the_keys_already_loaded() {
    let k1 = volume::key();
    let mut vol = Volume::new("verifier");
    vol.publish(&volume::verifier("api", 1, &[(1, &k1)]));
    let verifier = Verifier::open(&vol.dir).unwrap();
    let mut broken = volume::verifier("api", 2, &[(1, &k1)]);
    broken.insert("accepted".into(), b"1,2".to_vec());
    vol.publish(&broken);
    let err = verifier.refresh().unwrap_err().to_string();
    assert!(err.contains("v2.key"), "{err}");
    assert!(
        !err.contains(k1.expose()) && !err.contains(&k1.digest()),
        "no key material in errors"
    );
    assert_eq!(verifier.verify(k1.expose().as_bytes()), Some(1));
}

#[test]
fn the_presenter_hands_out_the_new_key_after_a_swap() {
    let (k1, k2) = (volume::key(), volume::key());
    let mut vol = Volume::new("presenter");
    vol.publish(&volume::presenter("api", 1, 1, &k1));
    let presenter = Presenter::open(&vol.dir).unwrap();
    let (v, key) = presenter.current().unwrap();
    assert_eq!((v, key.expose()), (1, k1.expose()));

    vol.publish(&volume::presenter("api", 2, 2, &k2));
    presenter.refresh().unwrap().expect("the swap is seen");
    assert_eq!(presenter.key().unwrap().expose(), k2.expose());
    let shown = format!("{:?} {:?}", presenter, presenter.store().snapshot());
    assert!(
        !shown.contains(k2.expose()),
        "Debug never shows a key: {shown}"
    );
}

#[tokio::test]
async fn the_library_reports_the_revision_its_process_loaded() {
    let api = FakeApi::new();
    let me = pod(&api, "orders-0").await;
    let (k1, k2) = (volume::key(), volume::key());
    let mut vol = Volume::new("verifier");
    vol.publish(&volume::verifier("api", 1, &[(1, &k1)]));
    let verifier = Arc::new(Verifier::open(&vol.dir).unwrap());
    let report = PodAnnotator::new(api.client(), me, REPORTER_MANAGER);
    let task = spawn_reload(verifier.clone(), Duration::from_millis(10), Some(report));
    let key = k::report("api", k::ROLE_VERIFIER);
    let reported = async || {
        let text = annotation(&api, "orders-0", &key).await?;
        RevisionReport::parse(&text).ok().map(|r| r.0)
    };
    for revision in 1..=3u64 {
        if revision > 1 {
            vol.publish(&volume::verifier("api", revision, &[(1, &k1), (2, &k2)]));
        }
        for _ in 0..300 {
            if reported().await == Some(revision) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(reported().await, Some(revision));
        // The report is only made once the process holds the new keys.
        assert_eq!(verifier.store().snapshot().meta.revision, revision);
    }
    task.abort();
    assert_eq!(api.faults().writes_by_manager(REPORTER_MANAGER).len(), 3);
}

fn parse(value: &str) -> BTreeMap<u64, Timestamp> {
    LastSeen::parse(value).unwrap().0
}

#[tokio::test]
async fn usage_reports_are_bounded_in_rate_and_right_across_a_rotation() {
    let api = FakeApi::new();
    let me = pod(&api, "orders-0").await;
    let (k1, k2) = (volume::key(), volume::key());
    let mut vol = Volume::new("verifier");
    vol.publish(&volume::verifier("api", 1, &[(1, &k1), (2, &k2)]));
    let verifier = Verifier::open(&vol.dir).unwrap();
    let mut reporter = UsageReporter::new(
        PodAnnotator::new(api.client(), me, USAGE_MANAGER),
        "api",
        DEFAULT_INTERVAL,
    );

    // 20 simulated minutes, 10 requests a second, flushing every second:
    // clients present v1 for 8 minutes, then move to v2.
    let start: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
    let switch = start + 8.minutes();
    let mut last_v1 = start;
    for second in 0..1200i64 {
        let now = start + second.seconds();
        for tenth in 0..10i64 {
            let at = now + (tenth * 100).milliseconds();
            let key = if at < switch { &k1 } else { &k2 };
            let v = verifier.verify_at(key.expose().as_bytes(), at).unwrap();
            if v == 1 {
                last_v1 = at;
            }
        }
        reporter.flush(verifier.usage(), now).await.unwrap();
    }
    let writes = api.faults().writes_by_manager(USAGE_MANAGER);
    assert!(
        writes.len() <= 21,
        "at most one write a minute: {}",
        writes.len()
    );
    assert!(
        writes.len() >= 19,
        "a busy verifier still reports every minute: {}",
        writes.len()
    );
    assert!(writes.iter().all(|w| w.name == "orders-0"));

    let seen = parse(
        &annotation(&api, "orders-0", &k::last_seen("api"))
            .await
            .unwrap(),
    );
    assert_eq!(
        seen[&1],
        last_v1.round(jiff::Unit::Second).unwrap(),
        "v1's last use, exactly"
    );
    let v2_lag = (start + 20.minutes()).duration_since(seen[&2]);
    assert!(
        v2_lag.as_secs() <= 61,
        "v2 is reported within the interval: {v2_lag:?}"
    );

    // Retiring v1 drops it from the next report; quiet verifiers write nothing.
    vol.publish(&volume::verifier("api", 2, &[(2, &k2)]));
    verifier.refresh().unwrap().unwrap();
    let later = start + 30.minutes();
    verifier.verify_at(k2.expose().as_bytes(), later);
    assert!(reporter.flush(verifier.usage(), later).await.unwrap());
    let seen = parse(
        &annotation(&api, "orders-0", &k::last_seen("api"))
            .await
            .unwrap(),
    );
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [2]);
    let count = api.faults().writes_by_manager(USAGE_MANAGER).len();
    for minute in 31..40i64 {
        assert!(
            !reporter
                .flush(verifier.usage(), start + minute.minutes())
                .await
                .unwrap()
        );
    }
    assert_eq!(
        api.faults().writes_by_manager(USAGE_MANAGER).len(),
        count,
        "no traffic, no write"
    );
}
