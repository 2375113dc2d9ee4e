//! Confirmation: whether a consumer group has loaded a projected Secret
//! revision, the nudges and workload stamps that move it along, and the
//! progress status shows. Missing evidence is never confirmation: a group
//! with fewer consumers than its `minConsumers`, a listed workload that does
//! not exist and a pod that reads the key through env never confirm (what
//! the cycle then says is in `stall`).

use jiff::{SignedDuration, Timestamp};

use super::Planner;
use crate::rotation::model::*;

/// First nudge backoff; doubles on every attempt.
const NUDGE_BACKOFF: SignedDuration = SignedDuration::from_secs(5);
/// A nudge is a hint; after this many the pods are left to kubelet's own sync.
const MAX_NUDGES: u32 = 4;
/// How many waiting consumers status names.
pub(super) const WAITING_SHOWN: usize = 5;

impl Planner<'_> {
    /// Whether `group` confirmed `revision`; emits nudges or workload stamps
    /// that move it along and schedules the next look.
    pub(super) fn confirm(
        &mut self,
        group: Group,
        revision: Revision,
        written: Option<Timestamp>,
    ) -> bool {
        let gp = self.group_policy(group);
        let go = self.group_obs(group);
        let env = go.consumers.iter().any(|c| c.env);
        match gp.mode {
            Mode::Delay => {
                let due = written.unwrap_or(self.input.now) + gp.propagation_delay;
                if self.input.now >= due {
                    return !env;
                }
                self.wake_at(due);
                false
            }
            Mode::Report => {
                // An env consumer never loads the revision, whatever it
                // reports; nudging it would change nothing either.
                let waiting: Vec<&Consumer> = go
                    .consumers
                    .iter()
                    .filter(|c| !c.env && c.reported.is_none_or(|r| r < revision))
                    .collect();
                if gp.nudge {
                    self.nudge(group, revision, &waiting);
                }
                waiting.is_empty() && !env && self.enough_found(group)
            }
            Mode::Rollout => {
                // One workload at a time, in spec order: never restart everything at once.
                for id in &gp.workloads {
                    let Some(w) = go.workloads.iter().find(|w| &w.id == id) else {
                        if !self.workload_required(group) {
                            continue; // nothing to restart
                        }
                        return false; // nothing can confirm for it (see `stall`)
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

    /// Nudges the `waiting` pods, with backoff and a bound per revision.
    fn nudge(&mut self, group: Group, revision: Revision, waiting: &[&Consumer]) {
        let mut pods = Vec::new();
        for c in waiting {
            match &c.nudge {
                Some(n) if n.revision >= revision => {
                    if n.attempt >= MAX_NUDGES {
                        continue;
                    }
                    let again =
                        n.at + NUDGE_BACKOFF * (1i32 << n.attempt.clamp(1, 8).saturating_sub(1));
                    if self.input.now >= again {
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
            self.wake_at(self.input.now + NUDGE_BACKOFF);
            self.actions.push(Action::Nudge {
                group,
                revision,
                pods,
            });
        }
    }

    /// Consumers found in a Report group: its running pods, and for the
    /// verifiers an external verifier the spec names (a verifier hook, or
    /// the issuer that minted the key), which confirms for itself.
    pub(super) fn found(&self, group: Group) -> u32 {
        let policy = self.input.policy;
        let external = group == Group::Verifiers && (policy.verifier_hook || policy.issuer_hook);
        self.group_obs(group).consumers.len() as u32 + u32::from(external)
    }

    /// Whether a Report group found the consumers its `minConsumers` asks
    /// for, and one in each other namespace it names. The first key needs
    /// none: nobody uses a key before it exists.
    pub(super) fn enough_found(&self, group: Group) -> bool {
        self.report.stage == Stage::Initializing
            || (self.found(group) >= self.group_policy(group).min_consumers
                && self.empty_namespaces(group).is_empty())
    }

    /// The other namespaces `group` names in which no consumer of it runs
    /// (none when its `minConsumers` is 0: all may be out of sight).
    pub(super) fn empty_namespaces(&self, group: Group) -> Vec<&str> {
        let go = self.group_obs(group);
        if self.group_policy(group).min_consumers == 0 {
            return Vec::new();
        }
        go.search
            .required
            .iter()
            .filter(|ns| {
                !go.consumers
                    .iter()
                    .any(|c| c.namespace() == Some(ns.as_str()))
            })
            .map(String::as_str)
            .collect()
    }

    /// Whether a listed workload that does not exist holds the group: unless
    /// the spec declared the group's consumers optional (`minConsumers: 0`),
    /// or for the first key, which nobody uses yet.
    pub(super) fn workload_required(&self, group: Group) -> bool {
        self.group_policy(group).min_consumers > 0 && self.report.stage != Stage::Initializing
    }

    /// Side-effect-free progress count for status, with the time a consumer
    /// last confirmed (`None` in Delay mode, which waits a time instead).
    pub(super) fn progress(
        &self,
        group: Group,
        revision: Revision,
        written: Option<Timestamp>,
    ) -> GroupProgress {
        let gp = self.group_policy(group);
        let go = self.group_obs(group);
        let (confirmed, total, mut waiting): (u32, u32, Vec<String>) = match gp.mode {
            Mode::Report => {
                let waiting: Vec<String> = go
                    .consumers
                    .iter()
                    .filter(|c| c.env || c.reported.is_none_or(|r| r < revision))
                    .map(|c| c.pod.clone())
                    .collect();
                let total = go.consumers.len() as u32;
                (total - waiting.len() as u32, total, waiting)
            }
            Mode::Rollout => {
                // A listed workload that does not exist waits too, unless
                // the spec declared it optional.
                let listed: Vec<(&WorkloadId, Option<&WorkloadObs>)> = gp
                    .workloads
                    .iter()
                    .map(|id| (id, go.workloads.iter().find(|w| &w.id == id)))
                    .filter(|(_, w)| w.is_some() || self.workload_required(group))
                    .collect();
                let waiting: Vec<String> = listed
                    .iter()
                    .filter(|(_, w)| {
                        !w.is_some_and(|w| w.rolled_out && w.stamped.is_some_and(|s| s >= revision))
                    })
                    .map(|(id, _)| format!("{:?}/{}", id.kind, id.name))
                    .collect();
                let total = listed.len() as u32;
                (total - waiting.len() as u32, total, waiting)
            }
            Mode::Delay => {
                let done = written.is_some_and(|w| self.input.now >= w + gp.propagation_delay);
                (u32::from(done), 1, Vec::new())
            }
        };
        // Sorted: the pod cache's order must not churn status.
        waiting.sort();
        let last_progress_time = (gp.mode != Mode::Delay).then(|| {
            let still = total - confirmed;
            let mark = self
                .record_progress(group)
                .filter(|m| m.revision == revision);
            match mark {
                Some(m) if still >= m.waiting => m.since,
                Some(_) => self.input.now, // fewer wait than before: progress
                None => written.unwrap_or(self.input.now),
            }
        });
        GroupProgress {
            mode: gp.mode,
            revision,
            confirmed,
            total,
            waiting_for: waiting.into_iter().take(WAITING_SHOWN).collect(),
            last_progress_time,
        }
    }

    /// The progress the previous status recorded for `group`.
    fn record_progress(&self, group: Group) -> Option<&ProgressMark> {
        let record = &self.input.obs.record;
        match group {
            Group::Verifiers => record.verifiers_progress.as_ref(),
            Group::Presenters => record.presenters_progress.as_ref(),
        }
    }
}
