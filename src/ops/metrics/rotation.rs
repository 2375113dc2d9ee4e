//! Per-rotation gauges: what a rotation's status and policy say, as series
//! labelled by its namespace and name (and a group or a stage). Every label
//! set a rotation can have is listed once ([`Series`]), so forgetting a
//! deleted rotation drops exactly what observing it made.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{GroupLabels, ReasonLabels, RotationLabels, StageLabels};
use crate::api::ApiKeyRotationStatus;
use crate::conditions::reasons::STALLED;
use crate::conditions::types::{MIGRATION_STALLED, READY};
use crate::rotation::{Policy, Stage, VersionState};

const STAGES: [(Stage, &str); 5] = [
    (Stage::Initializing, "Initializing"),
    (Stage::Stable, "Stable"),
    (Stage::Staging, "Staging"),
    (Stage::Promoting, "Promoting"),
    (Stage::Retiring, "Retiring"),
];

const GROUPS: [&str; 2] = ["verifiers", "presenters"];

/// Every label set of one rotation.
pub struct Series {
    rotation: RotationLabels,
    groups: [GroupLabels; 2],
    stages: [(Stage, StageLabels); 5],
    reasons: [ReasonLabels; STALLED.len()],
}

impl Series {
    pub fn of(namespace: &str, name: &str) -> Series {
        let rotation = RotationLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        Series {
            groups: GROUPS.map(|group| GroupLabels {
                namespace: namespace.into(),
                name: name.into(),
                group,
            }),
            stages: STAGES.map(|(stage, label)| {
                let labels = StageLabels {
                    namespace: namespace.into(),
                    name: name.into(),
                    stage: label,
                };
                (stage, labels)
            }),
            reasons: STALLED.map(|reason| ReasonLabels {
                namespace: namespace.into(),
                name: name.into(),
                reason,
            }),
            rotation,
        }
    }
}

#[derive(Default)]
pub struct RotationGauges {
    key_created: Family<RotationLabels, Gauge>,
    key_max_age: Family<RotationLabels, Gauge>,
    next_rotation: Family<RotationLabels, Gauge>,
    stalled: Family<RotationLabels, Gauge>,
    pub(super) nudges_refused: Family<RotationLabels, Counter>,
    waiting: Family<GroupLabels, Gauge>,
    stage: Family<StageLabels, Gauge>,
    ready: Family<RotationLabels, Gauge>,
    stalled_by: Family<ReasonLabels, Gauge>,
    stage_started: Family<RotationLabels, Gauge>,
}

impl RotationGauges {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "current_key_created_timestamp_seconds",
            "When the key presenters send was created (key age = now - this)",
            self.key_created.clone(),
        );
        registry.register(
            "current_key_max_age_seconds",
            "How old the current key may grow: from its creation to the first scheduled rotation after it, plus gracePeriod.maximum (absent without a schedule)",
            self.key_max_age.clone(),
        );
        registry.register(
            "next_rotation_timestamp_seconds",
            "When the schedule next asks for a rotation (absent without a schedule or while suspended)",
            self.next_rotation.clone(),
        );
        registry.register(
            "migration_stalled",
            "1 while the rotation's MigrationStalled condition is True (a group has not confirmed within gracePeriod.maximum)",
            self.stalled.clone(),
        );
        registry.register(
            "nudges_refused",
            "Nudges the API refused (RBAC lacks patch on pods): consumers then load changes at kubelet's pace",
            self.nudges_refused.clone(),
        );
        registry.register(
            "consumers_waiting",
            "Consumers that have not confirmed the latest change",
            self.waiting.clone(),
        );
        registry.register(
            "stage",
            "1 for the stage each rotation is in",
            self.stage.clone(),
        );
        registry.register(
            "ready",
            "1 while the rotation's Ready condition is True (its published keys are valid and keyrotor can manage them)",
            self.ready.clone(),
        );
        registry.register(
            "stalled",
            "1 for the reason the rotation's MigrationStalled condition is True with (NoConsumers, ConsumersCannotConfirm, NoUsageReporter, VerifiersStalled, PresentersStalled, HookStalled, TrafficNotQuiet), 0 for the others",
            self.stalled_by.clone(),
        );
        registry.register(
            "stage_started_timestamp_seconds",
            "When the rotation entered its current stage (time in stage = now - this)",
            self.stage_started.clone(),
        );
    }

    /// The gauges of one rotation from the status just computed and the
    /// policy it was computed under.
    pub fn observe(
        &self,
        namespace: &str,
        name: &str,
        status: &ApiKeyRotationStatus,
        policy: &Policy,
    ) {
        let series = Series::of(namespace, name);
        let labels = &series.rotation;
        self.key_age(labels, status, policy);
        self.conditions(&series, status);
        // From 0, so the first refusal is an increase too.
        let _ = self.nudges_refused.get_or_create(labels);
        match status.next_rotation_time {
            Some(t) => {
                self.next_rotation.get_or_create(labels).set(t.as_second());
            }
            None => {
                self.next_rotation.remove(labels);
            }
        }
        let waiting = status
            .confirmation
            .as_ref()
            .map(|c| [&c.verifiers, &c.presenters]);
        for (i, group) in series.groups.iter().enumerate() {
            let n = waiting.map_or(0, |w| w[i].total.saturating_sub(w[i].confirmed));
            self.waiting.get_or_create(group).set(i64::from(n));
        }
        for (stage, l) in &series.stages {
            let now = status.stage == Some(*stage);
            self.stage.get_or_create(l).set(i64::from(now));
        }
        if let Some(t) = status.stage_transition_time {
            self.stage_started.get_or_create(labels).set(t.as_second());
        }
    }

    /// The gauges that read the conditions: ready, and stalled (overall and
    /// by reason). Also for a rotation that cannot be planned (invalid spec,
    /// a Secret clash, a failing hook), whose status only these change.
    pub fn conditions(&self, series: &Series, status: &ApiKeyRotationStatus) {
        let labels = &series.rotation;
        let is_true = |type_: &str| {
            status
                .condition(type_)
                .filter(|c| c.status == "True")
                .map(|c| c.reason.as_str())
        };
        let ready = is_true(READY).is_some();
        self.ready.get_or_create(labels).set(i64::from(ready));
        let stalled = is_true(MIGRATION_STALLED);
        self.stalled
            .get_or_create(labels)
            .set(i64::from(stalled.is_some()));
        for l in &series.reasons {
            let now = stalled == Some(l.reason);
            self.stalled_by.get_or_create(l).set(i64::from(now));
        }
    }

    /// When the current key was created, and how old the schedule lets it grow.
    fn key_age(&self, labels: &RotationLabels, status: &ApiKeyRotationStatus, policy: &Policy) {
        let current = status.current_version;
        let Some(v) = status
            .versions
            .iter()
            .find(|v| Some(v.version) == current && v.state == VersionState::Current)
        else {
            return;
        };
        self.key_created
            .get_or_create(labels)
            .set(v.created_at.as_second());
        // The schedule allows a key to live until its first due time, plus
        // the longest a cycle may then wait for its consumers.
        let max_age = policy
            .schedule
            .as_ref()
            .and_then(|s| s.next_after(v.created_at))
            .map(|due| due.duration_since(v.created_at) + policy.grace_maximum);
        match max_age {
            Some(age) => {
                self.key_max_age.get_or_create(labels).set(age.as_secs());
            }
            None => {
                self.key_max_age.remove(labels);
            }
        }
    }

    /// Drops a deleted rotation's series: every one [`observe`] can make.
    ///
    /// [`observe`]: RotationGauges::observe
    pub fn forget(&self, namespace: &str, name: &str) {
        let series = Series::of(namespace, name);
        let labels = &series.rotation;
        for family in [
            &self.key_created,
            &self.key_max_age,
            &self.next_rotation,
            &self.stalled,
            &self.ready,
            &self.stage_started,
        ] {
            family.remove(labels);
        }
        for reason in &series.reasons {
            self.stalled_by.remove(reason);
        }
        self.nudges_refused.remove(labels);
        for group in &series.groups {
            self.waiting.remove(group);
        }
        for (_, stage) in &series.stages {
            self.stage.remove(stage);
        }
    }
}
