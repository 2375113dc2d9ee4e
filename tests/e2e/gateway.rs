//! A gateway verifies rotating keys with no code in the API behind it, on
//! the real node: Debian's nginx with `auth_request` to the `keyrotor-sidecar
//! verifier` sidecar, in front of `keyrotor sample-app verifier`, in one
//! pod per gateway. Presenters call through nginx every 25 ms while
//! keyrotor rotates back to back: nothing may be refused. A presenter
//! pinned to the first key shows up, after its retirement, in the
//! sidecar's retired-version metric and as a Warning event on the rotation.
//! Then the naive overwrite on the same pods refuses some.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use keyrotor::api::ApiKeyRotation;
use keyrotor::wire as k;
use keyrotor_testsupport::eventually;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use super::cluster;
use super::observer::Observer;
use super::operator::{Operator, keyrotor, logs_of};
use super::realnode::{self, *};
use super::scenario::*;

pub(super) const NGINX: &str = "keyrotor.dev/nginx:e2e";
const APP: &str = "keyrotor.dev/keyrotor:e2e";
const GATEWAYS: usize = 2;

/// The ports of one gateway pod (hostNetwork: each its own).
struct Ports {
    nginx: u16,
    verifier: u16,
    admin: u16,
    app: u16,
}

/// The start of every nginx.conf a gateway scenario writes: in the
/// foreground, one worker, temporary files where a non-root nginx may
/// write; the `http` block stays open for the scenario's servers.
pub(super) const NGINX_HEAD: &str = "daemon off;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path /tmp/body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
";

fn nginx_conf(p: &Ports) -> String {
    format!(
        r#"{head}  upstream keyrotor_verifier {{ server 127.0.0.1:{verifier}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{nginx};
    location / {{
      auth_request /_keyrotor;
      auth_request_set $key_version $upstream_http_x_keyrotor_version;
      proxy_set_header X-Key-Version $key_version;
      proxy_pass http://127.0.0.1:{app};
    }}
    location = /_keyrotor {{
      internal;
      proxy_pass http://keyrotor_verifier;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-For $remote_addr;
    }}
  }}
}}
"#,
        head = NGINX_HEAD,
        verifier = p.verifier,
        nginx = p.nginx,
        app = p.app,
    )
}

/// nginx, the verifier sidecar and the app, sharing the verifier Secret.
fn gateway_template(i: usize, p: &Ports) -> Value {
    let env = pod_env();
    let security = restricted();
    let keys = json!({"name": "keys", "mountPath": "/keys", "readOnly": true});
    #[rustfmt::skip]
    let verifier = json!([
        "verifier", "--dir", "/keys",
        "--listen", format!("127.0.0.1:{}", p.verifier),
        "--admin-address", format!("127.0.0.1:{}", p.admin),
        "--usage-interval-seconds", "2",
    ]);
    let containers = json!([
        {
            "name": "nginx", "image": NGINX, "imagePullPolicy": "Never",
            "args": ["-c", format!("/etc/gateway/nginx-{i}.conf")],
            "securityContext": security.clone(),
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/gateway", "readOnly": true},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        },
        {
            "name": "verifier", "image": APP, "imagePullPolicy": "Never",
            "command": [SIDECAR], "args": verifier, "env": env.clone(), "securityContext": security.clone(),
            "volumeMounts": [keys.clone()],
        },
        {
            "name": "app", "image": APP, "imagePullPolicy": "Never",
            "args": ["sample-app", "verifier", "--dir", "/keys", "--listen", format!("127.0.0.1:{}", p.app)],
            "env": env, "securityContext": security,
            "volumeMounts": [keys],
        },
    ]);
    let volumes = json!([
        {"name": "keys", "projected": {"sources": [{"secret": {"name": "api-verifier"}}]}},
        {"name": "config", "configMap": {"name": "gateway-nginx"}},
        {"name": "tmp", "emptyDir": {}},
    ]);
    real_pod(&format!("gateway-{i}"), containers, volumes)
}

fn presenters(secret: &str, targets: &[u16], records: &Path) -> Value {
    template("presenter", secret, json!(presenter_args(targets)), records)
}

/// Requests refused or unanswered among `all` (anything but 200).
pub(super) fn failed(all: &[(u64, u64)]) -> usize {
    all.iter().filter(|(s, _)| *s != 200).count()
}

#[tokio::test]
async fn nginx_with_the_verifier_sidecar_refuses_nothing_and_names_a_client_that_missed_the_rotation()
 {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let ns = cluster.namespace("e2e-gateway").await;
    let client = cluster.client().await;
    let records = prepare(cluster, &ns.name, keyrotor(), "records");
    let pinned_records = records_dir(cluster, &format!("pinned-{}", ns.name));
    pack(cluster, &[std::ffi::OsStr::new("nginx")]);
    let operator = Operator::watching(cluster, &ns.name, "keyrotor-gateway");
    let observer = Observer::start(client.clone(), &ns.name).await;

    let mut r = rotation(&ns.name, ROTATION, report(), report());
    r["spec"]["gracePeriod"]["minimum"] = "1s".into();
    apply(&client, &ns.name, &r).await;
    wait_stable(&client, &ns.name, ROTATION, 1, Duration::from_secs(60)).await;

    // A presenter pinned to version 1: a copy of the presenter Secret that
    // keyrotor does not know, so nothing waits for it.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    // It names another rotation, so its reports are not the rotation's.
    let mut data = secrets
        .get("api-key")
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    data.insert(
        "rotation".into(),
        k8s_openapi::ByteString(b"pinned".to_vec()),
    );
    let pinned: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "pinned-key", "namespace": ns.name},
        "data": serde_json::to_value(&data).unwrap(),
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &pinned)
        .await
        .unwrap();

    let ports: Vec<Ports> = (0..GATEWAYS)
        .map(|_| Ports {
            nginx: free_port(),
            verifier: free_port(),
            admin: free_port(),
            app: free_port(),
        })
        .collect();
    let mut config = serde_json::Map::new();
    for (i, p) in ports.iter().enumerate() {
        config.insert(format!("nginx-{i}.conf"), nginx_conf(p).into());
    }
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "gateway-nginx", "namespace": ns.name},
        "data": config,
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let create = async |d: Deployment| {
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    };
    for (i, p) in ports.iter().enumerate() {
        create(realnode::deployment(
            &ns.name,
            &format!("gateway-{i}"),
            1,
            gateway_template(i, p),
        ))
        .await;
    }
    let through_nginx: Vec<u16> = ports.iter().map(|p| p.nginx).collect();
    create(realnode::deployment(
        &ns.name,
        "presenter",
        2,
        presenters("api-key", &through_nginx, &records),
    ))
    .await;
    let mut pinned_t = presenters("pinned-key", &through_nginx[..1], &pinned_records);
    pinned_t["metadata"]["labels"]["app"] = "pinned".into();
    create(realnode::deployment(&ns.name, "pinned", 1, pinned_t)).await;

    eventually(
        "traffic through nginx",
        Duration::from_secs(120),
        async || {
            let ok = requests(&records, 0)
                .iter()
                .filter(|(s, _)| *s == 200)
                .count();
            (ok > 40).then_some(())
        },
    )
    .await;

    // keyrotor: rotations back to back.
    let since = now_ms();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..ROTATIONS {
        let t = Instant::now();
        request_rotation(&client, &ns.name, ROTATION, &format!("r{i}")).await;
        wait_stable(&client, &ns.name, ROTATION, i + 2, Duration::from_secs(180)).await;
        slowest = slowest.max(t.elapsed());
    }
    let mean = started.elapsed() / ROTATIONS as u32;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ours = requests(&records, since);
    let _ = writeln!(
        std::io::stderr(),
        "nginx auth_request + keyrotor verifier on real pods: {ROTATIONS} rotations, mean cycle {mean:.2?}, slowest {slowest:.2?}; {} requests, {} refused or unanswered",
        ours.len(),
        failed(&ours)
    );
    check_history(&observer, ROTATION);
    assert_eq!(failed(&ours), 0, "requests through nginx were refused");
    assert!(ours.len() > 200, "too little traffic: {}", ours.len());

    // The pinned presenter: refused since v1 retired, as a retired version.
    let pinned_refused = requests(&pinned_records, since)
        .iter()
        .filter(|(s, _)| *s == 401)
        .count();
    assert!(pinned_refused > 0, "the pinned presenter was never refused");
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", ports[0].admin).parse().unwrap();
    let metrics = keyrotor::ops::admin::get(admin, "/metrics")
        .await
        .unwrap()
        .1;
    let retired = format!(
        r#"keyrotor_verifier_retired_presented_total{{namespace="{}",name="api",version="1"}} "#,
        ns.name
    );
    assert!(metrics.contains(&retired), "no retired count in\n{metrics}");
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let warning = eventually(
        "a RetiredKeyPresented event",
        Duration::from_secs(30),
        async || {
            let list = events.list(&ListParams::default()).await.ok()?.items;
            list.into_iter()
                .find(|e| e.reason.as_deref() == Some("RetiredKeyPresented"))
                .and_then(|e| e.note)
        },
    )
    .await;
    let _ = writeln!(std::io::stderr(), "event: {warning}");
    assert!(
        warning.contains("retired version(s) 1") && warning.contains("127.0.0.1"),
        "{warning}"
    );
    // `kubectl keyrotor status` shows what the endpoints checked.
    let status = eventually(
        "status shows the retired version",
        Duration::from_secs(30),
        async || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-keyrotor"))
                .args(["status", ROTATION, "-n", &ns.name])
                .env("KUBECONFIG", &cluster.kubeconfig)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.contains("Retired versions still presented")
                .then_some(text)
        },
    )
    .await;
    let _ = writeln!(std::io::stderr(), "kubectl keyrotor status:\n{status}");
    assert!(
        status.contains(&format!("Traffic at {GATEWAYS} verifier endpoint(s)")),
        "{status}"
    );
    deployments
        .delete("pinned", &DeleteParams::default())
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    eventually(
        "the pinned presenter to go",
        Duration::from_secs(60),
        async || {
            let pinned = ListParams::default().labels("app=pinned");
            pods.list(&pinned).await.is_ok_and(|l| l.items.is_empty())
        },
    )
    .await;
    // I4 for the sidecar too: its log names versions and a client, no key.
    let mut logs = logs_of(&[&operator]);
    for i in 0..GATEWAYS {
        let deploy = format!("deploy/gateway-{i}");
        let log = cluster.ok(&["logs", &deploy, "-c", "verifier", "-n", &ns.name]);
        assert!(log.contains("verifier started"), "{log}");
        logs.push((format!("verifier of gateway-{i}"), log));
    }
    assert_no_key_material(cluster, &ns.name, &observer, &logs);

    // The naive overwrite on the same pods.
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &ns.name);
    r["spec"]["deletionPolicy"] = "Orphan".into();
    apply(&client, &ns.name, &r).await;
    rotations
        .delete(ROTATION, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(
        &rotations,
        ROTATION,
        "the rotation to go",
        Duration::from_secs(60),
    )
    .await;
    let revision: u64 = secrets.get("api-verifier").await.unwrap().annotations()[k::REVISION]
        .parse()
        .unwrap();
    let since = now_ms();
    let mut naive = Vec::new();
    for round in 1..=3u64 {
        let revision = revision + round;
        overwrite(&secrets, ROTATION, 1000 + round, revision).await;
        eventually(
            "pods to load the overwrite",
            Duration::from_secs(200),
            async || all_report(&pods, ROTATION, revision).await.then_some(()),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        naive = requests(&records, since);
        if failed(&naive) > 0 {
            break;
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "naive overwrite behind the same nginx: {} requests, {} refused",
        naive.len(),
        failed(&naive)
    );
    assert!(failed(&naive) > 0, "the naive overwrite refused nothing");
    observer.stop();
}
