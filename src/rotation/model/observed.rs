//! What the planner is told: the version Secrets, the projected Secrets,
//! the consumers, and what keyrotor remembers in status.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Requests, Revision, Version, WorkloadId};

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
    /// The verifier hook answered that it accepts this version (recorded on
    /// the version Secret after the answer, so it survives a restart).
    pub hook_accepted: bool,
    /// The user name recorded on the version Secret when it was created
    /// (`spec.usernames`); never changed afterwards.
    pub username: Option<String>,
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
    /// It reads the group's Secret through an environment variable (`env`
    /// or `envFrom`): the value is fixed when its container starts, so it
    /// never loads a new revision, whatever it reports.
    pub env: bool,
}

impl Consumer {
    /// The namespace of a consumer outside the rotation's own, whose pod is
    /// named `<namespace>/<pod>` (`None`: the rotation's namespace).
    pub fn namespace(&self) -> Option<&str> {
        self.pod.split_once('/').map(|(ns, _)| ns)
    }
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
    /// Where its consumers were looked for, for messages that say so.
    pub search: Search,
}

/// Where a group's consumers were looked for: the running pods of
/// `namespace` that reference `secret`, plus those `selector` matches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Search {
    pub namespace: String,
    pub secret: String,
    /// The group's label selector, as `key=value` text.
    pub selector: Option<String>,
    /// Other namespaces the group names (`consumers.<group>.namespaces`):
    /// each needs a consumer of its own (consumers there are named
    /// `<namespace>/<pod>`).
    pub required: Vec<String>,
}

/// What one verifier endpoint (`keyrotor verifier`) refused: requests that
/// presented a retired version since it started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Refusals {
    /// Refused requests, every retired version together.
    pub total: u64,
    /// The retired versions presented.
    pub versions: BTreeSet<Version>,
    /// The client that last presented one, when the gateway named it.
    pub client: Option<String>,
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
    /// What each running verifier pod's endpoint refused, by pod.
    pub refusals: BTreeMap<String, Refusals>,
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
    /// The user name the version carries (`spec.usernames`), recorded when
    /// it was created. Not secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
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
    /// The stall last announced (`MigrationStalled`), so a stall is said once.
    pub stalled: Option<Stall>,
    /// Revoked numbers above every issued one, already announced.
    pub revoked_in_advance: BTreeSet<Version>,
    /// Each group's confirmation progress, while a cycle is in flight.
    pub verifiers_progress: Option<ProgressMark>,
    pub presenters_progress: Option<ProgressMark>,
    /// Refused retired-version requests already announced, by verifier pod.
    pub refusals_announced: BTreeMap<String, u64>,
}

/// A stall as status shows it: the `MigrationStalled` reason and message.
#[derive(Clone, Debug, PartialEq)]
pub struct Stall {
    pub reason: String,
    pub message: String,
}

/// How far a group had come confirming a revision, and since when: a group
/// whose consumers still waiting do not become fewer for the progress
/// deadline is stalled.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressMark {
    pub revision: Revision,
    /// Consumers still to confirm it.
    pub waiting: u32,
    /// When one last confirmed (or the revision was written).
    pub since: Timestamp,
}
