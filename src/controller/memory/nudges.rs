//! The nudges this process sent, remembered beside the pod cache.
//!
//! The planner bounds nudges per pod and revision (`MAX_NUDGES`) by the
//! attempt number it reads back from each pod's nudge annotation. When the
//! pod cache lags behind those writes (after an API outage it did for
//! minutes), every plan saw attempt 0 and nudged again, every backoff, with
//! no bound. Remembering what was sent keeps the bound whatever the cache
//! shows: a consumer's nudge is the later of the two.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

use crate::rotation::{Action, GroupObs, Nudge};

/// The nudges sent to one rotation's consumer pods, by pod name.
#[derive(Clone, Debug, Default)]
pub struct NudgesSent(HashMap<String, Nudge>);

impl NudgesSent {
    /// Records the nudges among `actions`, applied at `now`.
    pub fn sent(&mut self, actions: &[Action], now: Timestamp) {
        for a in actions {
            if let Action::Nudge { revision, pods, .. } = a {
                for (pod, attempt) in pods {
                    let nudge = Nudge {
                        revision: *revision,
                        attempt: *attempt,
                        at: now,
                    };
                    self.0.insert(pod.clone(), nudge);
                }
            }
        }
    }

    /// Gives each consumer of `groups` the later of its cached nudge and the
    /// one this process sent; forgets pods that are no consumers now.
    pub fn recall(&mut self, groups: [&mut GroupObs; 2]) {
        let mut seen = HashSet::new();
        for c in groups.into_iter().flat_map(|g| g.consumers.iter_mut()) {
            seen.insert(c.pod.clone());
            let Some(mine) = self.0.get(&c.pod) else {
                continue;
            };
            let later =
                |n: &Nudge| (n.revision, n.attempt, n.at) < (mine.revision, mine.attempt, mine.at);
            if c.nudge.as_ref().is_none_or(later) {
                c.nudge = Some(mine.clone());
            }
        }
        self.0.retain(|pod, _| seen.contains(pod));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::Consumer;

    fn group(nudge: Option<Nudge>) -> GroupObs {
        GroupObs {
            consumers: vec![Consumer {
                pod: "p".into(),
                reported: None,
                nudge,
                env: false,
            }],
            ..GroupObs::default()
        }
    }

    fn recalled(log: &mut NudgesSent, nudge: Option<Nudge>) -> Option<Nudge> {
        let (mut verifiers, mut presenters) = (group(nudge), GroupObs::default());
        log.recall([&mut verifiers, &mut presenters]);
        verifiers.consumers[0].nudge.clone()
    }

    #[test]
    fn a_pod_cache_behind_the_nudges_sent_still_sees_their_count() {
        let mut log = NudgesSent::default();
        let t = Timestamp::UNIX_EPOCH;
        let nudge = |attempt| Action::Nudge {
            group: crate::rotation::Group::Verifiers,
            revision: 2,
            pods: vec![("p".into(), attempt)],
        };
        log.sent(&[nudge(3)], t);
        // The cache still shows the first nudge: the third is what counts.
        let first = Nudge {
            revision: 2,
            attempt: 1,
            at: t,
        };
        assert_eq!(recalled(&mut log, Some(first)).unwrap().attempt, 3);
        // A newer revision in the cache wins over an older memory.
        let newer = Nudge {
            revision: 3,
            attempt: 1,
            at: t,
        };
        assert_eq!(recalled(&mut log, Some(newer.clone())), Some(newer));
    }
}
