//! The reporter — the library loop, and `keyrotor-sidecar reporter` and
//! `keyrotor reporter` as processes — against the in-memory API, with a
//! simulated kubelet volume swap: the pod's annotation follows every swap,
//! nothing is written when nothing changed, a lost annotation is reported
//! again, failures are retried.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use keyrotor::consumer::pod::PodRef;
use keyrotor::consumer::reporter::{Pass, Reporter, Timing};
use keyrotor::wire::{self as k, REPORTER_MANAGER, RevisionReport};
use keyrotor_testkit::{FakeApi, Fault};
use keyrotor_testsupport::eventually_every;
use keyrotor_testsupport::volume::{self, Volume};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "default";

async fn pod(api: &FakeApi, name: &str) -> PodRef {
    let pods: Api<Pod> = Api::namespaced(api.client(), NS);
    let pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "annotations": {"team": "orders"}},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    PodRef {
        name: name.into(),
        namespace: NS.into(),
    }
}

async fn annotations(api: &FakeApi, name: &str) -> BTreeMap<String, String> {
    let pods: Api<Pod> = Api::namespaced(api.client(), NS);
    pods.get(name)
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default()
}

/// The revision `pod` reports for rotation `api`'s `role` Secret.
async fn reported(api: &FakeApi, pod: &str, role: &str) -> Option<u64> {
    RevisionReport::read(&annotations(api, pod).await, "api", role).map(|r| r.0)
}

fn writes(api: &FakeApi) -> usize {
    api.faults().writes_by_manager(REPORTER_MANAGER).len()
}

fn fast() -> Timing {
    Timing {
        poll: Duration::from_millis(10),
        resync: Duration::from_millis(300),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(80),
    }
}

/// How long a report may take, and how often to look (the API is in memory).
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

#[tokio::test]
async fn the_annotation_follows_every_swap_and_a_quiet_volume_costs_no_write() {
    let api = FakeApi::new();
    let me = pod(&api, "orders-0").await;
    let (k1, k2) = (volume::key(), volume::key());
    let mut vol = Volume::new("verifier");
    vol.publish(&volume::verifier("api", 1, &[(1, &k1)]));
    let mut reporter = Reporter::new(api.client(), me, vec![vol.dir.clone()], fast());

    assert_eq!(reporter.pass(false).await.unwrap(), Pass::Synced(1));
    assert_eq!(reported(&api, "orders-0", k::ROLE_VERIFIER).await, Some(1));
    assert_eq!(
        annotations(&api, "orders-0").await["team"],
        "orders",
        "other annotations stay"
    );

    assert_eq!(
        reporter.pass(false).await.unwrap(),
        Pass::Idle,
        "no swap: not even a read"
    );
    assert_eq!(
        reporter.pass(true).await.unwrap(),
        Pass::Synced(0),
        "a resync of a right pod writes nothing"
    );
    assert_eq!(writes(&api), 1);

    for (revision, keys) in [(2, vec![(1, &k1), (2, &k2)]), (3, vec![(2, &k2)])] {
        vol.publish(&volume::verifier("api", revision, &keys));
        assert_eq!(reporter.pass(false).await.unwrap(), Pass::Synced(1));
        assert_eq!(
            reported(&api, "orders-0", k::ROLE_VERIFIER).await,
            Some(revision)
        );
    }
    assert_eq!(writes(&api), 3, "one write per swap");
    assert!(
        api.faults()
            .writes_by_manager(REPORTER_MANAGER)
            .iter()
            .all(|w| w.resource == "pods" && w.name == "orders-0"),
        "the reporter writes only its own pod"
    );
}

#[tokio::test]
async fn a_lost_annotation_is_reported_again_at_the_next_resync() {
    let api = FakeApi::new();
    let me = pod(&api, "orders-0").await;
    let mut vol = Volume::new("verifier");
    vol.publish(&volume::verifier("api", 4, &[(1, &volume::key())]));
    let reporter = Reporter::new(api.client(), me, vec![vol.dir.clone()], fast());
    let task = tokio::spawn(reporter.run(std::future::pending()));

    eventually_every("the first report", WAIT, POLL, async || {
        reported(&api, "orders-0", k::ROLE_VERIFIER).await == Some(4)
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(api.client(), NS);
    let drop = json!({"metadata": {"annotations": {k::report("api", k::ROLE_VERIFIER): null}}});
    pods.patch("orders-0", &PatchParams::default(), &Patch::Merge(&drop))
        .await
        .unwrap();
    eventually_every("the report is back", WAIT, POLL, async || {
        reported(&api, "orders-0", k::ROLE_VERIFIER).await == Some(4)
    })
    .await;

    // Resyncs of a right pod read and never write.
    let before = writes(&api);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(writes(&api), before);
    task.abort();
}

#[tokio::test]
async fn the_running_reporter_follows_swaps_and_retries_failed_writes() {
    let api = FakeApi::new();
    let me = pod(&api, "checkout-0").await;
    let mut vol = Volume::new("presenter");
    vol.publish(&volume::presenter("api", 1, 1, &volume::key()));
    api.faults().fail_next_writes(3, Fault::Status(500));
    let task = tokio::spawn(
        Reporter::new(api.client(), me, vec![vol.dir.clone()], fast()).run(std::future::pending()),
    );

    eventually_every(
        "the report survives three failed writes",
        WAIT,
        POLL,
        async || reported(&api, "checkout-0", k::ROLE_PRESENTER).await == Some(1),
    )
    .await;
    for revision in 2..=6 {
        vol.publish(&volume::presenter(
            "api",
            revision,
            revision,
            &volume::key(),
        ));
        eventually_every("the report follows the swap", WAIT, POLL, async || {
            reported(&api, "checkout-0", k::ROLE_PRESENTER).await == Some(revision)
        })
        .await;
    }
    task.abort();
}

#[tokio::test]
async fn a_combined_secret_and_several_directories_report_every_role() {
    let api = FakeApi::new();
    let me = pod(&api, "gateway-0").await;
    let k = volume::key();
    let mut combined = Volume::new("combined");
    let mut files = volume::verifier("api", 2, &[(1, &k)]);
    files.extend(volume::presenter("api", 2, 1, &k));
    files.insert(
        k::ROLE_FILE.into(),
        format!("{},{}", k::ROLE_VERIFIER, k::ROLE_PRESENTER).into_bytes(),
    );
    combined.publish(&files);
    let mut other = Volume::new("other");
    other.publish(&volume::verifier("billing", 9, &[(3, &k)]));
    let mut reporter = Reporter::new(
        api.client(),
        me,
        vec![combined.dir.clone(), other.dir.clone()],
        fast(),
    );

    assert_eq!(reporter.pass(false).await.unwrap(), Pass::Synced(3));
    let ann = annotations(&api, "gateway-0").await;
    let read = |rotation, role| RevisionReport::read(&ann, rotation, role).map(|r| r.0);
    assert_eq!(read("api", k::ROLE_VERIFIER), Some(2));
    assert_eq!(read("api", k::ROLE_PRESENTER), Some(2));
    assert_eq!(read("billing", k::ROLE_VERIFIER), Some(9));
    assert_eq!(
        ann.len(),
        4,
        "three reports beside the pod's own annotation"
    );
    assert_eq!(writes(&api), 1, "one patch carries every change");
}

/// Kills the child by PID when the test ends, pass or fail.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `reporter` of `binary` on a volume of its own, for pod `orders-0` of a
/// fresh in-memory API: its annotation follows a volume swap.
async fn reports_through_a_kubeconfig(binary: &std::path::Path) {
    let api = FakeApi::new();
    pod(&api, "orders-0").await;
    let server = api.listen().await.expect("listen on 127.0.0.1");
    let mut vol = Volume::new("binary");
    vol.publish(&volume::verifier("api", 7, &[(1, &volume::key())]));
    let kubeconfig = vol.dir.with_extension("kubeconfig");
    server.write_kubeconfig(&kubeconfig, NS).unwrap();

    let child = std::process::Command::new(binary)
        .args(["reporter", "--dir"])
        .arg(&vol.dir)
        .args(["--poll-seconds", "1"])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", "orders-0")
        .env("POD_NAMESPACE", NS)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the reporter starts");
    let _running = Running(child);

    for revision in [7u64, 8] {
        if revision == 8 {
            vol.publish(&volume::verifier("api", 8, &[(1, &volume::key())]));
        }
        for _ in 0..200 {
            if reported(&api, "orders-0", k::ROLE_VERIFIER).await == Some(revision) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            reported(&api, "orders-0", k::ROLE_VERIFIER).await,
            Some(revision),
            "{}",
            binary.display()
        );
    }
    let _ = std::fs::remove_file(&kubeconfig);
}

/// What pods run: the sidecar binary.
#[tokio::test]
async fn keyrotor_sidecar_reporter_reports_through_a_kubeconfig_with_the_downward_api_env() {
    reports_through_a_kubeconfig(keyrotor_testsupport::binaries::sidecar()).await;
}

/// Pod specs written for the operator binary keep working.
#[tokio::test]
async fn keyrotor_reporter_in_the_operator_binary_reports_the_same() {
    reports_through_a_kubeconfig(std::path::Path::new(env!("CARGO_BIN_EXE_keyrotor"))).await;
}

#[tokio::test]
async fn with_a_handshake_the_pod_reports_what_the_process_loaded_not_what_the_volume_holds() {
    use keyrotor::consumer::handshake::Handshake;
    let api = FakeApi::new();
    let me = pod(&api, "orders-0").await;
    let (k1, k2) = (volume::key(), volume::key());
    let mut vol = Volume::new("verifier");
    vol.publish(&volume::verifier("api", 1, &[(1, &k1)]));
    let shared = Volume::new("handshake");
    let hs = Handshake::new(&shared.dir);
    let mut reporter = Reporter::new(api.client(), me, vec![vol.dir.clone()], fast())
        .with_handshake(shared.dir.clone());

    reporter.pass(false).await.unwrap();
    assert_eq!(
        reported(&api, "orders-0", k::ROLE_VERIFIER).await,
        None,
        "the process has loaded nothing yet: nothing is confirmed"
    );
    hs.loaded("api", k::ROLE_VERIFIER, 1).unwrap();
    assert_eq!(reporter.pass(false).await.unwrap(), Pass::Synced(1));
    assert_eq!(reported(&api, "orders-0", k::ROLE_VERIFIER).await, Some(1));

    // kubelet swaps the volume; a process that caches the key has not
    // reloaded: the pod keeps reporting revision 1.
    vol.publish(&volume::verifier("api", 2, &[(1, &k1), (2, &k2)]));
    reporter.pass(false).await.unwrap();
    assert_eq!(reported(&api, "orders-0", k::ROLE_VERIFIER).await, Some(1));
    hs.loaded("api", k::ROLE_VERIFIER, 2).unwrap();
    assert_eq!(reporter.pass(false).await.unwrap(), Pass::Synced(1));
    assert_eq!(reported(&api, "orders-0", k::ROLE_VERIFIER).await, Some(2));
    assert_eq!(
        reporter.pass(false).await.unwrap(),
        Pass::Idle,
        "nothing changed"
    );

    let seen = [(2, "2026-03-01T10:14:03Z".parse().unwrap())].into();
    hs.seen("api", &seen).unwrap();
    reporter.pass(false).await.unwrap();
    assert_eq!(
        annotations(&api, "orders-0")
            .await
            .get(&k::last_seen("api"))
            .map(String::as_str),
        Some("2=2026-03-01T10:14:03Z")
    );
    assert!(
        !api.faults().writes_by_manager(k::USAGE_MANAGER).is_empty(),
        "last-seen is written as usage"
    );
}
