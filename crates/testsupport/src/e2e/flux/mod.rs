//! Flux for real (built by tests/cluster/flux/build): source-controller
//! v1.9.6, kustomize-controller v1.9.6 and helm-controller v1.4.5 as
//! processes on loopback against the test cluster, with Flux's CRDs. Each
//! controller watches only the scenario's Flux namespace
//! (`--watch-all-namespaces=false` and `RUNTIME_NAMESPACE`), so scenarios
//! side by side each have a Flux of their own; every address (metrics,
//! health, the artifact server) is a free port of 127.0.0.1, and no leader
//! election runs. Every process is started here and stopped by its PID when
//! the value is dropped; the Flux objects' finalizers are released then
//! too, since no controller is left to honour them.

mod record;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use kube::Client;
use serde_json::Value;

pub use record::{Applied, Recorder, Seen, applies, by_stage, drift};

use super::cluster::Cluster;
pub use super::objects::Kind;
use super::objects::{self, Object};
use super::procs::{self, Procs};
use super::realnode::free_port;
use crate::listening;

pub const GIT_REPOSITORY: Kind = Kind {
    group: "source.toolkit.fluxcd.io",
    version: "v1",
    kind: "GitRepository",
    plural: "gitrepositories",
};
pub const HELM_CHART: Kind = Kind {
    group: "source.toolkit.fluxcd.io",
    version: "v1",
    kind: "HelmChart",
    plural: "helmcharts",
};
pub const KUSTOMIZATION: Kind = Kind {
    group: "kustomize.toolkit.fluxcd.io",
    version: "v1",
    kind: "Kustomization",
    plural: "kustomizations",
};
pub const HELM_RELEASE: Kind = Kind {
    group: "helm.toolkit.fluxcd.io",
    version: "v2",
    kind: "HelmRelease",
    plural: "helmreleases",
};

pub struct Flux {
    /// Flux's namespace: its sources, Kustomizations and HelmReleases.
    pub namespace: String,
    /// Logs and the artifact storage.
    pub dir: PathBuf,
    cluster: &'static Cluster,
    procs: Procs,
}

/// tests/cluster/flux/build's directory: the three controllers and the
/// CRDs (built once, cached across runs).
pub fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| procs::build("tests/cluster/flux/build", "Flux"))
}

impl Flux {
    /// Flux's CRDs installed and its three controllers started for the
    /// (existing) namespace `namespace`.
    pub async fn start(cluster: &'static Cluster, namespace: &str) -> Flux {
        let bin = built();
        let dir = cluster.dir.join(format!("flux-{namespace}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        install_crds(cluster, bin).await;
        let mut f = Flux {
            namespace: namespace.to_string(),
            procs: Procs::new("Flux", &dir),
            dir,
            cluster,
        };
        // The artifact server: the other two fetch what it advertises.
        let storage = free_port();
        let mut source = f.controller(bin, "source-controller");
        source
            .arg(format!(
                "--storage-path={}",
                f.dir.join("storage").display()
            ))
            .arg(format!("--storage-addr=127.0.0.1:{storage}"))
            .arg(format!("--storage-adv-addr=127.0.0.1:{storage}"));
        f.procs.spawn("source-controller", source);
        listening("Flux's artifact server", storage).await;
        let kustomize = f.controller(bin, "kustomize-controller");
        f.procs.spawn("kustomize-controller", kustomize);
        let helm = f.controller(bin, "helm-controller");
        f.procs.spawn("helm-controller", helm);
        f
    }

    /// Controller `name` with what all three share: loopback addresses,
    /// no leader election, only Flux's namespace watched, the admin's
    /// kubeconfig, JSON logs (kustomize-controller's apply report is read
    /// from them).
    fn controller(&self, bin: &Path, name: &str) -> Command {
        let mut cmd = Command::new(bin.join(name));
        cmd.arg(format!("--metrics-addr=127.0.0.1:{}", free_port()))
            .arg(format!("--health-addr=127.0.0.1:{}", free_port()))
            .args([
                "--enable-leader-election=false",
                "--watch-all-namespaces=false",
            ])
            .args(["--log-encoding=json", "--log-level=info"])
            .env("RUNTIME_NAMESPACE", &self.namespace)
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .env("HOME", &self.dir)
            .env("TMPDIR", self.dir.join("tmp"));
        cmd
    }

    /// Applies `obj` (a Flux object, or any object) in Flux's namespace as
    /// a user would: `kubectl apply`.
    pub fn apply(&self, obj: &Value) {
        let text = serde_json::to_string(obj).unwrap();
        self.cluster
            .ok_stdin(&["apply", "-n", &self.namespace, "-f", "-"], &text);
    }

    /// Deletes the Flux object `kind`/`name` (its finalizer runs: a
    /// Kustomization with `prune` deletes what it applied, a HelmRelease
    /// uninstalls).
    pub fn delete(&self, kind: Kind, name: &str) {
        objects::delete(self.cluster, &self.namespace, kind, name);
    }

    /// The Flux object `kind`/`name` as the API server has it, if it exists.
    pub async fn get(&self, client: &Client, kind: Kind, name: &str) -> Option<Value> {
        Object::new(client, &self.namespace, kind, name).get().await
    }

    /// Waits (bounded) until `kind`/`name` satisfies `done`; gives it. A
    /// timeout or a controller that stopped fails with the object's status
    /// and the controllers' last log lines.
    pub async fn wait(
        &mut self,
        client: &Client,
        (kind, name): (Kind, &str),
        what: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let obj = Object::new(client, &self.namespace, kind, name);
        obj.wait(&mut self.procs, what, limit, done).await
    }

    /// Waits (bounded) until `kind`/`name` is gone (its finalizer ran).
    pub async fn wait_gone(&mut self, client: &Client, kind: Kind, name: &str, limit: Duration) {
        let obj = Object::new(client, &self.namespace, kind, name);
        obj.wait_gone(&mut self.procs, limit).await
    }

    /// Each controller's log (name, text), for the scan for key material.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.procs.logs()
    }

    /// kustomize-controller's log.
    pub fn kustomize_log(&self) -> String {
        let log = self.procs.log_path("kustomize-controller");
        std::fs::read_to_string(log).unwrap_or_default()
    }
}

impl Drop for Flux {
    fn drop(&mut self) {
        self.procs.stop();
        // No controller is left to honour Flux's finalizers.
        let kinds = [KUSTOMIZATION, HELM_RELEASE, HELM_CHART, GIT_REPOSITORY];
        objects::release_finalizers(self.cluster, &self.namespace, &kinds);
    }
}

/// Flux's CRDs (cluster-wide, server-side: they are large), established.
async fn install_crds(cluster: &Cluster, bin: &Path) {
    let crds = bin.join("crds");
    cluster.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crds.to_str().unwrap(),
    ]);
    let kinds = [GIT_REPOSITORY, HELM_CHART, KUSTOMIZATION, HELM_RELEASE];
    objects::established(cluster, &kinds.map(|k| k.resource())).await;
}
/// The condition `type_` of a Flux object: (status, reason, message).
pub fn condition(obj: &Value, type_: &str) -> (String, String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| (text(&c["status"]), text(&c["reason"]), text(&c["message"])))
        .unwrap_or_default()
}

/// Flux's name of a revision of branch main: `main@sha1:<commit>`.
pub fn revision(commit: &str) -> String {
    format!("main@sha1:{commit}")
}

/// Whether the object is Ready and has applied (or, for a HelmRelease,
/// installed from) the revision `commit` of the repository.
pub fn ready_at(obj: &Value, commit: &str) -> bool {
    condition(obj, "Ready").0 == "True"
        && obj["status"]["lastAppliedRevision"] == revision(commit).as_str()
        && obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
}
