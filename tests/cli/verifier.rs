//! `keyrotor-sidecar verifier`, the real binary pods run, as a gateway calls
//! it: nginx-, Envoy- and Traefik-shaped checks; a rotation on its volume;
//! hostile input; and, against the in-memory API, what it reports on its
//! pod. No presented key, right or wrong, ever reaches its log (I4). And
//! `keyrotor verifier`, the same sidecar in the operator binary, for pod
//! specs that name it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use keyrotor::wire as k;
use keyrotor::wire::Traffic;
use keyrotor_testkit::FakeApi;
use keyrotor_testsupport::eventually;
use keyrotor_testsupport::volume::{self, Volume};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Running {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `keyrotor-sidecar verifier` on `dir`.
async fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Running {
    start_binary(keyrotor_testsupport::binaries::sidecar(), dir, extra, env).await
}

async fn start_binary(binary: &Path, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Running {
    let (addr, admin) = (free_port(), free_port());
    let log = dir.with_extension(format!("log-{}", addr.port()));
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(binary)
        .arg("verifier")
        .arg("--dir")
        .arg(dir)
        .args(["--listen", &addr.to_string()])
        .args(["--admin-address", &admin.to_string()])
        .args(extra)
        .envs(env.iter().copied())
        .env("RUST_LOG", "debug")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("the verifier starts");
    let running = Running {
        child,
        addr,
        admin,
        log,
    };
    eventually(
        "the verifier listens",
        Duration::from_secs(20),
        async || TcpStream::connect(addr).await.is_ok(),
    )
    .await;
    running
}

/// One request (`head` without the blank line); the status and headers.
async fn send(addr: SocketAddr, head: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer (431) and close before an oversized head is sent.
    if s.write_all(head).await.is_ok() {
        let _ = s.write_all(b"Connection: close\r\n\r\n").await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn bearer(addr: SocketAddr, key: &str) -> (u16, String) {
    let head = format!("GET /auth HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n");
    send(addr, head.as_bytes()).await
}

async fn metrics(admin: SocketAddr) -> String {
    keyrotor::ops::admin::get(admin, "/metrics")
        .await
        .unwrap()
        .1
}

#[tokio::test]
async fn gateways_get_2xx_for_accepted_versions_and_401_for_the_rest_across_a_rotation() {
    let (k1, k2, typo) = (volume::key(), volume::key(), volume::key());
    let mut vol = Volume::new("gateway-rotation");
    vol.publish(&volume::verifier("orders", 1, &[(1, &k1)]));
    let v = start(&vol.dir, &["--report", "false"], &[]).await;

    // nginx auth_request: a GET of the configured URI with the client's headers.
    let (status, head) = bearer(v.addr, k1.expose()).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-keyrotor-version: 1"),
        "{head}"
    );
    let (status, head) = bearer(v.addr, typo.expose()).await;
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: Bearer"), "{head}");

    // Envoy ext_authz (HTTP service): the original method and path, body dropped.
    let envoy = format!(
        "POST /api/orders?id=7 HTTP/1.1\r\nHost: shop\r\nauthorization: Bearer {}\r\ncontent-length: 0\r\nx-envoy-internal: true\r\nx-forwarded-for: 10.0.0.9\r\n",
        k1.expose()
    );
    assert_eq!(send(v.addr, envoy.as_bytes()).await.0, 200);
    // Traefik ForwardAuth: a GET with the original request in X-Forwarded-*.
    let traefik = format!(
        "GET / HTTP/1.1\r\nHost: auth\r\nX-Forwarded-Method: DELETE\r\nX-Forwarded-Uri: /api/orders/7\r\nX-Forwarded-For: 10.0.0.10\r\nAuthorization: Bearer {}\r\n",
        k1.expose()
    );
    assert_eq!(send(v.addr, traefik.as_bytes()).await.0, 200);

    // A rotation on the volume: both versions, then only the new one.
    vol.publish(&volume::verifier("orders", 2, &[(1, &k1), (2, &k2)]));
    eventually("v2 accepted", Duration::from_secs(10), async || {
        bearer(v.addr, k2.expose()).await.0 == 200
    })
    .await;
    assert_eq!(bearer(v.addr, k1.expose()).await.0, 200, "v1 still valid");
    vol.publish(&volume::verifier("orders", 3, &[(2, &k2)]));
    eventually("v1 refused", Duration::from_secs(10), async || {
        bearer(v.addr, k1.expose()).await.0 == 401
    })
    .await;

    let m = metrics(v.admin).await;
    for line in [
        r#"keyrotor_verifier_accepted_total{namespace="",name="orders",version="1"} "#,
        r#"keyrotor_verifier_accepted_total{namespace="",name="orders",version="2"} "#,
        r#"keyrotor_verifier_retired_presented_total{namespace="",name="orders",version="1"} 1"#,
        r#"keyrotor_verifier_rejected_total{namespace="",name="orders",reason="retired_version"} 1"#,
        r#"keyrotor_verifier_rejected_total{namespace="",name="orders",reason="unknown_key"} "#,
        r#"keyrotor_verifier_loaded_revision{namespace="",name="orders"} 3"#,
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
    // The names the shipped alerts and dashboard select are the real ones,
    // and promtool accepts the exposition.
    for name in super::monitoring::VERIFIER_METRICS {
        assert!(
            m.contains(&format!("# TYPE {name} counter")),
            "{name} not exported:\n{m}"
        );
    }
    if let Some(promtool) = super::monitoring::promtool() {
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        check.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
        let out = check.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool: {said}"
        );
    }
    let log = v.log();
    assert!(log.contains("presented a retired version"), "{log}");
    for key in [&k1, &k2, &typo] {
        assert!(
            !log.contains(key.expose()) && !m.contains(key.expose()),
            "a key leaked"
        );
    }
}

#[tokio::test]
async fn hostile_requests_get_a_prompt_refusal_in_bounded_memory() {
    let good = volume::key();
    let mut vol = Volume::new("gateway-hostile");
    vol.publish(&volume::verifier("orders", 1, &[(1, &good)]));
    let mut v = start(&vol.dir, &["--report", "false"], &[]).await;
    assert_eq!(bearer(v.addr, good.expose()).await.0, 200);
    let before = v.rss_kib();

    // Thousands of distinct wrong keys: each refused, nothing kept per key.
    let mut wrong = Vec::new();
    for i in 0..3000 {
        let key = format!("{}{i}", &good.expose()[..20]);
        assert_eq!(bearer(v.addr, &key).await.0, 401);
        if i % 500 == 0 {
            wrong.push(key);
        }
    }
    // Malformed: repeated header, another scheme, not text, too long.
    let repeated = format!(
        "GET / HTTP/1.1\r\nAuthorization: Bearer {0}\r\nAuthorization: Bearer {0}\r\n",
        good.expose()
    );
    assert_eq!(send(v.addr, repeated.as_bytes()).await.0, 401);
    assert_eq!(
        send(v.addr, b"GET / HTTP/1.1\r\nAuthorization: Basic Zm9v\r\n")
            .await
            .0,
        401
    );
    assert_eq!(
        send(
            v.addr,
            b"GET / HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\xfd\r\n"
        )
        .await
        .0,
        401
    );
    let long = format!(
        "GET / HTTP/1.1\r\nAuthorization: Bearer {}\r\n",
        "k".repeat(4000)
    );
    assert_eq!(send(v.addr, long.as_bytes()).await.0, 401);
    // Oversized: a 1 MiB header, and 500 headers — refused (431) or cut, promptly.
    let huge = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n", "a".repeat(1 << 20));
    let started = Instant::now();
    let (status, _) = send(v.addr, huge.as_bytes()).await;
    assert!(status == 431 || status == 0, "got {status}");
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, _) = send(v.addr, format!("GET / HTTP/1.1\r\n{many}").as_bytes()).await;
    assert!(status == 431 || status == 0, "got {status}");
    assert!(started.elapsed() < Duration::from_secs(5), "not prompt");

    // Slow clients: a request head that never ends is cut after the header
    // timeout; meanwhile others are answered.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(v.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nAuthorization: Bea")
            .await
            .unwrap();
        slow.push(s);
    }
    assert_eq!(
        bearer(v.addr, good.expose()).await.0,
        200,
        "served beside slow clients"
    );
    let mut cut = 0;
    for s in &mut slow {
        let mut buf = [0u8; 256];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await {
            cut += 1;
        }
    }
    assert_eq!(cut, slow.len(), "every slow client is cut off");

    assert!(v.alive(), "the verifier survived");
    assert_eq!(bearer(v.addr, good.expose()).await.0, 200);
    let grown = v.rss_kib().saturating_sub(before);
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB");
    let m = metrics(v.admin).await;
    assert!(m.contains(r#"reason="malformed"} 4"#), "{m}");
    let log = v.log();
    assert!(
        !log.contains(good.expose()),
        "the right key leaked to the log"
    );
    for key in &wrong {
        assert!(!log.contains(key.as_str()), "a wrong key leaked to the log");
    }
}

#[tokio::test]
async fn a_bare_key_header_works_as_configured() {
    let good = volume::key();
    let mut vol = Volume::new("gateway-bare");
    vol.publish(&volume::verifier("orders", 1, &[(1, &good)]));
    let args = ["--report", "false", "--header", "x-api-key", "--scheme", ""];
    let v = start(&vol.dir, &args, &[]).await;
    let head = format!("GET / HTTP/1.1\r\nX-API-Key: {}\r\n", good.expose());
    assert_eq!(send(v.addr, head.as_bytes()).await.0, 200);
    assert_eq!(
        bearer(v.addr, good.expose()).await.0,
        401,
        "not where it is configured"
    );
}

/// Pod specs written for the operator binary keep working: `keyrotor
/// verifier` is the same sidecar, with the same flags and endpoints.
#[tokio::test]
async fn keyrotor_verifier_in_the_operator_binary_answers_like_the_sidecar() {
    let (good, typo) = (volume::key(), volume::key());
    let mut vol = Volume::new("gateway-operator-binary");
    vol.publish(&volume::verifier("orders", 2, &[(1, &good)]));
    let operator = Path::new(env!("CARGO_BIN_EXE_keyrotor"));
    let v = start_binary(operator, &vol.dir, &["--report", "false"], &[]).await;
    let (status, head) = bearer(v.addr, good.expose()).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-keyrotor-version: 1"),
        "{head}"
    );
    assert_eq!(bearer(v.addr, typo.expose()).await.0, 401);
    assert_eq!(
        keyrotor::ops::admin::get(v.admin, "/readyz").await.unwrap(),
        (200, "ok\n".to_string())
    );
    let m = metrics(v.admin).await;
    assert!(
        m.contains(r#"keyrotor_verifier_loaded_revision{namespace="",name="orders"} 2"#),
        "{m}"
    );
}

#[tokio::test]
async fn it_confirms_what_it_loaded_and_reports_traffic_on_its_pod() {
    let api = FakeApi::new();
    let server = api.listen().await.expect("listen on 127.0.0.1");
    let pods: Api<Pod> = Api::namespaced(api.client(), "default");
    let pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "gw-0", "namespace": "default"},
        "spec": {"containers": [{"name": "gw", "image": "gw"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let (k1, k2) = (volume::key(), volume::key());
    let mut vol = Volume::new("gateway-report");
    let kubeconfig = vol.dir.with_extension("kubeconfig");
    server.write_kubeconfig(&kubeconfig, "default").unwrap();
    vol.publish(&volume::verifier("orders", 4, &[(1, &k1), (2, &k2)]));
    let env = [
        ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ("POD_NAME", "gw-0"),
        ("POD_NAMESPACE", "default"),
    ];
    let v = start(&vol.dir, &["--usage-interval-seconds", "1"], &env).await;
    let annotation = async |key: String| {
        let p = pods.get("gw-0").await.unwrap();
        p.metadata
            .annotations
            .unwrap_or_default()
            .get(&key)
            .cloned()
    };
    let report = k::report("orders", k::ROLE_VERIFIER);
    let reported = async || {
        let text = annotation(report.clone()).await?;
        k::RevisionReport::parse(&text).ok()
    };
    eventually(
        "revision 4 confirmed",
        Duration::from_secs(10),
        async || reported().await == Some(k::RevisionReport(4)),
    )
    .await;

    assert_eq!(bearer(v.addr, k2.expose()).await.0, 200);
    vol.publish(&volume::verifier("orders", 5, &[(2, &k2)]));
    eventually(
        "revision 5 confirmed",
        Duration::from_secs(10),
        async || reported().await == Some(k::RevisionReport(5)),
    )
    .await;
    let stale = format!(
        "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.7, 10.9.9.9\r\nAuthorization: Bearer {}\r\n",
        k1.expose()
    );
    assert_eq!(send(v.addr, stale.as_bytes()).await.0, 401);
    let traffic = eventually("traffic reported", Duration::from_secs(10), async || {
        let t: Traffic = annotation(k::traffic("orders")).await?.parse().ok()?;
        (t.retired_total() == 1).then_some(t)
    })
    .await;
    assert_eq!(traffic.accepted.get(&2), Some(&1));
    assert_eq!(traffic.retired.get(&1), Some(&1));
    assert_eq!(traffic.client, Some("10.0.0.7".parse().unwrap()));
    let seen = eventually("last-seen reported", Duration::from_secs(10), async || {
        annotation(k::last_seen("orders")).await
    })
    .await;
    let seen = k::LastSeen::parse(&seen).unwrap();
    assert_eq!(seen.0.keys().copied().collect::<Vec<_>>(), [2], "{seen}");
}

/// The nginx configuration shipped in examples/gateway-nginx/ is valid nginx
/// (`nginx -t` of Debian's nginx; `.ci/run` installs it).
#[test]
fn the_example_nginx_configuration_is_valid_nginx() {
    let nginx = std::path::Path::new("/usr/sbin/nginx");
    if !nginx.exists() {
        eprintln!(
            "\n*** nginx example check SKIPPED: /usr/sbin/nginx missing (.ci/debs nginx) ***\n"
        );
        return;
    }
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gateway-nginx/10-gateway.yaml"
    ))
    .unwrap();
    let conf = serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| {
            let v = <serde_yaml::Value as serde::Deserialize>::deserialize(d).ok()?;
            Some(v.get("data")?.get("nginx.conf")?.as_str()?.to_string())
        })
        .next()
        .expect("the example's ConfigMap holds nginx.conf");
    let dir = std::env::temp_dir().join(format!("keyrotor-nginx-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .args(["-e", "stderr", "-g", "daemon off;"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.contains("test is successful"),
        "{said}"
    );
}
