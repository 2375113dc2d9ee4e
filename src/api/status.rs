//! The `ApiKeyRotation` status: what keyrotor observed and decided, for people,
//! `kubectl get akr`, Argo CD health checks and the next reconcile. It holds
//! fingerprints only, never key material (I4).

use std::collections::BTreeSet;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions::{reasons, types};
use crate::rotation::{
    ConditionState, GroupProgress, NamespaceConsumers, Record, Report, Requests, Revision, Stage,
    Stall, Version, VersionRecord, VersionState,
};

/// The observed rotation, written by keyrotor only: the version presenters
/// send and the versions verifiers accept, the stage of the cycle in flight,
/// how far each consumer group confirmed it, and conditions (Ready sums them
/// up). It holds version numbers and fingerprints, never a key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::schema::kubernetes_formats)]
// A new rotation reads `observedGeneration: 0` before keyrotor has seen it,
// so kstatus (Flux's `wait`) says InProgress instead of Current.
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct ApiKeyRotationStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready (summary), Progressing, MigrationStalled, and kstatus's Stalled
    /// (True when the rotation needs a person).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The version presenters send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<Version>,

    /// The version a cycle in flight is moving to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<Version>,

    /// Versions verifiers accept.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub accepted_versions: BTreeSet<Version>,

    /// Stage of the rotation cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,

    /// When the rotation entered its current stage (time in stage = now - this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub stage_transition_time: Option<Timestamp>,

    /// Every live version and the most recent retired ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VersionRecord>,

    /// How far each consumer group has confirmed the latest change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,

    /// When the latest cycle started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub last_rotation_time: Option<Timestamp>,

    /// When the schedule next asks for a rotation (it waits for a cycle in flight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub next_rotation_time: Option<Timestamp>,

    /// Revisions of the projected Secrets as last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Revisions>,

    /// On-demand requests already acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_requests: Option<HandledRequests>,

    /// Latest time verifiers reported each version presented (Traffic mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficRecord>,

    /// Revoked version numbers above every issued one: they will never be issued.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub revoked_in_advance: BTreeSet<Version>,

    /// Requests presenting a retired version that each verifier pod's
    /// endpoint had refused when keyrotor last announced it (event
    /// RetiredKeyPresented): a restarted operator announces only new ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_key_refusals: Vec<RefusalRecord>,

    /// Running consumers found per namespace, when the rotation reaches
    /// other namespaces (`consumers.<group>.namespaces`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespaceConsumers>,

    /// The step a hook refused for good (HTTP 4xx), kept so that no
    /// process asks it again while `metadata.generation` and the
    /// `keyrotor.dev/retry-hook` annotation are what they were; cleared by
    /// the next step a hook answers done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_refusal: Option<HookRefusal>,
}

/// A step a hook refused, and what keyrotor waits for before asking again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookRefusal {
    /// The hook that refused: `verifierHook` or `issuerHook`.
    pub hook: String,
    /// The step refused: `issue`, `stage` or `retire`.
    pub step: String,
    /// The version the step was for.
    pub version: Version,
    /// The HTTP status of the refusal.
    pub status: u16,
    /// The hook's reason, as keyrotor shows it (printable, at most 256
    /// bytes, dropped when it held the step's key or digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `metadata.generation` when the hook refused: a spec change asks again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The `keyrotor.dev/retry-hook` annotation when the hook refused: any
    /// other value asks again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_token: Option<String>,
}

impl HookRefusal {
    /// Whether the refusal still stands for a rotation at `generation`
    /// whose `keyrotor.dev/retry-hook` annotation is `retry_token`.
    pub fn in_force(&self, generation: Option<i64>, retry_token: Option<&str>) -> bool {
        self.generation == generation && self.retry_token.as_deref() == retry_token
    }
}

/// Refused requests of one verifier pod, as announced.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalRecord {
    /// The verifier pod.
    pub pod: String,
    /// Requests presenting a retired version it refused since its endpoint started.
    pub refused: u64,
}

/// A status condition, as in `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// When status last changed.
    #[schemars(with = "String")]
    pub last_transition_time: Timestamp,
    /// Generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Confirmation progress per consumer group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Confirmation {
    /// Verifiers (accept the key).
    pub verifiers: GroupProgress,
    /// Presenters (send the key).
    pub presenters: GroupProgress,
}

/// Revisions of the projected Secrets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Revisions {
    /// Verifier Secret revision.
    pub verifier: Revision,
    /// Presenter Secret revision.
    pub presenter: Revision,
}

/// On-demand request tokens already acted on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandledRequests {
    /// Rotation requests.
    #[serde(default)]
    pub rotate: Requests,
    /// Rollback requests.
    #[serde(default)]
    pub rollback: Requests,
}

/// When verifiers last saw a version presented.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRecord {
    /// Version number.
    pub version: Version,
    /// Latest report of it being presented.
    #[schemars(with = "String")]
    pub last_seen: Timestamp,
}

impl ApiKeyRotationStatus {
    /// What the planner may rely on from a previous status.
    pub fn record(&self) -> Record {
        let handled = self.handled_requests.clone().unwrap_or_default();
        let revisions = self.revisions.clone().unwrap_or_default();
        Record {
            history: self.versions.clone(),
            handled_rotate: handled.rotate,
            handled_rollback: handled.rollback,
            accepted: self.accepted_versions.clone(),
            current: self.current_version,
            verifier_revision: revisions.verifier,
            presenter_revision: revisions.presenter,
            traffic: self
                .traffic
                .iter()
                .map(|t| (t.version, t.last_seen))
                .collect(),
            stalled: self
                .condition(types::MIGRATION_STALLED)
                .filter(|c| c.status == "True")
                .map(|c| Stall {
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                }),
            revoked_in_advance: self.revoked_in_advance.clone(),
            verifiers_progress: self.confirmation.as_ref().and_then(|c| c.verifiers.mark()),
            presenters_progress: self.confirmation.as_ref().and_then(|c| c.presenters.mark()),
            refusals_announced: self
                .retired_key_refusals
                .iter()
                .map(|r| (r.pod.clone(), r.refused))
                .collect(),
        }
    }

    /// The status for a planner report. Condition transition times carry over
    /// from `previous` when a condition's status did not change, so an
    /// unchanged world gives an identical status (and no write, I8).
    pub fn from_report(
        report: &Report,
        generation: Option<i64>,
        previous: Option<&ApiKeyRotationStatus>,
        now: Timestamp,
    ) -> ApiKeyRotationStatus {
        let conditions = report
            .conditions
            .iter()
            .map(|c| condition(c, generation, previous, now))
            .collect();
        ApiKeyRotationStatus {
            observed_generation: generation,
            conditions,
            current_version: report.current,
            target_version: report.target,
            accepted_versions: report.accepted.clone(),
            stage: Some(report.stage),
            stage_transition_time: previous
                .filter(|p| p.stage == Some(report.stage))
                .and_then(|p| p.stage_transition_time)
                .or(Some(now)),
            versions: report.versions.clone(),
            // Progress matters while a cycle is in flight; in Stable it would
            // only churn status as pods report.
            confirmation: report.in_flight().then(|| Confirmation {
                verifiers: report.verifiers.clone(),
                presenters: report.presenters.clone(),
            }),
            last_rotation_time: report.last_rotation,
            next_rotation_time: report.next_rotation,
            revisions: Some(Revisions {
                verifier: report.verifier_revision,
                presenter: report.presenter_revision,
            }),
            handled_requests: Some(HandledRequests {
                rotate: report.handled_rotate.clone(),
                rollback: report.handled_rollback.clone(),
            }),
            traffic: report
                .traffic
                .iter()
                .map(|(v, t)| TrafficRecord {
                    version: *v,
                    last_seen: *t,
                })
                .collect(),
            revoked_in_advance: report.revoked_in_advance.clone(),
            retired_key_refusals: report
                .refusals_announced
                .iter()
                .map(|(pod, refused)| RefusalRecord {
                    pod: pod.clone(),
                    refused: *refused,
                })
                .collect(),
            namespaces: report.namespaces.clone(),
            // The planner does not see refusals: the record stays until a
            // hook answers done (see `controller::steps`).
            hook_refusal: previous.and_then(|p| p.hook_refusal.clone()),
        }
    }

    /// Conditions for `states`, carrying transition times over from `previous`.
    pub fn from_report_conditions(
        states: &[ConditionState],
        generation: Option<i64>,
        previous: Option<&ApiKeyRotationStatus>,
        now: Timestamp,
    ) -> Vec<Condition> {
        states
            .iter()
            .map(|c| condition(c, generation, previous, now))
            .collect()
    }

    /// Sets kstatus's `Stalled` condition from the others (see
    /// [`types::STALLED`]): True with `MigrationStalled`'s reason and message
    /// when that is True, else with Ready's when Ready is False for a reason
    /// other than the first key on its way (Initializing, AdoptionPending);
    /// False otherwise. A cycle in flight is not stalled: its published keys
    /// stay valid and Ready stays True, so kstatus calls it Current.
    pub fn set_stalled(&mut self, previous: Option<&ApiKeyRotationStatus>, now: Timestamp) {
        let is = |c: &&Condition, status: &str| c.status == status;
        let first_key = [reasons::INITIALIZING, reasons::ADOPTION_PENDING];
        let why = self
            .condition(types::MIGRATION_STALLED)
            .filter(|c| is(c, "True"))
            .or_else(|| {
                self.condition(types::READY)
                    .filter(|c| is(c, "False") && !first_key.contains(&c.reason.as_str()))
            });
        let (status, reason, message) = match why {
            Some(c) => ("True", c.reason.clone(), c.message.clone()),
            None => (
                "False",
                reasons::NOT_STALLED.to_string(),
                "nothing needs a person".to_string(),
            ),
        };
        let last_transition_time = previous
            .and_then(|p| p.condition(types::STALLED))
            .filter(|old| old.status == status)
            .map_or(now, |old| old.last_transition_time);
        let stalled = Condition {
            type_: types::STALLED.to_string(),
            status: status.to_string(),
            reason,
            message,
            last_transition_time,
            observed_generation: self.observed_generation,
        };
        self.conditions.retain(|c| c.type_ != types::STALLED);
        self.conditions.push(stalled);
    }

    /// The condition of `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Versions in `state`.
    pub fn versions_in(&self, state: VersionState) -> impl Iterator<Item = &VersionRecord> {
        self.versions.iter().filter(move |v| v.state == state)
    }
}

fn condition(
    c: &ConditionState,
    generation: Option<i64>,
    previous: Option<&ApiKeyRotationStatus>,
    now: Timestamp,
) -> Condition {
    let status = if c.status { "True" } else { "False" };
    let last_transition_time = previous
        .and_then(|p| p.condition(c.type_))
        .filter(|old| old.status == status)
        .map_or(now, |old| old.last_transition_time);
    Condition {
        type_: c.type_.to_string(),
        status: status.to_string(),
        reason: c.reason.to_string(),
        message: c.message.clone(),
        last_transition_time,
        observed_generation: generation,
    }
}
