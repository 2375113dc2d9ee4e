//! PostgreSQL passwords by alternating users on a real control plane: the
//! real API server admits `spec.usernames`, the operator (deploy/'s RBAC)
//! calls `keyrotor hook postgres` as the verifier hook, and a real
//! PostgreSQL 15 on the host's loopback takes each version on the role the
//! version names. Clients outside the cluster open a session every 25 ms
//! with the user name and password of the presenter Secret; none is
//! refused, and after each cycle exactly one role of the pair logs in.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use keyrotor_testsupport::eventually;
use keyrotor_testsupport::postgres::{Clients, PgHook, PostgresServer, PresenterSecret, ROLES};
use keyrotor_testsupport::redis::SecretVolume;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use super::cluster;
use super::observer::Observer;
use super::operator::{Operator, keyrotor, logs_of};
use super::scenario::*;

const TOKEN: &str = "e2e-postgres-hook-token";

/// The user name and password the presenter Secret holds now.
async fn presented(secrets: &Api<Secret>) -> (String, String) {
    let s = secrets.get("db-key").await.unwrap();
    let data = s.data.unwrap();
    let text = |f: &str| {
        let b = data.get(f).unwrap_or_else(|| panic!("db-key has no {f}"));
        String::from_utf8(b.0.clone()).unwrap()
    };
    (
        text(keyrotor::wire::USERNAME_FILE),
        text(keyrotor::wire::KEY),
    )
}

#[tokio::test]
async fn postgres_passwords_alternate_roles_through_the_hook_on_a_real_api_server() {
    let Some(cluster) = cluster::get().await else {
        return;
    };
    let ns = cluster.namespace("e2e-postgres").await;
    let client = cluster.client().await;
    let observer = Observer::start(client.clone(), &ns.name).await;
    let operator = Operator::watching(cluster, &ns.name, "postgres");
    let pg = PostgresServer::start().await;
    pg.setup_roles().await;
    let hook = PgHook::start(keyrotor(), &pg, TOKEN).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "pg-hook-token"}, "stringData": {"token": TOKEN},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &token)
        .await
        .unwrap();

    // The presenters are the clients outside the cluster (minConsumers:
    // 0); the verifier found is the hook.
    let mut r = rotation(&ns.name, "db", json!({}), json!({"minConsumers": 0}));
    r["spec"]["gracePeriod"]["minimum"] = json!("3s");
    r["spec"]["usernames"] = json!(ROLES);
    r["spec"]["verifierHook"] = json!({"url": hook.url(), "tokenSecretRef": {"name": "pg-hook-token", "key": "token"}, "timeoutSeconds": 5});
    apply(&client, &ns.name, &r).await;
    wait_stable(&client, &ns.name, "db", 1, Duration::from_secs(60)).await;
    let mut last = presented(&secrets).await;
    assert_eq!(last.0, ROLES[0], "version 1 carries usernames[0]");
    assert!(pg.app_login(&last.0, &last.1).await.is_ok());

    let sources = (0..2)
        .map(|_| PresenterSecret {
            volume: SecretVolume {
                secrets: secrets.clone(),
                name: "db-key".into(),
                report: None,
            },
        })
        .collect();
    let clients = Clients::start(&pg, sources);
    let uid = get(&client, &ns.name, "db").await.metadata.uid.unwrap();
    for (n, request) in [(2, "one"), (3, "two")] {
        request_rotation(&client, &ns.name, "db", request).await;
        wait_stable(&client, &ns.name, "db", n, Duration::from_secs(120)).await;
        let now = presented(&secrets).await;
        assert_eq!(now.0, ROLES[(n as usize - 1) % 2], "the roles alternate");
        let mark = Some(format!("keyrotor rotation {uid} version {n}"));
        eventually(
            "exactly the current role logs in",
            Duration::from_secs(30),
            async || pg.login_roles().await == [(now.0.clone(), mark.clone())],
        )
        .await;
        assert!(pg.app_login(&now.0, &now.1).await.is_ok());
        let refused = pg.app_login(&last.0, &last.1).await.unwrap_err();
        assert_eq!(refused.sqlstate(), Some("28000"), "{refused}");
        last = now;
    }

    let logins = clients.stop().await;
    eprintln!(
        "e2e postgres: {} failed of {} logins",
        logins.refused() + logins.errors(),
        logins.total()
    );
    assert_eq!(
        (logins.refused(), logins.errors()),
        (0, 0),
        "no login failed"
    );
    assert!(logins.ok() > 50);
    check_history(&observer, "db");
    let server_log = pg.log();
    assert!(
        !server_log.contains("SCRAM-SHA-256$"),
        "a verifier in the server log"
    );
    let mut logs = logs_of(&[&operator]);
    logs.push(("postgres hook".into(), hook.log()));
    logs.push(("postgres server".into(), server_log));
    assert_no_key_material(cluster, &ns.name, &observer, &logs);
}
