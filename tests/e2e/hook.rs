//! The verifier hook on a real control plane: the CRD's rules for
//! `spec.verifierHook` at admission, the operator reading the token Secret
//! with deploy/'s RBAC, a full cycle through the real API server with a
//! real `redis-server` as the external verifier and `keyrotor hook redis`,
//! clients logging in to Redis every 25 ms, and the hook killed mid-cycle
//! (`HookFailed` in status and as an Event, then the cycle completes).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use keyrotor::api::ApiKeyRotation;
use keyrotor::conditions::{events, reasons, types};
use keyrotor_testsupport::eventually;
use keyrotor_testsupport::redis::{
    Clients, HookProcess, KeySource, RedisServer, SecretVolume, sha256_hex,
};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use super::cluster;
use super::observer::Observer;
use super::operator::{Operator, keyrotor, logs_of};
use super::scenario::*;

const TOKEN: &str = "e2e-redis-hook-token";

/// A group whose consumers are all outside the cluster's pods (here the
/// Redis clients): nothing to wait for in it (`minConsumers: 0`); the
/// verifier group is the hook, which counts as the verifier found.
fn out_of_sight() -> serde_json::Value {
    json!({"minConsumers": 0})
}

fn spec(ns: &str, url: &str) -> serde_json::Value {
    let mut r = rotation(ns, "cache", json!({}), out_of_sight());
    r["spec"]["gracePeriod"]["minimum"] = json!("3s");
    r["spec"]["verifierHook"] = json!({"url": url, "tokenSecretRef": {"name": "redis-hook-token", "key": "token"}, "timeoutSeconds": 2});
    r
}

async fn key_of(secrets: &Api<Secret>) -> String {
    let s = secrets.get("cache-key").await.unwrap();
    String::from_utf8(s.data.unwrap()["key"].0.clone()).unwrap()
}

#[tokio::test]
async fn a_redis_password_rotates_through_the_hook_on_a_real_api_server() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-hook").await;
    let client = cluster.client().await;

    // Admission: plain http outside the cluster is refused by the schema.
    let mut outside = spec(&ns.name, "http://hooks.example.com/redis");
    outside["metadata"]["name"] = json!("outside");
    let out = cluster.kubectl(&["apply", "-f", "-"], Some(&outside.to_string()));
    assert!(
        !out.status.success(),
        "http:// outside the cluster was accepted"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.verifierHook.url"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let observer = Observer::start(client.clone(), &ns.name).await;
    let operator = Operator::watching(cluster, &ns.name, "hook");
    let redis = RedisServer::start().await;
    let mut hook = HookProcess::start(keyrotor(), &redis, TOKEN).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    create_token(&secrets).await;
    apply(&client, &ns.name, &spec(&ns.name, &hook.url())).await;
    wait_stable(&client, &ns.name, "cache", 1, Duration::from_secs(60)).await;
    let v1 = key_of(&secrets).await;
    assert_eq!(redis.passwords().await, [sha256_hex(&v1)]);

    let sources: Vec<Arc<dyn KeySource>> = (0..2)
        .map(|_| {
            Arc::new(SecretVolume {
                secrets: secrets.clone(),
                name: "cache-key".into(),
                report: None,
            }) as Arc<dyn KeySource>
        })
        .collect();
    let clients = Clients::start(&redis, sources);

    // One full cycle through the real API server.
    request_rotation(&client, &ns.name, "cache", "one").await;
    wait_stable(&client, &ns.name, "cache", 2, Duration::from_secs(90)).await;
    let v2 = key_of(&secrets).await;
    eventually(
        "Redis holds exactly version 2",
        Duration::from_secs(30),
        async || redis.passwords().await == [sha256_hex(&v2)],
    )
    .await;

    // The hook killed before staging: HookFailed in status and as an Event.
    hook.kill();
    request_rotation(&client, &ns.name, "cache", "two").await;
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &ns.name);
    eventually(
        "Ready=False HookFailed",
        Duration::from_secs(60),
        async || {
            let r = rotations.get("cache").await.unwrap();
            r.status.unwrap_or_default().conditions.iter().any(|c| {
                c.type_ == types::READY
                    && c.reason == reasons::HOOK_FAILED
                    && c.message.contains("stage version 3")
            })
        },
    )
    .await;
    let evs = cluster.ok(&["get", "events", "-n", &ns.name, "-o", "yaml"]);
    assert!(evs.contains(events::HOOK_FAILED), "a HookFailed event");
    assert_eq!(
        redis.passwords().await,
        [sha256_hex(&v2)],
        "nothing changed in Redis"
    );
    hook.restart().await;
    wait_stable(&client, &ns.name, "cache", 3, Duration::from_secs(120)).await;
    let v3 = key_of(&secrets).await;
    eventually(
        "Redis holds exactly version 3",
        Duration::from_secs(30),
        async || redis.passwords().await == [sha256_hex(&v3)],
    )
    .await;

    let logins = clients.stop().await;
    eprintln!(
        "e2e hook: {} logins, {} failed",
        logins.ok() + logins.failed(),
        logins.failed()
    );
    assert_eq!(logins.failed(), 0, "no login failed");
    assert!(logins.ok() > 50);
    check_history(&observer, "cache");
    let mut logs = logs_of(&[&operator]);
    logs.push(("redis hook".into(), hook.log()));
    assert_no_key_material(cluster, &ns.name, &observer, &logs);
}

/// The Redis hook as the issuer (`spec.issuerHook`) on the real API server:
/// the CRD checks the field at admission, each version's password is minted
/// by the hook and accepted by Redis before presenters get it, and Redis
/// ends each cycle with exactly the current password.
#[tokio::test]
async fn redis_issues_the_passwords_through_the_issuer_hook_on_a_real_api_server() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-issuer").await;
    let client = cluster.client().await;
    let issuer = |url: &str| {
        let mut r = rotation(&ns.name, "cache", json!({}), out_of_sight());
        r["spec"]["gracePeriod"]["minimum"] = json!("2s");
        r["spec"]["issuerHook"] = json!({"url": url, "tokenSecretRef": {"name": "redis-hook-token", "key": "token"}, "timeoutSeconds": 2});
        r
    };
    let mut outside = issuer("http://issuer.example.com/");
    outside["metadata"]["name"] = json!("outside");
    let out = cluster.kubectl(&["apply", "-f", "-"], Some(&outside.to_string()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("spec.issuerHook.url"),
        "{stderr}"
    );

    let observer = Observer::start(client.clone(), &ns.name).await;
    let operator = Operator::watching(cluster, &ns.name, "issuer");
    let redis = RedisServer::start().await;
    let hook = HookProcess::start_issuer(keyrotor(), &redis, TOKEN).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    create_token(&secrets).await;
    apply(&client, &ns.name, &issuer(&hook.url())).await;
    wait_stable(&client, &ns.name, "cache", 1, Duration::from_secs(60)).await;
    let mut keys = vec![key_of(&secrets).await];
    assert_eq!(redis.passwords().await, [sha256_hex(&keys[0])]);
    let v1 = secrets.get("cache-v1").await.unwrap();
    assert!(
        v1.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(keyrotor::wire::HOOK_ISSUED),
        "the version Secret records that the issuer minted its key"
    );

    let sources: Vec<Arc<dyn KeySource>> = (0..2)
        .map(|_| {
            Arc::new(SecretVolume {
                secrets: secrets.clone(),
                name: "cache-key".into(),
                report: None,
            }) as Arc<dyn KeySource>
        })
        .collect();
    let clients = Clients::start(&redis, sources);
    for (n, token) in [(2, "one"), (3, "two")] {
        request_rotation(&client, &ns.name, "cache", token).await;
        wait_stable(&client, &ns.name, "cache", n, Duration::from_secs(90)).await;
        let key = key_of(&secrets).await;
        assert!(!keys.contains(&key), "a new password for version {n}");
        eventually(
            "Redis holds exactly the current password",
            Duration::from_secs(30),
            async || redis.passwords().await == [sha256_hex(&key)],
        )
        .await;
        keys.push(key);
    }
    let logins = clients.stop().await;
    eprintln!(
        "e2e issuer: {} logins, {} failed",
        logins.ok() + logins.failed(),
        logins.failed()
    );
    assert_eq!(logins.failed(), 0, "no login failed");
    assert!(logins.ok() > 50);
    check_history(&observer, "cache");
    let mut logs = logs_of(&[&operator]);
    logs.push(("redis hook".into(), hook.log()));
    assert_no_key_material(cluster, &ns.name, &observer, &logs);
}

/// keyrotor authenticates to the hook with an audience-bound token of its
/// own ServiceAccount (TokenRequest, with deploy/'s RBAC), which the Redis
/// hook checks with a TokenReview against the real API server. A hook that
/// expects another audience refuses it: `HookFailed`, and every key stays.
#[tokio::test]
async fn the_hook_accepts_keyrotors_service_account_token_for_its_audience_only() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-hook-sa").await;
    let client = cluster.client().await;
    let audience = "redis-hook.e2e";
    let mut r = rotation(&ns.name, "cache", json!({}), out_of_sight());
    r["spec"]["gracePeriod"]["minimum"] = json!("2s");
    r["spec"]["verifierHook"] =
        json!({"url": "", "serviceAccountToken": {"audience": audience}, "timeoutSeconds": 2});

    let observer = Observer::start(client.clone(), &ns.name).await;
    let operator = Operator::watching(cluster, &ns.name, "hook-sa");
    let redis = RedisServer::start().await;
    let mut hook = HookProcess::start(keyrotor(), &redis, TOKEN).await;
    let allowed = format!("{}/{}", cluster::OPERATOR_NS, cluster::OPERATOR_SA);
    hook.review = Some((audience.into(), allowed.clone()));
    hook.restart().await;
    r["spec"]["verifierHook"]["url"] = json!(hook.url());
    apply(&client, &ns.name, &r).await;
    wait_stable(&client, &ns.name, "cache", 1, Duration::from_secs(60)).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let v1 = key_of(&secrets).await;
    assert_eq!(redis.passwords().await, [sha256_hex(&v1)]);
    request_rotation(&client, &ns.name, "cache", "one").await;
    wait_stable(&client, &ns.name, "cache", 2, Duration::from_secs(90)).await;
    let v2 = key_of(&secrets).await;
    eventually(
        "Redis holds exactly version 2",
        Duration::from_secs(30),
        async || redis.passwords().await == [sha256_hex(&v2)],
    )
    .await;

    // The hook now wants another audience: keyrotor's token is refused.
    hook.review = Some(("another-hook".into(), allowed.clone()));
    hook.restart().await;
    request_rotation(&client, &ns.name, "cache", "two").await;
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &ns.name);
    eventually(
        "Ready=False HookFailed (401)",
        Duration::from_secs(60),
        async || {
            let r = rotations.get("cache").await.unwrap();
            r.status.unwrap_or_default().conditions.iter().any(|c| {
                c.type_ == types::READY
                    && c.reason == reasons::HOOK_FAILED
                    && c.message.contains("answered HTTP 401")
                    && c.message.contains("serviceAccountToken.audience")
            })
        },
    )
    .await;
    assert_eq!(
        redis.passwords().await,
        [sha256_hex(&v2)],
        "nothing changed in Redis"
    );
    assert_eq!(key_of(&secrets).await, v2, "presenters keep version 2");
    hook.review = Some((audience.into(), allowed));
    hook.restart().await;
    wait_stable(&client, &ns.name, "cache", 3, Duration::from_secs(120)).await;
    let v3 = key_of(&secrets).await;
    eventually(
        "Redis holds exactly version 3",
        Duration::from_secs(30),
        async || redis.passwords().await == [sha256_hex(&v3)],
    )
    .await;
    check_history(&observer, "cache");
    let mut logs = logs_of(&[&operator]);
    logs.push(("redis hook".into(), hook.log()));
    assert_no_key_material(cluster, &ns.name, &observer, &logs);
}

/// A hook that refuses a step for good (here the Redis hook pointed at a
/// user that does not exist: HTTP 422 with its reason) holds the rotation
/// on the real API server: `Ready=False HookRefused`, a `HookRefused`
/// event, `status.hookRefusal`, and no further call, while clients keep
/// logging in with the current password. `kubectl annotate
/// keyrotor.dev/retry-hook`, as the message says, asks again once the hook
/// is fixed, and the cycle completes.
#[tokio::test]
async fn a_refusal_holds_the_rotation_until_kubectl_annotate_asks_again() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-hook-refused").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    let operator = Operator::watching(cluster, &ns.name, "hook-refused");
    let redis = RedisServer::start().await;
    let mut hook = HookProcess::start(keyrotor(), &redis, TOKEN).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    create_token(&secrets).await;
    apply(&client, &ns.name, &spec(&ns.name, &hook.url())).await;
    wait_stable(&client, &ns.name, "cache", 1, Duration::from_secs(60)).await;
    let v1 = key_of(&secrets).await;
    let sources: Vec<Arc<dyn KeySource>> = (0..2)
        .map(|_| {
            Arc::new(SecretVolume {
                secrets: secrets.clone(),
                name: "cache-key".into(),
                report: None,
            }) as Arc<dyn KeySource>
        })
        .collect();
    let clients = Clients::start(&redis, sources);

    // The hook now manages a user Redis does not have: stage is refused.
    hook.user = "app-renamed".into();
    hook.restart().await;
    request_rotation(&client, &ns.name, "cache", "one").await;
    let rotations: Api<ApiKeyRotation> = Api::namespaced(client.clone(), &ns.name);
    let refused = "the verifier hook refused to stage version 2 (HTTP 422): Redis user \"app-renamed\" does not exist; create it (ACL SETUSER) first; fix the cause, then change the spec or run kubectl annotate apikeyrotation cache";
    eventually(
        "Ready=False HookRefused",
        Duration::from_secs(60),
        async || {
            let r = rotations.get("cache").await.unwrap();
            r.status.unwrap_or_default().conditions.iter().any(|c| {
                c.type_ == types::READY
                    && c.reason == reasons::HOOK_REFUSED
                    && c.message.starts_with(refused)
            })
        },
    )
    .await;
    let status = rotations.get("cache").await.unwrap().status.unwrap();
    let record = status.hook_refusal.expect("status.hookRefusal");
    assert_eq!(
        (
            record.hook.as_str(),
            record.step.as_str(),
            record.version,
            record.status
        ),
        ("verifierHook", "stage", 2, 422)
    );
    let evs = cluster.ok(&["get", "events", "-n", &ns.name, "-o", "yaml"]);
    assert!(evs.contains(events::HOOK_REFUSED), "a HookRefused event");
    // Not asked again: the hook logged one refusal, also after a while.
    let refusals = || hook.log().matches("hook request refused").count();
    assert_eq!(refusals(), 1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(refusals(), 1, "a refusal is not asked again");
    assert_eq!(key_of(&secrets).await, v1, "presenters keep version 1");
    assert_eq!(
        redis.passwords().await,
        [sha256_hex(&v1)],
        "Redis unchanged"
    );

    // Fixed, then asked again the way the message says.
    hook.user = keyrotor_testsupport::redis::USER.into();
    hook.restart().await;
    let retry = format!("{}=after-fix", keyrotor::wire::RETRY_HOOK);
    cluster.ok(&[
        "annotate",
        "apikeyrotation",
        "cache",
        "-n",
        &ns.name,
        &retry,
        "--overwrite",
    ]);
    wait_stable(&client, &ns.name, "cache", 2, Duration::from_secs(90)).await;
    let v2 = key_of(&secrets).await;
    eventually(
        "Redis holds exactly version 2 and the refusal is cleared",
        Duration::from_secs(30),
        async || {
            let cleared = rotations
                .get("cache")
                .await
                .unwrap()
                .status
                .is_some_and(|s| s.hook_refusal.is_none());
            cleared && redis.passwords().await == [sha256_hex(&v2)]
        },
    )
    .await;
    let logins = clients.stop().await;
    eprintln!(
        "e2e hook refusal: {} logins, {} failed",
        logins.ok() + logins.failed(),
        logins.failed()
    );
    assert_eq!(logins.failed(), 0, "no login failed");
    check_history(&observer, "cache");
    let mut logs = logs_of(&[&operator]);
    logs.push(("redis hook".into(), hook.log()));
    assert_no_key_material(cluster, &ns.name, &observer, &logs);
}

/// The Secret `redis-hook-token` the rotations' `tokenSecretRef` names.
async fn create_token(secrets: &Api<Secret>) {
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "redis-hook-token"}, "stringData": {"token": TOKEN},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &token)
        .await
        .unwrap();
}
