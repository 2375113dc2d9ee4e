//! The gateway-namespace recipe on the real node: the cluster's ingress
//! checks keys with a keyrotor verifier running in the gateway's own
//! namespace (`gateway-e2e`), which mounts the copy keyrotor keeps there of
//! the verifier Secret of rotation `api` (namespace `orders-e2e-ingress`).
//! ingress-nginx itself is not available here, so Debian's nginx runs the
//! configuration ingress-nginx renders for `auth-url` (an internal
//! `location = /_external-auth-…` that `proxy_pass`es to the auth URL,
//! `auth_request` on the protected location, `auth-response-headers`),
//! without its Lua parts; the auth URL is the verifier pod's loopback port
//! (no kube-proxy here, so no Service address). Presenters at home call
//! through nginx every 25 ms while keyrotor rotates: nothing may be refused.

use std::io::Write;
use std::time::{Duration, Instant};

use hyper::header::AUTHORIZATION;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::cluster::{self, OPERATOR_NS, OPERATOR_SA};
use super::gateway::{NGINX, failed};
use super::namespaces::{accept_from, assert_quiet, revision, wait_copy, wait_found, wait_reports};
use super::observer::Observer;
use super::operator::{Operator, keyrotor, logs_of};
use super::realnode::{self, *};
use super::scenario::*;

const HOME: &str = "orders-e2e-ingress";
const GATEWAY: &str = "gateway-e2e";
const CYCLES: u64 = 3;

/// The start of the nginx.conf: in the foreground, one worker, temporary
/// files where a non-root nginx may write; the `http` block stays open for
/// the ingress's server.
const NGINX_HEAD: &str = "daemon off;
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

/// The loopback ports of the scenario (hostNetwork: each its own).
struct Ports {
    nginx: u16,
    /// The stand-in API behind the ingress.
    api: u16,
    verifier: u16,
    admin: u16,
}

/// What ingress-nginx renders for an Ingress of `/` (Prefix) annotated
/// `nginx.ingress.kubernetes.io/auth-url: http://<verifier>/` and
/// `auth-response-headers: X-Keyrotor-Version`, Lua left out; the
/// backend is a stand-in API that answers what it is given.
fn ingress_nginx_conf(p: &Ports) -> String {
    format!(
        r#"{head}  upstream upstream_balancer {{ server 127.0.0.1:{api}; }}
  server {{
    listen 127.0.0.1:{api};
    location / {{ return 200 "orders: key version $http_x_keyrotor_version\n"; }}
  }}
  server {{
    listen 127.0.0.1:{nginx};
    location = /_external-auth-Lw-Prefix {{
      internal;
      set $proxy_upstream_name "{HOME}-orders-80";
      proxy_pass_request_body     off;
      proxy_set_header            Content-Length          "";
      proxy_set_header            X-Forwarded-Proto       "";
      proxy_set_header            Host                    127.0.0.1;
      proxy_set_header            X-Original-URL          $scheme://$http_host$request_uri;
      proxy_set_header            X-Original-Method       $request_method;
      proxy_set_header            X-Sent-From             "nginx-ingress-controller";
      proxy_set_header            X-Real-IP               $remote_addr;
      proxy_set_header            X-Forwarded-For         $remote_addr;
      proxy_set_header            X-Auth-Request-Redirect $request_uri;
      proxy_buffering                         off;
      proxy_buffer_size                       4k;
      proxy_buffers                           4 4k;
      proxy_request_buffering                 on;
      proxy_http_version                      1.1;
      proxy_ssl_server_name       on;
      proxy_pass_request_headers  on;
      client_max_body_size        1m;
      set $target http://127.0.0.1:{verifier}/;
      proxy_pass $target;
    }}
    location / {{
      set $namespace      "{HOME}";
      set $ingress_name   "orders";
      set $service_name   "orders";
      set $service_port   "80";
      set $location_path  "/";
      set $proxy_upstream_name "{HOME}-orders-80";
      # this location requires authentication
      auth_request        /_external-auth-Lw-Prefix;
      auth_request_set    $auth_cookie $upstream_http_set_cookie;
      add_header          Set-Cookie $auth_cookie;
      auth_request_set $authHeader0 $upstream_http_x_keyrotor_version;
      proxy_set_header 'X-Keyrotor-Version' $authHeader0;
      client_max_body_size                    1m;
      proxy_set_header Host                   $host;
      proxy_set_header X-Real-IP              $remote_addr;
      proxy_set_header X-Forwarded-For        $remote_addr;
      proxy_http_version                      1.1;
      proxy_pass http://upstream_balancer;
    }}
  }}
}}
"#,
        head = NGINX_HEAD,
        api = p.api,
        nginx = p.nginx,
        verifier = p.verifier,
    )
}

/// The ingress (nginx, no Secret) and the verifier Service's pod (the
/// keyrotor verifier reading the verifier Secret's copy), in [`GATEWAY`].
async fn gateway(client: &kube::Client, p: &Ports) {
    let security = restricted();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "ingress-nginx", "namespace": GATEWAY},
        "data": {"nginx.conf": ingress_nginx_conf(p)},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), GATEWAY)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let nginx = json!([{
        "name": "nginx", "image": NGINX, "imagePullPolicy": "Never",
        "args": ["-c", "/etc/ingress/nginx.conf"],
        "securityContext": security.clone(),
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/ingress", "readOnly": true},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }]);
    let volumes = json!([
        {"name": "config", "configMap": {"name": "ingress-nginx"}},
        {"name": "tmp", "emptyDir": {}},
    ]);
    #[rustfmt::skip]
    let args = json!([
        "verifier", "--dir", "/keys",
        "--listen", format!("127.0.0.1:{}", p.verifier),
        "--admin-address", format!("127.0.0.1:{}", p.admin),
    ]);
    let verifier = json!([{
        "name": "verifier", "image": IMAGE, "imagePullPolicy": "Never",
        "command": [SIDECAR], "args": args, "env": pod_env(), "securityContext": security,
        "volumeMounts": [{"name": "keys", "mountPath": "/keys", "readOnly": true}],
    }]);
    let keys =
        json!([{"name": "keys", "projected": {"sources": [{"secret": {"name": "api-verifier"}}]}}]);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), GATEWAY);
    for (name, pod) in [
        ("ingress-nginx", real_pod("ingress-nginx", nginx, volumes)),
        (
            "keyrotor-verifier",
            real_pod("keyrotor-verifier", verifier, keys),
        ),
    ] {
        let d = realnode::deployment(GATEWAY, name, 1, pod);
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_ingress_nginx_auth_url_checks_keys_with_a_verifier_in_the_gateway_namespace() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    if !real_nodes(cluster) {
        return;
    }
    let home = cluster.namespace(HOME).await;
    let gateway_ns = cluster.namespace(GATEWAY).await;
    let client = cluster.client().await;
    let records = prepare(cluster, &home.name, keyrotor(), "records");
    prepare(cluster, &gateway_ns.name, keyrotor(), "records");
    pack(cluster, &[std::ffi::OsStr::new("nginx")]);
    accept_from(cluster, GATEWAY, HOME);
    let operator = Operator::watching(cluster, &format!("{HOME},{GATEWAY}"), "keyrotor-ingress");
    let observer = Observer::start_in(client.clone(), &[HOME, GATEWAY]).await;

    let mut r = rotation(HOME, ROTATION, report(), report());
    r["spec"]["gracePeriod"]["minimum"] = "1s".into();
    r["spec"]["consumers"]["verifiers"]["namespaces"] = json!([GATEWAY]);
    apply(&client, HOME, &r).await;
    wait_stable(&client, HOME, ROTATION, 1, Duration::from_secs(60)).await;
    wait_copy(&client, HOME, GATEWAY, "api-verifier", ROTATION).await;

    let p = Ports {
        nginx: free_port(),
        api: free_port(),
        verifier: free_port(),
        admin: free_port(),
    };
    gateway(&client, &p).await;
    let presenters = Consumers {
        name: "presenter",
        replicas: 2,
        secret: "api-key",
    };
    start_presenters(&client, HOME, &presenters, &[p.nginx], &records).await;
    let limit = Duration::from_secs(120);
    let v = revision(&client, HOME, "api-verifier").await;
    wait_reports(&client, GATEWAY, "keyrotor-verifier", ROTATION, v, limit).await;
    let pv = revision(&client, HOME, "api-key").await;
    wait_reports(&client, HOME, "presenter", ROTATION, pv, limit).await;
    wait_traffic(&records, 40).await;
    // The ingress does check: a key nobody issued is refused there.
    let ingress = format!("127.0.0.1:{}", p.nginx).parse().unwrap();
    let wrong = [(AUTHORIZATION, "Bearer not-a-key-anyone-issued")];
    let (status, _) = keyrotor_sidecar::http::get(ingress, "/", &wrong)
        .await
        .unwrap();
    assert_eq!(status, 401, "the ingress let an unknown key through");

    let since = now_ms();
    let started = Instant::now();
    for i in 0..CYCLES {
        request_rotation(&client, HOME, ROTATION, &format!("r{i}")).await;
        wait_stable(&client, HOME, ROTATION, i + 2, Duration::from_secs(180)).await;
    }
    let mean = started.elapsed() / CYCLES as u32;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ours = requests(&records, since);
    let _ = writeln!(
        std::io::stderr(),
        "ingress-nginx auth-url + keyrotor verifier in {GATEWAY}: {CYCLES} rotations, mean cycle \
         {mean:.2?}; {} requests, {} refused or unanswered",
        ours.len(),
        failed(&ours)
    );
    check_history(&observer, ROTATION);
    assert_eq!(
        failed(&ours),
        0,
        "requests through the ingress were refused"
    );
    assert!(ours.len() > 100, "too little traffic: {}", ours.len());
    wait_copy(&client, HOME, GATEWAY, "api-verifier", ROTATION).await;
    wait_found(cluster, HOME, ROTATION, &[(GATEWAY, 1, 0), (HOME, 0, 2)]).await;
    let user = format!("system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}");
    // Under traffic the verifier's usage reports (last-seen, each minute)
    // move status.traffic: a change, so a status write.
    assert_quiet(cluster, &user, &[HOME, GATEWAY], &["/status"]).await;
    // I4 for the verifier in the gateway namespace too.
    let mut logs = logs_of(&[&operator]);
    let log = cluster.ok(&["logs", "deploy/keyrotor-verifier", "-n", GATEWAY]);
    assert!(log.contains("verifier started"), "{log}");
    logs.push(("verifier in the gateway namespace".into(), log));
    for ns in [HOME, GATEWAY] {
        assert_no_key_material(cluster, ns, &observer, &logs);
    }
    observer.stop();
}
