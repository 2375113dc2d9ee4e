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

/// The longest key accepted for checking; keyrotor's keys are 43–64 bytes.
pub const MAX_KEY_LEN: usize = 512;

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
