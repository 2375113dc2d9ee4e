//! The planner's vocabulary: the validated policy, what was observed in the
//! cluster, what keyrotor remembers in status, and the plan it returns.
//! Plain data: no kube, no I/O, no key material (only fingerprints).

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schedule::Schedule;

/// A key version number. One number is one key, forever (I5).
pub type Version = u64;
/// The revision of a projected Secret; grows by one on every content change.
pub type Revision = u64;

/// How a consumer group confirms that it loaded a projected Secret revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum Mode {
    /// Each pod reports the revision it loaded in an annotation on itself.
    #[default]
    Report,
    /// keyrotor stamps the revision into workload pod templates and waits for the rollouts.
    Rollout,
    /// No feedback: wait the propagation delay.
    Delay,
}

/// What to do when presenters have not all confirmed by the maximum grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum OnTimeout {
    /// Keep the old version, raise `MigrationStalled` and a Warning event.
    #[default]
    Wait,
    /// Retire the old version anyway: lagging presenters will be rejected.
    Retire,
}

/// Workload kinds that Rollout mode can restart.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// A workload in the rotation's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadId {
    pub kind: WorkloadKind,
    pub name: String,
}

/// The two consumer groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Verifiers,
    Presenters,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Verifiers => "verifiers",
            Group::Presenters => "presenters",
        }
    }
}

/// How one consumer group is confirmed.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupPolicy {
    pub mode: Mode,
    pub nudge: bool,
    pub propagation_delay: SignedDuration,
    pub workloads: Vec<WorkloadId>,
}

/// A validated `ApiKeyRotation` spec, reduced to what the protocol needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub schedule: Option<Schedule>,
    pub grace_minimum: SignedDuration,
    pub grace_maximum: SignedDuration,
    pub on_timeout: OnTimeout,
    pub verifiers: GroupPolicy,
    pub presenters: GroupPolicy,
    /// Traffic mode: the old version retires only after this long unseen.
    pub quiet_window: Option<SignedDuration>,
    /// One Secret serves both groups.
    pub combined: bool,
    pub history_limit: usize,
    pub suspend: bool,
    pub revoked: BTreeSet<Version>,
    pub adopt: bool,
}

/// On-demand request tokens, by source. A token that differs from the last
/// handled one asks for an action. Two sources so that an imperative
/// `kubectl keyrotor rotate` (annotation) survives a GitOps sync of the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requests {
    /// Token from the spec (declarative, from Git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// Token from the `keyrotor.dev/...` annotation (imperative, from kubectl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
}

impl Requests {
    /// Tokens present here that `handled` has not seen.
    pub fn pending_against(&self, handled: &[&Requests]) -> bool {
        let new = |mine: &Option<String>, pick: fn(&Requests) -> &Option<String>| {
            mine.is_some() && !handled.iter().any(|h| pick(h) == mine)
        };
        new(&self.spec, |r| &r.spec) || new(&self.annotation, |r| &r.annotation)
    }

    pub fn is_empty(&self) -> bool {
        self.spec.is_none() && self.annotation.is_none()
    }
}

/// Where a version's key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum Origin {
    #[default]
    Generated,
    /// Imported from an existing Secret (how teams move a key under keyrotor).
    Adopted,
}

/// A version Secret as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionObs {
    pub fingerprint: String,
    /// False when the key material is missing (deleted or emptied by hand).
    pub has_key: bool,
    pub created_at: Timestamp,
    pub origin: Origin,
    /// The rotate requests this version answered.
    pub requests: Requests,
    /// Set when a rollback abandoned this version, with the rollback requests.
    pub abandoned: Option<Requests>,
}

/// What a projected Secret currently publishes (from its annotations).
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub revision: Revision,
    /// Versions verifiers accept (meaningful on the verifier or combined Secret).
    pub accepted: BTreeSet<Version>,
    /// Version presenters send (meaningful on the presenter or combined Secret).
    pub current: Option<Version>,
    pub written_at: Timestamp,
    /// Highest version number ever issued, carried so numbers never repeat.
    pub highest: Version,
}

/// A nudge already sent to a pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Nudge {
    pub revision: Revision,
    pub attempt: u32,
    pub at: Timestamp,
}

/// A running consumer pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Consumer {
    pub pod: String,
    /// The revision it reported loading, if any.
    pub reported: Option<Revision>,
    pub nudge: Option<Nudge>,
}

/// A referenced workload as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadObs {
    pub id: WorkloadId,
    /// The revision stamped in its pod template.
    pub stamped: Option<Revision>,
    /// The rollout of its current template has completed.
    pub rolled_out: bool,
}

/// One consumer group as observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupObs {
    pub consumers: Vec<Consumer>,
    pub workloads: Vec<WorkloadObs>,
}

/// The adoption source, when it was found and holds a key.
#[derive(Clone, Debug, PartialEq)]
pub struct AdoptionObs {
    pub fingerprint: String,
}

/// Everything the planner knows about one rotation at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub versions: BTreeMap<Version, VersionObs>,
    /// The verifier Secret (the combined Secret in a single-Secret layout).
    pub verifier: Option<Published>,
    /// The presenter Secret (the same as `verifier` in a single-Secret layout).
    pub presenter: Option<Published>,
    pub verifiers: GroupObs,
    pub presenters: GroupObs,
    /// Latest time verifiers reported each version presented.
    pub traffic: BTreeMap<Version, Timestamp>,
    /// Rotate tokens currently asked for.
    pub rotate: Requests,
    /// Rollback tokens currently asked for.
    pub rollback: Requests,
    pub adoption: Option<AdoptionObs>,
    pub record: Record,
    /// The verifier (or combined) Secret's content differs from what its
    /// published state should render to: someone edited it by hand.
    pub verifier_tampered: bool,
    /// The same for the presenter Secret.
    pub presenter_tampered: bool,
    /// Versions whose Secret is gone (deleted by hand) while a projected
    /// Secret still holds their key: the fingerprint of that key.
    pub recoverable: BTreeMap<Version, String>,
}

/// The lifecycle of one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VersionState {
    /// Created, not yet accepted by verifiers.
    Pending,
    /// Accepted by verifiers, not yet given to presenters.
    Staged,
    /// The key presenters send.
    Current,
    /// Superseded, still accepted while presenters move off it.
    Previous,
    /// Out of the accepted set, key material deleted.
    Retired,
    /// Revoked by request, key material deleted.
    Revoked,
    /// Rolled back before it became the settled current key.
    Abandoned,
}

/// Status history entry for one version: metadata only, never key material.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionRecord {
    /// Version number.
    pub version: Version,
    /// Where the version is in its lifecycle.
    pub state: VersionState,
    /// `sha256:` fingerprint of the key (not the digest verifiers compare against).
    pub fingerprint: String,
    /// Generated by keyrotor or adopted from an existing Secret.
    #[serde(default)]
    pub origin: Origin,
    /// When the version was created.
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    /// When presenters were first given this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub promoted_at: Option<Timestamp>,
    /// When the version left the accepted set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub retired_at: Option<Timestamp>,
}

/// What keyrotor remembers between reconciles (kept in status). Everything here
/// can be lost without harm: Secrets are the source of truth, this only fills
/// gaps (e.g. a projected Secret deleted by hand).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub history: Vec<VersionRecord>,
    pub handled_rotate: Requests,
    pub handled_rollback: Requests,
    pub accepted: BTreeSet<Version>,
    pub current: Option<Version>,
    pub verifier_revision: Revision,
    pub presenter_revision: Revision,
    pub traffic: BTreeMap<Version, Timestamp>,
    pub stalled: bool,
}

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
    /// Create the immutable version Secret (idempotent by its deterministic name).
    CreateVersion {
        version: Version,
        origin: Origin,
        requests: Requests,
    },
    /// Write a projected Secret: verifiers get `accepted`, presenters `current`.
    Publish {
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
    /// Touch consumer pods so kubelet resyncs their volumes now (a hint only).
    Nudge {
        group: Group,
        revision: Revision,
        pods: Vec<(String, u32)>,
    },
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
                .any(|c| c.type_ == crate::conditions::types::MIGRATION_STALLED && c.status),
        }
    }
}
