//! Clients that missed a rotation, as verifier endpoints (`keyrotor
//! verifier`) report them in their pods' `traffic` annotation: a retired
//! version still presented. A Warning event is due when a pod's refused
//! count grows (or starts again after its sidecar restarted). What was
//! announced is kept in status, so a restarted operator says nothing twice
//! (I8). The sidecar writes the annotation at most once per usage interval,
//! which bounds the events: one per verifier pod and interval at most.

use std::collections::BTreeMap;

use super::Planner;
use crate::conditions::events;
use crate::rotation::model::*;

impl Planner<'_> {
    /// The events due for the verifier pods' refusals, and the counts to
    /// remember as announced (pods with none are forgotten).
    pub(super) fn refusal_news(&self) -> (Vec<Event>, BTreeMap<String, u64>) {
        let said = &self.input.obs.record.refusals_announced;
        let revoked = &self.input.policy.revoked;
        let mut news = Vec::new();
        let mut announced = BTreeMap::new();
        for (pod, r) in &self.input.obs.refusals {
            if r.total == 0 {
                continue;
            }
            announced.insert(pod.clone(), r.total);
            let before = said.get(pod).copied().unwrap_or(0);
            if r.total == before {
                continue;
            }
            // A smaller count: the sidecar restarted and counts again.
            let new = if r.total > before {
                r.total - before
            } else {
                r.total
            };
            let versions = r
                .versions
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let client = r
                .client
                .as_ref()
                .map(|c| format!(", last from client {c}"))
                .unwrap_or_default();
            let note = if r.versions.iter().any(|v| revoked.contains(v)) {
                format!(
                    "verifier pod {pod} refused {new} more request(s) presenting retired or revoked version(s) {versions}{client}: a revoked key is in use; find who holds it before handing it the current key"
                )
            } else {
                format!(
                    "verifier pod {pod} refused {new} more request(s) presenting retired version(s) {versions}{client}: a client missed the rotation; give it the current key (it keeps being refused)"
                )
            };
            news.push(Event {
                kind: EventType::Warning,
                reason: events::RETIRED_KEY_PRESENTED,
                note,
            });
        }
        (news, announced)
    }
}
