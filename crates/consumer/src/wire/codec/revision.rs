//! The revision report: what a consumer pod writes on itself,
//! `<rotation>.keyrotor.dev/<role>-revision: "<revision>"`, to say which
//! revision of `role`'s projected Secret it loaded (Report mode). The
//! operator writes the same value into workload pod templates (Rollout mode).
//!
//! ```abnf
//! revision-report = 1*20DIGIT   ; at most 18446744073709551615
//! ```
//!
//! The same grammar as the projected Secret's `revision` file, so a reporter
//! can copy the number it read.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::{WireError, check_len, decimal};
use crate::wire::report;

/// The revision of a projected Secret a pod loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RevisionReport(pub u64);

impl RevisionReport {
    /// The annotation's name in errors and fixtures.
    pub const NAME: &'static str = "revision report";
    /// Longest value read, in bytes (the digits of `u64::MAX`).
    pub const MAX_LEN: usize = 20;

    /// The annotation value.
    pub fn format(&self) -> String {
        self.to_string()
    }

    /// Reads a value; anything but the grammar is an error (the operator
    /// counts such a pod as not having reported).
    pub fn parse(text: &str) -> Result<RevisionReport, WireError> {
        let fail = |kind| WireError::new(Self::NAME, kind, text);
        check_len(text, Self::MAX_LEN).map_err(fail)?;
        decimal(text, "revision").map(RevisionReport).map_err(fail)
    }

    /// The annotation (key and value) reporting this revision of `role`'s
    /// Secret of `rotation`.
    pub fn annotation(&self, rotation: &str, role: &str) -> (String, String) {
        (report(rotation, role), self.format())
    }

    /// The report a pod's (or pod template's) `annotations` carry for
    /// `rotation` and `role`; `None` when there is none or it is malformed.
    pub fn read(
        annotations: &BTreeMap<String, String>,
        rotation: &str,
        role: &str,
    ) -> Option<RevisionReport> {
        let text = annotations.get(&report(rotation, role))?;
        RevisionReport::parse(text).ok()
    }
}

impl fmt::Display for RevisionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for RevisionReport {
    type Err = WireError;
    fn from_str(text: &str) -> Result<Self, WireError> {
        RevisionReport::parse(text)
    }
}

impl From<u64> for RevisionReport {
    fn from(revision: u64) -> Self {
        RevisionReport(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ErrorKind;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_report_is_the_bare_revision_number() {
        assert_eq!(RevisionReport(42).format(), "42");
        assert_eq!("42".parse(), Ok(RevisionReport(42)));
        let e = RevisionReport::parse(" 42").unwrap_err();
        assert_eq!((e.annotation, e.class()), ("revision report", "syntax"));
        let long = RevisionReport::parse(&"9".repeat(21)).unwrap_err();
        assert_eq!(long.kind, ErrorKind::TooLong { max: 20 });
    }

    proptest! {
        #[test]
        fn every_revision_round_trips(r in any::<u64>()) {
            prop_assert_eq!(RevisionReport::parse(&RevisionReport(r).format()), Ok(RevisionReport(r)));
        }

        #[test]
        fn a_value_read_is_exactly_its_digits(text in "[0-9+ -]{0,24}") {
            if let Ok(r) = RevisionReport::parse(&text) {
                prop_assert!(text.bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(text.parse::<u64>().ok(), Some(r.0));
            }
        }
    }
}
