//! The nudges this process sent, remembered beside the pod cache.
//!
//! The planner bounds nudges per pod and revision (`MAX_NUDGES`) by the
//! attempt number it reads back from each pod's nudge annotation. When the
//! pod cache lags behind those writes (after an API outage it did for
//! minutes), every plan saw attempt 0 and nudged again, every backoff, with
//! no bound. Remembering what was sent keeps the bound whatever the cache
//! shows: a consumer's nudge is the later of the two.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;

use crate::api::ApiKeyRotation;
use crate::rotation::{Action, Nudge, Observed};

#[derive(Default)]
pub struct NudgeLog {
    sent: Mutex<HashMap<ObjectRef<ApiKeyRotation>, HashMap<String, Nudge>>>,
}

impl NudgeLog {
    /// Records the nudges among `actions`, applied at `now`.
    pub fn sent(&self, obj: &ObjectRef<ApiKeyRotation>, actions: &[Action], now: Timestamp) {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        for a in actions {
            if let Action::Nudge { revision, pods, .. } = a {
                let pods_sent = sent.entry(obj.clone()).or_default();
                for (pod, attempt) in pods {
                    let nudge = Nudge {
                        revision: *revision,
                        attempt: *attempt,
                        at: now,
                    };
                    pods_sent.insert(pod.clone(), nudge);
                }
            }
        }
    }

    /// Gives each consumer of `observed` the later of its cached nudge and
    /// the one this process sent; forgets pods that are no consumers now.
    pub fn recall(&self, obj: &ObjectRef<ApiKeyRotation>, observed: &mut Observed) {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pods_sent) = sent.get_mut(obj) else {
            return;
        };
        let consumers = observed
            .verifiers
            .consumers
            .iter_mut()
            .chain(observed.presenters.consumers.iter_mut());
        let mut seen = std::collections::HashSet::new();
        for c in consumers {
            seen.insert(c.pod.clone());
            let Some(mine) = pods_sent.get(&c.pod) else {
                continue;
            };
            let later =
                |n: &Nudge| (n.revision, n.attempt, n.at) < (mine.revision, mine.attempt, mine.at);
            if c.nudge.as_ref().is_none_or(later) {
                c.nudge = Some(mine.clone());
            }
        }
        pods_sent.retain(|pod, _| seen.contains(pod));
    }

    /// Forgets a deleted rotation.
    pub fn forget(&self, obj: &ObjectRef<ApiKeyRotation>) {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::Consumer;

    fn observed(nudge: Option<Nudge>) -> Observed {
        let mut o = Observed::default();
        o.verifiers.consumers.push(Consumer {
            pod: "p".into(),
            reported: None,
            nudge,
        });
        o
    }

    #[test]
    fn a_pod_cache_behind_the_nudges_sent_still_sees_their_count() {
        let log = NudgeLog::default();
        let obj = ObjectRef::new("api").within("ns");
        let t = Timestamp::UNIX_EPOCH;
        let nudge = |attempt| Action::Nudge {
            group: crate::rotation::Group::Verifiers,
            revision: 2,
            pods: vec![("p".into(), attempt)],
        };
        log.sent(&obj, &[nudge(3)], t);
        // The cache still shows the first nudge: the third is what counts.
        let first = Nudge {
            revision: 2,
            attempt: 1,
            at: t,
        };
        let mut o = observed(Some(first));
        log.recall(&obj, &mut o);
        assert_eq!(o.verifiers.consumers[0].nudge.as_ref().unwrap().attempt, 3);
        // A newer revision in the cache wins over an older memory.
        let newer = Nudge {
            revision: 3,
            attempt: 1,
            at: t,
        };
        let mut o = observed(Some(newer.clone()));
        log.recall(&obj, &mut o);
        assert_eq!(o.verifiers.consumers[0].nudge, Some(newer));
    }
}
