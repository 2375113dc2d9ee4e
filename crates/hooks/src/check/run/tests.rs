use keyrotor_consumer::hook::{HookRequest, Invalid};

use super::*;
use crate::check::Role;
use crate::check::cases::{Post, Rotation, Token, User};

fn options(role: Role, usernames: &[&str]) -> Options {
    let names = usernames.iter().map(|s| s.to_string()).collect();
    Options::new(
        "http://127.0.0.1:9/hook",
        Zeroizing::new("the-token".into()),
        role,
        names,
    )
    .unwrap()
}

fn post(step: &'static str, version: u64, carries: Carries) -> Post {
    Post {
        step,
        rotation: Rotation::First,
        version,
        carries,
        token: Token::Right,
        user: User::ByRule,
        api_version: keyrotor_consumer::hook::API_VERSION,
        newer_field: false,
    }
}

/// What a hook reads from the request the run builds for `post`.
fn sent(run: &mut Run, post: &Post) -> HookRequest {
    HookRequest::parse(&run.build(post).unwrap().body).unwrap()
}

#[test]
fn requests_name_the_run_and_carry_user_names_by_the_alternating_rule() {
    let o = options(Role::Verifier, &["app_blue", "app_green"]);
    let mut run = Run::new(&o);
    assert!(run.name.starts_with("keyrotor-check-") && run.name.len() == 23);
    assert_ne!(run.uids[0], run.uids[1]);
    let v1 = sent(&mut run, &post("stage", 1, Carries::Key));
    assert_eq!(v1.check(), Ok(Step::Stage));
    assert_eq!(
        v1.idempotency_key,
        format!("keyrotor-check/{}/{}/v1/stage", run.name, run.uids[0])
    );
    assert_eq!(v1.username.as_deref(), Some("app_blue"));
    let v2 = sent(&mut run, &post("retire", 2, Carries::Digest));
    assert_eq!(v2.username.as_deref(), Some("app_green"));
    let stranger = Post {
        user: User::Stranger,
        ..post("stage", 3, Carries::Key)
    };
    assert_eq!(
        sent(&mut run, &stranger).username.as_deref(),
        Some(STRANGER)
    );

    let o = options(Role::Verifier, &["app"]);
    let mut run = Run::new(&o);
    for v in [1, 2] {
        let r = sent(&mut run, &post("stage", v, Carries::Key));
        assert_eq!(r.username.as_deref(), Some("app"));
    }
    let o = options(Role::Verifier, &[]);
    let mut run = Run::new(&o);
    assert_eq!(
        sent(&mut run, &post("stage", 1, Carries::Key)).username,
        None
    );
}

#[test]
fn a_version_keeps_its_key_and_retire_names_it_by_digest_only() {
    let o = options(Role::Verifier, &[]);
    let mut run = Run::new(&o);
    let stage = sent(&mut run, &post("stage", 1, Carries::Key));
    let again = sent(&mut run, &post("stage", 1, Carries::Key));
    assert_eq!(
        (stage.key.as_deref(), &stage.sha256),
        (again.key.as_deref(), &again.sha256)
    );
    let retire = sent(&mut run, &post("retire", 1, Carries::Digest));
    assert_eq!(retire.check(), Ok(Step::Retire));
    assert_eq!(
        (retire.key.as_deref(), &retire.sha256),
        (None, &stage.sha256)
    );
    let v2 = sent(&mut run, &post("stage", 2, Carries::Key));
    assert_ne!(v2.sha256, stage.sha256);
    let unknown = sent(&mut run, &post("retire", 17, Carries::UnknownDigest));
    assert!(unknown.check().is_ok() && unknown.sha256 != stage.sha256);
}

#[test]
fn the_fault_requests_are_the_ones_a_hook_must_refuse() {
    let o = options(Role::Verifier, &[]);
    let mut run = Run::new(&o);
    let mismatch = sent(&mut run, &post("stage", 15, Carries::KeyOtherDigest));
    assert_eq!(mismatch.check(), Err(Invalid::KeyMismatch));
    let newer = Post {
        api_version: "hooks.keyrotor.dev/v2",
        ..post("stage", 13, Carries::Key)
    };
    assert_eq!(sent(&mut run, &newer).check(), Err(Invalid::ApiVersion));
    let promote = sent(&mut run, &post("promote", 14, Carries::Digest));
    assert_eq!(promote.check(), Err(Invalid::Step));
    assert_eq!(
        promote.idempotency_key,
        format!("keyrotor-check/{}/{}/v14/promote", run.name, run.uids[0])
    );
}

#[test]
fn a_field_of_a_newer_keyrotor_leaves_the_request_readable() {
    let o = options(Role::Verifier, &[]);
    let mut run = Run::new(&o);
    let newer = Post {
        newer_field: true,
        ..post("stage", 1, Carries::Key)
    };
    let built = run.build(&newer).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&built.body).unwrap();
    assert!(json["traceparent"].is_string(), "{}", json["step"]);
    assert_eq!(
        HookRequest::parse(&built.body).unwrap().check(),
        Ok(Step::Stage)
    );
}

#[test]
fn an_issuer_retire_carries_the_issued_digest_and_key_id_or_is_not_sent() {
    let o = options(Role::Issuer, &[]);
    let mut run = Run::new(&o);
    let retire = post("retire", 1, Carries::Issued);
    assert_eq!(
        run.build(&retire).err().as_deref(),
        Some("no key was issued for v1 to retire")
    );
    let issued = KeyRecord {
        digest: keyrotor_consumer::keys::digest_of(b"an-issued-key-0123456789"),
        key_id: Some("ak_1".into()),
    };
    run.issued.insert((Rotation::First, 1), issued.clone());
    let r = sent(&mut run, &retire);
    assert_eq!(
        (&r.sha256, &r.key_id, r.key.as_deref()),
        (&issued.digest, &issued.key_id, None)
    );
    let issue = sent(&mut run, &post("issue", 1, Carries::Nothing));
    assert_eq!(issue.check(), Ok(Step::Issue));
    let recreated = Post {
        rotation: Rotation::Recreated,
        ..post("issue", 1, Carries::Nothing)
    };
    let other = sent(&mut run, &recreated);
    assert_eq!(
        (other.rotation.as_str(), other.version),
        (run.name.as_str(), 1)
    );
    assert_eq!(other.uid, run.uids[1]);
}

#[test]
fn wrong_tokens_are_missing_random_or_the_right_one_extended() {
    let o = options(Role::Verifier, &[]);
    let run = Run::new(&o);
    assert_eq!(
        run.token(Token::Right).as_deref().map(String::as_str),
        Some("the-token")
    );
    assert_eq!(run.token(Token::Missing), None);
    let wrong = run.token(Token::Wrong).unwrap();
    assert!(wrong.len() == 9 && *wrong != *"the-token");
    assert_eq!(
        run.token(Token::Extended).as_deref().map(String::as_str),
        Some("the-tokenx")
    );
}
