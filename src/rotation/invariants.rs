//! Invariant checks shared by every test layer (property tests, controller
//! tests, the end-to-end observer): the one home of the checks the simulator
//! and the property test perform. Each is named for the invariant of
//! `docs/design.md#invariants` it checks and returns a sentence naming it, so
//! a failing test explains itself.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};

use super::model::{Revision, Version};

/// A running verifier pod as the checks see it: its name, the revision of the
/// verifier Secret its volume holds, and the accepted set of that revision
/// (`None` when the revision is unknown).
pub type LoadedVerifier<'a> = (&'a str, Revision, Option<&'a BTreeSet<Version>>);

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

/// I1 as requests feel it: every running presenter's key (`(pod, version)`)
/// is accepted by every running verifier. Callers leave out the keys an
/// explicit exception excuses (revocation, `onTimeout: Retire`).
pub fn check_no_rejected_request<'a>(
    presenters: impl IntoIterator<Item = (&'a str, Version)>,
    verifiers: &[LoadedVerifier<'_>],
) -> Result<(), String> {
    for (p, key) in presenters {
        for (q, revision, accepted) in verifiers {
            if !accepted.is_some_and(|a| a.contains(&key)) {
                return Err(format!(
                    "rejected request: presenter {p} sends version {key}, verifier {q} (revision {revision}) does not accept it"
                ));
            }
        }
    }
    Ok(())
}

/// I2: presenters are given `v` only once every running verifier has loaded
/// a revision that accepts it. Callers skip the explicit exceptions
/// (emergency revocation, an adopted key already in use).
pub fn check_promotion_confirmed(
    v: Version,
    verifiers: &[LoadedVerifier<'_>],
) -> Result<(), String> {
    for (q, revision, accepted) in verifiers {
        if !accepted.is_some_and(|a| a.contains(&v)) {
            return Err(format!(
                "I2 broken: presenters given version {v} while verifier {q} (revision {revision}) does not accept it"
            ));
        }
    }
    Ok(())
}

/// One version leaving the accepted set, as I3 judges it.
#[derive(Clone, Debug)]
pub struct Retirement {
    pub version: Version,
    pub now: Timestamp,
    /// When presenters were given the current key, if known.
    pub successor_promoted: Option<Timestamp>,
    /// Whether presenters ever held `version`: the grace covers requests in
    /// flight with it, and a version never presented has none.
    pub presented: bool,
    pub grace_minimum: SignedDuration,
    pub quiet_window: Option<SignedDuration>,
    /// When a verifier last saw `version` presented.
    pub last_seen: Option<Timestamp>,
    /// The latest time a verifier reported any version presented: a usage
    /// reporter was alive then.
    pub freshest: Option<Timestamp>,
}

/// I3: a version leaves the accepted set only once the minimum grace passed,
/// no running presenter (`(pod, the version it holds)`) holds it, and its
/// traffic went quiet while a usage reporter was alive: some verifier
/// reported traffic a whole quiet window after the version was last seen
/// and after its successor was promoted (silence is not quiet). Callers skip
/// the explicit exceptions (revocation, `onTimeout: Retire`).
pub fn check_retirement<'a>(
    r: &Retirement,
    presenters: impl IntoIterator<Item = (&'a str, Option<Version>)>,
) -> Result<(), String> {
    let v = r.version;
    if let Some(t) = r.successor_promoted
        && r.presented
        && r.now < t + r.grace_minimum
    {
        return Err(format!(
            "I3 broken: version {v} retired before the minimum grace passed"
        ));
    }
    for (p, holds) in presenters {
        if holds == Some(v) {
            return Err(format!(
                "I3 broken: version {v} retired while presenter {p} still holds it"
            ));
        }
    }
    if let (Some(q), Some(seen)) = (r.quiet_window, r.last_seen)
        && r.now < seen + q
    {
        return Err(format!(
            "I3 broken: version {v} retired while its traffic was not quiet"
        ));
    }
    if let Some(q) = r.quiet_window
        && let Some(since) = r.last_seen.max(r.successor_promoted)
        && r.freshest.is_none_or(|f| f < since + q)
    {
        return Err(format!(
            "I3 broken: version {v} retired on silence: no usage reported a quiet window after it was last seen"
        ));
    }
    Ok(())
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

/// I6: no key is lost — a version Secret is deleted only once neither side
/// publishes it.
pub fn check_deletion(
    v: Version,
    accepted: &BTreeSet<Version>,
    current: Option<Version>,
) -> Result<(), String> {
    if accepted.contains(&v) || current == Some(v) {
        return Err(format!(
            "I6 broken (key lost): version {v} deleted while still published"
        ));
    }
    Ok(())
}

/// I6: no key is lost — every version verifiers are told to accept still
/// has its key material (`has_key`).
pub fn check_accepted_have_keys(
    accepted: &BTreeSet<Version>,
    has_key: impl Fn(Version) -> bool,
) -> Result<(), String> {
    for v in accepted {
        if !has_key(*v) {
            return Err(format!(
                "I6 broken (key lost): version {v} published without key material"
            ));
        }
    }
    Ok(())
}

/// I6: a history converged — there is a current key and it kept its material.
pub fn check_converged_key(current: Option<Version>, has_key: bool) -> Result<(), String> {
    let current = current.ok_or("I6 broken: no current key after settling")?;
    if !has_key {
        return Err(format!(
            "I6 broken (key lost): current version {current} has no material"
        ));
    }
    Ok(())
}

/// Not numbered in the design, but confirmation relies on it: every write
/// of a projected Secret raises its revision.
pub fn check_revision_increases(
    secret: &str,
    before: Option<Revision>,
    after: Revision,
) -> Result<(), String> {
    if before.is_some_and(|b| b >= after) {
        return Err(format!("revision of {secret} did not increase ({after})"));
    }
    Ok(())
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
