//! The PostgreSQL hook (`keyrotor hook postgres`, alternating users) on a
//! real PostgreSQL 15 on loopback, as its own process: its side of the
//! protocol called directly, and whole rotations by the real controller on
//! the in-memory API with clients that open a new session every 25 ms with
//! the user name and password of their presenter Secret (each reloads them
//! 100–600 ms after a change, and reports only what it loaded). The server
//! logs every statement, and no password may reach its log.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use keyrotor::conditions::{reasons, types};
use keyrotor::consumer::hook::{API_VERSION, idempotency_key};
use keyrotor_testsupport::harness::{Harness, NS};
use keyrotor_testsupport::postgres::{
    Clients, GROUP, HOOK_ADMIN, HOOK_ADMIN_PASSWORD, NAIVE_ROLE, PgHook, PostgresServer,
    PresenterSecret, ROLES,
};
use keyrotor_testsupport::redis::{SecretVolume, sha256_hex};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::scenario::{P, V, check_invariants};

const TOKEN: &str = "pg-hook-token-for-tests";
const UID: &str = "6d1c8a2e-0b7f-4e55-9a3d-2f4e6b8c0d1a";
const CLIENTS: usize = 3;

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_keyrotor").as_ref()
}

/// A hook request as keyrotor sends it, for rotation `api` of uid [`UID`].
fn request(step: &str, version: u64, username: Option<&str>, key: &str) -> serde_json::Value {
    let mut r = json!({
        "apiVersion": API_VERSION, "step": step,
        "idempotencyKey": idempotency_key(NS, "api", UID, version, step),
        "namespace": NS, "rotation": "api", "uid": UID, "version": version,
    });
    if step != "issue" {
        r["sha256"] = json!(sha256_hex(key));
    }
    if step == "stage" {
        r["key"] = json!(key);
    }
    if let Some(u) = username {
        r["username"] = json!(u);
    }
    r
}

fn reason(answer: &serde_json::Value) -> String {
    answer["reason"].as_str().unwrap_or_default().to_string()
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

/// The hook's steps called directly: the request's username names the
/// role; repeats answer done and change nothing; what would cut a client
/// off, or cannot be served, is refused with a reason that says the fix.
#[tokio::test]
async fn the_postgres_hook_stages_the_named_role_answers_repeats_and_refuses_with_the_fix() {
    let pg = PostgresServer::start().await;
    pg.setup_roles().await;
    let hook = PgHook::start(bin(), &pg, TOKEN).await;
    let [blue, green] = ROLES;
    let keys: Vec<String> = (1..=3)
        .map(|v| format!("password-of-version-{v}-0123456789abcdef"))
        .collect();
    let key = |v: usize| keys[v - 1].as_str();

    for said in ["staged on app_blue", "already staged on app_blue"] {
        let (status, answer) = hook
            .post(TOKEN, &request("stage", 1, Some(blue), key(1)))
            .await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(said),
            "{answer}"
        );
    }
    assert_eq!(login(&pg, blue, key(1)).await, "ok");

    // Version 2 on the role clients use now would cut them off.
    let (status, answer) = hook
        .post(TOKEN, &request("stage", 2, Some(blue), key(2)))
        .await;
    assert_eq!(status, 409);
    assert!(
        reason(&answer).contains("app_blue still logs in with version 1"),
        "{answer}"
    );
    let (status, answer) = hook.post(TOKEN, &request("stage", 2, None, key(2))).await;
    assert_eq!(status, 422);
    assert!(
        reason(&answer).contains("set spec.usernames: [app_blue, app_green]"),
        "{answer}"
    );
    let (status, answer) = hook
        .post(TOKEN, &request("stage", 2, Some("postgres"), key(2)))
        .await;
    assert_eq!(status, 422);
    assert!(
        reason(&answer).contains("is not one of this hook's roles"),
        "{answer}"
    );
    assert_eq!(
        login(&pg, blue, key(1)).await,
        "ok",
        "refusals changed nothing"
    );

    let (status, _) = hook
        .post(TOKEN, &request("stage", 2, Some(green), key(2)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(login(&pg, green, key(2)).await, "ok");
    assert_eq!(
        login(&pg, blue, key(1)).await,
        "ok",
        "both log in until retire"
    );
    let (status, answer) = hook
        .post(TOKEN, &request("retire", 1, Some(green), key(1)))
        .await;
    assert_eq!(status, 409, "version 1 is on app_blue: {answer}");
    for said in ["retired: app_blue cannot log in", "already retired"] {
        let (status, answer) = hook
            .post(TOKEN, &request("retire", 1, Some(blue), key(1)))
            .await;
        assert_eq!(status, 200);
        assert!(
            answer["message"].as_str().unwrap().contains(said),
            "{answer}"
        );
    }
    assert_eq!(
        login(&pg, blue, key(1)).await,
        "28000",
        "a retired role cannot log in"
    );
    assert_eq!(
        pg.login_roles().await,
        [(
            green.to_string(),
            Some(format!("keyrotor rotation {UID} version 2"))
        )]
    );
    let (status, answer) = hook
        .post(TOKEN, &request("retire", 9, Some(blue), key(1)))
        .await;
    assert_eq!(status, 200, "retiring an unknown version is done: {answer}");
    let (status, answer) = hook
        .post(TOKEN, &request("stage", 1, Some(blue), key(1)))
        .await;
    assert_eq!(status, 409, "a late stage of version 1: {answer}");
    assert!(reason(&answer).contains("stale"), "{answer}");
    assert_eq!(login(&pg, blue, key(1)).await, "28000");

    let (status, _) = hook
        .post("wrong-token", &request("stage", 3, Some(blue), key(3)))
        .await;
    assert_eq!(status, 401);
    let (status, _) = hook
        .post(TOKEN, &request("issue", 3, Some(blue), key(3)))
        .await;
    assert_eq!(status, 400, "issue is refused without --issuer-secret-file");

    // A role outside the group would log in without the privileges.
    let mut root = pg.quiet_admin().await;
    root.query(&format!("REVOKE {GROUP} FROM {blue}"))
        .await
        .unwrap();
    let (status, answer) = hook
        .post(TOKEN, &request("stage", 3, Some(blue), key(3)))
        .await;
    assert_eq!(status, 422);
    assert!(
        reason(&answer).contains("GRANT app TO app_blue"),
        "{answer}"
    );
    root.query(&format!("GRANT {GROUP} TO {blue}"))
        .await
        .unwrap();
    assert_logs_clean(&pg, &hook, &keys, false);

    // An admin that may not silence its statements: the server logs the
    // verifier (never the password), and the hook says so once.
    root.query(&format!(
        "REVOKE SET ON PARAMETER log_statement FROM {HOOK_ADMIN}"
    ))
    .await
    .unwrap();
    root.close().await;
    let (status, _) = hook
        .post(TOKEN, &request("stage", 3, Some(blue), key(3)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(login(&pg, blue, key(3)).await, "ok");
    assert_eq!(
        login(&pg, blue, key(1)).await,
        "28P01",
        "a new password on app_blue"
    );
    assert!(
        pg.log().contains("SCRAM-SHA-256$"),
        "the verifier is logged"
    );
    assert!(
        hook.log()
            .contains("may not keep its statements out of the server log")
    );
    assert_logs_clean(&pg, &hook, &keys, true);
}

/// A role that logs in with a password keyrotor did not set (by hand, or
/// an adopted version 1) is never overwritten: a stage is refused unless its
/// key is that password (then the role is marked), and the adopted
/// version's retire disables the role once version 2 serves on the other.
#[tokio::test]
async fn a_role_logging_in_from_before_keyrotor_is_adopted_with_its_own_password_only() {
    let pg = PostgresServer::start().await;
    pg.setup_roles().await;
    let hook = PgHook::start(bin(), &pg, TOKEN).await;
    let [blue, green] = ROLES;
    let by_hand = "set-by-hand-0123456789abcdefghij".to_string();
    let verifier =
        keyrotor_hooks::postgres::scram::verifier(&by_hand, b"by-hand-salt-16b", 4096).unwrap();
    let mut root = pg.quiet_admin().await;
    root.query(&format!("ALTER ROLE {blue} LOGIN PASSWORD '{}'", *verifier))
        .await
        .unwrap();
    root.close().await;

    let other = "another-password-0123456789abcdef".to_string();
    let (status, answer) = hook
        .post(TOKEN, &request("stage", 1, Some(blue), &other))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(reason(&answer).contains("did not set"), "{answer}");
    assert_eq!(
        login(&pg, blue, &by_hand).await,
        "ok",
        "its clients keep working"
    );
    let (status, answer) = hook
        .post(TOKEN, &request("stage", 1, Some(blue), &by_hand))
        .await;
    assert_eq!(status, 200);
    assert!(
        answer["message"].as_str().unwrap().contains("adopted"),
        "{answer}"
    );
    assert_eq!(
        pg.login_roles().await,
        [(
            blue.to_string(),
            Some(format!("keyrotor rotation {UID} version 1"))
        )]
    );

    // An adopted version 1 is never staged: its role has no mark. Its
    // retire, once version 2 serves on app_green, disables it all the same.
    let mut root = pg.quiet_admin().await;
    root.query(&format!("COMMENT ON ROLE {blue} IS NULL"))
        .await
        .unwrap();
    root.close().await;
    let (status, _) = hook
        .post(TOKEN, &request("retire", 1, Some(blue), &by_hand))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        login(&pg, blue, &by_hand).await,
        "ok",
        "no successor yet: untouched"
    );
    let v2 = "password-of-version-2-0123456789abc".to_string();
    assert_eq!(
        hook.post(TOKEN, &request("stage", 2, Some(green), &v2))
            .await
            .0,
        200
    );
    for _ in 0..2 {
        let (status, _) = hook
            .post(TOKEN, &request("retire", 1, Some(blue), &by_hand))
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(login(&pg, blue, &by_hand).await, "28000");
    assert_eq!(
        pg.login_roles().await,
        [(
            green.to_string(),
            Some(format!("keyrotor rotation {UID} version 2"))
        )]
    );
    assert_logs_clean(&pg, &hook, &[by_hand, other, v2], false);
}

/// The issuer role: `issue` derives the password, so a repeat (also after
/// a restart) answers the same one, and the role logs in with it.
#[tokio::test]
async fn the_postgres_hook_as_issuer_answers_the_same_password_for_a_repeated_issue() {
    let pg = PostgresServer::start().await;
    pg.setup_roles().await;
    let mut hook = PgHook::start_issuer(bin(), &pg, TOKEN).await;
    let (status, first) = hook
        .post(TOKEN, &request("issue", 1, Some(ROLES[0]), ""))
        .await;
    assert_eq!(status, 200, "{first}");
    let issued = first["key"].as_str().unwrap().to_string();
    assert_eq!(issued.len(), 43);
    hook.restart().await;
    let (status, again) = hook
        .post(TOKEN, &request("issue", 1, Some(ROLES[0]), ""))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["key"].as_str(), Some(issued.as_str()));
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already staged")
    );
    assert_eq!(login(&pg, ROLES[0], &issued).await, "ok");
    let (_, next) = hook
        .post(TOKEN, &request("issue", 2, Some(ROLES[1]), ""))
        .await;
    let next = next["key"].as_str().unwrap().to_string();
    assert_ne!(next, issued);
    assert_eq!(login(&pg, ROLES[1], &next).await, "ok");
    assert_logs_clean(&pg, &hook, &[issued, next], false);
}

/// A hook pointed at roles that are not set up does not start: it says
/// what is wrong, and never serves.
#[tokio::test]
async fn a_hook_started_on_a_group_that_does_not_exist_exits_saying_so() {
    let pg = PostgresServer::start().await;
    pg.setup_roles().await;
    let dir = std::env::temp_dir().join(format!("keyrotor-pg-bad-{}", pg.port));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["hook", "postgres", "--role", ROLES[0], "--role", ROLES[1]])
        .args(["--group", "no_such_group", "--postgres", &pg.address()])
        .args(["--listen", "127.0.0.1:0", "--token-file"])
        .arg(dir.join("token"))
        .env("POSTGRES_ADMIN_PASSWORD", HOOK_ADMIN_PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.expect("the hook exits at once");
    assert!(!status.success());
    assert!(
        said.contains("PostgreSQL is not set up for the hook")
            && said.contains("role \"no_such_group\" does not exist"),
        "{said}"
    );
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
    let username = data(&s, "username").expect(
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
        "stringData": {"username": NAIVE_ROLE, "key": first},
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
