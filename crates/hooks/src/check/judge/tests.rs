use super::*;
use keyrotor_consumer::hook::MAX_ANSWER;

const KEY: &str = "kc-issued-key-material-0123456789";

fn judged(want: &Want, status: u16, body: &str) -> (bool, String) {
    let j = judge(want, status, body.as_bytes(), &[]);
    (j.passed, j.got)
}

fn issued_body(key: &str, key_id: &str) -> String {
    format!(r#"{{"done":true,"key":"{key}","keyId":"{key_id}"}}"#)
}

#[test]
fn a_204_is_done_for_stage_and_retire_and_a_2xx_needs_done_json() {
    assert_eq!(judged(&Want::Done, 204, ""), (true, "HTTP 204 done".into()));
    assert_eq!(
        judged(&Want::Done, 200, r#"{"done":true,"message":"ok"}"#),
        (true, "HTTP 200 done".into())
    );
    assert_eq!(
        judged(&Want::Done, 200, "ok"),
        (
            false,
            "HTTP 200: the hook's answer was not {\"done\": true} JSON (not JSON of that shape)"
                .into()
        )
    );
    assert!(
        !judged(&Want::Done, 200, r#"{"done":false}"#).0,
        "done false is no done"
    );
    let long = format!(r#"{{"done":true,"message":"{}"}}"#, "x".repeat(MAX_ANSWER));
    assert_eq!(
        judged(&Want::Done, 200, &long),
        (
            false,
            "HTTP 200: the hook's answer was longer than 65536 bytes".into()
        )
    );
}

#[test]
fn a_failed_call_is_named_for_what_keyrotor_does_with_it() {
    assert_eq!(
        judged(&Want::Done, 500, "boom"),
        (
            false,
            "HTTP 500, a failed call (keyrotor retries it)".into()
        )
    );
    assert_eq!(
        judged(
            &Want::Done,
            409,
            r#"{"done":false,"reason":"role missing"}"#
        ),
        (false, "HTTP 409 refused: role missing".into())
    );
    let still = judged(&Want::Done, 202, r#"{"done":false,"retryAfterSeconds":5}"#);
    assert_eq!(still, (false, "HTTP 202 pending (ask again in 5 s)".into()));
}

#[test]
fn a_refusal_is_a_4xx_but_the_token_and_retry_statuses() {
    for status in [400, 404, 409, 422] {
        assert!(judged(&Want::Refused, status, "").0, "{status}");
    }
    for status in [401, 403, 408, 429, 500, 200, 204] {
        let body = if status == 200 {
            r#"{"done":true}"#
        } else {
            ""
        };
        assert!(!judged(&Want::Refused, status, body).0, "{status}");
    }
    let acted = judge(&Want::Refused, 204, b"", &[]);
    assert!(acted.done && !acted.passed && acted.got == "HTTP 204 done");
}

#[test]
fn a_wrong_token_gets_401_or_403_and_never_a_key() {
    assert_eq!(
        judged(&Want::NotAuthorized, 401, ""),
        (true, "HTTP 401, the token refused".into())
    );
    assert!(judged(&Want::NotAuthorized, 403, "").0);
    assert!(!judged(&Want::NotAuthorized, 400, "").0);
    assert!(!judged(&Want::NotAuthorized, 200, r#"{"done":true}"#).0);
    let (passed, got) = judged(&Want::NotAuthorized, 401, &issued_body(KEY, "id1"));
    assert!(
        !passed && got.ends_with("with a key in the answer"),
        "{got}"
    );
    assert!(!got.contains(KEY));
}

#[test]
fn an_issued_key_is_one_keyrotor_can_store_and_is_told_only_by_length() {
    let first = judge(
        &Want::NewKey { unlike: None },
        200,
        issued_body(KEY, "ak_1").as_bytes(),
        &[],
    );
    assert!(first.passed, "{}", first.got);
    assert_eq!(first.got, "HTTP 200 done, a 33-byte key, keyId ak_1");
    let record = first.key.unwrap();
    assert_eq!(
        record.digest,
        keyrotor_consumer::keys::digest_of(KEY.as_bytes())
    );

    let (passed, got) = judged(&Want::NewKey { unlike: None }, 204, "");
    assert!(
        !passed && got == "HTTP 204: the issuer's answer has no key",
        "{got}"
    );
    let (passed, got) = judged(
        &Want::NewKey { unlike: None },
        200,
        &issued_body("short", "x"),
    );
    assert!(!passed && got.contains("shorter than 16 bytes"), "{got}");
    assert!(!got.contains("short\""), "{got}");

    let again = judged(
        &Want::NewKey {
            unlike: Some(&record),
        },
        200,
        &issued_body(KEY, "ak_1"),
    );
    assert_eq!(
        again,
        (
            false,
            "HTTP 200 done, a 33-byte key, keyId ak_1: the same key as an earlier version's".into()
        )
    );
}

#[test]
fn a_repeated_issue_must_answer_the_same_key_and_key_id() {
    let record = KeyRecord {
        digest: keyrotor_consumer::keys::digest_of(KEY.as_bytes()),
        key_id: Some("ak_1".into()),
    };
    let same = Want::SameKey(&record);
    assert!(judged(&same, 200, &issued_body(KEY, "ak_1")).0);
    let other = judged(
        &same,
        200,
        &issued_body("another-issued-key-0123456789", "ak_1"),
    );
    assert!(!other.0 && other.1.ends_with("a different key than the first answer"));
    let moved = judged(&same, 200, &issued_body(KEY, "ak_2"));
    assert!(!moved.0 && moved.1.ends_with("the same key with another keyId"));
}

#[test]
fn a_reason_that_holds_the_request_key_is_not_shown() {
    let body = format!(r#"{{"done":false,"reason":"bad key {KEY}"}}"#);
    let j = judge(&Want::Refused, 400, body.as_bytes(), &[KEY]);
    assert!(j.passed);
    assert_eq!(j.got, "HTTP 400 refused");
}

#[test]
fn health_wants_its_status_exactly() {
    assert!(judged(&Want::Status(200), 200, "ok").0);
    assert_eq!(
        judged(&Want::Status(200), 405, "{}"),
        (false, "HTTP 405".into())
    );
}

#[test]
fn an_echo_is_the_key_anywhere_in_the_body() {
    assert!(echoes(
        format!(r#"{{"message":"staged {KEY}"}}"#).as_bytes(),
        KEY
    ));
    assert!(!echoes(br#"{"done":true}"#, KEY));
    assert!(!echoes(b"anything", ""));
}
