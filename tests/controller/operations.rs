//! Running keyrotor: readiness waits for the CRD, metrics with bounded labels,
//! and leader election with two replicas, on the in-memory API.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use keyrotor::api::ApiKeyRotation;
use keyrotor::ops::lease::{Leadership, LeaseConfig};
use keyrotor::ops::{Health, Metrics, admin};
use keyrotor::run::{RunArgs, serve};
use keyrotor::wire as k;
use keyrotor_testkit::FakeApi;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use serde_json::json;

fn args(leader_election: bool, instance: &str) -> RunArgs {
    RunArgs {
        namespaces: vec!["default".into()],
        admin_address: "127.0.0.1:0".parse().unwrap(),
        concurrency: 0,
        list_secrets: false,
        leader_election,
        lease_namespace: "default".into(),
        lease_name: "keyrotor-leader".into(),
        lease_duration: 2,
        instance: Some(instance.into()),
        log_format: keyrotor::logging::LogFormat::Text,
    }
}

struct Replica {
    metrics: Arc<Metrics>,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<Result<(), keyrotor::run::Error>>,
}

async fn replica(client: Client, args: RunArgs) -> Replica {
    let (metrics, health) = (
        Arc::new(Metrics::new(keyrotor::controller::ERROR_CATEGORIES)),
        Arc::new(Health::default()),
    );
    let addr = admin::serve(args.admin_address, metrics.clone(), health.clone())
        .await
        .unwrap();
    let task = tokio::spawn(serve(client, args, metrics.clone(), health));
    Replica {
        metrics,
        addr,
        task,
    }
}

async fn until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn apply_rotation(client: &Client, token: &str) {
    let api: Api<ApiKeyRotation> = Api::namespaced(client.clone(), "default");
    let obj = json!({
        "apiVersion": "keyrotor.dev/v1alpha1", "kind": "ApiKeyRotation",
        "metadata": {"name": "api", "namespace": "default"},
        // No consumer pods here: the spec says they are out of keyrotor's sight.
        "spec": {"secrets": {"verifier": "api-verifier", "presenter": "api-key"},
                 "consumers": {"verifiers": {"minConsumers": 0}, "presenters": {"minConsumers": 0}},
                 "gracePeriod": {"minimum": "0s", "maximum": "60s"}, "rotationRequest": token},
    });
    api.patch(
        "api",
        &PatchParams::apply("test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
}

async fn current(client: &Client) -> Option<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .get_opt("api-key")
        .await
        .ok()??
        .metadata
        .annotations?
        .get(k::CURRENT)
        .cloned()
}

#[tokio::test]
async fn readiness_waits_for_the_crd_and_says_so() {
    let api = FakeApi::new();
    let client = api.client();
    let r = replica(client.clone(), args(false, "a")).await;
    until("a 503 naming the CRD", 5, async || {
        let (code, body) = admin::get(r.addr, "/readyz").await.unwrap();
        code == 503 && body.contains("CRD")
    })
    .await;
    assert_eq!(
        admin::get(r.addr, "/livez").await.unwrap().0,
        200,
        "alive while it waits"
    );
    // GitOps applies the CRD after the operator: keyrotor picks it up.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &ApiKeyRotation::crd())
        .await
        .unwrap();
    until("ready", 15, async || {
        admin::get(r.addr, "/readyz").await.unwrap().0 == 200
    })
    .await;
    r.task.abort();
}

#[tokio::test]
async fn metrics_are_exposed_with_bounded_labels() {
    let api = FakeApi::new();
    api.register_crd(&ApiKeyRotation::crd());
    let client = api.client();
    let r = replica(client.clone(), args(false, "a")).await;
    apply_rotation(&client, "r0").await;
    until("version 1 current", 15, async || {
        current(&client).await.as_deref() == Some("1")
    })
    .await;
    apply_rotation(&client, "r1").await;
    until("version 2 current", 15, async || {
        current(&client).await.as_deref() == Some("2")
    })
    .await;
    until("rotation counted", 10, async || {
        r.metrics
            .encode()
            .contains("keyrotor_rotations_total{outcome=\"completed\"} 1")
    })
    .await;
    let (code, text) = admin::get(r.addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    for needle in [
        "keyrotor_reconciles_total{result=\"ok\"}",
        "keyrotor_reconcile_duration_seconds_bucket",
        "keyrotor_current_key_created_timestamp_seconds{namespace=\"default\",name=\"api\"}",
        "keyrotor_stage{namespace=\"default\",name=\"api\",stage=\"Stable\"} 1",
        "keyrotor_consumers_waiting{namespace=\"default\",name=\"api\",group=\"presenters\"}",
        "keyrotor_ready{namespace=\"default\",name=\"api\"} 1",
        "keyrotor_stalled{namespace=\"default\",name=\"api\",reason=\"NoConsumers\"} 0",
        "keyrotor_stage_started_timestamp_seconds{namespace=\"default\",name=\"api\"}",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // The first observe reads consistently; once keyrotor knows what it
    // wrote, the reconciles of the cycle accept lists from the cache.
    for read in ["consistent", "cached"] {
        let count = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("keyrotor_secret_reads_total{{read=\"{read}\"}} "))
            })
            .and_then(|n| n.parse::<u64>().ok());
        assert!(
            count.is_some_and(|n| n > 0),
            "no {read} read of the Secrets in\n{text}"
        );
    }
    let allowed = [
        "result",
        "category",
        "outcome",
        "namespace",
        "name",
        "group",
        "stage",
        "reason",
        "read",
        "le",
    ];
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('{'))
    {
        let labels = &line[line.find('{').unwrap() + 1..line.find('}').unwrap()];
        for pair in labels.split(',') {
            let key = pair.split('=').next().unwrap();
            assert!(allowed.contains(&key), "unbounded label {key} in {line}");
        }
    }
    r.task.abort();
}

#[tokio::test]
async fn only_the_leader_writes_and_a_standby_takes_over_when_it_dies() {
    let api = FakeApi::new();
    api.register_crd(&ApiKeyRotation::crd());
    let client = api.client();
    let a = replica(client.clone(), args(true, "replica-a")).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    until("replica-a leads", 10, async || {
        leases
            .get_opt("keyrotor-leader")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .as_deref()
            == Some("replica-a")
    })
    .await;
    let b = replica(client.clone(), args(true, "replica-b")).await;
    apply_rotation(&client, "r0").await;
    until("version 1 current", 15, async || {
        current(&client).await.as_deref() == Some("1")
    })
    .await;
    apply_rotation(&client, "r1").await;
    until("replica-a rotated", 15, async || {
        current(&client).await.as_deref() == Some("2")
    })
    .await;
    let ok = "keyrotor_reconciles_total{result=\"ok\"}";
    let none = format!("{ok} 0\n");
    assert!(a.metrics.encode().contains(ok) && !a.metrics.encode().contains(&none));
    assert!(
        b.metrics.encode().contains(&none),
        "the standby reconciled:\n{}",
        b.metrics.encode()
    );
    assert!(b.metrics.encode().contains("keyrotor_leader 0"));
    assert_eq!(
        admin::get(b.addr, "/readyz").await.unwrap().0,
        200,
        "a standby is ready (rolling updates need it)"
    );
    // replica-a dies without releasing its lease; replica-b takes over after it expires.
    a.task.abort();
    until("replica-b leads", 10, async || {
        b.metrics.encode().contains("keyrotor_leader 1")
    })
    .await;
    apply_rotation(&client, "r2").await;
    until("replica-b rotated", 15, async || {
        current(&client).await.as_deref() == Some("3")
    })
    .await;
    b.task.abort();
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once_not_after_it_expires() {
    let api = FakeApi::new();
    let client = api.client();
    let config = |id: &str| LeaseConfig {
        namespace: "default".into(),
        name: "handover".into(),
        identity: id.into(),
        duration: Duration::from_secs(60),
        renew: Duration::from_millis(200),
    };
    let a = Leadership::acquire(client.clone(), config("a")).await;
    let standby = tokio::spawn(Leadership::acquire(client.clone(), config("b")));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !standby.is_finished(),
        "b must not lead while a holds the lease"
    );
    let t0 = std::time::Instant::now();
    a.release().await; // SIGTERM path
    let _b = tokio::time::timeout(Duration::from_secs(5), standby)
        .await
        .expect("b took over")
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "handover did not wait for the 60 s expiry"
    );
}
