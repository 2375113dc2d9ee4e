//! keyrotor under a real Flux (source-controller and kustomize-controller
//! v1.9.6, helm-controller v1.4.5; tests/cluster/flux), reading a local Git
//! repository over smart HTTP on loopback. The objects are the shipped
//! examples (examples/flux/), pointed at this repository and cluster: a
//! GitRepository, a HelmRelease that installs the chart (the release
//! image), and a Kustomization with `wait: true` and `prune: true` that
//! applies ApiKeyRotations from plain manifests. Rotations asked for in Git
//! (`spec.rotationRequest`) complete; the Kustomization stays Ready at each
//! commit and kustomize-controller's own apply report says "unchanged" at
//! every reconcile but the one per commit (keyrotor's writes are no drift).
//! Flux's health check reads each rotation by kstatus: it waits while
//! keyrotor has not observed a spec, passes through a cycle in flight (the
//! keys stay valid), and fails at once, naming the rotation, when it is
//! stalled or invalid (keyrotor's Stalled condition). What kstatus and the
//! Kustomization said per stage is printed (--nocapture).

use std::time::Duration;

use keyrotor::api::ApiKeyRotation;
use keyrotor_testsupport::e2e::flux::{
    self, Flux, GIT_REPOSITORY, HELM_RELEASE, KUSTOMIZATION, Recorder, Seen, applies, by_stage,
    condition, drift, ready_at,
};
use keyrotor_testsupport::e2e::git::GitRepo;
use keyrotor_testsupport::e2e::git::http::GitServer;
use kube::Client;
use kube::api::Api;
use serde_json::Value;

use super::cluster::{self, Cluster, repo};
use super::gitops::{
    cluster_values, commit_rotation, operator_ready, print_rows, rotate_imperatively, rotation,
};
use super::observer::Observer;
use super::operator::Operator;
use super::realnode::{operator_log, real_nodes, release_image};
use super::scenario::{assert_no_key_material, check_history, wait_gone, wait_stable};

/// How long a commit may take to be applied, or a rotation to show a state.
const LIMIT: Duration = Duration::from_secs(90);
/// The Kustomization's interval here: many reconciles between commits, each
/// a chance for drift to show.
const INTERVAL: &str = "5s";

/// An example of examples/flux/, parsed.
fn example(file: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("examples/flux").join(file)).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// One scenario's Flux, the repository it reads (served over HTTP), and the
/// namespace its rotations go to.
struct GitOps {
    cluster: &'static Cluster,
    client: Client,
    flux: Flux,
    git: GitRepo,
    server: GitServer,
    ns: String,
}

impl GitOps {
    /// Records how Kustomization `rotations` and kstatus show rotation
    /// `api`, per look.
    fn record_api(&self) -> Recorder {
        let (client, flux) = (self.client.clone(), &self.flux.namespace);
        Recorder::start(client, flux, "rotations", &self.ns, "api")
    }

    async fn start(cluster: &'static Cluster, flux_ns: &str, ns: &str) -> GitOps {
        let flux = Flux::start(cluster, flux_ns).await;
        let git = GitRepo::init(&flux.dir.join("git").join("platform"));
        let server = GitServer::start(&flux.dir.join("git"));
        GitOps {
            cluster,
            client: cluster.client().await,
            flux,
            git,
            server,
            ns: ns.to_string(),
        }
    }

    /// examples/flux/gitrepository.yaml, at this repository's URL, looked
    /// at every 2 s.
    fn git_repository(&self) -> Value {
        let mut g = example("gitrepository.yaml");
        assert_eq!(g["spec"]["ref"]["branch"], "main");
        g["metadata"]["namespace"] = self.flux.namespace.clone().into();
        g["spec"]["url"] = self.server.url(&self.git).into();
        g["spec"]["interval"] = "2s".into();
        g
    }

    /// examples/flux/rotations.yaml, into the scenario's namespace, every
    /// [`INTERVAL`], waiting at most `timeout`.
    fn kustomization(&self, timeout: &str) -> Value {
        let mut k = example("rotations.yaml");
        assert_eq!(k["spec"]["wait"], true);
        assert_eq!(k["spec"]["prune"], true);
        assert_eq!(k["spec"]["path"], "./rotations");
        k["metadata"]["namespace"] = self.flux.namespace.clone().into();
        k["spec"]["targetNamespace"] = self.ns.clone().into();
        k["spec"]["interval"] = INTERVAL.into();
        k["spec"]["timeout"] = timeout.into();
        k
    }

    /// Waits (within [`LIMIT`]) until the Kustomization satisfies `done`.
    async fn wait(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let ks = (KUSTOMIZATION, "rotations");
        self.flux.wait(&self.client, ks, what, LIMIT, done).await
    }

    async fn wait_stable(&self, version: u64) {
        wait_stable(&self.client, &self.ns, "api", version, LIMIT).await;
    }
}

/// examples/flux/helmrelease.yaml into namespace `operator_ns`, watching
/// `watch`, with the values this cluster needs (as realnode::helm_install
/// sets them): the real node's network (no CNI) and taint, the API server's
/// address (no kube-proxy), a free admin port, one replica, the suite's CRD.
fn helm_release(flux: &Flux, operator_ns: &str, watch: &str) -> Value {
    let mut h = example("helmrelease.yaml");
    h["metadata"]["namespace"] = flux.namespace.clone().into();
    assert_eq!(h["spec"]["chart"]["spec"]["chart"], "./charts/keyrotor");
    h["spec"]["targetNamespace"] = operator_ns.into();
    h["spec"]["releaseName"] = format!("keyrotor-{operator_ns}").into();
    let values = h["spec"]["values"].as_object_mut().unwrap();
    cluster_values(values, watch);
    h
}

/// Prints what kstatus and the Kustomization showed per stage (for the
/// record) and checks that the Kustomization stayed applied and Ready
/// whenever it was to.
fn report(scenario: &str, seen: &[Seen]) {
    print_rows(
        &format!("{scenario}: kstatus and the Kustomization per stage of the rotation"),
        by_stage(seen),
    );
    let drifted = drift(seen);
    let settled = seen.iter().filter(|s| s.settled.is_some()).count();
    eprintln!(
        "{scenario}: {} looks, {settled} at an applied commit, {} of them not Ready at it",
        seen.len(),
        drifted.len()
    );
    assert!(
        drifted.is_empty(),
        "the Kustomization left its commit without a new one: {:?}",
        &drifted[..drifted.len().min(5)]
    );
}

#[tokio::test]
async fn the_operator_installed_by_flux_runs_rotations_asked_for_in_git_and_each_commit_is_applied_once()
 {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let image = release_image(cluster);
    let flux_ns = cluster.namespace("e2e-flux-gitops").await;
    let operator_ns = cluster.namespace("e2e-flux-gitops-operator").await;
    let ns = cluster.namespace("e2e-flux-gitops-rotations").await;
    let mut g = GitOps::start(cluster, &flux_ns.name, &ns.name).await;
    g.git
        .copy_dir(&repo().join("charts/keyrotor"), "charts/keyrotor");
    let first = commit_rotation(&g.git, &rotation("api", None, 0), "keyrotor and a rotation");
    g.flux.apply(&g.git_repository());
    g.flux
        .apply(&helm_release(&g.flux, &operator_ns.name, &ns.name));
    g.flux.apply(&g.kustomization("2m"));

    // The operator becomes ready through Flux, from the chart's default
    // image (the release image).
    let installed =
        |h: &Value| condition(h, "Ready").0 == "True" && h["status"]["observedGeneration"] == 1;
    let release = (HELM_RELEASE, "keyrotor");
    let limit = Duration::from_secs(240);
    let hr = g
        .flux
        .wait(&g.client, release, "Ready", limit, installed)
        .await;
    eprintln!("HelmRelease: {:?}", condition(&hr, "Ready"));
    let deploy = operator_ready(cluster, &operator_ns.name, image, "Flux");
    g.wait("the first commit applied and healthy", |k| {
        ready_at(k, &first)
    })
    .await;
    g.wait_stable(1).await;

    let observer = Observer::start(g.client.clone(), &ns.name).await;
    let recorder = g.record_api();
    let commits = rotate_in_git(&mut g, &recorder, first).await;
    // `kubectl keyrotor rotate` sets an annotation Git does not have: no
    // change for Flux; then a few of the Kustomization's intervals.
    rotate_imperatively(&g.client, &ns.name, "api", "imperative-1").await;
    g.wait_stable(5).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let seen = recorder.stop().await;
    report("rotations asked for in Git", &seen);
    applied_once_per_commit(&g, &commits, &seen).await;
    // Each commit is a new revision of the chart's source too; the chart's
    // version is the same, so helm-controller installed it once and never
    // upgraded (Helm's history holds one release).
    let hr = g
        .flux
        .get(&g.client, HELM_RELEASE, "keyrotor")
        .await
        .unwrap();
    let releases = hr["status"]["history"].as_array().map_or(0, Vec::len);
    assert_eq!(
        releases, 1,
        "the chart was installed again: {}",
        hr["status"]
    );

    check_history(&observer, "api");
    let mut logs = g.flux.logs();
    logs.push(operator_log(cluster, &operator_ns.name));
    assert_no_key_material(cluster, &ns.name, &observer, &logs);
    observer.stop();
    delete_flux_objects(&mut g, &deploy, &operator_ns.name).await;
}

/// Three rotations asked for in Git, each applied (the Kustomization Ready
/// at the commit: its health check passed), then completed; every commit,
/// oldest first.
async fn rotate_in_git(g: &mut GitOps, recorder: &Recorder, first: String) -> Vec<String> {
    recorder.settle(Some(&first));
    let mut commits = vec![first];
    for version in 2..=4u64 {
        recorder.settle(None);
        let request = format!("git-{version}");
        let r = rotation("api", Some(&request), 0);
        let commit = commit_rotation(&g.git, &r, &format!("rotate api (version {version})"));
        g.wait("the commit applied", |k| ready_at(k, &commit)).await;
        recorder.settle(Some(&commit));
        g.wait_stable(version).await;
        commits.push(commit);
    }
    commits
}

/// kustomize-controller's apply report: the rotation created by the first
/// commit, configured once by each later one, and "unchanged" at every
/// other reconcile (keyrotor's status, finalizer and the rotate annotation
/// are no drift to Flux's server-side apply). Through every cycle kstatus
/// said Current (the keys stay valid), and Flux's health check passed.
async fn applied_once_per_commit(g: &GitOps, commits: &[String], seen: &[Seen]) {
    let object = format!("ApiKeyRotation/{}/api", g.ns);
    let report: Vec<_> = applies(&g.flux.kustomize_log(), "rotations")
        .into_iter()
        .filter(|a| a.object == object)
        .collect();
    let changed: Vec<_> = report.iter().filter(|a| a.action != "unchanged").collect();
    let unchanged = report.len() - changed.len();
    eprintln!(
        "kustomize-controller applied {object} {} times: {} unchanged, changed: {:?}",
        report.len(),
        unchanged,
        changed
            .iter()
            .map(|a| format!("{} at {}", a.action, a.revision))
            .collect::<Vec<_>>()
    );
    let want: Vec<(String, String)> = commits
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let action = if i == 0 { "created" } else { "configured" };
            (action.to_string(), flux::revision(c))
        })
        .collect();
    let got: Vec<(String, String)> = changed
        .iter()
        .map(|a| (a.action.clone(), a.revision.clone()))
        .collect();
    assert_eq!(got, want, "what Flux's applies changed");
    assert!(
        unchanged >= 2 * commits.len(),
        "too few reconciles to show drift: {unchanged}"
    );
    // Flux's own history of the Kustomization: one entry per digest of the
    // applied manifests, newest first, each counting its reconciles (a
    // reconcile at an interval may be in flight: Ready Unknown).
    let last = commits.last().unwrap();
    let ks = g
        .flux
        .get(&g.client, KUSTOMIZATION, "rotations")
        .await
        .unwrap();
    assert_eq!(ks["status"]["lastAppliedRevision"], flux::revision(last));
    assert_ne!(condition(&ks, "Ready").0, "False", "{}", ks["status"]);
    let history = ks["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let entry = |h: &Value| {
        let revision = h["metadata"]["revision"].as_str().unwrap_or_default();
        (
            revision.to_string(),
            h["totalReconciliations"].as_u64().unwrap_or(0),
        )
    };
    let history: Vec<(String, u64)> = history.iter().map(entry).collect();
    eprintln!("the Kustomization's history (revision, reconciles), newest first: {history:?}");
    let revisions: Vec<String> = history.iter().map(|(r, _)| r.clone()).collect();
    let mut want: Vec<String> = commits.iter().map(|c| flux::revision(c)).collect();
    want.reverse();
    assert_eq!(revisions, want, "one digest of the manifests per commit");
    for s in seen.iter().filter(|s| s.settled.is_some()) {
        assert_eq!(s.kstatus.0, "Current", "kstatus while {s:?}");
    }
    let in_flight = |s: &&Seen| s.stage != "Stable" && s.kstatus.0 == "Current";
    assert!(
        seen.iter().any(|s| in_flight(&s)),
        "kstatus never saw a cycle in flight"
    );
}

/// Deleting the Kustomization prunes the rotation (keyrotor's finalizer
/// runs while the operator still does); deleting the HelmRelease uninstalls
/// the operator.
async fn delete_flux_objects(g: &mut GitOps, deploy: &str, operator_ns: &str) {
    let limit = Duration::from_secs(120);
    g.flux.delete(KUSTOMIZATION, "rotations");
    g.flux
        .wait_gone(&g.client, KUSTOMIZATION, "rotations", limit)
        .await;
    let api: Api<ApiKeyRotation> = Api::namespaced(g.client.clone(), &g.ns);
    wait_gone(&api, "api", "the rotation pruned", LIMIT).await;
    g.flux.delete(HELM_RELEASE, "keyrotor");
    g.flux
        .wait_gone(&g.client, HELM_RELEASE, "keyrotor", limit)
        .await;
    let left = g.cluster.kubectl(&["get", deploy, "-n", operator_ns], None);
    assert!(
        !left.status.success(),
        "the operator outlived its HelmRelease"
    );
    g.flux.delete(GIT_REPOSITORY, "platform");
}

#[tokio::test]
async fn flux_waits_for_keyrotor_to_observe_a_spec_and_fails_a_stalled_or_invalid_rotation_by_name()
{
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let flux_ns = cluster.namespace("e2e-flux-health").await;
    let ns = cluster.namespace("e2e-flux-health-rotations").await;
    let mut g = GitOps::start(cluster, &flux_ns.name, &ns.name).await;
    let commit = commit_rotation(&g.git, &rotation("api", None, 0), "a rotation");
    let recorder = g.record_api();
    g.flux.apply(&g.git_repository());
    g.flux.apply(&g.kustomization("20s"));

    // Applied before keyrotor runs: the CRD defaults
    // status.observedGeneration to 0, so kstatus says InProgress
    // (LatestGenerationNotObserved) and the health check waits, then times
    // out naming the rotation; once keyrotor runs, the next reconcile passes.
    let operator = waits_for_keyrotor(&mut g, &commit, "before keyrotor ran", 1).await;

    // A spec keyrotor has not observed (it is stopped): the same.
    drop(operator);
    let request = rotation("api", Some("git-2"), 0);
    let commit = commit_rotation(&g.git, &request, "rotate api while keyrotor is down");
    let operator = waits_for_keyrotor(&mut g, &commit, "while keyrotor is down", 2).await;

    stalled_and_invalid(&mut g, request).await;
    drop(operator);
    let seen = recorder.stop().await;
    print_rows(
        "stalled and invalid: kstatus and the Kustomization per stage",
        by_stage(&seen),
    );
    for want in ["InProgress", "Current", "Failed"] {
        let shown = seen.iter().any(|s| s.kstatus.0 == want);
        assert!(shown, "kstatus never called api {want}");
    }
}

/// The Kustomization's health check times out at `commit` waiting for
/// rotation `api`, which keyrotor has not observed (`when`: it is not
/// running); once keyrotor runs, the rotation is Stable at `version` and
/// the next reconcile passes. The running operator.
async fn waits_for_keyrotor(g: &mut GitOps, commit: &str, when: &str, version: u64) -> Operator {
    let timeout = format!("timed out {when}");
    let k = g.wait(&timeout, |k| timed_out(k, commit, "api")).await;
    eprintln!("{when}: Kustomization Ready {:?}", condition(&k, "Ready"));
    let operator = Operator::watching(g.cluster, &g.ns, "flux-health");
    g.wait_stable(version).await;
    g.wait("Ready at the commit", |k| ready_at(k, commit)).await;
    operator
}

/// Whether the Kustomization's health check for `commit` timed out waiting
/// for rotation `name` (kstatus InProgress).
fn timed_out(k: &Value, commit: &str, name: &str) -> bool {
    let why = "timeout waiting for";
    health_check_failed(k, commit, (name, "InProgress"), why)
}

/// Whether the Kustomization's health check for `commit` failed at once on
/// rotation `name` (kstatus Failed: keyrotor's Stalled condition).
fn failed(k: &Value, commit: &str, name: &str) -> bool {
    let why = "failed early due to stalled resources";
    health_check_failed(k, commit, (name, "Failed"), why)
}

/// Whether the Kustomization's health check for `commit` failed, Flux's
/// message saying `why` and naming rotation `name` with kstatus `kstatus`.
fn health_check_failed(k: &Value, commit: &str, (name, kstatus): (&str, &str), why: &str) -> bool {
    let (status, reason, message) = condition(k, "Ready");
    k["status"]["lastAttemptedRevision"] == flux::revision(commit).as_str()
        && status == "False"
        && reason == "HealthCheckFailed"
        && message.contains(why)
        && message.contains(&format!("/{name} status: '{kstatus}'"))
}

/// A rotation asked for in Git that no verifier can confirm (keyrotor
/// holds it: NoConsumers), then one keyrotor refuses (its presenter Secret
/// is named like one of its version Secrets, which the CRD cannot tell):
/// each fails the health check at once (Flux fails fast on kstatus Failed),
/// naming the rotation; keyrotor's Stalled condition says why. Fixed in
/// Git, the Kustomization is Ready again; removed from Git, the invalid
/// rotation is pruned.
async fn stalled_and_invalid(g: &mut GitOps, live: Value) {
    let stalls = rotation("api", Some("git-stalls"), 1);
    let commit = commit_rotation(&g.git, &stalls, "rotate api, with a verifier required");
    let k = g
        .wait("failed: api stalled", |k| failed(k, &commit, "api"))
        .await;
    eprintln!("stalled: Kustomization Ready {:?}", condition(&k, "Ready"));
    let api: Api<ApiKeyRotation> = Api::namespaced(g.client.clone(), &g.ns);
    let stalled = api.get("api").await.unwrap();
    let c = stalled.status.unwrap();
    let c = c.condition(keyrotor::conditions::types::STALLED).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "NoConsumers")
    );
    let mut fixed = live;
    fixed["spec"]["rotationRequest"] = "git-stalls".into();
    let commit = commit_rotation(&g.git, &fixed, "no verifier required");
    g.wait_stable(3).await;
    g.wait("Ready at the fix", |k| ready_at(k, &commit)).await;

    let mut invalid = rotation("invalid", None, 0);
    invalid["spec"]["secrets"]["presenter"] = "invalid-v9".into();
    let commit = commit_rotation(&g.git, &invalid, "a rotation keyrotor refuses");
    let k = g
        .wait("failed: invalid", |k| failed(k, &commit, "invalid"))
        .await;
    eprintln!("invalid: Kustomization Ready {:?}", condition(&k, "Ready"));
    g.git.remove("rotations/invalid.yaml");
    let commit = g.git.commit("remove it");
    g.wait("Ready without it", |k| ready_at(k, &commit)).await;
    wait_gone(&api, "invalid", "invalid pruned", LIMIT).await;
}
