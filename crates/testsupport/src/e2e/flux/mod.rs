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
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use serde_json::Value;

pub use record::{Applied, Recorder, Seen, applies, by_stage, drift};

use super::cluster::{Cluster, repo};
use super::realnode::free_port;
use crate::{eventually, listening};

/// A Flux kind: its API group, version, kind and plural.
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
}

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
    procs: Vec<Proc>,
}

struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// tests/cluster/flux/build's directory: the three controllers and the
/// CRDs (built once, cached across runs).
pub fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new(repo().join("tests/cluster/flux/build"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/cluster/flux/build (needs Go)");
        assert!(out.status.success(), "building Flux failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
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
            dir,
            cluster,
            procs: Vec::new(),
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
        f.spawn("source-controller", source);
        listening("Flux's artifact server", storage).await;
        let kustomize = f.controller(bin, "kustomize-controller");
        f.spawn("kustomize-controller", kustomize);
        let helm = f.controller(bin, "helm-controller");
        f.spawn("helm-controller", helm);
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

    fn spawn(&mut self, name: &'static str, mut cmd: Command) {
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start Flux's {name}: {e}"));
        self.procs.push(Proc { name, child, log });
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
        let what = format!("{}/{name}", kind.resource());
        self.cluster
            .ok(&["delete", &what, "-n", &self.namespace, "--wait=false"]);
    }

    /// The Flux object `kind`/`name` as the API server has it, if it exists.
    pub async fn get(&self, client: &Client, kind: Kind, name: &str) -> Option<Value> {
        let api = objects(client, &self.namespace, kind);
        let obj = api.get_opt(name).await.unwrap()?;
        Some(serde_json::to_value(obj).unwrap())
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
        let deadline = Instant::now() + limit;
        loop {
            self.check_running();
            let obj = self.get(client, kind, name).await;
            if let Some(obj) = obj.as_ref().filter(|o| done(o)) {
                return obj.clone();
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {limit:?} waiting for {} {name}: {what}; status: {}\n{}",
                    kind.kind,
                    obj.map(|o| o["status"].to_string()).unwrap_or_default(),
                    self.log_tails(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits (bounded) until `kind`/`name` is gone (its finalizer ran).
    pub async fn wait_gone(&mut self, client: &Client, kind: Kind, name: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Some(obj) = self.get(client, kind, name).await {
            self.check_running();
            assert!(
                Instant::now() < deadline,
                "{} {name} is still there after {limit:?}: {}\n{}",
                kind.kind,
                obj["status"],
                self.log_tails(30)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Fails if a Flux controller has exited.
    pub fn check_running(&mut self) {
        let mut gone = Vec::new();
        for p in &mut self.procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                gone.push(format!("{} exited ({status})", p.name));
            }
        }
        assert!(
            gone.is_empty(),
            "{}\n{}",
            gone.join("; "),
            self.log_tails(40)
        );
    }

    /// Each controller's log (name, text), for the scan for key material.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.procs
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p.log).unwrap_or_default();
                (format!("Flux {}", p.name), text)
            })
            .collect()
    }

    /// kustomize-controller's log.
    pub fn kustomize_log(&self) -> String {
        let log = self.dir.join("kustomize-controller.log");
        std::fs::read_to_string(log).unwrap_or_default()
    }

    fn log_tails(&self, lines: usize) -> String {
        self.logs()
            .iter()
            .map(|(name, text)| {
                let all: Vec<&str> = text.lines().collect();
                let tail = all[all.len().saturating_sub(lines)..].join("\n");
                format!("--- {name} (last {lines} lines)\n{tail}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Flux {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(60));
        }
        for p in self.procs.iter_mut().rev() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        // No controller is left to honour Flux's finalizers.
        for kind in [KUSTOMIZATION, HELM_RELEASE, HELM_CHART, GIT_REPOSITORY] {
            let what = kind.resource();
            let args = ["get", &what, "-n", &self.namespace, "-o", "name"];
            let out = self.cluster.kubectl(&args, None);
            for obj in String::from_utf8_lossy(&out.stdout).lines() {
                let finalizers = r#"{"metadata":{"finalizers":null}}"#;
                let args = [
                    "patch",
                    obj,
                    "-n",
                    &self.namespace,
                    "--type=merge",
                    "-p",
                    finalizers,
                ];
                let _ = self.cluster.kubectl(&args, None);
            }
        }
    }
}

/// The objects of Flux kind `kind` in `ns`.
fn objects(client: &Client, ns: &str, kind: Kind) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(kind.group, kind.version, kind.kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, kind.plural);
    Api::namespaced_with(client.clone(), ns, &ar)
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
    for kind in [GIT_REPOSITORY, HELM_CHART, KUSTOMIZATION, HELM_RELEASE] {
        let crd = kind.resource();
        let path = r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#;
        let args = ["get", "crd", &crd, "-o", path];
        eventually(
            &format!("CRD {crd} established"),
            Duration::from_secs(60),
            async || cluster.kubectl(&args, None).stdout == b"True",
        )
        .await;
    }
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
