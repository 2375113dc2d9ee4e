//! The nudge: what the operator writes on a consumer pod that has not
//! confirmed a revision yet, `<rotation>.keyrotor.dev/nudge`. Any update of
//! a pod makes kubelet resync its volumes; the value records which revision
//! the nudge was for, how many nudges it was and when, so the operator can
//! back off and stop after a bound (docs/design.md, "the nudge").
//!
//! ```abnf
//! nudge        = revision "/" attempt "/" unix-seconds
//! revision     = 1*20DIGIT   ; at most 18446744073709551615
//! attempt      = 1*20DIGIT   ; at most 4294967295
//! unix-seconds = 1*20DIGIT   ; at most 253402207200 (9999-12-30T22:00:00Z)
//! ```
//!
//! Only the operator writes it, so reading is strict: a value that breaks
//! the grammar counts as no nudge.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;

use super::{ErrorKind, WireError, check_len, decimal};
use crate::wire::nudge;

/// One nudge of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nudge {
    /// The revision the pod had not confirmed.
    pub revision: u64,
    /// Which nudge for that revision this was (1 for the first).
    pub attempt: u32,
    /// When it was sent; written in whole seconds (a fraction is dropped),
    /// never before 1970.
    pub at: Timestamp,
}

impl Nudge {
    /// The annotation's name in errors and fixtures.
    pub const NAME: &'static str = "nudge";
    /// Longest value read, in bytes (three 20-digit numbers and two `/`).
    pub const MAX_LEN: usize = 62;

    /// The annotation value.
    pub fn format(&self) -> String {
        self.to_string()
    }

    /// Reads a value; anything but the grammar is an error.
    pub fn parse(text: &str) -> Result<Nudge, WireError> {
        Nudge::fields(text).map_err(|kind| WireError::new(Self::NAME, kind, text))
    }

    /// The annotation (key and value) of this nudge for `rotation`.
    pub fn annotation(&self, rotation: &str) -> (String, String) {
        (nudge(rotation), self.format())
    }

    fn fields(text: &str) -> Result<Nudge, ErrorKind> {
        check_len(text, Self::MAX_LEN)?;
        let mut parts = text.splitn(3, '/');
        let mut next = || {
            parts
                .next()
                .ok_or(ErrorKind::Syntax("expected three fields"))
        };
        let (revision, attempt, at) = (next()?, next()?, next()?);
        let revision = decimal(revision, "revision")?;
        let attempt = decimal(attempt, "attempt")?
            .try_into()
            .map_err(|_| ErrorKind::OutOfRange("attempt"))?;
        let seconds = decimal(at, "unix-seconds")?;
        let at = i64::try_from(seconds)
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok())
            .ok_or(ErrorKind::OutOfRange("unix-seconds"))?;
        Ok(Nudge {
            revision,
            attempt,
            at,
        })
    }
}

impl fmt::Display for Nudge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.as_second().max(0);
        write!(f, "{}/{}/{at}", self.revision, self.attempt)
    }
}

impl FromStr for Nudge {
    type Err = WireError;
    fn from_str(text: &str) -> Result<Self, WireError> {
        Nudge::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn a_nudge_is_revision_attempt_and_unix_seconds() {
        let n = Nudge {
            revision: 7,
            attempt: 2,
            at: at(1_772_359_200),
        };
        assert_eq!(n.format(), "7/2/1772359200");
        assert_eq!(Nudge::parse("7/2/1772359200"), Ok(n));
        let class = |s: &str| Nudge::parse(s).map_err(|e| e.class());
        assert_eq!(class("7/2"), Err("syntax"));
        assert_eq!(class("7/2/1772359200/9"), Err("syntax"));
        assert_eq!(class("7/4294967296/0"), Err("out-of-range"));
        assert_eq!(class("7/2/253402207201"), Err("out-of-range"));
        assert_eq!(class(&"1".repeat(63)), Err("too-long"));
    }

    #[test]
    fn a_fraction_of_a_second_is_dropped_when_written() {
        let n = Nudge {
            revision: 1,
            attempt: 1,
            at: "2026-03-01T10:00:00.900Z".parse().unwrap(),
        };
        assert_eq!(Nudge::parse(&n.format()).unwrap().at, at(1_772_359_200));
    }

    proptest! {
        #[test]
        fn every_nudge_round_trips(
            revision in any::<u64>(),
            attempt in any::<u32>(),
            seconds in 0..=Timestamp::MAX.as_second(),
        ) {
            let n = Nudge { revision, attempt, at: at(seconds) };
            prop_assert_eq!(Nudge::parse(&n.format()), Ok(n));
        }
    }
}
