//! Custom resources of the tools the scenarios run for real (Argo CD's
//! Applications, Flux's sources, Kustomizations and HelmReleases), read as
//! JSON through a dynamic kind: getting one, waiting (bounded) until one
//! satisfies a test or is gone while the processes acting on it are
//! watched, deleting one as kubectl does, their CRDs established, and their
//! finalizers released once no controller is left to honour them.

use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::cluster::Cluster;
use super::procs::Procs;
use crate::eventually;

/// A kind of custom resource: its API group, version, kind and plural.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl Kind {
    /// `plural.group`: the CRD's name, and what kubectl takes.
    pub fn resource(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    /// The objects of this kind in namespace `ns`.
    pub fn api(&self, client: &Client, ns: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(self.group, self.version, self.kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, self.plural);
        Api::namespaced_with(client.clone(), ns, &ar)
    }
}

/// One object: `kind`/`name` in namespace `namespace`, whether or not it
/// exists.
pub struct Object<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    pub kind: Kind,
    pub name: &'a str,
}

/// The log lines of each process a failure's message ends with.
const TAIL: usize = 40;

impl<'a> Object<'a> {
    pub fn new(client: &'a Client, namespace: &'a str, kind: Kind, name: &'a str) -> Object<'a> {
        Object {
            client,
            namespace,
            kind,
            name,
        }
    }

    /// The object as the API server has it, if it exists.
    pub async fn get(&self) -> Option<Value> {
        let api = self.kind.api(self.client, self.namespace);
        let obj = api.get_opt(self.name).await.unwrap()?;
        Some(serde_json::to_value(obj).unwrap())
    }

    /// Waits (bounded by `limit`, looking every 250 ms) until the object
    /// satisfies `done`; gives it. A timeout or one of `procs` that stopped
    /// fails with the object's status and the processes' last log lines.
    pub async fn wait(
        &self,
        procs: &mut Procs,
        what: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            procs.check_running();
            let obj = self.get().await;
            if let Some(obj) = obj.as_ref().filter(|o| done(o)) {
                return obj.clone();
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {limit:?} waiting for {} {}: {what}; status: {}\n{}",
                    self.kind.kind,
                    self.name,
                    obj.map(|o| o["status"].to_string()).unwrap_or_default(),
                    procs.log_tails(TAIL)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits (bounded by `limit`) until the object is gone (its finalizer
    /// ran), failing as [`Object::wait`] does.
    pub async fn wait_gone(&self, procs: &mut Procs, limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Some(obj) = self.get().await {
            procs.check_running();
            assert!(
                Instant::now() < deadline,
                "{} {} is still there after {limit:?}: {}\n{}",
                self.kind.kind,
                self.name,
                obj["status"],
                procs.log_tails(TAIL)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Deletes `kind`/`name` of namespace `ns` as a user would (`kubectl
/// delete`), without waiting for its finalizers.
pub fn delete(cluster: &Cluster, ns: &str, kind: Kind, name: &str) {
    let what = format!("{}/{name}", kind.resource());
    cluster.ok(&["delete", &what, "-n", ns, "--wait=false"]);
}

/// Waits (up to a minute each) until the CRDs named `crds` are established.
/// Polled: `kubectl wait` fails at once on a CRD with no status yet.
pub async fn established(cluster: &Cluster, crds: &[String]) {
    for crd in crds {
        let path = r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#;
        let args = ["get", "crd", crd, "-o", path];
        eventually(
            &format!("CRD {crd} established"),
            Duration::from_secs(60),
            async || cluster.kubectl(&args, None).stdout == b"True",
        )
        .await;
    }
}

/// Drops the finalizers of every object of `kinds` in `ns`: once their
/// controllers are stopped nothing else would, and the namespace could not
/// go.
pub fn release_finalizers(cluster: &Cluster, ns: &str, kinds: &[Kind]) {
    for kind in kinds {
        let what = kind.resource();
        let out = cluster.kubectl(&["get", &what, "-n", ns, "-o", "name"], None);
        for obj in String::from_utf8_lossy(&out.stdout).lines() {
            let finalizers = r#"{"metadata":{"finalizers":null}}"#;
            let args = ["patch", obj, "-n", ns, "--type=merge", "-p", finalizers];
            let _ = cluster.kubectl(&args, None);
        }
    }
}
