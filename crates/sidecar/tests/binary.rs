//! The `keyrotor-sidecar` binary as a pod runs it: the verifier answers
//! checks and serves its admin endpoint; the reporter refuses to start
//! without the pod's identity and says where to get it. (The verifier's
//! gateway scenarios and both sidecars' pod reports: tests/cli/verifier.rs
//! and tests/consumer/reporter.rs of the workspace root.)

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyrotor_sidecar::admin;
use keyrotor_sidecar::http;
use keyrotor_testsupport::volume::{self, Volume};

const BINARY: &str = env!("CARGO_BIN_EXE_keyrotor-sidecar");

/// Stops the child by PID when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET path` until it answers, for at most 20 s.
async fn get_when_up(addr: SocketAddr, path: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match admin::get(addr, path).await {
            Ok(answer) => return answer,
            Err(e) => assert!(Instant::now() < deadline, "{addr} never answered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_verifier_answers_checks_and_serves_metrics_livez_and_readyz() {
    let (good, typo) = (volume::key(), volume::key());
    let mut vol = Volume::new("sidecar-verifier");
    vol.publish(&volume::verifier("orders", 3, &[(2, &good)]));
    let (listen, admin_address) = (free_port(), free_port());
    let child = Command::new(BINARY)
        .arg("verifier")
        .arg("--dir")
        .arg(&vol.dir)
        .args(["--listen", &listen.to_string()])
        .args(["--admin-address", &admin_address.to_string()])
        .args(["--report", "false"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("keyrotor-sidecar starts");
    let _running = Running(child);

    assert_eq!(
        get_when_up(admin_address, "/readyz").await,
        (200, "ok\n".into())
    );
    assert_eq!(
        admin::get(admin_address, "/livez").await.unwrap(),
        (200, "ok\n".into())
    );
    let authorization = hyper::header::AUTHORIZATION;
    let check = async |key: &str| {
        let bearer = format!("Bearer {key}");
        http::get(listen, "/", &[(authorization.clone(), &bearer)])
            .await
            .unwrap()
            .0
    };
    assert_eq!(check(good.expose()).await, 200);
    assert_eq!(check(typo.expose()).await, 401);
    let (status, metrics) = admin::get(admin_address, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for line in [
        r#"keyrotor_verifier_loaded_revision{namespace="",name="orders"} 3"#,
        r#"keyrotor_verifier_accepted_total{namespace="",name="orders",version="2"} 1"#,
        r#"keyrotor_verifier_rejected_total{namespace="",name="orders",reason="unknown_key"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}

#[test]
fn the_reporter_without_the_downward_api_env_exits_and_names_what_is_missing() {
    let vol = Volume::new("sidecar-reporter");
    let out = Command::new(BINARY)
        .arg("reporter")
        .arg("--dir")
        .arg(&vol.dir)
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .output()
        .expect("keyrotor-sidecar runs");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("keyrotor-sidecar: POD_NAME is not set") && said.contains("Downward API"),
        "{said}"
    );
}
