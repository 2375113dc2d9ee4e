//! The normal cycle: start a rotation when one is asked for or due, stage
//! the new version, promote it once verifiers confirmed, retire the old one
//! once presenters confirmed and the grace passed.

use std::collections::BTreeSet;

use super::{Planner, join};
use crate::conditions::{events, reasons};
use crate::rotation::model::*;

impl Planner<'_> {
    /// The normal cycle, one step per plan: promote a staged version, retire
    /// the old ones, delete leftover key material, stage a version created
    /// before a crash, or start a rotation.
    pub(super) fn cycle(&mut self, current: Version) {
        let staged = self.staged_successor(current);
        let olds: BTreeSet<Version> = self
            .projected
            .accepted
            .iter()
            .copied()
            .filter(|v| *v != current && Some(*v) != staged)
            .collect();
        if let Some(next) = staged {
            self.staging(current, next);
        } else if !olds.is_empty() {
            self.promoting(current, olds);
        } else if let Some(leftovers) = self.leftovers(current) {
            self.report.stage = Stage::Retiring;
            self.report.waiting_reason = reasons::DELETING_OLD_KEYS;
            for v in leftovers {
                self.delete_version(v);
            }
        } else if let Some(next) = self.unstaged_version() {
            self.stage_version(current, next);
        } else {
            self.start_rotation_if_due(current);
        }
    }

    /// Staging: presenters get `next` once every verifier confirmed it.
    fn staging(&mut self, current: Version, next: Version) {
        self.report.stage = Stage::Staging;
        self.report.target = Some(next);
        let (revision, written) = (self.projected.verifier_rev, self.projected.verifier_written);
        let pods = self.confirm(Group::Verifiers, revision, written);
        let hook = self.hook_accepts(next);
        if pods && hook {
            self.move_projection_to(self.projected.accepted.clone(), Some(next));
            self.event(EventType::Normal, events::VERSION_PROMOTED, format!(
                "every verifier accepts version {next}; presenters now get it (version {current} stays accepted)"
            ));
            return;
        }
        let holds = format!(
            "presenters keep version {current} and get version {next} only once every verifier confirmed it"
        );
        self.verifiers_wait(next, (revision, written), (pods, hook), &holds);
    }

    /// Promoting: the old versions retire once presenters confirmed, the
    /// minimum grace passed and their traffic went quiet; at the maximum grace
    /// `onTimeout` decides.
    fn promoting(&mut self, current: Version, olds: BTreeSet<Version>) {
        self.report.stage = Stage::Promoting;
        self.report.target = Some(current);
        // The later of the last presenter write and the promotion status
        // recorded: a clock that stepped back must not shorten the grace.
        let recorded = self.record(current).and_then(|h| h.promoted_at);
        let promoted_at = self
            .projected
            .presenter_written
            .max(recorded)
            .unwrap_or(self.input.now);
        let (revision, written) = (
            self.projected.presenter_rev,
            self.projected.presenter_written,
        );
        let confirmed = self.confirm(Group::Presenters, revision, written);
        let holds = format!("version(s) {} stay accepted", join(&olds));
        if !confirmed {
            self.obstacles(Group::Presenters, &holds);
        }
        let grace_end = promoted_at + self.input.policy.grace_minimum;
        let grace_ok = self.input.now >= grace_end;
        if !grace_ok {
            self.wake_at(grace_end);
        }
        let quiet_ok = self.quiet(&olds, promoted_at);
        if confirmed && grace_ok && quiet_ok {
            self.retire(current, &olds, false);
            return;
        }
        self.report.waiting_reason = if !confirmed {
            reasons::WAITING_FOR_PRESENTERS
        } else if !grace_ok {
            reasons::WAITING_FOR_GRACE
        } else {
            reasons::WAITING_FOR_QUIET
        };
        if !confirmed {
            let reason = reasons::PRESENTERS_STALLED;
            self.progress_check(Group::Presenters, revision, written, reason, &holds);
        }
        let max_end = promoted_at + self.input.policy.grace_maximum;
        if self.input.now >= max_end && self.input.policy.on_timeout == OnTimeout::Retire {
            self.retire(current, &olds, true);
        } else if confirmed {
            self.grace_check(Some(promoted_at), reasons::TRAFFIC_NOT_QUIET);
        } else {
            self.grace_check(Some(promoted_at), reasons::PRESENTERS_STALLED);
        }
    }

    /// Retiring: drops `olds` from the accepted set and deletes their keys.
    fn retire(&mut self, current: Version, olds: &BTreeSet<Version>, on_timeout: bool) {
        self.report.stalled = None; // onTimeout: Retire ends a stall
        let remaining: BTreeSet<Version> =
            self.projected.accepted.difference(olds).copied().collect();
        self.move_projection_to(remaining, Some(current));
        for v in olds {
            if self.input.obs.versions.contains_key(v) {
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
        self.report.stage = Stage::Stable;
    }

    /// Verifiers start accepting `next`; presenters keep `current`.
    pub(super) fn stage_version(&mut self, current: Version, next: Version) {
        self.report.stage = Stage::Staging;
        self.report.target = Some(next);
        let mut a = self.projected.accepted.clone();
        a.insert(next);
        self.move_projection_to(a, Some(current));
        self.event(
            EventType::Normal,
            events::VERSION_STAGED,
            format!(
                "verifiers now accept versions {}",
                join(&self.projected.accepted)
            ),
        );
    }

    /// Stable: starts a rotation when one is asked for or the schedule is due,
    /// else sleeps until it is.
    fn start_rotation_if_due(&mut self, current: Version) {
        self.report.stage = Stage::Stable;
        if self.stage_current_at_hook(current) {
            return;
        }
        let handled: Vec<&Requests> = std::iter::once(&self.input.obs.record.handled_rotate)
            .chain(self.input.obs.versions.values().map(|v| &v.requests))
            .collect();
        let asked = self.input.obs.rotate.pending_against(&handled);
        let next = self.next_rotation();
        let scheduled = next.is_some_and(|t| t <= self.input.now);
        if !asked && !scheduled {
            if let Some(t) = next {
                self.wake_at(t);
            }
            self.nudge_stragglers();
            return;
        }
        let version = self.create_version(Origin::Generated, self.input.obs.rotate.clone());
        self.report.handled_rotate = self.input.obs.rotate.clone();
        self.stage_version(current, version);
    }

    /// Stable after a revoke, which publishes, switches and shrinks without
    /// a step that waits: Report-mode pods still on an older revision of a
    /// Secret the revoke wrote last are nudged, with the usual backoff and
    /// bound, so kubelet loads it now instead of at its next periodic sync
    /// (60–90 s). Without it a revoked key's replacement reached presenters
    /// only after about a minute, and their requests failed meanwhile
    /// (`tests/e2e/revoke.rs`). After an ordinary retire nothing is nudged
    /// (a version that retires is one no presenter sends), and all confirmed
    /// means no nudge (I8).
    fn nudge_stragglers(&mut self) {
        let revoked_at = self
            .input
            .obs
            .record
            .history
            .iter()
            .filter(|r| r.state == VersionState::Revoked)
            .filter_map(|r| r.retired_at)
            .max();
        let Some(revoked_at) = revoked_at else {
            return;
        };
        let p = &self.projected;
        let groups = [
            (Group::Verifiers, p.verifier_rev, p.verifier_written),
            (Group::Presenters, p.presenter_rev, p.presenter_written),
        ];
        for (group, revision, written) in groups {
            let gp = self.group_policy(group);
            // The revoke's write is this Secret's latest (same clock reading).
            let by_revoke = written.is_some_and(|w| w <= revoked_at);
            if by_revoke && gp.mode == Mode::Report && gp.nudge {
                let _ = self.confirm(group, revision, written);
            }
        }
    }
}
