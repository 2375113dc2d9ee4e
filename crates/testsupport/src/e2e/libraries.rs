//! The consumer libraries' example apps (`<language>/examples`) as pods on
//! the real node: each app in an image packed with its runtime
//! (`tests/cluster/images go|python|node|java`), beside the reporter
//! sidecar, confirming what it loaded either through its library (the
//! handshake directory, docs/wire.md#the-handshake-directory) or, to
//! compare, through the sidecar's reading of the volume; and the counts the
//! presenters serve at `GET /counts`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use super::cluster::Cluster;
use super::realnode::{IMAGE, SIDECAR, pack, pod_env, real_pod, restricted};

/// Where the handshake `emptyDir` is mounted in both containers, by
/// convention (docs/wire.md).
pub const HANDSHAKE_DIR: &str = "/run/keyrotor";

/// The JDK the Java image packs (its path is the same inside).
const JAVA: &str = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java";

/// What the sidecar confirms to keyrotor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmation {
    /// What the app's library says its process loaded (the sidecar runs
    /// with `--handshake`, the app with `KEYROTOR_HANDSHAKE_DIR`).
    Library,
    /// What the volume holds (the sidecar without `--handshake`): right for
    /// an app that re-reads its files on every use, not for one that caches.
    Volume,
}

/// How an app is told how often to look for a new Secret.
#[derive(Clone, Copy, Debug)]
pub enum Reload {
    /// An environment variable in milliseconds.
    Millis(&'static str),
    /// An environment variable in seconds.
    Seconds(&'static str),
}

/// One example app and how its image runs it.
#[derive(Clone, Copy, Debug)]
pub struct App {
    /// Its Deployment and `app` label, e.g. `go-presenter`.
    pub name: &'static str,
    /// The image `tests/cluster/images <runtime>` packs it in.
    pub runtime: &'static str,
    pub command: &'static [&'static str],
    pub reload: Reload,
}

/// python/examples/verifier_server.py: a WSGI API behind the library's
/// middleware.
pub const PYTHON_VERIFIER: App = App {
    name: "python-verifier",
    runtime: "python",
    command: &[
        "/usr/bin/python3.11",
        "/app/python/examples/verifier_server.py",
    ],
    reload: Reload::Seconds("POLL_SECONDS"),
};

/// go/examples/presenter: a static binary.
pub const GO_PRESENTER: App = App {
    name: "go-presenter",
    runtime: "go",
    command: &["/app/go/presenter"],
    reload: Reload::Millis("POLL_MS"),
};

/// typescript/examples/presenter.js on Node, against the built package.
pub const NODE_PRESENTER: App = App {
    name: "node-presenter",
    runtime: "node",
    command: &["/usr/bin/node", "/app/typescript/examples/presenter.js"],
    reload: Reload::Millis("POLL_MS"),
};

/// java/examples/PresenterClient, compiled against the library's jar; a
/// small heap and the C1 compiler only, on a shared 2-core machine.
pub const JAVA_PRESENTER: App = App {
    name: "java-presenter",
    runtime: "java",
    command: &[
        JAVA,
        "-XX:-UsePerfData",
        "-Xmx64m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-cp",
        "/app/java/keyrotor-consumer.jar:/app/java/classes",
        "PresenterClient",
    ],
    reload: Reload::Millis("POLL_MS"),
};

impl App {
    pub fn image(&self) -> String {
        format!("keyrotor.dev/{}-apps:e2e", self.runtime)
    }

    /// Its environment: `vars` and where it listens, how often it reloads
    /// (`reload`), and the handshake directory when its library confirms.
    pub fn env(&self, vars: &[(&str, String)], reload: Duration, via: Confirmation) -> Value {
        let mut env: Vec<(String, String)> = vars
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        env.push(("KEY_DIR".into(), "/keys".into()));
        match self.reload {
            Reload::Millis(name) => env.push((name.into(), reload.as_millis().to_string())),
            Reload::Seconds(name) => env.push((name.into(), reload.as_secs_f64().to_string())),
        }
        // Every example listens where HOST says (loopback here: hostNetwork).
        env.push(("HOST".into(), "127.0.0.1".into()));
        if via == Confirmation::Library {
            env.push(("KEYROTOR_HANDSHAKE_DIR".into(), HANDSHAKE_DIR.into()));
        }
        env.iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    }
}

/// Packs the example apps' images (their builds are cached by the script)
/// into every real node.
pub fn pack_apps(cluster: &Cluster, apps: &[App]) {
    for app in apps {
        pack(cluster, &[std::ffi::OsStr::new(app.runtime)]);
    }
}

/// A real-node pod template: `app` (with environment `env`) reading Secret
/// `secret` at /keys, and the reporter sidecar confirming `via`. Both mount
/// the handshake `emptyDir` either way: only the confirmation differs.
pub fn template(app: &App, secret: &str, env: Value, via: Confirmation) -> Value {
    let mut reporter = vec!["reporter", "--dir", "/keys", "--poll-seconds", "1"];
    if via == Confirmation::Library {
        reporter.extend(["--handshake", HANDSHAKE_DIR]);
    }
    let containers = json!([
        {
            "name": "app", "image": app.image(), "imagePullPolicy": "Never",
            "command": app.command, "env": env, "securityContext": restricted(),
            "volumeMounts": [
                {"name": "keys", "mountPath": "/keys", "readOnly": true},
                {"name": "handshake", "mountPath": HANDSHAKE_DIR},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        },
        {
            "name": "reporter", "image": IMAGE, "imagePullPolicy": "Never",
            "command": [SIDECAR], "args": reporter,
            "env": pod_env(), "securityContext": restricted(),
            "volumeMounts": [
                {"name": "keys", "mountPath": "/keys", "readOnly": true},
                {"name": "handshake", "mountPath": HANDSHAKE_DIR, "readOnly": true},
            ],
        },
    ]);
    let volumes = json!([
        {"name": "keys", "projected": {"sources": [{"secret": {"name": secret}}]}},
        {"name": "handshake", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]);
    real_pod(app.name, containers, volumes)
}

/// A presenter's answers so far, as its `GET /counts` says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub rejected: u64,
    /// No answer, or neither a success nor a refusal.
    pub errors: u64,
}

impl Counts {
    pub fn sent(&self) -> u64 {
        self.ok + self.rejected + self.errors
    }

    /// What happened between `earlier` and these counts.
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            ok: self.ok - earlier.ok,
            rejected: self.rejected - earlier.rejected,
            errors: self.errors - earlier.errors,
        }
    }

    pub fn add(&self, other: &Counts) -> Counts {
        Counts {
            ok: self.ok + other.ok,
            rejected: self.rejected + other.rejected,
            errors: self.errors + other.errors,
        }
    }
}

/// `GET /counts` of the presenter listening on 127.0.0.1:`port`; None while
/// it does not answer.
pub fn counts(port: u16) -> Option<Counts> {
    let timeout = Some(Duration::from_secs(2));
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(timeout).ok()?;
    stream.set_write_timeout(timeout).ok()?;
    // HTTP/1.0: an answer of known length, never chunked.
    let request = "GET /counts HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    // Bounded: the server closes the connection, or the read times out.
    let _ = stream.take(64 * 1024).read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return None;
    }
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    Some(Counts {
        ok: v["ok"].as_u64()?,
        rejected: v["rejected"].as_u64()?,
        errors: v["errors"].as_u64().unwrap_or(0),
    })
}
