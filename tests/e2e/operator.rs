//! The real `keyrotor run` binary as a child process, authenticated as the
//! operator's ServiceAccount. Stopped by PID (SIGKILL) when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::cluster::{Cluster, OPERATOR_NS, OPERATOR_SA};

/// The `keyrotor` binary cargo built for this package's tests.
pub fn keyrotor() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_keyrotor"))
}

pub struct Operator {
    child: Option<Child>,
    pub name: String,
    pub log: PathBuf,
    /// `host:port` of its admin server (`/metrics`, `/livez`, `/readyz`).
    pub admin: String,
}

pub struct Options<'a> {
    pub namespace: &'a str,
    /// The replica's name (events, the lease).
    pub name: &'a str,
    /// Leader election on this lease name.
    pub lease: Option<&'a str>,
}

impl Operator {
    /// One replica for `namespace`, without leader election.
    pub fn watching(cluster: &Cluster, namespace: &str, name: &str) -> Operator {
        let o = Options {
            namespace,
            name,
            lease: None,
        };
        Operator::start(cluster, o)
    }

    /// One replica for `namespace` without leader election, authenticated
    /// by `kubeconfig` instead of the operator's ServiceAccount.
    pub fn with_kubeconfig(
        cluster: &Cluster,
        namespace: &str,
        name: &str,
        kubeconfig: &Path,
    ) -> Operator {
        let o = Options {
            namespace,
            name,
            lease: None,
        };
        Operator::start_as(cluster, o, kubeconfig)
    }

    pub fn start(cluster: &Cluster, o: Options) -> Operator {
        Operator::start_as(cluster, o, &cluster.operator_kubeconfig)
    }

    /// [`Operator::start`] with another identity's kubeconfig (other RBAC).
    pub fn start_as(cluster: &Cluster, o: Options, kubeconfig: &Path) -> Operator {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Each process its own admin port (several run at once).
        let admin = format!("127.0.0.1:{port}");
        // One file per process and run: a log never shows an earlier one's lines.
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let log = cluster.dir.join(format!(
            "operator-{}-{}-{}.log",
            o.name,
            std::process::id(),
            STARTED.fetch_add(1, Ordering::SeqCst)
        ));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(keyrotor());
        cmd.args(["run", "--namespace", o.namespace, "--admin-address", &admin])
            .args(["--lease-namespace", OPERATOR_NS, "--lease-duration", "4"])
            .env("KUBECONFIG", kubeconfig)
            .env(
                "KEYROTOR_SERVICE_ACCOUNT",
                format!("{OPERATOR_NS}/{OPERATOR_SA}"),
            )
            .env("POD_NAME", o.name)
            .env("RUST_LOG", "info,keyrotor=debug,kube_client::client=error")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        if let Some(lease) = o.lease {
            cmd.args(["--leader-election", "--lease-name", lease]);
        }
        let child = cmd.spawn().expect("start keyrotor run");
        Operator {
            child: Some(child),
            name: o.name.to_string(),
            log,
            admin,
        }
    }

    /// SIGKILL: no handover, no cleanup (a crashed or evicted pod).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The logs of these operators (name, text), for `assert_no_key_material`.
pub fn logs_of(operators: &[&Operator]) -> Vec<(String, String)> {
    operators
        .iter()
        .map(|o| (o.name.clone(), o.logs()))
        .collect()
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
