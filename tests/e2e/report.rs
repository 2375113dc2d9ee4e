//! Scenario 3: Report mode with the real reporter. Each kwok pod gets a
//! `keyrotor-sidecar reporter` process (the binary pods run) authenticated
//! by a token bound to that pod; the test plays the kubelet's part (kwok
//! mounts nothing): on every Secret change it swaps the pod's volume
//! directory the way kubelet does. The admission policy from deploy/
//! refuses a report about another pod.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyrotor::wire::{self as k, RevisionReport};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use super::cluster::{self, Cluster, client_for};
use super::observer::Observer;
use super::operator::{Operator, logs_of};
use super::scenario::*;
use super::volume::Volume;

/// A kwok pod, its volume directory, and its reporter process.
struct Consumer {
    name: String,
    secret: String,
    volume: Volume,
    kubeconfig: PathBuf,
    reporter: Child,
    log: PathBuf,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.reporter.kill();
        let _ = self.reporter.wait();
    }
}

async fn consumer(cluster: &Cluster, ns: &str, name: &str, secret: &str) -> Consumer {
    let client = cluster.client().await;
    let pods: Api<Pod> = Api::namespaced(client, ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": pod_spec(secret, Some("app")),
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let token = cluster.ok(&[
        "create",
        "token",
        "app",
        "-n",
        ns,
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        name,
        "--bound-object-uid",
        &pod.uid().unwrap(),
        "--duration",
        "1h",
    ]);
    let kubeconfig = cluster.dir.join(format!("{ns}-{name}.kubeconfig"));
    cluster.write_kubeconfig(&kubeconfig, token.trim());
    let volume = Volume::new(&format!("{ns}-{name}"));
    let log = cluster.dir.join(format!("reporter-{ns}-{name}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let reporter = Command::new(keyrotor_testsupport::binaries::sidecar())
        .args([
            "reporter",
            "--poll-seconds",
            "1",
            "--max-backoff-seconds",
            "2",
        ])
        .arg("--dir")
        .arg(&volume.dir)
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", name)
        .env("POD_NAMESPACE", ns)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    Consumer {
        name: name.into(),
        secret: secret.into(),
        volume,
        kubeconfig,
        reporter,
        log,
    }
}

/// What kubelet does for these pods: every change of a mounted Secret is
/// swapped into each pod's volume, pod by pod, a little apart.
async fn kubelet(client: kube::Client, ns: String, mut consumers: Vec<Consumer>) {
    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    let mut events = watcher::watcher(secrets, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(ev) = events.next().await {
        let (Ok(Event::Apply(s)) | Ok(Event::InitApply(s))) = ev else {
            continue;
        };
        let files: BTreeMap<String, Vec<u8>> = s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for c in consumers.iter_mut().filter(|c| c.secret == s.name_any()) {
            tokio::time::sleep(Duration::from_millis(150)).await;
            c.volume.publish(&files);
        }
    }
}

#[tokio::test]
async fn report_mode_with_the_reporter_and_the_admission_policy() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-report").await;
    let client = cluster.client().await;
    // The app's ServiceAccount with the reporter Role the docs ship.
    let rbac = std::fs::read_to_string(cluster::repo().join("examples/reporter-rbac.yaml"))
        .unwrap()
        .replace("namespace: shop", &format!("namespace: {}", ns.name))
        .replace("orders-api", "app");
    cluster.ok(&["create", "serviceaccount", "app", "-n", &ns.name]);
    cluster.ok_stdin(&["apply", "-f", "-"], &rbac);

    let observer = Observer::start(client.clone(), &ns.name).await;
    let mut operator = Operator::watching(cluster, &ns.name, "report");
    let mut consumers = Vec::new();
    for (pod, secret) in [
        ("server-0", "api-verifier"),
        ("server-1", "api-verifier"),
        ("client-0", "api-key"),
        ("client-1", "api-key"),
    ] {
        consumers.push(consumer(cluster, &ns.name, pod, secret).await);
    }
    let kubeconfigs: BTreeMap<String, PathBuf> = consumers
        .iter()
        .map(|c| (c.name.clone(), c.kubeconfig.clone()))
        .collect();
    let logs: Vec<PathBuf> = consumers.iter().map(|c| c.log.clone()).collect();
    let kubelet = tokio::spawn(kubelet(client.clone(), ns.name.clone(), consumers));

    let name = "api";
    apply(
        &client,
        &ns.name,
        &rotation(&ns.name, name, report(), report()),
    )
    .await;
    wait_stable(&client, &ns.name, name, 1, Duration::from_secs(120)).await;
    request_rotation(&client, &ns.name, name, "first").await;
    wait_stable(&client, &ns.name, name, 2, Duration::from_secs(180)).await;

    // Every pod reported, through its own reporter.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for (pod, role) in [("server-0", "verifier"), ("client-0", "presenter")] {
        let p = pods.get(pod).await.unwrap();
        assert!(
            p.annotations().contains_key(&k::report(name, role)),
            "{pod} never reported"
        );
    }

    // A token bound to client-0 may not report about server-0...
    let as_client0 = client_for(&kubeconfigs["client-0"]).await;
    let their_pods: Api<Pod> = Api::namespaced(as_client0, &ns.name);
    let (key, value) = RevisionReport(999).annotation(name, k::ROLE_VERIFIER);
    let forged = json!({"metadata": {"annotations": {key: value}}});
    let err = their_pods
        .patch("server-0", &PatchParams::default(), &Patch::Merge(&forged))
        .await
        .expect_err("a report about another pod was accepted");
    assert!(
        err.to_string().contains("a pod may annotate only itself"),
        "unexpected refusal: {err}"
    );
    // ...nor change anything but keyrotor annotations on itself.
    let relabel = json!({"metadata": {"labels": {"app": "other"}}});
    let err = their_pods
        .patch("client-0", &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .expect_err("a pod relabelled itself");
    assert!(
        err.to_string().contains("labels"),
        "unexpected refusal: {err}"
    );

    check_history(&observer, name);
    kubelet.abort();
    let _ = kubelet.await; // drops the consumers: reporters are killed
    let mut all_logs = logs_of(&[&operator]);
    for l in logs {
        all_logs.push((
            l.display().to_string(),
            std::fs::read_to_string(&l).unwrap(),
        ));
    }
    assert_no_key_material(cluster, &ns.name, &observer, &all_logs);
    operator.terminate();
    observer.stop();
}
