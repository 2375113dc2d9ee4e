//! The PostgreSQL hook (`keyrotor hook postgres`, alternating users) on a
//! real PostgreSQL 15 on loopback, as its own process: its side of the
//! protocol called directly ([`steps`]), and whole rotations by the real
//! controller on the in-memory API with clients that open a new session
//! every 25 ms with the user name and password of their presenter Secret
//! (each reloads them 100–600 ms after a change, and reports only what it
//! loaded). The server logs every statement, and no password may reach its
//! log.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use keyrotor::conditions::{reasons, types};
use keyrotor_testsupport::harness::{Harness, NS};
use keyrotor_testsupport::postgres::{
    Clients, HOOK_ADMIN, NAIVE_ROLE, PgHook, PostgresServer, PresenterSecret, ROLES,
};
use keyrotor_testsupport::redis::{SecretVolume, sha256_hex};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::scenario::{P, V, check_invariants};

mod steps;

const TOKEN: &str = "pg-hook-token-for-tests";
const UID: &str = "6d1c8a2e-0b7f-4e55-9a3d-2f4e6b8c0d1a";
const CLIENTS: usize = 3;

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_keyrotor").as_ref()
}

/// The SQLSTATE of a refused login, `ok` for a login.
async fn login(pg: &PostgresServer, user: &str, password: &str) -> String {
    match pg.app_login(user, password).await {
        Ok(()) => "ok".into(),
        Err(e) => e.sqlstate().unwrap_or("no answer").into(),
    }
}

/// No key reached the hook's log or the server's, and (the admin holding
/// `SET ON PARAMETER`) no verifier reached the server's either.
fn assert_logs_clean(pg: &PostgresServer, hook: &PgHook, keys: &[String], verifier_shown: bool) {
    let (server, own) = (pg.log(), hook.log());
    for k in keys {
        assert!(!server.contains(k.as_str()), "a password in the server log");
        assert!(!own.contains(k.as_str()), "a password in the hook log");
        assert!(!own.contains(&sha256_hex(k)), "a digest in the hook log");
    }
    assert!(
        !own.contains("SCRAM-SHA-256$"),
        "a verifier in the hook log"
    );
    if !verifier_shown {
        assert!(
            !server.contains("SCRAM-SHA-256$"),
            "a verifier in the server log"
        );
    }
}

/// The rotation's spec: alternating users, the hook as verifier (or issuer).
fn spec(hook: &PgHook, issuer: bool, min_grace: &str) -> String {
    let field = if issuer { "issuerHook" } else { "verifierHook" };
    format!(
        "secrets: {{verifier: {V}, presenter: {P}}}\n\
         usernames: [{}, {}]\n\
         gracePeriod: {{minimum: {min_grace}, maximum: 120s}}\n\
         consumers: {{presenters: {{nudge: false}}}}\n\
         {field}: {{url: '{}', tokenSecretRef: {{name: pg-hook-token, key: token}}, timeoutSeconds: 2}}\n",
        ROLES[0],
        ROLES[1],
        hook.url()
    )
}

fn data(s: &Secret, field: &str) -> Option<String> {
    let b = s.data.as_ref()?.get(field)?;
    Some(String::from_utf8_lossy(&b.0).into_owned())
}

/// The presenter Secret's user name and password (the version they name).
async fn presented(h: &Harness) -> (String, String) {
    let s = h.secret(P).await.expect("the presenter Secret");
    let username = data(&s, keyrotor::wire::USERNAME_FILE).expect(
        "the presenter Secret carries the version's user name (`username`, spec.usernames)",
    );
    (username, data(&s, "key").unwrap())
}

/// PostgreSQL with the documented roles, the hook, its token Secret,
/// presenter pods whose reports come from the clients, and rotation `api`
/// published at version 1.
async fn started(issuer: bool, min_grace: &str) -> (Harness, PostgresServer, PgHook, Clients) {
    let h = Harness::new().await;
    let pg = PostgresServer::start().await;
    pg.setup_roles().await;
    let hook = if issuer {
        PgHook::start_issuer(bin(), &pg, TOKEN).await
    } else {
        PgHook::start(bin(), &pg, TOKEN).await
    };
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "pg-hook-token", "namespace": NS},
        "stringData": {"token": TOKEN},
    }))
    .unwrap();
    h.secrets()
        .create(&PostParams::default(), &token)
        .await
        .unwrap();
    let mut sources = Vec::new();
    for i in 0..CLIENTS {
        let pod = format!("client-{i}");
        h.set_stuck(&pod, true);
        h.add_pod(&pod, &[P], &[("app", "client")]).await;
        sources.push(PresenterSecret {
            volume: SecretVolume {
                secrets: h.secrets(),
                name: P.into(),
                report: Some((h.pods(), pod, "api".into())),
            },
        });
    }
    h.apply("api", &spec(&hook, issuer, min_grace)).await;
    h.wait_published(V, P, &[1], 1, 30).await;
    let (user, key) = presented(&h).await;
    assert_eq!(user, ROLES[0], "version 1 carries usernames[0]");
    assert_eq!(login(&pg, &user, &key).await, "ok");
    let clients = Clients::start(&pg, sources);
    (h, pg, hook, clients)
}

async fn request_rotation(h: &Harness, hook: &PgHook, issuer: bool, min_grace: &str, n: u64) {
    let spec = spec(hook, issuer, min_grace);
    h.apply("api", &format!("{spec}rotationRequest: r{n}\n"))
        .await;
}

/// `(reason, message)` of the rotation's Ready condition.
async fn ready(h: &Harness) -> (String, String) {
    let c = h
        .rotation("api")
        .await
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == types::READY);
    c.map(|c| (c.reason, c.message)).unwrap_or_default()
}

/// Exactly one role of the pair logs in: the current version's, marked
/// with it, and it logs in with the current password; the other does not
/// log in with its last password.
async fn assert_one_login_role_holding_the_current_password(
    h: &Harness,
    pg: &PostgresServer,
    previous: &(String, String),
) -> (String, String) {
    let n = h.current(P).await.unwrap();
    let (user, key) = presented(h).await;
    let uid = h.rotation("api").await.metadata.uid.unwrap();
    assert_eq!(
        pg.login_roles().await,
        [(
            user.clone(),
            Some(format!("keyrotor rotation {uid} version {n}"))
        )],
        "version {n}: one login role, marked with it"
    );
    assert_eq!(login(pg, &user, &key).await, "ok");
    assert_ne!(user, previous.0, "the roles alternate");
    assert_eq!(
        login(pg, &previous.0, &previous.1).await,
        "28000",
        "the previous version's role cannot log in"
    );
    (user, key)
}

/// I4 for the hook: no key in the rotation, events, the hook's log or the
/// server's (which logs every statement), and no verifier either.
async fn assert_no_key_leaked(h: &Harness, pg: &PostgresServer, hook: &PgHook, keys: &[String]) {
    let rot = serde_json::to_string(&h.rotation("api").await).unwrap();
    let api: Api<Event> = Api::namespaced(h.client.clone(), NS);
    let evs = serde_json::to_string(&api.list(&Default::default()).await.unwrap().items).unwrap();
    for k in keys {
        assert!(!rot.contains(k.as_str()), "a key in the rotation");
        assert!(!evs.contains(k.as_str()), "a key in the events");
    }
    assert!(hook.log().contains("done"), "the hook logged its steps");
    assert_logs_clean(pg, hook, keys, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rotations_alternating_postgres_roles_refuse_no_login_and_the_naive_rotation_refuses_some()
 {
    let (h, pg, hook, clients) = started(false, "1s").await;
    let began = Instant::now();
    let mut last = presented(&h).await;
    let mut keys = vec![last.1.clone()];
    for n in 2..=21 {
        request_rotation(&h, &hook, false, "1s", n).await;
        h.wait_published(V, P, &[n], n, 60).await;
        let old = format!("api-v{}", n - 1);
        h.wait("old version deleted", 30, || async {
            h.secret(&old).await.is_none()
        })
        .await;
        last = assert_one_login_role_holding_the_current_password(&h, &pg, &last).await;
        keys.push(last.1.clone());
    }
    let cycle = began.elapsed() / 20;
    let logins = clients.stop().await;
    let (ours, ours_failed) = (logins.total(), logins.refused() + logins.errors());
    assert!(logins.ok() > 20 * 20, "the clients logged in all along");
    assert_eq!(logins.refused(), 0, "no login refused under keyrotor");
    assert_eq!(logins.errors(), 0, "no login failed otherwise");
    check_invariants(&h, &[]);
    assert_no_key_leaked(&h, &pg, &hook, &keys).await;

    // The same clients and cadence, rotated the naive way: one login role,
    // `ALTER ROLE app_naive PASSWORD …`, then the Secret the clients read.
    let naive = "naive-key";
    let first = "naive-0-0123456789abcdef0123456789";
    pg.set_naive_password(first).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": naive, "namespace": NS},
        "stringData": {keyrotor::wire::USERNAME_FILE: NAIVE_ROLE, keyrotor::wire::KEY: first},
    }))
    .unwrap();
    h.secrets()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let sources = (0..CLIENTS)
        .map(|_| PresenterSecret {
            volume: SecretVolume {
                secrets: h.secrets(),
                name: naive.into(),
                report: None,
            },
        })
        .collect();
    let clients = Clients::start(&pg, sources);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in 1..=20 {
        let key = format!("naive-{n}-0123456789abcdef0123456789");
        pg.set_naive_password(&key).await;
        let patch = json!({"stringData": {"key": key}});
        h.secrets()
            .patch(naive, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        tokio::time::sleep(cycle.min(Duration::from_secs(3))).await;
    }
    let naive_logins = clients.stop().await;
    eprintln!(
        "keyrotor: {ours_failed} failed of {ours} logins (20 rotations, {cycle:?} per cycle); \
         naive: {} failed of {}",
        naive_logins.refused() + naive_logins.errors(),
        naive_logins.total()
    );
    assert!(
        naive_logins.refused() > 0,
        "the naive rotation refuses the clients that still hold the old password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_killed_mid_stage_and_before_retire_restarts_and_the_database_ends_with_one_login_role()
 {
    let (h, pg, mut hook, clients) = started(false, "3s").await;
    let v1 = presented(&h).await;
    let [blue, green] = ROLES;

    // Killed mid-stage: its transaction on app_green waits for a lock the
    // test holds; the hook dies; the lock goes; the orphaned transaction
    // may still commit. Nobody is cut off, and no presenter moves.
    let mut holder = pg.quiet_admin().await;
    holder
        .query(&format!("BEGIN; ALTER ROLE {green} CONNECTION LIMIT -1"))
        .await
        .unwrap();
    request_rotation(&h, &hook, false, "3s", 2).await;
    h.wait("the hook's stage waits for the lock", 30, || async {
        let mut root = pg.quiet_admin().await;
        let waiting = root
            .query(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = '{HOOK_ADMIN}' \
                 AND wait_event_type = 'Lock'"
            ))
            .await
            .unwrap();
        root.close().await;
        waiting.rows != [[Some("0".to_string())]]
    })
    .await;
    hook.kill();
    holder.query("ROLLBACK").await.unwrap();
    holder.close().await;
    h.wait("Ready=False HookFailed (stage)", 30, || async {
        let (reason, msg) = ready(&h).await;
        reason == reasons::HOOK_FAILED && msg.contains("stage version 2")
    })
    .await;
    assert_eq!(h.current(P).await, Some(1), "no presenter gets version 2");
    assert_eq!(login(&pg, blue, &v1.1).await, "ok");
    hook.restart().await;
    h.wait_published(V, P, &[2], 2, 90).await;
    h.wait("version 1 retired", 60, || async {
        h.secret("api-v1").await.is_none()
    })
    .await;
    let v2 = assert_one_login_role_holding_the_current_password(&h, &pg, &v1).await;
    assert_eq!(v2.0, green);

    // Killed after promotion, before the old role is disabled: it logs in
    // until the restarted hook retires it.
    request_rotation(&h, &hook, false, "3s", 3).await;
    h.wait_published(V, P, &[2, 3], 3, 60).await;
    hook.kill();
    h.wait("Ready=False HookFailed (retire)", 30, || async {
        let (reason, msg) = ready(&h).await;
        reason == reasons::HOOK_FAILED && msg.contains("retire version 2")
    })
    .await;
    assert_eq!(
        pg.login_roles().await.len(),
        2,
        "version 2 is not retired without the hook"
    );
    assert_eq!(login(&pg, green, &v2.1).await, "ok");
    assert!(
        h.secret("api-v2").await.is_some(),
        "version 2's key is kept"
    );
    hook.restart().await;
    h.wait("version 2 retired", 60, || async {
        h.secret("api-v2").await.is_none()
    })
    .await;
    let v3 = assert_one_login_role_holding_the_current_password(&h, &pg, &v2).await;
    assert_eq!(v3.0, blue);
    h.wait("Ready again", 30, || async {
        ready(&h).await.0 != reasons::HOOK_FAILED
    })
    .await;

    let logins = clients.stop().await;
    eprintln!(
        "hook killed mid-stage and before retire: {} failed of {} logins",
        logins.refused() + logins.errors(),
        logins.total()
    );
    assert_eq!((logins.refused(), logins.errors()), (0, 0));
    assert!(logins.ok() > 100);
    check_invariants(&h, &[]);
    assert_no_key_leaked(&h, &pg, &hook, &[v1.1, v2.1, v3.1]).await;
}

/// The hook as the issuer: it mints every password (derived), stages it on
/// the named role before any presenter has it, and disables the old role
/// once presenters left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_as_issuer_mints_every_password_through_five_rotations_without_a_refused_login() {
    let (h, pg, hook, clients) = started(true, "1s").await;
    let mut last = presented(&h).await;
    let mut keys = vec![last.1.clone()];
    for n in 2..=6 {
        request_rotation(&h, &hook, true, "1s", n).await;
        h.wait_published(V, P, &[n], n, 60).await;
        let old = format!("api-v{}", n - 1);
        h.wait("old version deleted", 30, || async {
            h.secret(&old).await.is_none()
        })
        .await;
        last = assert_one_login_role_holding_the_current_password(&h, &pg, &last).await;
        assert!(!keys.contains(&last.1), "a new password every version");
        keys.push(last.1.clone());
    }
    let logins = clients.stop().await;
    eprintln!(
        "issuer: {} failed of {} logins",
        logins.refused() + logins.errors(),
        logins.total()
    );
    assert_eq!((logins.refused(), logins.errors()), (0, 0));
    assert!(logins.ok() > 100);
    check_invariants(&h, &[]);
    assert_no_key_leaked(&h, &pg, &hook, &keys).await;
}

/// A revoked current version while the older one still serves (Promoting):
/// keyrotor names the revoked version's role for the replacement, the hook
/// replaces its password there, and the older version's role keeps
/// logging in until its grace ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_current_version_revoked_mid_cycle_is_replaced_on_its_role_while_the_older_role_serves() {
    let (h, pg, hook, clients) = started(false, "20s").await;
    let v1 = presented(&h).await;
    request_rotation(&h, &hook, false, "20s", 2).await;
    h.wait_published(V, P, &[1, 2], 2, 60).await;
    let v2 = presented(&h).await;
    let spec = spec(&hook, false, "20s");
    h.apply(
        "api",
        &format!("{spec}rotationRequest: r2\nrevokedVersions: [2]\n"),
    )
    .await;
    h.wait_published(V, P, &[1, 3], 3, 60).await;
    let v3 = presented(&h).await;
    assert_eq!(
        v3.0, v2.0,
        "the replacement takes the revoked version's role"
    );
    assert_eq!(login(&pg, &v3.0, &v3.1).await, "ok");
    assert_eq!(
        login(&pg, &v2.0, &v2.1).await,
        "28P01",
        "version 2 is revoked"
    );
    assert_eq!(
        login(&pg, &v1.0, &v1.1).await,
        "ok",
        "version 1 still serves"
    );
    h.wait_published(V, P, &[3], 3, 60).await;
    h.wait("version 1 retired", 30, || async {
        h.secret("api-v1").await.is_none()
    })
    .await;
    assert_one_login_role_holding_the_current_password(&h, &pg, &v1).await;
    // Clients that held version 2 were refused until they reloaded: a
    // revocation's purpose. Only the count is shown.
    let logins = clients.stop().await;
    eprintln!(
        "revoked mid-cycle: {} refused of {} logins",
        logins.refused(),
        logins.total()
    );
    assert_eq!(logins.errors(), 0);
    check_invariants(&h, &[2]);
    assert_no_key_leaked(&h, &pg, &hook, &[v1.1, v2.1, v3.1]).await;
}
