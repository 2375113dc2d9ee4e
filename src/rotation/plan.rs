//! The rotation planner: policy + observed state + clock → the next writes.
//!
//! The protocol (DESIGN.md): Stable(N) → Staging(N+1) → Promoting(N+1) →
//! Retiring(N) → Stable(N+1). The stage is derived from what the projected
//! Secrets publish, never from memory, so a restart re-plans from the cluster
//! alone (I6). Every plan is a short ordered list of writes whose every prefix
//! keeps the presenters' key inside the verifiers' accepted set (I1).

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

use super::model::*;
use crate::conditions::{events, reasons, types};

/// First nudge backoff; doubles on every attempt.
const NUDGE_BACKOFF: SignedDuration = SignedDuration::from_secs(5);
/// A nudge is a hint; after this many the pods are left to kubelet's own sync.
const MAX_NUDGES: u32 = 4;
/// How many waiting consumers status names.
const WAITING_SHOWN: usize = 5;

/// Plans the next step of one rotation.
pub fn plan(policy: &Policy, obs: &Observed, now: Timestamp) -> Plan {
    let (obs, restores, notes) = super::restore::restore_lost(obs, now);
    let mut p = Planner::new(policy, &obs, now);
    p.decide();
    let mut decided = p.finish();
    decided.actions.splice(0..0, restores);
    decided.events.splice(0..0, notes);
    decided
}

struct Planner<'a> {
    policy: &'a Policy,
    obs: &'a Observed,
    now: Timestamp,
    accepted: BTreeSet<Version>,
    current: Option<Version>,
    verifier_rev: Revision,
    presenter_rev: Revision,
    verifier_written: Option<Timestamp>,
    presenter_written: Option<Timestamp>,
    highest: Version,
    /// The highest version number a projected Secret records: the only
    /// record of issued numbers that survives a lost status (I5).
    durable_highest: Version,
    abandoned: BTreeSet<Version>,
    revoked_now: BTreeSet<Version>,
    created: Vec<(Version, Origin)>,
    deleted: BTreeSet<Version>,
    actions: Vec<Action>,
    events: Vec<Event>,
    wake: Option<Timestamp>,
    stage: Stage,
    target: Option<Version>,
    waiting_reason: &'static str,
    stalled: Option<(&'static str, String)>,
    blocked: Option<(&'static str, String)>,
    handled_rotate: Requests,
    handled_rollback: Requests,
}

/// The requests to record as handled. A version Secret may be the only
/// record that a request was acted on (a crash before the status write);
/// status takes it over before that Secret is deleted, or the request would
/// be acted on twice.
fn handled<'r>(
    asked: &Requests,
    recorded: &'r Requests,
    by_versions: impl Iterator<Item = &'r Requests>,
) -> Requests {
    let handled: Vec<&Requests> = std::iter::once(recorded).chain(by_versions).collect();
    if asked.pending_against(&handled) {
        recorded.clone()
    } else {
        asked.clone()
    }
}

impl<'a> Planner<'a> {
    fn new(policy: &'a Policy, obs: &'a Observed, now: Timestamp) -> Self {
        let rec = &obs.record;
        let verifier = obs.verifier.as_ref();
        let presenter = if policy.combined {
            verifier
        } else {
            obs.presenter.as_ref()
        };
        let accepted = verifier.map_or_else(|| rec.accepted.clone(), |p| p.accepted.clone());
        let current = presenter.map_or(rec.current, |p| p.current);
        let verifier_rev = verifier
            .map_or(0, |p| p.revision)
            .max(rec.verifier_revision);
        let presenter_rev = if policy.combined {
            verifier_rev
        } else {
            presenter
                .map_or(0, |p| p.revision)
                .max(rec.presenter_revision)
        };
        let highest = [
            obs.versions.keys().next_back().copied(),
            rec.history.iter().map(|h| h.version).max(),
            accepted.iter().next_back().copied(),
            current,
            verifier.map(|p| p.highest),
            presenter.map(|p| p.highest),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        let durable_highest = verifier
            .map(|p| p.highest)
            .max(presenter.map(|p| p.highest))
            .unwrap_or(0);
        let abandoned = obs
            .versions
            .iter()
            .filter(|(_, v)| v.abandoned.is_some())
            .map(|(n, _)| *n)
            .chain(
                rec.history
                    .iter()
                    .filter(|h| h.state == VersionState::Abandoned)
                    .map(|h| h.version),
            )
            .collect();
        Planner {
            policy,
            obs,
            now,
            accepted,
            current,
            verifier_rev,
            presenter_rev,
            verifier_written: verifier.map(|p| p.written_at),
            presenter_written: presenter.map(|p| p.written_at),
            highest,
            durable_highest,
            abandoned,
            revoked_now: BTreeSet::new(),
            created: Vec::new(),
            deleted: BTreeSet::new(),
            actions: Vec::new(),
            events: Vec::new(),
            wake: None,
            stage: Stage::Stable,
            target: None,
            waiting_reason: reasons::IDLE,
            stalled: None,
            blocked: None,
            handled_rotate: handled(
                &obs.rotate,
                &rec.handled_rotate,
                obs.versions.values().map(|v| &v.requests),
            ),
            handled_rollback: handled(
                &obs.rollback,
                &rec.handled_rollback,
                obs.versions.values().filter_map(|v| v.abandoned.as_ref()),
            ),
        }
    }

    // ---- decisions -------------------------------------------------------

    fn decide(&mut self) {
        if self.repair_missing_projection() || self.revoke() {
            self.stage = self.derived_stage();
            return;
        }
        let Some(current) = self.current else {
            self.initialize();
            return;
        };
        if !self.accepted.contains(&current) {
            // Only a hand edit gets here; restore I1 before anything else.
            let mut a = self.accepted.clone();
            a.insert(current);
            self.publish(a, Some(current));
            self.event(EventType::Warning, events::PROJECTION_REPAIRED, format!(
                "version {current} was presented but not accepted; added it back to the accepted set"
            ));
            self.stage = self.derived_stage();
            return;
        }
        if self.replace_lost_keys(current) {
            self.stage = self.derived_stage();
            return;
        }
        self.stage = self.derived_stage();
        if self.policy.suspend {
            self.waiting_reason = reasons::SUSPENDED;
            return;
        }
        if self.rollback(current) {
            self.stage = self.derived_stage();
            return;
        }
        let pending = self.pending(current);
        let olds: BTreeSet<Version> = self
            .accepted
            .iter()
            .copied()
            .filter(|v| *v != current && Some(*v) != pending)
            .collect();
        if let Some(next) = pending {
            self.staging(current, next);
        } else if !olds.is_empty() {
            self.promoting(current, olds);
        } else if let Some(leftovers) = self.leftovers(current) {
            self.stage = Stage::Retiring;
            self.waiting_reason = reasons::DELETING_OLD_KEYS;
            for v in leftovers {
                self.delete_version(v);
            }
        } else if let Some(next) = self.unpublished() {
            self.stage_version(current, next);
        } else {
            self.stable(current);
        }
    }

    /// A projected Secret deleted or edited by hand is rebuilt: a deleted one
    /// from what status remembers, an edited one from what consumers were last
    /// given (observe reads that back from its data). The presenter side needs
    /// the current key; when that is lost, `replace_lost_keys` takes over.
    fn repair_missing_projection(&mut self) -> bool {
        let rec = &self.obs.record;
        let combined = self.policy.combined;
        let current_key_ok = self.current.is_none_or(|c| self.has_key(c));
        let verifier_missing = self.obs.verifier.is_none() && !rec.accepted.is_empty();
        let presenter_missing = !combined && self.obs.presenter.is_none() && rec.current.is_some();
        let verifier_edited = self.obs.verifier_tampered;
        let presenter_edited = !combined && self.obs.presenter_tampered;
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
            self.verifier_rev += 1;
            self.verifier_written = Some(self.now);
            if combined {
                self.presenter_rev = self.verifier_rev;
                self.presenter_written = self.verifier_written;
            }
            self.push_publish(target, self.verifier_rev);
        }
        if rebuild_presenter {
            self.presenter_rev += 1;
            self.presenter_written = Some(self.now);
            self.push_publish(Target::Presenter, self.presenter_rev);
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

    /// Key material gone for good (version Secret deleted and no projection
    /// holding the key) is never papered over: it is reported, and a fresh
    /// version replaces it through the ordinary, confirmed protocol. Returns
    /// true when this plan is complete.
    fn replace_lost_keys(&mut self, current: Version) -> bool {
        let lost_pending: BTreeSet<Version> = self
            .accepted
            .range(current + 1..)
            .copied()
            .filter(|v| !self.abandoned.contains(v) && !self.has_key(*v))
            .collect();
        if !lost_pending.is_empty() {
            // Only verifiers ever had it, so it can leave the accepted set at
            // once; the new version takes its place in the same write.
            let mut a: BTreeSet<Version> =
                self.accepted.difference(&lost_pending).copied().collect();
            let next = self.create_version(Origin::Generated, Requests::default());
            a.insert(next);
            self.publish(a, Some(current));
            self.event(
                EventType::Warning,
                events::KEY_LOST,
                format!(
                    "the key of staged version {} is lost (its version Secret was deleted and verifiers hold only its digest); version {next} replaces it",
                    join(&lost_pending)
                ),
            );
            return true;
        }
        if self.has_key(current) {
            return false;
        }
        let replacement = self.pending(current).or_else(|| self.unpublished());
        let msg = |r: Version| {
            format!(
                "the key of current version {current} is lost (its version Secret was deleted and no projected Secret holds it); version {r} replaces it"
            )
        };
        match replacement {
            Some(r) => {
                self.blocked = Some((reasons::KEY_MATERIAL_MISSING, msg(r)));
                false // the replacement is on its way: let the protocol carry it
            }
            None if self.policy.suspend => {
                self.blocked = Some((
                    reasons::KEY_MATERIAL_MISSING,
                    format!(
                        "the key of current version {current} is lost; resume the rotation to replace it"
                    ),
                ));
                false
            }
            None => {
                let next = self.create_version(Origin::Generated, Requests::default());
                self.blocked = Some((reasons::KEY_MATERIAL_MISSING, msg(next)));
                self.event(EventType::Warning, events::KEY_LOST, msg(next));
                self.stage_version(current, next);
                true
            }
        }
    }

    fn has_key(&self, v: Version) -> bool {
        self.obs.versions.get(&v).is_some_and(|o| o.has_key)
    }

    /// Emergency revocation: runs even when suspended, and is the one path
    /// allowed to present a version verifiers have not confirmed (I2 exception).
    fn revoke(&mut self) -> bool {
        let revoked: BTreeSet<Version> = self
            .policy
            .revoked
            .iter()
            .copied()
            .filter(|v| *v <= self.highest)
            .collect();
        let bad_accepted: BTreeSet<Version> =
            self.accepted.intersection(&revoked).copied().collect();
        let current_bad = self.current.is_some_and(|c| revoked.contains(&c));
        let keys: Vec<Version> = self
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
            let current = self.current.unwrap_or_default();
            let replacement = self
                .accepted
                .range(current + 1..)
                .rev()
                .copied()
                .find(|v| !revoked.contains(v) && !self.abandoned.contains(v))
                .or_else(|| self.unpublished())
                .unwrap_or_else(|| self.create_version(Origin::Generated, Requests::default()));
            let mut a = self.accepted.clone();
            a.insert(replacement);
            self.publish(a.clone(), Some(replacement));
            self.event(
                EventType::Warning,
                events::VERSION_PROMOTED,
                format!(
                    "version {replacement} promoted at once because version {current} was revoked"
                ),
            );
        }
        let remaining: BTreeSet<Version> = self.accepted.difference(&revoked).copied().collect();
        self.publish(remaining, self.current);
        for v in bad_accepted
            .iter()
            .chain(keys.iter())
            .collect::<BTreeSet<_>>()
        {
            self.revoked_now.insert(*v);
            if self.obs.versions.contains_key(v) {
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

    fn initialize(&mut self) {
        self.stage = Stage::Initializing;
        let target = self
            .accepted
            .iter()
            .rev()
            .copied()
            .find(|v| !self.abandoned.contains(v));
        if let Some(t) = target {
            // Verifiers hold the first key; presenters get it once they confirmed.
            self.target = Some(t);
            let adopted = self
                .obs
                .versions
                .get(&t)
                .is_some_and(|v| v.origin == Origin::Adopted);
            if adopted || self.confirm(Group::Verifiers, self.verifier_rev, self.verifier_written) {
                self.publish(self.accepted.clone(), Some(t));
                self.event(
                    EventType::Normal,
                    events::VERSION_PROMOTED,
                    format!("version {t} is now the current key"),
                );
            } else {
                self.waiting_reason = reasons::WAITING_FOR_VERIFIERS;
                self.stall_check(
                    self.verifier_written,
                    reasons::VERIFIERS_STALLED,
                    Group::Verifiers,
                );
            }
            return;
        }
        if self.policy.suspend {
            self.waiting_reason = reasons::SUSPENDED;
            return;
        }
        let (version, origin) = match self.unpublished() {
            Some(v) => (v, self.obs.versions[&v].origin),
            None if self.policy.adopt && self.obs.adoption.is_none() => {
                self.blocked = Some((
                    reasons::ADOPTION_PENDING,
                    "waiting for the adoption Secret and key named in spec.adopt".into(),
                ));
                return;
            }
            None => {
                let origin = if self.policy.adopt {
                    Origin::Adopted
                } else {
                    Origin::Generated
                };
                (self.create_version(origin, self.obs.rotate.clone()), origin)
            }
        };
        self.target = Some(version);
        let mut a = self.accepted.clone();
        a.insert(version);
        self.publish(a.clone(), None);
        if origin == Origin::Adopted {
            // The adopted key is already in use on both sides: publish it whole.
            self.publish(a, Some(version));
        }
        self.handled_rotate = self.obs.rotate.clone();
    }

    /// Rollback: while the previous version is still accepted, presenters go
    /// back to it and the newer version is abandoned (its number never reused).
    fn rollback(&mut self, current: Version) -> bool {
        let handled: Vec<&Requests> = std::iter::once(&self.obs.record.handled_rollback)
            .chain(
                self.obs
                    .versions
                    .values()
                    .filter_map(|v| v.abandoned.as_ref()),
            )
            .collect();
        if !self.obs.rollback.pending_against(&handled) {
            return false;
        }
        let requests = self.obs.rollback.clone();
        self.handled_rollback = requests.clone();
        if let Some(next) = self.pending(current).or_else(|| self.unpublished()) {
            self.abandon(next, requests);
            self.event(
                EventType::Normal,
                events::ROLLED_BACK,
                format!("rotation to version {next} abandoned before presenters received it"),
            );
            return true;
        }
        let previous = self
            .accepted
            .range(..current)
            .rev()
            .copied()
            .find(|v| !self.abandoned.contains(v));
        if let Some(prev) = previous {
            self.abandon(current, requests);
            self.publish(self.accepted.clone(), Some(prev));
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

    fn staging(&mut self, current: Version, next: Version) {
        self.stage = Stage::Staging;
        self.target = Some(next);
        if self.confirm(Group::Verifiers, self.verifier_rev, self.verifier_written) {
            self.publish(self.accepted.clone(), Some(next));
            self.event(EventType::Normal, events::VERSION_PROMOTED, format!(
                "every verifier accepts version {next}; presenters now get it (version {current} stays accepted)"
            ));
        } else {
            self.waiting_reason = reasons::WAITING_FOR_VERIFIERS;
            self.stall_check(
                self.verifier_written,
                reasons::VERIFIERS_STALLED,
                Group::Verifiers,
            );
        }
    }

    fn promoting(&mut self, current: Version, olds: BTreeSet<Version>) {
        self.stage = Stage::Promoting;
        self.target = Some(current);
        // The later of the last presenter write and the promotion status
        // recorded: a clock that stepped back must not shorten the grace.
        let recorded = self.record(current).and_then(|h| h.promoted_at);
        let promoted_at = self.presenter_written.max(recorded).unwrap_or(self.now);
        let confirmed = self.confirm(
            Group::Presenters,
            self.presenter_rev,
            self.presenter_written,
        );
        let grace_end = promoted_at + self.policy.grace_minimum;
        let grace_ok = self.now >= grace_end;
        if !grace_ok {
            self.wake_at(grace_end);
        }
        let mut quiet_ok = true;
        if let Some(window) = self.policy.quiet_window {
            for v in &olds {
                let last_seen = self
                    .last_seen(*v)
                    .map_or(promoted_at, |t| t.max(promoted_at));
                let quiet_end = last_seen + window;
                if self.now < quiet_end {
                    quiet_ok = false;
                    self.wake_at(quiet_end);
                }
            }
        }
        if confirmed && grace_ok && quiet_ok {
            self.retire(current, &olds, false);
            return;
        }
        self.waiting_reason = if !confirmed {
            reasons::WAITING_FOR_PRESENTERS
        } else if !grace_ok {
            reasons::WAITING_FOR_GRACE
        } else {
            reasons::WAITING_FOR_QUIET
        };
        let max_end = promoted_at + self.policy.grace_maximum;
        if self.now < max_end {
            self.wake_at(max_end);
        } else if self.policy.on_timeout == OnTimeout::Retire {
            self.retire(current, &olds, true);
        } else {
            self.stall_check(
                Some(promoted_at),
                reasons::PRESENTERS_STALLED,
                Group::Presenters,
            );
        }
    }

    fn retire(&mut self, current: Version, olds: &BTreeSet<Version>, on_timeout: bool) {
        let remaining: BTreeSet<Version> = self.accepted.difference(olds).copied().collect();
        self.publish(remaining, Some(current));
        for v in olds {
            if self.obs.versions.contains_key(v) {
                self.delete_version(*v);
            }
            let (kind, reason, why) = if on_timeout {
                (
                    EventType::Warning,
                    events::RETIRED_ON_TIMEOUT,
                    "the maximum grace period passed (onTimeout: Retire)",
                )
            } else {
                (
                    EventType::Normal,
                    events::VERSION_RETIRED,
                    "every presenter moved on",
                )
            };
            self.event(kind, reason, format!("version {v} retired: {why}"));
        }
        self.stage = Stage::Stable;
    }

    fn stage_version(&mut self, current: Version, next: Version) {
        self.stage = Stage::Staging;
        self.target = Some(next);
        let mut a = self.accepted.clone();
        a.insert(next);
        self.publish(a, Some(current));
        self.event(
            EventType::Normal,
            events::VERSION_STAGED,
            format!("verifiers now accept versions {}", join(&self.accepted)),
        );
    }

    fn stable(&mut self, current: Version) {
        self.stage = Stage::Stable;
        let handled: Vec<&Requests> = std::iter::once(&self.obs.record.handled_rotate)
            .chain(self.obs.versions.values().map(|v| &v.requests))
            .collect();
        let asked = self.obs.rotate.pending_against(&handled);
        let next = self.next_rotation();
        let scheduled = next.is_some_and(|t| t <= self.now);
        if !asked && !scheduled {
            if let Some(t) = next {
                self.wake_at(t);
            }
            return;
        }
        let version = self.create_version(Origin::Generated, self.obs.rotate.clone());
        self.handled_rotate = self.obs.rotate.clone();
        self.stage_version(current, version);
    }

    // ---- confirmation ------------------------------------------------------

    /// Whether `group` confirmed `revision`; emits nudges or workload stamps
    /// that move it along and schedules the next look.
    fn confirm(&mut self, group: Group, revision: Revision, written: Option<Timestamp>) -> bool {
        let gp = self.group_policy(group);
        let go = self.group_obs(group);
        match gp.mode {
            Mode::Delay => {
                let due = written.unwrap_or(self.now) + gp.propagation_delay;
                if self.now >= due {
                    return true;
                }
                self.wake_at(due);
                false
            }
            Mode::Report => {
                let waiting: Vec<&Consumer> = go
                    .consumers
                    .iter()
                    .filter(|c| c.reported.is_none_or(|r| r < revision))
                    .collect();
                if waiting.is_empty() {
                    return true;
                }
                if gp.nudge {
                    let mut pods = Vec::new();
                    for c in waiting {
                        match &c.nudge {
                            Some(n) if n.revision >= revision => {
                                if n.attempt >= MAX_NUDGES {
                                    continue;
                                }
                                let again = n.at
                                    + NUDGE_BACKOFF
                                        * (1i32 << n.attempt.clamp(1, 8).saturating_sub(1));
                                if self.now >= again {
                                    pods.push((c.pod.clone(), n.attempt + 1));
                                } else {
                                    self.wake_at(again);
                                }
                            }
                            _ => pods.push((c.pod.clone(), 1)),
                        }
                    }
                    if !pods.is_empty() {
                        // Re-look after the first backoff even if no pod event comes.
                        self.wake_at(self.now + NUDGE_BACKOFF);
                        self.actions.push(Action::Nudge {
                            group,
                            revision,
                            pods,
                        });
                    }
                }
                false
            }
            Mode::Rollout => {
                // One workload at a time, in spec order: never restart everything at once.
                for id in &gp.workloads {
                    let Some(w) = go.workloads.iter().find(|w| &w.id == id) else {
                        continue; // not present: nothing to restart
                    };
                    if w.stamped.is_some_and(|s| s >= revision) {
                        if w.rolled_out {
                            continue;
                        }
                        return false; // its rollout is in progress
                    }
                    self.actions.push(Action::StampWorkload {
                        group,
                        workload: id.clone(),
                        revision,
                    });
                    return false;
                }
                true
            }
        }
    }

    /// Side-effect-free progress count for status.
    fn progress(
        &self,
        group: Group,
        revision: Revision,
        written: Option<Timestamp>,
    ) -> GroupProgress {
        let gp = self.group_policy(group);
        let go = self.group_obs(group);
        let (confirmed, total, waiting): (u32, u32, Vec<String>) = match gp.mode {
            Mode::Report => {
                let waiting: Vec<String> = go
                    .consumers
                    .iter()
                    .filter(|c| c.reported.is_none_or(|r| r < revision))
                    .map(|c| c.pod.clone())
                    .collect();
                let total = go.consumers.len() as u32;
                (total - waiting.len() as u32, total, waiting)
            }
            Mode::Rollout => {
                let present: Vec<&WorkloadObs> = gp
                    .workloads
                    .iter()
                    .filter_map(|id| go.workloads.iter().find(|w| &w.id == id))
                    .collect();
                let waiting: Vec<String> = present
                    .iter()
                    .filter(|w| !(w.rolled_out && w.stamped.is_some_and(|s| s >= revision)))
                    .map(|w| format!("{:?}/{}", w.id.kind, w.id.name))
                    .collect();
                let total = present.len() as u32;
                (total - waiting.len() as u32, total, waiting)
            }
            Mode::Delay => {
                let done = written.is_some_and(|w| self.now >= w + gp.propagation_delay);
                (u32::from(done), 1, Vec::new())
            }
        };
        GroupProgress {
            mode: gp.mode,
            revision,
            confirmed,
            total,
            waiting_for: waiting.into_iter().take(WAITING_SHOWN).collect(),
        }
    }

    fn stall_check(&mut self, since: Option<Timestamp>, reason: &'static str, group: Group) {
        let since = since.unwrap_or(self.now);
        let deadline = since + self.policy.grace_maximum;
        if self.now >= deadline {
            self.stalled = Some((
                reason,
                format!(
                    "{} have not confirmed within the maximum grace period ({}); the old key stays valid",
                    group.as_str(),
                    super::duration::format(self.policy.grace_maximum)
                ),
            ));
        } else {
            self.wake_at(deadline);
        }
    }

    // ---- primitives --------------------------------------------------------

    /// Moves the published state to (`accepted`, `current`), writing the
    /// verifier side first when it grows and last when it shrinks (I1).
    fn publish(&mut self, accepted: BTreeSet<Version>, current: Option<Version>) {
        let a_changed = accepted != self.accepted;
        let c_changed = current != self.current;
        if !a_changed && !c_changed {
            return;
        }
        let grows = accepted.is_superset(&self.accepted);
        self.accepted = accepted;
        let old_current = std::mem::replace(&mut self.current, current);
        if self.policy.combined {
            self.write_verifier();
            return;
        }
        if a_changed && grows {
            self.write_verifier();
        }
        if c_changed {
            // The presenter Secret shows `current`; the verifier side keeps the
            // old current until the accepted set shrinks, preserving I1.
            let _ = old_current;
            self.presenter_rev += 1;
            self.presenter_written = Some(self.now);
            self.push_publish(Target::Presenter, self.presenter_rev);
        }
        if a_changed && !grows {
            self.write_verifier();
        }
    }

    /// Writes the verifier Secret (the only one, in the single-Secret layout)
    /// with the state planned so far.
    fn write_verifier(&mut self) {
        self.verifier_written = Some(self.now);
        if self.policy.combined {
            self.verifier_rev = self.verifier_rev.max(self.presenter_rev) + 1;
            self.presenter_rev = self.verifier_rev;
            self.presenter_written = Some(self.now);
            self.push_publish(Target::Combined, self.verifier_rev);
        } else {
            self.verifier_rev += 1;
            self.push_publish(Target::Verifier, self.verifier_rev);
        }
    }

    fn push_publish(&mut self, target: Target, revision: Revision) {
        if matches!(target, Target::Verifier | Target::Combined) {
            self.durable_highest = self.highest;
        }
        self.actions.push(Action::Publish {
            target,
            accepted: self.accepted.clone(),
            current: self.current,
            revision,
            highest: self.highest,
        });
    }

    fn create_version(&mut self, origin: Origin, requests: Requests) -> Version {
        let mut v = self.highest + 1;
        while self.policy.revoked.contains(&v) {
            v += 1; // a number revoked in advance is simply never issued
        }
        self.highest = v;
        self.created.push((v, origin));
        self.actions.push(Action::CreateVersion {
            version: v,
            origin,
            requests,
        });
        let (reason, what) = match origin {
            Origin::Generated => (events::VERSION_CREATED, "created"),
            Origin::Adopted => (events::VERSION_ADOPTED, "adopted from the existing Secret"),
        };
        self.event(EventType::Normal, reason, format!("version {v} {what}"));
        v
    }

    fn delete_version(&mut self, v: Version) {
        if v > self.durable_highest {
            // A version never published (abandoned before staging) is known
            // only by its own Secret: record its number before deleting it,
            // or a restart that lost status would issue it again.
            self.write_verifier();
        }
        if self.deleted.insert(v) {
            self.actions.push(Action::DeleteVersion { version: v });
        }
    }

    fn abandon(&mut self, v: Version, requests: Requests) {
        self.abandoned.insert(v);
        if self.obs.versions.contains_key(&v) {
            self.actions.push(Action::MarkAbandoned {
                version: v,
                requests,
            });
        }
    }

    fn event(&mut self, kind: EventType, reason: &'static str, note: String) {
        self.events.push(Event { kind, reason, note });
    }

    fn wake_at(&mut self, t: Timestamp) {
        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
    }

    // ---- derived facts -----------------------------------------------------

    /// The newest accepted version above `current` still on its way to presenters.
    fn pending(&self, current: Version) -> Option<Version> {
        self.accepted
            .range(current + 1..)
            .rev()
            .copied()
            .find(|v| !self.abandoned.contains(v) && !self.policy.revoked.contains(v))
    }

    /// A version Secret created but not yet accepted (a crash between the two writes).
    fn unpublished(&self) -> Option<Version> {
        let published_max = self
            .accepted
            .iter()
            .copied()
            .chain(self.current)
            .max()
            .unwrap_or(0);
        self.obs
            .versions
            .range(published_max + 1..)
            .rev()
            .find(|(v, o)| {
                o.has_key && !self.abandoned.contains(v) && !self.policy.revoked.contains(v)
            })
            .map(|(v, _)| *v)
    }

    /// Old version Secrets still holding key material after their retirement.
    fn leftovers(&self, current: Version) -> Option<Vec<Version>> {
        let list: Vec<Version> = self
            .obs
            .versions
            .keys()
            .copied()
            .filter(|v| {
                !self.accepted.contains(v)
                    && *v != current
                    && (*v < current || self.abandoned.contains(v))
            })
            .collect();
        (!list.is_empty()).then_some(list)
    }

    fn leftovers_after_plan(&self) -> bool {
        self.current
            .and_then(|c| self.leftovers(c))
            .is_some_and(|l| l.iter().any(|v| !self.deleted.contains(v)))
    }

    fn derived_stage(&self) -> Stage {
        let Some(c) = self.current else {
            return Stage::Initializing;
        };
        if self.pending(c).is_some() {
            Stage::Staging
        } else if self.accepted.iter().any(|v| *v != c) {
            Stage::Promoting
        } else {
            Stage::Stable
        }
    }

    fn last_seen(&self, v: Version) -> Option<Timestamp> {
        let a = self.obs.traffic.get(&v).copied();
        let b = self.obs.record.traffic.get(&v).copied();
        a.max(b)
    }

    /// Start of the latest cycle: creation of the newest kept version.
    fn last_rotation(&self) -> Option<Timestamp> {
        let newest = self
            .current
            .into_iter()
            .chain(self.accepted.iter().copied())
            .max()?;
        if self.created.iter().any(|(v, _)| *v == newest) {
            return Some(self.now);
        }
        self.obs
            .versions
            .get(&newest)
            .map(|v| v.created_at)
            .or_else(|| self.record(newest).map(|r| r.created_at))
    }

    fn next_rotation(&self) -> Option<Timestamp> {
        let schedule = self.policy.schedule.as_ref()?;
        schedule.next_after(self.last_rotation()?)
    }

    fn record(&self, v: Version) -> Option<&VersionRecord> {
        self.obs.record.history.iter().find(|r| r.version == v)
    }

    fn group_policy(&self, g: Group) -> &'a GroupPolicy {
        match g {
            Group::Verifiers => &self.policy.verifiers,
            Group::Presenters => &self.policy.presenters,
        }
    }

    fn group_obs(&self, g: Group) -> &'a GroupObs {
        match g {
            Group::Verifiers => &self.obs.verifiers,
            Group::Presenters => &self.obs.presenters,
        }
    }

    // ---- report ------------------------------------------------------------

    fn finish(mut self) -> Plan {
        if let Some(next) = self.next_rotation().filter(|_| !self.policy.suspend) {
            self.wake_at(next); // a rotation due while a cycle runs waits, then starts
        }
        let mut events = self.events.clone();
        if let Some((_, msg)) = &self.stalled
            && !self.obs.record.stalled
        {
            events.push(Event {
                kind: EventType::Warning,
                reason: events::MIGRATION_STALLED,
                note: msg.clone(),
            });
        }
        let mut traffic = self.obs.record.traffic.clone();
        for (v, t) in &self.obs.traffic {
            let e = traffic.entry(*v).or_insert(*t);
            *e = (*e).max(*t);
        }
        let versions = self.history();
        traffic.retain(|v, _| versions.iter().any(|r| r.version == *v));
        // The stage after this plan's writes, as the next observer will see it.
        let stage = match self.stage {
            Stage::Retiring if self.leftovers_after_plan() => Stage::Retiring,
            _ => self.derived_stage(),
        };
        if stage == Stage::Stable {
            self.target = None;
        }
        // The reason the next look will report, so a fresh step does not
        // write status twice.
        if self.waiting_reason == reasons::IDLE {
            self.waiting_reason = match stage {
                Stage::Initializing | Stage::Staging => reasons::WAITING_FOR_VERIFIERS,
                Stage::Promoting => reasons::WAITING_FOR_PRESENTERS,
                Stage::Retiring => reasons::DELETING_OLD_KEYS,
                Stage::Stable => reasons::IDLE,
            };
        }
        let conditions = self.conditions_for(stage);
        let report = Report {
            stage,
            current: self.current,
            target: self.target,
            accepted: self.accepted.clone(),
            versions,
            verifiers: self.progress(Group::Verifiers, self.verifier_rev, self.verifier_written),
            presenters: self.progress(
                Group::Presenters,
                self.presenter_rev,
                self.presenter_written,
            ),
            conditions,
            last_rotation: self.last_rotation(),
            next_rotation: if self.policy.suspend {
                None
            } else {
                self.next_rotation()
            },
            handled_rotate: self.handled_rotate.clone(),
            handled_rollback: self.handled_rollback.clone(),
            verifier_revision: self.verifier_rev,
            presenter_revision: self.presenter_rev,
            traffic,
        };
        Plan {
            actions: self.actions,
            events,
            report,
            wake_at: self.wake,
        }
    }

    fn conditions_for(&self, stage: Stage) -> Vec<ConditionState> {
        let cond = |type_, status, reason, message: String| ConditionState {
            type_,
            status,
            reason,
            message,
        };
        let ready = match (&self.blocked, self.current) {
            (Some((reason, msg)), _) => cond(types::READY, false, reason, msg.clone()),
            (None, None) => cond(
                types::READY,
                false,
                reasons::INITIALIZING,
                "the first key is being published".into(),
            ),
            (None, Some(c)) if self.policy.suspend => cond(
                types::READY,
                true,
                reasons::SUSPENDED,
                format!("version {c} is current; rotation is suspended"),
            ),
            (None, Some(c)) if stage == Stage::Stable => cond(
                types::READY,
                true,
                reasons::STABLE,
                format!("version {c} is current and the only accepted version"),
            ),
            (None, Some(c)) => cond(
                types::READY,
                true,
                reasons::ROTATING,
                format!(
                    "version {c} is current; accepted versions: {}",
                    join(&self.accepted)
                ),
            ),
        };
        let progressing = if stage == Stage::Stable || self.policy.suspend {
            let reason = if self.policy.suspend {
                reasons::SUSPENDED
            } else {
                reasons::IDLE
            };
            cond(
                types::PROGRESSING,
                false,
                reason,
                "no rotation in flight".into(),
            )
        } else {
            cond(
                types::PROGRESSING,
                true,
                self.waiting_reason,
                format!(
                    "{:?} {}",
                    self.stage,
                    self.target
                        .map(|t| format!("version {t}"))
                        .unwrap_or_default()
                ),
            )
        };
        let stalled = match &self.stalled {
            Some((reason, msg)) => cond(types::MIGRATION_STALLED, true, reason, msg.clone()),
            None => cond(
                types::MIGRATION_STALLED,
                false,
                reasons::NOT_STALLED,
                "consumers are within the grace period".into(),
            ),
        };
        vec![ready, progressing, stalled]
    }

    /// Version history for status: every live version plus the most recent
    /// retired ones, up to the history limit.
    fn history(&self) -> Vec<VersionRecord> {
        let mut numbers: BTreeSet<Version> = self.obs.versions.keys().copied().collect();
        numbers.extend(self.obs.record.history.iter().map(|r| r.version));
        numbers.extend(self.accepted.iter().copied());
        numbers.extend(self.current);
        numbers.extend(self.created.iter().map(|(v, _)| *v));
        let mut out: Vec<VersionRecord> = Vec::new();
        for v in numbers {
            let old = self.record(v);
            let seen = self.obs.versions.get(&v);
            let created = self.created.iter().find(|(n, _)| *n == v);
            let live = (seen.is_some() && !self.deleted.contains(&v)) || created.is_some();
            let state = if self.revoked_now.contains(&v)
                || (self.policy.revoked.contains(&v) && !self.accepted.contains(&v))
            {
                VersionState::Revoked
            } else if Some(v) == self.current {
                VersionState::Current
            } else if self.abandoned.contains(&v) {
                VersionState::Abandoned
            } else if self.accepted.contains(&v) {
                if self.current.is_some_and(|c| v > c) || self.current.is_none() {
                    VersionState::Staged
                } else {
                    VersionState::Previous
                }
            } else if live && self.current.is_none_or(|c| v > c) {
                VersionState::Pending
            } else {
                match old.map(|r| r.state) {
                    Some(s @ (VersionState::Revoked | VersionState::Abandoned)) => s,
                    _ => VersionState::Retired,
                }
            };
            let terminal = matches!(
                state,
                VersionState::Retired | VersionState::Revoked | VersionState::Abandoned
            ) && !self.accepted.contains(&v);
            let Some(fingerprint) = seen
                .map(|s| s.fingerprint.clone())
                .or_else(|| old.map(|r| r.fingerprint.clone()))
                .or_else(|| created.map(|_| String::new()))
            else {
                continue; // published number with neither Secret nor record: nothing to say
            };
            let origin = seen
                .map(|s| s.origin)
                .or(old.map(|r| r.origin))
                .or(created.map(|c| c.1))
                .unwrap_or_default();
            let created_at = seen
                .map(|s| s.created_at)
                .or(old.map(|r| r.created_at))
                .unwrap_or(self.now);
            let promoted_at = old.and_then(|r| r.promoted_at).or_else(|| {
                (Some(v) == self.current).then(|| self.presenter_written.unwrap_or(self.now))
            });
            let retired_at = if terminal {
                old.and_then(|r| r.retired_at).or(Some(self.now))
            } else {
                None
            };
            out.push(VersionRecord {
                version: v,
                state,
                fingerprint,
                origin,
                created_at,
                promoted_at,
                retired_at,
            });
        }
        // Keep every non-terminal version and the newest terminal ones.
        let limit = self.policy.history_limit.max(1);
        while out.len() > limit {
            let Some(i) = out.iter().position(|r| r.retired_at.is_some()) else {
                break;
            };
            out.remove(i);
        }
        out
    }
}

fn join(set: &BTreeSet<Version>) -> String {
    set.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
