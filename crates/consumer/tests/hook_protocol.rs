//! Property tests of the hook protocol's parsers (`keyrotor_consumer::hook`).
//! An answer body comes from a hook keyrotor does not control: whatever its
//! bytes, reading one must not panic, must not hold more heap than a small
//! multiple of the body (which is capped before anything is read), and
//! must never hand keyrotor an issued key or keyId it could not store.
//! Requests and answers survive a JSON round trip field by field.
//!
//! Heap is measured by a counting allocator around `System`, per thread,
//! so tests running in parallel do not see each other's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use keyrotor_consumer::hook::{HookAnswer, HookRequest, MAX_ANSWER, MAX_KEY_ID, MAX_REQUEST};
use proptest::prelude::*;

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn allocated(size: usize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + size);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

fn freed(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

// SAFETY: every call is passed to `System` unchanged; the wrapper only
// counts sizes in thread-locals that need no allocation of their own.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            allocated(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        freed(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as a move: old and new block live at once.
            allocated(new_size);
            freed(layout.size());
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Most heap `f` held at once on this thread beyond what was live before.
fn peak_heap(f: impl FnOnce()) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(Cell::get) - base
}

/// What reading `body` may hold at most: the strings serde_json yields (no
/// longer than the body together) or its scratch buffer for escaped ones,
/// the copies an issued key is checked in, and small fixed costs. Measured:
/// under 3 × the body for an issuer's answer with a 1 KiB key, under the
/// body's length plus 1 KiB for a message of escapes at the cap.
fn heap_bound(body: &[u8]) -> usize {
    3 * body.len() + 1024
}

/// The answer pipeline as keyrotor runs it for an issuer; on success, the
/// key and keyId are checked again here, independently of the parser.
fn read_issuer_answer(body: &[u8]) {
    let answer = HookAnswer::parse(body);
    assert!(
        answer.is_err() || body.len() <= MAX_ANSWER,
        "over the cap yet read"
    );
    let Ok(issued) = answer.and_then(HookAnswer::into_issued) else {
        return;
    };
    let key = issued.key.expose().as_bytes();
    assert!(
        (16..=1024).contains(&key.len()),
        "key of {} bytes",
        key.len()
    );
    assert!(
        key.iter().all(u8::is_ascii_graphic),
        "key with unprintable bytes"
    );
    if let Some(id) = &issued.key_id {
        assert!((1..=MAX_KEY_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()));
    }
}

fn check_answer_body(body: &[u8]) {
    let held = peak_heap(|| read_issuer_answer(body));
    if body.len() > MAX_ANSWER {
        assert_eq!(held, 0, "a body over the cap is refused before it is read");
    } else {
        assert!(
            held <= heap_bound(body),
            "{held} bytes held for a {}-byte body",
            body.len()
        );
    }
}

/// Answers as hooks write them: `done` of any JSON type, keys and keyIds
/// printable or not, of any length around the limits.
fn answer_json() -> impl Strategy<Value = Vec<u8>> {
    let text = prop_oneof![
        "[!-~]{16,64}",
        "[!-~]{1020,1030}",
        ".{0,40}",
        "[ -~]{0,300}",
        any::<String>(),
    ];
    let done = prop_oneof![
        Just(serde_json::json!(true)),
        Just(serde_json::json!(false)),
        Just(serde_json::json!("true")),
        Just(serde_json::json!(1)),
    ];
    (
        done,
        proptest::option::of(text.clone()),
        proptest::option::of(text.clone()),
        proptest::option::of(text),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(done, key, key_id, message, cut, truncate)| {
            let mut v = serde_json::json!({ "done": done });
            for (name, value) in [("key", key), ("keyId", key_id), ("message", message)] {
                if let Some(value) = value {
                    v[name] = value.into();
                }
            }
            let mut body = serde_json::to_vec(&v).unwrap();
            if truncate {
                body.truncate(cut.index(body.len() + 1));
            }
            body
        })
}

/// Bodies right around the cap, their message one long escaped string (the
/// parser's most expensive input).
fn bodies_at_the_cap() -> impl Strategy<Value = Vec<u8>> {
    (
        MAX_ANSWER - 64..MAX_ANSWER + 64,
        prop_oneof![Just("\\u00e9"), Just("\\n"), Just("x")],
    )
        .prop_map(|(len, unit)| {
            let mut body = br#"{"done":true,"key":"0123456789abcdef","message":""#.to_vec();
            while body.len() + unit.len() + 2 <= len {
                body.extend_from_slice(unit.as_bytes());
            }
            body.extend_from_slice(b"\"}");
            body.resize(len, b' ');
            body
        })
}

fn request() -> impl Strategy<Value = HookRequest> {
    (
        (
            any::<String>(),
            "[a-z]{1,8}",
            any::<String>(),
            any::<String>(),
        ),
        (any::<String>(), any::<String>(), any::<u64>()),
        (
            any::<String>(),
            proptest::option::of(any::<String>()),
            proptest::option::of(any::<String>()),
        ),
    )
        .prop_map(
            |(
                (api_version, step, idempotency_key, namespace),
                (rotation, uid, version),
                (sha256, key, key_id),
            )| {
                HookRequest {
                    api_version,
                    step,
                    idempotency_key,
                    namespace,
                    rotation,
                    uid,
                    version,
                    sha256,
                    key,
                    key_id,
                    username: None,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_read_as_an_answer_never_panic_and_stay_bounded(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        check_answer_body(&body);
    }

    #[test]
    fn answers_of_any_content_yield_only_keys_keyrotor_can_store(body in answer_json()) {
        check_answer_body(&body);
    }

    #[test]
    fn requests_survive_a_json_round_trip(r in request()) {
        let json = r.to_json();
        prop_assume!(json.len() <= MAX_REQUEST);
        let back = HookRequest::parse(&json).unwrap();
        prop_assert_eq!(
            (&back.api_version, &back.step, &back.idempotency_key, &back.namespace),
            (&r.api_version, &r.step, &r.idempotency_key, &r.namespace)
        );
        prop_assert_eq!((&back.rotation, &back.uid, back.version), (&r.rotation, &r.uid, r.version));
        prop_assert_eq!((&back.sha256, &back.key, &back.key_id), (&r.sha256, &r.key, &r.key_id));
    }

    #[test]
    fn answers_survive_a_json_round_trip(
        message in proptest::option::of(any::<String>()),
        key in proptest::option::of(any::<String>()),
        key_id in proptest::option::of(any::<String>()),
    ) {
        let mut a = HookAnswer::done(message);
        (a.key, a.key_id) = (key, key_id);
        let back = HookAnswer::parse(&serde_json::to_vec(&a).unwrap()).unwrap();
        prop_assert!(back.done);
        prop_assert_eq!((&back.message, &back.key, &back.key_id), (&a.message, &a.key, &a.key_id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn bodies_around_the_cap_are_refused_unread_or_read_within_bounds(body in bodies_at_the_cap()) {
        check_answer_body(&body);
    }
}
