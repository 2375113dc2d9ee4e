//! Invariant checks shared by every test layer (property tests, controller
//! tests, the end-to-end observer). Each returns a sentence naming the broken
//! invariant, so a failing test explains itself.

use std::collections::{BTreeMap, BTreeSet};

use super::model::Version;

/// I1: the presenters' current key is in the verifiers' accepted set.
pub fn check_current_accepted(
    accepted: &BTreeSet<Version>,
    current: Option<Version>,
) -> Result<(), String> {
    match current {
        Some(c) if !accepted.contains(&c) => Err(format!(
            "I1 broken: presenters have version {c} but verifiers accept only {accepted:?}"
        )),
        _ => Ok(()),
    }
}

/// I5: version numbers strictly increase and one number is one key, forever.
/// Feed it every version as it appears (number and fingerprint).
#[derive(Debug, Default, Clone)]
pub struct VersionLedger {
    seen: BTreeMap<Version, String>,
}

impl VersionLedger {
    /// Records that version `v` exists with `fingerprint`. A new number must be
    /// above every number seen before; a known number must keep its key.
    pub fn observe(&mut self, v: Version, fingerprint: &str) -> Result<(), String> {
        match self.seen.get(&v) {
            Some(known) if known != fingerprint => Err(format!(
                "I5 broken: version {v} was {known} and is now {fingerprint}"
            )),
            Some(_) => Ok(()),
            None => {
                if let Some((&max, _)) = self.seen.iter().next_back()
                    && v < max
                {
                    return Err(format!(
                        "I5 broken: version {v} appeared after version {max}"
                    ));
                }
                self.seen.insert(v, fingerprint.to_string());
                Ok(())
            }
        }
    }

    pub fn highest(&self) -> Option<Version> {
        self.seen.keys().next_back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_current_key_outside_the_accepted_set_is_reported() {
        let a: BTreeSet<Version> = [1, 2].into();
        assert!(check_current_accepted(&a, Some(2)).is_ok());
        assert!(check_current_accepted(&a, None).is_ok());
        assert!(
            check_current_accepted(&a, Some(3))
                .unwrap_err()
                .starts_with("I1")
        );
    }

    #[test]
    fn a_reused_or_lower_version_number_is_reported() {
        let mut l = VersionLedger::default();
        l.observe(1, "sha256:a").unwrap();
        l.observe(2, "sha256:b").unwrap();
        l.observe(1, "sha256:a").unwrap();
        assert!(l.observe(2, "sha256:c").unwrap_err().starts_with("I5"));
        l.observe(5, "sha256:e").unwrap();
        assert!(l.observe(4, "sha256:d").unwrap_err().starts_with("I5"));
    }
}
