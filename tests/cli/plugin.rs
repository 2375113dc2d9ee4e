//! `kubectl keyrotor`, the real `kubectl-keyrotor` binary, against the
//! in-memory API served over HTTP through a kubeconfig: the tables it prints
//! and the API state each verb leaves behind.

use std::path::PathBuf;
use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Namespace;
use keyrotor::api::ApiKeyRotation;
use keyrotor::wire as k;
use keyrotor_testkit::{FakeApi, Fault, HttpServer};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt, ResourceExt};
use serde_json::{Value, json};

/// Fingerprints (`sha256:` of the key, never the key) of the fixture versions.
const FP_ORDERS: [&str; 4] = [
    "sha256:041e2a28245db835189938be363c75af74988b522604b63f627f7517ceb20568",
    "sha256:abd2eeb2fd22665b070e64d50804942a13c6139715e0a7ed210d29dd2e95182d",
    "sha256:27b83edc083e742c6c51a980b26b534cddd8a0d6f9c09f1684d5b809544b715b",
    "sha256:cf25a3bcdefa826014a5f67014a0756bf74c4e92f44755f47bd2b0b12cb8b424",
];
const FP_LEDGER: &str = "sha256:8dc4f427bc48c25c5f7047655b335ba5368dfb0c066937d43b662d9240984e36";
const FP_SEARCH: [&str; 2] = [
    "sha256:484d81b0bf595bd4a31b833b47573a440dccd2a04215886be5cdda66a5a1e860",
    "sha256:25e6af779079f8da74d37bb792ab1fc5592c3a717bc6dcaa0cc236b0a251b7b8",
];

/// The in-memory API on 127.0.0.1 and a kubeconfig whose context namespace is
/// `shop`, holding four rotations in two namespaces.
struct Cluster {
    api: FakeApi,
    _server: HttpServer,
    dir: PathBuf,
    kubeconfig: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one run of the binary left.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cluster {
    async fn start(test: &str) -> Cluster {
        let api = FakeApi::new();
        api.register_crd(&ApiKeyRotation::crd());
        let server = api.listen().await.expect("listen on 127.0.0.1");
        let dir =
            std::env::temp_dir().join(format!("keyrotor-plugin-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, "shop").unwrap();
        let cluster = Cluster {
            api,
            _server: server,
            dir,
            kubeconfig,
        };
        cluster.seed().await;
        cluster
    }

    fn rotations(&self, ns: &str) -> Api<ApiKeyRotation> {
        Api::namespaced(self.api.client(), ns)
    }

    async fn get(&self, ns: &str, name: &str) -> ApiKeyRotation {
        self.rotations(ns).get(name).await.unwrap()
    }

    /// Creates a rotation, then writes `status` through the status subresource
    /// as keyrotor would.
    async fn create(&self, ns: &str, name: &str, spec_extra: Value, status: Option<Value>) {
        let mut spec = json!({"secrets": {"verifier": format!("{name}-verifier"), "presenter": format!("{name}-key")},
                              "schedule": {"interval": "720h"}});
        merge(&mut spec, spec_extra);
        let obj: ApiKeyRotation = serde_json::from_value(json!({
            "apiVersion": "keyrotor.dev/v1alpha1", "kind": "ApiKeyRotation",
            "metadata": {"name": name, "namespace": ns}, "spec": spec,
        }))
        .unwrap();
        let api = self.rotations(ns);
        api.create(&PostParams::default(), &obj).await.unwrap();
        if let Some(status) = status {
            api.patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap();
        }
    }

    async fn seed(&self) {
        let namespaces: Api<Namespace> = Api::all(self.api.client());
        for ns in ["shop", "payments"] {
            let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            namespaces
                .create(&PostParams::default(), &obj)
                .await
                .unwrap();
        }
        let now = Timestamp::now();
        // Mid-rotation: presenters moving from 3 to 4, two pods still to confirm.
        self.create("shop", "orders", json!({"revokedVersions": [7]}), Some(json!({
            "observedGeneration": 1,
            "currentVersion": 4, "targetVersion": 4, "acceptedVersions": [3, 4], "stage": "Promoting",
            "versions": [
                version(1, "Retired", FP_ORDERS[0], "2026-01-05T09:00:00Z", Some("2026-01-05T09:00:00Z"), Some("2026-02-04T09:14:52Z")),
                version(2, "Retired", FP_ORDERS[1], "2026-02-04T09:00:00Z", Some("2026-02-04T09:02:41Z"), Some("2026-03-06T09:13:07Z")),
                version(3, "Previous", FP_ORDERS[2], "2026-03-06T09:00:00Z", Some("2026-03-06T09:02:18Z"), None),
                version(4, "Current", FP_ORDERS[3], "2026-04-05T09:00:00Z", Some("2026-04-05T09:02:33Z"), None),
            ],
            "confirmation": {
                "verifiers": {"mode": "Report", "revision": 8, "confirmed": 3, "total": 3},
                "presenters": {"mode": "Report", "revision": 8, "confirmed": 2, "total": 4,
                               "waitingFor": ["checkout-7f9c6-q8dxl", "checkout-7f9c6-x2kzp"]},
            },
            "conditions": [
                condition("Ready", "True", "Rotating", "version 4 promoted; waiting for presenters"),
                condition("Progressing", "True", "WaitingForPresenters", "2 of 4 presenters confirmed revision 8"),
            ],
            "lastRotationTime": "2026-04-05T09:00:00Z",
            "nextRotationTime": (now + SignedDuration::from_hours(7 * 24)).to_string(),
        })))
        .await;
        // Settled: nothing to confirm, next rotation in a month.
        self.create("payments", "ledger", json!({}), Some(json!({
            "currentVersion": 2, "acceptedVersions": [2], "stage": "Stable",
            "versions": [version(2, "Current", FP_LEDGER, "2026-04-01T12:00:00Z", Some("2026-04-01T12:01:05Z"), None)],
            "conditions": [condition("Ready", "True", "Stable", "version 2 is current")],
            "nextRotationTime": (now + SignedDuration::from_hours(30 * 24)).to_string(),
        })))
        .await;
        // Staging, stuck on a verifier, on-demand only (no schedule).
        self.create("shop", "search", json!({"schedule": null}), Some(json!({
            "currentVersion": 1, "targetVersion": 2, "acceptedVersions": [1, 2], "stage": "Staging",
            "versions": [
                version(1, "Current", FP_SEARCH[0], "2026-03-01T08:00:00Z", Some("2026-03-01T08:00:40Z"), None),
                version(2, "Staged", FP_SEARCH[1], "2026-04-06T10:00:00Z", None, None),
            ],
            "confirmation": {
                "verifiers": {"mode": "Rollout", "revision": 3, "confirmed": 1, "total": 2, "waitingFor": ["deployment/search-api"]},
                "presenters": {"mode": "Delay", "revision": 2, "confirmed": 0, "total": 0},
            },
            "conditions": [
                condition("Ready", "True", "Rotating", "version 2 staged"),
                condition("MigrationStalled", "True", "VerifiersStalled", "verifiers have not confirmed revision 3 within 1h"),
            ],
        })))
        .await;
        // Just applied: keyrotor has not written status yet.
        self.create("shop", "billing", json!({}), None).await;
    }

    /// Runs `kubectl-keyrotor ARGS` with this cluster's kubeconfig. The
    /// binary blocks, so it runs off the runtime that serves the API.
    async fn run(&self, args: &[&str]) -> Run {
        let kubeconfig = self.kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_kubectl-keyrotor"))
                .args(&args)
                .env("KUBECONFIG", kubeconfig)
                .env_remove("KUBERNETES_SERVICE_HOST")
                .output()
                .expect("kubectl-keyrotor runs")
        })
        .await
        .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Runs and expects success.
    async fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert_eq!(run.code, 0, "{args:?} failed: {}", run.stderr);
        assert_eq!(run.stderr, "", "{args:?}");
        run.stdout
    }

    /// Runs and expects exit code 1 with nothing on stdout; returns stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert_eq!(run.code, 1, "{args:?} should fail: {}", run.stdout);
        assert_eq!(run.stdout, "", "{args:?}");
        run.stderr
    }
}

fn version(
    v: u64,
    state: &str,
    fp: &str,
    created: &str,
    promoted: Option<&str>,
    retired: Option<&str>,
) -> Value {
    json!({"version": v, "state": state, "fingerprint": fp, "origin": "Generated",
           "createdAt": created, "promotedAt": promoted, "retiredAt": retired})
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-04-05T09:00:00Z", "observedGeneration": 1})
}

/// JSON merge (RFC 7386) of `patch` into `target`, for building fixtures.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (key, value) in p {
                if value.is_null() {
                    t.remove(&key);
                } else {
                    merge(t.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (t, p) => *t = p,
    }
}

#[tokio::test]
async fn status_across_all_namespaces_prints_one_aligned_table() {
    let c = Cluster::start("status-all").await;
    let out = c.ok(&["status", "-A"]).await;
    // `cargo test --all-features --test plugin -- --nocapture` shows it.
    println!("$ kubectl keyrotor status -A\n{out}");
    assert_eq!(
        out,
        "\
NAMESPACE   NAME      CURRENT   ACCEPTED   STAGE       VERIFIERS   PRESENTERS   READY             NEXT ROTATION
payments    ledger    2         2          Stable      -           -            True (Stable)     in 29d 23h
shop        billing   -         -          -           -           -            -                 -
shop        orders    4         3,4        Promoting   3/3         2/4          True (Rotating)   in 6d 23h
shop        search    1         1,2        Staging     1/2         0/0          True (Rotating)   -
"
    );
}

#[tokio::test]
async fn status_without_a_name_lists_the_kubeconfig_namespace_without_a_namespace_column() {
    let c = Cluster::start("status-ns").await;
    let out = c.ok(&["status"]).await;
    assert_eq!(
        out,
        "\
NAME      CURRENT   ACCEPTED   STAGE       VERIFIERS   PRESENTERS   READY             NEXT ROTATION
billing   -         -          -           -           -            -                 -
orders    4         3,4        Promoting   3/3         2/4          True (Rotating)   in 6d 23h
search    1         1,2        Staging     1/2         0/0          True (Rotating)   -
"
    );
    let other = c.ok(&["status", "-n", "payments"]).await;
    assert!(
        other.lines().nth(1).unwrap().starts_with("ledger "),
        "{other}"
    );
    assert_eq!(other.lines().count(), 2, "{other}");
    let empty = c.ok(&["status", "--namespace", "default"]).await;
    assert_eq!(empty, "No ApiKeyRotations found in namespace default.\n");
}

#[tokio::test]
async fn status_of_one_rotation_names_the_consumers_still_waiting() {
    let c = Cluster::start("status-one").await;
    assert_eq!(
        c.ok(&["status", "orders"]).await,
        "\
NAME     CURRENT   ACCEPTED   STAGE       VERIFIERS   PRESENTERS   READY             NEXT ROTATION
orders   4         3,4        Promoting   3/3         2/4          True (Rotating)   in 6d 23h

Waiting for presenters (Report, revision 8): checkout-7f9c6-q8dxl, checkout-7f9c6-x2kzp
"
    );
    assert_eq!(
        c.ok(&["status", "search"]).await,
        "\
NAME     CURRENT   ACCEPTED   STAGE     VERIFIERS   PRESENTERS   READY             NEXT ROTATION
search   1         1,2        Staging   1/2         0/0          True (Rotating)   -

Waiting for verifiers (Rollout, revision 3): deployment/search-api
MigrationStalled True: verifiers have not confirmed revision 3 within 1h
"
    );
}

#[tokio::test]
async fn history_lists_every_version_with_its_state_fingerprint_and_times() {
    let c = Cluster::start("history").await;
    let out = c.ok(&["history", "orders"]).await;
    assert_eq!(
        out,
        format!(
            "\
VERSION   STATE      FINGERPRINT                                                               CREATED                PROMOTED               RETIRED
1         Retired    {}   2026-01-05T09:00:00Z   2026-01-05T09:00:00Z   2026-02-04T09:14:52Z
2         Retired    {}   2026-02-04T09:00:00Z   2026-02-04T09:02:41Z   2026-03-06T09:13:07Z
3         Previous   {}   2026-03-06T09:00:00Z   2026-03-06T09:02:18Z   -
4         Current    {}   2026-04-05T09:00:00Z   2026-04-05T09:02:33Z   -
",
            FP_ORDERS[0], FP_ORDERS[1], FP_ORDERS[2], FP_ORDERS[3]
        )
    );
    assert_eq!(
        c.ok(&["history", "billing"]).await,
        "apikeyrotation shop/billing has no versions yet\n"
    );
}

#[tokio::test]
async fn rotate_sets_a_fresh_annotation_token_as_kubectl_keyrotor() {
    let c = Cluster::start("rotate").await;
    let out = c.ok(&["rotate", "orders"]).await;
    let first = c.get("shop", "orders").await;
    let token = first
        .annotations()
        .get(k::ROTATE_REQUEST)
        .cloned()
        .expect("annotation set");
    assert!(
        token.parse::<Timestamp>().is_ok(),
        "token is an RFC 3339 time: {token}"
    );
    assert_eq!(
        out,
        format!(
            "apikeyrotation shop/orders rotation requested ({}={token})\n",
            k::ROTATE_REQUEST
        )
    );
    let managers: Vec<_> = first
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.iter().any(|m| m == "kubectl-keyrotor"),
        "{managers:?}"
    );
    // The spec, which Git owns, is untouched.
    assert_eq!(first.metadata.generation, Some(1));

    c.ok(&["rotate", "orders"]).await;
    let second = c.get("shop", "orders").await;
    let again = second.annotations().get(k::ROTATE_REQUEST).unwrap();
    assert_ne!(
        again, &token,
        "every request is a new token, so keyrotor acts on it again"
    );
}

#[tokio::test]
async fn rollback_sets_the_rollback_annotation_only() {
    let c = Cluster::start("rollback").await;
    let out = c.ok(&["rollback", "-n", "shop", "orders"]).await;
    let rot = c.get("shop", "orders").await;
    let token = rot
        .annotations()
        .get(k::ROLLBACK_REQUEST)
        .expect("annotation set");
    assert!(token.parse::<Timestamp>().is_ok(), "{token}");
    assert!(!rot.annotations().contains_key(k::ROTATE_REQUEST));
    assert_eq!(
        out,
        format!(
            "apikeyrotation shop/orders rollback requested ({}={token})\n",
            k::ROLLBACK_REQUEST
        )
    );
}

#[tokio::test]
async fn revoke_adds_the_version_and_keeps_the_entries_already_listed() {
    let c = Cluster::start("revoke").await;
    let out = c.ok(&["revoke", "orders", "3"]).await;
    assert_eq!(out, "apikeyrotation shop/orders version 3 revoked\n");
    assert_eq!(
        c.get("shop", "orders").await.spec.revoked_versions,
        vec![3, 7]
    );

    let out = c.ok(&["revoke", "orders", "4"]).await;
    assert_eq!(
        out,
        "apikeyrotation shop/orders version 4 revoked; it was the current key, so presenters get a fresh one at once\n"
    );
    assert_eq!(
        c.get("shop", "orders").await.spec.revoked_versions,
        vec![3, 4, 7]
    );
}

#[tokio::test]
async fn revoke_twice_writes_nothing_the_second_time() {
    let c = Cluster::start("revoke-twice").await;
    c.ok(&["revoke", "orders", "3"]).await;
    let before = c.get("shop", "orders").await.resource_version();
    let out = c.ok(&["revoke", "orders", "3"]).await;
    assert_eq!(
        out,
        "apikeyrotation shop/orders version 3 is already revoked\n"
    );
    assert_eq!(c.get("shop", "orders").await.resource_version(), before);
}

#[tokio::test]
async fn revoke_refuses_version_zero_unknown_and_retired_versions_with_exit_code_1() {
    let c = Cluster::start("revoke-refused").await;
    let before = c.get("shop", "orders").await.resource_version();
    assert_eq!(
        c.fails(&["revoke", "orders", "0"]).await,
        "error: there is no version 0: version numbers start at 1\n"
    );
    assert_eq!(
        c.fails(&["revoke", "orders", "9"]).await,
        "error: apikeyrotation shop/orders has no version 9 (its versions: 1, 2, 3, 4); nothing revoked\n"
    );
    assert_eq!(
        c.fails(&["revoke", "orders", "2"]).await,
        "error: apikeyrotation shop/orders version 2 is Retired: no verifier accepts it and its key is deleted; nothing to revoke\n"
    );
    assert_eq!(
        c.fails(&["revoke", "billing", "1"]).await,
        "error: apikeyrotation shop/billing has no version 1 (its versions: none yet); nothing revoked\n"
    );
    let after = c.get("shop", "orders").await;
    assert_eq!(
        after.resource_version(),
        before,
        "a refused revoke writes nothing"
    );
    assert_eq!(after.spec.revoked_versions, vec![7]);
}

#[tokio::test]
async fn revoke_reads_again_and_retries_when_its_precondition_conflicts() {
    let c = Cluster::start("revoke-conflict").await;
    // One conflicting write (as when keyrotor's status write lands between
    // the read and the patch): the plugin rereads and succeeds.
    c.api.faults().fail_next_writes(1, Fault::Status(409));
    c.ok(&["revoke", "orders", "3"]).await;
    assert_eq!(
        c.get("shop", "orders").await.spec.revoked_versions,
        vec![3, 7]
    );
    // An object that never stops changing: give up with a clear sentence.
    c.api.faults().fail_next_writes(100, Fault::Status(409));
    assert_eq!(
        c.fails(&["revoke", "orders", "4"]).await,
        "error: apikeyrotation shop/orders kept changing while revoking version 4; run the command again\n"
    );
    c.api.faults().clear();
    assert_eq!(
        c.get("shop", "orders").await.spec.revoked_versions,
        vec![3, 7]
    );
}

#[tokio::test]
async fn revoke_does_not_overwrite_a_concurrent_edit_of_the_list() {
    let c = Cluster::start("revoke-concurrent").await;
    let stale = c.get("shop", "orders").await;
    // Someone else revokes 3 after our read; a patch at the old
    // resourceVersion with the old list must be refused, not win.
    c.rotations("shop")
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"revokedVersions": [3, 7]}})),
        )
        .await
        .unwrap();
    let lost_update = json!({"metadata": {"resourceVersion": stale.resource_version()},
                             "spec": {"revokedVersions": [4, 7]}});
    let err = c
        .rotations("shop")
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(lost_update),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
    // The plugin reads first, so it keeps the other edit.
    c.ok(&["revoke", "orders", "4"]).await;
    assert_eq!(
        c.get("shop", "orders").await.spec.revoked_versions,
        vec![3, 4, 7]
    );
}

#[tokio::test]
async fn suspend_and_resume_flip_spec_suspend() {
    let c = Cluster::start("suspend").await;
    assert_eq!(
        c.ok(&["suspend", "orders"]).await,
        "apikeyrotation shop/orders suspended: no new cycle starts and every published key stays valid\n"
    );
    assert!(c.get("shop", "orders").await.spec.suspend);
    // A rotation asked for while suspended says it waits.
    let out = c.ok(&["rotate", "orders"]).await;
    assert!(
        out.trim_end()
            .ends_with("; the rotation is suspended, so it waits for `resume`"),
        "{out}"
    );

    assert_eq!(
        c.ok(&["resume", "orders"]).await,
        "apikeyrotation shop/orders resumed\n"
    );
    assert!(!c.get("shop", "orders").await.spec.suspend);
    assert_eq!(
        c.get("shop", "orders").await.spec.revoked_versions,
        vec![7],
        "other spec fields kept"
    );
}

#[tokio::test]
async fn every_verb_on_a_missing_rotation_fails_with_one_sentence() {
    let c = Cluster::start("missing").await;
    for args in [
        &["status", "nope"][..],
        &["history", "nope"],
        &["rotate", "nope"],
        &["rollback", "nope"],
        &["revoke", "nope", "1"],
        &["suspend", "nope"],
        &["resume", "nope"],
    ] {
        assert_eq!(
            c.fails(args).await,
            "error: apikeyrotation shop/nope not found\n",
            "{args:?}"
        );
    }
    assert_eq!(
        c.fails(&["history", "ledger"]).await,
        "error: apikeyrotation shop/ledger not found\n",
        "the kubeconfig namespace applies"
    );
}

#[tokio::test]
async fn status_says_when_the_crd_is_not_installed() {
    let api = FakeApi::new();
    let server = api.listen().await.unwrap();
    let dir = std::env::temp_dir().join(format!("keyrotor-plugin-{}-nocrd", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, "default").unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_kubectl-keyrotor"))
            .args(["status", "-A"])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: the ApiKeyRotation API is not installed in this cluster (kubectl apply -f crds/)\n"
    );
}
