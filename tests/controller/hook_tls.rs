//! A verifier hook over `https://` with `caBundle`: keyrotor trusts the
//! bundle's CA (and nothing else), a full cycle goes through, and a bundle
//! that did not sign the hook's certificate is a `HookFailed` that names
//! TLS and the caBundle. The CAs and the serving certificate come from
//! `openssl`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Secret;
use keyrotor::conditions::{reasons, types};
use keyrotor_testsupport::harness::{Harness, NS};
use keyrotor_testsupport::http1::read_request;
use kube::api::PostParams;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::scenario::{P, V, check_invariants};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (.ci/debs installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A CA named `name` in `dir`; its certificate PEM.
fn ca(dir: &Path, name: &str) -> String {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        dir,
        &[
            &["req", "-x509", "-nodes", "-days", "1"][..],
            &EC,
            &[
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
                "-keyout",
                &key,
                "-out",
                &crt,
            ],
        ]
        .concat(),
    );
    std::fs::read_to_string(dir.join(crt)).unwrap()
}

/// A serving certificate for localhost and 127.0.0.1 signed by CA `ca`:
/// (certificate PEM, key PEM).
fn serving(dir: &Path, ca: &str) -> (String, String) {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            &["req", "-nodes"][..],
            &EC,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "hook.key",
                "-out",
                "hook.csr",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "hook.csr",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "hook.crt",
        ],
    );
    (
        std::fs::read_to_string(dir.join("hook.crt")).unwrap(),
        std::fs::read_to_string(dir.join("hook.key")).unwrap(),
    )
}

/// An https hook on loopback that answers every step `done`.
async fn tls_hook(cert: &str, key: &str) -> (String, Arc<AtomicUsize>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}/hook",
        listener.local_addr().unwrap().port()
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return; // the client refused our certificate
                };
                if read_request(&mut s, &mut Vec::new()).await.is_none() {
                    return;
                }
                counted.fetch_add(1, Ordering::Relaxed);
                let body = r#"{"done":true}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (url, calls)
}

fn spec(url: &str, ca: &str, extra: &str) -> String {
    let hook = json!({"url": url, "caBundle": ca, "tokenSecretRef": {"name": "hook-token", "key": "token"}, "timeoutSeconds": 2});
    format!(
        "secrets: {{verifier: {V}, presenter: {P}}}\ngracePeriod: {{minimum: 200ms, maximum: 60s}}\nverifierHook: {hook}\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_hook_is_trusted_through_its_ca_bundle_and_only_through_it() {
    let dir = std::env::temp_dir().join(format!("keyrotor-hook-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = ca(&dir, "hook-ca");
    let other = ca(&dir, "other-ca");
    let (cert, key) = serving(&dir, "hook-ca");
    let _ = std::fs::remove_dir_all(&dir);
    let (url, calls) = tls_hook(&cert, &key).await;

    let h = Harness::new().await;
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "hook-token", "namespace": NS}, "stringData": {"token": "t"},
    }))
    .unwrap();
    h.secrets()
        .create(&PostParams::default(), &token)
        .await
        .unwrap();
    h.add_pod("server-0", &[V], &[("app", "server")]).await;
    h.add_pod("client-0", &[P], &[("app", "client")]).await;
    h.apply("api", &spec(&url, &bundle, "")).await;
    h.wait_published(V, P, &[1], 1, 20).await;
    h.apply("api", &spec(&url, &bundle, "rotationRequest: r2"))
        .await;
    h.wait_published(V, P, &[2], 2, 30).await;
    h.wait("version 1 retired", 10, || async {
        h.secret("api-v1").await.is_none()
    })
    .await;
    assert!(
        calls.load(Ordering::Relaxed) >= 3,
        "stage 1, stage 2, retire 1 over TLS"
    );

    // A bundle that did not sign the hook's certificate: refused, and said so.
    let before = calls.load(Ordering::Relaxed);
    h.apply("api", &spec(&url, &other, "rotationRequest: r3"))
        .await;
    h.wait("HookFailed naming TLS", 30, || async {
        let rot = h.rotation("api").await;
        rot.status.unwrap_or_default().conditions.iter().any(|c| {
            c.type_ == types::READY
                && c.reason == reasons::HOOK_FAILED
                && c.message.contains("TLS with localhost:")
                && c.message.contains("check caBundle")
        })
    })
    .await;
    assert_eq!(
        calls.load(Ordering::Relaxed),
        before,
        "no request reached an untrusted hook"
    );
    assert_eq!(h.current(P).await, Some(2));
    h.apply("api", &spec(&url, &bundle, "rotationRequest: r3"))
        .await;
    h.wait_published(V, P, &[3], 3, 30).await;
    check_invariants(&h, &[]);
}
