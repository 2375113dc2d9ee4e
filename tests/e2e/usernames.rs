//! Scenario: user names (`spec.usernames`) on a real control plane. The API
//! server refuses a third name and a name a database would not take, with
//! the CRD's messages, and `kubectl explain` says what one and two names
//! mean. On a real node (tests/cluster/up --real-nodes 1), a pod mounts the
//! presenter Secret while the operator rotates alternating users: after
//! each rotation the pod's `/keys/username` names the user its
//! `/keys/version` was created for, and every recorded write of the
//! presenter Secret carried the name of the version in it.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::wire as k;
use keyrotor::wire::{USERNAME, USERNAME_FILE};
use keyrotor_testsupport::eventually;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::cluster;
use super::observer::Observer;
use super::operator::{Operator, keyrotor};
use super::realnode::{self, *};
use super::scenario::*;

const BLUE: &str = "app_blue";
const GREEN: &str = "app_green";
const NAME: &str = "db";

fn manifest(ns: &str, usernames: &str) -> String {
    format!(
        "apiVersion: keyrotor.dev/v1alpha1\nkind: ApiKeyRotation\nmetadata: {{name: {NAME}, namespace: {ns}}}\n\
         spec:\n  secrets: {{verifier: db-verifier, presenter: db-password}}\n  usernames: {usernames}\n"
    )
}

#[tokio::test]
async fn the_api_server_refuses_a_third_name_and_a_name_a_database_would_not_take() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-usernames-cel").await;
    for (names, says) in [
        (
            "[app_blue, app_green, app_red]",
            "must have at most 2 items",
        ),
        (
            "['app blue']",
            "usernames entries must start with a letter or '_'",
        ),
        ("[app_blue, app_blue]", "usernames lists a name twice"),
    ] {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&manifest(&ns.name, names)));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{names} was accepted");
        assert!(
            stderr.contains(says),
            "{names}: expected {says:?} in: {stderr}"
        );
    }
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        &manifest(&ns.name, "[app_blue, app_green]"),
    );
    let explain = cluster.ok(&["explain", "apikeyrotation.spec.usernames"]);
    let explain = explain.split_whitespace().collect::<Vec<_>>().join(" ");
    for says in [
        "One name: every version carries it",
        "Two names (alternating users",
        "A version keeps the name it was created with",
    ] {
        assert!(explain.contains(says), "explain lacks {says:?}: {explain}");
    }
}

/// A pod on the real node that mounts `secret` at /keys and does nothing
/// else (busybox `sleep`), with the reporter sidecar confirming what its
/// volume holds.
fn reader(secret: &str) -> serde_json::Value {
    let (env, security) = (pod_env(), restricted());
    let keys = json!({"name": "keys", "mountPath": "/keys", "readOnly": true});
    let containers = json!([
        {
            "name": "app", "image": IMAGE, "imagePullPolicy": "Never",
            "command": ["/bin/sh", "-c", "exec sleep 86400"],
            "securityContext": security.clone(), "volumeMounts": [keys.clone()],
        },
        {
            "name": "reporter", "image": IMAGE, "imagePullPolicy": "Never",
            "command": [SIDECAR],
            "args": ["reporter", "--dir", "/keys", "--poll-seconds", "1"],
            "env": env, "securityContext": security, "volumeMounts": [keys],
        },
    ]);
    let volumes =
        json!([{"name": "keys", "projected": {"sources": [{"secret": {"name": secret}}]}}]);
    real_pod("reader", containers, volumes)
}

#[tokio::test]
async fn alternating_users_reach_the_presenter_file_a_real_pod_mounts() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let ns = cluster.namespace("e2e-usernames").await;
    let client = cluster.client().await;
    prepare(cluster, &ns.name, keyrotor(), "records");
    let _operator = Operator::watching(cluster, &ns.name, "keyrotor-usernames");
    let observer = Observer::start(client.clone(), &ns.name).await;

    // No verifier pods here: the names are what this scenario is about.
    let mut r = rotation(&ns.name, NAME, json!({"minConsumers": 0}), report());
    r["spec"]["usernames"] = json!([BLUE, GREEN]);
    r["spec"]["gracePeriod"]["minimum"] = "1s".into();
    apply(&client, &ns.name, &r).await;
    wait_stable(&client, &ns.name, NAME, 1, Duration::from_secs(60)).await;
    let presenter = format!("{NAME}-key");
    Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .create(
            &PostParams::default(),
            &realnode::deployment(&ns.name, "reader", 1, reader(&presenter)),
        )
        .await
        .unwrap();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let mut seen = Vec::new();
    for v in 1..=4u64 {
        let started = Instant::now();
        if v > 1 {
            request_rotation(&client, &ns.name, NAME, &format!("r{v}")).await;
            wait_stable(&client, &ns.name, NAME, v, Duration::from_secs(180)).await;
        }
        let want = if v % 2 == 1 { BLUE } else { GREEN };
        let version = secrets.get(&k::version_secret_name(NAME, v)).await.unwrap();
        assert_eq!(
            version.annotations().get(USERNAME).map(String::as_str),
            Some(want),
            "version {v}'s Secret"
        );
        let read = format!("cat /keys/{}; echo; cat /keys/{USERNAME_FILE}", k::VERSION);
        let args = [
            "exec",
            "-n",
            &ns.name,
            "deploy/reader",
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            &read,
        ];
        let expected = format!("{v}\n{want}");
        let what = format!("the pod's mounted files to say version {v}, user {want}");
        eventually::eventually(&what, Duration::from_secs(120), async || {
            let out = cluster.kubectl(&args, None);
            (out.status.success() && String::from_utf8_lossy(&out.stdout) == expected).then_some(())
        })
        .await;
        seen.push(format!("v{v} {want} ({:.1?})", started.elapsed()));
        // As every real-pod stage: the next rotation starts once the pod
        // reports what its volume holds (keyrotor has seen it running).
        let status = get(&client, &ns.name, NAME).await.status.unwrap();
        let revision = status.revisions.unwrap().presenter;
        let lp = ListParams::default().labels("app=reader");
        eventually::eventually(
            "the reader to report",
            Duration::from_secs(60),
            async || {
                all_report_matching(&pods, &lp, NAME, revision)
                    .await
                    .then_some(())
            },
        )
        .await;
    }

    // Every write of the presenter Secret carried the name of its version.
    let mut names = BTreeMap::new();
    for v in 1..=4u64 {
        for s in observer.secret_states(&k::version_secret_name(NAME, v)) {
            names.insert(v, s.annotations().get(USERNAME).cloned());
        }
    }
    let states = observer.secret_states(&presenter);
    for s in &states {
        let data = s.data.clone().unwrap_or_default();
        let text = |f: &str| {
            data.get(f)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        };
        let Some(v) = text(k::VERSION).and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        assert_eq!(text(USERNAME_FILE), names[&v], "presenter at version {v}");
    }
    assert!(
        states.len() >= 4,
        "only {} presenter writes seen",
        states.len()
    );
    let _ = writeln!(
        std::io::stderr(),
        "alternating users on a real pod: the mounted files read {}; {} presenter writes, each with its version's user name",
        seen.join(", "),
        states.len()
    );
    check_history(&observer, NAME);
}
