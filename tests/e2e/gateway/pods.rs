//! The gateway pods of the scenario: nginx, Envoy or Traefik in front of the
//! `keyrotor-sidecar verifier` sidecar and `keyrotor sample-app verifier`
//! (the API), in one pod on the real node. Each gateway runs its example's
//! configuration and command line (keyrotor_testsupport::gateways), with
//! ports of its own (hostNetwork: the pods share the node's loopback).
//! Traefik reads its ForwardAuth Middleware and IngressRoute from the API
//! server, as it does in a cluster; only the route's backend is the API in
//! its pod (a file-provider service), because the test node has no pod
//! network and an EndpointSlice may not hold a loopback address.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use keyrotor_testsupport::eventually;
use keyrotor_testsupport::gateways::{self as g, Ports};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::super::cluster::Cluster;
use super::super::realnode::*;

pub(crate) const NGINX: &str = "keyrotor.dev/nginx:e2e";
const ENVOY: &str = "keyrotor.dev/envoy:e2e";
const TRAEFIK: &str = "keyrotor.dev/traefik:e2e";
/// Where the gateways' configuration files are mounted.
const CONFIG: &str = "/etc/gateway";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Nginx,
    Envoy,
    Traefik,
}

impl Kind {
    pub(super) const ALL: [Kind; 3] = [Kind::Nginx, Kind::Envoy, Kind::Traefik];

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Envoy => "envoy",
            Kind::Traefik => "traefik",
        }
    }

    /// How it asks the verifier, for what the test prints.
    pub(super) fn check(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx auth_request",
            Kind::Envoy => "Envoy ext_authz",
            Kind::Traefik => "Traefik ForwardAuth",
        }
    }
}

/// One gateway pod (a Deployment of one replica).
pub(super) struct Gateway {
    pub(super) kind: Kind,
    /// The Deployment's name and its pods' `app` label: `<kind>-<i>`.
    pub(super) name: String,
    pub(super) ports: Ports,
    /// The sidecar's admin address (metrics).
    pub(super) admin: u16,
}

impl Gateway {
    pub(super) fn new(kind: Kind, i: usize) -> Gateway {
        Gateway {
            kind,
            name: format!("{}-{i}", kind.name()),
            ports: Ports {
                gateway: free_port(),
                verifier: free_port(),
                app: free_port(),
            },
            admin: free_port(),
        }
    }

    /// Its configuration file in the ConfigMap `gateways`: name and text.
    fn config(&self) -> (String, String) {
        match self.kind {
            Kind::Nginx => (format!("{}.conf", self.name), g::nginx_conf(self.ports)),
            Kind::Envoy => (format!("{}.yaml", self.name), g::envoy_yaml(self.ports)),
            // The file provider's part: the API this pod runs, as service `api`.
            Kind::Traefik => {
                let url = format!("http://127.0.0.1:{}", self.ports.app);
                let api = json!({"http": {"services": {"api": {"loadBalancer": {"servers": [{"url": url}]}}}}});
                (format!("{}.yaml", self.name), api.to_string())
            }
        }
    }

    /// The gateway's container: its example's command line, with this
    /// pod's configuration file (and for Traefik, its address and namespace).
    fn container(&self, ns: &str) -> Value {
        let (file, _) = self.config();
        let file = format!("{CONFIG}/{file}");
        let (image, program, args) = match self.kind {
            Kind::Nginx => {
                let args = g::program_args(g::NGINX_EXAMPLE, "nginx");
                let args = replace_in(&args, "/etc/gateway/nginx.conf", &file);
                (NGINX, "/usr/sbin/nginx", args)
            }
            Kind::Envoy => {
                let args = g::program_args(g::ENVOY_EXAMPLE, "envoy");
                let args = replace_in(&args, "/etc/gateway/envoy.yaml", &file);
                (ENVOY, "/usr/local/bin/envoy", args)
            }
            Kind::Traefik => {
                let args = g::program_args(g::TRAEFIK_EXAMPLE, "traefik");
                let address = format!("=127.0.0.1:{}", self.ports.gateway);
                let mut args =
                    replace_in(&replace_in(&args, "=:8000", &address), "gateway-demo", ns);
                args.push(format!("--providers.file.filename={file}"));
                (TRAEFIK, "/usr/local/bin/traefik", args)
            }
        };
        json!({
            "name": self.kind.name(), "image": image, "imagePullPolicy": "Never",
            "command": [program], "args": args,
            "env": api_env(), "securityContext": restricted(),
            "volumeMounts": [
                {"name": "config", "mountPath": CONFIG, "readOnly": true},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        })
    }

    /// The pod: the gateway, the verifier sidecar and the app, sharing the
    /// verifier Secret.
    pub(super) fn template(&self, ns: &str) -> Value {
        let env = pod_env();
        let security = restricted();
        let keys = json!({"name": "keys", "mountPath": "/keys", "readOnly": true});
        #[rustfmt::skip]
        let verifier = json!([
            "verifier", "--dir", "/keys",
            "--listen", format!("127.0.0.1:{}", self.ports.verifier),
            "--admin-address", format!("127.0.0.1:{}", self.admin),
            "--usage-interval-seconds", "2",
        ]);
        let containers = json!([
            self.container(ns),
            {
                "name": "verifier", "image": IMAGE, "imagePullPolicy": "Never",
                "command": [SIDECAR], "args": verifier, "env": env.clone(),
                "securityContext": security.clone(), "volumeMounts": [keys.clone()],
            },
            {
                "name": "app", "image": IMAGE, "imagePullPolicy": "Never",
                "args": verifier_args(self.ports.app), "env": env,
                "securityContext": security, "volumeMounts": [keys],
            },
        ]);
        let volumes = json!([
            {"name": "keys", "projected": {"sources": [{"secret": {"name": "api-verifier"}}]}},
            {"name": "config", "configMap": {"name": "gateways"}},
            {"name": "tmp", "emptyDir": {}},
        ]);
        real_pod(&self.name, containers, volumes)
    }
}

fn replace_in(args: &[String], from: &str, to: &str) -> Vec<String> {
    assert!(
        args.iter().any(|a| a.contains(from)),
        "{from:?} is not in the example's command line {args:?}"
    );
    args.iter().map(|a| a.replace(from, to)).collect()
}

/// What the gateways need before their pods start: their images on the
/// node, the ConfigMap `gateways`, and for Traefik its CRDs, the example's
/// Role for the pods' ServiceAccount, and the example's Middleware and
/// IngressRoute.
pub(super) async fn prepare(
    cluster: &Cluster,
    client: &kube::Client,
    ns: &str,
    gateways: &[Gateway],
) {
    for kind in Kind::ALL {
        if gateways.iter().any(|gw| gw.kind == kind) {
            pack(cluster, &[std::ffi::OsStr::new(kind.name())]);
        }
    }
    let config: serde_json::Map<String, Value> = gateways
        .iter()
        .map(|gw| {
            let (name, text) = gw.config();
            (name, text.into())
        })
        .collect();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "gateways", "namespace": ns},
        "data": config,
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let traefik: Vec<&Gateway> = gateways
        .iter()
        .filter(|gw| gw.kind == Kind::Traefik)
        .collect();
    // One Traefik reads the namespace's Middleware and IngressRoute: more
    // would each route through the first one's sidecar.
    assert!(traefik.len() <= 1, "one Traefik gateway per namespace");
    if let Some(gw) = traefik.first() {
        traefik_objects(cluster, ns, gw).await;
    }
}

/// Traefik's CRDs (cluster-wide, left installed), its RBAC, and the
/// example's Middleware and IngressRoute, routing to the API in `gw`'s pod.
async fn traefik_objects(cluster: &Cluster, ns: &str, gw: &Gateway) {
    let crds = g::traefik_crds().unwrap_or_else(|e| panic!("Traefik's CRDs: {e}"));
    cluster.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crds.to_str().unwrap(),
    ]);
    #[rustfmt::skip]
    cluster.ok(&[
        "wait", "--for", "condition=Established", "--timeout", "60s",
        "crd/middlewares.traefik.io", "crd/ingressroutes.traefik.io",
    ]);
    let backend = json!([{"name": "api@file", "kind": "TraefikService"}]);
    let objects = [
        g::traefik_role(ns),
        g::role_binding(ns, "traefik", "app"),
        g::traefik_middleware(ns, gw.ports.verifier),
        g::traefik_route(ns, backend),
    ];
    for object in objects {
        let text = object.to_string();
        // A CRD just established may take a moment to be served.
        eventually(
            "Traefik's objects to apply",
            Duration::from_secs(30),
            async || {
                let out = cluster.kubectl(&["apply", "-f", "-"], Some(&text));
                out.status.success().then_some(())
            },
        )
        .await;
    }
}
