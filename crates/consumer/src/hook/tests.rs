use super::*;

fn request(step: Step, key: &str) -> HookRequest {
    let mut r = HookRequest::new(step, "shop", "cache", "uid-1", 7);
    r.sha256 = crate::keys::digest_of(key.as_bytes());
    r.key = (step == Step::Stage).then(|| key.to_string());
    r
}

const KEY: &str = "s3cr3t-issued-key-material";

#[test]
fn debug_never_shows_key_material() {
    let mut a = HookAnswer::done(None);
    (a.key, a.key_id) = (Some(KEY.into()), Some("key_123".into()));
    let shown = format!("{a:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(shown.contains("key_123"));
    let r = request(Step::Stage, KEY);
    let shown = format!("{r:?}");
    assert!(
        !shown.contains("s3cr3t") && !shown.contains(&r.sha256),
        "{shown}"
    );
    assert_eq!(shown, "HookRequest(shop/cache/uid-1/v7/stage)");
    let issued = a.into_issued().unwrap();
    assert!(!format!("{issued:?}").contains("s3cr3t"));
}

#[test]
fn key_ids_are_short_printable_words() {
    assert!(key_id_ok("ak_01HZX"));
    assert!(!key_id_ok(""));
    assert!(!key_id_ok("has space"));
    assert!(!key_id_ok(&"x".repeat(MAX_KEY_ID + 1)));
}

#[test]
fn a_new_request_names_its_step_version_and_rotation_once_per_step() {
    let r = HookRequest::new(Step::Retire, "shop", "cache", "uid-1", 3);
    assert_eq!(r.idempotency_key, "shop/cache/uid-1/v3/retire");
    assert_eq!(
        (r.step.as_str(), r.api_version.as_str()),
        ("retire", API_VERSION)
    );
    assert!(r.sha256.is_empty() && r.key.is_none() && r.key_id.is_none());
    let json: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
    assert!(
        json.get("key").is_none() && json.get("sha256").is_none(),
        "{json}"
    );
    assert_eq!(json["idempotencyKey"], "shop/cache/uid-1/v3/retire");
}

#[test]
fn a_hook_refuses_requests_that_lack_what_their_step_needs() {
    assert_eq!(request(Step::Stage, KEY).check(), Ok(Step::Stage));
    assert_eq!(request(Step::Retire, KEY).check(), Ok(Step::Retire));
    assert_eq!(request(Step::Issue, KEY).check(), Ok(Step::Issue));

    let mut r = request(Step::Stage, KEY);
    r.api_version = "hooks.keyrotor.dev/v0".into();
    assert_eq!(r.check(), Err(Invalid::ApiVersion));
    let mut r = request(Step::Stage, KEY);
    r.step = "promote".into();
    assert_eq!(r.check(), Err(Invalid::Step));
    for step in Step::ALL {
        let mut r = request(step, KEY);
        r.uid.clear();
        assert_eq!(r.check(), Err(Invalid::NoUid));
    }
    let mut r = request(Step::Retire, KEY);
    r.username = Some("app_blue".into());
    assert_eq!(r.check(), Ok(Step::Retire));
    r.username = Some("two words".into());
    assert_eq!(r.check(), Err(Invalid::Username));
    r.username = Some("u".repeat(MAX_USERNAME + 1));
    assert_eq!(r.check(), Err(Invalid::Username));
    let mut r = request(Step::Retire, KEY);
    r.sha256 = r.sha256.to_uppercase();
    assert_eq!(r.check(), Err(Invalid::Sha256));
    let mut r = request(Step::Stage, KEY);
    r.key = None;
    assert_eq!(r.check(), Err(Invalid::NoKey));
    let mut r = request(Step::Stage, KEY);
    r.sha256 = crate::keys::digest_of(b"another key entirely");
    assert_eq!(r.check(), Err(Invalid::KeyMismatch));
    assert!(!Invalid::KeyMismatch.to_string().contains(KEY));
}

#[test]
fn request_bodies_over_the_cap_or_of_another_shape_are_not_read() {
    let r = request(Step::Stage, KEY);
    let parsed = HookRequest::parse(&r.to_json()).unwrap();
    assert_eq!(parsed.key.as_deref(), Some(KEY));
    assert_eq!(
        HookRequest::parse(&vec![b' '; MAX_REQUEST + 1]).err(),
        Some(RequestError::TooLarge)
    );
    assert_eq!(
        HookRequest::parse(br#"{"step":"stage"}"#).err(),
        Some(RequestError::Malformed)
    );
}

#[test]
fn an_answer_is_done_json_within_the_cap_or_a_failed_call() {
    assert!(
        HookAnswer::parse(br#"{"done":true,"extra":1}"#)
            .unwrap()
            .done
    );
    let not_done = HookAnswer::parse(br#"{"done":false,"message":"busy"}"#);
    assert_eq!(
        not_done.err(),
        Some(AnswerError::Malformed("done is false"))
    );
    let html = HookAnswer::parse(b"<html>not json</html>");
    assert_eq!(
        html.err(),
        Some(AnswerError::Malformed("not JSON of that shape"))
    );
    let long = format!(r#"{{"done":true,"message":"{}"}}"#, "x".repeat(MAX_ANSWER));
    assert_eq!(
        HookAnswer::parse(long.as_bytes()).err(),
        Some(AnswerError::TooLarge)
    );
    assert_eq!(
        AnswerError::TooLarge.to_string(),
        "the hook's answer was longer than 65536 bytes"
    );
}

#[test]
fn an_issuer_answer_without_a_usable_key_or_key_id_is_refused() {
    let answer = |key: Option<&str>, key_id: Option<&str>| {
        let mut a = HookAnswer::done(None);
        (a.key, a.key_id) = (key.map(Into::into), key_id.map(Into::into));
        a
    };
    let issued = answer(Some(KEY), Some("ak_1")).into_issued().unwrap();
    assert_eq!(issued.key.expose(), KEY);
    assert_eq!(issued.key_id.as_deref(), Some("ak_1"));
    assert!(
        answer(Some(KEY), None)
            .into_issued()
            .unwrap()
            .key_id
            .is_none()
    );

    let refused = |a: HookAnswer| a.into_issued().err().map(|e| e.to_string());
    assert_eq!(
        refused(answer(None, Some("ak_1"))).as_deref(),
        Some("the issuer's answer has no key")
    );
    let short = refused(answer(Some("short"), None)).unwrap();
    assert!(short.contains("shorter than 16 bytes"), "{short}");
    let spaced = refused(answer(Some("has a space in the middle"), None)).unwrap();
    assert!(spaced.contains("not printable ASCII"), "{spaced}");
    assert!(refused(answer(Some(&"k".repeat(1025)), None)).is_some());
    assert_eq!(
        answer(Some(KEY), Some("two words")).into_issued().err(),
        Some(AnswerError::BadKeyId)
    );
}

#[test]
fn the_status_decides_done_pending_refused_or_failed() {
    let done =
        |status, body: &[u8]| matches!(Outcome::read(status, body), Ok(Outcome::Done(a)) if a.done);
    assert!(done(200, br#"{"done":true}"#));
    assert!(done(201, br#"{"done":true}"#));
    assert!(done(204, b""), "204 needs no body");
    assert_eq!(
        Outcome::read(200, b"").err(),
        Some(AnswerError::Malformed("not JSON of that shape"))
    );
    assert_eq!(
        Outcome::read(200, br#"{"done":false}"#).err(),
        Some(AnswerError::Malformed("done is false"))
    );

    let pending = |body: &[u8]| match Outcome::read(202, body) {
        Ok(Outcome::Pending {
            retry_after,
            reason,
        }) => (retry_after, reason),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        pending(br#"{"done":false,"retryAfterSeconds":90,"reason":"propagating"}"#),
        (90, Some("propagating".into()))
    );
    assert_eq!(pending(b"not json"), (DEFAULT_RETRY_AFTER, None));
    assert_eq!(pending(br#"{"done":false,"retryAfterSeconds":0}"#).0, 1);
    assert_eq!(
        pending(br#"{"done":false,"retryAfterSeconds":99999}"#).0,
        3600
    );

    for status in [400, 404, 405, 409, 410, 422] {
        match Outcome::read(
            status,
            br#"{"done":false,"reason":"role app_b is missing"}"#,
        ) {
            Ok(Outcome::Refused { status: s, reason }) => {
                assert_eq!(
                    (s, reason.as_deref()),
                    (status, Some("role app_b is missing"))
                );
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    assert!(matches!(
        Outcome::read(409, b"<html>"),
        Ok(Outcome::Refused { reason: None, .. })
    ));
    for status in [401, 403, 408, 429, 500, 502, 503, 302, 101] {
        assert!(
            matches!(Outcome::read(status, b""), Ok(Outcome::Failed(s)) if s == status),
            "{status}"
        );
    }
    assert_eq!(
        Outcome::read(202, &vec![b' '; MAX_ANSWER + 1]).err(),
        Some(AnswerError::TooLarge)
    );
}

#[test]
fn a_reason_is_kept_short_printable_and_never_with_the_key() {
    let digest = crate::keys::digest_of(KEY.as_bytes());
    assert_eq!(
        clean_reason(Some("grant\nmissing\t "), &[KEY, &digest]).as_deref(),
        Some("grantmissing")
    );
    assert_eq!(
        clean_reason(Some(&format!("bad key {KEY}")), &[KEY, &digest]),
        None
    );
    assert_eq!(
        clean_reason(Some(&format!("digest {digest}")), &[KEY, &digest]),
        None
    );
    assert_eq!(clean_reason(Some("   "), &[]), None);
    let long = clean_reason(Some(&"é".repeat(MAX_REASON)), &[]).unwrap();
    assert!(long.len() <= MAX_REASON && long.chars().all(|c| c == 'é'));
}
