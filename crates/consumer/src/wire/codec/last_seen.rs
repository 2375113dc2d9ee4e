//! Last-seen: what a verifier pod writes on itself for Traffic mode,
//! `<rotation>.keyrotor.dev/last-seen`, when each version was last presented
//! to it. The operator retires a version only once the latest last-seen any
//! verifier reported for it is a quiet window in the past.
//!
//! ```abnf
//! last-seen = [ entry *( "," entry ) ]   ; at most 256 entries, 16384 bytes
//! entry     = version "=" date-time      ; date-time: RFC 3339, section 5.6
//! version   = 1*20DIGIT
//! ```
//!
//! Versions ascend and appear once; times are written in UTC (`Z`), in whole
//! seconds by the client library (a fraction is allowed, up to nine digits).
//! The empty value says no version was seen.
//!
//! [`LastSeen::parse`] is strict. [`LastSeen::parse_lenient`] is what the
//! operator reads many pods with: an entry that breaks the grammar (a
//! version or time out of range, an empty piece) is skipped and counted,
//! spaces around a version or time are allowed, and a repeated version keeps
//! its latest time; a value over the caps is still refused as a whole.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;

use super::{ErrorKind, Lenient, WireError, check_len, decimal, ows, rfc3339};
use crate::wire::{Version, last_seen};

/// When each version was last presented.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastSeen(pub BTreeMap<Version, Timestamp>);

impl LastSeen {
    /// The annotation's name in errors and fixtures.
    pub const NAME: &'static str = "last-seen";
    /// Longest value read, in bytes.
    pub const MAX_LEN: usize = 16 * 1024;
    /// Most entries (comma-separated pieces, empty ones included) read.
    /// Any value of at most this many entries formats within [`Self::MAX_LEN`].
    pub const MAX_ENTRIES: usize = 256;

    /// The annotation value. Times before [`super::earliest_time`] have no
    /// RFC 3339 form; no clock gives them.
    pub fn format(&self) -> String {
        self.to_string()
    }

    /// The annotation (key and value) of these times for `rotation`.
    pub fn annotation(&self, rotation: &str) -> (String, String) {
        (last_seen(rotation), self.format())
    }

    /// Reads a value; anything but the grammar is an error.
    pub fn parse(text: &str) -> Result<LastSeen, WireError> {
        let fail = |kind| WireError::new(Self::NAME, kind, text);
        let mut seen = BTreeMap::new();
        for entry in entries(text).map_err(fail)? {
            let (v, t) = entry_of(entry).map_err(fail)?;
            if seen.insert(v, t).is_some() {
                return Err(fail(ErrorKind::Duplicate("version")));
            }
        }
        Ok(LastSeen(seen))
    }

    /// Reads what it can (see the module's comment); refuses only a value
    /// over the caps.
    pub fn parse_lenient(text: &str) -> Result<Lenient<LastSeen>, WireError> {
        let fail = |kind| WireError::new(Self::NAME, kind, text);
        let mut seen: BTreeMap<Version, Timestamp> = BTreeMap::new();
        let mut skipped = 0;
        for entry in entries(text).map_err(fail)? {
            let entry = entry
                .split_once('=')
                .map(|(v, t)| (ows(v), ows(t)))
                .ok_or(ErrorKind::Syntax(""))
                .and_then(|(v, t)| Ok((decimal(v, "")?, rfc3339(t)?)));
            match entry {
                Ok((v, t)) => {
                    let e = seen.entry(v).or_insert(t);
                    *e = (*e).max(t);
                }
                Err(_) => skipped += 1,
            }
        }
        Ok(Lenient {
            value: LastSeen(seen),
            skipped,
        })
    }
}

/// The entries of a value within the caps (none for the empty value).
fn entries(text: &str) -> Result<impl Iterator<Item = &str>, ErrorKind> {
    check_len(text, LastSeen::MAX_LEN)?;
    let count = if text.is_empty() {
        0
    } else {
        text.bytes().filter(|b| *b == b',').count() + 1
    };
    if count > LastSeen::MAX_ENTRIES {
        return Err(ErrorKind::TooMany {
            max: LastSeen::MAX_ENTRIES,
        });
    }
    Ok(text.split(',').filter(move |_| count > 0))
}

fn entry_of(entry: &str) -> Result<(Version, Timestamp), ErrorKind> {
    let (v, t) = entry
        .split_once('=')
        .ok_or(ErrorKind::Syntax("an entry is not <version>=<time>"))?;
    Ok((decimal(v, "version")?, rfc3339(t)?))
}

impl fmt::Display for LastSeen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (v, t)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{v}={t}")?;
        }
        Ok(())
    }
}

impl FromStr for LastSeen {
    type Err = WireError;
    fn from_str(text: &str) -> Result<Self, WireError> {
        LastSeen::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn entries_are_version_equals_time_joined_by_commas() {
        let seen = LastSeen(BTreeMap::from([
            (3, t("2026-03-01T10:14:03Z")),
            (4, t("2026-03-01T10:15:00.25Z")),
        ]));
        let text = "3=2026-03-01T10:14:03Z,4=2026-03-01T10:15:00.25Z";
        assert_eq!(seen.format(), text);
        assert_eq!(LastSeen::parse(text), Ok(seen));
        assert_eq!(LastSeen::parse(""), Ok(LastSeen::default()));
    }

    #[test]
    fn the_strict_reading_refuses_what_the_lenient_one_skips() {
        let text = " 3 = 2026-03-01T10:14:03Z,x=1,,4=yesterday,3=2026-03-01T10:20:00Z";
        assert_eq!(LastSeen::parse(text).unwrap_err().class(), "syntax");
        let lenient = LastSeen::parse_lenient(text).unwrap();
        assert_eq!(
            lenient.value,
            LastSeen(BTreeMap::from([(3, t("2026-03-01T10:20:00Z"))]))
        );
        assert_eq!(lenient.skipped, 3);
        let twice = "3=2026-03-01T10:14:03Z,3=2026-03-01T10:14:03Z";
        assert_eq!(LastSeen::parse(twice).unwrap_err().class(), "duplicate");
    }

    #[test]
    fn a_value_over_the_caps_is_refused_by_both_readings() {
        let many = vec!["1=2026-03-01T10:14:03Z"; LastSeen::MAX_ENTRIES + 1].join(",");
        for read in [
            LastSeen::parse(&many).map(|_| ()),
            LastSeen::parse_lenient(&many).map(|_| ()),
        ] {
            assert_eq!(read.unwrap_err().class(), "too-many");
        }
        let long = "1".repeat(LastSeen::MAX_LEN + 1);
        assert_eq!(
            LastSeen::parse_lenient(&long).unwrap_err().class(),
            "too-long"
        );
        let commas = ",".repeat(LastSeen::MAX_ENTRIES);
        assert_eq!(
            LastSeen::parse_lenient(&commas).unwrap_err().class(),
            "too-many"
        );
    }

    proptest! {
        #[test]
        fn every_value_within_the_caps_round_trips(
            seen in proptest::collection::btree_map(
                any::<u64>(),
                (super::super::earliest_time().as_second()..=Timestamp::MAX.as_second(), 0..1_000_000_000i32),
                0..=LastSeen::MAX_ENTRIES,
            )
        ) {
            let seen = LastSeen(seen.into_iter().map(|(v, (s, ns))| {
                let at = Timestamp::new(s, ns).unwrap_or(Timestamp::MAX);
                (v, at)
            }).collect());
            let text = seen.format();
            prop_assert!(text.len() <= LastSeen::MAX_LEN);
            prop_assert_eq!(LastSeen::parse(&text), Ok(seen.clone()));
            prop_assert_eq!(LastSeen::parse_lenient(&text), Ok(Lenient { value: seen, skipped: 0 }));
        }
    }
}
