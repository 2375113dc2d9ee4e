//! The write primitives: every action and event a plan emits goes through
//! these, so the write order that keeps I1 lives in one place.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::{Created, Planner};
use crate::conditions::events;
use crate::rotation::model::*;

impl Planner<'_> {
    /// Moves the projected state to (`accepted`, `current`), writing the
    /// verifier side first when it grows and last when it shrinks (I1).
    pub(super) fn move_projection_to(
        &mut self,
        accepted: BTreeSet<Version>,
        current: Option<Version>,
    ) {
        let a_changed = accepted != self.projected.accepted;
        let c_changed = current != self.projected.current;
        if !a_changed && !c_changed {
            return;
        }
        let grows = accepted.is_superset(&self.projected.accepted);
        self.projected.accepted = accepted;
        self.projected.current = current;
        if self.input.policy.combined {
            self.write_verifier();
            return;
        }
        if a_changed && grows {
            self.write_verifier();
        }
        if c_changed {
            // The presenter Secret shows `current`; the verifier side keeps the
            // old current accepted until the accepted set shrinks, preserving I1.
            self.projected.presenter_rev += 1;
            self.projected.presenter_written = Some(self.input.now);
            self.queue_projection_write(Target::Presenter, self.projected.presenter_rev);
        }
        if a_changed && !grows {
            self.write_verifier();
        }
    }

    /// Writes the verifier Secret (the only one, in the single-Secret layout)
    /// with the state planned so far.
    fn write_verifier(&mut self) {
        self.projected.verifier_written = Some(self.input.now);
        if self.input.policy.combined {
            self.projected.verifier_rev = self
                .projected
                .verifier_rev
                .max(self.projected.presenter_rev)
                + 1;
            self.projected.presenter_rev = self.projected.verifier_rev;
            self.projected.presenter_written = Some(self.input.now);
            self.queue_projection_write(Target::Combined, self.projected.verifier_rev);
        } else {
            self.projected.verifier_rev += 1;
            self.queue_projection_write(Target::Verifier, self.projected.verifier_rev);
        }
    }

    /// Queues one write of projected Secret `target` with the state planned so
    /// far; the verifier side carries the highest number issued (I5).
    pub(super) fn queue_projection_write(&mut self, target: Target, revision: Revision) {
        if matches!(target, Target::Verifier | Target::Combined) {
            self.versions.durable_highest = self.versions.highest;
        }
        self.actions.push(Action::WriteProjection {
            target,
            accepted: self.projected.accepted.clone(),
            current: self.projected.current,
            revision,
            highest: self.versions.highest,
        });
    }

    /// Issues the next version number (skipping revoked ones) and creates
    /// its Secret. Every new version comes from here (generated, issued,
    /// adopted, the replacement of a revoked or lost key), so here alone its
    /// user name is chosen ([`Self::new_username`]), recorded once, never
    /// changed.
    pub(super) fn create_version(&mut self, origin: Origin, requests: Requests) -> Version {
        let mut v = self.versions.highest + 1;
        while self.input.policy.revoked.contains(&v) {
            v += 1; // a number revoked in advance is simply never issued
        }
        self.versions.highest = v;
        let username = self.new_username();
        self.versions.created.push(Created {
            version: v,
            origin,
            username: username.clone(),
        });
        self.actions.push(Action::CreateVersion {
            version: v,
            origin,
            requests,
            username,
        });
        let (reason, what) = match origin {
            Origin::Generated => (events::VERSION_CREATED, "created"),
            Origin::Adopted => (events::VERSION_ADOPTED, "adopted from the existing Secret"),
        };
        self.event(EventType::Normal, reason, format!("version {v} {what}"));
        v
    }

    /// The user name of a version created now: after the current version's
    /// (`Policy::username_after`), away from every name a version presenters
    /// may still send (accepted or current, not revoked) carries.
    fn new_username(&self) -> Option<String> {
        let current = self.projected.current.and_then(|c| self.username_of(c));
        let live: Vec<&str> = self
            .projected
            .accepted
            .iter()
            .chain(self.projected.current.iter())
            .filter(|v| !self.input.policy.revoked.contains(v))
            .filter_map(|v| self.username_of(*v))
            .collect();
        self.input
            .policy
            .username_after(current, |name| live.contains(&name))
    }

    /// Deletes version `v`'s Secret (its key material), once per plan.
    pub(super) fn delete_version(&mut self, v: Version) {
        if v > self.versions.durable_highest {
            // A version never projected (abandoned before staging) is known
            // only by its own Secret: record its number before deleting it,
            // or a restart that lost status would issue it again.
            self.write_verifier();
        }
        if self.versions.deleted.insert(v) {
            // The external verifier lets go of the key first: once its
            // Secret is gone, keyrotor could not name the key again.
            self.hook_retire(v);
            self.actions.push(Action::DeleteVersion { version: v });
        }
    }

    /// Marks `v` abandoned by a rollback; its number is never reused.
    pub(super) fn abandon(&mut self, v: Version, requests: Requests) {
        self.versions.abandoned.insert(v);
        if self.input.obs.versions.contains_key(&v) {
            self.actions.push(Action::MarkAbandoned {
                version: v,
                requests,
            });
        }
    }

    /// Queues an event, emitted once the writes succeeded.
    pub(super) fn event(&mut self, kind: EventType, reason: &'static str, note: String) {
        self.report.events.push(Event { kind, reason, note });
    }

    /// Plans again at `t` at the latest.
    pub(super) fn wake_at(&mut self, t: Timestamp) {
        self.report.wake = Some(self.report.wake.map_or(t, |w| w.min(t)));
    }
}
