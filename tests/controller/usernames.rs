//! User names (`spec.usernames`) through the real controller: two names
//! alternate version by version, each version Secret records its name once,
//! the presenter Secret (and its copy in another namespace) names the
//! presented version at every recorded write, a spec edit names only later
//! versions, one name goes with every version, an adopted key is the first
//! user's, hooks are told the name, a name edited by hand is put back,
//! invalid names are refused with what to fix, and without names every
//! Secret keeps exactly its files and annotations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use keyrotor::conditions::{reasons, types};
use keyrotor::wire as k;
use keyrotor::wire::{USERNAME, USERNAME_FILE};
use keyrotor_testsupport::harness::{Harness, NS, annotation};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::net::TcpStream;

use crate::hook_faults::{FakeServer, create_token, read_request, respond};
use crate::scenario::{P, Scenario, V, check_invariants};

const API: Scenario = Scenario { min_grace: "200ms" };
const BLUE: &str = "app_blue";
const GREEN: &str = "app_green";
const USERS: &str = "usernames: [app_blue, app_green]";
const BILLING: &str = "billing";

fn file(s: &Secret, name: &str) -> Option<String> {
    let b = s.data.as_ref()?.get(name)?;
    Some(String::from_utf8(b.0.clone()).unwrap())
}

/// The user name version `v`'s Secret records.
async fn recorded(h: &Harness, v: u64) -> Option<String> {
    let s = h
        .secret(&format!("api-v{v}"))
        .await
        .expect("version Secret");
    annotation(&s, USERNAME).map(str::to_string)
}

/// The user name the presenter Secret `presenter` gives presenters now.
async fn presented(h: &Harness, presenter: &str) -> Option<String> {
    file(&h.secret(presenter).await?, USERNAME_FILE)
}

/// Checks, over every recorded state of each version Secret, that its
/// name never changed, and over every recorded state of the presenter
/// Secret `presenter` (copies included), that `username` names the
/// version in `key`: the one its Secret records, or no file when it
/// records none. Returns the presenter states checked.
fn presenter_files_name_the_presented_version(h: &Harness, presenter: &str) -> usize {
    let mut names: BTreeMap<u64, Option<String>> = BTreeMap::new();
    for v in 1.. {
        let states = h.observer.secret_states(&format!("api-v{v}"));
        if states.is_empty() {
            break;
        }
        let each: BTreeSet<Option<String>> = states
            .iter()
            .map(|s| annotation(s, USERNAME).map(str::to_string))
            .collect();
        assert_eq!(each.len(), 1, "version {v}'s name changed: {each:?}");
        names.insert(v, each.into_iter().next().unwrap());
    }
    let states = h.observer.secret_states(presenter);
    for s in &states {
        let Some(v) = file(s, k::VERSION).and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        let want = names
            .get(&v)
            .unwrap_or_else(|| panic!("no Secret for version {v}"));
        assert_eq!(
            &file(s, USERNAME_FILE),
            want,
            "{}/{presenter} at resourceVersion {:?} presents version {v}",
            s.namespace().unwrap_or_default(),
            s.resource_version()
        );
    }
    states.len()
}

async fn consent(h: &Harness, ns: &str) {
    let api: Api<Namespace> = Api::all(h.client.clone());
    let patch = json!({"metadata": {"annotations": {k::ACCEPT_FROM: NS}}});
    api.patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// A running pod of namespace `ns` that mounts `secret`.
async fn running_pod(h: &Harness, ns: &str, name: &str, secret: &str) {
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "app", "image": "app"}],
                 "volumes": [{"name": "k", "secret": {"secretName": secret}}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": "Running"}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_alternate_version_by_version_and_the_presenter_file_always_names_the_presented_one()
 {
    let h = Harness::watching(&[NS, BILLING]).await;
    for i in 0..2 {
        h.add_pod(&format!("server-{i}"), &[V], &[]).await;
        h.add_pod(&format!("client-{i}"), &[P], &[]).await;
    }
    consent(&h, BILLING).await;
    running_pod(&h, BILLING, "client", P).await;
    let spec = |request: &str| {
        API.spec(&format!(
            "{USERS}\nconsumers:\n  presenters:\n    namespaces: [{BILLING}]\n{request}"
        ))
    };
    h.apply("api", &spec("")).await;
    h.wait_published(V, P, &[1], 1, 20).await;
    assert_eq!(recorded(&h, 1).await.as_deref(), Some(BLUE));
    for n in 2..=6u64 {
        h.apply("api", &spec(&format!("rotationRequest: r{n}")))
            .await;
        h.wait_published(V, P, &[n], n, 30).await;
        let want = if n % 2 == 1 { BLUE } else { GREEN };
        assert_eq!(recorded(&h, n).await.as_deref(), Some(want), "version {n}");
        assert_eq!(presented(&h, P).await.as_deref(), Some(want), "version {n}");
    }
    let copies: Api<Secret> = Api::namespaced(h.client.clone(), BILLING);
    h.wait("the copy in billing at version 6", 20, || async {
        let copy = copies.get_opt(P).await.unwrap();
        copy.is_some_and(|c| file(&c, USERNAME_FILE).as_deref() == Some(GREEN))
    })
    .await;
    let states = presenter_files_name_the_presented_version(&h, P);
    assert!(states >= 10, "only {states} presenter states recorded");
    let status = h.rotation("api").await.status.unwrap();
    let current = status.versions.iter().find(|r| r.version == 6).unwrap();
    assert_eq!(current.username.as_deref(), Some(GREEN), "status shows it");
    for s in h.observer.secret_states(V) {
        assert!(
            file(&s, USERNAME_FILE).is_none(),
            "verifiers get no user name"
        );
    }
    check_invariants(&h, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_edit_mid_cycle_names_only_the_versions_created_after_it() {
    let h = API.started(USERS).await;
    // A presenter that never loads: the cycle holds with version 2 presented.
    h.set_stuck("client-0", true);
    API.request_rotation(&h, USERS, "r2").await;
    h.wait(
        "version 2 presented, version 1 still accepted",
        20,
        || async { h.current(P).await == Some(2) && h.accepted(V).await == [1, 2].into() },
    )
    .await;
    let edited = "usernames: [app_red, app_black]";
    API.request_rotation(&h, edited, "r2").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(recorded(&h, 2).await.as_deref(), Some(GREEN));
    assert_eq!(presented(&h, P).await.as_deref(), Some(GREEN));
    h.set_stuck("client-0", false);
    h.wait_published(V, P, &[2], 2, 20).await;
    assert_eq!(presented(&h, P).await.as_deref(), Some(GREEN));
    // Version 2's name is not on the list any more: the next takes the first.
    for (n, want) in [(3, "app_red"), (4, "app_black"), (5, "app_red")] {
        API.request_rotation(&h, edited, &format!("r{n}")).await;
        h.wait_published(V, P, &[n], n, 20).await;
        assert_eq!(recorded(&h, n).await.as_deref(), Some(want), "version {n}");
        assert_eq!(presented(&h, P).await.as_deref(), Some(want));
    }
    presenter_files_name_the_presented_version(&h, P);
    check_invariants(&h, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_name_goes_with_every_version_of_a_single_secret() {
    let spec = |request: &str| {
        format!(
            "secrets: {{verifier: {P}, presenter: {P}}}\ngracePeriod: {{minimum: 200ms, maximum: 60s}}\nusernames: [api_user]\n{request}"
        )
    };
    let h = Harness::with_rotation(P, P, &spec("")).await;
    for n in 2..=3u64 {
        h.apply("api", &spec(&format!("rotationRequest: r{n}")))
            .await;
        h.wait_published(P, P, &[n], n, 20).await;
        assert_eq!(recorded(&h, n).await.as_deref(), Some("api_user"));
    }
    assert_eq!(presented(&h, P).await.as_deref(), Some("api_user"));
    presenter_files_name_the_presented_version(&h, P);
    h.observer
        .check("api", P, P, &[])
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_names_every_secret_keeps_exactly_its_files_and_annotations() {
    let h = API.started("").await;
    for n in 2..=3u64 {
        API.request_rotation(&h, "", &format!("r{n}")).await;
        h.wait_published(V, P, &[n], n, 20).await;
    }
    fn names<V>(m: Option<&BTreeMap<String, V>>) -> BTreeSet<String> {
        m.map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }
    let set = |s: &[&str]| -> BTreeSet<String> { s.iter().map(|s| s.to_string()).collect() };
    let presenter_files = set(&["key", "version", "revision", "rotation", "role"]);
    let published = set(&[k::REVISION, k::WRITTEN_AT, k::HIGHEST, k::CURRENT]);
    let mut checked = 0;
    for s in h.observer.secret_states(P) {
        assert_eq!(names(s.data.as_ref()), presenter_files);
        assert_eq!(names(s.metadata.annotations.as_ref()), published);
        checked += 1;
    }
    for v in 1..=3 {
        for s in h.observer.secret_states(&format!("api-v{v}")) {
            let ann = names(s.metadata.annotations.as_ref());
            let base = set(&[k::FINGERPRINT, k::CREATED_AT, k::ORIGIN]);
            let with_request = set(&[k::FINGERPRINT, k::CREATED_AT, k::ORIGIN, k::REQUESTS]);
            assert!(ann == base || ann == with_request, "version {v}: {ann:?}");
            assert_eq!(names(s.data.as_ref()), set(&["key"]));
            checked += 1;
        }
    }
    assert!(
        checked >= 6,
        "only {checked} states: 3 presenter writes, 3 versions"
    );
    let status = h.rotation("api").await.status.unwrap();
    assert!(status.versions.iter().all(|r| r.username.is_none()));
    let json = serde_json::to_string(&status).unwrap();
    assert!(
        !json.contains("username"),
        "status says nothing of user names"
    );
    check_invariants(&h, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_key_is_version_1_of_the_first_user() {
    let h = Harness::new().await;
    let legacy = "legacy-db-password-0123456789";
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "legacy", "namespace": NS},
        "data": {"password": ByteString(legacy.as_bytes().to_vec())},
    }))
    .unwrap();
    h.secrets()
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
    for i in 0..2 {
        h.add_pod(&format!("server-{i}"), &[V], &[]).await;
        h.add_pod(&format!("client-{i}"), &[P], &[]).await;
    }
    let adopt = format!("{USERS}\nadopt: {{secretName: legacy, key: password}}");
    h.apply("api", &API.spec(&adopt)).await;
    h.wait_published(V, P, &[1], 1, 20).await;
    let presenter = h.secret(P).await.unwrap();
    assert_eq!(file(&presenter, k::KEY).as_deref(), Some(legacy));
    assert_eq!(file(&presenter, USERNAME_FILE).as_deref(), Some(BLUE));
    assert_eq!(recorded(&h, 1).await.as_deref(), Some(BLUE));
    API.request_rotation(&h, &adopt, "r2").await;
    h.wait_published(V, P, &[2], 2, 20).await;
    assert_eq!(presented(&h, P).await.as_deref(), Some(GREEN));
    presenter_files_name_the_presented_version(&h, P);
    check_invariants(&h, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_name_edited_by_hand_is_put_back() {
    let h = API.started(USERS).await;
    for edit in [json!("mallory"), serde_json::Value::Null] {
        let value = edit.as_str().map(|s| ByteString(s.as_bytes().to_vec()));
        let patch = json!({"data": {USERNAME_FILE: value}});
        h.secrets()
            .patch(P, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        h.wait("the presenter's user name restored", 20, || async {
            presented(&h, P).await.as_deref() == Some(BLUE)
        })
        .await;
    }
    assert_eq!(h.current(P).await, Some(1));
    check_invariants(&h, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_refused_with_what_to_fix_and_keys_stay_valid() {
    let h = API.started(USERS).await;
    let key_before = h.secret(P).await.unwrap().data;
    let ready = || async {
        let status = h.rotation("api").await.status.unwrap_or_default();
        let c = status.condition(types::READY).cloned().unwrap();
        (c.reason, c.message)
    };
    // The in-memory API runs no CEL, as a cluster that skips it: keyrotor
    // still refuses these, naming the field and the rule.
    for (names, says) in [
        (
            "[app_blue, app_green, app_red]",
            "spec.usernames: usernames must have at most 2 items",
        ),
        (
            "['app blue']",
            "spec.usernames[0]: \"app blue\": usernames entries must start with a letter or '_'",
        ),
        (
            "[app_blue, app_blue]",
            "spec.usernames[1]: usernames lists a name twice",
        ),
    ] {
        API.request_rotation(&h, &format!("usernames: {names}"), "r2")
            .await;
        h.wait(&format!("InvalidSpec for {names}"), 10, || async {
            let (reason, message) = ready().await;
            reason == reasons::INVALID_SPEC && message.contains(says)
        })
        .await;
    }
    assert!(!h.events(reasons::INVALID_SPEC).await.is_empty());
    assert_eq!(
        h.secret(P).await.unwrap().data,
        key_before,
        "keys untouched"
    );
    assert!(h.secret("api-v2").await.is_none(), "no version created");
    API.request_rotation(&h, USERS, "r2").await;
    h.wait_published(V, P, &[2], 2, 20).await;
    assert_eq!(presented(&h, P).await.as_deref(), Some(GREEN));
}

/// A hook that records every request and answers as a verifier and an
/// issuer would: `done`, and for `issue` one key per idempotency key.
#[derive(Default)]
struct Recorder {
    seen: Vec<serde_json::Value>,
    minted: BTreeMap<String, String>,
}

async fn record(mut stream: TcpStream, state: Arc<Mutex<Recorder>>) {
    let Some((_, body)) = read_request(&mut stream).await else {
        return;
    };
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let answer = {
        let mut s = state.lock().unwrap();
        s.seen.push(request.clone());
        if request["step"] == "issue" {
            let id = request["idempotencyKey"].as_str().unwrap_or_default();
            let n = s.minted.len();
            let key = s
                .minted
                .entry(id.to_string())
                .or_insert_with(|| format!("issued-{n}-{}", "k".repeat(24)))
                .clone();
            json!({"done": true, "key": key})
        } else {
            json!({"done": true})
        }
    };
    respond(stream, "200 OK", &answer.to_string()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_are_told_the_user_name_of_every_version_they_stage_retire_or_issue() {
    let hook = FakeServer::start(Recorder::default(), record).await;
    let h = Harness::new().await;
    create_token(&h).await;
    for i in 0..2 {
        h.add_pod(&format!("server-{i}"), &[V], &[]).await;
        h.add_pod(&format!("client-{i}"), &[P], &[]).await;
    }
    let endpoint = format!(
        "{{url: '{}', tokenSecretRef: {{name: hook-token, key: token}}, timeoutSeconds: 2}}",
        hook.url
    );
    let spec = |request: &str| {
        API.spec(&format!(
            "{USERS}\nverifierHook: {endpoint}\nissuerHook: {endpoint}\n{request}"
        ))
    };
    h.apply("api", &spec("")).await;
    h.wait_published(V, P, &[1], 1, 20).await;
    for n in 2..=4u64 {
        h.apply("api", &spec(&format!("rotationRequest: r{n}")))
            .await;
        h.wait_published(V, P, &[n], n, 30).await;
    }
    h.wait("version 3 retired at both hooks", 20, || async {
        let s = hook.state.lock().unwrap();
        let retires = s
            .seen
            .iter()
            .filter(|r| r["step"] == "retire" && r["version"] == 3);
        retires.count() >= 2
    })
    .await;
    let seen = hook.state.lock().unwrap().seen.clone();
    let mut steps = BTreeSet::new();
    for r in &seen {
        let v = r["version"].as_u64().unwrap();
        let want = if v % 2 == 1 { BLUE } else { GREEN };
        assert_eq!(r["username"], want, "{} of version {v}", r["step"]);
        steps.insert((r["step"].as_str().unwrap().to_string(), v));
    }
    for v in 1..=4 {
        for step in ["issue", "stage"] {
            assert!(
                steps.contains(&(step.to_string(), v)),
                "{step} of version {v}"
            );
        }
    }
    for v in 1..=3 {
        assert!(
            steps.contains(&("retire".to_string(), v)),
            "retire of version {v}"
        );
    }
    assert_eq!(presented(&h, P).await.as_deref(), Some(GREEN));
    presenter_files_name_the_presented_version(&h, P);
    check_invariants(&h, &[]);
}
