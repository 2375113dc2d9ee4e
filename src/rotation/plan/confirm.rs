//! Confirmation: whether a consumer group has loaded a projected Secret
//! revision, the nudges and workload stamps that move it along, the progress
//! status shows, and the stall check at the maximum grace.

use jiff::{SignedDuration, Timestamp};

use super::Planner;
use crate::rotation::duration;
use crate::rotation::model::*;

/// First nudge backoff; doubles on every attempt.
const NUDGE_BACKOFF: SignedDuration = SignedDuration::from_secs(5);
/// A nudge is a hint; after this many the pods are left to kubelet's own sync.
const MAX_NUDGES: u32 = 4;
/// How many waiting consumers status names.
const WAITING_SHOWN: usize = 5;

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
        match gp.mode {
            Mode::Delay => {
                let due = written.unwrap_or(self.input.now) + gp.propagation_delay;
                if self.input.now >= due {
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
    pub(super) fn progress(
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
                let done = written.is_some_and(|w| self.input.now >= w + gp.propagation_delay);
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

    /// Raises `MigrationStalled` once `group` has not confirmed by the
    /// maximum grace after `since`, else wakes at that deadline.
    pub(super) fn stall_check(
        &mut self,
        since: Option<Timestamp>,
        reason: &'static str,
        group: Group,
    ) {
        let since = since.unwrap_or(self.input.now);
        let deadline = since + self.input.policy.grace_maximum;
        if self.input.now >= deadline {
            self.report.stalled = Some((
                reason,
                format!(
                    "{} have not confirmed within the maximum grace period ({}); the old key stays valid",
                    group.as_str(),
                    duration::format(self.input.policy.grace_maximum)
                ),
            ));
        } else {
            self.wake_at(deadline);
        }
    }
}
