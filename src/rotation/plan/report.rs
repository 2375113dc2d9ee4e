//! The report: the plan's status (stage, conditions, progress, version
//! history) and the events it emits once its writes succeeded.

use std::collections::BTreeSet;

use super::{Planner, join};
use crate::conditions::{events, reasons, types};
use crate::rotation::model::*;

impl Planner<'_> {
    /// The plan: the writes, the events, and the status after the writes.
    pub(super) fn finish(mut self) -> Plan {
        if let Some(next) = self.next_rotation().filter(|_| !self.input.policy.suspend) {
            self.wake_at(next); // a rotation due while a cycle runs waits, then starts
        }
        let mut events = self.report.events.clone();
        events.extend(self.stall_news());
        let (refused, refusals_announced) = self.refusal_news();
        events.extend(refused);
        // A revoked number nobody holds yet: recorded, skipped when issuing,
        // and said once (status keeps what was said).
        let revoked_in_advance: BTreeSet<Version> = self
            .input
            .policy
            .revoked
            .iter()
            .copied()
            .filter(|v| *v > self.versions.highest)
            .collect();
        for v in revoked_in_advance.difference(&self.input.obs.record.revoked_in_advance) {
            events.push(Event {
                kind: EventType::Normal,
                reason: events::REVOKED_IN_ADVANCE,
                note: format!(
                    "version {v} has not been issued (the highest is {}): its revocation is recorded in advance and version {v} will never be issued",
                    self.versions.highest
                ),
            });
        }
        let mut traffic = self.input.obs.record.traffic.clone();
        for (v, t) in &self.input.obs.traffic {
            let e = traffic.entry(*v).or_insert(*t);
            *e = (*e).max(*t);
        }
        let versions = self.history();
        traffic.retain(|v, _| versions.iter().any(|r| r.version == *v));
        // The stage after this plan's writes, as the next observer will see it.
        let stage = match self.report.stage {
            Stage::Retiring if self.leftovers_after_plan() => Stage::Retiring,
            _ => self.derived_stage(),
        };
        if stage == Stage::Stable {
            self.report.target = None;
        }
        // The reason the next look will report, so a fresh step does not
        // write status twice.
        if self.report.waiting_reason == reasons::IDLE {
            self.report.waiting_reason = match stage {
                Stage::Initializing | Stage::Staging => reasons::WAITING_FOR_VERIFIERS,
                Stage::Promoting => reasons::WAITING_FOR_PRESENTERS,
                Stage::Retiring => reasons::DELETING_OLD_KEYS,
                Stage::Stable => reasons::IDLE,
            };
        }
        let conditions = self.conditions_for(stage);
        let report = Report {
            stage,
            current: self.projected.current,
            target: self.report.target,
            accepted: self.projected.accepted.clone(),
            versions,
            verifiers: self.progress(
                Group::Verifiers,
                self.projected.verifier_rev,
                self.projected.verifier_written,
            ),
            presenters: self.progress(
                Group::Presenters,
                self.projected.presenter_rev,
                self.projected.presenter_written,
            ),
            conditions,
            last_rotation: self.last_rotation(),
            next_rotation: if self.input.policy.suspend {
                None
            } else {
                self.next_rotation()
            },
            handled_rotate: self.report.handled_rotate.clone(),
            handled_rollback: self.report.handled_rollback.clone(),
            verifier_revision: self.projected.verifier_rev,
            presenter_revision: self.projected.presenter_rev,
            traffic,
            revoked_in_advance,
            refusals_announced,
            namespaces: NamespaceConsumers::of(self.input.obs),
        };
        Plan {
            actions: self.actions,
            events,
            report,
            wake_at: self.report.wake,
        }
    }

    /// The event announcing this plan's stall, when status does not hold
    /// it already: said once per change of the stall, also across restarts.
    fn stall_news(&self) -> Option<Event> {
        let said = self.input.obs.record.stalled.as_ref();
        let (reason, msg) = self.report.stalled.as_ref()?;
        let new = said.is_none_or(|s| s.reason != *reason || s.message != *msg);
        new.then(|| Event {
            kind: EventType::Warning,
            reason: stall_event(reason),
            note: msg.clone(),
        })
    }

    /// The Ready, Progressing and MigrationStalled conditions.
    fn conditions_for(&self, stage: Stage) -> Vec<ConditionState> {
        let cond = |type_, status, reason, message: String| ConditionState {
            type_,
            status,
            reason,
            message,
        };
        let ready = match (&self.report.blocked, self.projected.current) {
            (Some((reason, msg)), _) => cond(types::READY, false, reason, msg.clone()),
            (None, None) => cond(
                types::READY,
                false,
                reasons::INITIALIZING,
                "the first key is being published".into(),
            ),
            (None, Some(c)) if self.input.policy.suspend => cond(
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
                    join(&self.projected.accepted)
                ),
            ),
        };
        let progressing = if stage == Stage::Stable || self.input.policy.suspend {
            let reason = if self.input.policy.suspend {
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
                self.report.waiting_reason,
                // The stage after this plan, like the reason beside it: a
                // plan that promotes says Promoting, not Staging.
                format!(
                    "{stage:?} {}",
                    self.report
                        .target
                        .map(|t| format!("version {t}"))
                        .unwrap_or_default()
                ),
            )
        };
        let stalled = match &self.report.stalled {
            Some((reason, msg)) => cond(types::MIGRATION_STALLED, true, reason, msg.clone()),
            None => cond(
                types::MIGRATION_STALLED,
                false,
                reasons::NOT_STALLED,
                "nothing holds the rotation".into(),
            ),
        };
        vec![ready, progressing, stalled]
    }

    /// Version history for status: every live version plus the most recent
    /// retired ones, up to the history limit.
    fn history(&self) -> Vec<VersionRecord> {
        let mut numbers: BTreeSet<Version> = self.input.obs.versions.keys().copied().collect();
        numbers.extend(self.input.obs.record.history.iter().map(|r| r.version));
        numbers.extend(self.projected.accepted.iter().copied());
        numbers.extend(self.projected.current);
        numbers.extend(self.versions.created.iter().map(|c| c.version));
        let mut out: Vec<VersionRecord> = Vec::new();
        for v in numbers {
            let old = self.record(v);
            let seen = self.input.obs.versions.get(&v);
            let created = self.versions.created.iter().find(|c| c.version == v);
            let live = (seen.is_some() && !self.versions.deleted.contains(&v)) || created.is_some();
            let state = if self.versions.revoked_now.contains(&v)
                || (self.input.policy.revoked.contains(&v) && !self.projected.accepted.contains(&v))
            {
                VersionState::Revoked
            } else if Some(v) == self.projected.current {
                VersionState::Current
            } else if self.versions.abandoned.contains(&v) {
                VersionState::Abandoned
            } else if self.projected.accepted.contains(&v) {
                if self.projected.current.is_some_and(|c| v > c) || self.projected.current.is_none()
                {
                    VersionState::Staged
                } else {
                    VersionState::Previous
                }
            } else if live && self.projected.current.is_none_or(|c| v > c) {
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
            ) && !self.projected.accepted.contains(&v);
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
                .or(created.map(|c| c.origin))
                .unwrap_or_default();
            let created_at = seen
                .map(|s| s.created_at)
                .or(old.map(|r| r.created_at))
                .unwrap_or(self.input.now);
            let promoted_at = old.and_then(|r| r.promoted_at).or_else(|| {
                (Some(v) == self.projected.current)
                    .then(|| self.projected.presenter_written.unwrap_or(self.input.now))
            });
            let retired_at = if terminal {
                old.and_then(|r| r.retired_at).or(Some(self.input.now))
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
                username: self.username_of(v).map(str::to_string),
            });
        }
        // Keep every non-terminal version and the newest terminal ones.
        let limit = self.input.policy.history_limit.max(1);
        while out.len() > limit {
            let Some(i) = out.iter().position(|r| r.retired_at.is_some()) else {
                break;
            };
            out.remove(i);
        }
        out
    }
}

/// The event reason of a stall: the cause itself for the stalls found at
/// once, `MigrationStalled` for those found by time.
fn stall_event(reason: &str) -> &'static str {
    match reason {
        reasons::NO_CONSUMERS => events::NO_CONSUMERS,
        reasons::CONSUMERS_CANNOT_CONFIRM => events::CONSUMERS_CANNOT_CONFIRM,
        reasons::NO_USAGE_REPORTER => events::NO_USAGE_REPORTER,
        _ => events::MIGRATION_STALLED,
    }
}
