//! kubectl against the loopback listener, when kubectl is installed (it is on the
//! project's machines; elsewhere the test says so and returns).

use keyrotor_testkit::FakeApi;
use std::process::Command;

fn kubectl(kubeconfig: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// kubectl discovers resources, applies (client- and server-side), lists with selectors,
/// labels and deletes through the listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_against_listener() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let api = FakeApi::new();
    let server = api.listen().await.unwrap();
    let dir = std::env::temp_dir().join(format!("testkit-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("config");
    server.write_kubeconfig(&kc, "default").unwrap();
    let kc2 = kc.clone();
    let steps = tokio::task::spawn_blocking(move || {
        let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm1, labels: {app: x}}\ndata: {k: v}\n";
        vec![
            kubectl(
                &kc2,
                &["apply", "--server-side", "--validate=false", "-f", "-"],
                Some(manifest),
            ),
            kubectl(
                &kc2,
                &["get", "configmaps", "-l", "app in (x)", "-o", "name"],
                None,
            ),
            kubectl(&kc2, &["label", "configmap", "cm1", "extra=1"], None),
            kubectl(
                &kc2,
                &[
                    "get",
                    "configmap",
                    "cm1",
                    "-o",
                    "jsonpath={.metadata.labels.extra}",
                ],
                None,
            ),
            kubectl(&kc2, &["delete", "configmap", "cm1"], None),
        ]
    });
    let log = tokio::time::timeout(std::time::Duration::from_secs(60), steps)
        .await
        .expect("kubectl timed out")
        .unwrap();
    for (ok, text) in &log {
        assert!(ok, "kubectl failed: {text}");
    }
    assert!(log[1].1.contains("configmap/cm1"));
    assert_eq!(log[3].1.trim(), "1");
    assert!(
        api.store()
            .peek("", "configmaps", Some("default"), "cm1")
            .is_none()
    );
    let _ = std::fs::remove_dir_all(dir);
}
