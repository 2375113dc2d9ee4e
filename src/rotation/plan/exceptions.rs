//! The exceptions to the normal cycle, in the order `decide` tries them:
//! rebuild a lost or edited projected Secret, revoke, initialize (or adopt),
//! restore I1 after a hand edit, replace lost key material, roll back.

use std::collections::BTreeSet;

use super::{Planner, join};
use crate::conditions::{events, reasons};
use crate::rotation::model::*;

impl Planner<'_> {
    /// A projected Secret deleted or edited by hand is rebuilt: a deleted one
    /// from what status remembers, an edited one from what consumers were last
    /// given (observe reads that back from its data). The presenter side needs
    /// the current key; when that is lost, `replace_lost_keys` takes over.
    pub(super) fn repair_projection(&mut self) -> bool {
        let rec = &self.input.obs.record;
        let combined = self.input.policy.combined;
        let current_key_ok = self.projected.current.is_none_or(|c| self.has_key(c));
        let verifier_missing = self.input.obs.verifier.is_none() && !rec.accepted.is_empty();
        let presenter_missing =
            !combined && self.input.obs.presenter.is_none() && rec.current.is_some();
        let verifier_edited = self.input.obs.verifier_tampered;
        let presenter_edited = !combined && self.input.obs.presenter_tampered;
        let rebuild_verifier =
            (verifier_missing || verifier_edited) && (!combined || current_key_ok);
        let rebuild_presenter = (presenter_missing || presenter_edited) && current_key_ok;
        if !rebuild_verifier && !rebuild_presenter {
            return false;
        }
        if rebuild_verifier {
            let target = if combined {
                Target::Combined
            } else {
                Target::Verifier
            };
            self.projected.verifier_rev += 1;
            self.projected.verifier_written = Some(self.input.now);
            if combined {
                self.projected.presenter_rev = self.projected.verifier_rev;
                self.projected.presenter_written = self.projected.verifier_written;
            }
            self.queue_projection_write(target, self.projected.verifier_rev);
        }
        if rebuild_presenter {
            self.projected.presenter_rev += 1;
            self.projected.presenter_written = Some(self.input.now);
            self.queue_projection_write(Target::Presenter, self.projected.presenter_rev);
        }
        let what = if (rebuild_verifier && verifier_edited)
            || (rebuild_presenter && presenter_edited)
        {
            "a projected Secret was edited by hand and has been rewritten from the version Secrets"
        } else {
            "a projected Secret was missing and has been rebuilt"
        };
        self.event(EventType::Warning, events::PROJECTION_REPAIRED, what.into());
        true
    }

    /// Emergency revocation: runs even when suspended, and is the one path
    /// allowed to present a version verifiers have not confirmed (I2 exception).
    pub(super) fn revoke(&mut self) -> bool {
        let revoked: BTreeSet<Version> = self
            .input
            .policy
            .revoked
            .iter()
            .copied()
            .filter(|v| *v <= self.versions.highest)
            .collect();
        let bad_accepted: BTreeSet<Version> = self
            .projected
            .accepted
            .intersection(&revoked)
            .copied()
            .collect();
        let current_bad = self.projected.current.is_some_and(|c| revoked.contains(&c));
        let keys: Vec<Version> = self
            .input
            .obs
            .versions
            .keys()
            .copied()
            .filter(|v| revoked.contains(v))
            .collect();
        if bad_accepted.is_empty() && !current_bad && keys.is_empty() {
            return false;
        }
        if current_bad {
            let current = self.projected.current.unwrap_or_default();
            let replacement = self
                .projected
                .accepted
                .range(current + 1..)
                .rev()
                .copied()
                .find(|v| !revoked.contains(v) && !self.versions.abandoned.contains(v))
                .or_else(|| self.unstaged_version())
                .unwrap_or_else(|| self.create_version(Origin::Generated, Requests::default()));
            // Pods are not waited for (I2 exception), but the external
            // verifier must hold the replacement before presenters send it,
            // or every presenter would be rejected there.
            if !self.hook_accepts(replacement) {
                self.report.waiting_reason = reasons::WAITING_FOR_HOOK;
                return true;
            }
            let mut a = self.projected.accepted.clone();
            a.insert(replacement);
            self.move_projection_to(a.clone(), Some(replacement));
            self.event(
                EventType::Warning,
                events::VERSION_PROMOTED,
                format!(
                    "version {replacement} promoted at once because version {current} was revoked"
                ),
            );
        }
        let remaining: BTreeSet<Version> = self
            .projected
            .accepted
            .difference(&revoked)
            .copied()
            .collect();
        self.move_projection_to(remaining, self.projected.current);
        for v in bad_accepted
            .iter()
            .chain(keys.iter())
            .collect::<BTreeSet<_>>()
        {
            self.versions.revoked_now.insert(*v);
            if self.input.obs.versions.contains_key(v) {
                self.delete_version(*v);
            }
            self.event(
                EventType::Warning,
                events::VERSION_REVOKED,
                format!("version {v} revoked: no longer accepted, key material deleted"),
            );
        }
        true
    }

    /// No key presented yet: the newest accepted version goes to presenters
    /// once verifiers confirmed it (an adopted key at once); with none, the
    /// first version is created, or adopted, and staged. Suspend stops only
    /// the creation.
    pub(super) fn initialize(&mut self) {
        self.report.stage = Stage::Initializing;
        let target = self
            .projected
            .accepted
            .iter()
            .rev()
            .copied()
            .find(|v| !self.versions.abandoned.contains(v));
        if let Some(t) = target {
            // Verifiers hold the first key; presenters get it once they confirmed.
            self.report.target = Some(t);
            let adopted = self
                .input
                .obs
                .versions
                .get(&t)
                .is_some_and(|v| v.origin == Origin::Adopted);
            // The adopted key is in use on both sides already, the hook's
            // system included: nothing to wait for.
            let (revision, written) =
                (self.projected.verifier_rev, self.projected.verifier_written);
            let pods = adopted || self.confirm(Group::Verifiers, revision, written);
            let hook = adopted || self.hook_accepts(t);
            if pods && hook {
                self.move_projection_to(self.projected.accepted.clone(), Some(t));
                self.event(
                    EventType::Normal,
                    events::VERSION_PROMOTED,
                    format!("version {t} is now the current key"),
                );
                return;
            }
            let holds = format!("presenters get no key until every verifier confirmed version {t}");
            self.verifiers_wait(t, (revision, written), (pods, hook), &holds);
            return;
        }
        if self.input.policy.suspend {
            self.report.waiting_reason = reasons::SUSPENDED;
            return;
        }
        let (version, origin) = match self.unstaged_version() {
            Some(v) => (v, self.input.obs.versions[&v].origin),
            None if self.input.policy.adopt && self.input.obs.adoption.is_none() => {
                self.report.blocked = Some((
                    reasons::ADOPTION_PENDING,
                    "waiting for the adoption Secret and key named in spec.adopt".into(),
                ));
                return;
            }
            None => {
                let origin = if self.input.policy.adopt {
                    Origin::Adopted
                } else {
                    Origin::Generated
                };
                (
                    self.create_version(origin, self.input.obs.rotate.clone()),
                    origin,
                )
            }
        };
        self.report.target = Some(version);
        let mut a = self.projected.accepted.clone();
        a.insert(version);
        self.move_projection_to(a.clone(), None);
        if origin == Origin::Adopted {
            // The adopted key is already in use on both sides: project it whole.
            self.move_projection_to(a, Some(version));
        }
        self.report.handled_rotate = self.input.obs.rotate.clone();
    }

    /// The current version is presented but not accepted: only a hand edit
    /// gets here, and I1 is restored before anything else.
    pub(super) fn restore_current_accepted(&mut self, current: Version) {
        let mut a = self.projected.accepted.clone();
        a.insert(current);
        self.move_projection_to(a, Some(current));
        self.event(EventType::Warning, events::PROJECTION_REPAIRED, format!(
            "version {current} was presented but not accepted; added it back to the accepted set"
        ));
    }

    /// Key material gone for good (version Secret deleted and no projection
    /// holding the key) is never papered over: it is reported, and a fresh
    /// version replaces it through the ordinary, confirmed protocol. Returns
    /// true when this plan is complete.
    pub(super) fn replace_lost_keys(&mut self, current: Version) -> bool {
        let lost_staged: BTreeSet<Version> = self
            .projected
            .accepted
            .range(current + 1..)
            .copied()
            .filter(|v| !self.versions.abandoned.contains(v) && !self.has_key(*v))
            .collect();
        if !lost_staged.is_empty() {
            // Only verifiers ever had it, so it can leave the accepted set at
            // once; the new version takes its place in the same write.
            let mut a: BTreeSet<Version> = self
                .projected
                .accepted
                .difference(&lost_staged)
                .copied()
                .collect();
            let next = self.create_version(Origin::Generated, Requests::default());
            a.insert(next);
            self.move_projection_to(a, Some(current));
            self.event(
                EventType::Warning,
                events::KEY_LOST,
                format!(
                    "the key of staged version {} is lost (its version Secret was deleted and verifiers hold only its digest); version {next} replaces it",
                    join(&lost_staged)
                ),
            );
            return true;
        }
        if self.has_key(current) {
            return false;
        }
        let replacement = self
            .staged_successor(current)
            .or_else(|| self.unstaged_version());
        let msg = |r: Version| {
            format!(
                "the key of current version {current} is lost (its version Secret was deleted and no projected Secret holds it); version {r} replaces it"
            )
        };
        match replacement {
            Some(r) => {
                self.report.blocked = Some((reasons::KEY_MATERIAL_MISSING, msg(r)));
                false // the replacement is on its way: let the protocol carry it
            }
            None if self.input.policy.suspend => {
                self.report.blocked = Some((
                    reasons::KEY_MATERIAL_MISSING,
                    format!(
                        "the key of current version {current} is lost; resume the rotation to replace it"
                    ),
                ));
                false
            }
            None => {
                let next = self.create_version(Origin::Generated, Requests::default());
                self.report.blocked = Some((reasons::KEY_MATERIAL_MISSING, msg(next)));
                self.event(EventType::Warning, events::KEY_LOST, msg(next));
                self.stage_version(current, next);
                true
            }
        }
    }

    /// Rollback: while the previous version is still accepted, presenters go
    /// back to it and the newer version is abandoned (its number never reused).
    /// The version a rollback from `current` returns presenters to: the
    /// newest older one still accepted and not itself abandoned.
    fn rollback_target(&self, current: Version) -> Option<Version> {
        self.projected
            .accepted
            .range(..current)
            .rev()
            .copied()
            .find(|v| !self.versions.abandoned.contains(v))
    }

    /// A rollback from Promoting writes two things: the abandoned mark on
    /// the current version, then presenters back to the previous one. After
    /// a crash between the two, the mark makes the request look handled;
    /// presenters still on an abandoned version finish the move here.
    fn finish_interrupted_rollback(&mut self, current: Version) -> bool {
        let abandoned = self
            .input
            .obs
            .versions
            .get(&current)
            .is_some_and(|v| v.abandoned.is_some());
        if !abandoned {
            return false;
        }
        let Some(prev) = self.rollback_target(current) else {
            return false;
        };
        self.versions.abandoned.insert(current);
        self.move_projection_to(self.projected.accepted.clone(), Some(prev));
        self.event(
            EventType::Normal,
            events::ROLLED_BACK,
            format!("presenters rolled back from version {current} to version {prev} (an interrupted rollback finished)"),
        );
        true
    }

    pub(super) fn rollback(&mut self, current: Version) -> bool {
        let handled: Vec<&Requests> = std::iter::once(&self.input.obs.record.handled_rollback)
            .chain(
                self.input
                    .obs
                    .versions
                    .values()
                    .filter_map(|v| v.abandoned.as_ref()),
            )
            .collect();
        if !self.input.obs.rollback.pending_against(&handled) {
            return self.finish_interrupted_rollback(current);
        }
        let requests = self.input.obs.rollback.clone();
        self.report.handled_rollback = requests.clone();
        if let Some(next) = self
            .staged_successor(current)
            .or_else(|| self.unstaged_version())
        {
            self.abandon(next, requests);
            self.event(
                EventType::Normal,
                events::ROLLED_BACK,
                format!("rotation to version {next} abandoned before presenters received it"),
            );
            return true;
        }
        let previous = self.rollback_target(current);
        if let Some(prev) = previous {
            self.abandon(current, requests);
            self.move_projection_to(self.projected.accepted.clone(), Some(prev));
            self.event(
                EventType::Normal,
                events::ROLLED_BACK,
                format!("presenters rolled back from version {current} to version {prev}"),
            );
            return true;
        }
        self.event(
            EventType::Warning,
            events::ROLLBACK_REJECTED,
            format!("nothing to roll back to: version {current} is the only accepted version"),
        );
        false
    }
}
