//! The verifier hook end to end on the in-memory API: the real controller,
//! a real `redis-server` on loopback as the external verifier, the reference
//! hook (`keyrotor hook redis`) as its own process, and presenter clients
//! that log in to Redis every 25 ms with the key their volume holds (each
//! reloads it 100–600 ms after a change, and reports only what it loaded).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use keyrotor::conditions::{events, reasons, types};
use keyrotor_testsupport::harness::{Harness, NS};
use keyrotor_testsupport::redis::{
    Clients, HookProcess, KeySource, RedisServer, SecretVolume, sha256_hex,
};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::scenario::{P, V, check_invariants};

const TOKEN: &str = "hook-token-for-tests";
const CLIENTS: usize = 3;

fn data(s: &Secret, field: &str) -> Option<String> {
    let b = s.data.as_ref()?.get(field)?;
    Some(String::from_utf8_lossy(&b.0).into_owned())
}

/// The hook's role: which spec field names it.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Verifier,
    Issuer,
}

fn spec(role: Role, hook_url: &str, min_grace: &str) -> String {
    let field = match role {
        Role::Verifier => "verifierHook",
        Role::Issuer => "issuerHook",
    };
    format!(
        "secrets: {{verifier: {V}, presenter: {P}}}\n\
         gracePeriod: {{minimum: {min_grace}, maximum: 120s}}\n\
         consumers: {{presenters: {{nudge: false}}}}\n\
         {field}: {{url: '{hook_url}', tokenSecretRef: {{name: redis-hook-token, key: token}}, timeoutSeconds: 2}}\n"
    )
}

/// Redis, the hook, the token Secret, presenter pods whose reports come from
/// the clients (the harness's kubelet leaves them alone), and rotation `api`
/// published at version 1.
async fn started(role: Role, min_grace: &str) -> (Harness, RedisServer, HookProcess, Clients) {
    let h = Harness::new().await;
    let redis = RedisServer::start().await;
    let bin = env!("CARGO_BIN_EXE_keyrotor").as_ref();
    let hook = match role {
        Role::Verifier => HookProcess::start(bin, &redis, TOKEN).await,
        Role::Issuer => HookProcess::start_issuer(bin, &redis, TOKEN).await,
    };
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "redis-hook-token", "namespace": NS},
        "stringData": {"token": TOKEN},
    }))
    .unwrap();
    h.secrets()
        .create(&PostParams::default(), &token)
        .await
        .unwrap();
    let mut sources: Vec<Arc<dyn KeySource>> = Vec::new();
    for i in 0..CLIENTS {
        let pod = format!("client-{i}");
        h.set_stuck(&pod, true);
        h.add_pod(&pod, &[P], &[("app", "client")]).await;
        sources.push(Arc::new(SecretVolume {
            secrets: h.secrets(),
            name: P.into(),
            report: Some((h.pods(), pod, "api".into())),
        }));
    }
    h.apply("api", &spec(role, &hook.url(), min_grace)).await;
    h.wait_published(V, P, &[1], 1, 20).await;
    let clients = Clients::start(&redis, sources);
    (h, redis, hook, clients)
}

async fn request_rotation(h: &Harness, hook: &HookProcess, min_grace: &str, n: u64) {
    let role = if h.rotation("api").await.spec.issuer_hook.is_some() {
        Role::Issuer
    } else {
        Role::Verifier
    };
    let spec = spec(role, &hook.url(), min_grace);
    h.apply("api", &format!("{spec}rotationRequest: r{n}\n"))
        .await;
}

async fn current_key(h: &Harness) -> String {
    data(&h.secret(P).await.unwrap(), "key").unwrap()
}

async fn ready(h: &Harness) -> (String, String) {
    let rot = h.rotation("api").await;
    let c = rot
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == types::READY);
    c.map(|c| (c.reason, c.message)).unwrap_or_default()
}

/// I4 for the hook: no key appears in the rotation (spec, status), events,
/// or the hook's log.
async fn assert_no_key_leaked(h: &Harness, hook: &HookProcess, keys: &[String]) {
    let rot = serde_json::to_string(&h.rotation("api").await).unwrap();
    let api: Api<Event> = Api::namespaced(h.client.clone(), NS);
    let evs = serde_json::to_string(&api.list(&Default::default()).await.unwrap().items).unwrap();
    let log = hook.log();
    assert!(log.contains("done"), "the hook logged its steps: {log}");
    for k in keys {
        for (what, text) in [("rotation", &rot), ("events", &evs), ("hook log", &log)] {
            assert!(!text.contains(k.as_str()), "a key leaked into the {what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rotations_through_redis_reject_no_login_and_the_naive_overwrite_rejects_some() {
    let (h, redis, hook, clients) = started(Role::Verifier, "1s").await;
    let began = Instant::now();
    let mut keys = vec![current_key(&h).await];
    for n in 2..=21 {
        request_rotation(&h, &hook, "1s", n).await;
        h.wait_published(V, P, &[n], n, 60).await;
        // The hook retires the old version after the verifier Secret shrank
        // and before the version's key is deleted.
        let old = format!("api-v{}", n - 1);
        h.wait("old version deleted", 30, || async {
            h.secret(&old).await.is_none()
        })
        .await;
        let key = current_key(&h).await;
        assert_eq!(
            redis.passwords().await,
            [sha256_hex(&key)],
            "after rotation {n} Redis holds exactly the current password"
        );
        keys.push(key);
    }
    let cycle = began.elapsed() / 20;
    let logins = clients.stop().await;
    eprintln!(
        "keyrotor: 20 rotations, {} logins, {} failed, {cycle:?} per cycle",
        logins.ok() + logins.failed(),
        logins.failed()
    );
    assert!(logins.ok() > 20 * 20, "the clients logged in all along");
    assert_eq!(logins.failed(), 0, "no login failed under keyrotor");
    check_invariants(&h, &[]);
    assert_no_key_leaked(&h, &hook, &keys).await;

    // The same clients and cadence, rotated the naive way: replace the
    // password in Redis, then update the Secret the clients read.
    let naive = "naive-key";
    let first = "naive-0-0123456789abcdef0123456789";
    redis.reset_password(first).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": naive, "namespace": NS}, "stringData": {"key": first},
    }))
    .unwrap();
    h.secrets()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let sources: Vec<Arc<dyn KeySource>> = (0..CLIENTS)
        .map(|_| {
            Arc::new(SecretVolume {
                secrets: h.secrets(),
                name: naive.into(),
                report: None,
            }) as Arc<dyn KeySource>
        })
        .collect();
    let clients = Clients::start(&redis, sources);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in 1..=20 {
        let key = format!("naive-{n}-0123456789abcdef0123456789");
        redis.reset_password(&key).await;
        let patch = json!({"stringData": {"key": key}});
        h.secrets()
            .patch(naive, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        tokio::time::sleep(cycle.min(Duration::from_secs(3))).await;
    }
    let naive_logins = clients.stop().await;
    eprintln!(
        "naive overwrite: 20 rotations, {} logins, {} failed",
        naive_logins.ok() + naive_logins.failed(),
        naive_logins.failed()
    );
    assert!(
        naive_logins.failed() > 0,
        "the naive overwrite rejects the clients that still hold the old password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_killed_mid_cycle_and_restarted_the_rotation_completes_with_exactly_the_current_password()
 {
    let (h, redis, mut hook, clients) = started(Role::Verifier, "3s").await;
    let v1 = current_key(&h).await;

    // Killed while staging: keyrotor cannot reach it, says so, and no
    // presenter gets version 2.
    hook.kill();
    request_rotation(&h, &hook, "3s", 2).await;
    h.wait("Ready=False HookFailed (stage)", 30, || async {
        let (reason, msg) = ready(&h).await;
        reason == reasons::HOOK_FAILED
            && msg.contains("stage version 2")
            && msg.contains("cannot connect")
    })
    .await;
    assert!(
        h.events(events::HOOK_FAILED)
            .await
            .iter()
            .any(|m| m.contains("stage version 2")),
        "a HookFailed event says what failed"
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // a few backed-off retries
    assert_eq!(h.current(P).await, Some(1), "no presenter gets version 2");
    assert_eq!(redis.passwords().await, [sha256_hex(&v1)]);
    hook.restart().await;
    h.wait_published(V, P, &[1, 2], 2, 60).await;
    let v2 = current_key(&h).await;
    let mut both = vec![sha256_hex(&v1), sha256_hex(&v2)];
    both.sort();
    assert_eq!(redis.passwords().await, both, "grace: Redis accepts both");
    h.wait_published(V, P, &[2], 2, 60).await;
    // The hook's retire comes right before version 1's Secret is deleted.
    h.wait("version 1 retired", 60, || async {
        h.secret("api-v1").await.is_none()
    })
    .await;
    assert_eq!(redis.passwords().await, [sha256_hex(&v2)]);

    // Killed after promotion, before the old password is removed: the old
    // password stays in Redis until the restarted hook removes it.
    request_rotation(&h, &hook, "3s", 3).await;
    h.wait_published(V, P, &[2, 3], 3, 60).await;
    hook.kill();
    let v3 = current_key(&h).await;
    h.wait("Ready=False HookFailed (retire)", 30, || async {
        let (reason, msg) = ready(&h).await;
        reason == reasons::HOOK_FAILED && msg.contains("retire version 2")
    })
    .await;
    let mut both = vec![sha256_hex(&v2), sha256_hex(&v3)];
    both.sort();
    assert_eq!(
        redis.passwords().await,
        both,
        "version 2 is not removed without the hook"
    );
    assert!(
        h.secret("api-v2").await.is_some(),
        "version 2's key is kept until the hook retired it"
    );
    hook.restart().await;
    h.wait("version 2 retired", 60, || async {
        h.secret("api-v2").await.is_none()
    })
    .await;
    assert_eq!(
        redis.passwords().await,
        [sha256_hex(&v3)],
        "exactly the current password"
    );
    h.wait("Ready again", 30, || async {
        ready(&h).await.0 != reasons::HOOK_FAILED
    })
    .await;

    let logins = clients.stop().await;
    eprintln!(
        "hook killed twice: {} logins, {} failed",
        logins.ok() + logins.failed(),
        logins.failed()
    );
    assert_eq!(logins.failed(), 0);
    assert!(logins.ok() > 100);
    check_invariants(&h, &[]);
    assert_no_key_leaked(&h, &hook, &[v1, v2, v3]).await;
}

/// The Redis hook as an issuer: it mints every password (derived, so a
/// repeated `issue` answers the same one), Redis accepts it before any
/// presenter has it, and it is removed once presenters left it. Killed
/// while a version is to be issued, nothing moves until it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_as_issuer_mints_every_password_through_ten_rotations_and_a_kill_without_a_failed_login()
 {
    let (h, redis, mut hook, clients) = started(Role::Issuer, "1s").await;
    let mut keys = vec![current_key(&h).await];
    assert_eq!(redis.passwords().await, [sha256_hex(&keys[0])]);
    for n in 2..=11 {
        if n == 6 {
            hook.kill();
            request_rotation(&h, &hook, "1s", n).await;
            h.wait("Ready=False HookFailed (issue)", 30, || async {
                let (reason, msg) = ready(&h).await;
                reason == reasons::HOOK_FAILED
                    && msg.contains("the issuer hook could not issue version 6")
                    && msg.contains("cannot connect")
            })
            .await;
            assert!(
                h.secret("api-v6").await.is_none(),
                "no key without the issuer"
            );
            assert_eq!(h.current(P).await, Some(5));
            hook.restart().await;
        } else {
            request_rotation(&h, &hook, "1s", n).await;
        }
        h.wait_published(V, P, &[n], n, 60).await;
        let old = format!("api-v{}", n - 1);
        h.wait("old version deleted", 30, || async {
            h.secret(&old).await.is_none()
        })
        .await;
        let key = current_key(&h).await;
        assert!(!keys.contains(&key), "a new password every version");
        assert_eq!(
            redis.passwords().await,
            [sha256_hex(&key)],
            "after rotation {n} Redis holds exactly the current password"
        );
        let ann = h
            .secret(&format!("api-v{n}"))
            .await
            .unwrap()
            .metadata
            .annotations;
        assert!(
            ann.unwrap_or_default()
                .contains_key(keyrotor::wire::HOOK_ISSUED)
        );
        keys.push(key);
    }
    let logins = clients.stop().await;
    eprintln!(
        "issuer: 10 rotations and a kill, {} logins, {} failed",
        logins.ok() + logins.failed(),
        logins.failed()
    );
    assert!(logins.ok() > 100, "the clients logged in all along");
    assert_eq!(logins.failed(), 0, "no login failed");
    check_invariants(&h, &[]);
    assert_no_key_leaked(&h, &hook, &keys).await;
}

/// The reference hook's side of the protocol, called directly: each step is
/// idempotent by Redis's state (a repeat answers `done` and changes nothing),
/// and bad requests are refused with the documented status.
#[tokio::test]
async fn the_redis_hook_answers_repeats_done_and_refuses_bad_requests() {
    use keyrotor::controller::hook::{Endpoint, HookError, call};
    use keyrotor_consumer::hook::{API_VERSION, HookRequest, Outcome, idempotency_key};

    let redis = RedisServer::start().await;
    let hook = HookProcess::start(env!("CARGO_BIN_EXE_keyrotor").as_ref(), &redis, TOKEN).await;
    let endpoint = Endpoint {
        url: hook.url(),
        ca_bundle: None,
        timeout: Duration::from_secs(5),
    };
    let request = |step: &str, v: u64, key: &str| HookRequest {
        api_version: API_VERSION.into(),
        step: step.into(),
        idempotency_key: idempotency_key(NS, "api", "uid-of-api", v, step),
        namespace: NS.into(),
        rotation: "api".into(),
        uid: "uid-of-api".into(),
        version: v,
        sha256: sha256_hex(key),
        key: (step == "stage").then(|| key.to_string()),
        key_id: None,
        username: None,
    };
    let status = |r: Result<Outcome, HookError>| match r {
        Ok(Outcome::Done(_)) => 200,
        Ok(Outcome::Refused { status, reason }) => {
            assert!(reason.is_some(), "a refusal says why ({status})");
            status
        }
        Ok(other) => panic!("{other:?}"),
        Err(HookError::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    let (k1, k2) = ("first-key-0123456789abcdef", "second-key-0123456789abcdef");
    for _ in 0..2 {
        assert_eq!(
            status(call(&endpoint, TOKEN, &request("stage", 1, k1)).await),
            200
        );
        assert_eq!(
            redis.passwords().await,
            [sha256_hex(k1)],
            "a repeat adds nothing"
        );
    }
    assert_eq!(
        status(call(&endpoint, TOKEN, &request("retire", 1, k1)).await),
        409,
        "the only password is never removed"
    );
    assert_eq!(
        status(call(&endpoint, TOKEN, &request("stage", 2, k2)).await),
        200
    );
    for _ in 0..2 {
        assert_eq!(
            status(call(&endpoint, TOKEN, &request("retire", 1, k1)).await),
            200
        );
        assert_eq!(
            redis.passwords().await,
            [sha256_hex(k2)],
            "a repeat removes nothing more"
        );
    }
    assert_eq!(
        status(call(&endpoint, "wrong-token", &request("stage", 3, k1)).await),
        401
    );
    let mut mismatched = request("stage", 3, k1);
    mismatched.sha256 = sha256_hex(k2);
    assert_eq!(status(call(&endpoint, TOKEN, &mismatched).await), 400);
    assert_eq!(
        status(call(&endpoint, TOKEN, &request("issue", 3, k1)).await),
        400,
        "issue is refused without --issuer-secret-file"
    );
    let mut old = request("stage", 3, k1);
    old.api_version = "hooks.keyrotor.dev/v0".into();
    assert_eq!(status(call(&endpoint, TOKEN, &old).await), 400);
    assert_eq!(
        redis.passwords().await,
        [sha256_hex(k2)],
        "refused requests changed nothing"
    );
    let log = hook.log();
    for k in [k1, k2] {
        assert!(
            !log.contains(k) && !log.contains(&sha256_hex(k)),
            "the hook logged a key or digest"
        );
    }
}
