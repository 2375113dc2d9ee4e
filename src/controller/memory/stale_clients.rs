//! Clients that missed a rotation, as `keyrotor verifier` endpoints report
//! them in their pods' `traffic` annotation (see
//! `keyrotor_consumer::wire::Traffic`): a retired version still presented.
//!
//! Each verifier pod's retired count is remembered, and a Warning event is
//! due when it grows (or starts again after the pod restarted). The sidecar
//! writes that annotation at most once per usage interval, so the events are
//! bounded by it: one per verifier pod and interval at most. A restarted
//! operator announces a pod's standing count once more.

use std::collections::{BTreeMap, BTreeSet};

use keyrotor_consumer::wire::Traffic;

use crate::wire::Version;

/// Each verifier pod's retired count as last announced, for one rotation.
#[derive(Clone, Debug, Default)]
pub struct StaleClients(BTreeMap<String, u64>);

impl StaleClients {
    /// The event notes due for these verifier pods' traffic; remembers it.
    /// A `revoked` version is worded as such: whoever presents it may be
    /// whoever leaked it, not a client to hand the current key.
    pub fn news(&mut self, revoked: &BTreeSet<Version>, pods: &[(String, Traffic)]) -> Vec<String> {
        let known = &mut self.0;
        let mut notes = Vec::new();
        for (pod, traffic) in pods {
            let total = traffic.retired_total();
            let before = known.insert(pod.clone(), total).unwrap_or(0);
            if total == 0 || total == before {
                continue;
            }
            let new = if total > before {
                total - before
            } else {
                total
            };
            let versions = traffic
                .retired
                .keys()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let client = traffic
                .client
                .map(|c| format!(", last from client {c}"))
                .unwrap_or_default();
            let note = if traffic.retired.keys().any(|v| revoked.contains(v)) {
                format!(
                    "verifier pod {pod} refused {new} more request(s) presenting retired or revoked version(s) {versions}{client}: a revoked key is in use; find who holds it before handing it the current key"
                )
            } else {
                format!(
                    "verifier pod {pod} refused {new} more request(s) presenting retired version(s) {versions}{client}: a client missed the rotation; give it the current key (it keeps being refused)"
                )
            };
            notes.push(note);
        }
        known.retain(|p, _| pods.iter().any(|(q, _)| q == p));
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, annotation: &str) -> (String, Traffic) {
        (name.to_string(), Traffic::parse(annotation).unwrap())
    }

    #[test]
    fn a_growing_retired_count_is_announced_once_per_change() {
        let mut log = StaleClients::default();
        let none = BTreeSet::new();
        assert!(
            log.news(&none, &[pod("gw-0", "accepted=2:10;retired=")])
                .is_empty()
        );
        let notes = log.news(
            &none,
            &[pod("gw-0", "accepted=2:10;retired=1:3;client=10.0.0.7")],
        );
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("gw-0 refused 3 more") && notes[0].contains("10.0.0.7"),
            "{}",
            notes[0]
        );
        assert!(
            log.news(&none, &[pod("gw-0", "accepted=2:99;retired=1:3")])
                .is_empty()
        );
        let notes = log.news(&none, &[pod("gw-0", "accepted=2:99;retired=1:5")]);
        assert!(notes[0].contains("refused 2 more"), "{}", notes[0]);
        // The sidecar restarted: its count starts again.
        let notes = log.news(&none, &[pod("gw-0", "accepted=2:1;retired=1:1")]);
        assert!(notes[0].contains("refused 1 more"), "{}", notes[0]);
    }

    #[test]
    fn a_revoked_version_is_not_called_a_missed_rotation() {
        let mut log = StaleClients::default();
        let revoked = BTreeSet::from([3]);
        let notes = log.news(&revoked, &[pod("gw-0", "retired=3:2;client=10.9.8.7")]);
        assert!(notes[0].contains("revoked key is in use"), "{}", notes[0]);
        assert!(
            !notes[0].contains("give it the current key"),
            "{}",
            notes[0]
        );
    }
}
