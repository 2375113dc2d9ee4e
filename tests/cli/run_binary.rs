//! `keyrotor run`, the real binary, against a kubeconfig: the in-memory API
//! served over HTTP on 127.0.0.1. The process is stopped by PID at the end.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use keyrotor::api::ApiKeyRotation;
use keyrotor::wire as k;
use keyrotor_testkit::FakeApi;
use kube::api::{Patch, PatchParams};
use kube::{Api, CustomResourceExt};
use serde_json::json;

/// Kills the child by PID when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn keyrotor_run_publishes_the_first_key_through_a_kubeconfig() {
    let api = FakeApi::new();
    api.register_crd(&ApiKeyRotation::crd());
    let server = api.listen().await.expect("listen on 127.0.0.1");
    let dir = std::env::temp_dir().join(format!("keyrotor-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, "default").unwrap();

    let child = Command::new(env!("CARGO_BIN_EXE_keyrotor"))
        .args([
            "run",
            "--namespace",
            "default",
            "--admin-address",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("keyrotor starts");
    let _running = Running(child);

    let client = api.client();
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), "default");
    let obj = json!({
        "apiVersion": "keyrotor.dev/v1alpha1", "kind": "ApiKeyRotation",
        "metadata": {"name": "api", "namespace": "default"},
        "spec": {"secrets": {"verifier": "api-verifier", "presenter": "api-key"}},
    });
    rotations
        .patch("api", &PatchParams::apply("test"), &Patch::Apply(&obj))
        .await
        .unwrap();

    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let mut published = None;
    for _ in 0..200 {
        if let Some(s) = secrets.get_opt("api-key").await.unwrap() {
            published = s
                .metadata
                .annotations
                .and_then(|a| a.get(k::CURRENT).cloned());
            if published.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        published.as_deref(),
        Some("1"),
        "the binary published version 1 within 20 s"
    );
    let status = rotations.get("api").await.unwrap().status.unwrap();
    assert_eq!(status.current_version, Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
