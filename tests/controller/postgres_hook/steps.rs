//! The PostgreSQL hook's side of the protocol, called directly as keyrotor
//! would call it: the request's username names the role, repeats answer
//! done and change nothing, what would cut a client off is refused with the
//! fix, the issuer role, and a start on roles not set up.

use std::time::{Duration, Instant};

use keyrotor::consumer::hook::{API_VERSION, idempotency_key};
use keyrotor_testsupport::harness::NS;
use keyrotor_testsupport::postgres::{
    GROUP, HOOK_ADMIN, HOOK_ADMIN_PASSWORD, PgHook, PostgresServer, ROLES,
};
use keyrotor_testsupport::redis::sha256_hex;
use serde_json::json;

use super::{TOKEN, UID, assert_logs_clean, bin, login};

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
