//! The rotation planner: policy + observed state + clock → the next writes.
//!
//! The protocol (`docs/design.md`): Stable(N) → Staging(N+1) →
//! Promoting(N+1) → Retiring(N) → Stable(N+1). The stage is derived from what
//! the projected Secrets hold, never from memory, so a restart re-plans from
//! the cluster alone (I6). Every plan is a short ordered list of writes whose
//! every prefix keeps the presenters' key inside the verifiers' accepted set
//! (I1); the invariants are defined at `docs/design.md#invariants`.
//!
//! Layout: this file holds the entry point, the planner's state and the
//! order of its rules; `exceptions` and `cycle` the rules, `confirm` how
//! consumers confirm, `stall` when a cycle cannot finish without help,
//! `hook` the verifier hook as one more verifier, `writes` the write
//! primitives, `facts` what the state implies, `report` the status and
//! events, `refusals` the clients that missed a rotation.

mod confirm;
mod cycle;
mod exceptions;
mod facts;
mod hook;
mod refusals;
mod report;
mod stall;
mod writes;

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::model::*;
use crate::conditions::reasons;

/// Plans the next step of one rotation.
pub fn plan(policy: &Policy, obs: &Observed, now: Timestamp) -> Plan {
    // Lost version Secrets a projection can restore come first (see `restore`).
    let (obs, restores, notes) = super::restore::restore_lost(obs, now);
    let mut p = Planner::new(policy, &obs, now);
    p.decide();
    let mut decided = p.finish();
    decided.actions.splice(0..0, restores);
    decided.events.splice(0..0, notes);
    decided
}

/// One planning pass: what it reads, what it writes, what it reports.
struct Planner<'a> {
    input: Input<'a>,
    /// The ordered writes for the controller: the plan's product.
    actions: Vec<Action>,
    projected: Projected,
    versions: Versions,
    report: ReportDraft,
}

/// What the plan is computed from; planning never changes it.
#[derive(Clone, Copy)]
struct Input<'a> {
    policy: &'a Policy,
    obs: &'a Observed,
    now: Timestamp,
}

/// The projected Secrets as the writes planned so far leave them.
struct Projected {
    /// The versions verifiers accept.
    accepted: BTreeSet<Version>,
    /// The version presenters send.
    current: Option<Version>,
    verifier_rev: Revision,
    presenter_rev: Revision,
    verifier_written: Option<Timestamp>,
    presenter_written: Option<Timestamp>,
}

/// Version numbers and the version Secrets this plan creates, deletes,
/// abandons or revokes.
struct Versions {
    /// The highest version number issued, this plan's included.
    highest: Version,
    /// The highest version number a projected Secret records: the only
    /// record of issued numbers that survives a lost status (I5).
    durable_highest: Version,
    abandoned: BTreeSet<Version>,
    revoked_now: BTreeSet<Version>,
    created: Vec<Created>,
    deleted: BTreeSet<Version>,
}

/// A version this plan creates.
struct Created {
    version: Version,
    origin: Origin,
    username: Option<String>,
}

/// What the plan reports besides its writes: the pieces of status, the
/// events, and when to look again.
struct ReportDraft {
    events: Vec<Event>,
    wake: Option<Timestamp>,
    stage: Stage,
    /// The version the cycle in flight moves to.
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
            input: Input { policy, obs, now },
            actions: Vec::new(),
            projected: Projected {
                accepted,
                current,
                verifier_rev,
                presenter_rev,
                verifier_written: verifier.map(|p| p.written_at),
                presenter_written: presenter.map(|p| p.written_at),
            },
            versions: Versions {
                highest,
                durable_highest,
                abandoned,
                revoked_now: BTreeSet::new(),
                created: Vec::new(),
                deleted: BTreeSet::new(),
            },
            report: ReportDraft {
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
            },
        }
    }

    /// Picks the one rule this plan follows. The first that applies wins:
    ///
    /// 1. **Repair a projected Secret** deleted or edited by hand: every
    ///    later rule reads the state from the projected Secrets, so they
    ///    must be whole first.
    /// 2. **Revoke**: an emergency; it runs even when suspended or before
    ///    the first key is presented, and may break I2 on purpose.
    /// 3. **Initialize** (or adopt) when presenters have no key yet: nothing
    ///    else applies before there is a current version.
    /// 4. **Restore I1** when the current version is not accepted (only a
    ///    hand edit gets here): every later rule assumes it is.
    /// 5. **Replace lost keys**: a staged version without key material is
    ///    dropped and replaced at once; a lost current key is reported and
    ///    replaced through the ordinary, confirmed cycle. Not stopped by
    ///    suspend, except that no replacement is created while suspended.
    /// 6. **Suspend** holds the cycle where it is; everything above is repair
    ///    or safety, which suspend does not stop.
    /// 7. **Rollback** on a new request, before the cycle moves further (it
    ///    abandons the version in flight, or returns presenters to the
    ///    previous version while it is still accepted). A rejected rollback
    ///    only raises an event, and the cycle goes on.
    /// 8. **The normal cycle**: promote a staged version, retire old ones,
    ///    delete leftover key material, stage a created version, or start a
    ///    rotation when one is asked for or due.
    fn decide(&mut self) {
        if self.repair_projection() || self.revoke() {
            self.report.stage = self.derived_stage();
            return;
        }
        let Some(current) = self.projected.current else {
            self.initialize();
            return;
        };
        if !self.projected.accepted.contains(&current) {
            self.restore_current_accepted(current);
            self.report.stage = self.derived_stage();
            return;
        }
        if self.replace_lost_keys(current) {
            self.report.stage = self.derived_stage();
            return;
        }
        self.report.stage = self.derived_stage();
        if self.input.policy.suspend {
            self.report.waiting_reason = reasons::SUSPENDED;
            return;
        }
        if self.rollback(current) {
            self.report.stage = self.derived_stage();
            return;
        }
        self.cycle(current);
    }
}

fn join(set: &BTreeSet<Version>) -> String {
    set.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
