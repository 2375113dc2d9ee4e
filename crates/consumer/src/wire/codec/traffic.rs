//! Traffic: what a `keyrotor verifier` sidecar checked since it started, per
//! version, as its pod reports it in `<rotation>.keyrotor.dev/traffic`:
//!
//! ```text
//! accepted=3:1520,4:88;retired=2:5;client=10.0.0.5
//! ```
//!
//! ```abnf
//! traffic   = part *( ";" part )           ; at most 65536 bytes
//! part      = accepted / retired / client / extension
//! accepted  = "accepted=" [ counts ]       ; each known part at most once
//! retired   = "retired=" [ counts ]
//! client    = "client=" ( IPv4address / IPv6address )   ; RFC 3986, 3.2.2
//! extension = name "=" *( %x20-3A / %x3C-7E )           ; ignored by readers
//! name      = 1*( ALPHA / DIGIT / "-" )    ; not a known part's name
//! counts    = count *( "," count )         ; at most 512 per list
//! count     = version ":" 1*20DIGIT        ; each version at most once
//! version   = 1*20DIGIT
//! ```
//!
//! Counts are since the process started (they only grow, like Prometheus
//! counters); `client` is the address that last presented a retired version,
//! when the gateway passed one on. The operator turns a growing retired
//! count into a Warning event; `kubectl keyrotor status` shows the counts.
//! Nothing here is key material: versions, counts and an IP address.
//!
//! A missing `accepted` or `retired` part reads as no counts; parts a newer
//! sidecar may add are ignored by both readings. The lenient reading (what
//! the operator and the plugin use) also skips a malformed count or client,
//! a part without `=`, and spaces around names and numbers; a repeated part
//! or version keeps the last one. A value over the caps is refused by both.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{ErrorKind, Lenient, WireError, check_len, decimal, ows};
use crate::wire::{Version, traffic};

/// Counts of checked requests, per version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub accepted: BTreeMap<Version, u64>,
    /// A version this verifier once accepted, presented after its retirement.
    pub retired: BTreeMap<Version, u64>,
    /// Who last presented a retired version (from the gateway's header).
    pub client: Option<IpAddr>,
}

impl Traffic {
    /// The annotation's name in errors and fixtures.
    pub const NAME: &'static str = "traffic";
    /// Longest value read, in bytes.
    pub const MAX_LEN: usize = 64 * 1024;
    /// Most counts in one list. Any value within it formats within
    /// [`Self::MAX_LEN`].
    pub const MAX_COUNTS: usize = 512;

    /// Every retired presentation, whatever the version (saturating).
    pub fn retired_total(&self) -> u64 {
        self.retired
            .values()
            .fold(0, |sum, n| sum.saturating_add(*n))
    }

    /// Adds `other`'s counts (several verifier pods of one rotation); counts
    /// saturate, so a pod reporting huge ones cannot overflow the sum.
    pub fn add(&mut self, other: &Traffic) {
        for (v, n) in &other.accepted {
            let e = self.accepted.entry(*v).or_default();
            *e = e.saturating_add(*n);
        }
        for (v, n) in &other.retired {
            let e = self.retired.entry(*v).or_default();
            *e = e.saturating_add(*n);
        }
        if other.client.is_some() {
            self.client = other.client;
        }
    }

    /// The annotation value.
    pub fn format(&self) -> String {
        self.to_string()
    }

    /// The annotation (key and value) of these counts for `rotation`.
    pub fn annotation(&self, rotation: &str) -> (String, String) {
        (traffic(rotation), self.format())
    }

    /// Reads a value; anything but the grammar is an error (also
    /// `text.parse::<Traffic>()`). [`Traffic::parse_lenient`] skips bad
    /// entries instead.
    pub fn parse(text: &str) -> Result<Traffic, WireError> {
        let fail = |kind| WireError::new(Self::NAME, kind, text);
        check_len(text, Self::MAX_LEN).map_err(fail)?;
        let (mut accepted, mut retired, mut client) = (None, None, None);
        for part in text.split(';') {
            let (name, value) = part
                .split_once('=')
                .ok_or(ErrorKind::Syntax("a part is not <name>=<value>"))
                .map_err(fail)?;
            let slot = match name {
                "accepted" => Some((&mut accepted, value)),
                "retired" => Some((&mut retired, value)),
                "client" => {
                    let ip = value
                        .parse::<IpAddr>()
                        .map_err(|_| fail(ErrorKind::Syntax("client is not an IP address")))?;
                    if client.replace(ip).is_some() {
                        return Err(fail(ErrorKind::Duplicate("client")));
                    }
                    None
                }
                other => {
                    extension(other, value).map_err(fail)?;
                    None
                }
            };
            if let Some((slot, value)) = slot {
                let counts = strict_counts(value).map_err(fail)?;
                if slot.replace(counts).is_some() {
                    return Err(fail(ErrorKind::Duplicate("part")));
                }
            }
        }
        Ok(Traffic {
            accepted: accepted.unwrap_or_default(),
            retired: retired.unwrap_or_default(),
            client,
        })
    }

    /// Reads what it can (see the module's comment); refuses only a value
    /// over the caps.
    pub fn parse_lenient(text: &str) -> Result<Lenient<Traffic>, WireError> {
        let fail = |kind| WireError::new(Self::NAME, kind, text);
        check_len(text, Self::MAX_LEN).map_err(fail)?;
        let mut t = Traffic::default();
        let mut skipped = 0;
        for part in text.split(';') {
            let Some((name, value)) = part.split_once('=') else {
                skipped += 1;
                continue;
            };
            match ows(name) {
                "accepted" => t.accepted = lenient_counts(value, &mut skipped).map_err(fail)?,
                "retired" => t.retired = lenient_counts(value, &mut skipped).map_err(fail)?,
                "client" => match ows(value).parse() {
                    Ok(ip) => t.client = Some(ip),
                    Err(_) => {
                        t.client = None;
                        skipped += 1;
                    }
                },
                _ => {}
            }
        }
        Ok(Lenient { value: t, skipped })
    }
}

/// An unknown part: a name and printable ASCII, so a future part cannot
/// smuggle control characters through a reader that skips it.
fn extension(name: &str, value: &str) -> Result<(), ErrorKind> {
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !name_ok {
        return Err(ErrorKind::Syntax(
            "a part's name is not letters, digits and -",
        ));
    }
    if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(ErrorKind::Syntax("a part's value is not printable ASCII"));
    }
    Ok(())
}

/// The pieces of a count list, within [`Traffic::MAX_COUNTS`].
fn pieces(list: &str) -> Result<impl Iterator<Item = &str>, ErrorKind> {
    let count = if list.is_empty() {
        0
    } else {
        list.bytes().filter(|b| *b == b',').count() + 1
    };
    if count > Traffic::MAX_COUNTS {
        return Err(ErrorKind::TooMany {
            max: Traffic::MAX_COUNTS,
        });
    }
    Ok(list.split(',').filter(move |_| count > 0))
}

fn strict_counts(list: &str) -> Result<BTreeMap<Version, u64>, ErrorKind> {
    let mut out = BTreeMap::new();
    for piece in pieces(list)? {
        let (v, n) = piece
            .split_once(':')
            .ok_or(ErrorKind::Syntax("a count is not <version>:<count>"))?;
        if out
            .insert(decimal(v, "version")?, decimal(n, "count")?)
            .is_some()
        {
            return Err(ErrorKind::Duplicate("version"));
        }
    }
    Ok(out)
}

fn lenient_counts(list: &str, skipped: &mut usize) -> Result<BTreeMap<Version, u64>, ErrorKind> {
    let mut out = BTreeMap::new();
    for piece in pieces(ows(list))? {
        let count = piece
            .split_once(':')
            .ok_or(ErrorKind::Syntax(""))
            .and_then(|(v, n)| Ok((decimal(ows(v), "")?, decimal(ows(n), "")?)));
        match count {
            Ok((v, n)) => {
                out.insert(v, n);
            }
            Err(_) => *skipped += 1,
        }
    }
    Ok(out)
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = |f: &mut fmt::Formatter<'_>, m: &BTreeMap<Version, u64>| {
            for (i, (v, n)) in m.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                write!(f, "{sep}{v}:{n}")?;
            }
            Ok(())
        };
        f.write_str("accepted=")?;
        counts(f, &self.accepted)?;
        f.write_str(";retired=")?;
        counts(f, &self.retired)?;
        if let Some(ip) = self.client {
            write!(f, ";client={ip}")?;
        }
        Ok(())
    }
}

impl FromStr for Traffic {
    type Err = WireError;
    fn from_str(text: &str) -> Result<Self, WireError> {
        Traffic::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_annotation_round_trips_and_tolerates_what_it_does_not_know() {
        let t = Traffic {
            accepted: BTreeMap::from([(3, 1520), (4, 88)]),
            retired: BTreeMap::from([(2, 5)]),
            client: Some("10.0.0.5".parse().unwrap()),
        };
        let text = t.format();
        assert_eq!(text, "accepted=3:1520,4:88;retired=2:5;client=10.0.0.5");
        assert_eq!(text.parse(), Ok(t.clone()));
        assert_eq!(Traffic::parse(&text), Ok(t.clone()));
        let newer = "accepted=3:x,4:2;future=1;retired=;client=not-an-ip";
        assert_eq!(newer.parse::<Traffic>().unwrap_err().class(), "syntax");
        let lenient = Traffic::parse_lenient(newer).unwrap();
        assert_eq!(lenient.value.accepted, BTreeMap::from([(4, 2)]));
        assert!(lenient.value.retired.is_empty() && lenient.value.client.is_none());
        assert_eq!(lenient.skipped, 2);
        assert_eq!(
            "accepted=1:2;future-part=x y"
                .parse::<Traffic>()
                .unwrap()
                .accepted,
            BTreeMap::from([(1, 2)])
        );
    }

    #[test]
    fn a_repeated_part_or_version_is_refused_by_the_strict_reading() {
        for text in [
            "accepted=1:2;accepted=1:3",
            "accepted=1:2,1:3;retired=",
            "accepted=;retired=;client=::1;client=::2",
        ] {
            assert_eq!(text.parse::<Traffic>().unwrap_err().class(), "duplicate");
        }
        let last = Traffic::parse_lenient("accepted=1:2;accepted=1:3").unwrap();
        assert_eq!(last.value.accepted, BTreeMap::from([(1, 3)]));
    }

    #[test]
    fn pods_add_up_without_overflowing() {
        let mut sum = Traffic::parse("accepted=1:2;retired=0:1").unwrap();
        sum.add(&Traffic::parse("accepted=1:3,2:1;retired=0:2;client=::1").unwrap());
        assert_eq!(sum.format(), "accepted=1:5,2:1;retired=0:3;client=::1");
        assert_eq!(sum.retired_total(), 3);
        let huge = format!("accepted=1:{m};retired=0:{m},1:{m}", m = u64::MAX);
        sum.add(&huge.parse().unwrap());
        assert_eq!(sum.accepted[&1], u64::MAX);
        assert_eq!(sum.retired_total(), u64::MAX);
    }

    #[test]
    fn a_value_over_the_caps_is_refused_by_both_readings() {
        let many = format!(
            "accepted={}",
            vec!["1:1"; Traffic::MAX_COUNTS + 1].join(",")
        );
        assert_eq!(many.parse::<Traffic>().unwrap_err().class(), "too-many");
        assert_eq!(
            Traffic::parse_lenient(&many).unwrap_err().class(),
            "too-many"
        );
        let long = format!("x={}", "y".repeat(Traffic::MAX_LEN));
        assert_eq!(
            Traffic::parse_lenient(&long).unwrap_err().class(),
            "too-long"
        );
        assert_eq!(Traffic::parse(&long).unwrap_err().class(), "too-long");
    }

    fn counts() -> impl Strategy<Value = BTreeMap<Version, u64>> {
        proptest::collection::btree_map(any::<u64>(), any::<u64>(), 0..=Traffic::MAX_COUNTS)
    }

    proptest! {
        #[test]
        fn every_value_within_the_caps_round_trips(
            accepted in counts(),
            retired in counts(),
            client in proptest::option::of(any::<IpAddr>()),
        ) {
            let t = Traffic { accepted, retired, client };
            let text = t.format();
            prop_assert!(text.len() <= Traffic::MAX_LEN);
            prop_assert_eq!(text.parse::<Traffic>(), Ok(t.clone()));
            prop_assert_eq!(Traffic::parse_lenient(&text), Ok(Lenient { value: t, skipped: 0 }));
        }
    }
}
