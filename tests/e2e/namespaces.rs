//! One key, many namespaces, on the real control plane and the real kubelet
//! node (tests/cluster/up --real-nodes 1). The verifiers of rotation `api`
//! run in its own namespace (`orders-e2e`), its presenters in two others
//! (`checkout-e2e`, `billing-e2e`) that agreed to hold copies of its Secrets
//! (`keyrotor.dev/accept-from`): keyrotor's sample app and reporter sidecar
//! on real pods, mounting the Secrets through kubelet, the operator
//! installed by helm watching the three namespaces. The presenters call the
//! verifiers every 25 ms while keyrotor rotates back to back: none may be
//! rejected, and the observer checks the invariants across the namespaces.
//! Then the same topology with a naive cross-namespace copy (the test
//! copies the presenter Secret into the two namespaces whenever it changes,
//! as a reflector does, and keyrotor, told that its presenters are out of
//! its sight, waits for none of them) rejects some. Both counts are printed.
//!
//! Also the helpers the other namespace scenarios share (consent, copies,
//! conditions).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::api::Condition;
use keyrotor::wire as k;
use keyrotor_testsupport::eventually;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::cluster::{self, Cluster, TestNamespace};
use super::observer::Observer;
use super::operator::keyrotor;
use super::realnode::*;
use super::scenario::*;

const HOME: &str = "orders-e2e";
const TARGETS: [&str; 2] = ["checkout-e2e", "billing-e2e"];
/// Rotations under traffic (at least 10).
const CYCLES: u64 = 10;
/// The naive rotation (its Secrets `naive-verifier`, `naive-key`).
const NAIVE: &str = "naive";

/// Namespace `ns` agrees to hold copies of the rotations of namespace `from`.
pub(super) fn accept_from(cluster: &Cluster, ns: &str, from: &str) {
    let annotation = format!("{}={from}", k::ACCEPT_FROM);
    cluster.ok(&["annotate", "namespace", ns, &annotation, "--overwrite"]);
}

/// Waits (60 s at most) until one of the rotation's conditions satisfies
/// `is`; returns it. On timeout, says what the conditions were.
pub(super) async fn wait_condition(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    is: impl Fn(&Condition) -> bool,
) -> Condition {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = get(client, ns, name).await.status.unwrap_or_default();
        if let Some(c) = status.conditions.iter().find(|c| is(c)) {
            return c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 60 s: {ns}/{name}: {what}; conditions: {}",
            serde_json::to_string(&status.conditions).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether Secret `name` of `ns` is keyrotor's copy of the one of `home`,
/// and if not, why: the same data and revision, labelled with its rotation,
/// role and source namespace, and no owner (an ownerReference cannot cross
/// namespaces). Never shows the data (I4).
pub(super) async fn copy_of(
    client: &Client,
    home: &str,
    ns: &str,
    name: &str,
    rotation: &str,
) -> Result<(), String> {
    let original = Api::<Secret>::namespaced(client.clone(), home)
        .get(name)
        .await
        .map_err(|e| format!("{home}/{name}: {e}"))?;
    let Some(copy) = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
    else {
        return Err(format!("no Secret {ns}/{name}"));
    };
    let labels = copy.labels();
    let wanted = [
        (k::ROTATION_LABEL, rotation),
        (k::ROLE_LABEL, k::ROLE_PROJECTION),
        (k::SOURCE_NAMESPACE_LABEL, home),
    ];
    if wanted
        .iter()
        .any(|(l, v)| labels.get(*l).map(String::as_str) != Some(*v))
    {
        return Err(format!("{ns}/{name} is labelled {labels:?}"));
    }
    if !copy.owner_references().is_empty() {
        return Err(format!("{ns}/{name} has an owner"));
    }
    let revision = |s: &Secret| s.annotations().get(k::REVISION).cloned();
    if revision(&copy) != revision(&original) || copy.data != original.data {
        return Err(format!(
            "{ns}/{name} (revision {:?}) differs from {home}/{name} (revision {:?})",
            revision(&copy),
            revision(&original)
        ));
    }
    Ok(())
}

/// Waits (30 s at most) until Secret `name` of `ns` is the copy of `home`'s;
/// on timeout, says how it differs.
pub(super) async fn wait_copy(client: &Client, home: &str, ns: &str, name: &str, rotation: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Err(e) = copy_of(client, home, ns, name, rotation).await else {
            return;
        };
        assert!(
            Instant::now() < deadline,
            "timed out after 30 s: {ns}/{name} to be the copy of {home}/{name}: {e}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `status.namespaces` of the rotation (running consumers found per
/// namespace), as the API server serves it.
pub(super) fn status_namespaces(cluster: &Cluster, ns: &str, name: &str) -> Vec<Value> {
    let json = cluster.ok(&["get", "apikeyrotation", name, "-n", ns, "-o", "json"]);
    let r: Value = serde_json::from_str(&json).unwrap();
    r["status"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// I8 across namespaces: once a rotation is Stable, `user` (the
/// operator) writes nothing in any of `namespaces` for 5 s, copies
/// included, but the writes ending in one of `excused` (what a consumer's
/// own reports keep changing).
pub(super) async fn assert_quiet(
    cluster: &Cluster,
    user: &str,
    namespaces: &[&str],
    excused: &[&str],
) {
    // The last step's trailing writes (a nudge, the status) land first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mark = audit_mark(cluster);
    tokio::time::sleep(Duration::from_secs(5)).await;
    for ns in namespaces {
        let mut written = writes_by(cluster, user, ns, mark);
        written.retain(|w| !excused.iter().any(|e| w.ends_with(e)));
        assert!(
            written.is_empty(),
            "steady state, yet writes in {ns}: {written:?}"
        );
    }
}

/// Waits (30 s at most) until `status.namespaces` holds an entry for each
/// of `wanted` (namespace, verifiers, presenters) found running there.
pub(super) async fn wait_found(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    wanted: &[(&str, u64, u64)],
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = status_namespaces(cluster, ns, name);
        let has = |(n, v, p): &(&str, u64, u64)| {
            last.iter()
                .any(|e| e["namespace"] == *n && e["verifiers"] == *v && e["presenters"] == *p)
        };
        if wanted.iter().all(has) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 30 s: status.namespaces of {ns}/{name} to hold {wanted:?}: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The revision (annotation) of Secret `name` of `ns`.
pub(super) async fn revision(client: &Client, ns: &str, name: &str) -> u64 {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    s.annotations()[k::REVISION].parse().unwrap()
}

/// Waits (bounded by `limit`) until every pod labelled `app` in `ns`
/// reports `revision` of `rotation`.
pub(super) async fn wait_reports(
    client: &Client,
    ns: &str,
    app: &str,
    rotation: &str,
    revision: u64,
    limit: Duration,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("app={app}"));
    let what = format!("pods {ns}/{app} to report revision {revision} of {rotation}");
    eventually(&what, limit, async || {
        all_report_matching(&pods, &lp, rotation, revision).await
    })
    .await;
}

/// Plays a reflector-style copier: whenever Secret `name` of `from`
/// changes, writes its data into a Secret of the same name in each of `to`.
/// Runs until aborted.
fn reflect(client: Client, from: &str, name: &'static str, to: &[&str]) -> JoinHandle<()> {
    let source: Api<Secret> = Api::namespaced(client.clone(), from);
    let targets: Vec<Api<Secret>> = to
        .iter()
        .map(|ns| Api::namespaced(client.clone(), ns))
        .collect();
    tokio::spawn(async move {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut changes = watcher::watcher(source, config)
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(change) = changes.next().await {
            let Ok(secret) = change else { continue };
            let copy = json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name},
                "data": secret.data,
            });
            for api in &targets {
                let apply = PatchParams::apply("e2e-reflector").force();
                let _ = api.patch(name, &apply, &Patch::Apply(&copy)).await;
            }
        }
    })
}

/// The namespaces of the scenario, each with what real-node pods need
/// there (see [`prepare`]): home first, then the targets; and each one's
/// records directory.
async fn namespaces(cluster: &'static Cluster) -> Vec<(TestNamespace, PathBuf)> {
    let mut out = Vec::new();
    for name in std::iter::once(HOME).chain(TARGETS) {
        let ns = cluster.namespace(name).await;
        let records = prepare(cluster, name, keyrotor(), "records");
        out.push((ns, records));
    }
    for target in TARGETS {
        accept_from(cluster, target, HOME);
    }
    out
}

/// All the requests the presenters recording into `dirs` made since `since`.
fn tally_of(dirs: &[&Path], since: i64) -> Tally {
    let all: Vec<(u64, u64)> = dirs.iter().flat_map(|d| requests(d, since)).collect();
    tally(&all)
}

/// Rotation `name` in [`HOME`] under Report confirmation (a 1 s minimum
/// grace), its Secrets `<name>-verifier` and `<name>-key`.
fn home_rotation(name: &str) -> Value {
    let mut r = rotation(HOME, name, report(), report());
    r["spec"]["gracePeriod"]["minimum"] = "1s".into();
    r
}

#[tokio::test]
async fn presenters_in_two_other_namespaces_see_zero_rejections_and_a_reflector_copy_does_not() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let operator_ns = format!("{HOME}-operator");
    uninstall_operator(cluster, &operator_ns);
    let spaces = namespaces(cluster).await;
    let client = cluster.client().await;
    let watched: Vec<&str> = spaces.iter().map(|(ns, _)| ns.name.as_str()).collect();
    let operator = install_operator(cluster, &operator_ns, &watched).await;
    let observer = Observer::start_in(client.clone(), &watched).await;

    let ours = keyrotor_under_traffic(cluster, &client, &spaces).await;
    check_history(&observer, ROTATION);
    let (name, log) = operator_log(cluster, &operator.name);
    for ns in &watched {
        assert_no_key_material(cluster, ns, &observer, &[(name.clone(), log.clone())]);
    }
    observer.stop();
    assert_eq!(ours.rejected, 0, "keyrotor let requests be rejected");
    assert_eq!(ours.unanswered, 0, "requests went unanswered");
    assert!(ours.sent > 100, "too little traffic: {}", ours.sent);

    // Make room on the node for the naive topology.
    for (ns, _) in &spaces {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
        for d in deployments.list(&ListParams::default()).await.unwrap() {
            let _ = deployments
                .delete(&d.name_any(), &DeleteParams::default())
                .await;
        }
    }
    let naive = naive_copy_under_traffic(cluster, &client, &spaces).await;
    let _ = writeln!(
        std::io::stderr(),
        "presenters in {TARGETS:?}, verifiers in {HOME}: keyrotor {} requests, {} rejected; \
         reflector copy {} requests, {} rejected",
        ours.sent,
        ours.rejected,
        naive.sent,
        naive.rejected
    );
    assert!(naive.rejected > 0, "the reflector copy rejected nothing");
    assert!(
        uninstall_operator(cluster, &operator.name),
        "helm uninstall failed"
    );
}

/// keyrotor's topology: rotation `api` with its verifiers at home and its
/// presenters in the targets, [`CYCLES`] rotations back to back under
/// traffic; what the presenters saw.
async fn keyrotor_under_traffic(
    cluster: &Cluster,
    client: &Client,
    spaces: &[(TestNamespace, PathBuf)],
) -> Tally {
    let mut r = home_rotation(ROTATION);
    r["spec"]["consumers"]["presenters"]["namespaces"] = json!(TARGETS);
    apply(client, HOME, &r).await;
    wait_stable(client, HOME, ROTATION, 1, Duration::from_secs(60)).await;
    for target in TARGETS {
        wait_copy(client, HOME, target, "api-key", ROTATION).await;
        // Nothing of the verifier side leaves home.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), target);
        assert!(secrets.get_opt("api-verifier").await.unwrap().is_none());
    }

    let ports = start_verifiers(client, HOME, "verifier", "api-verifier", &spaces[0].1).await;
    let presenters = Consumers {
        name: "presenter",
        replicas: 1,
        secret: "api-key",
    };
    for (ns, records) in &spaces[1..] {
        start_presenters(client, &ns.name, &presenters, &ports, records).await;
    }
    let limit = Duration::from_secs(120);
    let v = revision(client, HOME, "api-verifier").await;
    wait_reports(client, HOME, "verifier", ROTATION, v, limit).await;
    let p = revision(client, HOME, "api-key").await;
    for target in TARGETS {
        wait_reports(client, target, "presenter", ROTATION, p, limit).await;
    }
    let dirs: Vec<&Path> = spaces[1..].iter().map(|(_, d)| d.as_path()).collect();
    for dir in &dirs {
        wait_traffic(dir, 20).await;
    }
    // keyrotor finds the consumers where they run.
    let found = [
        (HOME, VERIFIERS as u64, 0),
        (TARGETS[0], 0, 1),
        (TARGETS[1], 0, 1),
    ];
    wait_found(cluster, HOME, ROTATION, &found).await;

    let since = now_ms();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..CYCLES {
        let t = Instant::now();
        request_rotation(client, HOME, ROTATION, &format!("r{i}")).await;
        wait_stable(client, HOME, ROTATION, i + 2, Duration::from_secs(180)).await;
        slowest = slowest.max(t.elapsed());
    }
    let mean = started.elapsed() / CYCLES as u32;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ours = tally_of(&dirs, since);
    let _ = writeln!(
        std::io::stderr(),
        "keyrotor across namespaces on real pods: {CYCLES} rotations, mean cycle {mean:.2?}, \
         slowest {slowest:.2?}; {} requests, {} rejected, {} unanswered",
        ours.sent,
        ours.rejected,
        ours.unanswered
    );
    for target in TARGETS {
        wait_copy(client, HOME, target, "api-key", ROTATION).await;
    }
    let watched = [HOME, TARGETS[0], TARGETS[1]];
    assert_quiet(
        cluster,
        &operator_user(&format!("{HOME}-operator")),
        &watched,
        &[],
    )
    .await;
    ours
}

/// The naive topology: rotation [`NAIVE`] at home, told its presenters are
/// out of sight (`minConsumers: 0`, no namespaces), its presenter Secret
/// copied into the targets by a reflector; rotations (three at most) until
/// one rejects; what the presenters saw.
async fn naive_copy_under_traffic(
    cluster: &Cluster,
    client: &Client,
    spaces: &[(TestNamespace, PathBuf)],
) -> Tally {
    let mut r = home_rotation(NAIVE);
    r["spec"]["consumers"]["presenters"]["minConsumers"] = 0.into();
    apply(client, HOME, &r).await;
    wait_stable(client, HOME, NAIVE, 1, Duration::from_secs(60)).await;
    let reflector = reflect(client.clone(), HOME, "naive-key", &TARGETS);

    let ports = start_verifiers(
        client,
        HOME,
        "naive-verifier",
        "naive-verifier",
        &spaces[0].1,
    )
    .await;
    let presenters = Consumers {
        name: "naive-presenter",
        replicas: 1,
        secret: "naive-key",
    };
    let mut dirs = Vec::new();
    for target in TARGETS {
        let dir = records_dir(cluster, &format!("naive-records-{target}"));
        start_presenters(client, target, &presenters, &ports, &dir).await;
        dirs.push(dir);
    }
    let limit = Duration::from_secs(120);
    let v = revision(client, HOME, "naive-verifier").await;
    wait_reports(client, HOME, "naive-verifier", NAIVE, v, limit).await;
    let p = revision(client, HOME, "naive-key").await;
    for target in TARGETS {
        wait_reports(client, target, "naive-presenter", NAIVE, p, limit).await;
    }
    let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    for dir in &dirs {
        wait_traffic(dir, 20).await;
    }

    let since = now_ms();
    let mut naive = tally(&[]);
    // Each rotation waits until the copies reached every presenter pod
    // (kubelet's own pace: up to ~90 s); stop once requests were rejected.
    // A round rejects nothing when kubelet happens to sync the presenters
    // before the verifiers drop the old key (once seen for three rounds in
    // a row), so up to five.
    for round in 1..=5u64 {
        request_rotation(client, HOME, NAIVE, &format!("n{round}")).await;
        wait_stable(client, HOME, NAIVE, round + 1, Duration::from_secs(180)).await;
        let p = revision(client, HOME, "naive-key").await;
        for target in TARGETS {
            let limit = Duration::from_secs(200);
            wait_reports(client, target, "naive-presenter", NAIVE, p, limit).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        naive = tally_of(&dirs, since);
        if naive.rejected > 0 {
            break;
        }
    }
    reflector.abort();
    naive
}
