//! Argo CD v3.6.2 for real (built by tests/cluster/argocd/build): Redis,
//! the repo server and the application controller as processes on loopback
//! against the test cluster, configured as Argo CD's install configures
//! them (its CRDs, its base configuration applied client-side, an AppProject
//! `default`, an installation ID as for several Argo CDs on one cluster)
//! and with keyrotor's health check added by the documented merge patch of
//! `argocd-cm`. The controller binds its metrics to
//! `0.0.0.0:8082`, so it runs in a network namespace of its own with only
//! loopback, reaching the API server, Redis and the repo server through
//! relays ([`netns`]). Every process is started here and stopped by its PID
//! when the value is dropped; the Applications' finalizers are released
//! then too, since no controller is left to honour them.

mod netns;
mod record;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use kube::Client;
use serde_json::{Value, json};

pub use record::{Recorder, Seen, drift, health_by_stage};

use super::cluster::{Cluster, repo};
use super::objects::{self, Kind, Object};
use super::procs::{self, Procs};
use super::realnode::free_port;
use crate::listening;

/// The cluster Applications name for the cluster Argo CD runs in.
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";

pub const APPLICATION: Kind = Kind {
    group: "argoproj.io",
    version: "v1alpha1",
    kind: "Application",
    plural: "applications",
};
const APP_PROJECT: Kind = Kind {
    group: "argoproj.io",
    version: "v1alpha1",
    kind: "AppProject",
    plural: "appprojects",
};

pub struct ArgoCd {
    /// Argo CD's namespace: its configuration and Applications.
    pub namespace: String,
    /// Logs, the repo server's scratch space, and room for a Git repository.
    pub dir: PathBuf,
    cluster: &'static Cluster,
    procs: Procs,
    relays: Vec<netns::Relay>,
    netns: Option<netns::Netns>,
}

/// tests/cluster/argocd/build's directory: the `argocd` binary, its CRDs
/// and base configuration (built once, cached across runs).
pub fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| procs::build("tests/cluster/argocd/build", "Argo CD"))
}

impl ArgoCd {
    /// Argo CD installed into the (existing) namespace `namespace` and its
    /// three processes started.
    pub async fn start(cluster: &'static Cluster, namespace: &str) -> ArgoCd {
        let bin = built();
        let dir = cluster.dir.join(format!("argocd-{namespace}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        install(cluster, namespace, bin).await;
        let mut a = ArgoCd {
            namespace: namespace.to_string(),
            procs: Procs::new("Argo CD", &dir),
            dir,
            cluster,
            relays: Vec::new(),
            netns: None,
        };
        let redis = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &redis.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&a.dir);
        a.procs.spawn("redis", cmd);
        listening("Argo CD's Redis", redis).await;
        let repo_server = free_port();
        let cmd = a.repo_server(bin, repo_server, redis);
        a.procs.spawn("repo-server", cmd);
        listening("Argo CD's repo server", repo_server).await;
        let ns = netns::Netns::new();
        for port in [api_port(cluster), redis, repo_server] {
            a.relays.push(ns.relay(port));
        }
        let controller = a.controller(&ns, bin, repo_server, redis);
        a.netns = Some(ns);
        a.procs.spawn("application-controller", controller);
        a
    }

    /// The repo server on the host's loopback: plain gRPC (`--disable-tls`
    /// takes `--client-ca-path ""` in v3.6), no GPG, its own scratch space
    /// and ask-pass socket, and on its PATH what it runs: git,
    /// git-verify-wrapper.sh (for every revision) and helm.
    fn repo_server(&self, bin: &Path, port: u16, redis: u16) -> Command {
        let helm = std::env::var("KEYROTOR_HELM").unwrap_or_else(|_| "helm".into());
        let helm_dir = Path::new(&helm).parent().unwrap_or(Path::new(""));
        let path = format!(
            "{}:{}:{}",
            bin.display(),
            helm_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(bin.join("argocd-repo-server"));
        cmd.args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--metrics-address", "127.0.0.1"])
            .args(["--metrics-port", &free_port().to_string()])
            .args(["--disable-tls", "--client-ca-path", ""])
            .args(["--redis", &format!("127.0.0.1:{redis}")])
            // A branch is resolved again after a second (Argo CD's
            // default waits for its reconciliation timeout, 3 min).
            .args(["--revision-cache-expiration", "1s"])
            .args(["--logformat", "text", "--parallelismlimit", "2"])
            .env("PATH", path)
            .env("ARGOCD_GPG_ENABLED", "false")
            .env("ARGOCD_ASK_PASS_SOCK", self.dir.join("askpass.sock"))
            .env("HOME", &self.dir)
            .env("TMPDIR", self.dir.join("tmp"));
        cmd
    }

    /// The application controller inside `ns`: the cluster it runs in is
    /// the test cluster (`ARGOCD_FAKE_IN_CLUSTER` with the admin's
    /// kubeconfig), the shard of replica 0, per-resource health kept in the
    /// Application's status, and Git looked at every 5 s.
    fn controller(&self, ns: &netns::Netns, bin: &Path, repo_server: u16, redis: u16) -> Command {
        let mut cmd = ns.command(&bin.join("argocd-application-controller"));
        cmd.args(["--namespace", &self.namespace])
            .arg("--kubeconfig")
            .arg(&self.cluster.kubeconfig)
            .args(["--redis", &format!("127.0.0.1:{redis}")])
            .args(["--repo-server", &format!("127.0.0.1:{repo_server}")])
            .args(["--repo-server-plaintext", "--persist-resource-health"])
            .args(["--app-resync", "5", "--app-resync-jitter", "0"])
            .args(["--status-processors", "4", "--operation-processors", "2"])
            .args(["--logformat", "text"])
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .env("ARGOCD_FAKE_IN_CLUSTER", "true")
            .env("HOSTNAME", "argocd-application-controller-0")
            .env("HOME", &self.dir)
            .env("TMPDIR", self.dir.join("tmp"));
        cmd
    }

    /// Applies `app` (an Application, or any object) as a user would:
    /// `kubectl apply`.
    pub fn apply(&self, app: &Value) {
        self.cluster
            .ok_stdin(&["apply", "-f", "-"], &serde_json::to_string(app).unwrap());
    }

    /// Deletes Application `name` (its finalizer, if it has one, deletes
    /// what it synced first).
    pub fn delete(&self, name: &str) {
        objects::delete(self.cluster, &self.namespace, APPLICATION, name);
    }

    /// Application `name` as the API server has it, if it exists.
    pub async fn get(&self, client: &Client, name: &str) -> Option<Value> {
        Object::new(client, &self.namespace, APPLICATION, name)
            .get()
            .await
    }

    /// Waits (bounded) until Application `name` satisfies `done`; gives it.
    /// A timeout or an Argo CD process that stopped fails with the
    /// Application's status and the processes' last log lines.
    pub async fn wait(
        &mut self,
        client: &Client,
        name: &str,
        what: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let app = Object::new(client, &self.namespace, APPLICATION, name);
        app.wait(&mut self.procs, what, limit, done).await
    }

    /// Waits (bounded) until Application `name` is gone (its finalizer
    /// deleted what it synced).
    pub async fn wait_gone(&mut self, client: &Client, name: &str, limit: Duration) {
        let app = Object::new(client, &self.namespace, APPLICATION, name);
        app.wait_gone(&mut self.procs, limit).await
    }

    /// Each process's log (name, text), for the scan for key material.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.procs.logs()
    }
}

impl Drop for ArgoCd {
    fn drop(&mut self) {
        // The controller first: nothing acts on the cluster after this.
        self.procs.stop();
        self.relays.clear();
        self.netns = None;
        // No controller is left to honour resources-finalizer.argocd.argoproj.io.
        objects::release_finalizers(self.cluster, &self.namespace, &[APPLICATION]);
    }
}

/// Argo CD's CRDs (cluster-wide), its base configuration in `ns` (applied
/// client-side, as its install manifests usually are), keyrotor's health
/// check by the documented command, and the AppProject `default`.
async fn install(cluster: &Cluster, ns: &str, bin: &Path) {
    let crds = bin.join("crds");
    // Server-side: the ApplicationSet CRD is too large for the client-side
    // last-applied annotation.
    cluster.ok(&["apply", "--server-side", "-f", crds.to_str().unwrap()]);
    let crds = [APPLICATION, APP_PROJECT].map(|k| k.resource());
    objects::established(cluster, &crds).await;
    let config = bin.join("config");
    cluster.ok(&["apply", "-n", ns, "-f", config.to_str().unwrap()]);
    // Scenarios run side by side, each with its own Argo CD on the one
    // cluster: an installation ID keeps each off the others' objects (its
    // tracking ids name Applications only, and two call theirs alike).
    let id = json!({"data": {"installationID": ns}}).to_string();
    cluster.ok(&[
        "patch",
        "configmap",
        "argocd-cm",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        &id,
    ]);
    let patch = health_patch_command(ns);
    let args: Vec<&str> = patch.iter().map(String::as_str).collect();
    cluster.ok(&args);
    let project = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    });
    cluster.ok_stdin(&["apply", "-f", "-"], &project.to_string());
}

/// The command deploy/argocd/health-patch.yaml documents in its header
/// (the one README.md and docs/argocd.md give), for Argo CD in `ns`;
/// kubectl's arguments.
pub fn health_patch_command(ns: &str) -> Vec<String> {
    let patch = std::fs::read_to_string(repo().join("deploy/argocd/health-patch.yaml")).unwrap();
    let command = patch
        .lines()
        .find_map(|l| l.strip_prefix("#   kubectl "))
        .expect("health-patch.yaml names its command");
    command
        .split_whitespace()
        .map(|a| if a == "argocd" { ns } else { a }.to_string())
        .collect()
}

/// The API server's port, from the admin kubeconfig.
fn api_port(cluster: &Cluster) -> u16 {
    let text = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    let kc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let server = kc["clusters"][0]["cluster"]["server"].as_str().unwrap();
    server.rsplit(':').next().unwrap().parse().unwrap()
}

/// The entry of `status.resources` for the object of `kind` and `name`:
/// its sync status and the health Argo CD computed for it.
pub fn resource<'a>(app: &'a Value, kind: &str, name: &str) -> Option<&'a Value> {
    app["status"]["resources"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
}

/// Whether the Application is Synced at `revision` with no operation in
/// flight.
pub fn synced_at(app: &Value, revision: &str) -> bool {
    let s = &app["status"];
    s["sync"]["status"] == "Synced"
        && s["sync"]["revision"] == revision
        && s["operationState"]["phase"] == "Succeeded"
        && s["operationState"]["syncResult"]["revision"] == revision
}
