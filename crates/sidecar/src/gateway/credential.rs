//! Which key a request presents, and who presents it: pure functions over
//! the request's headers, written for hostile input.
//!
//! A gateway copies the client's headers into its authorization subrequest,
//! so everything here is attacker-controlled: a repeated header, a value
//! that is not UTF-8 or not the configured scheme, or a very long one is
//! *malformed* and refused before any hashing. Nothing returned here is ever
//! logged: a wrong key is often a typo of the right one.

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderName};

/// The longest key accepted for checking: the longest key keyrotor holds
/// (an adopted or issuer-minted key may have up to 1,024 bytes; generated
/// ones have 43–64). A longer one cannot be valid and is not hashed.
pub const MAX_KEY_LEN: usize = keyrotor_consumer::keys::SecretKey::MAX_LEN;

/// Where the key is: a header, with an optional auth scheme before it.
#[derive(Clone, Debug)]
pub struct Source {
    pub header: HeaderName,
    /// `Bearer` for `Authorization: Bearer <key>`; `None` for a bare value
    /// (`X-API-Key: <key>`).
    pub scheme: Option<String>,
}

/// Why a request presents no checkable key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    Missing,
    Repeated,
    NotText,
    WrongScheme,
    TooLong,
    Empty,
    Spaced,
}

impl Malformed {
    /// A short reason, for the response header and the debug log.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::Missing => "no key presented",
            Malformed::Repeated => "the key header is repeated",
            Malformed::NotText => "the key header is not text",
            Malformed::WrongScheme => "the key header has another scheme",
            Malformed::TooLong => "the key is too long",
            Malformed::Empty => "the key is empty",
            Malformed::Spaced => "the key has a space inside",
        }
    }
}

/// The presented key's bytes (borrowed from the headers).
pub fn presented<'h>(headers: &'h HeaderMap, source: &Source) -> Result<&'h [u8], Malformed> {
    let mut values = headers.get_all(&source.header).iter();
    let value = values.next().ok_or(Malformed::Missing)?;
    if values.next().is_some() {
        return Err(Malformed::Repeated);
    }
    let bytes = value.as_bytes();
    // Visible ASCII only: a key is base64url or hex; anything else is not one.
    if !bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(Malformed::NotText);
    }
    let key = match &source.scheme {
        None => bytes,
        Some(scheme) => {
            let n = scheme.len();
            let named = bytes.len() > n
                && bytes[..n].eq_ignore_ascii_case(scheme.as_bytes())
                && bytes[n] == b' ';
            if !named {
                return Err(Malformed::WrongScheme);
            }
            &bytes[n + 1..]
        }
    };
    let key = key.trim_ascii();
    if key.is_empty() {
        return Err(Malformed::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Malformed::TooLong);
    }
    // No key holds a space; a value that does is most often a repeated
    // header the gateway joined into one (Envoy sends `Bearer a,Bearer b`).
    if key.contains(&b' ') {
        return Err(Malformed::Spaced);
    }
    Ok(key)
}

/// The client's address as the gateway passed it on (the first address of
/// `X-Forwarded-For`, or a single address header), if it is an address:
/// anything else is ignored, so no request text reaches an event.
pub fn client(headers: &HeaderMap, header: &HeaderName) -> Option<IpAddr> {
    let value = headers.get(header)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    first.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn bearer() -> Source {
        Source {
            header: HeaderName::from_static("authorization"),
            scheme: Some("Bearer".into()),
        }
    }

    type Pairs<'a> = &'a [(&'a str, &'a [u8])];

    fn headers(pairs: Pairs) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_bearer_key_is_found_and_everything_else_is_malformed() {
        let ok = headers(&[("authorization", b"Bearer abc-DEF_123")]);
        assert_eq!(presented(&ok, &bearer()), Ok(&b"abc-DEF_123"[..]));
        let lower = headers(&[("authorization", b"bearer  abc ")]);
        assert_eq!(presented(&lower, &bearer()), Ok(&b"abc"[..]));

        let cases: [(Pairs, Malformed); 6] = [
            (&[], Malformed::Missing),
            (
                &[
                    ("authorization", b"Bearer a"),
                    ("authorization", b"Bearer b"),
                ],
                Malformed::Repeated,
            ),
            (&[("authorization", b"Bearer \xff\xfe")], Malformed::NotText),
            (
                &[("authorization", b"Basic dXNlcg==")],
                Malformed::WrongScheme,
            ),
            (&[("authorization", b"Bearer    ")], Malformed::Empty),
            (&[("authorization", b"Bearerabc")], Malformed::WrongScheme),
        ];
        for (h, want) in cases {
            assert_eq!(presented(&headers(h), &bearer()), Err(want), "{h:?}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_KEY_LEN + 1));
        let long = headers(&[("authorization", long.as_bytes())]);
        assert_eq!(presented(&long, &bearer()), Err(Malformed::TooLong));
    }

    #[test]
    fn a_repeated_header_a_gateway_joined_into_one_is_malformed_not_an_unknown_key() {
        // Envoy's ext_authz forwards two `Authorization` headers as one value.
        let joined = headers(&[("authorization", b"Bearer abc,Bearer def")]);
        assert_eq!(presented(&joined, &bearer()), Err(Malformed::Spaced));
        let inner = headers(&[("authorization", b"Bearer abc def")]);
        assert_eq!(presented(&inner, &bearer()), Err(Malformed::Spaced));
        // A comma alone may be part of an adopted key.
        let comma = headers(&[("authorization", b"Bearer abc,def")]);
        assert_eq!(presented(&comma, &bearer()), Ok(&b"abc,def"[..]));
    }

    #[test]
    fn the_longest_key_keyrotor_may_hold_is_checked_not_refused_as_malformed() {
        // An adopted or issuer-minted key may have 1,024 bytes.
        let key = "k".repeat(keyrotor_consumer::keys::SecretKey::MAX_LEN);
        let value = format!("Bearer {key}");
        let h = headers(&[("authorization", value.as_bytes())]);
        assert_eq!(presented(&h, &bearer()), Ok(key.as_bytes()));
    }

    #[test]
    fn a_bare_header_holds_the_key_itself() {
        let source = Source {
            header: HeaderName::from_static("x-api-key"),
            scheme: None,
        };
        let h = headers(&[("x-api-key", b"k3y")]);
        assert_eq!(presented(&h, &source), Ok(&b"k3y"[..]));
    }

    #[test]
    fn only_an_address_is_taken_as_the_client() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let h = headers(&[("x-forwarded-for", b"10.1.2.3, 192.168.0.1")]);
        assert_eq!(client(&h, &xff), Some("10.1.2.3".parse().unwrap()));
        let h = headers(&[("x-forwarded-for", b"Bearer secret")]);
        assert_eq!(client(&h, &xff), None);
        let h = headers(&[("x-forwarded-for", b"::1")]);
        assert_eq!(client(&h, &xff), Some("::1".parse().unwrap()));
    }
}

/// Hostile header values against a real verifier store: parsing never
/// panics, and a request is allowed only with a key the store holds, byte
/// for byte (after the scheme and the spaces around the key).
#[cfg(test)]
mod properties {
    use std::sync::{Arc, OnceLock};

    use hyper::header::HeaderValue;
    use keyrotor_consumer::keys::{Alphabet, KeySpec, SecretKey};
    use keyrotor_consumer::verifier::Verifier;
    use proptest::prelude::*;

    use super::super::gate::{Decision, Gate};
    use super::super::metrics::{Rejection, VerifierMetrics};
    use super::*;
    use keyrotor_consumer::wire as w;

    struct Store {
        gate: Gate,
        /// (version, key) of every accepted version.
        keys: Vec<(u64, SecretKey)>,
        /// A key of the same format the store does not hold.
        stranger: SecretKey,
    }

    fn key() -> SecretKey {
        SecretKey::generate(&KeySpec {
            alphabet: Alphabet::Base64Url,
            length: 43,
            prefix: "kr_".into(),
            checksum: false,
        })
        .unwrap()
    }

    /// A verifier directory accepting versions 1 and 2, loaded once; the
    /// files are removed after loading (the gate keeps its snapshot).
    fn store() -> &'static Store {
        static STORE: OnceLock<Store> = OnceLock::new();
        STORE.get_or_init(|| {
            let keys = vec![(1, key()), (2, key())];
            let dir = std::env::temp_dir()
                .join(format!("keyrotor-credential-props-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mut files = vec![
                (w::ROTATION_FILE.to_string(), "orders".to_string()),
                (w::ROLE_FILE.to_string(), w::ROLE_VERIFIER.to_string()),
                (w::REVISION_FILE.to_string(), "1".to_string()),
                (w::ACCEPTED_FILE.to_string(), "1,2".to_string()),
            ];
            for (v, k) in &keys {
                files.push((w::digest_file(*v), k.digest()));
            }
            for (name, text) in files {
                std::fs::write(dir.join(name), text).unwrap();
            }
            let verifier = Verifier::open(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            let gate = Gate::new(
                Arc::new(verifier.unwrap()),
                Source {
                    header: HeaderName::from_static("authorization"),
                    scheme: Some("Bearer".into()),
                },
                Some(HeaderName::from_static("x-forwarded-for")),
                Arc::new(VerifierMetrics::new("shop", "orders")),
            );
            Store {
                gate,
                keys,
                stranger: key(),
            }
        })
    }

    fn headers(values: &[Vec<u8>]) -> Option<HeaderMap> {
        let mut h = HeaderMap::new();
        for v in values {
            let v = HeaderValue::from_bytes(v).ok()?;
            h.append(HeaderName::from_static("authorization"), v);
        }
        Some(h)
    }

    /// Checks the gate's decision on `values`; returns it.
    fn decide(values: &[Vec<u8>]) -> Result<Option<Decision>, TestCaseError> {
        let Some(h) = headers(values) else {
            return Ok(None);
        };
        let s = store();
        let decision = s.gate.decide(&h);
        if let Decision::Allow(v) = decision {
            let held = s.keys.iter().find(|(n, _)| *n == v).map(|(_, k)| k);
            let presented = presented(&h, &bearer());
            prop_assert!(held.is_some(), "allowed a version the store lacks");
            prop_assert_eq!(presented, Ok(held.unwrap().expose().as_bytes()));
        }
        Ok(Some(decision))
    }

    fn bearer() -> Source {
        Source {
            header: HeaderName::from_static("authorization"),
            scheme: Some("Bearer".into()),
        }
    }

    /// Ways to change a key so that it is no longer that key.
    #[derive(Clone, Debug)]
    enum Mutation {
        Replace(usize, u8),
        Truncate(usize),
        Append(u8),
        Prepend(u8),
        Twice,
        Upper,
    }

    fn mutate(key: &[u8], m: &Mutation) -> Vec<u8> {
        let mut k = key.to_vec();
        match m {
            Mutation::Replace(i, b) => k[i % key.len()] = *b,
            Mutation::Truncate(n) => k.truncate(key.len() - 1 - n % (key.len() - 1)),
            Mutation::Append(b) => k.push(*b),
            Mutation::Prepend(b) => k.insert(0, *b),
            Mutation::Twice => k.extend_from_slice(key),
            Mutation::Upper => k.make_ascii_uppercase(),
        }
        k
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let visible = 0x21u8..=0x7e;
        prop_oneof![
            (any::<usize>(), visible.clone()).prop_map(|(i, b)| Mutation::Replace(i, b)),
            any::<usize>().prop_map(Mutation::Truncate),
            visible.clone().prop_map(Mutation::Append),
            visible.prop_map(Mutation::Prepend),
            Just(Mutation::Twice),
            Just(Mutation::Upper),
        ]
    }

    /// `Bearer`-like prefixes, right and wrong.
    fn scheme() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("Bearer "),
            Just("bearer "),
            Just("BEARER   "),
            Just("Bearer\t"),
            Just("Bearer"),
            Just("Basic "),
            Just(""),
            Just(" Bearer "),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_header_bytes_never_panic_or_pass(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..3),
        ) {
            let decision = decide(&values)?;
            prop_assert!(!matches!(decision, Some(Decision::Allow(_))), "random bytes were allowed");
        }

        #[test]
        fn only_an_address_is_ever_taken_as_the_client(
            value in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                "[0-9a-fA-F:., %]{0,60}".prop_map(String::into_bytes),
            ],
        ) {
            let Ok(v) = HeaderValue::from_bytes(&value) else { return Ok(()) };
            let xff = HeaderName::from_static("x-forwarded-for");
            let mut h = HeaderMap::new();
            h.insert(xff.clone(), v);
            if let Some(ip) = client(&h, &xff) {
                let first = std::str::from_utf8(&value).unwrap().split(',').next().unwrap();
                prop_assert_eq!(first.trim().parse::<IpAddr>().ok(), Some(ip));
            }
        }

        #[test]
        fn a_held_key_passes_exactly_when_it_is_presented_whole(
            which in 0..2usize,
            scheme in scheme(),
            spaces in (0..3usize, 0..3usize),
        ) {
            let (v, k) = &store().keys[which];
            let value = [
                scheme.as_bytes(),
                " ".repeat(spaces.0).as_bytes(),
                k.expose().as_bytes(),
                " ".repeat(spaces.1).as_bytes(),
            ]
            .concat();
            let well_formed = value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ");
            let want = if well_formed { Decision::Allow(*v) } else { Decision::Deny(Rejection::Malformed) };
            prop_assert_eq!(decide(&[value])?, Some(want));
        }

        #[test]
        fn a_changed_or_foreign_key_never_passes(
            which in 0..3usize,
            scheme in scheme(),
            m in mutation(),
            repeated in any::<bool>(),
        ) {
            let s = store();
            let key = match s.keys.get(which) {
                Some((_, k)) => k.expose().as_bytes(),
                None => s.stranger.expose().as_bytes(),
            };
            let changed = mutate(key, &m);
            let foreign = which == 2;
            if changed == key && !foreign {
                return Ok(()); // `Upper` of a key without letters, say
            }
            let mut values = vec![[scheme.as_bytes(), &changed].concat()];
            if repeated {
                values.push([b"Bearer ".as_slice(), key].concat());
            }
            let decision = decide(&values)?;
            prop_assert!(!matches!(decision, Some(Decision::Allow(_))), "{m:?} was allowed");
        }
    }
}
