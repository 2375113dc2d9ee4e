//! The cluster the suite runs on (started by tests/cluster/up), the tools it
//! drives (kubectl), and the operator's identity: a ServiceAccount token bound
//! to exactly the RBAC that deploy/ ships.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OnceCell;

pub const OPERATOR_NS: &str = "keyrotor-system";
pub const OPERATOR_SA: &str = "keyrotor";

pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    pub kubectl: String,
    /// A kubeconfig holding the operator ServiceAccount's token.
    pub operator_kubeconfig: PathBuf,
}

static SKIP: Once = Once::new();

/// The cluster named by `KEYROTOR_E2E_KUBECONFIG`, set up once per process;
/// None (after saying so on the real stderr, past the test harness's
/// capture) when the variable is unset.
pub async fn get() -> Option<&'static Cluster> {
    static CLUSTER: OnceCell<Option<Cluster>> = OnceCell::const_new();
    CLUSTER
        .get_or_init(|| async {
            let Some(kubeconfig) = std::env::var_os("KEYROTOR_E2E_KUBECONFIG") else {
                SKIP.call_once(|| {
                    let _ = writeln!(
                        std::io::stderr(),
                        "\n*** e2e SKIPPED: no cluster. Run: tests/cluster/up && \
                         source tests/cluster/.run/env && cargo test --all-features --test e2e ***\n"
                    );
                });
                return None;
            };
            Some(Cluster::setup(PathBuf::from(kubeconfig)).await)
        })
        .await
        .as_ref()
}

/// The repository's root (this crate lives in crates/testsupport).
pub fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

impl Cluster {
    /// The cluster of `kubeconfig`, with keyrotor's CRDs and RBAC installed.
    pub async fn setup(kubeconfig: PathBuf) -> Cluster {
        let dir = kubeconfig.parent().unwrap().to_path_buf();
        // kubectl 1.37 from .ci/tools (`eval "$(.ci/tools)"`), else PATH's.
        let kubectl = std::env::var("KEYROTOR_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let mut c = Cluster {
            operator_kubeconfig: dir.join("operator.kubeconfig"),
            kubeconfig,
            dir,
            kubectl,
        };
        c.install();
        c
    }

    /// CRDs from crds/ and the operator's ServiceAccount and RBAC from the
    /// render of deploy/ (not its Deployment: the suite runs the operator
    /// binary as a process, with that ServiceAccount's token).
    fn install(&mut self) {
        self.ok(&["apply", "--server-side", "-f", "crds/"]);
        self.ok(&[
            "wait",
            "--for=condition=Established",
            "crd/apikeyrotations.keyrotor.dev",
            "--timeout=60s",
        ]);
        let rendered = self.ok(&["kustomize", "deploy/"]);
        let wanted = [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ];
        let docs: Vec<String> = serde_yaml::Deserializer::from_str(&rendered)
            .filter_map(|d| {
                let v = serde_yaml::Value::deserialize(d).ok()?;
                let kind = v.get("kind")?.as_str()?;
                wanted
                    .contains(&kind)
                    .then(|| serde_yaml::to_string(&v).unwrap())
            })
            .collect();
        assert!(
            docs.iter().any(|d| d.contains("kind: ClusterRole\n")),
            "deploy/ renders no ClusterRole"
        );
        self.ok_stdin(&["apply", "--server-side", "-f", "-"], &docs.join("---\n"));
        let token = self.ok(&[
            "create",
            "token",
            OPERATOR_SA,
            "-n",
            OPERATOR_NS,
            "--duration=4h",
        ]);
        self.write_kubeconfig(&self.operator_kubeconfig.clone(), token.trim());
    }

    /// An admin client. One per test: each test has its own runtime, and a
    /// client's connections live on the runtime that made them.
    pub async fn client(&self) -> Client {
        client_for(&self.kubeconfig).await
    }

    /// A kubeconfig for the same server as the admin's, with `token`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) {
        let admin: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&self.kubeconfig).unwrap()).unwrap();
        let cluster = &admin["clusters"][0]["cluster"];
        let cfg = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {
                "server": cluster["server"].as_str().unwrap(),
                "certificate-authority": cluster["certificate-authority"].as_str().unwrap(),
            }}],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "sa"}}],
            "current-context": "e2e",
        });
        std::fs::write(path, serde_yaml::to_string(&cfg).unwrap()).unwrap();
    }

    /// Runs kubectl as the admin; returns its output whatever the outcome.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.kubectl);
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} (set KEYROTOR_KUBECTL): {e}", self.kubectl));
        let input = stdin.unwrap_or("").to_string();
        let mut pipe = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    /// kubectl that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_stdin(args, "")
    }

    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl(args, Some(stdin));
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A fresh namespace for one scenario (deleted, with what is in it,
    /// when the guard drops).
    pub async fn namespace(&'static self, name: &str) -> TestNamespace {
        let client = self.client().await;
        let api: Api<Namespace> = Api::all(client.clone());
        let ns = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        // Left from an earlier run: no operator runs there any more.
        self.release_rotations(name);
        let _ = api.delete(name, &DeleteParams::default()).await;
        let mut created = false;
        for _ in 0..600 {
            match api.create(&PostParams::default(), &ns).await {
                Ok(_) => {
                    created = true;
                    break;
                }
                // Still terminating from an earlier run.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("create namespace {name}: {e}"),
            }
        }
        assert!(created, "namespace {name} is still terminating after 60 s");
        // Pods need the namespace's default ServiceAccount.
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client, name);
        for _ in 0..300 {
            if sa.get_opt("default").await.unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        TestNamespace {
            name: name.to_string(),
            cluster: self,
        }
    }
}

impl Cluster {
    /// Drops keyrotor's finalizer from every ApiKeyRotation in `ns`: once
    /// a scenario's operator is gone, nobody else would (and the namespace
    /// could never be deleted).
    pub fn release_rotations(&self, ns: &str) {
        let out = self.kubectl(&["get", "apikeyrotations", "-n", ns, "-o", "name"], None);
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.kubectl(
                &[
                    "patch",
                    name,
                    "-n",
                    ns,
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ],
                None,
            );
        }
    }
}

pub struct TestNamespace {
    pub name: String,
    pub cluster: &'static Cluster,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Leave it when a test failed: its objects explain the failure.
        if !std::thread::panicking() {
            self.cluster.release_rotations(&self.name);
            let _ = self
                .cluster
                .kubectl(&["delete", "namespace", &self.name, "--wait=false"], None);
        }
    }
}

pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}
