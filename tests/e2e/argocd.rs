//! keyrotor under a real Argo CD (v3.6.2, tests/cluster/argocd): its repo
//! server and application controller sync from a local Git repository, with
//! keyrotor's health check installed by the documented patch of argocd-cm.
//! One Application installs the chart (deploy/argocd/application.yaml,
//! pointed at this repository and this cluster), another syncs
//! ApiKeyRotations from plain manifests. Rotations are asked for in Git
//! (`spec.rotationRequest`) and complete; the Applications stay Synced
//! through them (keyrotor's own writes are no diff, so self-heal never
//! syncs again); Argo CD computes each rotation's health with the shipped
//! Lua: Progressing until keyrotor has acted on the spec and through a
//! cycle (the message names the stage), Healthy when Stable, Degraded when
//! stalled or invalid; a spec the CRD refuses shows its refusal in the
//! Application. The health seen per stage is printed (--nocapture).

use std::time::Duration;

use keyrotor::api::ApiKeyRotation;
use keyrotor_testsupport::e2e::argocd::{
    ArgoCd, IN_CLUSTER, Recorder, Seen, drift, health_by_stage, resource, synced_at,
};
use keyrotor_testsupport::e2e::git::GitRepo;
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};

use super::cluster::{self, Cluster, repo};
use super::gitops::{
    cluster_values, commit_rotation, operator_ready, print_rows, rotate_imperatively, rotation,
    write_rotation,
};
use super::observer::Observer;
use super::operator::Operator;
use super::realnode::{operator_log, real_nodes, release_image};
use super::scenario::{
    assert_no_key_material, check_history, create_deployment, deployment, get, wait_gone,
    wait_stable,
};

/// How long a commit may take to be synced, or a rotation to show a state.
const LIMIT: Duration = Duration::from_secs(90);

/// One scenario's Argo CD, the repository it syncs from, and the namespace
/// its rotations go to.
struct GitOps {
    cluster: &'static Cluster,
    client: Client,
    argocd: ArgoCd,
    git: GitRepo,
    ns: String,
}

impl GitOps {
    /// Records how Application `rotations` shows rotation `api`, per look.
    fn record_api(&self) -> Recorder {
        let (client, argocd) = (self.client.clone(), &self.argocd.namespace);
        Recorder::start(client, argocd, "rotations", &self.ns, "api")
    }

    async fn start(cluster: &'static Cluster, argocd_ns: &str, ns: &str) -> GitOps {
        let argocd = ArgoCd::start(cluster, argocd_ns).await;
        let git = GitRepo::init(&argocd.dir.join("repo"));
        GitOps {
            cluster,
            client: cluster.client().await,
            argocd,
            git,
            ns: ns.to_string(),
        }
    }

    /// The Application `rotations`, syncing rotations/ into the scenario's
    /// namespace with automated sync, prune and self-heal.
    fn rotations_application(&self) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {
                "name": "rotations", "namespace": self.argocd.namespace,
                "finalizers": ["resources-finalizer.argocd.argoproj.io"],
            },
            "spec": {
                "project": "default",
                "source": {"repoURL": self.git.url(), "targetRevision": "main", "path": "rotations"},
                "destination": {"server": IN_CLUSTER, "namespace": self.ns},
                "syncPolicy": {"automated": {"prune": true, "selfHeal": true}},
            },
        })
    }

    /// Waits (within [`LIMIT`]) until Application `app` satisfies `done`.
    async fn wait(&mut self, app: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.argocd.wait(&self.client, app, what, LIMIT, done).await
    }

    async fn wait_stable(&self, version: u64) {
        wait_stable(&self.client, &self.ns, "api", version, LIMIT).await;
    }
}

/// deploy/argocd/application.yaml as shipped, pointed at `git` (which holds
/// charts/keyrotor at the same path) and at namespace `operator_ns`,
/// watching `watch`; with the values this cluster needs (as
/// realnode::helm_install sets them): the real node's network (no CNI) and
/// taint, the API server's address (no kube-proxy), a free admin port, one
/// replica, the suite's CRD.
fn chart_application(argocd: &ArgoCd, git: &GitRepo, operator_ns: &str, watch: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("deploy/argocd/application.yaml")).unwrap();
    let mut app: Value = serde_yaml::from_str(&text).unwrap();
    app["metadata"]["namespace"] = argocd.namespace.clone().into();
    let source = &mut app["spec"]["source"];
    assert_eq!(source["path"], "charts/keyrotor", "{text}");
    source["repoURL"] = git.url().into();
    source["helm"]["releaseName"] = format!("keyrotor-{operator_ns}").into();
    let values = source["helm"]["valuesObject"].as_object_mut().unwrap();
    cluster_values(values, watch);
    assert_eq!(app["spec"]["destination"]["server"], IN_CLUSTER);
    app["spec"]["destination"]["namespace"] = operator_ns.into();
    // The example labels the namespace for the restricted Pod Security
    // profile, which forbids the hostNetwork this cluster's pods need.
    let sync = app["spec"]["syncPolicy"].as_object_mut().unwrap();
    sync.remove("managedNamespaceMetadata");
    app
}

/// Argo CD's health of ApiKeyRotation `name`: (status, message).
fn health(app: &Value, name: &str) -> (String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    resource(app, "ApiKeyRotation", name)
        .map(|r| (text(&r["health"]["status"]), text(&r["health"]["message"])))
        .unwrap_or_default()
}

/// Synced at `commit`, with Argo CD's health of `api` Healthy and Stable.
fn stable_at(commit: &str) -> impl Fn(&Value) -> bool + '_ {
    move |a| synced_at(a, commit) && health(a, "api").1.starts_with("Stable:")
}

/// The revisions of the Application's sync history, oldest first.
fn history(app: &Value) -> Vec<String> {
    let revision = |e: &Value| e["revision"].as_str().unwrap_or_default().to_string();
    app["status"]["history"]
        .as_array()
        .map(|h| h.iter().map(revision).collect())
        .unwrap_or_default()
}

/// Prints what Argo CD showed per stage (for the record) and checks that
/// the Application stayed Synced whenever it was to.
fn report(scenario: &str, seen: &[Seen]) {
    print_rows(
        &format!("{scenario}: Argo CD's health of the rotation per stage"),
        health_by_stage(seen),
    );
    let drifted = drift(seen);
    let settled = seen.iter().filter(|s| s.settled.is_some()).count();
    eprintln!(
        "{scenario}: {} looks, {settled} at a synced commit, {} of them not Synced at it",
        seen.len(),
        drifted.len()
    );
    assert!(
        drifted.is_empty(),
        "the Application left Synced without a commit: {:?}",
        &drifted[..drifted.len().min(5)]
    );
}

#[tokio::test]
async fn the_operator_installed_by_argo_cd_runs_rotations_asked_for_in_git_and_both_applications_stay_synced()
 {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let image = release_image(cluster);
    let argocd_ns = cluster.namespace("e2e-argocd-gitops").await;
    let operator_ns = cluster.namespace("e2e-argocd-gitops-operator").await;
    let ns = cluster.namespace("e2e-argocd-gitops-rotations").await;
    let mut g = GitOps::start(cluster, &argocd_ns.name, &ns.name).await;
    g.git
        .copy_dir(&repo().join("charts/keyrotor"), "charts/keyrotor");
    let first = commit_rotation(&g.git, &rotation("api", None, 0), "keyrotor and a rotation");
    let chart = chart_application(&g.argocd, &g.git, &operator_ns.name, &ns.name);
    g.argocd.apply(&chart);
    g.argocd.apply(&g.rotations_application());

    // The operator becomes ready through Argo CD, from the chart's default
    // image (the release image); the rotation from Git is published.
    let done = |a: &Value| synced_at(a, &first) && a["status"]["health"]["status"] == "Healthy";
    let limit = Duration::from_secs(240);
    g.argocd
        .wait(&g.client, "keyrotor", "Synced and Healthy", limit, done)
        .await;
    let deploy = operator_ready(cluster, &operator_ns.name, image, "Argo CD");
    g.wait("rotations", "the first commit synced", |a| {
        synced_at(a, &first)
    })
    .await;
    g.wait_stable(1).await;
    g.wait("rotations", "api Healthy and Stable", stable_at(&first))
        .await;

    let observer = Observer::start(g.client.clone(), &ns.name).await;
    let recorder = g.record_api();
    let commits = rotate_in_git(&mut g, &recorder, first).await;
    // `kubectl keyrotor rotate` sets an annotation Git does not have: no
    // diff, no sync; then two of the controller's refresh periods.
    rotate_imperatively(&g.client, &ns.name, "api", "imperative-1").await;
    g.wait_stable(5).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let seen = recorder.stop().await;
    report("rotations asked for in Git", &seen);
    no_drift(&mut g, &commits, &seen).await;

    check_history(&observer, "api");
    let mut logs = g.argocd.logs();
    logs.push(operator_log(cluster, &operator_ns.name));
    assert_no_key_material(cluster, &ns.name, &observer, &logs);
    observer.stop();
    delete_applications(&mut g, &deploy, &operator_ns.name).await;
}

/// Three rotations asked for in Git, each synced, then completed (Stable
/// at the next version, and Argo CD says so); every commit, oldest first.
async fn rotate_in_git(g: &mut GitOps, recorder: &Recorder, first: String) -> Vec<String> {
    recorder.settle(Some(&first));
    let mut commits = vec![first];
    for version in 2..=4u64 {
        recorder.settle(None);
        let request = format!("git-{version}");
        let r = rotation("api", Some(&request), 0);
        let commit = commit_rotation(&g.git, &r, &format!("rotate api (version {version})"));
        g.wait("rotations", "the commit synced", |a| synced_at(a, &commit))
            .await;
        recorder.settle(Some(&commit));
        g.wait_stable(version).await;
        g.wait("rotations", "api Healthy and Stable", stable_at(&commit))
            .await;
        commits.push(commit);
    }
    commits
}

/// Both Applications stayed Synced and were synced once per commit (the
/// chart's once): self-heal found nothing of keyrotor's writes to put back.
/// Through every cycle Argo CD saw it converging: Progressing, never
/// Degraded.
async fn no_drift(g: &mut GitOps, commits: &[String], seen: &[Seen]) {
    let last = commits.last().unwrap().as_str();
    let rotations = g.argocd.get(&g.client, "rotations").await.unwrap();
    assert!(synced_at(&rotations, last), "{}", rotations["status"]);
    assert_eq!(
        history(&rotations),
        commits,
        "syncs of Application rotations"
    );
    // The chart's Application follows the repository's head (every commit
    // is a new revision of it) without a sync: nothing of it changed.
    let chart = g.argocd.get(&g.client, "keyrotor").await.unwrap();
    assert_eq!(chart["status"]["sync"]["status"], "Synced");
    assert_eq!(chart["status"]["sync"]["revision"], last);
    assert_eq!(history(&chart), commits[..1], "the chart was synced again");
    // Argo CD computes health as it applies a commit, before keyrotor has
    // seen it (Progressing, waiting for keyrotor), then Progressing with the
    // stage until the cycle ends (its health may trail the stage keyrotor
    // has written by a refresh), then Healthy.
    let waiting = "Waiting for keyrotor to observe the latest spec";
    for s in seen {
        let (status, message) = (&s.health.0, &s.health.1);
        let ok = match status.as_str() {
            "Healthy" => message.starts_with("Stable:"),
            "Progressing" => message == waiting || message.starts_with("Rotating ("),
            _ => false,
        };
        assert!(ok, "Argo CD showed {status} ({message}) while {s:?}");
    }
    let in_flight = |s: &&Seen| {
        s.stage != "Stable" && s.health.0 == "Progressing" && s.health.1.starts_with("Rotating (")
    };
    assert!(
        seen.iter().any(|s| in_flight(&s)),
        "Argo CD never showed a cycle in flight as Progressing"
    );
}

/// Deleting the Applications deletes what they synced: the rotation first
/// (keyrotor's finalizer runs while the operator still does), then the
/// operator.
async fn delete_applications(g: &mut GitOps, deploy: &str, operator_ns: &str) {
    let limit = Duration::from_secs(120);
    g.argocd.delete("rotations");
    g.argocd.wait_gone(&g.client, "rotations", limit).await;
    let api: Api<ApiKeyRotation> = Api::namespaced(g.client.clone(), &g.ns);
    let left = api.get_opt("api").await.unwrap();
    assert!(left.is_none(), "the rotation outlived its Application");
    g.argocd.delete("keyrotor");
    g.argocd.wait_gone(&g.client, "keyrotor", limit).await;
    let left = g.cluster.kubectl(&["get", deploy, "-n", operator_ns], None);
    assert!(
        !left.status.success(),
        "the operator outlived its Application"
    );
}

#[tokio::test]
async fn argo_cd_shows_stalled_and_invalid_rotations_degraded_and_a_spec_the_crd_refuses_in_the_application()
 {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let argocd_ns = cluster.namespace("e2e-argocd-health").await;
    let ns = cluster.namespace("e2e-argocd-health-rotations").await;
    let mut g = GitOps::start(cluster, &argocd_ns.name, &ns.name).await;
    let mut commit = commit_rotation(&g.git, &rotation("api", None, 0), "a rotation");
    let recorder = g.record_api();
    g.argocd.apply(&g.rotations_application());
    // Synced before keyrotor runs (its own Application syncs later, say):
    // Progressing until keyrotor has acted on the spec.
    let waiting = (
        "Progressing".to_string(),
        "Waiting for keyrotor to observe the latest spec".to_string(),
    );
    g.wait("rotations", "api Progressing", |a| {
        synced_at(a, &commit) && health(a, "api") == waiting
    })
    .await;
    let _operator = Operator::watching(cluster, &ns.name, "argocd-health");
    g.wait_stable(1).await;
    g.wait("rotations", "api Healthy and Stable", stable_at(&commit))
        .await;

    // A rotation asked for in Git that no verifier can confirm: keyrotor
    // holds it (NoConsumers); Argo CD shows it Degraded, and the
    // Application with it. Fixed in Git, the cycle finishes.
    let stalls = rotation("api", Some("git-stalls"), 1);
    commit = commit_rotation(&g.git, &stalls, "rotate api, with a verifier required");
    g.wait("rotations", "api Degraded (NoConsumers)", |a| {
        let (status, message) = health(a, "api");
        synced_at(a, &commit)
            && status == "Degraded"
            && message.starts_with("NoConsumers:")
            && a["status"]["health"]["status"] == "Degraded"
    })
    .await;
    let fixed = rotation("api", Some("git-stalls"), 0);
    commit = commit_rotation(&g.git, &fixed, "no verifier required");
    g.wait_stable(2).await;
    g.wait("rotations", "api Healthy and Stable", stable_at(&commit))
        .await;

    degraded_from_the_start(&mut g).await;
    refused_by_the_crd(&mut g, &fixed).await;
    let seen = recorder.stop().await;
    report("stalled, invalid and refused", &seen);
    for want in ["Progressing", "Healthy", "Degraded"] {
        let shown = seen.iter().any(|s| s.health.0 == want);
        assert!(shown, "Argo CD never showed api {want}");
    }
}

/// Two rotations that need a person from the start: one keyrotor refuses
/// (its presenter Secret is named like one of its version Secrets, which
/// the CRD cannot tell), and one whose first key a verifier pod never
/// confirms (no reporter runs: kwok plays the pod) within its
/// `progressDeadline`. Both Degraded, with the reason; removed from Git,
/// both are pruned and keyrotor's finalizer lets them go.
async fn degraded_from_the_start(g: &mut GitOps) {
    let mut invalid = rotation("invalid", None, 0);
    invalid["spec"]["secrets"]["presenter"] = "invalid-v9".into();
    write_rotation(&g.git, &invalid);
    let mut unconfirmed = rotation("unconfirmed", None, 0);
    unconfirmed["spec"]["progressDeadline"] = "5s".into();
    write_rotation(&g.git, &unconfirmed);
    let server = deployment(&g.ns, "unconfirmed-server", 1, "unconfirmed-verifier");
    create_deployment(&g.client, &server).await;
    let commit = g.git.commit("two rotations that need a person");
    let degraded = |a: &Value, name: &str, reason: &str| {
        let (status, message) = health(a, name);
        status == "Degraded" && message.starts_with(reason)
    };
    let app = g
        .wait("rotations", "both Degraded", |a| {
            synced_at(a, &commit)
                && degraded(a, "invalid", "InvalidSpec:")
                && degraded(a, "unconfirmed", "VerifiersStalled:")
        })
        .await;
    for name in ["invalid", "unconfirmed"] {
        eprintln!("Argo CD's health of {name}: {:?}", health(&app, name));
    }
    g.git.remove("rotations/invalid.yaml");
    g.git.remove("rotations/unconfirmed.yaml");
    let commit = g.git.commit("remove them");
    g.wait("rotations", "both pruned", |a| {
        let gone = |name| resource(a, "ApiKeyRotation", name).is_none();
        synced_at(a, &commit) && gone("invalid") && gone("unconfirmed")
    })
    .await;
    let api: Api<ApiKeyRotation> = Api::namespaced(g.client.clone(), &g.ns);
    for name in ["invalid", "unconfirmed"] {
        wait_gone(&api, name, &format!("{name} deleted"), LIMIT).await;
    }
}

/// A commit the API server refuses (a CEL rule of the CRD): the sync fails
/// with the API server's message in the Application's status (Argo CD
/// retries the operation, saying so, before it gives up), and nothing
/// reaches keyrotor: the rotation keeps its spec and its keys. `live` is
/// the rotation as last synced.
async fn refused_by_the_crd(g: &mut GitOps, live: &Value) {
    let before = get(&g.client, &g.ns, "api").await;
    let mut bad = live.clone();
    bad["spec"]["gracePeriod"] = json!({"minimum": "2h", "maximum": "1h"});
    let commit = commit_rotation(&g.git, &bad, "a grace period the CRD refuses");
    let rule = "gracePeriod.minimum must not exceed gracePeriod.maximum";
    let app = g
        .wait("rotations", "the sync refused", |a| {
            let op = &a["status"]["operationState"];
            let failed = op["syncResult"]["resources"].as_array().is_some_and(|rs| {
                rs.iter().any(|r| {
                    r["name"] == "api"
                        && r["status"] == "SyncFailed"
                        && r["message"].as_str().unwrap_or_default().contains(rule)
                })
            });
            op["syncResult"]["revision"] == commit.as_str()
                && failed
                && op["message"].as_str().unwrap_or_default().contains(rule)
        })
        .await;
    let op = &app["status"]["operationState"];
    eprintln!(
        "Argo CD's status of the refused sync: phase {}, message {}, resources {}",
        op["phase"], op["message"], op["syncResult"]["resources"]
    );
    assert_eq!(app["status"]["sync"]["status"], "OutOfSync");
    let after = get(&g.client, &g.ns, "api").await;
    assert_eq!(after.spec.grace_period, before.spec.grace_period);
    assert_eq!(after.metadata.generation, before.metadata.generation);
    let current = |r: &ApiKeyRotation| r.status.as_ref().and_then(|s| s.current_version);
    assert_eq!(current(&after), current(&before), "the keys changed");
}
