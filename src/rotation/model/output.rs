//! What the planner answers: the ordered writes, the events, and the report
//! that becomes status.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Group, Mode, Origin, ProgressMark, Record, Requests, Revision, Stall, Version, VersionRecord,
    WorkloadId,
};

/// Where a rotation is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Stage {
    /// No key published yet.
    Initializing,
    /// One version, accepted and presented.
    Stable,
    /// A new version is accepted by verifiers; waiting for them to confirm.
    Staging,
    /// Presenters have the new version; the old one stays accepted during grace.
    Promoting,
    /// The old version left the accepted set; its key material is being deleted.
    Retiring,
}

/// Which projected Secret a publish writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Verifier,
    Presenter,
    /// The single Secret of a single-Secret layout.
    Combined,
}

/// One write the controller performs. Plans are ordered: executing any prefix
/// keeps every invariant, so a crash between two actions is safe.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the immutable version Secret (idempotent by its deterministic
    /// name), recording the user name it carries, if any.
    CreateVersion {
        version: Version,
        origin: Origin,
        requests: Requests,
        username: Option<String>,
    },
    /// Write a projected Secret: verifiers get `accepted`, presenters `current`.
    WriteProjection {
        target: Target,
        accepted: BTreeSet<Version>,
        current: Option<Version>,
        revision: Revision,
        highest: Version,
    },
    /// Re-create a version Secret deleted by hand, with the key a projected
    /// Secret still holds (same key, same fingerprint; idempotent by name).
    RestoreVersion {
        version: Version,
        origin: Origin,
        created_at: Timestamp,
        /// The user name status recorded for it.
        username: Option<String>,
    },
    /// Mark a version abandoned by a rollback (metadata only).
    MarkAbandoned {
        version: Version,
        requests: Requests,
    },
    /// Delete a version Secret: its key material is gone for good.
    DeleteVersion { version: Version },
    /// Stamp a revision into a workload's pod template (Rollout mode).
    StampWorkload {
        group: Group,
        workload: WorkloadId,
        revision: Revision,
    },
    /// Call the verifier hook (docs/hooks.md). Idempotent by (rotation,
    /// version, step); a successful `Stage` is recorded on the version Secret.
    CallHook { step: HookStep, version: Version },
    /// Touch consumer pods so kubelet resyncs their volumes now (a hint only).
    Nudge {
        group: Group,
        revision: Revision,
        pods: Vec<(String, u32)>,
    },
}

/// A step of the verifier hook protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookStep {
    /// Start accepting the version (before any presenter gets it).
    Stage,
    /// Stop accepting the version (after every presenter moved off it).
    Retire,
}

impl HookStep {
    pub fn as_str(self) -> &'static str {
        match self {
            HookStep::Stage => "stage",
            HookStep::Retire => "retire",
        }
    }
}

/// Event severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// A Kubernetes Event to publish once the plan's actions succeeded.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: EventType,
    pub reason: &'static str,
    pub note: String,
}

/// One condition as the planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionState {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Confirmation progress of one group, for status and `kubectl keyrotor status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupProgress {
    /// Confirmation mode of the group.
    pub mode: Mode,
    /// Projected Secret revision being confirmed.
    pub revision: Revision,
    /// Consumers (pods, or workloads in Rollout mode) that confirmed it.
    pub confirmed: u32,
    /// Consumers that must confirm it.
    pub total: u32,
    /// A few of the consumers still to confirm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    /// When a consumer last confirmed this revision (or it was written):
    /// none confirming for `progressDeadline` stalls the rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub last_progress_time: Option<Timestamp>,
}

impl GroupProgress {
    /// The progress mark the next plan measures progress against.
    pub fn mark(&self) -> Option<ProgressMark> {
        Some(ProgressMark {
            revision: self.revision,
            waiting: self.total.saturating_sub(self.confirmed),
            since: self.last_progress_time?,
        })
    }
}

/// The planner's view of the rotation after this plan, for status.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub stage: Stage,
    pub current: Option<Version>,
    pub target: Option<Version>,
    pub accepted: BTreeSet<Version>,
    pub versions: Vec<VersionRecord>,
    pub verifiers: GroupProgress,
    pub presenters: GroupProgress,
    pub conditions: Vec<ConditionState>,
    pub last_rotation: Option<Timestamp>,
    pub next_rotation: Option<Timestamp>,
    pub handled_rotate: Requests,
    pub handled_rollback: Requests,
    pub verifier_revision: Revision,
    pub presenter_revision: Revision,
    pub traffic: BTreeMap<Version, Timestamp>,
    /// Revoked numbers above every issued one: they will never be issued.
    pub revoked_in_advance: BTreeSet<Version>,
    /// Refused retired-version requests announced so far, by verifier pod.
    pub refusals_announced: BTreeMap<String, u64>,
    /// Running consumers by namespace, when the rotation reaches others.
    pub namespaces: Vec<NamespaceConsumers>,
}

/// Running consumers found in one namespace (only counts: who they are is
/// in `confirmation` while a cycle is in flight).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceConsumers {
    /// The namespace.
    pub namespace: String,
    /// Verifier pods found there.
    pub verifiers: u32,
    /// Presenter pods found there.
    pub presenters: u32,
}

impl NamespaceConsumers {
    /// Counts per namespace of `obs`'s groups: the rotation's own namespace,
    /// every namespace a group names and every one a consumer runs in
    /// (named `<namespace>/<pod>`); empty when that is only its own.
    pub fn of(obs: &super::Observed) -> Vec<NamespaceConsumers> {
        let home = obs.verifiers.search.namespace.as_str();
        let mut by: BTreeMap<&str, NamespaceConsumers> = BTreeMap::new();
        let groups = [&obs.verifiers, &obs.presenters];
        for ns in groups.iter().flat_map(|g| g.search.required.iter()) {
            by.entry(ns).or_default();
        }
        for (i, g) in groups.iter().enumerate() {
            for c in &g.consumers {
                let ns = c.namespace().unwrap_or(home);
                let e = by.entry(ns).or_default();
                if i == 0 {
                    e.verifiers += 1
                } else {
                    e.presenters += 1
                }
            }
        }
        if by.keys().all(|ns| *ns == home) {
            return Vec::new();
        }
        by.entry(home).or_default();
        by.into_iter()
            .map(|(ns, c)| NamespaceConsumers {
                namespace: ns.to_string(),
                ..c
            })
            .collect()
    }
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub events: Vec<Event>,
    pub report: Report,
    /// When to plan again if nothing changes before.
    pub wake_at: Option<Timestamp>,
}

impl Report {
    /// What the next plan may rely on, as status keeps it.
    pub fn to_record(&self) -> Record {
        Record {
            history: self.versions.clone(),
            handled_rotate: self.handled_rotate.clone(),
            handled_rollback: self.handled_rollback.clone(),
            accepted: self.accepted.clone(),
            current: self.current,
            verifier_revision: self.verifier_revision,
            presenter_revision: self.presenter_revision,
            traffic: self.traffic.clone(),
            stalled: self
                .conditions
                .iter()
                .find(|c| c.type_ == crate::conditions::types::MIGRATION_STALLED && c.status)
                .map(|c| Stall {
                    reason: c.reason.to_string(),
                    message: c.message.clone(),
                }),
            revoked_in_advance: self.revoked_in_advance.clone(),
            // Status keeps progress only while a cycle is in flight.
            verifiers_progress: self.in_flight().then(|| self.verifiers.mark()).flatten(),
            presenters_progress: self.in_flight().then(|| self.presenters.mark()).flatten(),
            refusals_announced: self.refusals_announced.clone(),
        }
    }

    /// A cycle is in flight: status shows confirmation progress.
    pub fn in_flight(&self) -> bool {
        self.stage != Stage::Stable
    }
}
